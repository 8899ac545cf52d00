//! `harbormaster.toml` as written: strict (unknown keys are errors), nothing checked yet.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::strategy::{RawApproval, RawCheck, RawLoadBalancer, RawShift};

/// A table that also takes the ECS service's own keys (`crate::service::service_keys!`, the
/// one list of them), and gives them to `crate::service` with `take_settings`.
macro_rules! with_service_keys {
    ([$($key:ident : $ty:ty),* $(,)?]
     $(#[$meta:meta])* pub(super) struct $name:ident { $($body:tt)* }) => {
        $(#[$meta])*
        pub(super) struct $name {
            $($body)*
            $(#[serde(default)] pub(super) $key: Option<$ty>,)*
        }

        impl $name {
            /// The service settings of the table, taken out of it.
            pub(super) fn take_settings(&mut self) -> crate::service::RawServiceSettings {
                crate::service::RawServiceSettings {
                    $($key: self.$key.take(),)*
                }
            }
        }
    };
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub(super) project: String,
    pub(super) state_bucket: String,
    pub(super) notification_topic: String,
    #[serde(default)]
    pub(super) region: Option<String>,
    #[serde(default)]
    pub(super) agent: RawAgent,
    #[serde(default)]
    pub(super) environments: BTreeMap<String, RawEnvironment>,
    #[serde(default)]
    pub(super) services: BTreeMap<String, RawService>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAgent {
    pub(super) lease_seconds: Option<u32>,
    pub(super) settle_seconds: Option<u32>,
    pub(super) stabilize_timeout_minutes: Option<u32>,
    pub(super) max_attempts: Option<u32>,
    pub(super) reconcile: Option<bool>,
    pub(super) history_limit: Option<usize>,
    pub(super) hook_function_arn: Option<String>,
    pub(super) hook_role_arn: Option<String>,
    pub(super) hook_callback_seconds: Option<u32>,
    pub(super) function_timeout_seconds: Option<u32>,
    pub(super) self_heal: Option<bool>,
    pub(super) drift_check_minutes: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEnvironment {
    pub(super) cluster: String,
    #[serde(default = "yes")]
    pub(super) auto_deploy: bool,
    #[serde(default)]
    pub(super) account_id: Option<String>,
    #[serde(default)]
    pub(super) self_heal: Option<bool>,
    /// `"auto"` or `"manual"`; absent: follows `auto_deploy`.
    #[serde(default)]
    pub(super) config_releases: Option<String>,
    /// The environment a release must have succeeded in before it goes here by itself.
    #[serde(default)]
    pub(super) promote_from: Option<String>,
    /// Read by `harbormaster-bootstrap`, which checks it strictly itself.
    #[serde(default)]
    pub(super) bootstrap: Option<toml::Table>,
}

fn yes() -> bool {
    true
}

crate::service::service_keys!(with_service_keys! {
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    pub(super) repository: String,
    pub(super) task_definition: String,
    #[serde(default)]
    pub(super) ecs_service: Option<String>,
    #[serde(default)]
    pub(super) containers: Option<Vec<String>>,
    #[serde(default)]
    pub(super) strategy: Option<String>,
    #[serde(default)]
    pub(super) desired_count: Option<u32>,
    #[serde(default)]
    pub(super) min_healthy_percent: Option<u32>,
    #[serde(default)]
    pub(super) max_percent: Option<u32>,
    #[serde(default)]
    pub(super) health_check_grace_period_seconds: Option<u32>,
    #[serde(default)]
    pub(super) rollback_alarms: Vec<String>,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) bake_time_minutes: Option<u32>,
    #[serde(default)]
    pub(super) canary: Option<RawShift>,
    #[serde(default)]
    pub(super) linear: Option<RawShift>,
    #[serde(default)]
    pub(super) load_balancer: Option<RawLoadBalancer>,
    #[serde(default)]
    pub(super) checks: BTreeMap<String, RawCheck>,
    #[serde(default)]
    pub(super) approval: Option<RawApproval>,
    #[serde(default)]
    pub(super) alarms: Vec<String>,
    #[serde(default)]
    pub(super) rollback_window_minutes: Option<u32>,
    #[serde(default)]
    pub(super) guard_alarms: Vec<String>,
    #[serde(default)]
    pub(super) guard_timeout_minutes: Option<u32>,
    #[serde(default)]
    pub(super) alarm_thresholds: Option<RawThresholds>,
    /// Worker services: desired count from the queue's backlog.
    #[serde(default)]
    pub(super) scaling: Option<crate::scaling::RawScaling>,
    #[serde(default)]
    pub(super) environments: BTreeMap<String, RawTarget>,
}
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawThresholds {
    #[serde(default)]
    pub(super) cpu_percent: Option<f64>,
    #[serde(default)]
    pub(super) memory_percent: Option<f64>,
    #[serde(default)]
    pub(super) http_5xx_per_minute: Option<f64>,
    #[serde(default)]
    pub(super) response_time_seconds: Option<f64>,
}

crate::service::service_keys!(with_service_keys! {
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTarget {
    #[serde(default)]
    pub(super) follow: Option<RawFollow>,
    #[serde(default)]
    pub(super) desired_count: Option<u32>,
    #[serde(default)]
    pub(super) rollback_alarms: Option<Vec<String>>,
    #[serde(default)]
    pub(super) variables: BTreeMap<String, String>,
    #[serde(default)]
    pub(super) secrets: BTreeMap<String, String>,
    /// Replaces the service's checks in this environment (an empty table: none).
    #[serde(default)]
    pub(super) checks: Option<BTreeMap<String, RawCheck>>,
    #[serde(default)]
    pub(super) approval: Option<RawApproval>,
    #[serde(default)]
    pub(super) alarms: Option<Vec<String>>,
    #[serde(default)]
    pub(super) rollback_window_minutes: Option<u32>,
    #[serde(default)]
    pub(super) guard_alarms: Option<Vec<String>>,
    #[serde(default)]
    pub(super) guard_timeout_minutes: Option<u32>,
    /// Replaces the service's scaling in this environment.
    #[serde(default)]
    pub(super) scaling: Option<crate::scaling::RawScaling>,
    /// The strategy and its settings in this environment; what is left out comes from the
    /// service (rolling in dev, canary in prod).
    #[serde(default)]
    pub(super) strategy: Option<String>,
    #[serde(default)]
    pub(super) bake_time_minutes: Option<u32>,
    #[serde(default)]
    pub(super) canary: Option<crate::strategy::RawShift>,
    #[serde(default)]
    pub(super) linear: Option<crate::strategy::RawShift>,
    #[serde(default)]
    pub(super) load_balancer: Option<crate::strategy::RawLoadBalancer>,
}
});

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFollow {
    #[serde(default)]
    pub(super) regex: Option<String>,
    #[serde(default)]
    pub(super) semver: Option<String>,
}
