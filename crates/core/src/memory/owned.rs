//! The simulated one-off tasks and Application Auto Scaling. No emulator stops a task with an
//! exit code (ministack runs no containers without Docker), so the test plays ECS: it says
//! when and how a task ends ([`MemoryPorts::finish_task`]).

use super::MemoryPorts;
use crate::ports::*;
use crate::service::{ScalingStep, ScalingWant, TaskProgress, TaskRun};

#[derive(Debug, Clone)]
pub struct SimTask {
    pub run: TaskRun,
    pub progress: TaskProgress,
    /// When RunTask started it, and whether DescribeTasks has answered for it: ECS may answer
    /// MISSING for a task just started (RunTask API reference, eventual consistency); the
    /// in-memory ECS does so for the first DescribeTasks within [`JUST_STARTED`] of the start.
    pub started_at: chrono::DateTime<chrono::Utc>,
    pub described: bool,
}

impl MemoryPorts {
    /// The task ends with `exit_code` (`None`: it never ran its container), as ECS reports.
    pub fn finish_task(&self, task_arn: &str, exit_code: Option<i32>, reason: &str) {
        self.with(|w| {
            if let Some(t) = w.tasks.get_mut(task_arn) {
                t.progress = TaskProgress::Stopped {
                    exit_code,
                    reason: reason.to_owned(),
                };
            }
        });
    }

    /// The tasks started so far, in the order of their ARNs.
    pub fn tasks(&self) -> Vec<(String, SimTask)> {
        self.with(|w| w.tasks.clone().into_iter().collect())
    }
}

/// How long after RunTask the in-memory ECS may not know a task yet.
pub const JUST_STARTED: chrono::Duration = chrono::Duration::seconds(5);

impl Tasks for MemoryPorts {
    async fn run_task(&self, run: &TaskRun) -> Result<String, PortError> {
        self.call("RunTask", |w| {
            if let Some(arn) = w.task_tokens.get(&run.client_token) {
                return Ok(arn.clone());
            }
            let arn = format!(
                "arn:aws:ecs:us-east-1:{}:task/{}/{:032x}",
                w.account,
                run.cluster,
                w.tasks.len() + 1
            );
            w.task_tokens.insert(run.client_token.clone(), arn.clone());
            w.tasks.insert(
                arn.clone(),
                SimTask {
                    run: run.clone(),
                    progress: TaskProgress::Running,
                    started_at: w.now,
                    described: false,
                },
            );
            Ok(arn)
        })
        .await
    }

    async fn task_progress(
        &self,
        _cluster: &str,
        task_arn: &str,
        _container: &str,
    ) -> Result<TaskProgress, PortError> {
        self.call("DescribeTasks", |w| {
            let now = w.now;
            Ok(match w.tasks.get_mut(task_arn) {
                Some(t) if !t.described && now - t.started_at < JUST_STARTED => {
                    t.described = true;
                    TaskProgress::Unknown
                }
                Some(t) => t.progress.clone(),
                None => TaskProgress::Unknown,
            })
        })
        .await
    }

    async fn stop_task(
        &self,
        _cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> Result<(), PortError> {
        self.call("StopTask", |w| {
            if let Some(t) = w.tasks.get_mut(task_arn) {
                if t.progress == TaskProgress::Running {
                    t.progress = TaskProgress::Stopped {
                        exit_code: None,
                        reason: reason.to_owned(),
                    };
                }
            }
            Ok(())
        })
        .await
    }
}

impl Autoscaler for MemoryPorts {
    async fn scaling(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ScalingWant>, PortError> {
        self.call("DescribeScalableTargets", |w| {
            Ok(w.autoscaling
                .get(&(cluster.into(), service.into()))
                .cloned())
        })
        .await
    }

    async fn apply_scaling(
        &self,
        cluster: &str,
        service: &str,
        step: &ScalingStep,
    ) -> Result<(), PortError> {
        let op = match step {
            ScalingStep::Register { .. } => "RegisterScalableTarget",
            ScalingStep::PutPolicy(_) => "PutScalingPolicy",
            ScalingStep::DeletePolicy(_) => "DeleteScalingPolicy",
            ScalingStep::Deregister => "DeregisterScalableTarget",
        };
        self.call(op, |w| {
            let key = (cluster.to_owned(), service.to_owned());
            let exists = w
                .services
                .get(&key)
                .is_some_and(|s| s.status == ServiceStatus::Active);
            match step {
                ScalingStep::Register { min, max } => {
                    if !exists {
                        // As Application Auto Scaling: the service must exist.
                        return Err(PortError::new(
                            ErrorKind::Invalid,
                            op,
                            "ValidationException: the ECS service does not exist",
                        ));
                    }
                    let t = w.autoscaling.entry(key).or_insert(ScalingWant {
                        min: *min,
                        max: *max,
                        policies: Vec::new(),
                    });
                    (t.min, t.max) = (*min, *max);
                }
                ScalingStep::PutPolicy(p) => {
                    let t = w.autoscaling.get_mut(&key).ok_or_else(|| {
                        PortError::new(ErrorKind::Invalid, op, "no scalable target")
                    })?;
                    t.policies.retain(|q| q.name != p.name);
                    t.policies.push(p.clone());
                }
                ScalingStep::DeletePolicy(name) => {
                    if let Some(t) = w.autoscaling.get_mut(&key) {
                        t.policies.retain(|q| &q.name != name);
                    }
                }
                ScalingStep::Deregister => {
                    w.autoscaling.remove(&key);
                }
            }
            Ok(())
        })
        .await
    }
}
