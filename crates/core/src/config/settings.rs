//! Checks of single settings, each named by its field: counts, paths, thresholds, rolling
//! percentages, tag rules, variables and secrets. `validate.rs` walks the config's structure
//! and calls these.

use std::collections::BTreeMap;

use regex::Regex;

use super::diagnostics::Collector;
use super::raw::{RawFollow, RawService};
use super::{RollingSettings, SecretRef};
use crate::alarm::Thresholds;
use crate::image::TagRule;

/// ECS's quota of tasks per service.
pub(super) const MAX_DESIRED_COUNT: u32 = 5000;
/// A day: a health check grace longer than that only hides a task that never becomes healthy.
pub(super) const MAX_GRACE_SECONDS: u32 = 86_400;

pub(super) fn desired_count(c: &mut Collector<'_>, field: String, count: Option<u32>) {
    if count.is_some_and(|n| n > MAX_DESIRED_COUNT) {
        c.err(
            format!("{field}.desired_count"),
            format!("allowed: 0 to {MAX_DESIRED_COUNT} (ECS's tasks per service)"),
        );
    }
}

/// A path relative to the config file that stays inside its folder: the bundle (a folder, or
/// a prefix in S3) is all the agent may read.
pub(super) fn inside_the_bundle(path: &str) -> Result<(), &'static str> {
    if path.is_empty() {
        return Err("name the task definition template, relative to this file");
    }
    if path.starts_with('/') || path.contains('\\') || path.contains(':') {
        return Err("must be a relative path with `/` (it is read from the config's own folder)");
    }
    // `.` too: an S3 key is taken literally, so `./x` would name no object.
    if path
        .split('/')
        .any(|part| part == ".." || part == "." || part.is_empty())
    {
        return Err("must stay inside the config's folder (no `..`, `.` or empty parts)");
    }
    Ok(())
}

pub(super) fn thresholds(c: &mut Collector<'_>, field: &str, s: &RawService) -> Thresholds {
    let d = Thresholds::default();
    let thresholds = match &s.alarm_thresholds {
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
            let field = format!("{field}.alarm_thresholds.{k}");
            c.err(field, "must be a positive number");
        }
    }
    thresholds
}

/// ECS takes a health check grace period only on a service behind a load balancer
/// (CreateService API reference, healthCheckGracePeriodSeconds); the strict proxy of the
/// end-to-end tests refuses it as ECS does.
pub(super) fn grace_needs_a_balancer(
    c: &mut Collector<'_>,
    field: &str,
    rolling: &RollingSettings,
    behind_a_balancer: bool,
) {
    if rolling.health_check_grace_period_seconds.is_some() && !behind_a_balancer {
        c.err(
            format!("{field}.health_check_grace_period_seconds"),
            "needs a `load_balancer`: ECS refuses a health check grace period on a service without one",
        );
    }
}

pub(super) fn rolling(c: &mut Collector<'_>, field: &str, s: &RawService) -> RollingSettings {
    let rolling = RollingSettings {
        min_healthy_percent: s.min_healthy_percent.unwrap_or(100),
        max_percent: s.max_percent.unwrap_or(200),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds,
    };
    if rolling
        .health_check_grace_period_seconds
        .is_some_and(|s| s > MAX_GRACE_SECONDS)
    {
        c.err(
            format!("{field}.health_check_grace_period_seconds"),
            format!("allowed: 0 to {MAX_GRACE_SECONDS}"),
        );
    }
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
    rolling
}

pub(super) fn parse_follow(c: &mut Collector<'_>, field: &str, f: RawFollow) -> Option<TagRule> {
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

pub(super) fn var_name_ok(k: &str) -> bool {
    !k.is_empty()
        && !k.starts_with(|ch: char| ch.is_ascii_digit())
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

pub(super) fn check_variables(c: &mut Collector<'_>, field: &str, vars: &BTreeMap<String, String>) {
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

pub(super) fn parse_secrets(
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
