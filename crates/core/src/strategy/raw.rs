//! The strategy and gate settings as written in `harbormaster.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShift {
    pub(crate) percent: f64,
    pub(crate) interval_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoadBalancer {
    pub(crate) container: String,
    pub(crate) port: u16,
    #[serde(default)]
    pub(crate) target_group: Option<String>,
    #[serde(default)]
    pub(crate) alternate_target_group: Option<String>,
    #[serde(default)]
    pub(crate) production_listener_rule: Option<String>,
    #[serde(default)]
    pub(crate) test_listener_rule: Option<String>,
    #[serde(default)]
    pub(crate) role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    pub(crate) stages: Vec<String>,
    pub(crate) threshold: f64,
    #[serde(default)]
    pub(crate) fail_when: Option<String>,
    #[serde(default)]
    pub(crate) window_minutes: Option<u32>,
    #[serde(default)]
    pub(crate) max_inconclusive: Option<u32>,
    #[serde(default)]
    pub(crate) value: Option<String>,
    pub(crate) queries: Vec<RawQuery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) metric: Option<String>,
    #[serde(default)]
    pub(crate) dimensions: BTreeMap<String, String>,
    #[serde(default)]
    pub(crate) stat: Option<String>,
    #[serde(default)]
    pub(crate) period_seconds: Option<u32>,
    #[serde(default)]
    pub(crate) expression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApproval {
    pub(crate) stage: String,
    #[serde(default)]
    pub(crate) timeout_minutes: Option<u32>,
    #[serde(default)]
    pub(crate) on_timeout: Option<String>,
}

/// The native-strategy part of a `[services.<name>]` table, as written.
#[derive(Debug, Clone, Deserialize, Default)]
pub(crate) struct RawNative {
    pub bake_time_minutes: Option<u32>,
    pub canary: Option<RawShift>,
    pub linear: Option<RawShift>,
    pub load_balancer: Option<RawLoadBalancer>,
}
