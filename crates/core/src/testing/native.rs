//! The world of the native-strategy scenarios (blue/green, canary, linear): `web` behind the
//! load balancer with the bootstrap's outputs in SSM, ECS played by the test — the hook called
//! with the payload AWS documents, "ECS Deployment State Change" events sent.

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::scenario::{self, journal_words, send};
use super::{bundle_of, NATIVE_OUTPUTS};
use crate::bundle::Bundle;
use crate::dispatch::DispatchReport;
use crate::machine::HookStatus;
use crate::memory::{MemoryPorts, RolloutMode};
use crate::notify::NoticeKind;

/// An approval gate after the test traffic shift, 30 minutes to decide.
pub const APPROVAL: &str =
    r#"approval = { stage = "post_test_traffic_shift", timeout_minutes = 30 }"#;

pub const METRIC: &str = "AWS/ApplicationELB/HTTPCode_Target_5XX_Count";

pub fn config(strategy: &str, extra: &str) -> String {
    let shift = match strategy {
        "canary" => "canary = { percent = 10, interval_minutes = 5 }",
        "linear" => "linear = { percent = 25, interval_minutes = 2 }",
        _ => "",
    };
    format!(
        concat!(
            crate::test_config_head!(),
            r#"
[services.web]
repository = "booking/web"
task_definition = "taskdefs/web.json"
strategy = "{strategy}"
bake_time_minutes = 10
{shift}

[services.web.load_balancer]
container = "web"
port = 8000
test_listener_rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/booking-dev/1/2/test"

[services.web.checks.errors]
stages = ["post_test_traffic_shift", "post_production_traffic_shift"]
threshold = 5
window_minutes = 5
max_inconclusive = 2

[[services.web.checks.errors.queries]]
id = "errors"
namespace = "AWS/ApplicationELB"
metric = "HTTPCode_Target_5XX_Count"
dimensions = {{ TargetGroup = "targetgroup/booking-${{env}}-web-green/1" }}
stat = "Sum"

[services.web.environments.dev]
follow = {{ regex = "^main-" }}
{extra}
"#
        ),
        strategy = strategy,
        shift = shift,
        extra = extra,
    )
}

pub fn world(strategy: &str, extra: &str) -> (MemoryPorts, Bundle) {
    let ports = scenario::ports();
    ports.with(|w| {
        w.rollout = RolloutMode::Manual;
        for (k, v) in NATIVE_OUTPUTS {
            w.outputs.insert(k.into(), v.into());
        }
    });
    (ports, bundle_of(&config(strategy, extra)))
}

/// The last UpdateService: what ECS was told, and the deployment it named in the hook details.
pub fn last_update(ports: &MemoryPorts) -> (String, String) {
    ports.with(|w| {
        let (_, td, d) = w.updates.last().expect("an UpdateService").clone();
        (td, d.0)
    })
}

/// The payload ECS sends the hook (AWS's documented shape), with the details the agent set.
pub fn hook(ports: &MemoryPorts, b: &Bundle, stage: &str) -> (HookStatus, String) {
    hook_with(ports, b, stage, json!({}))
}

/// The call ECS makes while it rolls a deployment back (the ECS guide, "Lifecycle hooks for
/// Amazon ECS service deployments": during a rollback the TEST_TRAFFIC_SHIFT and
/// PRODUCTION_TRAFFIC_SHIFT hooks run again): the target revision is still green, and
/// production traffic is back on blue.
pub fn rollback_hook(ports: &MemoryPorts, b: &Bundle, stage: &str) -> (HookStatus, String) {
    let weights = json!({
        "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1": 0,
        "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/0": 100
    });
    hook_with(ports, b, stage, weights)
}

/// The payload ECS sends the hook (AWS's documented shape), with the details the agent set.
pub fn hook_with(
    ports: &MemoryPorts,
    b: &Bundle,
    stage: &str,
    production_weights: Value,
) -> (HookStatus, String) {
    let (_, deployment) = last_update(ports);
    let payload = json!({
        "executionId": format!("exec-{stage}"),
        "lifecycleStage": stage,
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/booking-dev/web/abc",
        "executionDetails": {
            "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web",
            "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1",
            "testTrafficWeights": {},
            "productionTrafficWeights": production_weights
        },
        "hookDetails": {
            "harbormaster:environment": "dev",
            "harbormaster:service": "web",
            "harbormaster:deployment": deployment,
        }
    });
    let r = send(ports, b, &payload);
    let h = r.hook.expect("a hook answer");
    (h.hook_status, h.reason().to_owned())
}

pub fn ecs_event(id: &str, name: &str, ecs_id: &str, at: DateTime<Utc>, reason: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": at.to_rfc3339(),
        "region": "us-east-1",
        "resources": ["arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web"],
        "detail": {
            "eventType": if name.ends_with("FAILED") { "ERROR" } else { "INFO" },
            "eventName": name, "deploymentId": ecs_id,
            "updatedAt": at.to_rfc3339(), "reason": reason
        }
    })
}

pub fn measure(ports: &MemoryPorts, value: f64) {
    ports.with(|w| {
        let at = w.now - Duration::minutes(1);
        w.datapoints
            .entry(METRIC.into())
            .or_default()
            .push((at, value));
    });
}

pub fn approvals_asked(ports: &MemoryPorts) -> usize {
    ports.with(|w| {
        w.published
            .iter()
            .filter(|n| n.kind == NoticeKind::ApprovalNeeded)
            .count()
    })
}

pub fn ecs_id(ports: &MemoryPorts) -> String {
    ports
        .state("dev", "web")
        .and_then(|s| s.in_flight)
        .and_then(|d| d.phase.ecs_deployment_id().map(str::to_owned))
        .expect("the deployment has an ECS id")
}

pub fn words(reports: &[DispatchReport]) -> Vec<String> {
    reports.iter().flat_map(journal_words).collect()
}

/// The scenario config's `web` on blue/green with its `booking-dev-web-*` alarms, ECS playing
/// a stoppable rollout by hand: what an alarm during a native deployment meets (the alarm
/// scenario test and the bench's incident path share it).
pub fn blue_green_with_alarms() -> (MemoryPorts, Bundle) {
    use chrono::TimeZone;
    let native =
        "strategy = \"blue_green\"\nload_balancer = { container = \"web\", port = 8000 }\n";
    let ports = MemoryPorts::new(Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap());
    ports.add_service(scenario::CLUSTER, "web", scenario::INITIAL_TD);
    ports.with(|w| {
        w.rollout = RolloutMode::Manual;
        w.stoppable = true;
        for (k, v) in NATIVE_OUTPUTS {
            w.outputs.insert(k.into(), v.into());
        }
    });
    let config = super::CONFIG
        .replace(
            "desired_count = 2\n",
            &format!("desired_count = 2\n{native}"),
        )
        .replace(
            "[services.web.environments.dev]\n",
            "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n",
        );
    (ports, bundle_of(&config))
}
