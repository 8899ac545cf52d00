//! The executor's steps for the one-off task before a rollout (`before_deploy`): RunTask with
//! the deployment's client token, DescribeTasks, StopTask past its time.

use super::execute::{classify, Executed, Executor, Failure};
use super::render::Outputs;
use crate::machine::Observation;
use crate::ports::Ports;
use crate::service::{TaskProgress, TaskRun};
use crate::state::{DeploymentId, OneOffRun, ServiceState};

impl<P: Ports> Executor<'_, P> {
    pub(super) async fn run_one_off(
        &self,
        state: &ServiceState,
        deployment: &DeploymentId,
        arn: &str,
    ) -> Executed {
        let mut target = self.full_target(deployment, Outputs::Always).await?;
        if target.settings.network.is_none() {
            // Neither git nor the bootstrap says: the service's own network, if it has one.
            let snap = (self.ports.describe(&target.cluster, &target.service).await).ok();
            target.settings.network = snap.and_then(|s| s.network);
        }
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
                "the task before the rollout needs a network: give `services.{}.network`, bootstrap the environment, or create the service first",
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
