//! What the machine asks the runner to do: at most one command per step.

use std::fmt;

use crate::image::Image;
use crate::state::{DeploymentId, OneOffRun};
use crate::strategy::Stage;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Look in the family for a revision tagged with this deployment (adopt, don't re-register).
    FindRevision {
        deployment: DeploymentId,
        image: Image,
    },
    RegisterRevision {
        deployment: DeploymentId,
        image: Image,
    },
    /// `adopt`: first check whether the service already runs the revision (a takeover).
    UpdateService {
        deployment: DeploymentId,
        task_definition_arn: String,
        adopt: bool,
    },
    /// RunTask: the revision's one-off task before the rollout (`before_deploy`).
    RunOneOff {
        deployment: DeploymentId,
        task_definition_arn: String,
    },
    /// DescribeTasks: where that task is.
    ObserveOneOff {
        deployment: DeploymentId,
        run: OneOffRun,
    },
    /// StopTask: it ran past its time, or the deployment it belonged to is being rolled back
    /// (`reason` is what ECS records as the task's stopped reason).
    StopOneOff {
        deployment: DeploymentId,
        run: OneOffRun,
        reason: String,
    },
    ObserveRollout {
        deployment: DeploymentId,
        task_definition_arn: String,
        ecs_deployment_id: Option<String>,
    },
    /// Measure the checks gating `stage` (CloudWatch GetMetricData).
    MeasureChecks {
        deployment: DeploymentId,
        stage: Stage,
    },
    /// Ask CloudWatch which guard alarms are in ALARM.
    CheckGuards,
    /// Read the worker's backlog and its desired and running counts.
    MeasureBacklog,
    /// UpdateService with only the desired count.
    SetDesired { desired: u32 },
    /// StopServiceDeployment with rollback, of the native deployment rolling out
    /// `task_definition_arn` (the release being rolled back), and of no other.
    StopRollout {
        deployment: DeploymentId,
        task_definition_arn: String,
    },
    /// Which revision the service runs (drift: a change made outside git).
    ObserveService,
    /// BatchGetImage then PutImage: `tag` on `image`, so the lifecycle rules keep it.
    ProtectImage { image: Image, tag: String },
    /// BatchDeleteImage of `tag` (the tag only; an image left with no tag goes with it).
    UnprotectImage { image: Image, tag: String },
    /// Gather what explains a failed rollout: stopped tasks, service events, where it is now.
    ExplainFailure {
        deployment: DeploymentId,
        task_definition_arn: String,
        reason: String,
    },
}

impl Command {
    /// The deployment a command changes something in AWS for; `None`: it only reads (or sets a
    /// worker's count, which no lease guards).
    pub fn mutates(&self) -> Option<&DeploymentId> {
        match self {
            Command::RegisterRevision { deployment, .. }
            | Command::UpdateService { deployment, .. }
            | Command::RunOneOff { deployment, .. }
            | Command::StopOneOff { deployment, .. }
            | Command::StopRollout { deployment, .. } => Some(deployment),
            _ => None,
        }
    }
}

/// The AWS calls a command makes, in words (`--dry-run` lists them).
impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Command::FindRevision { deployment, .. } => {
                write!(f, "look for a revision tagged {deployment}")
            }
            Command::RegisterRevision { image, .. } => write!(
                f,
                "RegisterTaskDefinition with {}@{}",
                image.repository, image.digest
            ),
            Command::UpdateService {
                task_definition_arn,
                adopt: true,
                ..
            } => write!(
                f,
                "UpdateService to {task_definition_arn} (unless it already runs it)"
            ),
            Command::UpdateService {
                task_definition_arn,
                ..
            } => write!(
                f,
                "UpdateService to {task_definition_arn} (CreateService if it does not exist; its target tracking as the config says)"
            ),
            Command::ObserveRollout {
                task_definition_arn,
                ..
            } => write!(f, "DescribeServices (rollout of {task_definition_arn})"),
            Command::RunOneOff {
                task_definition_arn,
                ..
            } => write!(
                f,
                "RunTask of {task_definition_arn} with the `before_deploy` command"
            ),
            Command::ObserveOneOff { run, .. } => {
                write!(f, "DescribeTasks ({})", run.task_arn)
            }
            Command::StopOneOff { run, .. } => write!(f, "StopTask {}", run.task_arn),
            Command::MeasureChecks { stage, .. } => {
                write!(f, "GetMetricData for the checks at {stage}")
            }
            Command::CheckGuards => f.write_str("DescribeAlarms (guard alarms)"),
            Command::ObserveService => f.write_str("DescribeServices (which revision runs)"),
            Command::ProtectImage { image, tag } => write!(
                f,
                "BatchGetImage and PutImage: tag {tag} on {}@{}",
                image.repository, image.digest
            ),
            Command::UnprotectImage { image, tag } => {
                write!(f, "BatchDeleteImage: tag {tag} off {}", image.repository)
            }
            Command::MeasureBacklog => f.write_str("read the backlog and DescribeServices"),
            Command::SetDesired { desired } => write!(f, "UpdateService desiredCount={desired}"),
            Command::StopRollout {
                task_definition_arn,
                ..
            } => write!(
                f,
                "StopServiceDeployment (rollback) of the deployment rolling out {task_definition_arn}"
            ),
            Command::ExplainFailure {
                task_definition_arn,
                ..
            } => write!(
                f,
                "DescribeServices and stopped tasks of {task_definition_arn}"
            ),
        }
    }
}
