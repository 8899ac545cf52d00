//! `deploy/template.yaml` against the code: every function the agent has is in the template,
//! built from its own binary, and its role's `Code` statements grant exactly the IAM actions
//! that function's code calls (`handler::Function::actions`): no more, no less.

use std::collections::BTreeSet;

use harbormaster_aws::handler::{Function, FUNCTIONS};
use harbormaster_e2e::workspace_root;
use yaml_rust2::{Yaml, YamlLoader};

fn template() -> Yaml {
    let text = std::fs::read_to_string(workspace_root().join("deploy/template.yaml")).unwrap();
    YamlLoader::load_from_str(&text).unwrap().remove(0)
}

fn logical(name: &str) -> String {
    name.split('-')
        .map(|p| {
            let mut c = p.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn strings(y: &Yaml) -> Vec<String> {
    match y {
        Yaml::String(s) => vec![s.clone()],
        Yaml::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

/// The statements of the function's role that grant what its code calls (Sid `Code…`).
fn code_statements<'t>(t: &'t Yaml, f: &Function) -> Vec<&'t Yaml> {
    let role = &t["Resources"][format!("{}Role", logical(f.name)).as_str()];
    let policies = role["Properties"]["Policies"]
        .as_vec()
        .into_iter()
        .flatten();
    policies
        .flat_map(|p| {
            p["PolicyDocument"]["Statement"]
                .as_vec()
                .into_iter()
                .flatten()
        })
        .filter(|st| st["Sid"].as_str().is_some_and(|s| s.starts_with("Code")))
        .collect()
}

/// The actions the function's role grants for its code.
fn granted(t: &Yaml, f: &Function) -> BTreeSet<String> {
    code_statements(t, f)
        .into_iter()
        .flat_map(|st| strings(&st["Action"]))
        .collect()
}

/// What is wrong between the template and the code, in words.
fn problems(t: &Yaml) -> Vec<String> {
    let mut out = Vec::new();
    for f in FUNCTIONS {
        let res = &t["Resources"][format!("{}Function", logical(f.name)).as_str()];
        if res["Metadata"]["BuildProperties"]["Binary"].as_str() != Some(f.name) {
            out.push(format!("{}: no function built from that binary", f.name));
            continue;
        }
        let granted = granted(t, f);
        let calls: BTreeSet<String> = f.actions().into_iter().map(str::to_owned).collect();
        for a in calls.difference(&granted) {
            out.push(format!("{} calls {a}, which its policy lacks", f.name));
        }
        for a in granted.difference(&calls) {
            out.push(format!(
                "{}'s policy grants {a}, which its code never calls",
                f.name
            ));
        }
    }
    out
}

#[test]
fn each_function_is_granted_exactly_what_its_code_calls() {
    let t = template();
    assert_eq!(problems(&t), Vec::<String>::new());
    for f in FUNCTIONS {
        assert!(
            workspace_root()
                .join("functions")
                .join(f.name)
                .join("Cargo.toml")
                .exists(),
            "{} has no crate in functions/",
            f.name
        );
    }
}

#[test]
fn a_function_calling_an_action_its_policy_lacks_is_caught() {
    let mut t = template();
    // Take ecs:UpdateService out of ecr-push's role, as a careless edit would.
    if let Yaml::Hash(resources) = &mut t["Resources"] {
        let role = resources
            .get_mut(&Yaml::String("EcrPushRole".into()))
            .expect("EcrPushRole");
        if let Yaml::Hash(role) = role {
            let props = role.get_mut(&Yaml::String("Properties".into())).unwrap();
            let policies = &mut props["Policies"];
            if let Yaml::Array(policies) = policies {
                let statements = &mut policies[0]["PolicyDocument"]["Statement"];
                if let Yaml::Array(statements) = statements {
                    for st in statements.iter_mut() {
                        if let Yaml::Hash(h) = st {
                            if let Some(Yaml::Array(actions)) =
                                h.get_mut(&Yaml::String("Action".into()))
                            {
                                actions.retain(|a| a.as_str() != Some("ecs:UpdateService"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert_eq!(
        problems(&t),
        ["ecr-push calls ecs:UpdateService, which its policy lacks"]
    );
}

/// A proxy's record of a call as the IAM action it needs.
fn iam_action(operation: &str) -> String {
    let (service, op) = operation.split_once(':').unwrap_or(("?", operation));
    let prefix = match service {
        "monitoring" => "cloudwatch",
        s => s,
    };
    if let Some(rest) = op.split("/operation/").nth(1) {
        return format!("{prefix}:{rest}");
    }
    match op.split_once(' ') {
        // S3's REST calls: on an object, or on the bucket.
        Some((method, path)) => {
            let object = path.trim_start_matches('/').contains('/');
            let action = match (method, object) {
                ("GET" | "HEAD", true) => "GetObject",
                ("PUT", true) => "PutObject",
                ("DELETE", true) => "DeleteObject",
                (_, false) => "ListBucket",
                _ => "?",
            };
            format!("{prefix}:{action}")
        }
        None => format!("{prefix}:{op}"),
    }
}

/// Runs each function's dispatch through a counting proxy in front of the emulator: every call
/// it makes must be one its list (and so its role) has. This ties the lists to the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_each_function_calls_is_on_its_list() {
    use harbormaster_aws::handler::{self, ALARM, ECR_PUSH, ECS_HOOK, TICK};
    use harbormaster_core::RunOptions;
    use harbormaster_e2e::{fixture, sdk_at, World};
    use harbormaster_testkit::proxy::CountingProxy;

    let w = World::start().await.unwrap();
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[services.web.environments.dev]\n",
        "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\nguard_alarms = [\"booking-dev-db-cpu\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let port: u16 = w
        .emulator
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let proxy = CountingProxy::start(port).unwrap();
    // Application Auto Scaling goes to the world's stand-in, counted by a proxy of its own.
    let recorder_port: u16 = w
        .autoscaling
        .endpoint
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let scaling = CountingProxy::start(recorder_port).unwrap();
    let agent = harbormaster_aws::Agent::of(
        w.ports_via(&sdk_at(&proxy.endpoint).await, &scaling.endpoint),
        harbormaster_aws::Source::Folder(w.config_dir.clone()),
    );
    let check = |f: &Function, what: &str| {
        let allowed: BTreeSet<String> = f.actions().into_iter().map(str::to_owned).collect();
        let seen: BTreeSet<String> = (proxy.calls().iter())
            .chain(scaling.calls().iter())
            .map(|c| iam_action(&c.operation))
            .collect();
        assert!(!seen.is_empty(), "{what}: no call seen");
        let extra: Vec<_> = seen.difference(&allowed).collect();
        assert!(
            extra.is_empty(),
            "{what}: {} called {extra:?}, not on its list",
            f.name
        );
        proxy.reset();
        scaling.reset();
    };
    for (n, tag) in ["main-1000001", "main-1000002"].iter().enumerate() {
        let digest = w.push_image(tag).await.unwrap();
        let event = w.push_event(&format!("p{n}"), tag, &digest);
        handler::dispatch(&agent, ECR_PUSH, &event, RunOptions::default())
            .await
            .unwrap();
        check(&ECR_PUSH, "a push");
        handler::dispatch(
            &agent,
            TICK,
            &fixture("scheduled.json"),
            RunOptions::default(),
        )
        .await
        .unwrap();
        check(&TICK, "a tick");
    }
    let alarm =
        harbormaster_e2e::alarm_event("template-alarm", "booking-dev-web-5xx", chrono::Utc::now());
    handler::dispatch(&agent, ALARM, &alarm, RunOptions::default())
        .await
        .unwrap();
    check(&ALARM, "an alarm");
    let mut hook = fixture("ecs-hook-post-test-traffic-shift.json");
    hook["hookDetails"] = serde_json::json!({});
    handler::dispatch(&agent, ECS_HOOK, &hook, RunOptions::default())
        .await
        .unwrap();
    check(&ECS_HOOK, "a hook call");
}

/// The resource types the Service Authorization Reference ("Actions, resources, and condition
/// keys for Amazon Elastic Container Service") lists as required for an action: a statement
/// granting the action must name an ARN of each, or `*` with the condition key it requires.
const REQUIRED: &[(&str, &[&str], Option<&str>)] = &[
    (
        "ecs:StopServiceDeployment",
        &[":service/", ":service-deployment/"],
        None,
    ),
    (
        "ecs:DescribeServiceRevisions",
        &[":service/", ":service-revision/"],
        None,
    ),
    ("ecs:ListTasks", &[], Some("ecs:cluster")),
];

/// Every statement of the function's role that grants `action`, as (resources, condition keys).
fn statements_granting(t: &Yaml, f: &Function, action: &str) -> Vec<(Vec<String>, Vec<String>)> {
    code_statements(t, f)
        .into_iter()
        .filter(|st| strings(&st["Action"]).iter().any(|a| a == action))
        .map(|st| {
            // `!Sub` values load as plain strings here.
            let resources = strings(&st["Resource"]);
            let keys = st["Condition"]
                .as_hash()
                .into_iter()
                .flat_map(|ops| ops.values())
                .filter_map(Yaml::as_hash)
                .flat_map(|kv| kv.keys().filter_map(Yaml::as_str).map(str::to_owned))
                .collect();
            (resources, keys)
        })
        .collect()
}

#[test]
fn each_action_is_granted_on_every_resource_type_the_reference_requires() {
    let t = template();
    let mut problems = Vec::new();
    for f in FUNCTIONS {
        for (action, types, condition) in REQUIRED {
            if !f.actions().contains(action) {
                continue;
            }
            let granted = statements_granting(&t, f, action);
            let ok = granted.iter().any(|(resources, keys)| match condition {
                Some(key) => resources.iter().any(|r| r == "*") && keys.iter().any(|k| k == key),
                None => types
                    .iter()
                    .all(|ty| resources.iter().any(|r| r.contains(ty))),
            });
            if !ok {
                problems.push(format!(
                    "{}: {action} lacks a resource type it requires",
                    f.name
                ));
            }
        }
    }
    assert_eq!(problems, Vec::<String>::new());
}

/// Leases are validated against the functions' timeout (`config::FUNCTION_TIMEOUT_SECONDS`):
/// the template's must be that one.
#[test]
fn the_function_timeout_is_the_one_leases_are_checked_against() {
    let t = template();
    let timeout = t["Globals"]["Function"]["Timeout"].as_i64();
    assert_eq!(
        timeout,
        Some(i64::from(
            harbormaster_core::config::FUNCTION_TIMEOUT_SECONDS
        ))
    );
}

/// Issue 33, item 1: Application Auto Scaling creates and deletes a target tracking policy's
/// alarms, and updates the service, with the *caller's* permissions (Application Auto Scaling
/// User Guide, "Permissions required for API actions on target services and CloudWatch"; ECS
/// Developer Guide, "IAM permissions required for Amazon ECS service auto scaling"). Every
/// function that can set target tracking holds them (`deploy/check_iam.py` checks the same of
/// the template, with a self-test that drops PutMetricAlarm).
#[test]
fn item_1_every_function_that_sets_target_tracking_holds_what_autoscaling_checks_for_it() {
    let indirect: &[(&str, &[&str])] = &[
        (
            "application-autoscaling:RegisterScalableTarget",
            &["ecs:DescribeServices", "ecs:UpdateService"],
        ),
        (
            "application-autoscaling:PutScalingPolicy",
            &["cloudwatch:DescribeAlarms", "cloudwatch:PutMetricAlarm"],
        ),
        (
            "application-autoscaling:DeleteScalingPolicy",
            &["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
        ),
        (
            "application-autoscaling:DeregisterScalableTarget",
            &["cloudwatch:DescribeAlarms", "cloudwatch:DeleteAlarms"],
        ),
    ];
    for f in FUNCTIONS {
        let actions = f.actions();
        for (action, needs) in indirect {
            if !actions.contains(action) {
                continue;
            }
            for n in *needs {
                assert!(actions.contains(n), "{} calls {action} without {n}", f.name);
            }
        }
    }
}

/// Issue 33, item 11: an ECS "Service Action" steady-state event runs a tick for its service
/// (`dispatch/events.rs`), which follows an overdue one-off task and stops it: `ecs-event` must
/// hold DescribeTasks and StopTask as the tick does. Granted since issue 30 (every function that
/// can roll back holds StopTask); pinned here so the path cannot lose it.
#[test]
fn item_11_the_functions_that_run_a_tick_can_follow_and_stop_a_one_off_task() {
    use harbormaster_aws::handler::{ECS_EVENT, TICK};
    for f in [TICK, ECS_EVENT] {
        for needed in ["ecs:DescribeTasks", "ecs:StopTask", "ecs:RunTask"] {
            assert!(f.actions().contains(&needed), "{} lacks {needed}", f.name);
        }
    }
}
