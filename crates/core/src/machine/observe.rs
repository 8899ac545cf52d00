//! What each observation means, by kind: releases asked for (pushes, requests, ticks, git's
//! config, the service as ECS runs it), a deployment's own steps answered, and what comes from
//! outside a step (lifecycle hooks, ECS events, alarms, scaling).

use super::context::Ctx;
use super::{Observation, Outcome};

impl Ctx<'_> {
    /// Sorts `obs` by kind, listing every kind (no catch-all: a new observation does not
    /// compile until it is sorted); each half then handles only its own.
    pub(super) fn observe(&mut self, obs: &Observation) -> Outcome {
        match obs {
            Observation::ImagePushed { .. }
            | Observation::DeployRequested { .. }
            | Observation::ImagesListed { .. }
            | Observation::Tick
            | Observation::ConfigCheck { .. }
            | Observation::ServiceObserved { .. } => self.release_asked(obs),
            Observation::RevisionRegistered { .. }
            | Observation::RevisionSearched { .. }
            | Observation::ServiceUpdated { .. }
            | Observation::RolloutObserved { .. }
            | Observation::ServiceCreated { .. }
            | Observation::OneOffStarted { .. }
            | Observation::OneOffObserved { .. }
            | Observation::StepInterrupted { .. }
            | Observation::StepFailed { .. } => self.step_answered(obs),
            Observation::HookInvoked { .. }
            | Observation::ChecksMeasured { .. }
            | Observation::ApprovalRecorded { .. }
            | Observation::EcsDeploymentChanged { .. }
            | Observation::AlarmChanged { .. }
            | Observation::RollbackRequested { .. }
            | Observation::GuardsChecked { .. }
            | Observation::RolloutStopped { .. }
            | Observation::ScaleTick
            | Observation::BacklogMeasured { .. }
            | Observation::DesiredSet { .. }
            | Observation::ProtectTick
            | Observation::ProtectionAnswered { .. }
            | Observation::FailureExplained { .. } => self.outside_a_step(obs),
        }
    }

    fn release_asked(&mut self, obs: &Observation) -> Outcome {
        match obs {
            Observation::ImagePushed { event_id, image } => self.pushed(event_id, image),
            Observation::DeployRequested { image, by, force } => self.requested(image, by, *force),
            Observation::ImagesListed { images } => self.listed(images),
            Observation::Tick => self.tick(),
            Observation::ConfigCheck { promotion } => {
                self.promotion = promotion.clone();
                self.config_check()
            }
            Observation::ServiceObserved { task_definition } => {
                self.service_observed(task_definition)
            }
            _ => unreachable!("observe sorts the observations"),
        }
    }

    fn step_answered(&mut self, obs: &Observation) -> Outcome {
        match obs {
            Observation::RevisionRegistered {
                deployment,
                task_definition_arn,
                changes,
            } => {
                self.note_changes(deployment, changes.as_deref());
                self.registered(deployment, task_definition_arn, "registered")
            }
            Observation::RevisionSearched { deployment, found } => self.searched(deployment, found),
            Observation::ServiceUpdated {
                deployment,
                ecs_deployment_id,
            } => self.service_updated(deployment, ecs_deployment_id, ""),
            Observation::RolloutObserved {
                deployment,
                rollout,
            } => self.rollout_observed(deployment, rollout),
            Observation::ServiceCreated {
                deployment,
                ecs_deployment_id,
            } => self.service_updated(
                deployment,
                ecs_deployment_id,
                "created the service (it did not exist in ECS)",
            ),
            Observation::OneOffStarted { deployment, run } => self.one_off_started(deployment, run),
            Observation::OneOffObserved {
                deployment,
                progress,
            } => self.one_off_observed(deployment, progress),
            Observation::StepInterrupted { deployment, error } => {
                self.interrupted(deployment, error)
            }
            Observation::StepFailed { deployment, error } => self.step_failed(deployment, error),
            _ => unreachable!("observe sorts the observations"),
        }
    }

    fn outside_a_step(&mut self, obs: &Observation) -> Outcome {
        match obs {
            Observation::HookInvoked {
                stage,
                deployment,
                revision_task_definition,
                shifted_back,
            } => self.hook(
                *stage,
                deployment.as_ref(),
                revision_task_definition.as_deref(),
                *shifted_back,
            ),
            Observation::ChecksMeasured {
                deployment,
                stage,
                measurements,
            } => self.checks_measured(deployment, *stage, measurements),
            Observation::ApprovalRecorded {
                approved,
                by,
                summary,
            } => self.record_approval(*approved, by, summary.clone()),
            Observation::EcsDeploymentChanged {
                event_id,
                ecs_deployment_id,
                change,
                reason,
                updated_at,
            } => self.ecs_changed(event_id, ecs_deployment_id, *change, reason, *updated_at),
            Observation::AlarmChanged { change } => self.alarm(change),
            Observation::RollbackRequested { to, by, force } => {
                self.rollback_requested(to.as_deref(), by, *force)
            }
            Observation::GuardsChecked { firing } => self.guards_checked(firing),
            Observation::RolloutStopped {
                deployment,
                stopped,
            } => self.rollout_stopped(deployment, *stopped),
            Observation::ScaleTick => self.scale_tick(),
            Observation::ProtectTick => self.protect_tick(),
            Observation::ProtectionAnswered {
                image,
                tag,
                put,
                error,
            } => self.protection_answered(image, tag, *put, error.as_deref()),
            Observation::BacklogMeasured { measured } => self.scale(measured),
            Observation::DesiredSet { desired, error } => {
                self.desired_set(*desired, error.as_deref())
            }
            Observation::FailureExplained {
                deployment,
                rolled_back_to,
                reason,
            } => self.failure_explained(deployment, rolled_back_to.as_deref(), reason),

            _ => unreachable!("observe sorts the observations"),
        }
    }
}
