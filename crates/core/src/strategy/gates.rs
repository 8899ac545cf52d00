//! The gates a lifecycle hook runs, as written and checked: CloudWatch metric checks (their
//! queries, thresholds, windows) and a person's approval.

use crate::config::diagnostics::Collector;
use std::collections::BTreeMap;

use super::raw::{RawApproval, RawCheck, RawQuery};
use super::{
    stage_names, ApprovalGate, Direction, MetricCheck, MetricQuery, OnTimeout, QueryKind, Stage,
};

fn query_id_ok(id: &str) -> bool {
    // CloudWatch's rule for GetMetricData ids.
    id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn parse_stage(c: &mut Collector<'_>, field: &str, s: &str) -> Option<Stage> {
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
    c: &mut Collector<'_>,
    field: &str,
    raw: BTreeMap<String, RawCheck>,
) -> Vec<MetricCheck> {
    raw.into_iter()
        .map(|(name, r)| {
            let f = format!("{field}.{name}");
            check(c, &f, name, r)
        })
        .collect()
}

fn check(c: &mut Collector<'_>, f: &str, name: String, r: RawCheck) -> MetricCheck {
    if r.stages.is_empty() {
        let why = "name at least one lifecycle stage";
        c.err(format!("{f}.stages"), why);
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
        c.err(format!("{f}.threshold"), "must be a number");
    }
    if r.max_inconclusive.is_some_and(|n| n > MAX_INCONCLUSIVE) {
        let why = format!("allowed: 0 to {MAX_INCONCLUSIVE}");
        c.err(format!("{f}.max_inconclusive"), why);
    }
    let window_minutes = r.window_minutes.unwrap_or(5);
    if !(1..=1440).contains(&window_minutes) {
        c.err(format!("{f}.window_minutes"), "allowed: 1 to 1440");
    }
    let queries: Vec<MetricQuery> = (r.queries.into_iter().enumerate())
        .filter_map(|(i, q)| query(c, &format!("{f}.queries[{i}]"), q))
        .collect();
    if queries.is_empty() {
        c.err(format!("{f}.queries"), "give at least one query");
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
    MetricCheck {
        name,
        stages,
        fail_when,
        threshold: r.threshold,
        window_minutes,
        max_inconclusive: r.max_inconclusive.unwrap_or(3).min(MAX_INCONCLUSIVE),
        value,
        queries,
    }
}

/// Rounds a check may stay unmeasured in a row: with the longest callback (900 s), 100 rounds
/// hold a hook 25 hours, beyond which "unmeasured" is an answer, not a wait.
const MAX_INCONCLUSIVE: u32 = 100;

/// One GetMetricData query: a metric, or metric math over the others.
fn query(c: &mut Collector<'_>, qf: &str, q: RawQuery) -> Option<MetricQuery> {
    if !query_id_ok(&q.id) {
        c.err(
            format!("{qf}.id"),
            "start with a lower-case letter; letters, digits and `_` only",
        );
    }
    let period_seconds = q.period_seconds.unwrap_or(60);
    if period_seconds == 0 || (period_seconds >= 60 && period_seconds % 60 != 0) {
        c.err(
            format!("{qf}.period_seconds"),
            "allowed: 1, 5, 10, 30, or a multiple of 60",
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
                qf.to_owned(),
                "give either `expression`, or `namespace` and `metric` (with optional `dimensions` and `stat`)",
            );
            return None;
        }
    };
    Some(MetricQuery { id: q.id, kind })
}

pub(crate) fn parse_approval(
    c: &mut Collector<'_>,
    field: &str,
    raw: RawApproval,
) -> Option<ApprovalGate> {
    let stage = parse_stage(c, &format!("{field}.stage"), &raw.stage)?;
    let timeout_minutes = raw.timeout_minutes.unwrap_or(60);
    if !(1..=10080).contains(&timeout_minutes) {
        c.err(
            format!("{field}.timeout_minutes"),
            "allowed: 1 to 10080 (a week)",
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
