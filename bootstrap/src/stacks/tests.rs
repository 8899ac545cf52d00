use std::collections::BTreeSet;

use serde_json::Value;

use super::*;
use harbormaster_core::config::Config;

const EXAMPLE: &str = include_str!("../../../examples/booking/harbormaster.toml");

fn spec_with(env: &str, edit: impl Fn(String) -> String) -> Spec {
    let text = edit(EXAMPLE.to_owned());
    let config = Config::parse("harbormaster.toml", &text).expect("the example parses");
    Spec::from_config("harbormaster.toml", &config, env).expect("its bootstrap is valid")
}

fn dev() -> Spec {
    spec_with("dev", |t| t)
}

/// dev with `lines` added to its bootstrap table.
fn dev_with(lines: &str) -> Spec {
    let at = "log_retention_days = 30";
    spec_with("dev", |t| t.replace(at, &format!("{at}\n{lines}")))
}

fn of_type<'t>(template: &'t Value, kind: &str) -> Vec<(&'t String, &'t Value)> {
    template["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == kind).collect()
}

/// The SSM parameters the environment stack writes, by name.
fn parameters(template: &Value) -> BTreeSet<String> {
    of_type(template, "AWS::SSM::Parameter")
        .into_iter()
        .map(|(_, r)| r["Properties"]["Name"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `Ref` and `Fn::GetAtt` in `v`, by the logical id it names.
fn references(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(id)) = m.get("Ref") {
                out.insert(id.clone());
            }
            if let Some(Value::Array(a)) = m.get("Fn::GetAtt") {
                out.insert(a[0].as_str().unwrap().to_owned());
            }
            m.values().for_each(|x| references(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| references(x, out)),
        _ => {}
    }
}

#[test]
fn every_reference_names_a_resource_of_its_template() {
    for template in [environment(&dev()), project(&dev())] {
        let mut named = BTreeSet::new();
        references(&template, &mut named);
        let resources = template["Resources"].as_object().unwrap();
        for id in named.iter().filter(|id| !id.starts_with("AWS::")) {
            assert!(resources.contains_key(id), "{id} is not a resource");
        }
    }
}

#[test]
fn the_outputs_the_agent_reads_are_written_where_it_reads_them() {
    let written = parameters(&environment(&dev()));
    for name in [
        "private-subnet-ids",
        "public-subnet-ids",
        "security-groups/services",
        "security-groups/cache",
        "target-groups/web/blue",
        "target-groups/web/green",
        "production-rules/web",
        "test-rules/web",
        "listeners/test",
        "roles/ecs-infrastructure",
        "roles/execution",
        "alb-arn",
        "cluster-name",
        "database-endpoint",
        "redis-endpoint",
        "topic-arn",
        "state-bucket",
        "repositories/booking/web",
    ] {
        let path = format!("/booking/dev/outputs/{name}");
        assert!(written.contains(&path), "{path} missing from {written:?}");
    }
}

#[test]
fn nat_none_single_and_per_az_give_zero_one_and_two_gateways() {
    for (mode, gateways) in [("none", 0), ("single", 1), ("per_az", 2)] {
        let spec =
            spec_with("dev", |t| t.replace("nat = \"single\"", &format!("nat = \"{mode}\"")));
        let t = environment(&spec);
        assert_eq!(of_type(&t, "AWS::EC2::NatGateway").len(), gateways, "{mode}");
        assert_eq!(of_type(&t, "AWS::EC2::EIP").len(), gateways, "{mode}");
        let via: BTreeSet<String> = of_type(&t, "AWS::EC2::Route")
            .into_iter()
            .filter_map(|(_, r)| r["Properties"]["NatGatewayId"]["Ref"].as_str().map(str::to_owned))
            .collect();
        let expected: BTreeSet<String> = match gateways {
            0 => BTreeSet::new(),
            1 => ["NatGatewayA".to_owned()].into(),
            _ => ["NatGatewayA".to_owned(), "NatGatewayB".to_owned()].into(),
        };
        assert_eq!(via, expected, "{mode}: the private routes' way out");
    }
}

#[test]
fn shared_data_is_retained_and_the_database_snapshotted() {
    let p = project(&dev());
    for (id, r) in p["Resources"].as_object().unwrap() {
        if r["Type"] == "AWS::ECR::Repository" || r["Type"] == "AWS::S3::Bucket" {
            assert_eq!(r["DeletionPolicy"], "Retain", "{id}");
            assert_eq!(r["UpdateReplacePolicy"], "Retain", "{id}");
        }
    }
    let bucket = &p["Resources"]["StateBucket"]["Properties"];
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    assert_eq!(bucket["PublicAccessBlockConfiguration"]["RestrictPublicBuckets"], true);
    let e = environment(&dev());
    let db = &e["Resources"]["Database"];
    assert_eq!(db["DeletionPolicy"], "Snapshot");
    assert_eq!(db["UpdateReplacePolicy"], "Snapshot");
    // Nothing of the project's is in an environment's stack: destroying one leaves them.
    for kind in ["AWS::ECR::Repository", "AWS::S3::Bucket", "AWS::SNS::Topic"] {
        assert!(of_type(&e, kind).is_empty(), "{kind} in the environment stack");
    }
}

#[test]
fn the_database_password_is_a_secure_string_reference_never_a_value() {
    let e = environment(&dev());
    let password = &e["Resources"]["Database"]["Properties"]["MasterUserPassword"];
    assert_eq!(password, "{{resolve:ssm-secure:/booking/dev/database/password}}");
}

#[test]
fn each_web_service_has_a_production_and_a_test_rule_on_its_blue_group() {
    let e = environment(&dev());
    let rules = of_type(&e, "AWS::ElasticLoadBalancingV2::ListenerRule");
    let listeners: BTreeSet<String> = rules
        .iter()
        .map(|(_, r)| r["Properties"]["ListenerArn"]["Ref"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listeners, ["HttpListener".to_owned(), "TestListener".to_owned()].into());
    for (_, r) in rules {
        let to = &r["Properties"]["Actions"][0]["TargetGroupArn"];
        assert_eq!(to["Ref"], "WebBlueTargetGroup");
    }
    let alb = &e["Resources"]["AlbSecurityGroup"]["Properties"]["SecurityGroupIngress"];
    let test = alb.as_array().unwrap().iter().find(|i| i["FromPort"] == 8080).unwrap();
    assert_eq!(test["CidrIp"], "10.20.0.0/16", "test traffic from the VPC only");
}

/// Issue 33, item 3: ECS takes one production listener rule
/// (`advancedConfiguration.productionListenerRule`, a single ARN, ECS API reference
/// AdvancedConfiguration) and moves only that one to green. With a certificate, HTTP redirects
/// to HTTPS and the one production rule is HTTPS's: no rule is left forwarding to blue after a
/// native deployment (the old stack had an HTTP and an HTTPS rule: HTTPS kept sending traffic
/// to blue, which ECS scales in — 503).
#[test]
fn item_3_with_a_certificate_http_redirects_and_the_one_production_rule_is_https() {
    let spec = dev_with("certificate_arn = \"arn:aws:acm:us-east-1:123456789012:certificate/abc\"");
    let e = environment(&spec);
    assert_eq!(e["Resources"]["HttpsListener"]["Properties"]["Protocol"], "HTTPS");
    let http = &e["Resources"]["HttpListener"]["Properties"]["DefaultActions"][0];
    assert_eq!(http["Type"], "redirect", "{http}");
    assert_eq!(http["RedirectConfig"]["Protocol"], "HTTPS");
    assert_eq!(http["RedirectConfig"]["StatusCode"], "HTTP_301");
    let rules: Vec<String> = of_type(&e, "AWS::ElasticLoadBalancingV2::ListenerRule")
        .into_iter()
        .map(|(_, r)| r["Properties"]["ListenerArn"]["Ref"].as_str().unwrap().to_owned())
        .collect();
    let on = |l: &str| rules.iter().filter(|r| *r == l).count();
    assert_eq!(
        (on("HttpListener"), on("HttpsListener"), on("TestListener")),
        (0, 1, 1),
        "{rules:?}"
    );
    let params = parameters(&e);
    assert!(params.contains("/booking/dev/outputs/production-rules/web"));
    assert!(!params.iter().any(|p| p.ends_with("web-https")), "{params:?}");
}

/// ECS moves a production rule to green during a native blue/green deployment. CloudFormation
/// updates a resource only when its own properties in the template change ("Update behaviors
/// of stack resources", CloudFormation User Guide), so the rules' properties depend on nothing
/// but their listener, path and blue group: changing any other setting leaves them out of the
/// change set, and where ECS put them.
#[test]
fn the_rules_do_not_change_with_any_other_setting() {
    let rules = |spec: &Spec| {
        let e = environment(spec);
        of_type(&e, "AWS::ElasticLoadBalancingV2::ListenerRule")
            .into_iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect::<Vec<_>>()
    };
    let before = rules(&dev());
    let after = rules(&spec_with("dev", |t| {
        t.replace("log_retention_days = 30", "log_retention_days = 14\nhealth_check_path = \"/up\"\nderegistration_delay_seconds = 5\ncontainer_insights = false")
            .replace("redis = true", "redis = false")
    }));
    assert_eq!(before.len(), 2);
    assert_eq!(before, after);
}

#[test]
fn the_project_stack_is_the_same_whichever_environment_renders_it() {
    let edit = |t: String| {
        t.replace("ecr_keep_images = 30", "ecr_keep_images = 50\necr_immutable_tags = false")
    };
    let (dev, prod) = (spec_with("dev", edit), spec_with("prod", edit));
    assert_eq!(project(&dev), project(&prod));
    let repo = &project(&dev)["Resources"]["RepositoryBookingWeb"]["Properties"];
    // prod keeps the default 30 and immutable tags; the repositories serve both.
    assert!(repo["LifecyclePolicy"]["LifecyclePolicyText"]
        .as_str()
        .unwrap()
        .contains("\"countNumber\":50"));
    assert_eq!(repo["ImageTagMutability"], "IMMUTABLE");
}

#[test]
fn one_log_group_per_environment_and_the_parameters_the_services_read() {
    let e = environment(&dev());
    let groups = of_type(&e, "AWS::Logs::LogGroup");
    assert_eq!(groups.len(), 1);
    assert_eq!(groups[0].1["Properties"]["LogGroupName"], "/ecs/booking-dev");
    let names = parameters(&e);
    for p in ["database/host", "database/port", "database/name", "database/user", "redis/url"] {
        assert!(names.contains(&format!("/booking/dev/{p}")), "{p}");
    }
    assert!(!names.iter().any(|n| n.ends_with("/password")), "written before the stack, not by it");
}

#[test]
fn availability_zones_from_the_config_are_the_subnets_zones() {
    let spec = dev_with("availability_zones = [\"eu-west-1b\", \"eu-west-1c\"]");
    let e = environment(&spec);
    assert_eq!(e["Resources"]["PublicSubnetB"]["Properties"]["AvailabilityZone"], "eu-west-1c");
    let default = environment(&dev());
    assert!(default["Resources"]["PublicSubnetA"]["Properties"]["AvailabilityZone"]["Fn::Select"]
        .is_array());
}

/// Issue 32, finding 1: the rendered policy, evaluated as ECR evaluates it, over forty pushes
/// to main while prod runs the older release `1.4.0`, has `1.3.0` to roll back to, and runs a
/// build promoted by digest (protected by the agent's tag).
#[test]
fn finding_1_the_rendered_policy_keeps_what_prod_runs_through_forty_pushes_to_main() {
    use chrono::{Duration, TimeZone, Utc};
    use harbormaster_core::image::Digest;
    use harbormaster_core::retention::{expired, protection_tag, LifecyclePolicy, StoredImage};
    let now = Utc.with_ymd_and_hms(2026, 12, 8, 12, 0, 0).unwrap();
    let digest = |n: u32| Digest::parse(&format!("sha256:{n:064x}")).unwrap();
    let image = |n: u32, tags: Vec<String>, hours: i64| StoredImage {
        digest: digest(n),
        tags,
        pushed_at: now - Duration::hours(hours),
        children: Vec::new(),
    };
    let mut images = vec![
        image(1, vec!["1.3.0".into()], 300),
        image(2, vec!["1.4.0".into()], 200),
        image(3, vec!["main-abc1234".into(), protection_tag("prod", "worker", &digest(3))], 100),
    ];
    images
        .extend((0..40).map(|n| image(100 + n, vec![format!("main-{n:07x}")], 40 - i64::from(n))));
    let text = project(&dev())["Resources"]["RepositoryBookingWeb"]["Properties"]
        ["LifecyclePolicy"]["LifecyclePolicyText"]
        .as_str()
        .unwrap()
        .to_owned();
    let policy = LifecyclePolicy::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    let gone = expired(&policy, &images, now);
    for kept in [1, 2, 3] {
        assert!(!gone.contains(&digest(kept)), "image {kept} would expire: {text}");
    }
    assert_eq!(gone.len(), 10, "the ten oldest dev builds, nothing else: {text}");
}

/// Issue 33, item 7: with ECS Exec on for a service of the environment, the task role may open
/// the SSM agent's channels ("Using Amazon ECS Exec", ECS Developer Guide); without it, no such
/// grant.
#[test]
fn item_7_exec_on_grants_the_task_role_the_ssm_channels_and_only_then() {
    let actions = |spec: &Spec| {
        let e = environment(spec);
        let role = &e["Resources"]["TaskRole"]["Properties"];
        role["Policies"][0]["PolicyDocument"]["Statement"][0]["Action"].clone()
    };
    assert!(actions(&dev()).is_null());
    let on = spec_with("dev", |t| {
        t.replace(
            "[services.web.environments.dev]",
            "[services.web.environments.dev]\nenable_execute_command = true",
        )
    });
    let granted = actions(&on);
    for a in ["ssmmessages:CreateControlChannel", "ssmmessages:OpenDataChannel"] {
        assert!(granted.as_array().unwrap().iter().any(|x| x == a), "{granted}");
    }
}
