//! `harbormaster.toml`: the desired state kept in git. Parsed strictly (unknown keys are errors),
//! then validated into typed config; every error names the file, the field and what is allowed.

use std::collections::BTreeMap;
use std::fmt;

use regex::Regex;
use serde::Deserialize;

use crate::alarm::{AlarmPolicy, Thresholds};
use crate::image::{ImageOrder, TagRule};
pub use crate::strategy::Strategy;
use crate::strategy::{
    parse_approval, parse_checks, parse_native, Gates, NativeSettings, RawApproval, RawCheck,
    RawLoadBalancer, RawNative, RawShift,
};

pub const CONFIG_FILE: &str = "harbormaster.toml";

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

// ---------- raw, as written ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    project: String,
    state_bucket: String,
    notification_topic: String,
    #[serde(default)]
    region: Option<String>,
    #[serde(default)]
    agent: RawAgent,
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
    #[serde(default)]
    services: BTreeMap<String, RawService>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    lease_seconds: Option<u32>,
    settle_seconds: Option<u32>,
    stabilize_timeout_minutes: Option<u32>,
    max_attempts: Option<u32>,
    reconcile: Option<bool>,
    history_limit: Option<usize>,
    hook_function_arn: Option<String>,
    hook_role_arn: Option<String>,
    hook_callback_seconds: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    cluster: String,
    #[serde(default = "yes")]
    auto_deploy: bool,
    #[serde(default)]
    account_id: Option<String>,
    /// Read by `harbormaster-bootstrap`, which checks it strictly itself.
    #[serde(default)]
    bootstrap: Option<toml::Table>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    repository: String,
    task_definition: String,
    #[serde(default)]
    ecs_service: Option<String>,
    #[serde(default)]
    containers: Option<Vec<String>>,
    #[serde(default)]
    strategy: Option<String>,
    #[serde(default)]
    desired_count: Option<u32>,
    #[serde(default)]
    min_healthy_percent: Option<u32>,
    #[serde(default)]
    max_percent: Option<u32>,
    #[serde(default)]
    health_check_grace_period_seconds: Option<u32>,
    #[serde(default)]
    rollback_alarms: Vec<String>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    #[serde(default)]
    bake_time_minutes: Option<u32>,
    #[serde(default)]
    canary: Option<RawShift>,
    #[serde(default)]
    linear: Option<RawShift>,
    #[serde(default)]
    load_balancer: Option<RawLoadBalancer>,
    #[serde(default)]
    checks: BTreeMap<String, RawCheck>,
    #[serde(default)]
    approval: Option<RawApproval>,
    #[serde(default)]
    alarms: Vec<String>,
    #[serde(default)]
    rollback_window_minutes: Option<u32>,
    #[serde(default)]
    guard_alarms: Vec<String>,
    #[serde(default)]
    guard_timeout_minutes: Option<u32>,
    #[serde(default)]
    alarm_thresholds: Option<RawThresholds>,
    /// Worker services: desired count from the queue's backlog.
    #[serde(default)]
    scaling: Option<crate::scaling::RawScaling>,
    #[serde(default)]
    environments: BTreeMap<String, RawTarget>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawThresholds {
    #[serde(default)]
    cpu_percent: Option<f64>,
    #[serde(default)]
    memory_percent: Option<f64>,
    #[serde(default)]
    http_5xx_per_minute: Option<f64>,
    #[serde(default)]
    response_time_seconds: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    #[serde(default)]
    follow: Option<RawFollow>,
    #[serde(default)]
    desired_count: Option<u32>,
    #[serde(default)]
    rollback_alarms: Option<Vec<String>>,
    #[serde(default)]
    variables: BTreeMap<String, String>,
    #[serde(default)]
    secrets: BTreeMap<String, String>,
    /// Replaces the service's checks in this environment (an empty table: none).
    #[serde(default)]
    checks: Option<BTreeMap<String, RawCheck>>,
    #[serde(default)]
    approval: Option<RawApproval>,
    #[serde(default)]
    alarms: Option<Vec<String>>,
    #[serde(default)]
    rollback_window_minutes: Option<u32>,
    #[serde(default)]
    guard_alarms: Option<Vec<String>>,
    #[serde(default)]
    guard_timeout_minutes: Option<u32>,
    /// Replaces the service's scaling in this environment.
    #[serde(default)]
    scaling: Option<crate::scaling::RawScaling>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFollow {
    #[serde(default)]
    regex: Option<String>,
    #[serde(default)]
    semver: Option<String>,
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
        }
    }
}

#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub cluster: String,
    pub auto_deploy: bool,
    pub account_id: Option<String>,
    /// `[environments.<name>.bootstrap]`, as written: `harbormaster-bootstrap` validates it.
    pub bootstrap: Option<toml::Table>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollingSettings {
    pub min_healthy_percent: u32,
    pub max_percent: u32,
    pub health_check_grace_period_seconds: Option<u32>,
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
    pub targets: BTreeMap<String, Target>,
}

/// One service in one environment, with the service-wide settings already merged in.
#[derive(Debug, Clone)]
pub struct Target {
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
}

impl Target {
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: file.to_owned(),
                field: String::new(),
                problem: describe_toml_error(text, &e),
            }])
        })?;
        validate(file, raw)
    }

    pub fn target(&self, env: &str, service: &str) -> Option<(&Environment, &Service, &Target)> {
        let e = self.environments.get(env)?;
        let s = self.services.get(service)?;
        let t = s.targets.get(env)?;
        Some((e, s, t))
    }

    /// Every (environment, service) pair the config deploys, in a stable order.
    pub fn targets(&self) -> impl Iterator<Item = (&Environment, &Service, &Target)> {
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

struct Collector<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl crate::strategy::Errors for Collector<'_> {
    fn err(&mut self, field: String, problem: String) {
        Collector::err(self, field, problem);
    }
}

impl Collector<'_> {
    fn err(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_owned(),
            field: field.into(),
            problem: problem.into(),
        });
    }
}

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

const NAME_RULE: &str = "lowercase letters, digits and `-`, at most 48, not starting with `-`";

fn validate(file: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let raw_project = raw.project.clone();
    let mut c = Collector {
        file,
        errors: Vec::new(),
    };
    if !name_ok(&raw.project) {
        c.err(
            "project",
            format!("`{}` is not allowed: use {NAME_RULE}", raw.project),
        );
    }
    if raw.state_bucket.len() < 3 || raw.state_bucket.len() > 63 {
        c.err("state_bucket", "an S3 bucket name has 3 to 63 characters");
    }
    if !raw.notification_topic.starts_with("arn:aws") || !raw.notification_topic.contains(":sns:") {
        c.err(
            "notification_topic",
            "expected an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
        );
    }
    let defaults = AgentSettings::default();
    let agent = AgentSettings {
        lease_seconds: raw.agent.lease_seconds.unwrap_or(defaults.lease_seconds),
        settle_seconds: raw.agent.settle_seconds.unwrap_or(defaults.settle_seconds),
        stabilize_timeout_minutes: raw
            .agent
            .stabilize_timeout_minutes
            .unwrap_or(defaults.stabilize_timeout_minutes),
        max_attempts: raw.agent.max_attempts.unwrap_or(defaults.max_attempts),
        reconcile: raw.agent.reconcile.unwrap_or(defaults.reconcile),
        history_limit: raw.agent.history_limit.unwrap_or(defaults.history_limit),
        hook_function_arn: raw.agent.hook_function_arn,
        hook_role_arn: raw.agent.hook_role_arn,
        hook_callback_seconds: raw
            .agent
            .hook_callback_seconds
            .unwrap_or(defaults.hook_callback_seconds),
    };
    if !(5..=900).contains(&agent.hook_callback_seconds) {
        c.err("agent.hook_callback_seconds", "allowed: 5 to 900");
    }
    for (key, v) in [
        ("agent.hook_function_arn", &agent.hook_function_arn),
        ("agent.hook_role_arn", &agent.hook_role_arn),
    ] {
        if v.as_ref().is_some_and(|v| !v.starts_with("arn:")) {
            c.err(key, "expected an ARN");
        }
    }
    if !(10..=3600).contains(&agent.lease_seconds) {
        c.err("agent.lease_seconds", "allowed: 10 to 3600");
    }
    if agent.settle_seconds > 900 {
        c.err(
            "agent.settle_seconds",
            "allowed: 0 to 900 (the tick starts a settled release; longer only delays deploys)",
        );
    }
    if agent.max_attempts == 0 {
        c.err("agent.max_attempts", "allowed: 1 or more");
    }
    if !(1..=200).contains(&agent.history_limit) {
        c.err("agent.history_limit", "allowed: 1 to 200");
    }

    let mut environments = BTreeMap::new();
    for (name, e) in raw.environments {
        let field = format!("environments.{name}");
        if !name_ok(&name) {
            c.err(
                &field,
                format!("environment name not allowed: use {NAME_RULE}"),
            );
        }
        if e.cluster.is_empty() {
            c.err(format!("{field}.cluster"), "must not be empty");
        }
        if let Some(a) = &e.account_id {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                c.err(format!("{field}.account_id"), "expected 12 digits");
            }
        }
        environments.insert(
            name.clone(),
            Environment {
                name,
                cluster: e.cluster,
                auto_deploy: e.auto_deploy,
                account_id: e.account_id,
                bootstrap: e.bootstrap,
            },
        );
    }
    if environments.is_empty() {
        c.err("environments", "at least one environment is required");
    }

    let mut services = BTreeMap::new();
    for (name, s) in raw.services {
        let field = format!("services.{name}");
        if !name_ok(&name) {
            c.err(&field, format!("service name not allowed: use {NAME_RULE}"));
        }
        if s.repository.is_empty() {
            c.err(format!("{field}.repository"), "must not be empty");
        }
        let strategy = match Strategy::parse(s.strategy.as_deref().unwrap_or("rolling")) {
            Some(s) => s,
            None => {
                c.err(
                    format!("{field}.strategy"),
                    format!(
                        "`{}` is not supported; allowed: \"rolling\", \"blue_green\", \"canary\", \"linear\"",
                        s.strategy.as_deref().unwrap_or_default()
                    ),
                );
                Strategy::Rolling
            }
        };
        let native = parse_native(
            &mut c,
            &field,
            strategy,
            RawNative {
                bake_time_minutes: s.bake_time_minutes,
                canary: s.canary,
                linear: s.linear,
                load_balancer: s.load_balancer,
            },
        );
        let base_checks = parse_checks(&mut c, &format!("{field}.checks"), s.checks);
        let d = Thresholds::default();
        let thresholds = match s.alarm_thresholds {
            None => d,
            Some(t) => Thresholds {
                cpu_percent: t.cpu_percent.unwrap_or(d.cpu_percent),
                memory_percent: t.memory_percent.unwrap_or(d.memory_percent),
                http_5xx_per_minute: t.http_5xx_per_minute.unwrap_or(d.http_5xx_per_minute),
                response_time_seconds: t.response_time_seconds.unwrap_or(d.response_time_seconds),
            },
        };
        for (k, v) in [
            ("cpu_percent", thresholds.cpu_percent),
            ("memory_percent", thresholds.memory_percent),
            ("http_5xx_per_minute", thresholds.http_5xx_per_minute),
            ("response_time_seconds", thresholds.response_time_seconds),
        ] {
            if !(v.is_finite() && v > 0.0) {
                c.err(
                    format!("{field}.alarm_thresholds.{k}"),
                    "must be a positive number",
                );
            }
        }
        let base_approval = s
            .approval
            .and_then(|a| parse_approval(&mut c, &format!("{field}.approval"), a));
        let rolling = RollingSettings {
            min_healthy_percent: s.min_healthy_percent.unwrap_or(100),
            max_percent: s.max_percent.unwrap_or(200),
            health_check_grace_period_seconds: s.health_check_grace_period_seconds,
        };
        if rolling.min_healthy_percent > 100 {
            c.err(format!("{field}.min_healthy_percent"), "allowed: 0 to 100");
        }
        if rolling.max_percent < 100 || rolling.max_percent > 200 {
            c.err(format!("{field}.max_percent"), "allowed: 100 to 200");
        }
        if rolling.min_healthy_percent == 0 && rolling.max_percent == 100 {
            c.err(
                format!("{field}.max_percent"),
                "with min_healthy_percent = 0, max_percent must exceed 100 or no task can ever be replaced",
            );
        }
        if let Some(containers) = &s.containers {
            if containers.is_empty() {
                c.err(
                    format!("{field}.containers"),
                    "name at least one container, or leave it out",
                );
            }
        }
        check_variables(&mut c, &format!("{field}.variables"), &s.variables);
        let base_secrets = parse_secrets(&mut c, &format!("{field}.secrets"), &s.secrets);

        let service_scaling = s.scaling;
        let mut targets = BTreeMap::new();
        for (env, t) in s.environments {
            let tfield = format!("{field}.environments.{env}");
            if !environments.contains_key(&env) {
                c.err(
                    &tfield,
                    format!(
                        "no environment `{env}` is defined; defined: {}",
                        environments.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            let follow = t
                .follow
                .and_then(|f| parse_follow(&mut c, &format!("{tfield}.follow"), f));
            check_variables(&mut c, &format!("{tfield}.variables"), &t.variables);
            let mut variables = s.variables.clone();
            variables.extend(t.variables);
            let mut secrets = base_secrets.clone();
            secrets.extend(parse_secrets(
                &mut c,
                &format!("{tfield}.secrets"),
                &t.secrets,
            ));
            for k in secrets.keys() {
                if variables.contains_key(k) {
                    c.err(
                        &tfield,
                        format!("`{k}` is both a variable and a secret; a container gets one value per name"),
                    );
                }
            }
            let rollback_alarms = t
                .rollback_alarms
                .unwrap_or_else(|| s.rollback_alarms.clone());
            let checks = match t.checks {
                Some(raw) => parse_checks(&mut c, &format!("{tfield}.checks"), raw),
                None => base_checks.clone(),
            };
            let approval = match t.approval {
                Some(raw) => parse_approval(&mut c, &format!("{tfield}.approval"), raw),
                None => base_approval.clone(),
            };
            let gates = Gates { checks, approval };
            let mut alarm_names = t.alarms.unwrap_or_else(|| s.alarms.clone());
            // The ECS deployment alarms speak for the service too.
            for a in &rollback_alarms {
                if !alarm_names.contains(a) {
                    alarm_names.push(a.clone());
                }
            }
            let alarms = AlarmPolicy {
                alarms: alarm_names,
                window_minutes: t
                    .rollback_window_minutes
                    .or(s.rollback_window_minutes)
                    .unwrap_or(30),
                guards: t.guard_alarms.unwrap_or_else(|| s.guard_alarms.clone()),
                guard_timeout_minutes: t
                    .guard_timeout_minutes
                    .or(s.guard_timeout_minutes)
                    .unwrap_or(60),
            };
            if alarms.window_minutes > 1440 {
                c.err(
                    format!("{tfield}.rollback_window_minutes"),
                    "allowed: 0 to 1440",
                );
            }
            if !(1..=1440).contains(&alarms.guard_timeout_minutes) {
                c.err(
                    format!("{tfield}.guard_timeout_minutes"),
                    "allowed: 1 to 1440",
                );
            }
            for a in alarms.alarms.iter().chain(&alarms.guards) {
                if a.is_empty() || a.len() > 255 {
                    c.err(&tfield, "alarm names have 1 to 255 characters");
                }
            }
            if alarms.guards.iter().any(|g| g.contains('*')) {
                c.err(
                    format!("{tfield}.guard_alarms"),
                    "name each guard alarm: patterns are only for `alarms`",
                );
            }
            if !strategy.is_native() && (!gates.checks.is_empty() || gates.approval.is_some()) {
                c.err(
                    &tfield,
                    "checks and approval run at ECS lifecycle hooks, which only the strategies \"blue_green\", \"canary\" and \"linear\" have",
                );
            }
            let scaling = match t.scaling {
                Some(raw) => crate::scaling::parse_scaling(
                    &mut c,
                    &format!("{tfield}.scaling"),
                    &raw_project,
                    &env,
                    raw,
                ),
                None => service_scaling.as_ref().and_then(|raw| {
                    crate::scaling::parse_scaling(
                        &mut c,
                        &format!("{field}.scaling"),
                        &raw_project,
                        &env,
                        raw.clone(),
                    )
                }),
            };
            targets.insert(
                env,
                Target {
                    gates,
                    alarms,
                    scaling,
                    follow,
                    desired_count: t.desired_count.or(s.desired_count),
                    rollback_alarms,
                    variables,
                    secrets,
                },
            );
        }
        services.insert(
            name.clone(),
            Service {
                ecs_service: s.ecs_service.unwrap_or_else(|| name.clone()),
                name,
                repository: s.repository,
                task_definition: s.task_definition,
                containers: s.containers,
                strategy,
                rolling,
                native,
                thresholds,
                targets,
            },
        );
    }

    // A service-wide setting checked once per environment reports the same error each time.
    let mut seen = std::collections::BTreeSet::new();
    c.errors.retain(|e| seen.insert(e.to_string()));
    if c.errors.is_empty() {
        Ok(Config {
            project: raw.project,
            state_bucket: raw.state_bucket,
            notification_topic: raw.notification_topic,
            region: raw.region,
            agent,
            environments,
            services,
        })
    } else {
        Err(ConfigErrors(c.errors))
    }
}

fn parse_follow(c: &mut Collector<'_>, field: &str, f: RawFollow) -> Option<TagRule> {
    match (f.regex, f.semver) {
        (Some(r), None) => match Regex::new(&r) {
            Ok(re) => Some(TagRule::Regex(re)),
            Err(e) => {
                c.err(
                    format!("{field}.regex"),
                    format!("not a valid regular expression: {e}"),
                );
                None
            }
        },
        (None, Some(s)) => match semver::VersionReq::parse(&s) {
            Ok(req) => Some(TagRule::Semver(req)),
            Err(e) => {
                c.err(
                    format!("{field}.semver"),
                    format!("not a valid semver requirement (e.g. \">=1.2, <2\"): {e}"),
                );
                None
            }
        },
        _ => {
            c.err(field, "give exactly one of `regex` or `semver`");
            None
        }
    }
}

fn var_name_ok(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|ch: char| ch.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn check_variables(c: &mut Collector<'_>, field: &str, vars: &BTreeMap<String, String>) {
    for (k, v) in vars {
        if !var_name_ok(k) {
            c.err(
                format!("{field}.{k}"),
                "variable names use letters, digits and `_`",
            );
        }
        if let Some(why) = crate::secrets::looks_like_secret(k, v) {
            // The value itself is never repeated: it may be the secret.
            c.err(
                format!("{field}.{k}"),
                format!("{why}; plaintext secrets are not allowed in variables: move it to `secrets` (an SSM parameter or Secrets Manager ARN)"),
            );
        }
    }
}

fn parse_secrets(
    c: &mut Collector<'_>,
    field: &str,
    secrets: &BTreeMap<String, String>,
) -> BTreeMap<String, SecretRef> {
    let mut out = BTreeMap::new();
    let seg_ok = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    for (k, v) in secrets {
        if !var_name_ok(k) {
            c.err(
                format!("{field}.{k}"),
                "secret names use letters, digits and `_`",
            );
        }
        let r = if v.starts_with("arn:aws:ssm:") || v.starts_with("arn:aws:secretsmanager:") {
            Some(SecretRef::Arn(v.clone()))
        } else {
            match v.split('/').collect::<Vec<_>>().as_slice() {
                [group, name] if seg_ok(group) && seg_ok(name) => Some(SecretRef::Parameter {
                    group: (*group).to_owned(),
                    name: (*name).to_owned(),
                }),
                _ => None,
            }
        };
        match r {
            Some(r) => {
                out.insert(k.clone(), r);
            }
            None => c.err(
                format!("{field}.{k}"),
                "expected `<group>/<name>` (the SSM parameter /<project>/<env>/<group>/<name>) or an SSM or Secrets Manager ARN",
            ),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const GOOD: &str = r#"
project = "booking"
state_bucket = "booking-state"
notification_topic = "arn:aws:sns:us-east-1:000000000000:booking-deployments"

[environments.dev]
cluster = "booking-dev"

[environments.prod]
cluster = "booking-prod"
auto_deploy = false

[services.web]
repository = "booking/web"
task_definition = "taskdefs/web.json"
desired_count = 2
variables = { DJANGO_SETTINGS_MODULE = "booking.settings" }
secrets = { DATABASE_PASSWORD = "database/password" }

[services.web.environments.dev]
follow = { regex = "^main-[0-9a-f]{7}$" }
desired_count = 1
variables = { DEBUG = "true" }

[services.web.environments.prod]
follow = { semver = ">=1.0.0" }
"#;

    #[test]
    fn a_good_config_merges_service_settings_into_each_target() {
        let cfg = Config::parse("harbormaster.toml", GOOD).unwrap();
        let (env, svc, t) = cfg.target("dev", "web").unwrap();
        assert_eq!(env.cluster, "booking-dev");
        assert_eq!(svc.ecs_service, "web");
        assert_eq!(t.desired_count, Some(1));
        assert_eq!(t.variables.get("DEBUG").map(String::as_str), Some("true"));
        assert!(t.variables.contains_key("DJANGO_SETTINGS_MODULE"));
        assert_eq!(
            t.secrets["DATABASE_PASSWORD"].value_from(
                "booking",
                "dev",
                "us-east-1",
                "123456789012"
            ),
            "arn:aws:ssm:us-east-1:123456789012:parameter/booking/dev/database/password"
        );
        let (_, _, p) = cfg.target("prod", "web").unwrap();
        assert_eq!(p.desired_count, Some(2));
        assert_eq!(p.order(), ImageOrder::Semver);
        assert_eq!(cfg.targets().count(), 2);
    }

    #[test]
    fn unknown_keys_are_errors_with_line_and_name() {
        let text = GOOD.replace("desired_count = 2", "desired_cuont = 2");
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("harbormaster.toml: line "), "{err}");
        assert!(err.contains("desired_cuont"), "{err}");
    }

    #[test]
    fn every_invalid_field_is_named_at_once() {
        let text = GOOD
            .replace("strategy", "x")
            .replace("^main-[0-9a-f]{7}$", "([")
            .replace(">=1.0.0", "not a version")
            .replace("database/password", "no-slash")
            .replace(
                "[services.web.environments.prod]",
                "[services.web.environments.qa]",
            );
        let errs = Config::parse("harbormaster.toml", &text).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"services.web.environments.dev.follow.regex"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"services.web.environments.qa.follow.semver"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"services.web.secrets.DATABASE_PASSWORD"),
            "{fields:?}"
        );
        assert!(
            fields.contains(&"services.web.environments.qa"),
            "{fields:?}"
        );
        assert!(errs.0.iter().all(|e| e.file == "harbormaster.toml"));
    }

    #[test]
    fn unsupported_strategy_names_what_is_allowed() {
        let text = GOOD.replace(
            "desired_count = 2",
            "desired_count = 2\nstrategy = \"yolo\"",
        );
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`services.web.strategy`"), "{err}");
        assert!(
            err.contains("allowed: \"rolling\", \"blue_green\""),
            "{err}"
        );
    }

    #[test]
    fn plaintext_secret_in_variables_is_rejected_without_echoing_it() {
        let text = GOOD.replace("DEBUG = \"true\"", "DB_PASSWORD = \"hunter2-very-secret\"");
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.web.environments.dev.variables.DB_PASSWORD"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_variable_and_a_secret_may_not_share_a_name() {
        let text = GOOD.replace("DEBUG = \"true\"", "DATABASE_PASSWORD = \"\"");
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(err.contains("both a variable and a secret"), "{err}");
    }

    #[test]
    fn native_strategies_need_a_load_balancer_and_gates_need_a_native_strategy() {
        let text = GOOD.replace(
            "desired_count = 2\n",
            "desired_count = 2\nstrategy = \"canary\"\n",
        );
        let errs = Config::parse("harbormaster.toml", &text).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"services.web.load_balancer"), "{fields:?}");
        assert!(fields.contains(&"services.web.canary"), "{fields:?}");

        let text = GOOD.replace(
            "[services.web.environments.dev]\n",
            "[services.web.environments.dev]\napproval = { stage = \"post_test_traffic_shift\" }\n",
        );
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.web.environments.dev") && err.contains("lifecycle hooks"),
            "{err}"
        );
    }

    #[test]
    fn a_canary_with_gates_parses_and_bad_gates_are_named() {
        let native = r#"
strategy = "canary"
canary = { percent = 10, interval_minutes = 5 }
load_balancer = { container = "web", port = 8000 }
"#;
        let check = r#"
[services.web.checks.latency]
stages = ["post_production_traffic_shift"]
threshold = 2
queries = [
  { id = "p99", namespace = "AWS/ApplicationELB", metric = "TargetResponseTime", stat = "p99" },
]

[services.web.environments.dev]
"#;
        let text = GOOD
            .replace(
                "desired_count = 2\n",
                &format!("desired_count = 2\n{native}"),
            )
            .replace("[services.web.environments.dev]\n", check);
        let cfg = Config::parse("harbormaster.toml", &text).unwrap();
        let (_, s, t) = cfg.target("dev", "web").unwrap();
        assert_eq!(s.strategy, Strategy::Canary);
        assert_eq!(
            s.native.as_ref().unwrap().canary.as_ref().unwrap().percent,
            10.0
        );
        assert_eq!(t.gates.checks[0].value, "p99");

        let bad = text
            .replace("post_production_traffic_shift", "after_lunch")
            .replace("id = \"p99\"", "id = \"P99\"")
            .replace("percent = 10", "percent = 100");
        let errs = Config::parse("harbormaster.toml", &bad).unwrap_err();
        let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "services.web.checks.latency.stages",
            "services.web.checks.latency.queries[0].id",
            "services.web.canary.percent",
        ] {
            assert!(fields.contains(&f), "{f} not in {fields:?}");
        }
    }

    #[test]
    fn worker_scaling_parses_and_bad_sources_are_named() {
        let scaled = GOOD.replace(
            "[services.web.environments.prod]\n",
            "[services.web.environments.prod]\nscaling = { max = 10, latency_seconds = 600, processing_ms = 250, sqs = { queue = \"jobs\" } }\n",
        );
        let cfg = Config::parse("harbormaster.toml", &scaled).unwrap();
        let s = cfg
            .target("prod", "web")
            .unwrap()
            .2
            .scaling
            .clone()
            .unwrap();
        assert_eq!(s.per_task, 2400.0);
        assert_eq!((s.min, s.max), (0, 10));
        assert_eq!(s.scale_in_cooldown.num_seconds(), 300);
        assert!(cfg.target("prod", "web").unwrap().2.desired_count.is_some());

        for (bad, field, words) in [
            ("{ max = 3, per_task = 10 }", "scaling", "exactly one backlog source"),
            ("{ max = 3, per_task = 10, sqs = { queue = \"a\" }, metric = { namespace = \"n\", metric = \"m\" } }", "scaling", "exactly one"),
            ("{ max = 3, per_task = 10, redis = { url = \"redis://:hunter2-secret@cache:6379/0\" } }", "scaling.redis.url", "url_secret"),
            ("{ max = 3, sqs = { queue = \"a\" } }", "scaling", "per_task"),
            ("{ min = 4, max = 3, per_task = 1, sqs = { queue = \"a\" } }", "scaling.max", "at least `min`"),
        ] {
            let text = GOOD.replace(
                "[services.web.environments.prod]\n",
                &format!("[services.web.environments.prod]\nscaling = {bad}\n"),
            );
            let err = Config::parse("harbormaster.toml", &text).unwrap_err().to_string();
            assert!(
                err.contains(&format!("services.web.environments.prod.{field}")) && err.contains(words),
                "{bad}: {err}"
            );
            assert!(!err.contains("hunter2"), "{err}");
        }
    }
}
