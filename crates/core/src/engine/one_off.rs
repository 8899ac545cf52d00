//! One-off tasks: [`start_one_off`], what the task before a rollout (`before_deploy`) and
//! `harbormaster run` both do, and the executor's steps around it: RunTask with the
//! deployment's client token, DescribeTasks, StopTask past its time.

use super::execute::{classify, Executed, Executor, Failure};
use super::render::Outputs;
use crate::machine::Observation;
use crate::ports::{PortError, Ports, ServiceTarget};
use crate::service::{TaskProgress, TaskRun};
use crate::state::{DeploymentId, OneOffRun, ServiceState};

/// One run of a revision with its command replaced.
pub struct OneOffStart<'a> {
    /// The task definition revision.
    pub revision: &'a str,
    /// Its body (`containerDefinitions` at the top), for the container's log stream.
    pub definition: Option<&'a serde_json::Value>,
    pub container: String,
    pub command: Vec<String>,
    /// RunTask's idempotency: a deployment's id (a retry finds its task), or this moment.
    pub token: &'a str,
    /// `startedBy`: `harbormaster` for a deployment's task, `harbormaster-run` for a person's.
    pub started_by: &'a str,
}

#[derive(Debug, thiserror::Error)]
pub enum OneOffError {
    /// Neither git, the bootstrap nor the service names a network for the task.
    #[error("no network for the task")]
    NoNetwork,
    #[error(transparent)]
    Port(#[from] PortError),
}

/// Starts `start` once in `target`'s network (the service's own when neither git nor the
/// bootstrap names one: DescribeServices, best effort) and says where it runs and logs.
pub async fn start_one_off<P: Ports>(
    ports: &P,
    target: &ServiceTarget,
    start: OneOffStart<'_>,
) -> Result<OneOffRun, OneOffError> {
    let mut settings = target.settings.clone();
    if settings.network.is_none() {
        let snap = (ports.describe(&target.cluster, &target.service).await).ok();
        settings.network = snap.and_then(|s| s.network);
    }
    let run = TaskRun::for_service(
        &settings,
        start.revision,
        &start.container,
        start.command,
        start.token,
    );
    let mut run = run.ok_or(OneOffError::NoNetwork)?;
    run.started_by = start.started_by.to_owned();
    let task_arn = ports.run_task(&run).await?;
    let log_stream =
        (start.definition).and_then(|d| crate::service::log_stream(d, &start.container, &task_arn));
    Ok(OneOffRun {
        task_arn,
        started_at: ports.now(),
        container: start.container,
        log_stream,
    })
}

impl<P: Ports> Executor<'_, P> {
    pub(super) async fn run_one_off(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        arn: &str,
    ) -> Executed {
        let target = self.full_target(deployment, Outputs::Always).await?;
        let task = (self.bundle.config.target(self.env, self.service))
            .and_then(|(_, _, t)| t.service.before_deploy.clone())
            .ok_or_else(|| {
                Failure::Permanent(deployment.clone(), "`before_deploy` left the config".into())
            })?;
        let image = state.in_flight.as_ref();
        let td = match image.map(|d| d.release.image.digest.clone()) {
            Some(digest) => Some(self.render(deployment, &digest).await?),
            None => None,
        };
        let container = (task.container.clone())
            .or_else(|| td.as_ref().and_then(|t| t.containers.first().cloned()))
            .ok_or_else(|| {
                Failure::Permanent(deployment.clone(), "no container to run the task in".into())
            })?;
        let start = OneOffStart {
            revision: arn,
            definition: td.as_ref().map(|t| &t.body),
            container,
            command: task.command.clone(),
            token: &deployment.0,
            started_by: "harbormaster",
        };
        let run = match start_one_off(self.ports, &target, start).await {
            Ok(run) => run,
            Err(OneOffError::Port(e)) => return Err(classify(deployment, e)),
            Err(OneOffError::NoNetwork) => {
                let why = format!(
                    "the task before the rollout needs a network: give `services.{}.network`, bootstrap the environment, or create the service first",
                    target.name
                );
                return Err(Failure::Permanent(deployment.clone(), why));
            }
        };
        Ok(Observation::OneOffStarted {
            deployment: deployment.clone(),
            run,
        })
    }

    pub(super) async fn observe_one_off(
        &self,
        deployment: &DeploymentId,
        run: &OneOffRun,
    ) -> Executed {
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

    pub(super) async fn stop_one_off(
        &self,
        deployment: &DeploymentId,
        run: &OneOffRun,
        reason: &str,
    ) -> Executed {
        let target = self.target(deployment)?;
        self.ports
            .stop_task(&target.cluster, &run.task_arn, reason)
            .await
            .map_err(|e| classify(deployment, e))?;
        Ok(Observation::OneOffObserved {
            deployment: deployment.clone(),
            progress: TaskProgress::Stopped {
                exit_code: None,
                reason: reason.to_owned(),
            },
        })
    }
}
