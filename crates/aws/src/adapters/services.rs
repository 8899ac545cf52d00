//! ECS services: CreateService and UpdateService with every setting git gives (network, load
//! balancer, capacity, the strategy's deployment configuration), DescribeServices read into a
//! snapshot (ECS's words translated here), stopping a native deployment, deleting.

use aws_sdk_ecs::types::{
    AdvancedConfiguration, AssignPublicIp, AwsVpcConfiguration, CanaryConfiguration,
    CapacityProviderStrategyItem, DeploymentAlarms, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookAction,
    DeploymentLifecycleHookStage, DeploymentLifecycleHookTargetType,
    DeploymentLifecycleHookTimeoutConfiguration, DeploymentStrategy, DesiredStatus,
    LinearConfiguration, LoadBalancer, NetworkConfiguration, PropagateTags, Tag,
};
use harbormaster_core::event::{HOOK_DEPLOYMENT, HOOK_ENVIRONMENT, HOOK_SERVICE};
use harbormaster_core::ports::*;
use harbormaster_core::state::DeploymentId;
use harbormaster_core::strategy::NativeDeployment;

use crate::errors::classify;

use super::*;

impl Services for AwsPorts {
    async fn create(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
        client_token: &str,
    ) -> Result<Option<String>, PortError> {
        let settings = Settings::of(target, deployment, "CreateService")?;
        // No strategy from git: the FARGATE launch type, which any cluster takes; a strategy
        // names providers the cluster must have associated (CreateService API reference).
        let launch =
            (settings.capacity.is_none()).then_some(aws_sdk_ecs::types::LaunchType::Fargate);
        let req = (self.clients.ecs.create_service())
            .cluster(&target.cluster)
            .service_name(&target.service)
            .task_definition(task_definition_arn)
            .desired_count(target.settings.initial_count as i32)
            .client_token(client_token)
            .set_launch_type(launch)
            .set_tags(Some(tags(target)));
        let out = with_settings!(req, settings)
            .send()
            .await
            .map_err(|e| classify("CreateService", &e))?;
        Ok(out.service.and_then(|s| {
            s.deployments()
                .first()
                .and_then(|d| d.id().map(str::to_owned))
        }))
    }

    async fn owned(&self, cluster: &str) -> Result<Vec<OwnedService>, PortError> {
        let mut arns = Vec::new();
        let mut pages = self
            .clients
            .ecs
            .list_services()
            .cluster(cluster)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("ListServices", &e))?;
            arns.extend(page.service_arns().iter().cloned());
        }
        let mut owned = Vec::new();
        // DescribeServices takes ten services at a time.
        for chunk in arns.chunks(10) {
            let out = self
                .clients
                .ecs
                .describe_services()
                .cluster(cluster)
                .set_services(Some(chunk.to_vec()))
                .include(aws_sdk_ecs::types::ServiceField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeServices", &e))?;
            for svc in out.services() {
                let tag = |key: &str| {
                    let found = svc.tags().iter().find(|t| t.key() == Some(key));
                    found.and_then(|t| t.value()).map(str::to_owned)
                };
                if let (Some(name), Some(service), Some("ACTIVE")) = (
                    svc.service_name(),
                    tag(HARBORMASTER_SERVICE_TAG),
                    svc.status(),
                ) {
                    owned.push(OwnedService {
                        name: name.to_owned(),
                        service,
                        project: tag("harbormaster:project"),
                        environment: tag("harbormaster:environment"),
                    });
                }
            }
        }
        Ok(owned)
    }

    async fn delete(&self, cluster: &str, service: &str) -> Result<(), PortError> {
        self.clients
            .ecs
            .delete_service()
            .cluster(cluster)
            .service(service)
            .force(true)
            .send()
            .await
            .map_err(|e| classify("DeleteService", &e))?;
        Ok(())
    }

    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        let settings = Settings::of(target, deployment, "UpdateService")?;
        let req = (self.clients.ecs.update_service())
            .cluster(&target.cluster)
            .service(&target.service)
            .task_definition(task_definition_arn)
            .set_desired_count(target.settings.desired_count.map(|n| n as i32))
            .force_new_deployment(target.settings.force_new_deployment);
        let req = with_settings!(req, settings);
        let out = req
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        if let Some(status) = out
            .service()
            .and_then(|s| s.status())
            .filter(|s| *s != "ACTIVE")
        {
            // Real ECS refuses with ServiceNotActiveException; an emulator may answer instead.
            return Err(PortError::new(
                ErrorKind::NotFound,
                "UpdateService",
                format!(
                    "ServiceNotActiveException: service {} is {status}",
                    target.service
                ),
            ));
        }
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
        Ok(super::described::snapshot(s))
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

    async fn stop_rollout(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> Result<bool, PortError> {
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
        // The one whose target revision runs the release being rolled back (DescribeServiceRevisions):
        // one someone else started since is not the agent's to stop.
        let mut ours = None;
        for d in listed.service_deployments() {
            let (Some(arn), Some(revision)) =
                (d.service_deployment_arn(), d.target_service_revision_arn())
            else {
                continue;
            };
            let runs = self.revision_task_definition(revision).await?;
            if runs.as_deref() == Some(task_definition_arn) {
                ours = Some(arn.to_owned());
                break;
            }
        }
        let Some(arn) = ours else {
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

/// Every setting CreateService and UpdateService both send, built once from the target's
/// settings ([`ServiceTarget::settings`]); [`with_settings!`] puts them on either request, so a
/// new setting is added here and in the macro, and both requests carry it.
struct Settings {
    deployment_configuration: DeploymentConfiguration,
    load_balancers: Option<Vec<LoadBalancer>>,
    capacity: Option<Vec<CapacityProviderStrategyItem>>,
    network: Option<NetworkConfiguration>,
    platform_version: Option<String>,
    execute_command: bool,
    propagate_tags: PropagateTags,
    health_check_grace_period_seconds: Option<i32>,
}

impl Settings {
    fn of(
        target: &ServiceTarget,
        deployment: &DeploymentId,
        operation: &'static str,
    ) -> Result<Settings, PortError> {
        let s = &target.settings;
        let invalid = |e: aws_sdk_ecs::error::BuildError| {
            PortError::new(ErrorKind::Invalid, operation, e.to_string())
        };
        Ok(Settings {
            deployment_configuration: deployment_configuration(target, deployment)?,
            load_balancers: load_balancers(target),
            capacity: capacity(target),
            network: network(target).map_err(invalid)?,
            platform_version: s.platform_version.clone(),
            execute_command: s.execute_command,
            propagate_tags: PropagateTags::from(s.propagate_tags.ecs_name()),
            health_check_grace_period_seconds: (s.rolling.health_check_grace_period_seconds)
                .map(|g| g as i32),
        })
    }
}

/// `$req` (a CreateService or UpdateService builder: the SDK gives them no common trait) with
/// every one of `$s`'s settings. `None` leaves a setting as the service has it.
macro_rules! with_settings {
    ($req:expr, $s:expr) => {{
        let s: Settings = $s;
        $req.deployment_configuration(s.deployment_configuration)
            .set_load_balancers(s.load_balancers)
            .set_capacity_provider_strategy(s.capacity)
            .set_network_configuration(s.network)
            .set_platform_version(s.platform_version)
            .enable_execute_command(s.execute_command)
            .enable_ecs_managed_tags(true)
            .propagate_tags(s.propagate_tags)
            .set_health_check_grace_period_seconds(s.health_check_grace_period_seconds)
    }};
}
use with_settings;

/// The agent's tags on a service it creates (`harbormaster:service` marks it as the agent's).
fn tags(target: &ServiceTarget) -> Vec<Tag> {
    (target.settings.tags.iter())
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// The tag that marks a service as the agent's (its value: the config's name for it).
const HARBORMASTER_SERVICE_TAG: &str = "harbormaster:service";

/// Minimum and maximum percent, the circuit breaker (rolling), the deployment alarms, and a
/// native strategy's settings.
fn deployment_configuration(
    target: &ServiceTarget,
    deployment: &DeploymentId,
) -> Result<DeploymentConfiguration, PortError> {
    let mut config = DeploymentConfiguration::builder()
        .minimum_healthy_percent(target.settings.rolling.min_healthy_percent as i32)
        .maximum_percent(target.settings.rolling.max_percent as i32);
    if target.native.is_none() {
        // "The deployment circuit breaker can only be used for services using the rolling
        // update (ECS) deployment type" (ECS API reference, DeploymentCircuitBreaker).
        let breaker = DeploymentCircuitBreaker::builder()
            .enable(true)
            .rollback(true);
        config = config.deployment_circuit_breaker(breaker.build());
    }
    if !target.settings.alarms.is_empty() {
        config = config.alarms(
            DeploymentAlarms::builder()
                .set_alarm_names(Some(target.settings.alarms.clone()))
                .enable(true)
                .rollback(true)
                .build()
                .map_err(|e| {
                    PortError::new(ErrorKind::Invalid, "DeploymentAlarms", e.to_string())
                })?,
        );
    }
    if let Some(n) = &target.native {
        config = native_configuration(config, n, target, deployment);
    }
    Ok(config.build())
}

/// A native strategy's two target groups and listener rules, or a rolling service's one
/// target group; `None` leaves the service's as they are.
fn load_balancers(target: &ServiceTarget) -> Option<Vec<LoadBalancer>> {
    if let Some(n) = &target.native {
        let mut advanced = AdvancedConfiguration::builder()
            .alternate_target_group_arn(&n.alternate_target_group)
            .production_listener_rule(&n.production_listener_rule)
            .role_arn(&n.role);
        if let Some(rule) = &n.test_listener_rule {
            advanced = advanced.test_listener_rule(rule);
        }
        return Some(vec![LoadBalancer::builder()
            .target_group_arn(&n.target_group)
            .container_name(&n.container)
            .container_port(i32::from(n.port))
            .advanced_configuration(advanced.build())
            .build()]);
    }
    let lb = target.settings.load_balancer.as_ref()?;
    Some(vec![LoadBalancer::builder()
        .target_group_arn(&lb.target_group)
        .container_name(&lb.container)
        .container_port(i32::from(lb.port))
        .build()])
}

/// The capacity provider strategy; `None` (empty) leaves the service's as it is.
fn capacity(target: &ServiceTarget) -> Option<Vec<CapacityProviderStrategyItem>> {
    let items = &target.settings.capacity;
    (!items.is_empty()).then(|| {
        items
            .iter()
            .map(|c| {
                CapacityProviderStrategyItem::builder()
                    .capacity_provider(&c.provider)
                    .weight(c.weight as i32)
                    .base(c.base as i32)
                    .build()
            })
            .collect::<Result<Vec<_>, _>>()
            .unwrap_or_default()
    })
}

/// The awsvpc network (Fargate needs one); `None` leaves the service's as it is.
fn network(
    target: &ServiceTarget,
) -> Result<Option<NetworkConfiguration>, aws_sdk_ecs::error::BuildError> {
    let Some(n) = &target.settings.network else {
        return Ok(None);
    };
    let vpc = AwsVpcConfiguration::builder()
        .set_subnets(Some(n.subnets.clone()))
        .set_security_groups(Some(n.security_groups.clone()))
        .assign_public_ip(if n.assign_public_ip {
            AssignPublicIp::Enabled
        } else {
            AssignPublicIp::Disabled
        })
        .build()?;
    Ok(Some(
        NetworkConfiguration::builder()
            .awsvpc_configuration(vpc)
            .build(),
    ))
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
pub(super) fn deployment_status(status: Option<&str>) -> DeploymentStatus {
    match status {
        Some("PRIMARY") => DeploymentStatus::Primary,
        Some("ACTIVE") => DeploymentStatus::Active,
        _ => DeploymentStatus::Inactive,
    }
}

pub(super) fn rollout_state(
    state: &aws_sdk_ecs::types::DeploymentRolloutState,
) -> Option<RolloutState> {
    use aws_sdk_ecs::types::DeploymentRolloutState as Wire;
    match state {
        Wire::InProgress => Some(RolloutState::InProgress),
        Wire::Completed => Some(RolloutState::Completed),
        Wire::Failed => Some(RolloutState::Failed),
        _ => None,
    }
}
