//! Blue/green, canary and linear end to end against the emulator. ministack stores the native
//! strategy settings and completes deployments at once; it does not move traffic or call hooks,
//! so the tests play ECS: they invoke the hook with the payload AWS documents (metric data put
//! into the emulator's CloudWatch decides the answer) and send ECS's deployment events.

use harbormaster_e2e::{fixture, TempDir, World, ACCOUNT, CLUSTER};
use serde_json::{json, Value};

const HOOK_FUNCTION: &str = "arn:aws:lambda:us-east-1:000000000000:function:harbormaster-ecs-hook";
const HOOK_ROLE: &str = "arn:aws:iam::000000000000:role/harbormaster-ecs-hook-invoke";

/// The example config with web on canary, gated by an error-rate check after production shift,
/// and the outputs the bootstrap and the agent's install would have written.
async fn canary_world() -> World {
    let w = World::start().await.unwrap();
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .replace(
            "health_check_grace_period_seconds = 60\n",
            "health_check_grace_period_seconds = 60\nstrategy = \"canary\"\nbake_time_minutes = 10\ncanary = { percent = 10, interval_minutes = 5 }\n",
        )
        .replace(
            "[services.web.environments.dev]\n",
            r#"[services.web.checks.errors]
stages = ["post_production_traffic_shift"]
threshold = 5
window_minutes = 5
[[services.web.checks.errors.queries]]
id = "errors"
namespace = "Booking/Web"
metric = "ErrorRate"
dimensions = { Environment = "${env}" }
stat = "Maximum"

[services.web.environments.dev]
"#,
        );
    std::fs::write(&path, text).unwrap();
    for (name, value) in [
        ("/booking/dev/outputs/target-groups/web/blue", "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/booking-dev-web-blue/1"),
        ("/booking/dev/outputs/target-groups/web/green", "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/booking-dev-web-green/2"),
        ("/booking/dev/outputs/production-rules/web", "arn:aws:elasticloadbalancing:us-east-1:000000000000:listener-rule/app/booking-dev/3/4/5"),
        ("/booking/dev/outputs/roles/ecs-infrastructure", "arn:aws:iam::000000000000:role/booking-dev-ecs-infrastructure"),
        ("/booking/agent/hook-function-arn", HOOK_FUNCTION),
        ("/booking/agent/hook-role-arn", HOOK_ROLE),
    ] {
        w.clients
            .ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .overwrite(true)
            .send()
            .await
            .unwrap();
    }
    w
}

async fn deploy(w: &World, tag: &str) -> Value {
    let digest = w.push_image(tag).await.unwrap();
    let event = w.push_event(&format!("push-{tag}"), tag, &digest);
    w.push(&event).await;
    w.state_document("dev", "web").await.unwrap().unwrap()
}

async fn error_rate(w: &World, value: f64) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    cw.put_metric_data()
        .namespace("Booking/Web")
        .metric_data(
            MetricDatum::builder()
                .metric_name("ErrorRate")
                .dimensions(
                    Dimension::builder()
                        .name("Environment")
                        .value("dev")
                        .build(),
                )
                .value(value)
                .timestamp(aws_smithy_types_now())
                .build(),
        )
        .send()
        .await
        .unwrap();
}

fn aws_smithy_types_now() -> aws_sdk_cloudwatch::primitives::DateTime {
    aws_sdk_cloudwatch::primitives::DateTime::from_secs(chrono::Utc::now().timestamp() - 30)
}

/// AWS's documented hook payload, for this world's service and the deployment in flight.
fn hook_file(dir: &TempDir, state: &Value, stage: &str) -> String {
    let mut e = fixture("ecs-hook-post-test-traffic-shift.json");
    e["lifecycleStage"] = json!(stage);
    e["hookDetails"]["harbormaster:deployment"] = state["in_flight"]["id"].clone();
    for k in ["serviceArn", "targetServiceRevisionArn"] {
        let v = e["executionDetails"][k]
            .as_str()
            .unwrap()
            .replace("000000000000", ACCOUNT);
        e["executionDetails"][k] = json!(v);
    }
    let path = dir.0.join(format!("hook-{stage}.json"));
    std::fs::write(&path, e.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_service_carries_the_strategy_bake_time_hook_and_load_balancer() {
    let w = canary_world().await;
    let state = deploy(&w, "main-c0ffee1").await;
    let deployment = state["in_flight"]["id"].as_str().unwrap().to_owned();
    let svc = w
        .clients
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("web")
        .send()
        .await
        .unwrap()
        .services
        .unwrap()
        .remove(0);
    let dc = svc
        .deployment_configuration
        .expect("deployment configuration");
    assert_eq!(dc.strategy.as_ref().map(|s| s.as_str()), Some("CANARY"));
    assert_eq!(dc.bake_time_in_minutes, Some(10));
    let canary = dc.canary_configuration.expect("canary configuration");
    assert_eq!(canary.canary_percent, Some(10.0));
    assert_eq!(canary.canary_bake_time_in_minutes, Some(5));
    let hook = &dc.lifecycle_hooks.expect("lifecycle hooks")[0];
    assert_eq!(hook.hook_target_arn.as_deref(), Some(HOOK_FUNCTION));
    assert_eq!(hook.role_arn.as_deref(), Some(HOOK_ROLE));
    let stages: Vec<&str> = hook
        .lifecycle_stages
        .as_deref()
        .unwrap()
        .iter()
        .map(|s| s.as_str())
        .collect();
    assert_eq!(
        stages,
        ["PRODUCTION_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"]
    );
    let details = format!("{:?}", hook.hook_details);
    assert!(details.contains(&deployment), "{details}");
    let lb = &svc.load_balancers.expect("load balancers")[0];
    assert!(lb
        .target_group_arn
        .as_deref()
        .unwrap()
        .ends_with("web-blue/1"));
    assert_eq!(lb.container_name.as_deref(), Some("web"));
    assert_eq!(lb.container_port, Some(8000));
    let adv = lb
        .advanced_configuration
        .as_ref()
        .expect("advanced configuration");
    assert!(adv
        .alternate_target_group_arn
        .as_deref()
        .unwrap()
        .ends_with("web-green/2"));
    assert!(adv
        .production_listener_rule
        .as_deref()
        .unwrap()
        .ends_with("/3/4/5"));
    assert!(adv
        .role_arn
        .as_deref()
        .unwrap()
        .ends_with("ecs-infrastructure"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hook_answers_from_the_metric_in_cloudwatch() {
    let w = canary_world().await;
    let state = deploy(&w, "main-c0ffee2").await;
    let tmp = TempDir::new("hooks").unwrap();

    // Production shift: no check there, nothing newer pending: go on.
    let (code, r) = w.invoke(&hook_file(&tmp, &state, "PRODUCTION_TRAFFIC_SHIFT"));
    assert_eq!(
        (code, r["hook"]["hookStatus"].as_str()),
        (0, Some("SUCCEEDED")),
        "{r}"
    );

    let file = hook_file(&tmp, &state, "POST_PRODUCTION_TRAFFIC_SHIFT");
    error_rate(&w, 1.5).await;
    let (code, r) = w.invoke(&file);
    assert_eq!(
        (code, r["hook"]["hookStatus"].as_str()),
        (0, Some("SUCCEEDED")),
        "{r}"
    );
    // ECS gets its own keys back, so the next call still names the deployment.
    assert_eq!(
        r["hook"]["hookDetails"]["harbormaster:deployment"],
        state["in_flight"]["id"]
    );

    error_rate(&w, 42.0).await;
    let (code, r) = w.invoke(&file);
    assert_eq!(r["hook"]["hookStatus"], "FAILED", "{r}");
    assert_eq!(code, 1, "a failed gate is a failure for the CLI");
    let reason = r["hook"]["hookDetails"]["harbormaster:reason"]
        .as_str()
        .unwrap();
    assert!(
        reason.contains("measured 42") && reason.contains("at most 5"),
        "{reason}"
    );

    // `status` shows the gate and its measurement.
    let out = w.cli_ok(&["status", "--env", "dev", "--service", "web"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("metric:errors") && text.contains("measured 42"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ecs_rollback_is_explained_keeps_last_known_good_and_fails_the_cli() {
    let w = canary_world().await;
    deploy(&w, "main-0000aa1").await;
    w.tick().await;
    let first = w.state_document("dev", "web").await.unwrap().unwrap();
    let good = first["last_known_good"].clone();
    assert_eq!(good["image"]["tag"], "main-0000aa1", "{first}");
    w.inbox().await.unwrap();

    let state = deploy(&w, "main-0000bb2").await;
    let tmp = TempDir::new("rollback").unwrap();
    error_rate(&w, 42.0).await;
    let (_, r) = w.invoke(&hook_file(&tmp, &state, "POST_PRODUCTION_TRAFFIC_SHIFT"));
    assert_eq!(r["hook"]["hookStatus"], "FAILED", "{r}");

    // ECS rolls the service back to the revision it ran before (the emulator does not, so the
    // test does what ECS would), then reports the deployment failed.
    w.clients
        .ecs
        .update_service()
        .cluster(CLUSTER)
        .service("web")
        .task_definition(good["task_definition_arn"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    let mut event = fixture("ecs-deployment-failed.json");
    event["detail"]["deploymentId"] = state["in_flight"]["ecs_deployment_id"].clone();
    event["detail"]["updatedAt"] = json!(chrono::Utc::now().to_rfc3339());
    event["detail"]["reason"] =
        json!("ECS deployment failed: lifecycle hook failed at POST_PRODUCTION_TRAFFIC_SHIFT");
    let file = tmp.0.join("failed.json");
    std::fs::write(&file, event.to_string()).unwrap();
    let file = file.display().to_string();
    let (code, r) = w.invoke(&file);
    assert_eq!(code, 1, "a rolled-back deployment fails the CLI: {r}");
    assert_eq!(r["targets"][0]["outcome"], "finished", "{r}");
    assert_eq!(r["targets"][0]["verdict"], "rolled_back", "{r}");

    let after = w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(after["last_known_good"], good, "last known good unchanged");
    assert_eq!(after["history"][0]["verdict"], "rolled_back");
    let inbox = w.inbox().await.unwrap();
    let (subject, message, _) = inbox
        .iter()
        .find(|(_, m, _)| m["kind"] == "rolled_back")
        .unwrap_or_else(|| panic!("no rollback notification in {inbox:?}"));
    assert!(subject.contains("ROLLED BACK"), "{subject}");
    let why = message["reason"].as_str().unwrap();
    for part in [
        "metric gate failed at POST_PRODUCTION_TRAFFIC_SHIFT",
        "measured 42",
        "lifecycle hook failed",
        "service events:",
        "the service is back on",
    ] {
        assert!(why.contains(part), "`{part}` missing from: {why}");
    }

    // Redelivered: nothing changes, nothing is sent again.
    let (code, r) = w.invoke(&file);
    assert_eq!(
        (code, r["targets"][0]["outcome"].as_str()),
        (0, Some("duplicate")),
        "{r}"
    );
    assert!(w.inbox().await.unwrap().is_empty());

    let status = w.cli(&["status", "--env", "dev", "--service", "web"]);
    assert_eq!(
        status.status.code(),
        Some(1),
        "the latest release was rolled back"
    );
}
