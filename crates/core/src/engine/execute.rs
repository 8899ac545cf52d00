//! The executor: one function per command, each making its AWS calls through the ports and
//! answering with the observation the machine decides on next.

use super::ecs_view::{rollout_of, with_stopped_tasks};
use super::render::{render_for, Outputs, RenderError};
use crate::bundle::Bundle;
use crate::image::{Digest, Image};
use crate::machine::{Command, Measurement, Observation, Rollout};
use crate::ports::{PortError, Ports, ServiceSnapshot, ServiceTarget};
use crate::scaling::{Measured, ScalingPolicy};
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

pub(super) fn classify(deployment: &DeploymentId, e: PortError) -> Failure {
    if e.kind.is_retryable() {
        Failure::Retryable(deployment.clone(), e)
    } else {
        Failure::Permanent(deployment.clone(), e.to_string())
    }
}

pub(super) fn render_failure(deployment: &DeploymentId, e: RenderError) -> Failure {
    match e {
        RenderError::Port(p) => classify(deployment, p),
        RenderError::Unresolved(u) => Failure::Permanent(deployment.clone(), u.to_string()),
        RenderError::Other(m) => Failure::Permanent(deployment.clone(), m),
    }
}

pub(super) struct Executor<'a, P> {
    pub ports: &'a P,
    pub bundle: &'a Bundle,
    pub env: &'a str,
    pub service: &'a str,
}

pub(super) type Executed = Result<Observation, Failure>;

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
            Command::StopOneOff {
                deployment,
                run,
                reason,
            } => self.stop_one_off(deployment, run, reason).await,
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
            Command::StopRollout {
                deployment,
                task_definition_arn,
            } => self.stop(deployment, task_definition_arn).await,
            Command::ExplainFailure {
                deployment,
                task_definition_arn,
                reason,
            } => self.explain(deployment, task_definition_arn, reason).await,
            Command::ProtectImage { image, tag } => {
                let error = self.ports.protect(image, tag).await.err();
                Ok(Observation::ProtectionAnswered {
                    image: image.clone(),
                    tag: tag.clone(),
                    put: true,
                    error: error.map(|e| e.to_string()),
                })
            }
            Command::UnprotectImage { image, tag } => {
                let error = self.ports.unprotect(&image.repository, tag).await.err();
                Ok(Observation::ProtectionAnswered {
                    image: image.clone(),
                    tag: tag.clone(),
                    put: false,
                    error: error.map(|e| e.to_string()),
                })
            }
        }
    }

    pub(super) async fn render(
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

    pub(super) fn target(&self, deployment: &DeploymentId) -> Result<ServiceTarget, Failure> {
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
        self.check_image(deployment, image, reuses_a_pushed_image(state))
            .await?;
        let td = self.render(deployment, &image.digest).await?;
        if !same_config_as_running(state) {
            self.check_secrets(deployment).await?;
        }
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

    /// One BatchGetImage before the revision is registered or a known one is put back:
    /// - a release of an image pushed long ago (a config release, a heal, a rollback) names a
    ///   digest ECR's lifecycle rules may have expired or a person deleted;
    /// - a multi-platform image must offer the task definition's `cpuArchitecture` (web on
    ///   ARM64 and a worker on Fargate Spot, X86_64 only, from one repository).
    ///
    /// Failing here fails the deployment now, saying why, instead of every new task failing
    /// with CannotPullContainer (or `exec format error`) after the service was changed.
    pub(super) async fn check_image(
        &self,
        deployment: &DeploymentId,
        image: &Image,
        reused: bool,
    ) -> Result<(), Failure> {
        let found = (self
            .ports
            .manifest(&image.repository, &image.digest, !reused)
            .await)
            .map_err(|e| classify(deployment, e))?;
        let Some(manifest) = found else {
            let gone = if reused {
                "no longer in ECR (expired by a lifecycle rule, or deleted)"
            } else {
                "not in ECR"
            };
            return Err(Failure::Permanent(
                deployment.clone(),
                format!(
                    "{} is {gone}: not deploying it; push it again or choose another release",
                    image.label()
                ),
            ));
        };
        let template = self.bundle.templates.get(self.service);
        let arch = (template.and_then(|t| t.runtime_platform().0)).unwrap_or("X86_64");
        if !manifest.offers(arch) {
            let offered = manifest.architectures.unwrap_or_default().join(", ");
            return Err(Failure::Permanent(
                deployment.clone(),
                format!(
                    "{} offers {offered}, not the task definition's cpuArchitecture {arch}: build it for both (docker buildx --platform linux/amd64,linux/arm64)",
                    image.label()
                ),
            ));
        }
        Ok(())
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

    async fn stop(&self, deployment: &DeploymentId, task_definition_arn: &str) -> Executed {
        let target = self.target(deployment)?;
        let stopped = self
            .ports
            .stop_rollout(&target.cluster, &target.service, task_definition_arn)
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

/// The release in flight carries the config version the running release started its tasks
/// with, so it references exactly the parameters those tasks resolved: looking them up again
/// would say nothing new. A parameter deleted since fails the new tasks, and their stopped
/// reason names it (`observe` adds it to the verdict).
/// The release in flight deploys an image pushed before, not one just resolved from a push or a
/// request: a config release, a heal, a rollback.
fn reuses_a_pushed_image(state: &ServiceState) -> bool {
    // A rollback deployment always carries the Rollback trigger (`machine/rollback.rs`).
    state.in_flight.as_ref().is_some_and(|d| {
        matches!(
            d.release.trigger,
            crate::state::Trigger::Config { .. }
                | crate::state::Trigger::Heal { .. }
                | crate::state::Trigger::Rollback { .. }
        )
    })
}

fn same_config_as_running(state: &ServiceState) -> bool {
    let flight = state.in_flight.as_ref().and_then(|d| d.config.as_deref());
    let running = state
        .last_known_good
        .as_ref()
        .and_then(|g| g.config.as_deref());
    flight.is_some() && flight == running
}
