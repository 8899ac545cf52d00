//! The service settings with every id known: what the config gives, else the bootstrap's
//! outputs in SSM (private subnets, the services security group, the blue target group, the
//! load balancer). Pure: the caller reads the outputs.

use std::collections::BTreeMap;

use super::autoscaling::{policy_name, ScalingWant, TrackingPolicy};
use super::{CapacityItem, Network, PropagateTags};
use crate::config::{RollingSettings, TargetSettings};

/// The bootstrap's outputs a service reads (under `/<project>/<env>/outputs/`).
pub struct ServiceOutputs;

impl ServiceOutputs {
    pub const SUBNETS: &'static str = "private-subnet-ids";
    pub const SECURITY_GROUP: &'static str = "security-groups/services";
    pub const LOAD_BALANCER: &'static str = "alb-arn";

    pub fn target_group(service: &str) -> String {
        format!("target-groups/{service}/blue")
    }

    pub fn names(service: &str) -> Vec<String> {
        vec![
            Self::SUBNETS.into(),
            Self::SECURITY_GROUP.into(),
            Self::LOAD_BALANCER.into(),
            Self::target_group(service),
        ]
    }
}

/// A rolling service's load balancer attachment with its target group known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedAttachment {
    pub container: String,
    pub port: u16,
    pub target_group: String,
}

/// Everything CreateService and UpdateService send besides the revision and the strategy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ResolvedService {
    pub cluster: String,
    /// `None`: neither the config nor the bootstrap says (an update then leaves the service's
    /// network as it is; a creation cannot go ahead).
    pub network: Option<Network>,
    pub capacity: Vec<CapacityItem>,
    pub load_balancer: Option<ResolvedAttachment>,
    pub platform_version: Option<String>,
    pub execute_command: bool,
    pub propagate_tags: PropagateTags,
    /// `harbormaster:project`, `harbormaster:environment`, `harbormaster:service`.
    pub tags: Vec<(String, String)>,
    pub autoscaling: Option<ScalingWant>,
    /// The count CreateService starts with (within the autoscaling range when it is set).
    pub initial_count: u32,
    /// The count UpdateService sets: git's, unless a scaler (queue depth or target tracking)
    /// owns it, when deployments leave it alone.
    pub desired_count: Option<u32>,
    /// Minimum and maximum percent, and the load balancer's health check grace period.
    pub rolling: RollingSettings,
    /// ECS's deployment alarms: the rollback alarms, resolved to names.
    pub alarms: Vec<String>,
    /// What the config asks for and nothing resolves, by the config field that would.
    pub missing: Vec<String>,
    /// UpdateService only: whether it forces a new deployment. ECS refuses a change of the
    /// capacity provider strategy (or a launch type's move to one) without it (UpdateService
    /// API reference, `capacityProviderStrategy` and `forceNewDeployment`); set whenever a
    /// strategy is sent, since the agent cannot know what the service has without a call.
    pub force_new_deployment: bool,
}

/// The names of a target, for tags and messages.
pub struct Names<'a> {
    pub project: &'a str,
    pub environment: &'a str,
    pub service: &'a str,
    pub cluster: &'a str,
    /// `services.web.environments.dev`.
    pub field: &'a str,
}

/// Git's settings of one target (`rolling`: its service's) with `outputs` by their short names
/// ([`ServiceOutputs`]) filling in what the config leaves out.
pub fn resolve_service(
    names: &Names<'_>,
    target: &TargetSettings,
    rolling: &RollingSettings,
    outputs: &BTreeMap<String, String>,
) -> ResolvedService {
    let (settings, desired_count) = (&target.service, target.desired_count);
    let outputs = Outputs(outputs);
    let mut missing = Vec::new();
    let load_balancer = (settings.load_balancer.as_ref())
        .and_then(|lb| attachment(names, lb, &outputs, &mut missing));
    let autoscaling = (settings.autoscaling.as_ref()).map(|a| {
        let lb = load_balancer.as_ref();
        scaling_want(names.field, a, lb, &outputs, &mut missing)
    });
    let wanted = desired_count.unwrap_or(1);
    let initial_count = match &autoscaling {
        Some(a) => wanted.clamp(a.min, a.max),
        None => wanted,
    };
    ResolvedService {
        cluster: names.cluster.to_owned(),
        network: network(settings.network.as_ref(), &outputs),
        capacity: settings.capacity.strategy(),
        load_balancer,
        platform_version: settings.platform_version.clone(),
        execute_command: settings.execute_command,
        propagate_tags: settings.propagate_tags,
        tags: vec![
            ("harbormaster:project".into(), names.project.to_owned()),
            (
                "harbormaster:environment".into(),
                names.environment.to_owned(),
            ),
            ("harbormaster:service".into(), names.service.to_owned()),
        ],
        autoscaling,
        initial_count,
        desired_count: desired_count
            .filter(|_| target.scaling.is_none() && settings.autoscaling.is_none()),
        rolling: rolling.clone(),
        alarms: target.rollback_alarms.clone(),
        missing,
        // The engine decides, for the one UpdateService that sends a strategy.
        force_new_deployment: false,
    }
}

/// The bootstrap's outputs by short name; an empty value is no value.
struct Outputs<'a>(&'a BTreeMap<String, String>);

impl Outputs<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).filter(|v| !v.is_empty()).cloned()
    }
}

/// The config's network, its security groups the bootstrap's where it names none; without one,
/// the bootstrap's private subnets. Neither: `None` (an update leaves the network as it is; a
/// creation refuses, it needs one).
fn network(given: Option<&Network>, outputs: &Outputs<'_>) -> Option<Network> {
    let services_group = || {
        outputs
            .get(ServiceOutputs::SECURITY_GROUP)
            .into_iter()
            .collect()
    };
    match given {
        Some(n) => {
            let mut n = n.clone();
            if n.security_groups.is_empty() {
                n.security_groups = services_group();
            }
            Some(n)
        }
        None => outputs.get(ServiceOutputs::SUBNETS).map(|subnets| Network {
            subnets: (subnets.split(','))
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            security_groups: services_group(),
            assign_public_ip: false,
        }),
    }
}

/// A rolling service's attachment, its target group the config's or the bootstrap's blue one.
fn attachment(
    names: &Names<'_>,
    lb: &super::Attachment,
    outputs: &Outputs<'_>,
    missing: &mut Vec<String>,
) -> Option<ResolvedAttachment> {
    let output = ServiceOutputs::target_group(names.service);
    let target_group = lb.target_group.clone().or_else(|| outputs.get(&output));
    if target_group.is_none() {
        missing.push(format!(
            "`{}.load_balancer.target_group` (not in the config, and no bootstrap output `{output}`)",
            names.field
        ));
    }
    Some(ResolvedAttachment {
        container: lb.container.clone(),
        port: lb.port,
        target_group: target_group?,
    })
}

/// The target tracking policies the service's `autoscaling` asks for; requests per target needs
/// the load balancer's ARN for its resource label.
fn scaling_want(
    field: &str,
    a: &super::Autoscaling,
    load_balancer: Option<&ResolvedAttachment>,
    outputs: &Outputs<'_>,
    missing: &mut Vec<String>,
) -> ScalingWant {
    let policy = |metric: &str, target: f64, label: Option<String>| TrackingPolicy {
        name: policy_name(metric),
        metric: metric.to_owned(),
        resource_label: label,
        target,
        scale_in_cooldown_seconds: a.scale_in_cooldown_seconds,
        scale_out_cooldown_seconds: a.scale_out_cooldown_seconds,
    };
    let mut policies = Vec::new();
    if let Some(t) = a.cpu {
        policies.push(policy("ECSServiceAverageCPUUtilization", t, None));
    }
    if let Some(t) = a.memory {
        policies.push(policy("ECSServiceAverageMemoryUtilization", t, None));
    }
    if let Some(t) = a.requests_per_target {
        let label = load_balancer.and_then(|lb| {
            resource_label(
                &outputs.get(ServiceOutputs::LOAD_BALANCER)?,
                &lb.target_group,
            )
        });
        match label {
            Some(l) => policies.push(policy("ALBRequestCountPerTarget", t, Some(l))),
            None => missing.push(format!(
                "`{field}.autoscaling.requests_per_target` (needs the load balancer's ARN: bootstrap output `{}`)",
                ServiceOutputs::LOAD_BALANCER
            )),
        }
    }
    ScalingWant {
        min: a.min,
        max: a.max,
        policies,
    }
}

/// `ALBRequestCountPerTarget`'s resource label: `app/<lb-name>/<lb-id>/targetgroup/<tg-name>/<tg-id>`,
/// the final parts of the load balancer's and the target group's ARNs (Application Auto
/// Scaling API reference, PredefinedMetricSpecification).
pub fn resource_label(load_balancer_arn: &str, target_group_arn: &str) -> Option<String> {
    let lb = load_balancer_arn.split_once(":loadbalancer/")?.1;
    let tg = target_group_arn.split_once(":targetgroup/")?.1;
    Some(format!("{lb}/targetgroup/{tg}"))
}
