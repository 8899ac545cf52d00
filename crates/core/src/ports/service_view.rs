//! What DescribeServices says of a service, in the core's words: its status, its deployments
//! and their rollout, and its settings as ECS keeps them ([`LiveSettings`], which `diff`
//! compares with what the agent would send).

use super::ServiceTarget;

/// An ECS deployment's `status`, translated by the adapter from ECS's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeploymentStatus {
    /// The deployment ECS is rolling the service onto (`PRIMARY`).
    Primary,
    /// An older deployment still draining (`ACTIVE`).
    #[default]
    Active,
    /// Done with (`INACTIVE`), or a word this agent does not know.
    Inactive,
}

/// An ECS deployment's `rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EcsDeployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    /// When ECS reports one.
    pub rollout_state: Option<RolloutState>,
    pub rollout_reason: Option<String>,
    pub running: i32,
    pub desired: i32,
    pub failed_tasks: i32,
}

impl EcsDeployment {
    pub fn is_primary(&self) -> bool {
        self.status == DeploymentStatus::Primary
    }
}

/// A service's `status`: a deleted service is still listed for a while, DRAINING then
/// INACTIVE, and ECS refuses to update it (ServiceNotActiveException).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceStatus {
    #[default]
    Active,
    Draining,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSnapshot {
    pub status: ServiceStatus,
    /// Its awsvpc network, as ECS has it (a one-off task of a service made by hand runs there
    /// when neither git nor the bootstrap says where).
    pub network: Option<crate::service::Network>,
    pub task_definition: String,
    pub desired_count: i32,
    pub running_count: i32,
    /// Tasks started but not yet running (provisioning, pulling the image).
    pub pending_count: i32,
    pub deployments: Vec<EcsDeployment>,
    /// Newest first.
    pub events: Vec<String>,
    /// The settings the agent sends with every UpdateService, as ECS keeps them.
    pub settings: LiveSettings,
}

/// A service's settings as ECS keeps them after CreateService or UpdateService (DescribeServices),
/// in the shape [`LiveSettings::sent`] gives what the agent would send: `diff` compares the two.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveSettings {
    pub min_healthy_percent: Option<i32>,
    pub max_percent: Option<i32>,
    pub health_check_grace_period_seconds: Option<i32>,
    /// The capacity provider strategy; empty: a launch type, or left as it is.
    pub capacity: Vec<crate::service::CapacityItem>,
    pub platform_version: Option<String>,
    pub execute_command: bool,
    /// `SERVICE`, `TASK_DEFINITION` or `NONE`, as ECS names them.
    pub propagate_tags: Option<String>,
    /// (container, port, target group) of each load balancer.
    pub load_balancers: Vec<(String, i32, String)>,
    /// The deployment's rollback alarms.
    pub alarms: Vec<String>,
    pub network: Option<crate::service::Network>,
}

impl LiveSettings {
    /// What an UpdateService for `target` sets, as ECS would then describe it; what it leaves
    /// as it is stays `None` or empty (a native strategy's load balancers: ECS swaps their
    /// target groups with each deployment).
    pub fn sent(target: &ServiceTarget) -> LiveSettings {
        let s = &target.settings;
        LiveSettings {
            min_healthy_percent: Some(s.rolling.min_healthy_percent as i32),
            max_percent: Some(s.rolling.max_percent as i32),
            health_check_grace_period_seconds: (s.rolling.health_check_grace_period_seconds)
                .map(|g| g as i32),
            capacity: s.capacity.clone(),
            platform_version: s.platform_version.clone(),
            execute_command: s.execute_command,
            propagate_tags: Some(s.propagate_tags.ecs_name().to_owned()),
            load_balancers: (s.load_balancer.iter())
                .filter(|_| target.native.is_none())
                .map(|l| {
                    (
                        l.container.clone(),
                        i32::from(l.port),
                        l.target_group.clone(),
                    )
                })
                .collect(),
            alarms: s.alarms.clone(),
            network: s.network.clone(),
        }
    }
}

impl LiveSettings {
    /// Each setting in words, by its name in `harbormaster.toml`, in one order; `None`: not set
    /// (or left as it is). Lists are sorted where ECS keeps no order (alarms, the network).
    pub fn fields(&self) -> [(&'static str, Option<String>); 12] {
        fn opt<T: ToString>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(ToString::to_string)
        }
        fn listed<T>(items: &[T], word: impl Fn(&T) -> String, sort: bool) -> Option<String> {
            let mut words: Vec<String> = items.iter().map(word).collect();
            if sort {
                words.sort();
            }
            (!words.is_empty()).then(|| words.join(", "))
        }
        let capacity = |i: &crate::service::CapacityItem| {
            format!("{} weight {} base {}", i.provider, i.weight, i.base)
        };
        let balancer = |(c, p, tg): &(String, i32, String)| format!("{c}:{p} → {tg}");
        let net = self.network.as_ref();
        let sorted = |v: &[String]| listed(v, String::clone, true).unwrap_or_default();
        [
            ("min_healthy_percent", opt(&self.min_healthy_percent)),
            ("max_percent", opt(&self.max_percent)),
            (
                "health_check_grace_period_seconds",
                opt(&self.health_check_grace_period_seconds),
            ),
            ("capacity", listed(&self.capacity, capacity, false)),
            ("platform_version", self.platform_version.clone()),
            (
                "enable_execute_command",
                Some(self.execute_command.to_string()),
            ),
            ("propagate_tags", self.propagate_tags.clone()),
            (
                "load_balancer",
                listed(&self.load_balancers, balancer, false),
            ),
            ("rollback_alarms", listed(&self.alarms, String::clone, true)),
            ("network.subnets", net.map(|n| sorted(&n.subnets))),
            (
                "network.security_groups",
                (net.filter(|n| !n.security_groups.is_empty())).map(|n| sorted(&n.security_groups)),
            ),
            (
                "network.assign_public_ip",
                net.map(|n| n.assign_public_ip.to_string()),
            ),
        ]
    }
}

impl ServiceSnapshot {
    pub fn primary(&self) -> Option<&EcsDeployment> {
        self.deployments.iter().find(|d| d.is_primary())
    }
}

/// An ECS service the agent created (tagged `harbormaster:service`), as ListServices and
/// DescribeServices tell it: what `status` and `diff` compare with git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedService {
    /// The ECS service's name.
    pub name: String,
    /// Its `harbormaster:service` tag: the config's name for it.
    pub service: String,
    /// Its `harbormaster:project` and `harbormaster:environment` tags (the agent sets all three).
    pub project: Option<String>,
    pub environment: Option<String>,
}

impl OwnedService {
    /// Whether it is the agent's service `service` of `project` in `environment`: only such a
    /// service is the agent's to delete (another one may share its name).
    pub fn is(&self, project: &str, environment: &str, service: &str) -> bool {
        self.service == service
            && self.project.as_deref() == Some(project)
            && self.environment.as_deref() == Some(environment)
    }
}
