//! `harbormaster.toml`: the desired state kept in git. Parsed strictly (unknown keys are errors,
//! `raw.rs`), then validated into the typed config here (`validate.rs`); every error names the
//! file, the field and what is allowed.

mod alarms;
pub mod bootstrap;
mod cidr;
pub(crate) mod diagnostics;
mod raw;
mod settings;
mod strict;
mod validate;

use std::collections::BTreeMap;
use std::fmt;

use crate::alarm::{AlarmPolicy, Thresholds};
use crate::image::{ImageOrder, TagRule};
pub use crate::strategy::Strategy;
use crate::strategy::{Gates, NativeSettings};
pub(crate) use strict::closest;

pub const CONFIG_FILE: &str = "harbormaster.toml";
/// `harbormaster publish`'s pointer to the current bundle, beside where the config is read.
pub const POINTER_FILE: &str = "current.json";
/// Where published bundles live, by content digest: `bundles/<digest>/<path>`.
pub const BUNDLES_DIR: &str = "bundles";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: String,
    /// Dotted path of the field, e.g. `services.web.environments.dev.follow`; empty for
    /// syntax errors, where `problem` carries the line and column instead.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.field, self.problem)
        }
    }
}

/// Several errors at once: a person fixing a config wants all of them, not one per run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

// ---------- typed ----------

#[derive(Debug, Clone)]
pub struct Config {
    pub project: String,
    pub state_bucket: String,
    pub notification_topic: String,
    pub region: Option<String>,
    pub agent: AgentSettings,
    pub environments: BTreeMap<String, Environment>,
    pub services: BTreeMap<String, Service>,
}

/// The functions' timeout in `deploy/template.yaml` (`Globals.Function.Timeout`, pinned by a
/// test there): the default of `agent.function_timeout_seconds`.
pub const FUNCTION_TIMEOUT_SECONDS: u32 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// How long the invocation that recorded an intent owns the next step before another may
    /// take over (after a crash, say).
    pub lease_seconds: u32,
    /// A push waits this long for newer pushes of the same service before it deploys, so a
    /// burst (many merges, a re-run pipeline) makes one deployment of its newest image instead
    /// of one plus a follow-up. 0 deploys at once. The tick starts what has settled.
    pub settle_seconds: u32,
    pub stabilize_timeout_minutes: u32,
    /// Takeovers of one deployment before it is failed instead of retried again.
    pub max_attempts: u32,
    /// Whether the tick looks in ECR for pushes whose events were lost.
    pub reconcile: bool,
    pub history_limit: usize,
    /// The `ecs-hook` function native deployments call, and the role ECS calls it with; when
    /// absent, read from the agent's outputs in SSM.
    pub hook_function_arn: Option<String>,
    pub hook_role_arn: Option<String>,
    /// How long ECS waits before asking the hook again while a gate waits.
    pub hook_callback_seconds: u32,
    /// The functions' Lambda timeout: a lease is at least this long.
    pub function_timeout_seconds: u32,
    /// Put back a service changed outside git (per environment too).
    pub self_heal: bool,
    /// Minutes between two looks at which revision a service runs.
    pub drift_check_minutes: u32,
}

impl Default for AgentSettings {
    fn default() -> Self {
        AgentSettings {
            lease_seconds: 300,
            settle_seconds: 0,
            stabilize_timeout_minutes: 30,
            max_attempts: 5,
            reconcile: true,
            history_limit: 25,
            hook_function_arn: None,
            hook_role_arn: None,
            hook_callback_seconds: 30,
            function_timeout_seconds: FUNCTION_TIMEOUT_SECONDS,
            self_heal: false,
            drift_check_minutes: 5,
        }
    }
}

/// Whether a change of the config in git is released to an environment by the tick (as Argo
/// CD's automated sync policy), or waits for a person's `deploy --config-only` (or the
/// pipeline) and is shown as pending meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfigReleases {
    Auto,
    Manual,
}

impl std::fmt::Display for ConfigReleases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConfigReleases::Auto => "auto",
            ConfigReleases::Manual => "manual",
        })
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub cluster: String,
    pub auto_deploy: bool,
    /// Whether a config published to git is released here by itself.
    pub config_releases: ConfigReleases,
    /// Where releases are promoted from: a published config goes here by itself only once its
    /// bundle's release succeeded there; the pipeline promotes images from it (its
    /// `promote_from` parameter overrides).
    pub promote_from: Option<String>,
    /// A service running another revision than deployed is put back (else only reported).
    pub self_heal: bool,
    pub account_id: Option<String>,
    /// `[environments.<name>.bootstrap]`, as written: checked by [`bootstrap::Spec::from_config`]
    /// (`harbormaster validate` and `harbormaster-bootstrap`; the agent does not read it).
    pub bootstrap: Option<toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RollingSettings {
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    pub health_check_grace_period_seconds: Option<u32>,
}

/// ECS's own defaults for a rolling update (DeploymentConfiguration: 100 and 200 percent).
impl Default for RollingSettings {
    fn default() -> Self {
        RollingSettings {
            min_healthy_percent: 100,
            max_percent: 200,
            health_check_grace_period_seconds: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    pub repository: String,
    /// Path of the task-definition template, relative to the config file's folder.
    pub task_definition: String,
    pub ecs_service: String,
    pub containers: Option<Vec<String>>,
    pub strategy: Strategy,
    pub rolling: RollingSettings,
    /// For blue_green, canary and linear.
    pub native: Option<NativeSettings>,
    /// Of the standard alarms `harbormaster alarms` creates.
    pub thresholds: Thresholds,
    pub targets: BTreeMap<String, TargetSettings>,
}

/// One service in one environment, with the service-wide settings already merged in.
#[derive(Debug, Clone)]
pub struct TargetSettings {
    pub follow: Option<TagRule>,
    pub desired_count: Option<u32>,
    pub rollback_alarms: Vec<String>,
    pub variables: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretRef>,
    /// Metric checks and approval at the native strategies' lifecycle hooks.
    pub gates: Gates,
    /// Which alarms roll the service back, and which ones hold deployments.
    pub alarms: AlarmPolicy,
    /// Desired count from the backlog (worker services).
    pub scaling: Option<crate::scaling::ScalingPolicy>,
    /// The strategy in this environment (the service's unless the environment sets one).
    pub strategy: Strategy,
    /// For blue_green, canary and linear in this environment.
    pub native: Option<NativeSettings>,
    /// The ECS service itself: network, capacity, target tracking, the task before a rollout.
    pub service: crate::service::ServiceSettings,
}

impl TargetSettings {
    pub fn order(&self) -> ImageOrder {
        self.follow.as_ref().map(TagRule::order).unwrap_or_default()
    }
}

/// Where a secret lives. Task definitions carry its ARN (`valueFrom`), never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    /// `group/name` under the convention `/<project>/<env>/<group>/<name>` in SSM.
    Parameter { group: String, name: String },
    /// A full SSM parameter or Secrets Manager ARN, used as written.
    Arn(String),
}

impl SecretRef {
    /// The SSM parameter name, for references by convention.
    pub fn parameter_name(&self, project: &str, env: &str) -> Option<String> {
        match self {
            SecretRef::Parameter { group, name } => {
                Some(format!("/{project}/{env}/{group}/{name}"))
            }
            SecretRef::Arn(_) => None,
        }
    }

    pub fn value_from(&self, project: &str, env: &str, region: &str, account: &str) -> String {
        match self {
            SecretRef::Parameter { group, name } => {
                format!("arn:aws:ssm:{region}:{account}:parameter/{project}/{env}/{group}/{name}")
            }
            SecretRef::Arn(arn) => arn.clone(),
        }
    }
}

impl Config {
    pub fn parse(file: &str, text: &str) -> Result<Config, ConfigErrors> {
        let raw: raw::RawConfig = strict::parse(file, text).map_err(ConfigErrors)?;
        validate::validate(file, raw)
    }

    pub fn target(
        &self,
        env: &str,
        service: &str,
    ) -> Option<(&Environment, &Service, &TargetSettings)> {
        let e = self.environments.get(env)?;
        let s = self.services.get(service)?;
        let t = s.targets.get(env)?;
        Some((e, s, t))
    }

    /// Every (environment, service) pair the config deploys, in a stable order.
    pub fn targets(&self) -> impl Iterator<Item = (&Environment, &Service, &TargetSettings)> {
        self.services.values().flat_map(move |s| {
            s.targets
                .iter()
                .filter_map(move |(env, t)| Some((self.environments.get(env)?, s, t)))
        })
    }
}

fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = e.message().trim().to_owned();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
            format!("line {line}, column {col}: {msg}")
        }
        None => msg,
    }
}

#[cfg(test)]
mod tests;
