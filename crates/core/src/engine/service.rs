//! The executor's steps that own the ECS service: UpdateService, CreateService when ECS has no
//! such service, and its target tracking brought in line with git.

use super::execute::{classify, render_failure, Executed, Executor, Failure};
use super::render::{target_with, Outputs};
use crate::machine::Observation;
use crate::ports::{ErrorKind, PortError, Ports, ServiceSnapshot, ServiceStatus, ServiceTarget};
use crate::state::{DeploymentId, ServiceState};

impl<P: Ports> Executor<'_, P> {
    /// The target with the ids it needs resolved (native ARNs, target group; with
    /// [`Outputs::Always`] the network too).
    pub(super) async fn full_target(
        &self,
        deployment: &DeploymentId,
        when: Outputs,
    ) -> Result<ServiceTarget, Failure> {
        target_with(self.ports, self.bundle, self.env, self.service, when)
            .await
            .map_err(|e| render_failure(deployment, e))
    }

    /// UpdateService; CreateService when ECS has no such service (never made, or deleted: ECS
    /// lists a deleted one as DRAINING, then INACTIVE, and refuses to update it). UpdateService
    /// goes first, so an update costs no extra call; target tracking is brought in line after
    /// it (a target needs the service), and the count it owns is never sent.
    pub(super) async fn update(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        arn: &str,
        adopt: bool,
    ) -> Executed {
        let mut target = self.full_target(deployment, Outputs::IfNeeded).await?;
        if !target.settings.missing.is_empty() {
            let why = format!(
                "service `{}` cannot be updated; missing: {}",
                target.name,
                target.settings.missing.join("; ")
            );
            return Err(Failure::Permanent(deployment.clone(), why));
        }
        // A rollback goes straight to UpdateService (its revision exists): its image is
        // checked here. A native rollout stopped through ECS is ECS's own rollback, not this.
        if let Some(d) = (state.in_flight.as_ref()).filter(|d| d.rollback.is_some()) {
            self.check_image(deployment, &d.release.image, true).await?;
        }
        if adopt {
            // A takeover: the crashed attempt's UpdateService or CreateService may have gone
            // through.
            let Some(snap) = self.existing(deployment, &target).await? else {
                return self.create(state, deployment, arn).await;
            };
            if let Some(p) = snap.primary().filter(|p| p.task_definition == arn) {
                self.sync_scaling(state, &target)
                    .await
                    .map_err(|e| classify(deployment, e))?;
                return Ok(Observation::ServiceUpdated {
                    deployment: deployment.clone(),
                    ecs_deployment_id: Some(p.id.clone()),
                });
            }
        }
        let custom = (self.bundle.config.target(self.env, self.service))
            .is_some_and(|(_, _, t)| t.service.custom_capacity());
        if !custom && !state.custom_capacity {
            // Git sets no capacity and never did: the service keeps its own (one made by hand
            // on the FARGATE launch type stays on it; ECS does not move that launch type to
            // Fargate providers: UpdateService API reference, capacityProviderStrategy).
            target.settings.capacity.clear();
        }
        // A strategy that differs from the service's is refused without a forced deployment;
        // which one the service has would cost a call to learn, and the update deploys anyway.
        target.settings.force_new_deployment = !target.settings.capacity.is_empty();
        let id = match self.ports.update(&target, arn, deployment).await {
            Ok(id) => id,
            Err(e) if e.kind == ErrorKind::NotFound => {
                // No such service, or a deleted one; or no such cluster, which CreateService
                // then names.
                if self.existing(deployment, &target).await?.is_none() {
                    return self.create(state, deployment, arn).await;
                }
                return Err(classify(deployment, e));
            }
            Err(e) => return Err(classify(deployment, e)),
        };
        self.sync_scaling(state, &target)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::ServiceUpdated {
            deployment: deployment.clone(),
            ecs_deployment_id: id,
        })
    }

    /// The service as ECS has it, `None` when it must be created. One being deleted
    /// (DRAINING) is waited for: a retryable step.
    async fn existing(
        &self,
        deployment: &DeploymentId,
        target: &ServiceTarget,
    ) -> Result<Option<ServiceSnapshot>, Failure> {
        match self.ports.describe(&target.cluster, &target.service).await {
            Ok(snap) => match snap.status {
                ServiceStatus::Active => Ok(Some(snap)),
                ServiceStatus::Inactive => Ok(None),
                ServiceStatus::Draining => {
                    let why = format!(
                        "service {} is still being deleted (DRAINING); it is created again once ECS has finished",
                        target.service
                    );
                    let e = PortError::new(ErrorKind::Transient, "DescribeServices", why);
                    Err(Failure::Retryable(deployment.clone(), e))
                }
            },
            Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(classify(deployment, e)),
        }
    }

    /// CreateService with the deployment's client token: the intent (this phase) was saved
    /// first, and a resend after a lost answer or a crash finds the service it made. Every
    /// setting is sent, the network from the bootstrap's outputs unless git gives it.
    async fn create(&self, state: &ServiceState, deployment: &DeploymentId, arn: &str) -> Executed {
        let mut target = self.full_target(deployment, Outputs::Always).await?;
        let custom = (self.bundle.config.target(self.env, self.service))
            .is_some_and(|(_, _, t)| t.service.custom_capacity());
        if !custom {
            // No strategy from git: created on the FARGATE launch type, which a cluster made
            // without capacity providers takes too (a strategy would be refused there).
            target.settings.capacity.clear();
        }
        if target.settings.network.is_none() {
            let why = format!(
                "service `{}` does not exist in cluster {} and cannot be created: give `services.{}.network` or run `harbormaster-bootstrap apply --env {}` (its output `private-subnet-ids`)",
                target.name, target.cluster, target.name, target.environment
            );
            return Err(Failure::Permanent(deployment.clone(), why));
        }
        let token = crate::text::fingerprint(deployment.0.as_bytes());
        let id = self
            .ports
            .create(&target, arn, deployment, &token)
            .await
            .map_err(|e| classify(deployment, e))?;
        self.sync_scaling(state, &target)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::ServiceCreated {
            deployment: deployment.clone(),
            ecs_deployment_id: id,
        })
    }

    /// The scalable target and its policies as the config says; nothing to do (and no call)
    /// for a service that has none and never had.
    async fn sync_scaling(
        &self,
        state: &ServiceState,
        target: &ServiceTarget,
    ) -> Result<(), PortError> {
        let want = target.settings.autoscaling.as_ref();
        if want.is_none() && !state.autoscaled {
            return Ok(());
        }
        let (cluster, service) = (&target.cluster, &target.service);
        let now = self.ports.scaling(cluster, service).await?;
        for step in crate::service::plan_scaling(now.as_ref(), want) {
            self.ports.apply_scaling(cluster, service, &step).await?;
        }
        Ok(())
    }
}
