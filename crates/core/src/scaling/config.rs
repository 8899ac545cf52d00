//! A `scaling` table as written in `harbormaster.toml`, checked into a [`ScalingPolicy`].

use crate::config::diagnostics::Collector;
use serde::Deserialize;

use super::*;
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
    c: &mut Collector<'_>,
    field: &str,
    project: &str,
    env: &str,
    r: RawScaling,
) -> Option<ScalingPolicy> {
    let per_task = per_task(c, field, &r)?;
    check_bounds(c, field, &r);
    let sources = [r.sqs.is_some(), r.metric.is_some(), r.redis.is_some()];
    if sources.iter().filter(|s| **s).count() != 1 {
        c.err(
            field,
            "give exactly one backlog source: `sqs`, `metric` or `redis`",
        );
        return None;
    }
    let source = if let Some(q) = r.sqs {
        if q.queue.is_empty() {
            c.err(
                format!("{field}.sqs.queue"),
                "name the queue (or give its URL)",
            );
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
        let redis = r.redis?;
        redis_source(c, &format!("{field}.redis"), project, env, redis)?
    };
    Some(ScalingPolicy {
        source,
        per_task,
        min: r.min.unwrap_or(0),
        max: r.max,
        step: r.scale_out_step,
        scale_in_cooldown: Duration::seconds(r.scale_in_cooldown_seconds.unwrap_or(300).into()),
        scale_out_cooldown: Duration::seconds(r.scale_out_cooldown_seconds.unwrap_or(60).into()),
        alert_after: Duration::minutes(r.at_max_alert_minutes.unwrap_or(15).into()),
    })
}

/// The backlog one task carries: given, or latency over processing time.
fn per_task(c: &mut Collector<'_>, field: &str, r: &RawScaling) -> Option<f64> {
    let per_task = match (r.per_task, r.latency_seconds, r.processing_ms) {
        (Some(p), None, None) => p,
        (None, Some(l), Some(ms)) if ms > 0.0 => l * 1000.0 / ms,
        _ => {
            c.err(
                field,
                "give `per_task` (backlog one task carries), or `latency_seconds` and `processing_ms` (per_task = latency / processing time)",
            );
            return None;
        }
    };
    if !(per_task.is_finite() && per_task >= 1.0) {
        c.err(
            format!("{field}.per_task"),
            "must be at least 1 message per task",
        );
    }
    Some(per_task)
}

/// The counts, the step and the times, each within what the scaler and AWS accept.
fn check_bounds(c: &mut Collector<'_>, field: &str, r: &RawScaling) {
    let min = r.min.unwrap_or(0);
    if r.max == 0 || r.max > 1000 || min > r.max {
        c.err(
            format!("{field}.max"),
            format!("allowed: 1 to 1000, and at least `min` ({min})"),
        );
    }
    if r.scale_out_step.is_some_and(|s| !(1..=1000).contains(&s)) {
        c.err(
            format!("{field}.scale_out_step"),
            "allowed: 1 to 1000 (leave it out for no limit)",
        );
    }
    for (key, seconds) in [
        ("scale_in_cooldown_seconds", r.scale_in_cooldown_seconds),
        ("scale_out_cooldown_seconds", r.scale_out_cooldown_seconds),
    ] {
        if seconds.is_some_and(|s| s > 86_400) {
            c.err(format!("{field}.{key}"), "allowed: 0 to 86400 (a day)");
        }
    }
    if r.at_max_alert_minutes
        .is_some_and(|m| !(1..=1440).contains(&m))
    {
        c.err(
            format!("{field}.at_max_alert_minutes"),
            "allowed: 1 to 1440",
        );
    }
}

/// A Redis backlog: the URL (plain without a password, or an SSM parameter under `redis/`) and
/// the keys of the Dramatiq queues it sums.
fn redis_source(
    c: &mut Collector<'_>,
    field: &str,
    project: &str,
    env: &str,
    rd: RawRedis,
) -> Option<BacklogSource> {
    let url = match (rd.url, rd.url_secret) {
        (Some(u), None) => {
            if crate::secrets::looks_like_secret("REDIS_URL", &u).is_some() || u.contains('@') {
                c.err(
                    format!("{field}.url"),
                    "holds a password: put the URL in SSM and name it with `url_secret`",
                );
            }
            if !(u.starts_with("redis://") || u.starts_with("rediss://")) {
                c.err(format!("{field}.url"), "expected redis://host:port/db");
            }
            RedisUrl::Plain(u)
        }
        // Only `redis/<name>`: tick's role may decrypt that group and no other secret of
        // the environment (deploy/template.yaml, CodeRedisUrl).
        (None, Some(s)) if s.split('/').count() == 2 => {
            if !s.starts_with("redis/") {
                c.err(
                    format!("{field}.url_secret"),
                    "must be `redis/<name>`: the agent is allowed to read no other secret",
                );
            }
            RedisUrl::Parameter(format!("/{project}/{env}/{s}"))
        }
        _ => {
            c.err(
                field,
                "give `url` (without a password) or `url_secret = \"<group>/<name>\"`",
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
    Some(BacklogSource::Redis { url, keys })
}
