//! ECS services: UpdateService with the strategy's deployment configuration, DescribeServices
//! read into a snapshot (ECS's words translated here), stopping a native deployment.

use aws_sdk_ecs::types::{
    AdvancedConfiguration, CanaryConfiguration, DeploymentAlarms, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy, DesiredStatus,
    LinearConfiguration, LoadBalancer,
};
use harbormaster_core::event::{HOOK_DEPLOYMENT, HOOK_ENVIRONMENT, HOOK_SERVICE};
use harbormaster_core::ports::*;
use harbormaster_core::state::DeploymentId;
use harbormaster_core::strategy::NativeDeployment;

use crate::errors::classify;

use super::*;

impl Services for AwsPorts {
    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        let invalid = |e: &dyn std::fmt::Display| {
            PortError::new(ErrorKind::Invalid, "UpdateService", e.to_string())
        };
        let mut config = DeploymentConfiguration::builder()
            .minimum_healthy_percent(target.rolling.min_healthy_percent as i32)
            .maximum_percent(target.rolling.max_percent as i32);
        if target.native.is_none() {
            // "The deployment circuit breaker can only be used for services using the rolling
            // update (ECS) deployment type" (ECS API reference, DeploymentCircuitBreaker).
            let breaker = DeploymentCircuitBreaker::builder()
                .enable(true)
                .rollback(true);
            config = config.deployment_circuit_breaker(breaker.build());
        }
        if !target.alarms.is_empty() {
            config = config.alarms(
                DeploymentAlarms::builder()
                    .set_alarm_names(Some(target.alarms.clone()))
                    .enable(true)
                    .rollback(true)
                    .build()
                    .map_err(|e| invalid(&e))?,
            );
        }
        let mut load_balancer = None;
        if let Some(n) = &target.native {
            config = native_configuration(config, n, target, deployment);
            let mut advanced = AdvancedConfiguration::builder()
                .alternate_target_group_arn(&n.alternate_target_group)
                .production_listener_rule(&n.production_listener_rule)
                .role_arn(&n.role);
            if let Some(rule) = &n.test_listener_rule {
                advanced = advanced.test_listener_rule(rule);
            }
            load_balancer = Some(
                LoadBalancer::builder()
                    .target_group_arn(&n.target_group)
                    .container_name(&n.container)
                    .container_port(i32::from(n.port))
                    .advanced_configuration(advanced.build())
                    .build(),
            );
        }
        let mut req = self
            .clients
            .ecs
            .update_service()
            .cluster(&target.cluster)
            .service(&target.service)
            .task_definition(task_definition_arn)
            .deployment_configuration(config.build())
            .set_load_balancers(load_balancer.map(|lb| vec![lb]));
        if let Some(n) = target.desired_count {
            req = req.desired_count(n as i32);
        }
        if let Some(g) = target.rolling.health_check_grace_period_seconds {
            req = req.health_check_grace_period_seconds(g as i32);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        Ok(out.service.and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| {
                    deployment_status(d.status()) == DeploymentStatus::Primary
                        && d.task_definition() == Some(task_definition_arn)
                })
                .and_then(|d| d.id().map(str::to_owned))
        }))
    }

    async fn describe(&self, cluster: &str, service: &str) -> Result<ServiceSnapshot, PortError> {
        let out = self
            .clients
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| classify("DescribeServices", &e))?;
        let Some(s) = out.services().first() else {
            let why = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("not returned")
                .to_owned();
            return Err(PortError::new(
                ErrorKind::NotFound,
                "DescribeServices",
                format!("service {service} in cluster {cluster}: {why}"),
            ));
        };
        Ok(ServiceSnapshot {
            task_definition: s.task_definition().unwrap_or_default().to_owned(),
            desired_count: s.desired_count(),
            running_count: s.running_count(),
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
        })
    }

    async fn revision_task_definition(
        &self,
        revision_arn: &str,
    ) -> Result<Option<String>, PortError> {
        let out = self
            .clients
            .ecs
            .describe_service_revisions()
            .service_revision_arns(revision_arn)
            .send()
            .await
            .map_err(|e| classify("DescribeServiceRevisions", &e))?;
        Ok(out
            .service_revisions()
            .iter()
            .find(|r| r.service_revision_arn() == Some(revision_arn))
            .and_then(|r| r.task_definition().map(str::to_owned)))
    }

    async fn set_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), PortError> {
        self.clients
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired as i32)
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        Ok(())
    }

    async fn stop_rollout(&self, cluster: &str, service: &str) -> Result<bool, PortError> {
        use aws_sdk_ecs::types::{ServiceDeploymentStatus, StopServiceDeploymentStopType};
        let listed = self
            .clients
            .ecs
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .map_err(|e| classify("ListServiceDeployments", &e))?;
        let Some(arn) = listed
            .service_deployments()
            .iter()
            .find_map(|d| d.service_deployment_arn())
        else {
            return Ok(false);
        };
        self.clients
            .ecs
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| classify("StopServiceDeployment", &e))?;
        Ok(true)
    }

    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> Result<Vec<StoppedTask>, PortError> {
        let listed = self
            .clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Stopped)
            .max_results(20)
            .send()
            .await
            .map_err(|e| classify("ListTasks", &e))?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", &e))?;
        let mut tasks: Vec<_> = out
            .tasks()
            .iter()
            .filter(|t| t.task_definition_arn() == Some(task_definition_arn))
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at().map(|d| d.secs())));
        Ok(tasks
            .into_iter()
            .map(|t| StoppedTask {
                task_arn: t.task_arn().unwrap_or_default().to_owned(),
                stopped_reason: t.stopped_reason().map(str::to_owned),
                containers: t
                    .containers()
                    .iter()
                    .filter(|c| c.exit_code().is_some() || c.reason().is_some())
                    .map(|c| {
                        (
                            c.name().unwrap_or_default().to_owned(),
                            c.exit_code(),
                            c.reason().map(str::to_owned),
                        )
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Strategy, bake time, traffic steps and the lifecycle hook for a native deployment. The hook
/// details name the deployment, so the hook knows what it gates without another lookup.
fn native_configuration(
    config: aws_sdk_ecs::types::builders::DeploymentConfigurationBuilder,
    n: &NativeDeployment,
    target: &ServiceTarget,
    deployment: &DeploymentId,
) -> aws_sdk_ecs::types::builders::DeploymentConfigurationBuilder {
    use aws_smithy_types::Document;
    let mut config = config
        .strategy(DeploymentStrategy::from(n.strategy.ecs_name()))
        .bake_time_in_minutes(n.bake_time_minutes as i32);
    if let Some(c) = &n.canary {
        config = config.canary_configuration(
            CanaryConfiguration::builder()
                .canary_percent(c.percent)
                .canary_bake_time_in_minutes(c.interval_minutes as i32)
                .build(),
        );
    }
    if let Some(l) = &n.linear {
        config = config.linear_configuration(
            LinearConfiguration::builder()
                .step_percent(l.percent)
                .step_bake_time_in_minutes(l.interval_minutes as i32)
                .build(),
        );
    }
    let details = Document::Object(
        [
            (HOOK_ENVIRONMENT, target.environment.as_str()),
            (HOOK_SERVICE, target.name.as_str()),
            (HOOK_DEPLOYMENT, deployment.0.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Document::String(v.to_owned())))
        .collect(),
    );
    config.lifecycle_hooks(
        DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
            .hook_target_arn(&n.hook_function)
            .role_arn(&n.hook_role)
            .set_lifecycle_stages(Some(
                n.hook_stages
                    .iter()
                    .map(|s| DeploymentLifecycleHookStage::from(s.as_str()))
                    .collect(),
            ))
            .hook_details(details)
            // ROLLBACK is ECS's default action: a hook the agent stopped answering fails safe.
            .timeout_configuration(
                DeploymentLifecycleHookTimeoutConfiguration::builder()
                    .timeout_in_minutes(n.hook_timeout_minutes as i32)
                    .action(DeploymentLifecycleHookAction::Rollback)
                    .build(),
            )
            .build(),
    )
}

/// ECS's word for a deployment's place in the service (the API types it as a plain string).
fn deployment_status(status: Option<&str>) -> DeploymentStatus {
    match status {
        Some("PRIMARY") => DeploymentStatus::Primary,
        Some("ACTIVE") => DeploymentStatus::Active,
        _ => DeploymentStatus::Inactive,
    }
}

fn rollout_state(state: &aws_sdk_ecs::types::DeploymentRolloutState) -> Option<RolloutState> {
    use aws_sdk_ecs::types::DeploymentRolloutState as Wire;
    match state {
        Wire::InProgress => Some(RolloutState::InProgress),
        Wire::Completed => Some(RolloutState::Completed),
        Wire::Failed => Some(RolloutState::Failed),
        _ => None,
    }
}
