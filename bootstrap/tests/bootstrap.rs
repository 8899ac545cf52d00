//! `harbormaster-bootstrap` end to end: the real binary against the local emulator, through a
//! proxy that counts its AWS calls.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use harbormaster_testkit::proxy::{is_mutating, CountingProxy};
use harbormaster_testkit::Emulator;
use serde_json::Value;

struct Env {
    emulator: Emulator,
    proxy: CountingProxy,
    config: PathBuf,
    _dir: TempDir,
}

struct TempDir(PathBuf);
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/booking/harbormaster.toml")
}

impl Env {
    fn start(edit: impl Fn(String) -> String) -> Env {
        let emulator = Emulator::start().unwrap();
        let proxy = CountingProxy::start(emulator.port).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "hm-bootstrap-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("harbormaster.toml"),
            edit(std::fs::read_to_string(example()).unwrap()),
        )
        .unwrap();
        Env {
            emulator,
            proxy,
            config: dir.clone(),
            _dir: TempDir(dir),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_harbormaster-bootstrap"))
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .env("AWS_ENDPOINT_URL", &self.proxy.endpoint)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    async fn sdk(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.emulator.endpoint)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "test", "test", None, None, "tests",
            ))
            .load()
            .await
    }
}

fn actions(report: &Value) -> Vec<(String, String)> {
    report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["key"].as_str().unwrap().to_owned(),
                s["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn tag_filter(k: &str, v: &str) -> aws_sdk_ec2::types::Filter {
    aws_sdk_ec2::types::Filter::builder()
        .name(format!("tag:{k}"))
        .values(v)
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_provisions_everything_tagged_and_a_second_apply_changes_nothing() {
    let env = Env::start(|t| t);
    let first = env.json(&["apply", "--env", "dev", "--json"]);
    assert!(first["errors"].as_array().unwrap().is_empty(), "{first}");
    assert!(
        actions(&first).iter().all(|(_, a)| a == "create"),
        "{first}"
    );

    let sdk = env.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let ours = || {
        vec![
            tag_filter("harbormaster:project", "booking"),
            tag_filter("harbormaster:environment", "dev"),
        ]
    };
    let vpcs = ec2
        .describe_vpcs()
        .set_filters(Some(ours()))
        .send()
        .await
        .unwrap();
    assert_eq!(vpcs.vpcs().len(), 1);
    assert_eq!(vpcs.vpcs()[0].cidr_block(), Some("10.20.0.0/16"));
    let subnets = ec2
        .describe_subnets()
        .set_filters(Some(ours()))
        .send()
        .await
        .unwrap();
    let mut zones: Vec<_> = subnets
        .subnets()
        .iter()
        .filter_map(|s| s.availability_zone())
        .collect();
    zones.sort();
    zones.dedup();
    assert_eq!(
        (subnets.subnets().len(), zones.len()),
        (4, 2),
        "two public and two private subnets in two zones"
    );

    // Least privilege: the services take the container port from the load balancer's group
    // only; the database takes 5432 from the services' group only.
    let groups = ec2
        .describe_security_groups()
        .set_filters(Some(ours()))
        .send()
        .await
        .unwrap();
    let group = |name: &str| {
        groups
            .security_groups()
            .iter()
            .find(|g| g.group_name() == Some(name))
            .unwrap()
            .clone()
    };
    let (alb, services, database) = (
        group("booking-dev-alb"),
        group("booking-dev-services"),
        group("booking-dev-database"),
    );
    let rule = |g: &aws_sdk_ec2::types::SecurityGroup| {
        let p = &g.ip_permissions()[0];
        (
            g.ip_permissions().len(),
            p.from_port(),
            p.ip_ranges()
                .first()
                .and_then(|r| r.cidr_ip())
                .map(str::to_owned),
            p.user_id_group_pairs()
                .first()
                .and_then(|x| x.group_id())
                .map(str::to_owned),
        )
    };
    assert_eq!(rule(&alb), (1, Some(80), Some("0.0.0.0/0".into()), None));
    assert_eq!(
        rule(&services),
        (1, Some(8000), None, alb.group_id().map(str::to_owned))
    );
    assert_eq!(
        rule(&database),
        (1, Some(5432), None, services.group_id().map(str::to_owned))
    );

    let routes = ec2
        .describe_route_tables()
        .set_filters(Some(ours()))
        .send()
        .await
        .unwrap();
    let private_a = routes
        .route_tables()
        .iter()
        .find(|t| {
            t.tags()
                .iter()
                .any(|x| x.value() == Some("booking-dev-private-a"))
        })
        .unwrap();
    assert!(private_a
        .routes()
        .iter()
        .any(|r| r.destination_cidr_block() == Some("0.0.0.0/0") && r.nat_gateway_id().is_some()));

    let ecs = aws_sdk_ecs::Client::new(&sdk);
    let c = ecs
        .describe_clusters()
        .clusters("booking-dev")
        .include(aws_sdk_ecs::types::ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert_eq!(
        c.clusters()[0].capacity_providers(),
        ["FARGATE", "FARGATE_SPOT"]
    );
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let repo = ecr
        .describe_repositories()
        .repository_names("booking/web")
        .send()
        .await
        .unwrap();
    let repo = &repo.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability().map(|m| m.as_str()),
        Some("IMMUTABLE")
    );
    assert!(repo.image_scanning_configuration().unwrap().scan_on_push());
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    let groups = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/booking-dev/")
        .send()
        .await
        .unwrap();
    assert!(
        groups
            .log_groups()
            .iter()
            .all(|g| g.retention_in_days() == Some(30))
            && groups.log_groups().len() == 2
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&sdk)
            .force_path_style(true)
            .build(),
    );
    let v = s3
        .get_bucket_versioning()
        .bucket("booking-harbormaster-state")
        .send()
        .await
        .unwrap();
    assert_eq!(v.status().map(|s| s.as_str()), Some("Enabled"));
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let vpc_id = ssm
        .get_parameter()
        .name("/booking/dev/outputs/vpc-id")
        .send()
        .await
        .unwrap();
    assert_eq!(
        vpc_id.parameter().and_then(|p| p.value()),
        vpcs.vpcs()[0].vpc_id()
    );

    // The load balancer: blue and green target groups (ip targets, the health path), an HTTP
    // listener, and the production rule forwarding to blue.
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let lb = elb
        .describe_load_balancers()
        .names("booking-dev")
        .send()
        .await
        .unwrap();
    let lb_arn = lb.load_balancers()[0]
        .load_balancer_arn()
        .unwrap()
        .to_owned();
    let tgs = elb
        .describe_target_groups()
        .names("booking-dev-web-blue")
        .names("booking-dev-web-green")
        .send()
        .await
        .unwrap();
    assert_eq!(tgs.target_groups().len(), 2);
    for tg in tgs.target_groups() {
        assert_eq!(tg.target_type().map(|t| t.as_str()), Some("ip"));
        assert_eq!(tg.health_check_path(), Some("/health/"));
        assert_eq!(tg.port(), Some(8000));
    }
    let blue = tgs
        .target_groups()
        .iter()
        .find(|t| t.target_group_name() == Some("booking-dev-web-blue"))
        .unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(&lb_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        listeners
            .listeners()
            .iter()
            .map(|l| l.port())
            .collect::<Vec<_>>(),
        [Some(80)]
    );
    let rules = elb
        .describe_rules()
        .listener_arn(listeners.listeners()[0].listener_arn().unwrap())
        .send()
        .await
        .unwrap();
    let production = rules
        .rules()
        .iter()
        .find(|r| r.is_default() != Some(true))
        .unwrap();
    assert_eq!(
        production.actions()[0].target_group_arn(),
        blue.target_group_arn()
    );

    // IAM: the execution role may read this environment's parameters only.
    let iam = aws_sdk_iam::Client::new(&sdk);
    let policy = iam
        .get_role_policy()
        .role_name("booking-dev-execution")
        .policy_name("harbormaster")
        .send()
        .await
        .unwrap();
    // IAM answers with the document URL-encoded.
    let doc = policy
        .policy_document()
        .replace("%2F", "/")
        .replace("%2A", "*")
        .replace("%3A", ":");
    assert!(doc.contains("parameter/booking/dev/*"), "{doc}");
    assert!(iam
        .get_role()
        .role_name("booking-dev-task")
        .send()
        .await
        .is_ok());
    let infra = iam
        .list_attached_role_policies()
        .role_name("booking-dev-ecs-infrastructure")
        .send()
        .await
        .unwrap();
    assert!(infra.attached_policies()[0]
        .policy_arn()
        .unwrap()
        .ends_with("AmazonECSInfrastructureRolePolicyForLoadBalancers"));

    // The database: encrypted, its password only in SSM.
    let rds = aws_sdk_rds::Client::new(&sdk);
    let db = rds
        .describe_db_instances()
        .db_instance_identifier("booking-dev")
        .send()
        .await
        .unwrap();
    let db = &db.db_instances()[0];
    assert_eq!(db.storage_encrypted(), Some(true));
    assert_eq!(db.engine_version(), Some("16.9"));
    let password = ssm
        .get_parameter()
        .name("/booking/dev/database/password")
        .with_decryption(true)
        .send()
        .await
        .unwrap();
    let p = password.parameter().unwrap();
    assert_eq!(p.r#type().map(|t| t.as_str()), Some("SecureString"));
    let password = p.value().unwrap().to_owned();
    assert_eq!(password.len(), 32);
    for (name, want) in [
        ("host", db.endpoint().unwrap().address().unwrap().to_owned()),
        ("name", "booking".into()),
        ("user", "booking".into()),
    ] {
        let v = ssm
            .get_parameter()
            .name(format!("/booking/dev/database/{name}"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            v.parameter().unwrap().value(),
            Some(want.as_str()),
            "{name}"
        );
    }
    let redis = ssm
        .get_parameter()
        .name("/booking/dev/redis/url")
        .send()
        .await
        .unwrap();
    assert!(redis
        .parameter()
        .unwrap()
        .value()
        .unwrap()
        .starts_with("rediss://"));
    // Again: nothing to do, and not one call that changes anything.
    env.proxy.reset();
    let started = std::time::Instant::now();
    let second = env.json(&["apply", "--env", "dev", "--json"]);
    let took = started.elapsed();
    assert!(
        actions(&second).iter().all(|(_, a)| a == "keep"),
        "{second}"
    );
    let calls = env.proxy.calls();
    let mutating: Vec<_> = calls.iter().filter(|c| is_mutating(&c.operation)).collect();
    assert!(
        mutating.is_empty(),
        "second apply changed things: {mutating:?}"
    );
    assert!(!calls.is_empty());
    eprintln!("second apply: {} read-only calls in {took:?}", calls.len());

    // The password is in no output: not the first apply's, the second's, a plan's or a destroy's.
    let mut printed =
        serde_json::to_string(&first).unwrap() + &serde_json::to_string(&second).unwrap();
    for args in [
        &["plan", "--env", "dev"][..],
        &["apply", "--env", "dev"],
        &["destroy", "--env", "dev"],
    ] {
        let out = env.run(args);
        printed += &String::from_utf8_lossy(&out.stdout);
        printed += &String::from_utf8_lossy(&out.stderr);
    }
    assert!(printed.contains("booking-dev"), "the outputs were captured");
    assert!(
        !printed.contains(&password),
        "the database password was printed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_after_a_manual_deletion_shows_exactly_that_one_and_apply_puts_it_back() {
    let env = Env::start(|t| t);
    env.json(&["apply", "--env", "dev", "--json"]);
    let sdk = env.sdk().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.delete_log_group()
        .log_group_name("/ecs/booking-dev/worker")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name("/ecs/booking-dev/web")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();

    env.proxy.reset();
    let plan = env.json(&["plan", "--env", "dev", "--json"]);
    assert!(
        env.proxy.calls().iter().all(|c| !is_mutating(&c.operation)),
        "plan made a change"
    );
    let changes: Vec<_> = actions(&plan)
        .into_iter()
        .filter(|(_, a)| a != "keep")
        .collect();
    assert_eq!(
        changes,
        [
            ("log-group/web".to_owned(), "update".to_owned()),
            ("log-group/worker".to_owned(), "create".to_owned())
        ]
    );
    env.json(&["apply", "--env", "dev", "--json"]);
    let again = env.json(&["plan", "--env", "dev", "--json"]);
    assert!(actions(&again).iter().all(|(_, a)| a == "keep"), "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_needs_yes_then_leaves_nothing_tagged_and_plan_shows_everything_again() {
    let env = Env::start(|t| t);
    env.json(&["apply", "--env", "dev", "--json"]);
    env.proxy.reset();
    let out = env.run(&["destroy", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("add --yes"));
    assert!(
        env.proxy.calls().iter().all(|c| !is_mutating(&c.operation)),
        "destroy without --yes changed things"
    );

    let report = env.json(&[
        "destroy",
        "--env",
        "dev",
        "--yes",
        "--skip-final-snapshot",
        "--json",
    ]);
    assert!(report["errors"].as_array().unwrap().is_empty(), "{report}");
    let sdk = env.sdk().await;
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let f = || Some(vec![tag_filter("harbormaster:project", "booking")]);
    assert!(ec2
        .describe_vpcs()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .vpcs()
        .is_empty());
    assert!(ec2
        .describe_subnets()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .subnets()
        .is_empty());
    assert!(ec2
        .describe_security_groups()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .security_groups()
        .is_empty());
    assert!(ec2
        .describe_route_tables()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .route_tables()
        .is_empty());
    assert!(ec2
        .describe_internet_gateways()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .internet_gateways()
        .is_empty());
    assert!(ec2
        .describe_addresses()
        .set_filters(f())
        .send()
        .await
        .unwrap()
        .addresses()
        .is_empty());
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let left = ssm
        .get_parameters_by_path()
        .path("/booking/dev")
        .recursive(true)
        .send()
        .await
        .unwrap();
    assert!(left.parameters().is_empty(), "{:?}", left.parameters());
    let rds = aws_sdk_rds::Client::new(&sdk);
    assert!(rds
        .describe_db_instances()
        .db_instance_identifier("booking-dev")
        .send()
        .await
        .is_err());
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    assert!(elb
        .describe_load_balancers()
        .names("booking-dev")
        .send()
        .await
        .is_err());
    let iam = aws_sdk_iam::Client::new(&sdk);
    assert!(iam
        .get_role()
        .role_name("booking-dev-execution")
        .send()
        .await
        .is_err());

    let plan = env.json(&["plan", "--env", "dev", "--json"]);
    assert!(actions(&plan).iter().all(|(_, a)| a == "create"), "{plan}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_with_our_name_but_not_our_tags_is_reported_not_overwritten() {
    let env = Env::start(|t| t);
    let sdk = env.sdk().await;
    let logs = aws_sdk_cloudwatchlogs::Client::new(&sdk);
    logs.create_log_group()
        .log_group_name("/ecs/booking-dev/web")
        .send()
        .await
        .unwrap();
    logs.put_retention_policy()
        .log_group_name("/ecs/booking-dev/web")
        .retention_in_days(7)
        .send()
        .await
        .unwrap();
    let out = env.run(&["apply", "--env", "dev", "--json"]);
    assert_eq!(out.status.code(), Some(1), "a conflict is not a success");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == "log-group/web")
        .unwrap();
    assert_eq!(web["action"], "conflict");
    assert!(web["reason"]
        .as_str()
        .unwrap()
        .contains("without this environment's tags"));
    let g = logs
        .describe_log_groups()
        .log_group_name_prefix("/ecs/booking-dev/web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        g.log_groups()[0].retention_in_days(),
        Some(7),
        "left as it was"
    );
}

#[test]
fn bad_config_names_the_field_and_makes_no_call() {
    let env = Env::start(|t| {
        t.replace("nat = \"single\"", "nat = \"some\"")
            .replace("engine_version = \"16.9\"", "engine_version = \"11.22\"")
            .replace("vpc_cidr = \"10.20.0.0/16\"", "vpc_cidr = \"10.20.0.0/16\"\npublic_subnets = [\"10.30.0.0/24\", \"10.20.1.0/24\"]")
    });
    let out = env.run(&["apply", "--env", "dev"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("harbormaster.toml: `environments.dev.bootstrap.nat`"),
        "{err}"
    );
    assert!(
        err.contains("10.30.0.0/24 is outside the VPC 10.20.0.0/16"),
        "{err}"
    );
    assert!(err.contains("`environments.dev.bootstrap.database.engine_version`: PostgreSQL `11.22` is not allowed"), "{err}");
    assert!(env.proxy.calls().is_empty(), "{:?}", env.proxy.calls());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destroy_keeps_a_final_snapshot_and_the_password_it_needs() {
    let env = Env::start(|t| t);
    env.json(&["apply", "--env", "dev", "--json"]);
    env.json(&["destroy", "--env", "dev", "--yes", "--json"]);
    let sdk = env.sdk().await;
    let rds = aws_sdk_rds::Client::new(&sdk);
    let snaps = rds
        .describe_db_snapshots()
        .db_instance_identifier("booking-dev")
        .send()
        .await
        .unwrap();
    assert!(
        snaps.db_snapshots().iter().any(|s| s
            .db_snapshot_identifier()
            .unwrap_or("")
            .starts_with("booking-dev-final-")),
        "{:?}",
        snaps.db_snapshots()
    );
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    assert!(ssm
        .get_parameter()
        .name("/booking/dev/database/password")
        .send()
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protected_database_stops_destroy_before_anything_is_deleted() {
    let env =
        Env::start(|t| t.replace("deletion_protection = false", "deletion_protection = true"));
    env.json(&["apply", "--env", "dev", "--json"]);
    env.proxy.reset();
    let out = env.run(&["destroy", "--env", "dev", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("has deletion protection"), "{text}");
    let mutating: Vec<_> = env
        .proxy
        .calls()
        .into_iter()
        .filter(|c| is_mutating(&c.operation))
        .collect();
    assert!(mutating.is_empty(), "{mutating:?}");
}

/// aws-sdk-ec2 alone takes minutes and gigabytes to build: only bootstrap may pay for it, so the
/// agent and its functions stay cheap to build and small to ship.
#[test]
fn the_heavy_sdk_crates_are_dependencies_of_bootstrap_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut manifests = Vec::new();
    for dir in ["crates", "functions"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            manifests.push(entry.unwrap().path().join("Cargo.toml"));
        }
    }
    manifests
        .extend(["tests", "xtask", "bench/hello-lambda"].map(|d| root.join(d).join("Cargo.toml")));
    for m in manifests.iter().filter(|m| m.exists()) {
        let text = std::fs::read_to_string(m).unwrap();
        for heavy in [
            "aws-sdk-ec2",
            "aws-sdk-rds",
            "aws-sdk-iam",
            "aws-sdk-elasticloadbalancingv2",
        ] {
            assert!(!text.contains(heavy), "{} depends on {heavy}", m.display());
        }
    }
    assert!(manifests.len() >= 8, "{manifests:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_adds_the_https_listener_its_rule_and_port_443() {
    let cert = "arn:aws:acm:us-east-1:000000000000:certificate/0b7d-demo";
    let env = Env::start(|t| {
        t.replace(
            "nat = \"single\"",
            &format!("nat = \"none\"\ncertificate_arn = \"{cert}\""),
        )
    });
    let report = env.json(&["apply", "--env", "dev", "--json"]);
    assert!(
        report["outputs"]["/booking/dev/outputs/listeners/https"]
            .as_str()
            .is_some_and(|a| !a.is_empty()),
        "{report}"
    );
    let sdk = env.sdk().await;
    let elb = aws_sdk_elasticloadbalancingv2::Client::new(&sdk);
    let lb = elb
        .describe_load_balancers()
        .names("booking-dev")
        .send()
        .await
        .unwrap();
    let listeners = elb
        .describe_listeners()
        .load_balancer_arn(lb.load_balancers()[0].load_balancer_arn().unwrap())
        .send()
        .await
        .unwrap();
    let https = listeners
        .listeners()
        .iter()
        .find(|l| l.port() == Some(443))
        .expect("an HTTPS listener");
    assert_eq!(https.certificates()[0].certificate_arn(), Some(cert));
    let rules = elb
        .describe_rules()
        .listener_arn(https.listener_arn().unwrap())
        .send()
        .await
        .unwrap();
    assert!(
        rules.rules().iter().any(|r| r.is_default() != Some(true)),
        "a production rule on HTTPS too"
    );
    let ec2 = aws_sdk_ec2::Client::new(&sdk);
    let alb = ec2
        .describe_security_groups()
        .filters(tag_filter("harbormaster:role", "security-group/alb"))
        .send()
        .await
        .unwrap();
    let mut ports: Vec<_> = alb.security_groups()[0]
        .ip_permissions()
        .iter()
        .filter_map(|p| p.from_port())
        .collect();
    ports.sort();
    assert_eq!(ports, [80, 443]);
    // nat = "none": no gateway, no Elastic IP, private subnets without a default route.
    assert!(ec2
        .describe_nat_gateways()
        .filter(tag_filter("harbormaster:project", "booking"))
        .send()
        .await
        .unwrap()
        .nat_gateways()
        .is_empty());
    let second = env.json(&["apply", "--env", "dev", "--json"]);
    assert!(
        actions(&second).iter().all(|(_, a)| a == "keep"),
        "{second}"
    );
}
