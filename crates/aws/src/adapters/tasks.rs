//! One-off tasks: RunTask with the command overridden (a migration, `harbormaster run`),
//! DescribeTasks read into where the task is, StopTask.

use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, ContainerOverride, LaunchType, NetworkConfiguration,
    PropagateTags, Tag, TaskOverride,
};
use harbormaster_core::ports::*;
use harbormaster_core::service::{TaskProgress, TaskRun};

use crate::errors::classify;

use super::*;

impl Tasks for AwsPorts {
    async fn run_task(&self, run: &TaskRun) -> Result<String, PortError> {
        let invalid = |e: &dyn std::fmt::Display| {
            PortError::new(ErrorKind::Invalid, "RunTask", e.to_string())
        };
        let vpc = AwsVpcConfiguration::builder()
            .set_subnets(Some(run.subnets.clone()))
            .set_security_groups(Some(run.security_groups.clone()))
            .assign_public_ip(if run.assign_public_ip {
                AssignPublicIp::Enabled
            } else {
                AssignPublicIp::Disabled
            })
            .build()
            .map_err(|e| invalid(&e))?;
        let mut req = self
            .clients
            .ecs
            .run_task()
            .cluster(&run.cluster)
            .task_definition(&run.task_definition_arn)
            .count(1)
            // On-demand Fargate (a migration interrupted by a Spot reclaim is worse than its
            // cost), as a launch type: a capacity provider must be associated with the
            // cluster, a launch type needs nothing (RunTask API reference).
            .launch_type(LaunchType::Fargate)
            .network_configuration(
                NetworkConfiguration::builder()
                    .awsvpc_configuration(vpc)
                    .build(),
            )
            .overrides(
                TaskOverride::builder()
                    .container_overrides(
                        ContainerOverride::builder()
                            .name(&run.container)
                            .set_command(Some(run.command.clone()))
                            .build(),
                    )
                    .build(),
            )
            .set_platform_version(run.platform_version.clone())
            .started_by(&run.started_by)
            .client_token(&run.client_token)
            .propagate_tags(PropagateTags::TaskDefinition);
        for (k, v) in &run.tags {
            req = req.tags(Tag::builder().key(k).value(v).build());
        }
        let out = req.send().await.map_err(|e| classify("RunTask", &e))?;
        if let Some(task) = out.tasks().first().and_then(|t| t.task_arn()) {
            return Ok(task.to_owned());
        }
        let why = out
            .failures()
            .first()
            .map(|f| {
                format!(
                    "{} ({})",
                    f.reason().unwrap_or("no reason"),
                    f.detail().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "no task and no failure in the answer".into());
        Err(PortError::new(ErrorKind::Invalid, "RunTask", why))
    }

    async fn task_progress(
        &self,
        cluster: &str,
        task_arn: &str,
        container: &str,
    ) -> Result<TaskProgress, PortError> {
        let out = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .tasks(task_arn)
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", &e))?;
        let Some(task) = out.tasks().iter().find(|t| t.task_arn() == Some(task_arn)) else {
            return Ok(TaskProgress::Unknown);
        };
        if task.last_status() != Some("STOPPED") {
            return Ok(TaskProgress::Running);
        }
        let c = task
            .containers()
            .iter()
            .find(|c| c.name() == Some(container));
        let mut reason = task.stopped_reason().unwrap_or("stopped").to_owned();
        if let Some(r) = c.and_then(|c| c.reason()) {
            reason = format!("{reason}; {container}: {r}");
        }
        Ok(TaskProgress::Stopped {
            exit_code: c.and_then(|c| c.exit_code()),
            reason: harbormaster_core::text::clipped(&reason, harbormaster_core::text::MAX_REASON),
        })
    }

    async fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> Result<(), PortError> {
        self.clients
            .ecs
            .stop_task()
            .cluster(cluster)
            .task(task_arn)
            .reason(reason)
            .send()
            .await
            .map_err(|e| classify("StopTask", &e))?;
        Ok(())
    }
}
