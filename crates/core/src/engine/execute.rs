//! The executor: one function per command, each making its AWS calls through the ports and
//! answering with the observation the machine decides on next.

use super::ecs_view::{rollout_of, with_stopped_tasks};
use super::render::{render_for, target_with, Outputs, RenderError};
use crate::bundle::Bundle;
use crate::image::{Digest, Image};
use crate::machine::{Command, Measurement, Observation, Rollout};
use crate::ports::{ErrorKind, PortError, Ports, ServiceSnapshot, ServiceStatus, ServiceTarget};
use crate::scaling::{Measured, ScalingPolicy};
use crate::service::{TaskProgress, TaskRun};
use crate::state::OneOffRun;
use crate::state::{DeploymentId, ServiceState};
use crate::strategy::{MetricCheck, Stage};
use crate::template::RenderedTaskDefinition;

/// Why a command did not produce an observation.
pub(super) enum Failure {
    /// Throttling, 5xx, a lost connection: the next tick takes over.
    Retryable(DeploymentId, PortError),
    /// Retrying will not help: the deployment fails with this reason.
    Permanent(DeploymentId, String),
}

fn classify(deployment: &DeploymentId, e: PortError) -> Failure {
    if e.kind.is_retryable() {
        Failure::Retryable(deployment.clone(), e)
    } else {
        Failure::Permanent(deployment.clone(), e.to_string())
    }
}

fn render_failure(deployment: &DeploymentId, e: RenderError) -> Failure {
    match e {
        RenderError::Port(p) => classify(deployment, p),
        RenderError::Other(m) => Failure::Permanent(deployment.clone(), m),
    }
}

pub(super) struct Executor<'a, P> {
    pub ports: &'a P,
    pub bundle: &'a Bundle,
    pub env: &'a str,
    pub service: &'a str,
}

type Executed = Result<Observation, Failure>;

impl<P: Ports> Executor<'_, P> {
    pub async fn execute(&self, state: &ServiceState, command: &Command) -> Executed {
        match command {
            Command::FindRevision { deployment, image } => self.find(deployment, image).await,
            Command::RegisterRevision { deployment, image } => {
                self.register(state, deployment, image).await
            }
            Command::UpdateService {
                deployment,
                task_definition_arn,
                adopt,
            } => {
                self.update(state, deployment, task_definition_arn, *adopt)
                    .await
            }
            Command::RunOneOff {
                deployment,
                task_definition_arn,
            } => {
                self.run_one_off(state, deployment, task_definition_arn)
                    .await
            }
            Command::ObserveOneOff { deployment, run } => {
                self.observe_one_off(deployment, run).await
            }
            Command::StopOneOff { deployment, run } => self.stop_one_off(deployment, run).await,
            Command::ObserveRollout {
                deployment,
                task_definition_arn,
                ecs_deployment_id,
            } => {
                let ecs_id = ecs_deployment_id.as_deref();
                self.observe(state, deployment, task_definition_arn, ecs_id)
                    .await
            }
            Command::MeasureChecks { deployment, stage } => self.measure(deployment, *stage).await,
            Command::MeasureBacklog => Ok(self.backlog().await),
            Command::SetDesired { desired } => Ok(self.set_desired(*desired).await),
            Command::CheckGuards => Ok(self.guards().await),
            Command::ObserveService => Ok(self.running().await),
            Command::StopRollout { deployment } => self.stop(deployment).await,
            Command::ExplainFailure {
                deployment,
                task_definition_arn,
                reason,
            } => self.explain(deployment, task_definition_arn, reason).await,
        }
    }

    async fn render(
        &self,
        deployment: &DeploymentId,
        digest: &Digest,
    ) -> Result<RenderedTaskDefinition, Failure> {
        render_for(
            self.ports,
            self.bundle,
            self.env,
            self.service,
            digest,
            &deployment.0,
        )
        .await
        .map_err(|e| render_failure(deployment, e))
    }

    fn target(&self, deployment: &DeploymentId) -> Result<ServiceTarget, Failure> {
        self.bundle
            .service_target(self.env, self.service)
            .ok_or_else(|| left_the_config(deployment))
    }

    /// The service's target and ECS's view of it now.
    async fn snapshot(
        &self,
        deployment: &DeploymentId,
    ) -> Result<(ServiceTarget, ServiceSnapshot), Failure> {
        let target = self.target(deployment)?;
        let snap = self
            .ports
            .describe(&target.cluster, &target.service)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok((target, snap))
    }

    async fn find(&self, deployment: &DeploymentId, image: &Image) -> Executed {
        let td = self.render(deployment, &image.digest).await?;
        let found = self
            .ports
            .find_by_deployment(&td.family, deployment)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::RevisionSearched {
            deployment: deployment.clone(),
            found,
        })
    }

    async fn register(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        image: &Image,
    ) -> Executed {
        // A native deployment missing a target group or listener rule fails here, before
        // anything is registered.
        if self
            .bundle
            .policy(self.env, self.service)
            .is_some_and(|p| p.native)
        {
            self.full_target(deployment, Outputs::IfNeeded).await?;
        }
        let td = self.render(deployment, &image.digest).await?;
        self.check_secrets(deployment).await?;
        let arn = self
            .ports
            .register(&td)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::RevisionRegistered {
            deployment: deployment.clone(),
            task_definition_arn: arn,
            changes: self.changes(state, &td.body).await,
        })
    }

    /// For a config release, what its definition changes against the one running, in words
    /// (`memory: 1024 → 2048; …`). Best effort: without it the release still goes.
    async fn changes(&self, state: &ServiceState, desired: &serde_json::Value) -> Option<String> {
        let d = state.in_flight.as_ref()?;
        if !matches!(d.release.trigger, crate::state::Trigger::Config { .. }) {
            return None;
        }
        let running = state.last_known_good.as_ref()?.task_definition_arn.clone();
        let described = self.ports.describe_body(&running).await.ok()?;
        let changes = crate::diff::task_definition(desired, &described);
        let words: Vec<String> = changes.iter().map(ToString::to_string).collect();
        Some(words.join("; "))
    }

    /// A task whose secret is missing fails to start long after the deploy "worked"; checking
    /// the parameters exist first fails the deployment now, saying which.
    async fn check_secrets(&self, deployment: &DeploymentId) -> Result<(), Failure> {
        let config = &self.bundle.config;
        let names: Vec<String> = config
            .target(self.env, self.service)
            .map(|(_, _, t)| {
                t.secrets
                    .values()
                    .filter_map(|s| s.parameter_name(&config.project, self.env))
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            return Ok(());
        }
        let missing = self
            .ports
            .missing(&names)
            .await
            .map_err(|e| classify(deployment, e))?;
        if missing.is_empty() {
            return Ok(());
        }
        Err(Failure::Permanent(
            deployment.clone(),
            format!(
                "SSM parameters referenced as secrets do not exist: {} (create them, then deploy again)",
                missing.join(", ")
            ),
        ))
    }

    /// The target with the ids it needs resolved (native ARNs, target group; with
    /// [`Outputs::Always`] the network too).
    async fn full_target(
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
    async fn update(
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
        let custom = target.settings.capacity != crate::service::Capacity::default().strategy();
        if !custom && !state.custom_capacity {
            // Git sets no capacity and never did: the service keeps its own (one made by hand
            // on the FARGATE launch type stays on it; ECS does not move that launch type to
            // Fargate providers: UpdateService API reference, capacityProviderStrategy).
            target.settings.capacity.clear();
        }
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
        let target = self.full_target(deployment, Outputs::Always).await?;
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

    async fn run_one_off(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        arn: &str,
    ) -> Executed {
        let target = self.full_target(deployment, Outputs::Always).await?;
        let task = self
            .bundle
            .config
            .target(self.env, self.service)
            .and_then(|(_, _, t)| t.service.before_deploy.clone())
            .ok_or_else(|| {
                Failure::Permanent(deployment.clone(), "`before_deploy` left the config".into())
            })?;
        let image = state
            .in_flight
            .as_ref()
            .map(|d| d.release.image.digest.clone());
        let td = match image {
            Some(digest) => Some(self.render(deployment, &digest).await?),
            None => None,
        };
        let container = task
            .container
            .clone()
            .or_else(|| td.as_ref().and_then(|t| t.containers.first().cloned()))
            .ok_or_else(|| {
                Failure::Permanent(deployment.clone(), "no container to run the task in".into())
            })?;
        let Some(run) = TaskRun::for_service(
            &target.settings,
            arn,
            &container,
            task.command.clone(),
            &deployment.0,
        ) else {
            let why = format!(
                "the task before the rollout needs a network: give `services.{}.network` or bootstrap the environment",
                target.name
            );
            return Err(Failure::Permanent(deployment.clone(), why));
        };
        let task_arn = self
            .ports
            .run_task(&run)
            .await
            .map_err(|e| classify(deployment, e))?;
        let log_stream = td
            .as_ref()
            .and_then(|t| crate::service::log_stream(&t.body, &container, &task_arn));
        Ok(Observation::OneOffStarted {
            deployment: deployment.clone(),
            run: OneOffRun {
                task_arn,
                started_at: self.ports.now(),
                container,
                log_stream,
            },
        })
    }

    async fn observe_one_off(&self, deployment: &DeploymentId, run: &OneOffRun) -> Executed {
        let target = self.target(deployment)?;
        let progress = self
            .ports
            .task_progress(&target.cluster, &run.task_arn, &run.container)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::OneOffObserved {
            deployment: deployment.clone(),
            progress,
        })
    }

    async fn stop_one_off(&self, deployment: &DeploymentId, run: &OneOffRun) -> Executed {
        let target = self.target(deployment)?;
        let minutes = (self.bundle.config.target(self.env, self.service))
            .and_then(|(_, _, t)| t.service.before_deploy.as_ref().map(|b| b.timeout_minutes))
            .unwrap_or_default();
        let reason = format!(
            "stopped by harbormaster after {minutes} minutes (`before_deploy.timeout_minutes`)"
        );
        self.ports
            .stop_task(&target.cluster, &run.task_arn, &reason)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::OneOffObserved {
            deployment: deployment.clone(),
            progress: TaskProgress::Stopped {
                exit_code: None,
                reason,
            },
        })
    }

    async fn observe(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        arn: &str,
        ecs_id: Option<&str>,
    ) -> Executed {
        let (target, snap) = self.snapshot(deployment).await?;
        let previous = state.last_known_good.as_ref();
        let previous = previous.map(|g| g.task_definition_arn.as_str());
        let mut rollout = rollout_of(&snap, arn, ecs_id, previous);
        if let Rollout::Failed { reason } | Rollout::RolledBack { reason, .. } = &mut rollout {
            // Best effort: the verdict stands without the explanation.
            let stopped = self
                .ports
                .stopped_tasks(&target.cluster, &target.service, arn)
                .await
                .unwrap_or_default();
            *reason = with_stopped_tasks(std::mem::take(reason), &stopped);
        }
        Ok(Observation::RolloutObserved {
            deployment: deployment.clone(),
            rollout,
        })
    }

    async fn measure(&self, deployment: &DeploymentId, stage: Stage) -> Executed {
        let policy = self
            .bundle
            .policy(self.env, self.service)
            .ok_or_else(|| left_the_config(deployment))?;
        let mut measurements = Vec::new();
        for check in policy.gates.checks_at(stage) {
            measurements.push(Measurement {
                check: check.name.clone(),
                value: self.measure_check(check).await,
            });
        }
        Ok(Observation::ChecksMeasured {
            deployment: deployment.clone(),
            stage,
            measurements,
        })
    }

    /// Anything that keeps a value from being measured is inconclusive, never a pass.
    async fn measure_check(&self, check: &MetricCheck) -> Result<f64, String> {
        let now = self.ports.now();
        let start = now - chrono::Duration::minutes(check.window_minutes.into());
        let series = match self.ports.measure(&check.queries, start, now).await {
            Err(e) => return Err(format!("GetMetricData failed: {e}")),
            Ok(series) => series,
        };
        let Some(s) = series.iter().find(|s| s.id == check.value) else {
            return Err(format!(
                "CloudWatch returned no result for `{}`",
                check.value
            ));
        };
        if let Some(p) = &s.problem {
            return Err(p.clone());
        }
        check
            .worst(&s.values)
            .ok_or_else(|| format!("no datapoints in the last {} min", check.window_minutes))
    }

    /// Nothing here fails a deployment: an unreadable backlog leaves the count alone.
    async fn backlog(&self) -> Observation {
        let policy = self
            .bundle
            .policy(self.env, self.service)
            .and_then(|p| p.scaling);
        let target = self.bundle.service_target(self.env, self.service);
        let measured = match (policy, target) {
            (None, _) => Err("no scaling in the config".into()),
            (_, None) => Err("service left the config".into()),
            (Some(policy), Some(target)) => measure_backlog(self.ports, &policy, &target)
                .await
                .map_err(|e| e.to_string()),
        };
        Observation::BacklogMeasured { measured }
    }

    async fn running(&self) -> Observation {
        let task_definition = match self.bundle.service_target(self.env, self.service) {
            None => Err("service left the config".to_owned()),
            Some(t) => (self.ports.describe(&t.cluster, &t.service).await)
                .map(|s| s.task_definition)
                .map_err(|e| e.to_string()),
        };
        Observation::ServiceObserved { task_definition }
    }

    async fn set_desired(&self, desired: u32) -> Observation {
        let error = match self.bundle.service_target(self.env, self.service) {
            None => Some("service left the config".to_owned()),
            Some(t) => self
                .ports
                .set_desired(&t.cluster, &t.service, desired)
                .await
                .err()
                .map(|e| e.to_string()),
        };
        Observation::DesiredSet { desired, error }
    }

    async fn guards(&self) -> Observation {
        let guards = self
            .bundle
            .config
            .target(self.env, self.service)
            .map(|(_, _, t)| t.alarms.guards.clone())
            .unwrap_or_default();
        // Unknown is not clear: if CloudWatch cannot say, the release keeps waiting.
        let firing = match self.ports.firing(&guards).await {
            Ok(f) => f,
            Err(e) => vec![format!("(guard alarms unreadable: {e})")],
        };
        Observation::GuardsChecked { firing }
    }

    async fn stop(&self, deployment: &DeploymentId) -> Executed {
        let target = self.target(deployment)?;
        let stopped = self
            .ports
            .stop_rollout(&target.cluster, &target.service)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::RolloutStopped {
            deployment: deployment.clone(),
            stopped,
        })
    }

    async fn explain(&self, deployment: &DeploymentId, arn: &str, reason: &str) -> Executed {
        let (target, snap) = self.snapshot(deployment).await?;
        let stopped = self
            .ports
            .stopped_tasks(&target.cluster, &target.service, arn)
            .await
            .unwrap_or_default();
        let events: Vec<&str> = snap.events.iter().take(3).map(String::as_str).collect();
        let mut why = with_stopped_tasks(reason.to_owned(), &stopped);
        if !events.is_empty() {
            why = format!("{why} (service events: {})", events.join(" | "));
        }
        let rolled_back_to = snap
            .primary()
            .filter(|p| p.task_definition != arn)
            .map(|p| p.task_definition.clone());
        Ok(Observation::FailureExplained {
            deployment: deployment.clone(),
            rolled_back_to,
            reason: why,
        })
    }
}

fn left_the_config(deployment: &DeploymentId) -> Failure {
    Failure::Permanent(deployment.clone(), "service left the config".into())
}

/// A worker's backlog and its service's desired and running counts: what scaling decides on.
pub async fn measure_backlog<P: Ports>(
    ports: &P,
    policy: &ScalingPolicy,
    target: &ServiceTarget,
) -> Result<Measured, PortError> {
    let backlog = ports.backlog(&policy.source).await?;
    let snap = ports.describe(&target.cluster, &target.service).await?;
    Ok(Measured {
        backlog,
        desired: snap.desired_count.max(0) as u32,
        running: snap.running_count.max(0) as u32,
    })
}
