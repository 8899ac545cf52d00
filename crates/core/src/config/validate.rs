//! Parse, then validate (as ripgrep's flags go from raw to checked): the raw config becomes a
//! typed [`Config`], and every problem is collected with its field's path, reported at once.

use std::collections::BTreeMap;

use super::alarms::{alarm_policy, Names};
use super::diagnostics::Collector;
use super::raw::{RawAgent, RawConfig, RawEnvironment, RawService, RawTarget};
use super::settings::{
    check_variables, desired_count, grace_needs_a_balancer, inside_the_bundle, parse_follow,
    parse_secrets, rolling, thresholds,
};
use super::{
    AgentSettings, Config, ConfigErrors, ConfigReleases, Environment, SecretRef, Service,
    TargetSettings,
};
use crate::scaling::{RawScaling, ScalingPolicy};
use crate::service::{RawServiceSettings, Written};
use crate::strategy::{
    parse_approval, parse_checks, parse_native, ApprovalGate, Gates, MetricCheck, NativeSettings,
    RawNative, Strategy,
};

fn name_ok(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 48
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
}

const NAME_RULE: &str = "lowercase letters, digits and `-`, at most 48, not starting with `-`";

pub(super) fn validate(file: &str, raw: RawConfig) -> Result<Config, ConfigErrors> {
    let mut c = Collector::new(file);
    if !name_ok(&raw.project) {
        c.err(
            "project",
            format!("`{}` is not allowed: use {NAME_RULE}", raw.project),
        );
    }
    if raw.state_bucket.len() < 3 || raw.state_bucket.len() > 63 {
        c.err("state_bucket", "an S3 bucket name has 3 to 63 characters");
    }
    if !raw.notification_topic.starts_with("arn:aws") || !raw.notification_topic.contains(":sns:") {
        c.err(
            "notification_topic",
            "expected an SNS topic ARN (arn:aws:sns:<region>:<account>:<name>)",
        );
    }
    let agent = agent(&mut c, raw.agent);
    let environments = environments(&mut c, raw.environments, agent.self_heal);
    let mut services = BTreeMap::new();
    for (name, s) in raw.services {
        let s = service(&mut c, &raw.project, &environments, name.clone(), s);
        services.insert(name, s);
    }
    hook_timeouts(&mut c, &agent, &services);
    c.finish(Some(Config {
        project: raw.project,
        state_bucket: raw.state_bucket,
        notification_topic: raw.notification_topic,
        region: raw.region,
        agent,
        environments,
        services,
    }))
}

/// A hook held longer than ECS allows would be rolled back by ECS's timeout, not decided by
/// the agent: refuse gates whose longest wait ECS cannot hold.
fn hook_timeouts(
    c: &mut Collector<'_>,
    agent: &AgentSettings,
    services: &BTreeMap<String, Service>,
) {
    use crate::strategy::ECS_HOOK_TIMEOUT_MAX_MINUTES as MAX;
    for (name, s) in services {
        for (env, t) in &s.targets {
            let minutes = t.gates.hook_timeout_minutes(agent.hook_callback_seconds);
            if minutes > u64::from(MAX) {
                c.err(
                    format!("services.{name}.environments.{env}"),
                    format!(
                        "the gates may hold a lifecycle hook {minutes} minutes (approval timeout, \
                         then checks' rounds, plus a margin); ECS holds one at most {MAX}"
                    ),
                );
            }
        }
    }
}

fn agent(c: &mut Collector<'_>, raw: RawAgent) -> AgentSettings {
    let d = AgentSettings::default();
    let agent = AgentSettings {
        lease_seconds: raw.lease_seconds.unwrap_or(d.lease_seconds),
        settle_seconds: raw.settle_seconds.unwrap_or(d.settle_seconds),
        stabilize_timeout_minutes: raw
            .stabilize_timeout_minutes
            .unwrap_or(d.stabilize_timeout_minutes),
        max_attempts: raw.max_attempts.unwrap_or(d.max_attempts),
        reconcile: raw.reconcile.unwrap_or(d.reconcile),
        history_limit: raw.history_limit.unwrap_or(d.history_limit),
        hook_function_arn: raw.hook_function_arn,
        hook_role_arn: raw.hook_role_arn,
        hook_callback_seconds: raw.hook_callback_seconds.unwrap_or(d.hook_callback_seconds),
        function_timeout_seconds: (raw.function_timeout_seconds)
            .unwrap_or(d.function_timeout_seconds),
        self_heal: raw.self_heal.unwrap_or(d.self_heal),
        drift_check_minutes: raw.drift_check_minutes.unwrap_or(d.drift_check_minutes),
    };
    if !(5..=900).contains(&agent.hook_callback_seconds) {
        c.err("agent.hook_callback_seconds", "allowed: 5 to 900");
    }
    for (key, v) in [
        ("agent.hook_function_arn", &agent.hook_function_arn),
        ("agent.hook_role_arn", &agent.hook_role_arn),
    ] {
        if v.as_ref().is_some_and(|v| !v.starts_with("arn:")) {
            c.err(key, "expected an ARN");
        }
    }
    // A lease shorter than the function's timeout could lapse while its holder still has a
    // call on its way to ECS: another invocation would take the step over under it.
    if !(1..=60).contains(&agent.drift_check_minutes) {
        c.err("agent.drift_check_minutes", "allowed: 1 to 60");
    }
    if !(3..=900).contains(&agent.function_timeout_seconds) {
        c.err(
            "agent.function_timeout_seconds",
            "allowed: 3 to 900 (Lambda's range)",
        );
    }
    let min = agent.function_timeout_seconds.max(10);
    if !(min..=3600).contains(&agent.lease_seconds) {
        c.err(
            "agent.lease_seconds",
            format!("allowed: {min} (at least the functions' timeout) to 3600"),
        );
    }
    if agent.settle_seconds > 900 {
        c.err(
            "agent.settle_seconds",
            "allowed: 0 to 900 (the tick starts a settled release; longer only delays deploys)",
        );
    }
    if !(1..=100).contains(&agent.max_attempts) {
        c.err("agent.max_attempts", "allowed: 1 to 100");
    }
    // A day: longer hides a stuck rollout; native strategies add their own budget on top.
    if !(1..=1440).contains(&agent.stabilize_timeout_minutes) {
        c.err("agent.stabilize_timeout_minutes", "allowed: 1 to 1440");
    }
    if !(1..=200).contains(&agent.history_limit) {
        c.err("agent.history_limit", "allowed: 1 to 200");
    }
    agent
}

fn environments(
    c: &mut Collector<'_>,
    raw: BTreeMap<String, RawEnvironment>,
    self_heal: bool,
) -> BTreeMap<String, Environment> {
    let mut environments = BTreeMap::new();
    for (name, e) in raw {
        let field = format!("environments.{name}");
        if !name_ok(&name) {
            let why = format!("environment name not allowed: use {NAME_RULE}");
            c.err(&field, why);
        }
        if e.cluster.is_empty() {
            c.err(format!("{field}.cluster"), "must not be empty");
        }
        if let Some(a) = &e.account_id {
            if a.len() != 12 || !a.bytes().all(|b| b.is_ascii_digit()) {
                c.err(format!("{field}.account_id"), "expected 12 digits");
            }
        }
        let config_releases = match e.config_releases.as_deref() {
            None if e.auto_deploy => ConfigReleases::Auto,
            None => ConfigReleases::Manual,
            Some("auto") => ConfigReleases::Auto,
            Some("manual") => ConfigReleases::Manual,
            Some(_) => {
                let why = "expected \"auto\" or \"manual\"";
                c.err(format!("{field}.config_releases"), why);
                ConfigReleases::Manual
            }
        };
        let env = Environment {
            name: name.clone(),
            cluster: e.cluster,
            auto_deploy: e.auto_deploy,
            config_releases,
            promote_from: e.promote_from,
            self_heal: e.self_heal.unwrap_or(self_heal),
            account_id: e.account_id,
            bootstrap: e.bootstrap,
        };
        environments.insert(name, env);
    }
    if environments.is_empty() {
        c.err("environments", "at least one environment is required");
    }
    for (name, e) in &environments {
        let Some(from) = &e.promote_from else {
            continue;
        };
        if from == name || !environments.contains_key(from) {
            let others: Vec<&str> = (environments.keys().map(String::as_str))
                .filter(|n| n != name)
                .collect();
            c.err(
                format!("environments.{name}.promote_from"),
                format!(
                    "names no other environment (these are: {})",
                    others.join(", ")
                ),
            );
        }
    }
    environments
}

/// What a service says for all its environments, checked once.
struct ServiceDefaults {
    field: String,
    strategy: Strategy,
    /// The service's native settings, parsed and as written (an environment may override
    /// some of them).
    native: Option<NativeSettings>,
    raw_native: RawNative,
    checks: Vec<MetricCheck>,
    approval: Option<ApprovalGate>,
    secrets: BTreeMap<String, SecretRef>,
    /// The service's own settings (`crate::service`), as written.
    settings: RawServiceSettings,
}

fn service(
    c: &mut Collector<'_>,
    project: &str,
    environments: &BTreeMap<String, Environment>,
    name: String,
    mut s: RawService,
) -> Service {
    let field = format!("services.{name}");
    if !name_ok(&name) {
        c.err(&field, format!("service name not allowed: use {NAME_RULE}"));
    }
    // The installed agent reads images in `repository/<project>/*` only (deploy/template.yaml).
    let in_project = s.repository.strip_prefix(project);
    if in_project
        .and_then(|r| r.strip_prefix('/'))
        .is_none_or(str::is_empty)
    {
        c.err(
            format!("{field}.repository"),
            format!("must be `{project}/<name>`: the agent may read images there only"),
        );
    }
    desired_count(c, field.clone(), s.desired_count);
    if let Err(why) = inside_the_bundle(&s.task_definition) {
        c.err(format!("{field}.task_definition"), why);
    }
    let strategy = strategy(c, &field, s.strategy.as_deref());
    let settings = s.take_settings();
    let raw_native = RawNative {
        bake_time_minutes: s.bake_time_minutes,
        canary: s.canary.take(),
        linear: s.linear.take(),
        load_balancer: s.load_balancer.take(),
    };
    let native = parse_native(c, &field, strategy, raw_native.clone());
    let checks = parse_checks(c, &format!("{field}.checks"), std::mem::take(&mut s.checks));
    let thresholds = thresholds(c, &field, &s);
    let approval =
        (s.approval.take()).and_then(|a| parse_approval(c, &format!("{field}.approval"), a));
    let rolling = rolling(c, &field, &s);
    let behind_a_balancer = raw_native.load_balancer.is_some()
        || s.environments.values().any(|t| t.load_balancer.is_some());
    grace_needs_a_balancer(c, &field, &rolling, behind_a_balancer);
    if s.containers.as_ref().is_some_and(|c| c.is_empty()) {
        let why = "name at least one container, or leave it out";
        c.err(format!("{field}.containers"), why);
    }
    check_variables(c, &format!("{field}.variables"), &s.variables);
    let secrets = parse_secrets(c, &format!("{field}.secrets"), &s.secrets);
    let defaults = ServiceDefaults {
        field,
        strategy,
        native: native.clone(),
        raw_native,
        checks,
        approval,
        secrets,
        settings,
    };
    let mut targets = BTreeMap::new();
    for (env, t) in std::mem::take(&mut s.environments) {
        let settings = target(c, project, environments, &defaults, &s, &env, t);
        targets.insert(env, settings);
    }
    Service {
        ecs_service: s.ecs_service.unwrap_or_else(|| name.clone()),
        name,
        repository: s.repository,
        task_definition: s.task_definition,
        containers: s.containers,
        strategy,
        rolling,
        native,
        thresholds,
        targets,
    }
}

/// The strategy in one environment: the service's, unless the environment's table sets the
/// strategy or any of its settings; then those, with what it leaves out taken from the service
/// when the strategy is native.
fn target_strategy(
    c: &mut Collector<'_>,
    tfield: &str,
    base: &ServiceDefaults,
    t: &mut RawTarget,
) -> TargetStrategy {
    let own = RawNative {
        bake_time_minutes: t.bake_time_minutes.take(),
        canary: t.canary.take(),
        linear: t.linear.take(),
        load_balancer: t.load_balancer.take(),
    };
    let set = t.strategy.is_some()
        || own.bake_time_minutes.is_some()
        || own.canary.is_some()
        || own.linear.is_some()
        || own.load_balancer.is_some();
    let inherited_lb = || {
        // A rolling environment of a native service keeps the container, port and target
        // group; the second target group and the listener rules are the native strategies'.
        (base.raw_native.load_balancer.clone()).map(|mut lb| {
            lb.alternate_target_group = None;
            lb.production_listener_rule = None;
            lb.test_listener_rule = None;
            lb.role = None;
            (base.field.clone(), lb)
        })
    };
    if !set {
        let rolling_lb = if base.strategy.is_native() {
            None
        } else {
            base.raw_native
                .load_balancer
                .clone()
                .map(|lb| (base.field.clone(), lb))
        };
        return TargetStrategy {
            strategy: base.strategy,
            native: base.native.clone(),
            rolling_lb,
        };
    }
    let strategy = match t.strategy.take() {
        Some(s) => strategy(c, tfield, Some(&s)),
        None => base.strategy,
    };
    let rolling_lb = match (strategy.is_native(), &own.load_balancer) {
        (true, _) => None,
        (false, Some(lb)) => Some((tfield.to_owned(), lb.clone())),
        (false, None) => inherited_lb(),
    };
    let raw = if strategy.is_native() {
        let from = &base.raw_native;
        RawNative {
            bake_time_minutes: own.bake_time_minutes.or(from.bake_time_minutes),
            canary: own.canary.or_else(|| from.canary.clone()),
            linear: own.linear.or_else(|| from.linear.clone()),
            load_balancer: own.load_balancer.or_else(|| from.load_balancer.clone()),
        }
    } else {
        own
    };
    TargetStrategy {
        strategy,
        native: parse_native(c, tfield, strategy, raw),
        rolling_lb,
    }
}

/// An environment's strategy, its native settings, and a rolling service's load balancer as
/// written (with the path of the table it is in).
struct TargetStrategy {
    strategy: Strategy,
    native: Option<NativeSettings>,
    rolling_lb: Option<(String, crate::strategy::RawLoadBalancer)>,
}

fn strategy(c: &mut Collector<'_>, field: &str, raw: Option<&str>) -> Strategy {
    Strategy::parse(raw.unwrap_or("rolling")).unwrap_or_else(|| {
        c.err(
            format!("{field}.strategy"),
            format!(
                "`{}` is not supported; allowed: \"rolling\", \"blue_green\", \"canary\", \"linear\"",
                raw.unwrap_or_default()
            ),
        );
        Strategy::Rolling
    })
}

const GATES_NEED_HOOKS: &str = "checks and approval run at ECS lifecycle hooks, which only the strategies \"blue_green\", \"canary\" and \"linear\" have";

/// One environment's settings of a service: its own where given, the service's otherwise.
fn target(
    c: &mut Collector<'_>,
    project: &str,
    environments: &BTreeMap<String, Environment>,
    base: &ServiceDefaults,
    s: &RawService,
    env: &str,
    mut t: RawTarget,
) -> TargetSettings {
    let tfield = format!("{}.environments.{env}", base.field);
    desired_count(c, tfield.clone(), t.desired_count);
    if !environments.contains_key(env) {
        let defined: Vec<&str> = environments.keys().map(String::as_str).collect();
        let defined = defined.join(", ");
        c.err(
            &tfield,
            format!("no environment `{env}` is defined; defined: {defined}"),
        );
    }
    let follow = (t.follow.take()).and_then(|f| parse_follow(c, &format!("{tfield}.follow"), f));
    let (variables, secrets) = values(c, &tfield, s, base, &mut t);
    let service = base.field.strip_prefix("services.").unwrap_or(&base.field);
    let names = Names {
        project,
        env,
        service,
    };
    let rollback_alarms = match &t.rollback_alarms {
        Some(a) => names.fill(c, &format!("{tfield}.rollback_alarms"), a),
        None => names.fill(
            c,
            &format!("{}.rollback_alarms", base.field),
            &s.rollback_alarms,
        ),
    };
    let gates = gates(c, &tfield, base, &mut t);
    let alarms = alarm_policy(c, (&tfield, &base.field), &names, (s, &t), &rollback_alarms);
    let own_settings = t.take_settings();
    let TargetStrategy {
        strategy,
        native,
        rolling_lb,
    } = target_strategy(c, &tfield, base, &mut t);
    if !strategy.is_native() && (!gates.checks.is_empty() || gates.approval.is_some()) {
        c.err(&tfield, GATES_NEED_HOOKS);
    }
    let (scaling_field, scaling) = scaling(
        c,
        (project, env),
        (&tfield, t.scaling.take()),
        (&base.field, s.scaling.as_ref()),
    );
    let service = crate::service::parse_service_settings(
        c,
        Written {
            field: &tfield,
            raw: &own_settings,
        },
        Written {
            field: &base.field,
            raw: &base.settings,
        },
        rolling_lb.as_ref().map(|(f, lb)| (f.as_str(), lb.clone())),
        strategy.is_native(),
        scaling_field.as_deref(),
    );
    TargetSettings {
        gates,
        alarms,
        scaling,
        strategy,
        native,
        follow,
        desired_count: t.desired_count.or(s.desired_count),
        rollback_alarms,
        variables,
        secrets,
        service,
    }
}

/// The environment's variables and secrets over the service's; a name is one or the other.
fn values(
    c: &mut Collector<'_>,
    tfield: &str,
    s: &RawService,
    base: &ServiceDefaults,
    t: &mut RawTarget,
) -> (BTreeMap<String, String>, BTreeMap<String, SecretRef>) {
    check_variables(c, &format!("{tfield}.variables"), &t.variables);
    let mut variables = s.variables.clone();
    variables.extend(std::mem::take(&mut t.variables));
    let mut secrets = base.secrets.clone();
    secrets.extend(parse_secrets(c, &format!("{tfield}.secrets"), &t.secrets));
    for k in secrets.keys().filter(|k| variables.contains_key(*k)) {
        let why =
            format!("`{k}` is both a variable and a secret; a container gets one value per name");
        c.err(tfield, why);
    }
    (variables, secrets)
}

/// The environment's checks and approval, the service's where it gives none.
fn gates(c: &mut Collector<'_>, tfield: &str, base: &ServiceDefaults, t: &mut RawTarget) -> Gates {
    let checks = match t.checks.take() {
        Some(raw) => parse_checks(c, &format!("{tfield}.checks"), raw),
        None => base.checks.clone(),
    };
    let approval = match t.approval.take() {
        Some(raw) => parse_approval(c, &format!("{tfield}.approval"), raw),
        None => base.approval.clone(),
    };
    Gates { checks, approval }
}

/// The environment's scaling table, or the service's: the field it was read at, and the policy.
fn scaling(
    c: &mut Collector<'_>,
    (project, env): (&str, &str),
    own: (&str, Option<RawScaling>),
    service: (&str, Option<&RawScaling>),
) -> (Option<String>, Option<ScalingPolicy>) {
    let (field, raw) = match (own, service) {
        ((at, Some(raw)), _) => (format!("{at}.scaling"), raw),
        (_, (at, Some(raw))) => (format!("{at}.scaling"), raw.clone()),
        _ => return (None, None),
    };
    let policy = crate::scaling::parse_scaling(c, &field, project, env, raw);
    (Some(field), policy)
}
