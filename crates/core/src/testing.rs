//! A small config and template shared by the core's tests and by scenario tests elsewhere.

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::memory::MemorySource;

pub const CONFIG: &str = r#"
project = "booking"
state_bucket = "booking-state"
notification_topic = "arn:aws:sns:us-east-1:123456789012:booking-deployments"

[agent]
lease_seconds = 60

[environments.dev]
cluster = "booking-dev"

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
"#;

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

pub fn source() -> MemorySource {
    MemorySource(BTreeMap::from([
        ("harbormaster.toml".to_owned(), CONFIG.to_owned()),
        ("taskdefs/web.json".to_owned(), WEB_TEMPLATE.to_owned()),
    ]))
}

/// The bundle of [`CONFIG`] and [`WEB_TEMPLATE`].
pub fn bundle() -> Bundle {
    futures::executor::block_on(Bundle::load(&source())).expect("the test bundle loads")
}
