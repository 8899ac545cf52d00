//! ECS's native deployment strategies (blue/green, canary, linear) and the gates the agent runs
//! at their lifecycle hooks: metric checks and approval. Parsed and checked here; turned into the
//! `UpdateService` settings by [`NativeDeployment::resolve`], which fills what the config leaves
//! out from the bootstrap's SSM outputs and names every piece still missing.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Where the config collects its errors (`config::Collector`), seen from here.
pub(crate) trait Errors {
    fn err(&mut self, field: String, problem: String);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Rolling,
    BlueGreen,
    Canary,
    Linear,
}

impl Strategy {
    pub fn parse(s: &str) -> Option<Strategy> {
        Some(match s {
            "rolling" => Strategy::Rolling,
            "blue_green" => Strategy::BlueGreen,
            "canary" => Strategy::Canary,
            "linear" => Strategy::Linear,
            _ => return None,
        })
    }

    /// ECS's name for it (`deploymentConfiguration.strategy`).
    pub fn ecs_name(self) -> &'static str {
        match self {
            Strategy::Rolling => "ROLLING",
            Strategy::BlueGreen => "BLUE_GREEN",
            Strategy::Canary => "CANARY",
            Strategy::Linear => "LINEAR",
        }
    }

    pub fn is_native(self) -> bool {
        self != Strategy::Rolling
    }
}

/// A lifecycle stage of an ECS native deployment, where a hook may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Stage {
    ReconcileService,
    PreScaleUp,
    PostScaleUp,
    TestTrafficShift,
    PostTestTrafficShift,
    PreProductionTrafficShift,
    ProductionTrafficShift,
    PostProductionTrafficShift,
}

impl Stage {
    pub const ALL: [Stage; 8] = [
        Stage::ReconcileService,
        Stage::PreScaleUp,
        Stage::PostScaleUp,
        Stage::TestTrafficShift,
        Stage::PostTestTrafficShift,
        Stage::PreProductionTrafficShift,
        Stage::ProductionTrafficShift,
        Stage::PostProductionTrafficShift,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::ReconcileService => "RECONCILE_SERVICE",
            Stage::PreScaleUp => "PRE_SCALE_UP",
            Stage::PostScaleUp => "POST_SCALE_UP",
            Stage::TestTrafficShift => "TEST_TRAFFIC_SHIFT",
            Stage::PostTestTrafficShift => "POST_TEST_TRAFFIC_SHIFT",
            Stage::PreProductionTrafficShift => "PRE_PRODUCTION_TRAFFIC_SHIFT",
            Stage::ProductionTrafficShift => "PRODUCTION_TRAFFIC_SHIFT",
            Stage::PostProductionTrafficShift => "POST_PRODUCTION_TRAFFIC_SHIFT",
        }
    }

    /// Accepts ECS's spelling and the lower-case one a config file reads better with.
    pub fn parse(s: &str) -> Option<Stage> {
        let up = s.to_ascii_uppercase();
        Stage::ALL.into_iter().find(|st| st.as_str() == up)
    }

    /// Stages that only exist when the service has a test listener rule.
    pub fn needs_test_listener(self) -> bool {
        matches!(self, Stage::TestTrafficShift | Stage::PostTestTrafficShift)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

fn stage_names() -> String {
    Stage::ALL
        .iter()
        .map(|s| s.as_str().to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One traffic step of canary (`percent` first, the rest after `interval_minutes`) or linear
/// (`percent` more every `interval_minutes`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Shift {
    pub percent: f64,
    pub interval_minutes: u32,
}

/// The load balancer of a native deployment. Every ARN left out is read from the bootstrap's
/// outputs when a deployment starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LoadBalancerSettings {
    pub container: String,
    pub port: u16,
    pub target_group: Option<String>,
    pub alternate_target_group: Option<String>,
    pub production_listener_rule: Option<String>,
    pub test_listener_rule: Option<String>,
    pub role: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NativeSettings {
    pub strategy: Strategy,
    pub bake_time_minutes: u32,
    pub canary: Option<Shift>,
    pub linear: Option<Shift>,
    pub load_balancer: LoadBalancerSettings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// The check fails when the value is above the threshold (error rates, latency).
    Above,
    /// The check fails when the value is below the threshold (success rates, throughput).
    Below,
}

#[derive(Debug, Clone, PartialEq)]
pub enum QueryKind {
    Metric {
        namespace: String,
        metric: String,
        dimensions: BTreeMap<String, String>,
        stat: String,
        period_seconds: u32,
    },
    /// CloudWatch metric math over the other queries' ids.
    Expression {
        expression: String,
        period_seconds: u32,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct MetricQuery {
    pub id: String,
    pub kind: QueryKind,
}

/// A CloudWatch check: the value of query `value` over the last `window_minutes`, its worst
/// datapoint compared with `threshold`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricCheck {
    pub name: String,
    pub stages: Vec<Stage>,
    pub fail_when: Direction,
    pub threshold: f64,
    pub window_minutes: u32,
    /// Rounds in a row with no measurement before the gate fails (it never passes by default).
    pub max_inconclusive: u32,
    pub value: String,
    pub queries: Vec<MetricQuery>,
}

impl MetricCheck {
    /// The worst datapoint for this check's direction: the one that decides.
    pub fn worst(&self, values: &[f64]) -> Option<f64> {
        let finite = values.iter().copied().filter(|v| v.is_finite());
        match self.fail_when {
            Direction::Above => finite.reduce(f64::max),
            Direction::Below => finite.reduce(f64::min),
        }
    }

    pub fn breached(&self, value: f64) -> bool {
        match self.fail_when {
            Direction::Above => value > self.threshold,
            Direction::Below => value < self.threshold,
        }
    }

    pub fn describe_limit(&self) -> String {
        match self.fail_when {
            Direction::Above => format!("at most {}", self.threshold),
            Direction::Below => format!("at least {}", self.threshold),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    Reject,
    Approve,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalGate {
    pub stage: Stage,
    pub timeout_minutes: u32,
    pub on_timeout: OnTimeout,
}

/// The gates of one (environment, service).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gates {
    pub checks: Vec<MetricCheck>,
    pub approval: Option<ApprovalGate>,
}

impl Gates {
    pub fn checks_at(&self, stage: Stage) -> impl Iterator<Item = &MetricCheck> {
        self.checks
            .iter()
            .filter(move |c| c.stages.contains(&stage))
    }

    /// Stages the hook must be registered for: every gated one, and production traffic shift,
    /// where a release superseded meanwhile is stopped before it takes production traffic.
    pub fn hook_stages(&self) -> Vec<Stage> {
        let mut stages: Vec<Stage> = self
            .checks
            .iter()
            .flat_map(|c| c.stages.iter().copied())
            .chain(self.approval.as_ref().map(|a| a.stage))
            .chain([Stage::ProductionTrafficShift])
            .collect();
        stages.sort();
        stages.dedup();
        stages
    }
}

impl NativeSettings {
    /// How much longer than a rolling update ECS may take, by the config: the bake time, the
    /// traffic steps, the approval's timeout and the rounds checks may wait for data. The tick
    /// adds this to `stabilize_timeout_minutes`, so it never fails a deployment ECS is still
    /// (rightly) holding.
    pub fn extra_minutes(&self, gates: &Gates, callback_seconds: u32) -> i64 {
        let steps = match (&self.canary, &self.linear) {
            (Some(c), _) => i64::from(c.interval_minutes),
            (None, Some(l)) => {
                let n = (100.0 / l.percent).ceil() as i64;
                n * i64::from(l.interval_minutes)
            }
            (None, None) => 0,
        };
        let approval = gates
            .approval
            .as_ref()
            .map(|a| i64::from(a.timeout_minutes))
            .unwrap_or(0);
        let waiting: i64 = gates
            .checks
            .iter()
            .map(|c| {
                let rounds = i64::from(c.max_inconclusive + 1) * c.stages.len() as i64;
                (rounds * i64::from(callback_seconds) + 59) / 60
            })
            .sum();
        i64::from(self.bake_time_minutes) + steps + approval + waiting
    }
}

// ---------- raw, as written ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawShift {
    percent: f64,
    interval_minutes: u32,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoadBalancer {
    container: String,
    port: u16,
    #[serde(default)]
    target_group: Option<String>,
    #[serde(default)]
    alternate_target_group: Option<String>,
    #[serde(default)]
    production_listener_rule: Option<String>,
    #[serde(default)]
    test_listener_rule: Option<String>,
    #[serde(default)]
    role: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    stages: Vec<String>,
    threshold: f64,
    #[serde(default)]
    fail_when: Option<String>,
    #[serde(default)]
    window_minutes: Option<u32>,
    #[serde(default)]
    max_inconclusive: Option<u32>,
    #[serde(default)]
    value: Option<String>,
    queries: Vec<RawQuery>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawQuery {
    id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    metric: Option<String>,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    #[serde(default)]
    stat: Option<String>,
    #[serde(default)]
    period_seconds: Option<u32>,
    #[serde(default)]
    expression: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApproval {
    stage: String,
    #[serde(default)]
    timeout_minutes: Option<u32>,
    #[serde(default)]
    on_timeout: Option<String>,
}

/// The native-strategy part of a `[services.<name>]` table, as written.
#[derive(Debug, Deserialize, Default)]
pub(crate) struct RawNative {
    pub bake_time_minutes: Option<u32>,
    pub canary: Option<RawShift>,
    pub linear: Option<RawShift>,
    pub load_balancer: Option<RawLoadBalancer>,
}

pub(crate) fn parse_native(
    c: &mut impl Errors,
    field: &str,
    strategy: Strategy,
    raw: RawNative,
) -> Option<NativeSettings> {
    if !strategy.is_native() {
        for (set, key) in [
            (raw.bake_time_minutes.is_some(), "bake_time_minutes"),
            (raw.canary.is_some(), "canary"),
            (raw.linear.is_some(), "linear"),
            (raw.load_balancer.is_some(), "load_balancer"),
        ] {
            if set {
                c.err(
                    format!("{field}.{key}"),
                    "applies to strategy \"blue_green\", \"canary\" or \"linear\"; this service is rolling".into(),
                );
            }
        }
        return None;
    }
    let mut shift = |key: &str, wanted: bool, raw: Option<RawShift>| -> Option<Shift> {
        match (wanted, raw) {
            (false, Some(_)) => {
                c.err(
                    format!("{field}.{key}"),
                    format!("applies to strategy \"{key}\" only"),
                );
                None
            }
            (false, None) => None,
            (true, None) => {
                c.err(
                    format!("{field}.{key}"),
                    format!("strategy \"{key}\" needs `{key} = {{ percent = <0-100>, interval_minutes = <n> }}`"),
                );
                None
            }
            (true, Some(s)) => {
                if !(s.percent > 0.0 && s.percent < 100.0) {
                    c.err(
                        format!("{field}.{key}.percent"),
                        "allowed: more than 0 and less than 100".into(),
                    );
                }
                if s.interval_minutes > 1440 {
                    c.err(
                        format!("{field}.{key}.interval_minutes"),
                        "allowed: 0 to 1440".into(),
                    );
                }
                Some(Shift {
                    percent: s.percent,
                    interval_minutes: s.interval_minutes,
                })
            }
        }
    };
    let canary = shift("canary", strategy == Strategy::Canary, raw.canary);
    let linear = shift("linear", strategy == Strategy::Linear, raw.linear);
    let bake_time_minutes = raw.bake_time_minutes.unwrap_or(5);
    if bake_time_minutes > 1440 {
        c.err(
            format!("{field}.bake_time_minutes"),
            "allowed: 0 to 1440".into(),
        );
    }
    let Some(lb) = raw.load_balancer else {
        c.err(
            format!("{field}.load_balancer"),
            format!(
                "strategy \"{}\" shifts traffic between two target groups: give `container` and `port` (the ARNs default to the bootstrap's outputs)",
                strategy_word(strategy)
            ),
        );
        return None;
    };
    if lb.container.is_empty() {
        c.err(
            format!("{field}.load_balancer.container"),
            "must not be empty".into(),
        );
    }
    if lb.port == 0 {
        c.err(
            format!("{field}.load_balancer.port"),
            "allowed: 1 to 65535".into(),
        );
    }
    for (key, v) in [
        ("target_group", &lb.target_group),
        ("alternate_target_group", &lb.alternate_target_group),
        ("production_listener_rule", &lb.production_listener_rule),
        ("test_listener_rule", &lb.test_listener_rule),
        ("role", &lb.role),
    ] {
        if let Some(v) = v {
            if !v.starts_with("arn:") {
                c.err(
                    format!("{field}.load_balancer.{key}"),
                    "expected an ARN (or leave it out to use the bootstrap's output)".into(),
                );
            }
        }
    }
    if lb.target_group.is_some() && lb.target_group == lb.alternate_target_group {
        c.err(
            format!("{field}.load_balancer.alternate_target_group"),
            "must differ from `target_group`: traffic shifts between the two".into(),
        );
    }
    Some(NativeSettings {
        strategy,
        bake_time_minutes,
        canary,
        linear,
        load_balancer: LoadBalancerSettings {
            container: lb.container,
            port: lb.port,
            target_group: lb.target_group,
            alternate_target_group: lb.alternate_target_group,
            production_listener_rule: lb.production_listener_rule,
            test_listener_rule: lb.test_listener_rule,
            role: lb.role,
        },
    })
}

fn strategy_word(s: Strategy) -> &'static str {
    match s {
        Strategy::Rolling => "rolling",
        Strategy::BlueGreen => "blue_green",
        Strategy::Canary => "canary",
        Strategy::Linear => "linear",
    }
}

fn query_id_ok(id: &str) -> bool {
    // CloudWatch's rule for GetMetricData ids.
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_stage(c: &mut impl Errors, field: &str, s: &str) -> Option<Stage> {
    let st = Stage::parse(s);
    if st.is_none() {
        c.err(
            field.to_owned(),
            format!(
                "`{s}` is not an ECS lifecycle stage; allowed: {}",
                stage_names()
            ),
        );
    }
    st
}

pub(crate) fn parse_checks(
    c: &mut impl Errors,
    field: &str,
    raw: BTreeMap<String, RawCheck>,
) -> Vec<MetricCheck> {
    let mut out = Vec::new();
    for (name, r) in raw {
        let f = format!("{field}.{name}");
        if r.stages.is_empty() {
            c.err(
                format!("{f}.stages"),
                "name at least one lifecycle stage".into(),
            );
        }
        let stages: Vec<Stage> = r
            .stages
            .iter()
            .filter_map(|s| parse_stage(c, &format!("{f}.stages"), s))
            .collect();
        let fail_when = match r.fail_when.as_deref().unwrap_or("above") {
            "above" => Direction::Above,
            "below" => Direction::Below,
            other => {
                c.err(
                    format!("{f}.fail_when"),
                    format!("`{other}` is not allowed; allowed: \"above\", \"below\""),
                );
                Direction::Above
            }
        };
        if !r.threshold.is_finite() {
            c.err(format!("{f}.threshold"), "must be a number".into());
        }
        let window_minutes = r.window_minutes.unwrap_or(5);
        if !(1..=1440).contains(&window_minutes) {
            c.err(format!("{f}.window_minutes"), "allowed: 1 to 1440".into());
        }
        let mut queries = Vec::new();
        for (i, q) in r.queries.into_iter().enumerate() {
            let qf = format!("{f}.queries[{i}]");
            if !query_id_ok(&q.id) {
                c.err(
                    format!("{qf}.id"),
                    "start with a lower-case letter; letters, digits and `_` only".into(),
                );
            }
            let period_seconds = q.period_seconds.unwrap_or(60);
            if period_seconds == 0 || (period_seconds >= 60 && period_seconds % 60 != 0) {
                c.err(
                    format!("{qf}.period_seconds"),
                    "allowed: 1, 5, 10, 30, or a multiple of 60".into(),
                );
            }
            let kind = match (q.expression, q.namespace, q.metric) {
                (Some(expression), None, None) if q.dimensions.is_empty() && q.stat.is_none() => {
                    QueryKind::Expression {
                        expression,
                        period_seconds,
                    }
                }
                (None, Some(namespace), Some(metric)) => QueryKind::Metric {
                    namespace,
                    metric,
                    dimensions: q.dimensions,
                    stat: q.stat.unwrap_or_else(|| "Average".into()),
                    period_seconds,
                },
                _ => {
                    c.err(
                        qf,
                        "give either `expression`, or `namespace` and `metric` (with optional `dimensions` and `stat`)".into(),
                    );
                    continue;
                }
            };
            queries.push(MetricQuery { id: q.id, kind });
        }
        if queries.is_empty() {
            c.err(format!("{f}.queries"), "give at least one query".into());
        }
        let value = match r.value {
            Some(v) => {
                if !queries.iter().any(|q| q.id == v) {
                    c.err(format!("{f}.value"), format!("no query has id `{v}`"));
                }
                v
            }
            None => queries.last().map(|q| q.id.clone()).unwrap_or_default(),
        };
        out.push(MetricCheck {
            name,
            stages,
            fail_when,
            threshold: r.threshold,
            window_minutes,
            max_inconclusive: r.max_inconclusive.unwrap_or(3),
            value,
            queries,
        });
    }
    out
}

pub(crate) fn parse_approval(
    c: &mut impl Errors,
    field: &str,
    raw: RawApproval,
) -> Option<ApprovalGate> {
    let stage = parse_stage(c, &format!("{field}.stage"), &raw.stage)?;
    let timeout_minutes = raw.timeout_minutes.unwrap_or(60);
    if !(1..=10080).contains(&timeout_minutes) {
        c.err(
            format!("{field}.timeout_minutes"),
            "allowed: 1 to 10080 (a week)".into(),
        );
    }
    let on_timeout = match raw.on_timeout.as_deref().unwrap_or("reject") {
        "reject" => OnTimeout::Reject,
        "approve" => OnTimeout::Approve,
        other => {
            c.err(
                format!("{field}.on_timeout"),
                format!("`{other}` is not allowed; allowed: \"reject\", \"approve\""),
            );
            OnTimeout::Reject
        }
    };
    Some(ApprovalGate {
        stage,
        timeout_minutes,
        on_timeout,
    })
}

/// Replaces `${project}`, `${env}` and `${service}` in a check's dimensions and expressions, so
/// one service-wide check measures each environment's own resources.
pub fn localise(check: &MetricCheck, project: &str, env: &str, service: &str) -> MetricCheck {
    let sub = |s: &str| {
        s.replace("${project}", project)
            .replace("${env}", env)
            .replace("${service}", service)
    };
    let mut c = check.clone();
    for q in &mut c.queries {
        match &mut q.kind {
            QueryKind::Metric { dimensions, .. } => {
                for v in dimensions.values_mut() {
                    *v = sub(v);
                }
            }
            QueryKind::Expression { expression, .. } => *expression = sub(expression),
        }
    }
    c
}

// ---------- resolved for UpdateService ----------

/// Names of the bootstrap's outputs (under `/<project>/<env>/outputs/`) a native deployment
/// reads when the config does not name the resource.
pub fn output_names(service: &str) -> [(&'static str, String); 5] {
    [
        ("target_group", format!("target-groups/{service}/blue")),
        (
            "alternate_target_group",
            format!("target-groups/{service}/green"),
        ),
        (
            "production_listener_rule",
            format!("production-rules/{service}"),
        ),
        ("test_listener_rule", format!("test-rules/{service}")),
        ("role", "roles/ecs-infrastructure".to_owned()),
    ]
}

/// Where the installed agent records its `ecs-hook` function and the role ECS invokes it with
/// (under `/<project>/agent/`), unless `[agent]` names them.
pub const HOOK_FUNCTION_OUTPUT: &str = "hook-function-arn";
pub const HOOK_ROLE_OUTPUT: &str = "hook-role-arn";

/// Everything `UpdateService` needs for a native deployment, with every ARN known.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeDeployment {
    pub strategy: Strategy,
    pub bake_time_minutes: u32,
    pub canary: Option<Shift>,
    pub linear: Option<Shift>,
    pub container: String,
    pub port: u16,
    pub target_group: String,
    pub alternate_target_group: String,
    pub production_listener_rule: String,
    pub test_listener_rule: Option<String>,
    pub role: String,
    pub hook_function: String,
    pub hook_role: String,
    pub hook_stages: Vec<Stage>,
}

impl NativeDeployment {
    /// `outputs` holds the bootstrap's and the agent's outputs by their short names (see
    /// [`output_names`], [`HOOK_FUNCTION_OUTPUT`]). Errors name every missing piece at once.
    pub fn resolve(
        service: &str,
        native: &NativeSettings,
        gates: &Gates,
        hook: (Option<&str>, Option<&str>),
        outputs: &BTreeMap<String, String>,
    ) -> Result<NativeDeployment, String> {
        let lb = &native.load_balancer;
        let names = output_names(service);
        let mut missing = Vec::new();
        let mut pick = |given: &Option<String>, i: usize, required: bool| -> Option<String> {
            let (key, output) = &names[i];
            given
                .clone()
                .or_else(|| outputs.get(output).filter(|v| !v.is_empty()).cloned())
                .or_else(|| {
                    if required {
                        missing.push(format!(
                            "`load_balancer.{key}` (not in the config, and no output `{output}`)"
                        ));
                    }
                    None
                })
        };
        let target_group = pick(&lb.target_group, 0, true);
        let alternate_target_group = pick(&lb.alternate_target_group, 1, true);
        let production_listener_rule = pick(&lb.production_listener_rule, 2, true);
        let test_listener_rule = pick(&lb.test_listener_rule, 3, false);
        let role = pick(&lb.role, 4, true);
        let mut agent = |given: Option<&str>, output: &str, key: &str| {
            given
                .map(str::to_owned)
                .or_else(|| outputs.get(output).filter(|v| !v.is_empty()).cloned())
                .or_else(|| {
                    missing.push(format!(
                        "`agent.{key}` (not in the config, and no agent output `{output}`: install the agent first)"
                    ));
                    None
                })
        };
        let hook_function = agent(hook.0, HOOK_FUNCTION_OUTPUT, "hook_function_arn");
        let hook_role = agent(hook.1, HOOK_ROLE_OUTPUT, "hook_role_arn");
        let hook_stages = gates.hook_stages();
        if test_listener_rule.is_none() {
            for s in hook_stages.iter().filter(|s| s.needs_test_listener()) {
                missing.push(format!(
                    "`load_balancer.test_listener_rule`: a gate runs at {s}, which only happens with test traffic"
                ));
            }
        }
        if let (Some(a), Some(b)) = (&target_group, &alternate_target_group) {
            if a == b {
                missing.push("a second target group: `target_group` and `alternate_target_group` are the same".into());
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "{} deployment of `{service}` cannot start; missing: {}",
                strategy_word(native.strategy),
                missing.join("; ")
            ));
        }
        Ok(NativeDeployment {
            strategy: native.strategy,
            bake_time_minutes: native.bake_time_minutes,
            canary: native.canary.clone(),
            linear: native.linear.clone(),
            container: lb.container.clone(),
            port: lb.port,
            target_group: target_group.expect("checked"),
            alternate_target_group: alternate_target_group.expect("checked"),
            production_listener_rule: production_listener_rule.expect("checked"),
            test_listener_rule,
            role: role.expect("checked"),
            hook_function: hook_function.expect("checked"),
            hook_role: hook_role.expect("checked"),
            hook_stages,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn native() -> NativeSettings {
        NativeSettings {
            strategy: Strategy::Canary,
            bake_time_minutes: 5,
            canary: Some(Shift {
                percent: 10.0,
                interval_minutes: 3,
            }),
            linear: None,
            load_balancer: LoadBalancerSettings {
                container: "web".into(),
                port: 8000,
                ..Default::default()
            },
        }
    }

    fn outputs() -> BTreeMap<String, String> {
        [
            ("target-groups/web/blue", "arn:tg/blue"),
            ("target-groups/web/green", "arn:tg/green"),
            ("production-rules/web", "arn:rule/prod"),
            ("roles/ecs-infrastructure", "arn:role/infra"),
            (HOOK_FUNCTION_OUTPUT, "arn:lambda:hook"),
            (HOOK_ROLE_OUTPUT, "arn:role/hook"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    #[test]
    fn outputs_fill_what_the_config_leaves_out() {
        let d = NativeDeployment::resolve(
            "web",
            &native(),
            &Gates::default(),
            (None, None),
            &outputs(),
        )
        .unwrap();
        assert_eq!(d.alternate_target_group, "arn:tg/green");
        assert_eq!(d.hook_function, "arn:lambda:hook");
        assert_eq!(d.hook_stages, vec![Stage::ProductionTrafficShift]);
        assert_eq!(d.test_listener_rule, None);
    }

    #[test]
    fn every_missing_piece_is_named() {
        let mut o = outputs();
        o.remove("target-groups/web/green");
        o.remove(HOOK_ROLE_OUTPUT);
        let gates = Gates {
            approval: Some(ApprovalGate {
                stage: Stage::PostTestTrafficShift,
                timeout_minutes: 10,
                on_timeout: OnTimeout::Reject,
            }),
            ..Default::default()
        };
        let err =
            NativeDeployment::resolve("web", &native(), &gates, (None, None), &o).unwrap_err();
        assert!(
            err.contains("load_balancer.alternate_target_group"),
            "{err}"
        );
        assert!(err.contains("agent.hook_role_arn"), "{err}");
        assert!(err.contains("test_listener_rule"), "{err}");
    }

    #[test]
    fn worst_datapoint_decides_by_direction() {
        let mut c = MetricCheck {
            name: "x".into(),
            stages: vec![Stage::PostProductionTrafficShift],
            fail_when: Direction::Above,
            threshold: 5.0,
            window_minutes: 5,
            max_inconclusive: 3,
            value: "v".into(),
            queries: vec![],
        };
        assert_eq!(c.worst(&[1.0, 7.0, 2.0]), Some(7.0));
        assert!(c.breached(7.0));
        c.fail_when = Direction::Below;
        assert_eq!(c.worst(&[1.0, 7.0, f64::NAN]), Some(1.0));
        assert!(c.breached(1.0));
        assert_eq!(c.worst(&[]), None);
    }
}
