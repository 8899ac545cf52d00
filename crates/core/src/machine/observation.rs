//! What the machine is told: events and AWS's answers, as the runner turns them into
//! observations. ECS's and CloudWatch's wire words are translated at the edge; only enums
//! arrive here.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::alarm::AlarmChange;
use crate::image::Image;
use crate::scaling::Measured;
use crate::state::DeploymentId;
use crate::strategy::Stage;

/// One check's measurement: the deciding value, or why there is none (inconclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub check: String,
    pub value: Result<f64, String>,
}

/// What an "ECS Deployment State Change" event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsChange {
    InProgress,
    Completed,
    Failed,
}

/// What ECS says of our deployment, reduced to what the machine decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Rollout {
    InProgress,
    Completed,
    Failed {
        reason: String,
    },
    /// The circuit breaker put the service back on an earlier revision.
    RolledBack {
        reason: String,
        to: String,
    },
    /// Someone else moved the service to another revision meanwhile.
    Replaced {
        by: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// An ECR push event for this service's repository whose tag this environment follows.
    ImagePushed {
        event_id: String,
        image: Image,
    },
    /// A person or build asked for this image (ordering does not apply: they chose it).
    DeployRequested {
        image: Image,
        by: String,
        /// Deploy even if the image is marked bad or a guard alarm is in ALARM.
        force: bool,
    },
    /// The tick listed the repository's images that this environment follows (their push events
    /// may have been lost). All times in it come from ECR's one clock.
    ImagesListed {
        images: Vec<Image>,
    },
    Tick,
    RevisionRegistered {
        deployment: DeploymentId,
        task_definition_arn: String,
        /// For a config release: what changed against the revision it replaces, in words.
        changes: Option<String>,
    },
    /// Result of looking for a revision an earlier attempt may have registered.
    RevisionSearched {
        deployment: DeploymentId,
        found: Option<String>,
    },
    ServiceUpdated {
        deployment: DeploymentId,
        ecs_deployment_id: Option<String>,
    },
    RolloutObserved {
        deployment: DeploymentId,
        rollout: Rollout,
    },
    /// CreateService made the service (it did not exist, or ECS had deleted it).
    ServiceCreated {
        deployment: DeploymentId,
        ecs_deployment_id: Option<String>,
    },
    /// RunTask started the one-off task before the rollout.
    OneOffStarted {
        deployment: DeploymentId,
        run: crate::state::OneOffRun,
    },
    /// Where that task is.
    OneOffObserved {
        deployment: DeploymentId,
        progress: crate::service::TaskProgress,
    },
    /// A step failed in a way retrying will not fix (invalid request, missing resource).
    StepFailed {
        deployment: DeploymentId,
        error: String,
    },
    /// A step failed in a way a later retry may fix (throttling, 5xx, a lost connection): the
    /// lease is released so the next tick takes over at once.
    StepInterrupted {
        deployment: DeploymentId,
        error: String,
    },
    /// ECS called the lifecycle hook. `deployment` comes from the hook details the agent set
    /// with UpdateService; `revision_task_definition` is what the target revision runs, when
    /// ECS could say.
    HookInvoked {
        stage: Stage,
        deployment: Option<DeploymentId>,
        revision_task_definition: Option<String>,
        /// The payload's `productionTrafficWeights` give the target revision nothing and
        /// another revision the traffic: how ECS's rollback calls look (target still green).
        shifted_back: bool,
    },
    ChecksMeasured {
        deployment: DeploymentId,
        stage: Stage,
        measurements: Vec<Measurement>,
    },
    /// A person approved or rejected the deployment in flight.
    ApprovalRecorded {
        approved: bool,
        by: String,
        summary: Option<String>,
    },
    /// An "ECS Deployment State Change" event.
    EcsDeploymentChanged {
        event_id: String,
        ecs_deployment_id: String,
        change: EcsChange,
        reason: String,
        updated_at: DateTime<Utc>,
    },
    /// One of the service's alarms changed state.
    AlarmChanged {
        change: AlarmChange,
    },
    /// A person asks for the service back on a known good revision (`to`: an ARN or its
    /// `family:revision` / revision suffix, from the history; default: the one before).
    RollbackRequested {
        to: Option<String>,
        by: String,
        /// Return to `to` even if it is marked bad.
        force: bool,
    },
    /// Which of the service's guard alarms are in ALARM now.
    GuardsChecked {
        firing: Vec<String>,
    },
    /// Whether ECS stopped the native deployment in flight (and rolls it back itself).
    RolloutStopped {
        deployment: DeploymentId,
        stopped: bool,
    },
    /// Time to size a worker service from its backlog.
    ScaleTick,
    /// Time to bring the images' protection tags in line with what the service needs.
    ProtectTick,
    /// ECR's answer to putting (`put`) or taking off a protection tag.
    ProtectionAnswered {
        image: Image,
        tag: String,
        put: bool,
        error: Option<String>,
    },
    /// Time to compare the config the service got with the published one (`Policy`), and, where
    /// the environment is promoted from another, how the bundle stands there.
    ConfigCheck {
        promotion: Option<Promotion>,
    },
    /// The revision the service runs, or why it could not be read.
    ServiceObserved {
        task_definition: Result<String, String>,
    },
    /// The backlog and the service's counts, or why they could not be read.
    BacklogMeasured {
        measured: Result<Measured, String>,
    },
    /// UpdateService set the desired count (or failed to).
    DesiredSet {
        desired: u32,
        error: Option<String>,
    },
    /// Why a deployment ECS reported failed did fail, and where the service is now.
    FailureExplained {
        deployment: DeploymentId,
        rolled_back_to: Option<String>,
        reason: String,
    },
}

/// How the published bundle stands in the environment this one is promoted from
/// (`promote_from`): a config release goes here by itself only once it succeeded there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Promotion {
    Succeeded,
    /// Not (yet): why, in words.
    NotYet(String),
}

impl Promotion {
    /// Whether `bundle` succeeded for this service in `source` (its state document there):
    /// a deployment with that bundle succeeded and its image is not marked bad since.
    pub fn of(
        source: &str,
        state: Option<&crate::state::ServiceState>,
        bundle: Option<&str>,
    ) -> Promotion {
        let Some(bundle) = bundle else {
            return Promotion::NotYet(format!(
                "promote_from = \"{source}\" compares published bundles, and this config was not published (`harbormaster publish`)"
            ));
        };
        let short = &bundle[..bundle.len().min(19)];
        let succeeded = state.is_some_and(|s| {
            s.history.iter().any(|h| {
                h.verdict == crate::state::Verdict::Succeeded
                    && h.bundle.as_deref() == Some(bundle)
                    && s.bad(&h.image.digest).is_none()
            })
        });
        if succeeded {
            Promotion::Succeeded
        } else {
            Promotion::NotYet(format!(
                "bundle {short}… has not succeeded in `{source}` yet (promote_from); it is released here once it has"
            ))
        }
    }
}
