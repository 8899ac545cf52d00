//! What DescribeServices says of a service, as the core's [`ServiceSnapshot`]: its network and
//! status, ECS's deployments and events, and the settings the agent sends with every
//! UpdateService (what `diff` compares with git).

use aws_sdk_ecs::types::AssignPublicIp;
use harbormaster_core::ports::{EcsDeployment, LiveSettings, ServiceSnapshot, ServiceStatus};

use super::services::{deployment_status, rollout_state};

pub(super) fn snapshot(s: &aws_sdk_ecs::types::Service) -> ServiceSnapshot {
    let network = s
        .network_configuration()
        .and_then(|n| n.awsvpc_configuration())
        .map(|v| harbormaster_core::service::Network {
            subnets: v.subnets().to_vec(),
            security_groups: v.security_groups().to_vec(),
            assign_public_ip: v.assign_public_ip() == Some(&AssignPublicIp::Enabled),
        });
    ServiceSnapshot {
        settings: live_settings(s, network.clone()),
        network,
        status: match s.status() {
            Some("DRAINING") => ServiceStatus::Draining,
            Some("INACTIVE") => ServiceStatus::Inactive,
            _ => ServiceStatus::Active,
        },
        task_definition: s.task_definition().unwrap_or_default().to_owned(),
        desired_count: s.desired_count(),
        running_count: s.running_count(),
        pending_count: s.pending_count(),
        deployments: s
            .deployments()
            .iter()
            .map(|d| EcsDeployment {
                id: d.id().unwrap_or_default().to_owned(),
                status: deployment_status(d.status()),
                task_definition: d.task_definition().unwrap_or_default().to_owned(),
                rollout_state: d.rollout_state().and_then(rollout_state),
                rollout_reason: d.rollout_state_reason().map(str::to_owned),
                running: d.running_count(),
                desired: d.desired_count(),
                failed_tasks: d.failed_tasks(),
            })
            .collect(),
        events: s
            .events()
            .iter()
            .take(5)
            .filter_map(|e| e.message().map(str::to_owned))
            .collect(),
    }
}

/// The settings the agent sends with every UpdateService, as DescribeServices has them.
fn live_settings(
    s: &aws_sdk_ecs::types::Service,
    network: Option<harbormaster_core::service::Network>,
) -> LiveSettings {
    let config = s.deployment_configuration();
    LiveSettings {
        min_healthy_percent: config.and_then(|c| c.minimum_healthy_percent()),
        max_percent: config.and_then(|c| c.maximum_percent()),
        health_check_grace_period_seconds: s.health_check_grace_period_seconds(),
        capacity: (s.capacity_provider_strategy().iter())
            .map(|c| harbormaster_core::service::CapacityItem {
                provider: c.capacity_provider().to_owned(),
                weight: c.weight().max(0) as u32,
                base: c.base().max(0) as u32,
            })
            .collect(),
        platform_version: s.platform_version().map(str::to_owned),
        execute_command: s.enable_execute_command(),
        propagate_tags: s.propagate_tags().map(|p| p.as_str().to_owned()),
        load_balancers: (s.load_balancers().iter())
            .map(|l| {
                (
                    l.container_name().unwrap_or_default().to_owned(),
                    l.container_port().unwrap_or_default(),
                    l.target_group_arn().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        alarms: (config.and_then(|c| c.alarms()))
            .map(|a| a.alarm_names().to_vec())
            .unwrap_or_default(),
        network,
    }
}
