//! ECS's native deployment strategies (blue/green, canary, linear) and the gates the agent runs
//! at their lifecycle hooks: metric checks and approval. Parsed and checked here; turned into the
//! `UpdateService` settings by [`NativeDeployment::resolve`], which fills what the config leaves
//! out from the bootstrap's SSM outputs and names every piece still missing.

mod gates;
mod native;
mod raw;
mod resolved;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use gates::localise;
pub(crate) use gates::{parse_approval, parse_checks};
pub(crate) use native::parse_native;
pub(crate) use raw::{RawApproval, RawCheck, RawLoadBalancer, RawNative, RawShift};
pub use resolved::{
    output_names, Missing, NativeDeployment, Unresolved, HOOK_FUNCTION_OUTPUT, HOOK_ROLE_OUTPUT,
};

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

pub(crate) fn stage_names() -> String {
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

/// The most minutes ECS lets one lifecycle hook run (DeploymentLifecycleHookTimeoutConfiguration,
/// `timeoutInMinutes`, "Valid Range: Minimum value of 1. Maximum value of 20160").
pub const ECS_HOOK_TIMEOUT_MAX_MINUTES: u32 = 20_160;

/// Kept beyond the agent's own longest wait at a stage, so the agent, not ECS's timeout,
/// decides (a throttled or retried invocation arrives late).
const HOOK_TIMEOUT_MARGIN_MINUTES: u64 = 15;

impl Gates {
    /// How long ECS must let the hook answer IN_PROGRESS before its timeout action: the longest
    /// the agent itself may hold one stage (the approval's timeout, then the checks' rounds
    /// waiting for data), with a margin. ECS's own default (1,440 minutes) is too short for
    /// an approval of up to a week, and a timeout the agent did not decide is a rollback.
    pub fn hook_timeout_minutes(&self, callback_seconds: u32) -> u64 {
        let stages = self.hook_stages();
        let longest = stages
            .iter()
            .map(|&stage| {
                let approval = self
                    .approval
                    .as_ref()
                    .filter(|a| a.stage == stage)
                    .map(|a| u64::from(a.timeout_minutes))
                    .unwrap_or(0);
                let rounds = self
                    .checks_at(stage)
                    .map(|c| u64::from(c.max_inconclusive) + 1)
                    .max()
                    .unwrap_or(0);
                approval + (rounds * u64::from(callback_seconds)).div_ceil(60)
            })
            .max()
            .unwrap_or(0);
        longest + HOOK_TIMEOUT_MARGIN_MINUTES
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
                // ECS bakes between shifts, not after the one that reaches 100 %
                // (LinearConfiguration, `stepBakeTimeInMinutes`).
                let shifts = (100.0 / l.percent).ceil() as i64;
                (shifts - 1).max(0) * i64::from(l.interval_minutes)
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

/// The config's word for a strategy.
pub(crate) fn strategy_word(s: Strategy) -> &'static str {
    match s {
        Strategy::Rolling => "rolling",
        Strategy::BlueGreen => "blue_green",
        Strategy::Canary => "canary",
        Strategy::Linear => "linear",
    }
}

#[cfg(test)]
mod tests;
