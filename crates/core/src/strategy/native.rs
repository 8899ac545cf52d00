//! The native strategies' settings, as written and checked: bake time, canary and linear
//! steps, the load balancer (its ARNs default to the bootstrap's outputs).

use super::raw::{RawLoadBalancer, RawNative, RawShift};
use super::{strategy_word, LoadBalancerSettings, NativeSettings, Shift, Strategy};
use crate::config::diagnostics::Collector;

pub(crate) fn parse_native(
    c: &mut Collector<'_>,
    field: &str,
    strategy: Strategy,
    raw: RawNative,
) -> Option<NativeSettings> {
    // A rolling service's `load_balancer` is its one target group: `crate::service` reads it.
    if !strategy.is_native() {
        for (set, key) in [
            (raw.bake_time_minutes.is_some(), "bake_time_minutes"),
            (raw.canary.is_some(), "canary"),
            (raw.linear.is_some(), "linear"),
        ] {
            if set {
                c.err(
                    format!("{field}.{key}"),
                    "applies to strategy \"blue_green\", \"canary\" or \"linear\"; this service is rolling",
                );
            }
        }
        return None;
    }
    let canary = shift(c, field, "canary", strategy == Strategy::Canary, raw.canary);
    let linear = shift(c, field, "linear", strategy == Strategy::Linear, raw.linear);
    let bake_time_minutes = raw.bake_time_minutes.unwrap_or(5);
    if bake_time_minutes > 1440 {
        c.err(format!("{field}.bake_time_minutes"), "allowed: 0 to 1440");
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
    Some(NativeSettings {
        strategy,
        bake_time_minutes,
        canary,
        linear,
        load_balancer: load_balancer(c, field, lb),
    })
}

/// A canary or linear step: required by its own strategy, refused by the others.
fn shift(
    c: &mut Collector<'_>,
    field: &str,
    key: &str,
    wanted: bool,
    raw: Option<RawShift>,
) -> Option<Shift> {
    match (wanted, raw) {
        (false, Some(_)) => {
            let why = format!("applies to strategy \"{key}\" only");
            c.err(format!("{field}.{key}"), why);
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
            // ECS's API reference: canaryPercent is a multiple of 0.1 from 0.1 to 100.0,
            // stepPercent a multiple of 0.1 from 3.0 to 100.0.
            let min = if key == "linear" { 3.0 } else { 0.1 };
            let tenths = s.percent * 10.0;
            let whole_tenths = (tenths - tenths.round()).abs() < 1e-6;
            if !(s.percent >= min - 1e-9 && s.percent <= 100.0 && whole_tenths) {
                let why = format!("allowed: {min:.1} to 100.0 in steps of 0.1 (as ECS takes it)");
                c.err(format!("{field}.{key}.percent"), why);
            }
            if s.interval_minutes > 1440 {
                let why = "allowed: 0 to 1440";
                c.err(format!("{field}.{key}.interval_minutes"), why);
            }
            Some(Shift {
                percent: s.percent,
                interval_minutes: s.interval_minutes,
            })
        }
    }
}

fn load_balancer(c: &mut Collector<'_>, field: &str, lb: RawLoadBalancer) -> LoadBalancerSettings {
    if lb.container.is_empty() {
        let why = "must not be empty";
        c.err(format!("{field}.load_balancer.container"), why);
    }
    if lb.port == 0 {
        let why = "allowed: 1 to 65535";
        c.err(format!("{field}.load_balancer.port"), why);
    }
    for (key, v) in [
        ("target_group", &lb.target_group),
        ("alternate_target_group", &lb.alternate_target_group),
        ("production_listener_rule", &lb.production_listener_rule),
        ("test_listener_rule", &lb.test_listener_rule),
        ("role", &lb.role),
    ] {
        if v.as_ref().is_some_and(|v| !v.starts_with("arn:")) {
            c.err(
                format!("{field}.load_balancer.{key}"),
                "expected an ARN (or leave it out to use the bootstrap's output)",
            );
        }
    }
    if lb.target_group.is_some() && lb.target_group == lb.alternate_target_group {
        c.err(
            format!("{field}.load_balancer.alternate_target_group"),
            "must differ from `target_group`: traffic shifts between the two",
        );
    }
    LoadBalancerSettings {
        container: lb.container,
        port: lb.port,
        target_group: lb.target_group,
        alternate_target_group: lb.alternate_target_group,
        production_listener_rule: lb.production_listener_rule,
        test_listener_rule: lb.test_listener_rule,
        role: lb.role,
    }
}
