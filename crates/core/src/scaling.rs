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

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    /// An SQS worker: 100 messages a task, 1 to 5 tasks.
    pub(crate) fn policy() -> ScalingPolicy {
        ScalingPolicy {
            source: BacklogSource::Sqs {
                queue: "q".into(),
                in_flight: false,
            },
            per_task: 100.0,
            min: 1,
            max: 5,
            step: None,
            scale_in_cooldown: Duration::minutes(5),
            scale_out_cooldown: Duration::minutes(1),
            alert_after: Duration::minutes(10),
        }
    }

    fn t(min: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + Duration::minutes(min)
    }

    fn m(backlog: u64, desired: u32) -> Measured {
        Measured {
            backlog,
            desired,
            running: desired,
        }
    }

    #[test]
    fn the_target_is_the_backlog_over_per_task_clamped() {
        let cases = [
            // (backlog, current, min, max, expected)
            (1000, 1, 1, 5, 5),
            (250, 1, 1, 5, 3),
            (0, 0, 0, 5, 0),
            (1, 0, 0, 5, 1), // wakes from zero
            (0, 3, 2, 5, 3), // wants 2, but not before the cooldown
            (100_000, 1, 1, 5, 5),
        ];
        for (i, (backlog, current, min, max, want)) in cases.into_iter().enumerate() {
            let p = ScalingPolicy {
                min,
                max,
                ..policy()
            };
            let (d, _) = decide(
                &p,
                &ScalingState::default(),
                m(backlog, current),
                false,
                t(0),
            );
            assert_eq!(d.desired, want, "case {i}: {d:?}");
        }
    }

    #[test]
    fn zero_running_tasks_count_as_one_for_backlog_per_task() {
        let (d, _) = decide(
            &policy(),
            &ScalingState::default(),
            Measured {
                backlog: 40,
                desired: 0,
                running: 0,
            },
            false,
            t(0),
        );
        assert_eq!(d.backlog_per_task, 40.0);
        assert_eq!(d.desired, 1);
    }

    #[test]
    fn scale_out_respects_the_step_limit_and_its_cooldown() {
        let p = ScalingPolicy {
            step: Some(2),
            max: 10,
            ..policy()
        };
        let (d, s) = decide(&p, &ScalingState::default(), m(1000, 1), false, t(0));
        assert_eq!((d.desired, d.target), (3, 10));
        let (d, s) = decide(&p, &s, m(1000, 3), false, t(0) + Duration::seconds(30));
        assert_eq!(d.desired, 3, "within the scale-out cooldown: {}", d.reason);
        let (d, _) = decide(&p, &s, m(1000, 3), false, t(2));
        assert_eq!(d.desired, 5);
    }

    #[test]
    fn scale_in_waits_for_the_backlog_to_stay_low_and_a_flapping_backlog_never_scales_in() {
        let p = policy();
        let (d, s) = decide(&p, &ScalingState::default(), m(0, 5), false, t(0));
        assert_eq!(d.desired, 5, "{}", d.reason);
        let (d, s2) = decide(&p, &s, m(0, 5), false, t(4));
        assert_eq!(d.desired, 5);
        let (d, _) = decide(&p, &s2, m(0, 5), false, t(5));
        assert_eq!(d.desired, 1, "{}", d.reason);
        // Low, then high again, then low: the clock starts over.
        let (_, s) = decide(&p, &ScalingState::default(), m(0, 5), false, t(0));
        let (_, s) = decide(&p, &s, m(500, 5), false, t(3));
        let (d, s) = decide(&p, &s, m(0, 5), false, t(6));
        assert_eq!(d.desired, 5, "{}", d.reason);
        let (d, _) = decide(&p, &s, m(0, 5), false, t(11));
        assert_eq!(d.desired, 1);
    }

    #[test]
    fn nothing_changes_while_a_deployment_is_in_flight() {
        let (d, _) = decide(&policy(), &ScalingState::default(), m(1000, 1), true, t(0));
        assert!(!d.changes());
        assert!(d.reason.contains("deployment"));
    }

    #[test]
    fn at_max_with_a_growing_backlog_the_team_hears_once() {
        let p = policy();
        let (d, s) = decide(&p, &ScalingState::default(), m(900, 5), false, t(0));
        assert!(d.alert.is_none());
        let (d, s) = decide(&p, &s, m(1200, 5), false, t(11));
        assert!(
            d.alert.as_deref().unwrap().contains("maximum of 5"),
            "{d:?}"
        );
        let (d, s) = decide(&p, &s, m(1500, 5), false, t(20));
        assert!(d.alert.is_none(), "once");
        let (_, s) = decide(&p, &s, m(100, 5), false, t(21));
        assert!(!s.alerted && s.at_max_since.is_none());
    }

    #[test]
    fn the_emf_line_names_the_metrics_and_dimensions() {
        let (d, _) = decide(&policy(), &ScalingState::default(), m(1000, 1), false, t(0));
        let v: serde_json::Value =
            serde_json::from_str(&emf_line("dev", "worker", &d, t(0))).unwrap();
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
            "Harbormaster"
        );
        assert_eq!(v["Backlog"], 1000);
        assert_eq!(v["DesiredCount"], 5);
        assert_eq!(v["Service"], "worker");
    }
}

// ---------- config, as written ----------

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScaling {
    #[serde(default)]
    min: Option<u32>,
    max: u32,
    #[serde(default)]
    per_task: Option<f64>,
    #[serde(default)]
    latency_seconds: Option<f64>,
    #[serde(default)]
    processing_ms: Option<f64>,
    #[serde(default)]
    scale_out_step: Option<u32>,
    #[serde(default)]
    scale_in_cooldown_seconds: Option<u32>,
    #[serde(default)]
    scale_out_cooldown_seconds: Option<u32>,
    #[serde(default)]
    at_max_alert_minutes: Option<u32>,
    #[serde(default)]
    sqs: Option<RawSqs>,
    #[serde(default)]
    metric: Option<RawMetricSource>,
    #[serde(default)]
    redis: Option<RawRedis>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSqs {
    queue: String,
    #[serde(default)]
    include_in_flight: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMetricSource {
    namespace: String,
    metric: String,
    #[serde(default)]
    dimensions: BTreeMap<String, String>,
    #[serde(default)]
    stat: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRedis {
    #[serde(default)]
    url: Option<String>,
    /// `group/name`: the SSM parameter /<project>/<env>/<group>/<name> holding the URL.
    #[serde(default)]
    url_secret: Option<String>,
    #[serde(default)]
    queues: Vec<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    include_delayed: bool,
}

pub(crate) fn parse_scaling(
    c: &mut impl crate::strategy::Errors,
    field: &str,
    project: &str,
    env: &str,
    r: RawScaling,
) -> Option<ScalingPolicy> {
    let mut err = |f: &str, p: String| c.err(format!("{field}{f}"), p);
    let per_task = match (r.per_task, r.latency_seconds, r.processing_ms) {
        (Some(p), None, None) => p,
        (None, Some(l), Some(ms)) if ms > 0.0 => l * 1000.0 / ms,
        _ => {
            err(
                "",
                "give `per_task` (backlog one task carries), or `latency_seconds` and `processing_ms` (per_task = latency / processing time)".into(),
            );
            return None;
        }
    };
    if !(per_task.is_finite() && per_task >= 1.0) {
        err(".per_task", "must be at least 1 message per task".into());
    }
    let min = r.min.unwrap_or(0);
    if r.max == 0 || r.max > 1000 || min > r.max {
        err(
            ".max",
            format!("allowed: 1 to 1000, and at least `min` ({min})"),
        );
    }
    if r.scale_out_step.is_some_and(|s| !(1..=1000).contains(&s)) {
        err(
            ".scale_out_step",
            "allowed: 1 to 1000 (leave it out for no limit)".into(),
        );
    }
    for (key, seconds) in [
        ("scale_in_cooldown_seconds", r.scale_in_cooldown_seconds),
        ("scale_out_cooldown_seconds", r.scale_out_cooldown_seconds),
    ] {
        if seconds.is_some_and(|s| s > 86_400) {
            err(&format!(".{key}"), "allowed: 0 to 86400 (a day)".into());
        }
    }
    if r.at_max_alert_minutes
        .is_some_and(|m| !(1..=1440).contains(&m))
    {
        err(".at_max_alert_minutes", "allowed: 1 to 1440".into());
    }
    let sources = [r.sqs.is_some(), r.metric.is_some(), r.redis.is_some()]
        .iter()
        .filter(|s| **s)
        .count();
    if sources != 1 {
        err(
            "",
            "give exactly one backlog source: `sqs`, `metric` or `redis`".into(),
        );
        return None;
    }
    let source = if let Some(q) = r.sqs {
        if q.queue.is_empty() {
            err(".sqs.queue", "name the queue (or give its URL)".into());
        }
        BacklogSource::Sqs {
            queue: q.queue,
            in_flight: q.include_in_flight,
        }
    } else if let Some(m) = r.metric {
        BacklogSource::Metric {
            namespace: m.namespace,
            metric: m.metric,
            dimensions: m.dimensions,
            stat: m.stat.unwrap_or_else(|| "Maximum".into()),
        }
    } else {
        let rd = r.redis.expect("one source");
        let url = match (rd.url, rd.url_secret) {
            (Some(u), None) => {
                if crate::secrets::looks_like_secret("REDIS_URL", &u).is_some() || u.contains('@') {
                    err(
                        ".redis.url",
                        "holds a password: put the URL in SSM and name it with `url_secret`".into(),
                    );
                }
                if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                    err(".redis.url", "expected redis://host:port/db".into());
                }
                RedisUrl::Plain(u)
            }
            // Only `redis/<name>`: tick's role may decrypt that group and no other secret of
            // the environment (deploy/template.yaml, CodeRedisUrl).
            (None, Some(s)) if s.split('/').count() == 2 => {
                if !s.starts_with("redis/") {
                    err(
                        ".redis.url_secret",
                        "must be `redis/<name>`: the agent is allowed to read no other secret"
                            .into(),
                    );
                }
                RedisUrl::Parameter(format!("/{project}/{env}/{s}"))
            }
            _ => {
                err(
                    ".redis",
                    "give `url` (without a password) or `url_secret = \"<group>/<name>\"`".into(),
                );
                return None;
            }
        };
        let namespace = rd.namespace.unwrap_or_else(|| "dramatiq".into());
        let queues = if rd.queues.is_empty() {
            vec!["default".to_owned()]
        } else {
            rd.queues
        };
        let mut keys = Vec::new();
        for q in &queues {
            keys.push(format!("{namespace}:{q}"));
            if rd.include_delayed {
                // Dramatiq's delay queue for `q` is `q.DQ`.
                keys.push(format!("{namespace}:{q}.DQ"));
            }
        }
        BacklogSource::Redis { url, keys }
    };
    Some(ScalingPolicy {
        source,
        per_task,
        min,
        max: r.max,
        step: r.scale_out_step,
        scale_in_cooldown: Duration::seconds(r.scale_in_cooldown_seconds.unwrap_or(300).into()),
        scale_out_cooldown: Duration::seconds(r.scale_out_cooldown_seconds.unwrap_or(60).into()),
        alert_after: Duration::minutes(r.at_max_alert_minutes.unwrap_or(15).into()),
    })
}
