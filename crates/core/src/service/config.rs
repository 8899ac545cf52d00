//! The service settings as written in `harbormaster.toml` (per service, and per environment
//! where an environment replaces one whole), and their checks, each named by its field.

use serde::Deserialize;

use super::{
    Attachment, Autoscaling, Capacity, Network, OneOffTask, PropagateTags, ServiceSettings,
    MAX_TASKS,
};
use crate::config::diagnostics::Collector;
use crate::strategy::RawLoadBalancer;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    #[serde(default)]
    subnets: Vec<String>,
    #[serde(default)]
    security_groups: Vec<String>,
    #[serde(default)]
    assign_public_ip: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapacity {
    #[serde(default)]
    fargate: Option<u32>,
    #[serde(default)]
    fargate_spot: Option<u32>,
    #[serde(default)]
    base: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoscaling {
    min: u32,
    max: u32,
    #[serde(default)]
    cpu: Option<f64>,
    #[serde(default)]
    memory: Option<f64>,
    #[serde(default)]
    requests_per_target: Option<f64>,
    #[serde(default)]
    scale_in_cooldown_seconds: Option<u32>,
    #[serde(default)]
    scale_out_cooldown_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOneOff {
    command: Vec<String>,
    #[serde(default)]
    container: Option<String>,
    #[serde(default)]
    timeout_minutes: Option<u32>,
}

/// The keys of the ECS service itself, each written once: `RawServiceSettings` below and both
/// raw tables of `harbormaster.toml` (`[services.<name>]` and its environments, `config/raw.rs`)
/// are declared from this list, so a new key is one line here (then its check in
/// [`parse_service_settings`], its field in [`super::ServiceSettings`], and the docs).
/// `service_keys!(m! { … })` calls `m!` with the list first.
macro_rules! service_keys {
    ($then:ident ! { $($args:tt)* }) => {
        $then! {
            [
                network: crate::service::RawNetwork,
                capacity: crate::service::RawCapacity,
                autoscaling: crate::service::RawAutoscaling,
                before_deploy: crate::service::RawOneOff,
                platform_version: String,
                enable_execute_command: bool,
                propagate_tags: String,
            ]
            $($args)*
        }
    };
}
pub(crate) use service_keys;

macro_rules! settings_struct {
    ([$($key:ident : $ty:ty),* $(,)?]) => {
        /// The keys of `[services.<name>]` and `[services.<name>.environments.<env>]` this
        /// module reads; an environment's key replaces the service's whole.
        #[derive(Debug, Clone, Default)]
        pub struct RawServiceSettings {
            $(pub $key: Option<$ty>,)*
        }
    };
}
service_keys!(settings_struct! {});

/// A table's settings and its path (`services.web`, `services.web.environments.dev`).
pub(crate) struct Written<'a> {
    pub field: &'a str,
    pub raw: &'a RawServiceSettings,
}

/// The environment's value where it gives one, else the service's, with the path of the
/// table it came from (so an error names the line to fix).
fn pick<'a, T: Clone>(
    own: &Written<'a>,
    base: &Written<'a>,
    get: impl Fn(&RawServiceSettings) -> &Option<T>,
) -> Option<(&'a str, T)> {
    match (get(own.raw), get(base.raw)) {
        (Some(v), _) => Some((own.field, v.clone())),
        (None, Some(v)) => Some((base.field, v.clone())),
        (None, None) => None,
    }
}

/// Longest a one-off task may run before the deployment gives up on it.
const MAX_TASK_MINUTES: u32 = 1440;
/// Application Auto Scaling's cooldowns are in seconds; a day is more than any service needs.
const MAX_COOLDOWN_SECONDS: u32 = 86_400;

/// One environment's service settings: `own` its table, `base` the service's; `load_balancer`
/// the rolling attachment as written (with its table's path), `native` whether the strategy is
/// blue/green, canary or linear, `queue_scaling` the path of a queue-depth `scaling` block that
/// applies too.
pub(crate) fn parse_service_settings(
    c: &mut Collector<'_>,
    own: Written<'_>,
    base: Written<'_>,
    load_balancer: Option<(&str, RawLoadBalancer)>,
    native: bool,
    queue_scaling: Option<&str>,
) -> ServiceSettings {
    let load_balancer = load_balancer.and_then(|(field, lb)| attachment(c, field, lb));
    let lb = match (native, load_balancer.is_some()) {
        (true, _) => Lb::Alternating,
        (false, true) => Lb::One,
        (false, false) => Lb::None,
    };
    let autoscaling = pick(&own, &base, |r| &r.autoscaling)
        .and_then(|(field, a)| autoscaling(c, field, a, lb, queue_scaling));
    let propagate_tags = match pick(&own, &base, |r| &r.propagate_tags) {
        None => PropagateTags::Service,
        Some((field, word)) => match word.as_str() {
            "service" => PropagateTags::Service,
            "task_definition" => PropagateTags::TaskDefinition,
            "none" => PropagateTags::None,
            _ => {
                c.err(
                    format!("{field}.propagate_tags"),
                    "allowed: \"service\", \"task_definition\", \"none\"",
                );
                PropagateTags::Service
            }
        },
    };
    ServiceSettings {
        network: pick(&own, &base, |r| &r.network).and_then(|(f, n)| network(c, f, n)),
        capacity: pick(&own, &base, |r| &r.capacity)
            .map(|(f, r)| capacity(c, f, r))
            .unwrap_or_default(),
        autoscaling,
        before_deploy: pick(&own, &base, |r| &r.before_deploy).and_then(|(f, t)| one_off(c, f, t)),
        load_balancer,
        platform_version: pick(&own, &base, |r| &r.platform_version)
            .filter(|(f, v)| platform_version(c, f, v))
            .map(|(_, v)| v),
        execute_command: pick(&own, &base, |r| &r.enable_execute_command).is_some_and(|(_, on)| on),
        propagate_tags,
    }
}

/// What the service's load balancer is to target tracking.
#[derive(Clone, Copy)]
enum Lb {
    None,
    /// Rolling: one target group.
    One,
    /// Native strategies: traffic moves between two.
    Alternating,
}

fn attachment(c: &mut Collector<'_>, field: &str, lb: RawLoadBalancer) -> Option<Attachment> {
    let f = format!("{field}.load_balancer");
    for (set, key) in [
        (
            lb.alternate_target_group.is_some(),
            "alternate_target_group",
        ),
        (
            lb.production_listener_rule.is_some(),
            "production_listener_rule",
        ),
        (lb.test_listener_rule.is_some(), "test_listener_rule"),
        (lb.role.is_some(), "role"),
    ] {
        if set {
            c.err(
                format!("{f}.{key}"),
                "applies to strategy \"blue_green\", \"canary\" or \"linear\"; a rolling service has one target group",
            );
        }
    }
    if lb.container.is_empty() {
        c.err(
            format!("{f}.container"),
            "name the container the load balancer sends traffic to",
        );
        return None;
    }
    if lb.port == 0 {
        c.err(format!("{f}.port"), "allowed: 1 to 65535");
        return None;
    }
    Some(Attachment {
        container: lb.container,
        port: lb.port,
        target_group: lb.target_group,
    })
}

fn network(c: &mut Collector<'_>, field: &str, n: RawNetwork) -> Option<Network> {
    let f = format!("{field}.network");
    if n.subnets.is_empty() {
        c.err(
            format!("{f}.subnets"),
            "a network override needs its subnets (leave `network` out for the bootstrap's private subnets)",
        );
        return None;
    }
    if n.subnets.len() > 16 || n.security_groups.len() > 5 {
        c.err(
            f.clone(),
            "ECS takes at most 16 subnets and 5 security groups",
        );
    }
    if let Some(bad) = n.subnets.iter().find(|s| !s.starts_with("subnet-")) {
        c.err(
            format!("{f}.subnets"),
            format!(
                "`{}` is not a subnet id (subnet-…)",
                crate::text::shown(bad)
            ),
        );
    }
    if let Some(bad) = n.security_groups.iter().find(|s| !s.starts_with("sg-")) {
        c.err(
            format!("{f}.security_groups"),
            format!(
                "`{}` is not a security group id (sg-…)",
                crate::text::shown(bad)
            ),
        );
    }
    Some(Network {
        subnets: n.subnets,
        security_groups: n.security_groups,
        assign_public_ip: n.assign_public_ip,
    })
}

fn capacity(c: &mut Collector<'_>, field: &str, r: RawCapacity) -> Capacity {
    let f = format!("{field}.capacity");
    let cap = Capacity {
        fargate: r.fargate.unwrap_or(0),
        fargate_spot: r.fargate_spot.unwrap_or(0),
        base: r.base.unwrap_or(0),
    };
    // Weights 0 to 1000, base 0 to 100000 (ECS API reference, CapacityProviderStrategyItem).
    for (key, w) in [("fargate", cap.fargate), ("fargate_spot", cap.fargate_spot)] {
        if w > 1000 {
            c.err(format!("{f}.{key}"), "a weight: 0 to 1000");
        }
    }
    if cap.fargate == 0 && cap.fargate_spot == 0 {
        c.err(
            f.clone(),
            "give `fargate` or `fargate_spot` a weight above 0",
        );
    }
    if cap.base > 100_000 {
        c.err(format!("{f}.base"), "allowed: 0 to 100000");
    }
    cap
}

fn autoscaling(
    c: &mut Collector<'_>,
    field: &str,
    a: RawAutoscaling,
    lb: Lb,
    queue_scaling: Option<&str>,
) -> Option<Autoscaling> {
    let f = format!("{field}.autoscaling");
    let mut errors: Vec<(String, String)> = Vec::new();
    let mut err = |key: &str, why: String| errors.push((format!("{f}{key}"), why));
    if let Some(scaling) = queue_scaling {
        err(
            "",
            format!("target tracking here and the queue-depth scaler `{scaling}` would both set the desired count; keep one"),
        );
    }
    if a.min > a.max {
        err(".min", format!("must not exceed `max` ({})", a.max));
    }
    if a.max == 0 || a.max > MAX_TASKS {
        err(".max", format!("allowed: 1 to {MAX_TASKS}"));
    }
    for (key, v) in [(".cpu", a.cpu), (".memory", a.memory)] {
        if v.is_some_and(|p| !(p.is_finite() && p > 0.0 && p <= 100.0)) {
            err(key, "a utilisation percentage: above 0, at most 100".into());
        }
    }
    if let Some(r) = a.requests_per_target {
        if !(r.is_finite() && r > 0.0) {
            err(".requests_per_target", "must be a positive number".into());
        }
        match lb {
            Lb::One => {}
            Lb::None => err(
                ".requests_per_target",
                "counts the load balancer's requests: give the service a `load_balancer`".into(),
            ),
            Lb::Alternating => err(
                ".requests_per_target",
                "under blue/green, canary and linear the production target group alternates, so a policy on one of them would stop counting after a release; track `cpu` or `memory`".into(),
            ),
        }
    }
    if a.cpu.is_none() && a.memory.is_none() && a.requests_per_target.is_none() {
        err(
            "",
            "give at least one target: `cpu`, `memory` or `requests_per_target`".into(),
        );
    }
    for (key, v) in [
        (".scale_in_cooldown_seconds", a.scale_in_cooldown_seconds),
        (".scale_out_cooldown_seconds", a.scale_out_cooldown_seconds),
    ] {
        if v.is_some_and(|s| s > MAX_COOLDOWN_SECONDS) {
            err(key, format!("allowed: 0 to {MAX_COOLDOWN_SECONDS}"));
        }
    }
    let valid = errors.is_empty();
    for (field, why) in errors {
        c.err(field, why);
    }
    valid.then_some(Autoscaling {
        min: a.min,
        max: a.max,
        cpu: a.cpu,
        memory: a.memory,
        requests_per_target: a.requests_per_target,
        // Application Auto Scaling's defaults for ECS: 300 seconds each.
        scale_in_cooldown_seconds: a.scale_in_cooldown_seconds.unwrap_or(300),
        scale_out_cooldown_seconds: a.scale_out_cooldown_seconds.unwrap_or(300),
    })
}

fn one_off(c: &mut Collector<'_>, field: &str, t: RawOneOff) -> Option<OneOffTask> {
    let f = format!("{field}.before_deploy");
    if t.command.is_empty() || t.command.iter().any(String::is_empty) {
        c.err(format!("{f}.command"), "the command and its arguments, none empty (e.g. [\"python\", \"manage.py\", \"migrate\"])");
        return None;
    }
    let timeout_minutes = t.timeout_minutes.unwrap_or(15);
    if !(1..=MAX_TASK_MINUTES).contains(&timeout_minutes) {
        c.err(
            format!("{f}.timeout_minutes"),
            format!("allowed: 1 to {MAX_TASK_MINUTES}"),
        );
    }
    if t.container.as_deref().is_some_and(str::is_empty) {
        c.err(
            format!("{f}.container"),
            "name a container of the template, or leave it out",
        );
    }
    Some(OneOffTask {
        command: t.command,
        container: t.container,
        timeout_minutes,
    })
}

fn platform_version(c: &mut Collector<'_>, field: &str, v: &str) -> bool {
    let ok = v == "LATEST" || parse_version(v).is_some();
    if !ok {
        c.err(
            format!("{field}.platform_version"),
            "\"LATEST\" or a Fargate platform version such as \"1.4.0\"",
        );
    }
    ok
}

fn parse_version(v: &str) -> Option<(u32, u32, u32)> {
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    let version = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(version)
}

/// What the task definition runs on, against what Fargate Spot accepts. "Linux tasks with the
/// ARM64 architecture don't support the Fargate Spot capacity provider. Fargate Spot only
/// supports Linux tasks with the X86_64 architecture"; "Windows containers on Fargate don't
/// support the Fargate Spot capacity provider"; "your task must use platform version 1.3.0 or
/// later (for Linux)" — Amazon ECS Developer Guide, "AWS Fargate capacity providers"
/// (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-capacity-providers.html).
/// `Err` names the template's field and why.
pub(crate) fn check_spot(
    settings: &ServiceSettings,
    cpu_architecture: Option<&str>,
    operating_system: Option<&str>,
) -> Result<(), (String, String)> {
    if !settings.capacity.uses_spot() {
        return Ok(());
    }
    if let Some(arch) = cpu_architecture.filter(|a| *a != "X86_64") {
        return Err((
            "runtimePlatform.cpuArchitecture".into(),
            format!("Fargate Spot runs X86_64 Linux tasks only; this task definition is {arch}"),
        ));
    }
    if let Some(os) = operating_system.filter(|o| *o != "LINUX") {
        return Err((
            "runtimePlatform.operatingSystemFamily".into(),
            format!("Fargate Spot runs Linux tasks only; this task definition is {os}"),
        ));
    }
    if let Some(v) = settings.platform_version.as_deref().and_then(parse_version) {
        if v < (1, 3, 0) {
            return Err((
                "platform_version".into(),
                "Fargate Spot needs platform version 1.3.0 or later".into(),
            ));
        }
    }
    Ok(())
}
