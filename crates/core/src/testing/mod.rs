//! Test support, never in a production build (the `testing` feature): a small config and
//! template, AWS's event shapes for them, and the scenario helpers every scenario test shares
//! ([`scenario`]).

pub mod native;
pub mod scenario;

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::memory::MemorySource;

/// The project, the agent and dev: what every test config starts with (a macro, so that
/// `concat!` and `format!` can build on it).
#[macro_export]
#[doc(hidden)]
macro_rules! test_config_head {
    () => {
        r#"
project = "booking"
state_bucket = "booking-state"
notification_topic = "arn:aws:sns:us-east-1:123456789012:booking-deployments"

[agent]
lease_seconds = 60

[environments.dev]
cluster = "booking-dev"
"#
    };
}

pub const CONFIG: &str = concat!(
    test_config_head!(),
    r#"
[environments.prod]
cluster = "booking-prod"
auto_deploy = false

[services.web]
repository = "booking/web"
task_definition = "taskdefs/web.json"
desired_count = 2
rollback_alarms = ["booking-web-5xx"]
variables = { DJANGO_SETTINGS_MODULE = "booking.settings" }
secrets = { DATABASE_PASSWORD = "database/password" }

[services.web.environments.dev]
follow = { regex = "^main-" }
desired_count = 1
variables = { DEBUG = "true" }

[services.web.environments.prod]
follow = { semver = ">=1.0.0" }
"#
);

pub const WEB_TEMPLATE: &str = r#"{
  "family": "booking-${env}-web",
  "executionRoleArn": "arn:aws:iam::${account}:role/booking-${env}-execution",
  "cpu": "256", "memory": "512",
  "containerDefinitions": [
    {"name": "web", "image": "booking/web", "essential": true,
     "portMappings": [{"containerPort": 8000}],
     "environment": [{"name": "DEBUG", "value": "false"}]}
  ]
}"#;

/// AWS's "ECR Image Action" sample for `booking/web`: digest `fill` × 64, pushed `secs` after
/// 11:00 on the scenarios' day.
pub fn push_event(id: &str, tag: &str, fill: char, secs: i64) -> serde_json::Value {
    use chrono::TimeZone;
    let t = chrono::Utc
        .with_ymd_and_hms(2026, 11, 23, 11, 0, 0)
        .unwrap()
        + chrono::Duration::seconds(secs);
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": t.to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "booking/web",
          "image-digest": format!("sha256:{}", fill.to_string().repeat(64)),
          "action-type": "PUSH", "image-tag": tag}
    })
}

/// AWS's "CloudWatch Alarm State Change" shape (CloudWatch's own timestamp format included).
pub fn alarm_event(
    id: &str,
    name: &str,
    (from, to): (&str, &str),
    at: chrono::DateTime<chrono::Utc>,
) -> serde_json::Value {
    let ts = at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    serde_json::json!({
        "version": "0", "id": id, "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch", "account": "123456789012", "time": at.to_rfc3339(),
        "region": "us-east-1",
        "resources": [format!("arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}")],
        "detail": {
            "alarmName": name,
            "state": {"value": to, "reason": "Threshold Crossed: 1 datapoint [42.0] was greater than the threshold (10.0).", "timestamp": ts},
            "previousState": {"value": from, "reason": "", "timestamp": ts}
        }
    })
}

/// The SSM outputs a native deployment of `web` in dev reads (the bootstrap's and the agent's).
pub const NATIVE_OUTPUTS: [(&str, &str); 6] = [
    (
        "/booking/dev/outputs/target-groups/web/blue",
        "arn:tg/web-blue",
    ),
    (
        "/booking/dev/outputs/target-groups/web/green",
        "arn:tg/web-green",
    ),
    (
        "/booking/dev/outputs/production-rules/web",
        "arn:rule/web-prod",
    ),
    (
        "/booking/dev/outputs/roles/ecs-infrastructure",
        "arn:role/infra",
    ),
    ("/booking/agent/hook-function-arn", "arn:lambda:ecs-hook"),
    ("/booking/agent/hook-role-arn", "arn:role/hook"),
];

pub fn source() -> MemorySource {
    source_of(CONFIG)
}

/// `config` with [`WEB_TEMPLATE`] beside it.
pub fn source_of(config: &str) -> MemorySource {
    MemorySource(BTreeMap::from([
        ("harbormaster.toml".to_owned(), config.to_owned()),
        ("taskdefs/web.json".to_owned(), WEB_TEMPLATE.to_owned()),
    ]))
}

/// The bundle of [`CONFIG`] and [`WEB_TEMPLATE`].
pub fn bundle() -> Bundle {
    bundle_of(CONFIG)
}

/// The bundle of `config` and [`WEB_TEMPLATE`].
pub fn bundle_of(config: &str) -> Bundle {
    futures::executor::block_on(Bundle::load(&source_of(config))).expect("the test config loads")
}
