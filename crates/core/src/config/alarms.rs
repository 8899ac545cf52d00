//! A target's alarm settings: the names whose ALARM rolls it back and the guard alarms that hold
//! a release, each with `${project}`, `${env}` and `${service}` filled, and their windows.

use super::diagnostics::Collector;
use super::raw::{RawService, RawTarget};
use crate::alarm::AlarmPolicy;

/// What `${project}`, `${env}` and `${service}` stand for in one target's alarm names, so one
/// service-wide list names each environment's own alarms.
pub(super) struct Names<'a> {
    pub(super) project: &'a str,
    pub(super) env: &'a str,
    pub(super) service: &'a str,
}

impl Names<'_> {
    /// The names with the placeholders filled; any other `${…}` is an error naming `field`
    /// (it would match no alarm, and nothing would ever roll back).
    pub(super) fn fill(&self, c: &mut Collector<'_>, field: &str, names: &[String]) -> Vec<String> {
        let filled: Vec<String> = names
            .iter()
            .map(|n| {
                n.replace("${project}", self.project)
                    .replace("${env}", self.env)
                    .replace("${service}", self.service)
            })
            .collect();
        if filled.iter().any(|n| n.contains("${")) {
            let why = "only ${project}, ${env} and ${service} are filled in alarm names";
            c.err(field, why);
        }
        filled
    }
}

pub(super) fn alarm_policy(
    c: &mut Collector<'_>,
    (tfield, sfield): (&str, &str),
    names: &Names<'_>,
    (s, t): (&RawService, &RawTarget),
    rollback_alarms: &[String],
) -> AlarmPolicy {
    let mut alarm_names = match &t.alarms {
        Some(a) => names.fill(c, &format!("{tfield}.alarms"), a),
        None => names.fill(c, &format!("{sfield}.alarms"), &s.alarms),
    };
    let guards = match &t.guard_alarms {
        Some(a) => names.fill(c, &format!("{tfield}.guard_alarms"), a),
        None => names.fill(c, &format!("{sfield}.guard_alarms"), &s.guard_alarms),
    };
    // The ECS deployment alarms speak for the service too.
    for a in rollback_alarms {
        if !alarm_names.contains(a) {
            alarm_names.push(a.clone());
        }
    }
    let alarms = AlarmPolicy {
        alarms: alarm_names,
        window_minutes: (t.rollback_window_minutes)
            .or(s.rollback_window_minutes)
            .unwrap_or(30),
        guards,
        guard_timeout_minutes: (t.guard_timeout_minutes)
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
            c.err(tfield, "alarm names have 1 to 255 characters");
        }
    }
    if alarms.guards.iter().any(|g| g.contains('*')) {
        let why = "name each guard alarm: patterns are only for `alarms`";
        c.err(format!("{tfield}.guard_alarms"), why);
    }
    alarms
}
