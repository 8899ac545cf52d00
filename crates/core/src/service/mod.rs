//! The ECS service itself, owned from git: how it is created and what every deployment keeps
//! true of it (network, load balancer, capacity, target tracking, the one-off task that runs
//! before a rollout). `config.rs` reads these settings from `harbormaster.toml`, `resolve.rs`
//! fills in what the bootstrap's outputs say, `autoscaling.rs` plans Application Auto Scaling,
//! `task.rs` follows a one-off task.

mod autoscaling;
mod config;
mod resolve;
mod task;

use serde::Serialize;

pub use autoscaling::{plan_scaling, policy_name, ScalingStep, ScalingWant, TrackingPolicy};
pub(crate) use config::service_keys;
pub(crate) use config::{check_spot, parse_service_settings, Written};
pub use config::{RawAutoscaling, RawCapacity, RawNetwork, RawOneOff, RawServiceSettings};
pub use resolve::{
    resolve_service, resource_label, Names, ResolvedAttachment, ResolvedService, ServiceOutputs,
};
pub use task::{log_stream, not_visible_yet, OneOffTask, TaskProgress, TaskRun, VISIBLE_WITHIN};

/// ECS's quota of tasks per service, and Application Auto Scaling's bound for ECS.
pub const MAX_TASKS: u32 = 5000;

/// `network = { subnets, security_groups, assign_public_ip }`: where the tasks run. Without
/// it, the bootstrap's private subnets and services security group, no public IP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Network {
    pub subnets: Vec<String>,
    /// Empty: the bootstrap's services security group.
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
}

/// `capacity = { fargate, fargate_spot, base }`: how tasks are spread between on-demand
/// Fargate and Fargate Spot. `base` tasks run on on-demand Fargate first (on Spot when
/// on-demand has no weight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capacity {
    pub fargate: u32,
    pub fargate_spot: u32,
    pub base: u32,
}

impl Default for Capacity {
    fn default() -> Self {
        Capacity {
            fargate: 1,
            fargate_spot: 0,
            base: 0,
        }
    }
}

/// One entry of an ECS capacity provider strategy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CapacityItem {
    pub provider: String,
    pub weight: u32,
    pub base: u32,
}

impl Capacity {
    pub fn uses_spot(&self) -> bool {
        self.fargate_spot > 0
    }

    /// The strategy ECS is sent: providers with weight, `base` on the first of them.
    pub fn strategy(&self) -> Vec<CapacityItem> {
        let mut items: Vec<CapacityItem> = [
            ("FARGATE", self.fargate),
            ("FARGATE_SPOT", self.fargate_spot),
        ]
        .into_iter()
        .filter(|(_, w)| *w > 0)
        .map(|(p, weight)| CapacityItem {
            provider: p.to_owned(),
            weight,
            base: 0,
        })
        .collect();
        if let Some(first) = items.first_mut() {
            // "Only one capacity provider in a capacity provider strategy can have a base
            // defined" (ECS API reference, CapacityProviderStrategyItem).
            first.base = self.base;
        }
        items
    }
}

/// `autoscaling = { min, max, cpu, memory, requests_per_target, … }`: Application Auto Scaling
/// target tracking. While it is set, the service's desired count is its own.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscaling {
    pub min: u32,
    pub max: u32,
    /// Average CPU utilisation to keep (percent).
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
    /// ALB requests per target per minute to keep (needs the load balancer).
    pub requests_per_target: Option<f64>,
    pub scale_in_cooldown_seconds: u32,
    pub scale_out_cooldown_seconds: u32,
}

/// `load_balancer = { container, port, target_group }` of a rolling service: the target group
/// defaults to the bootstrap's blue one. (The native strategies have their own, with two.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attachment {
    pub container: String,
    pub port: u16,
    pub target_group: Option<String>,
}

/// ECS's `propagateTags`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum PropagateTags {
    #[default]
    Service,
    TaskDefinition,
    None,
}

impl PropagateTags {
    pub fn ecs_name(self) -> &'static str {
        match self {
            PropagateTags::Service => "SERVICE",
            PropagateTags::TaskDefinition => "TASK_DEFINITION",
            PropagateTags::None => "NONE",
        }
    }
}

/// One service's settings in one environment, as git says (the environment's own where it
/// gives them, the service's otherwise).
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct ServiceSettings {
    pub network: Option<Network>,
    pub capacity: Capacity,
    pub autoscaling: Option<Autoscaling>,
    pub before_deploy: Option<OneOffTask>,
    pub load_balancer: Option<Attachment>,
    pub platform_version: Option<String>,
    pub execute_command: bool,
    pub propagate_tags: PropagateTags,
}

impl ServiceSettings {
    /// Settings left at their defaults: nothing to fingerprint (so a config written before
    /// these existed keeps its version).
    pub fn is_default(&self) -> bool {
        *self == ServiceSettings::default()
    }

    /// Git asks for a capacity strategy other than on-demand Fargate alone.
    pub fn custom_capacity(&self) -> bool {
        self.capacity != Capacity::default()
    }

    /// In words, for `validate`: `capacity FARGATE:1 + FARGATE_SPOT:3 (base 1); behind web:8000;
    /// autoscaling 1–5 (cpu 70%, memory 80%); before rollout: python manage.py migrate (15 min)`.
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        let capacity: Vec<String> = (self.capacity.strategy().iter())
            .map(|c| format!("{}:{}", c.provider, c.weight))
            .collect();
        let base = match self.capacity.base {
            0 => String::new(),
            n => format!(" (base {n})"),
        };
        parts.push(format!("capacity {}{base}", capacity.join(" + ")));
        if let Some(lb) = &self.load_balancer {
            parts.push(format!("behind {}:{}", lb.container, lb.port));
        }
        if let Some(n) = &self.network {
            parts.push(format!("in {} subnets of its own", n.subnets.len()));
        }
        if let Some(a) = &self.autoscaling {
            let targets: Vec<String> = [
                a.cpu.map(|t| format!("cpu {t}%")),
                a.memory.map(|t| format!("memory {t}%")),
                a.requests_per_target
                    .map(|t| format!("{t} requests per target")),
            ]
            .into_iter()
            .flatten()
            .collect();
            parts.push(format!(
                "autoscaling {}–{} ({})",
                a.min,
                a.max,
                targets.join(", ")
            ));
        }
        if let Some(b) = &self.before_deploy {
            parts.push(format!(
                "before rollout: {} ({} min)",
                b.command.join(" "),
                b.timeout_minutes
            ));
        }
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests;
