//! Worker scaling on queue depth: the policy a worker service declares, where its backlog is
//! read from, and the decision (pure): desired = ceil(backlog / per_task), clamped; quickly up,
//! carefully down, never while a deployment of the service is in flight.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Where the backlog is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BacklogSource {
    /// SQS ApproximateNumberOfMessages (plus NotVisible when `in_flight`).
    Sqs { queue: String, in_flight: bool },
    /// A CloudWatch metric the application reports itself: its latest datapoint.
    Metric {
        namespace: String,
        metric: String,
        dimensions: BTreeMap<String, String>,
        stat: String,
    },
    /// Dramatiq's Redis broker: the length of each queue's list (and its delay queue).
    Redis {
        url: RedisUrl,
        /// The lists whose lengths add up to the backlog (`dramatiq:default`, …).
        keys: Vec<String>,
    },
}

/// A Redis URL may carry a password: written in the config it must not; from SSM it is a
/// SecureString, read (decrypted) only by the adapter that connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisUrl {
    Plain(String),
    /// The SSM parameter holding it.
    Parameter(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScalingPolicy {
    pub source: BacklogSource,
    /// Backlog one task should carry.
    pub per_task: f64,
    pub min: u32,
    pub max: u32,
    /// Tasks added per decision at most (`None`: straight to the target).
    pub step: Option<u32>,
    pub scale_in_cooldown: Duration,
    pub scale_out_cooldown: Duration,
    /// At `max` with the backlog still growing this long: tell the team.
    pub alert_after: Duration,
}

/// What the agent remembers between ticks, in the state document.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_out: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_in: Option<DateTime<Utc>>,
    /// Since when every decision wanted fewer tasks than there are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_since: Option<DateTime<Utc>>,
    /// Since when the service sits at `max` with more backlog than it can carry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_max_since: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backlog: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub alerted: bool,
    /// The last decision waited for a deployment of the service to finish.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting_for_deployment: bool,
    /// The backlog could not be read: since when, and the last reason. Cleared once it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreadable: Option<Unreadable>,
}

/// A backlog the agent could not read, kept so `status` shows it and its start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// What was measured for one decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Measured {
    pub backlog: u64,
    pub desired: u32,
    pub running: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScaleDecision {
    pub backlog: u64,
    pub running: u32,
    pub current: u32,
    /// ceil(backlog / per_task), clamped to min..max.
    pub target: u32,
    pub desired: u32,
    pub backlog_per_task: f64,
    pub reason: String,
    /// Set when the team should hear that `max` is not enough.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
}

impl ScaleDecision {
    pub fn changes(&self) -> bool {
        self.desired != self.current
    }
}

/// The decision for one tick. `deploying`: a deployment of the service is in flight.
pub fn decide(
    policy: &ScalingPolicy,
    state: &ScalingState,
    m: Measured,
    deploying: bool,
    now: DateTime<Utc>,
) -> (ScaleDecision, ScalingState) {
    let mut s = state.clone();
    // With nothing running, one task's worth: a service at zero wakes on its first message.
    let per_running = m.backlog as f64 / f64::from(m.running.max(1));
    let wanted = (m.backlog as f64 / policy.per_task).ceil() as u64;
    let target = (wanted.min(u64::from(u32::MAX)) as u32).clamp(policy.min, policy.max);
    let current = m.desired;
    let mut d = ScaleDecision {
        backlog: m.backlog,
        running: m.running,
        current,
        target,
        desired: current,
        backlog_per_task: per_running,
        reason: String::new(),
        alert: None,
    };
    d.alert = watch_ceiling(policy, state, &mut s, &m, wanted, now);
    s.last_backlog = Some(m.backlog);
    s.waiting_for_deployment = deploying;
    if deploying {
        d.reason = "a deployment of the service is in flight; scaling waits for it".into();
    } else if target > current {
        scale_out(policy, &mut s, &mut d, now);
    } else if target < current {
        scale_in(policy, &mut s, &mut d, now);
    } else {
        s.low_since = None;
        d.reason = format!("{current} tasks carry a backlog of {}", m.backlog);
    }
    (d, s)
}

/// Sitting at max while the backlog grows: an alert, once, after `alert_after`.
fn watch_ceiling(
    policy: &ScalingPolicy,
    before: &ScalingState,
    s: &mut ScalingState,
    m: &Measured,
    wanted: u64,
    now: DateTime<Utc>,
) -> Option<String> {
    let growing = before.last_backlog.is_none_or(|b| m.backlog >= b);
    let over = wanted > u64::from(policy.max);
    if m.desired >= policy.max && over && growing {
        let since = *s.at_max_since.get_or_insert(now);
        if now - since >= policy.alert_after && !s.alerted {
            s.alerted = true;
            return Some(format!(
                "at its maximum of {} tasks for {} min with the backlog still growing ({} waiting, {} per task)",
                policy.max,
                (now - since).num_minutes(),
                m.backlog,
                policy.per_task
            ));
        }
    } else if m.desired < policy.max || !over {
        s.at_max_since = None;
        s.alerted = false;
    }
    None
}

/// More tasks, unless the last scale-out was within the cooldown; at most `step` more.
fn scale_out(
    policy: &ScalingPolicy,
    s: &mut ScalingState,
    d: &mut ScaleDecision,
    now: DateTime<Utc>,
) {
    let (target, current) = (d.target, d.current);
    s.low_since = None;
    if let Some(t) = s.last_out.filter(|t| now - *t < policy.scale_out_cooldown) {
        d.reason = format!(
            "wants {target}, but scaled out {}s ago (cooldown {}s)",
            (now - t).num_seconds(),
            policy.scale_out_cooldown.num_seconds()
        );
        return;
    }
    let next = match policy.step {
        Some(step) => target.min(current.saturating_add(step)),
        None => target,
    };
    s.last_out = Some(now);
    d.desired = next;
    let limited = if next < target {
        let step = policy.step.unwrap_or_default();
        format!("; {next} this step (step limit {step})")
    } else {
        String::new()
    };
    d.reason = format!(
        "backlog {} at {} per task wants {target}{limited}",
        d.backlog, policy.per_task
    );
}

/// Fewer tasks, once the backlog has stayed low for the cooldown.
fn scale_in(
    policy: &ScalingPolicy,
    s: &mut ScalingState,
    d: &mut ScaleDecision,
    now: DateTime<Utc>,
) {
    let target = d.target;
    let low_since = *s.low_since.get_or_insert(now);
    let calm = now - low_since >= policy.scale_in_cooldown
        && s.last_in
            .is_none_or(|t| now - t >= policy.scale_in_cooldown);
    if !calm {
        d.reason = format!(
            "wants {target}; scaling in once the backlog stays low for {}s (low for {}s)",
            policy.scale_in_cooldown.num_seconds(),
            (now - low_since).num_seconds()
        );
        return;
    }
    s.last_in = Some(now);
    s.low_since = None;
    d.desired = target;
    d.reason = format!(
        "backlog {} stayed low for {}s: {target} is enough",
        d.backlog,
        (now - low_since).num_seconds()
    );
}

/// The decision as a CloudWatch embedded-metric-format log line, so a dashboard can plot it.
pub fn emf_line(env: &str, service: &str, d: &ScaleDecision, now: DateTime<Utc>) -> String {
    serde_json::json!({
        "_aws": {
            "Timestamp": now.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": "Harbormaster",
                "Dimensions": [["Environment", "Service"]],
                "Metrics": [
                    {"Name": "Backlog", "Unit": "Count"},
                    {"Name": "BacklogPerTask", "Unit": "Count"},
                    {"Name": "DesiredCount", "Unit": "Count"},
                    {"Name": "TargetCount", "Unit": "Count"}
                ]
            }]
        },
        "Environment": env,
        "Service": service,
        "Backlog": d.backlog,
        "BacklogPerTask": d.backlog_per_task,
        "DesiredCount": d.desired,
        "TargetCount": d.target,
        "Reason": d.reason,
    })
    .to_string()
}

mod config;
pub(crate) use config::{parse_scaling, RawScaling};

#[cfg(test)]
pub(crate) mod tests;
