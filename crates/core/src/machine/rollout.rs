//! The rollout of a deployment in flight: registering → updating → stabilizing → a verdict,
//! and taking over a step whose invocation crashed (its lease lapsed).

use super::context::Ctx;
use super::{Command, Outcome, Rollout};
use crate::state::{DeploymentId, Phase, PhaseKind, Verdict};

impl Ctx<'_> {
    pub(super) fn registered(&mut self, id: &DeploymentId, arn: &str, note: &str) -> Outcome {
        if self.current(id, PhaseKind::Registering).is_none() {
            return Outcome::Stale;
        }
        let note = format!("{note} {arn}");
        if self.policy.one_off_timeout.is_some() {
            // The migration runs before anything of the service changes.
            self.start_one_off(id, arn, note);
            return Outcome::Progressed;
        }
        self.update_next(id, arn, PhaseKind::Registering, note);
        self.updating_saved_with_next();
        Outcome::Progressed
    }

    /// For a rolling deployment, the updating intent protects nothing the registering one does
    /// not: a crash after UpdateService leaves `registering` saved, and the takeover finds the
    /// revision by its tag and checks the service before updating it (`searched`). One S3 write
    /// fewer per deployment; `crates/core/tests/crash.rs` kills the engine at every call to
    /// prove it. Not for a native strategy: ECS calls its lifecycle hook as soon as
    /// UpdateService has started the deployment, and the hook gates only the revision the
    /// saved state names.
    fn updating_saved_with_next(&mut self) {
        if !self.policy.native {
            self.save_with_next();
        }
    }

    /// Records the intent to update the service to `arn`, then asks for UpdateService.
    pub(super) fn update_next(
        &mut self,
        id: &DeploymentId,
        arn: &str,
        from: PhaseKind,
        note: String,
    ) {
        self.edit(|d| {
            d.phase = Phase::Updating {
                task_definition_arn: arn.to_owned(),
            };
        });
        self.renew_lease();
        self.transition(from, PhaseKind::Updating, note);
        self.run(Command::UpdateService {
            deployment: id.clone(),
            task_definition_arn: arn.to_owned(),
            adopt: false,
        });
    }

    pub(super) fn searched(&mut self, id: &DeploymentId, found: &Option<String>) -> Outcome {
        let Some(d) = self.current(id, PhaseKind::Registering) else {
            return Outcome::Stale;
        };
        match found {
            Some(arn) if self.policy.one_off_timeout.is_some() => {
                let note = "adopted the revision an earlier attempt registered";
                self.registered(id, arn, note)
            }
            Some(arn) => {
                // The earlier attempt may have updated the service too (its updating intent
                // is not saved): look before updating.
                let note = "adopted the revision an earlier attempt registered".to_owned();
                self.update_next(id, arn, PhaseKind::Registering, format!("{note} {arn}"));
                self.adopt_next_update();
                self.updating_saved_with_next();
                Outcome::Progressed
            }
            None => {
                self.renew_lease();
                self.run(Command::RegisterRevision {
                    deployment: id.clone(),
                    image: d.release.image,
                });
                Outcome::Progressed
            }
        }
    }

    /// UpdateService (or CreateService: `note` says so) answered.
    pub(super) fn service_updated(
        &mut self,
        id: &DeploymentId,
        ecs_id: &Option<String>,
        note: &str,
    ) -> Outcome {
        let Some(arn) = self.updating_arn(id) else {
            return Outcome::Stale;
        };
        // The update brought target tracking and capacity in line with the config.
        self.s.autoscaled = self.policy.autoscaled;
        self.s.custom_capacity = self.policy.custom_capacity;
        self.stabilizing(arn, ecs_id.clone(), note);
        Outcome::Progressed
    }

    /// The UpdateService this step asks for first checks whether the service already runs
    /// its revision (a takeover's view of what a crashed attempt may have done).
    fn adopt_next_update(&mut self) {
        self.map_command(|c| {
            if let Command::UpdateService { adopt, .. } = c {
                *adopt = true;
            }
        });
    }

    /// The revision of deployment `id`, if it is in flight and updating.
    pub(super) fn updating_arn(&self, id: &DeploymentId) -> Option<String> {
        let d = self.current(id, PhaseKind::Updating)?;
        d.task_definition_arn().map(str::to_owned)
    }

    /// ECS owns the rollout now; nobody needs exclusive access to follow it.
    fn stabilizing(&mut self, arn: String, ecs_deployment_id: Option<String>, note: &str) {
        self.edit(|d| {
            d.phase = Phase::Stabilizing {
                task_definition_arn: arn,
                ecs_deployment_id,
            };
            d.lease_until = None;
            d.lease_owner = None;
        });
        self.transition(PhaseKind::Updating, PhaseKind::Stabilizing, note);
    }

    pub(super) fn rollout_observed(&mut self, id: &DeploymentId, rollout: &Rollout) -> Outcome {
        let Some(d) = self.current(id, PhaseKind::Stabilizing) else {
            return Outcome::Stale;
        };
        match rollout {
            Rollout::InProgress if self.now - d.started_at > self.policy.stabilize_timeout => {
                let minutes = self.policy.stabilize_timeout.num_minutes();
                let reason = format!("did not stabilize within {minutes} minutes");
                self.finish(Verdict::Failed, Some(reason))
            }
            Rollout::InProgress => Outcome::Nothing,
            Rollout::Completed => self.finish(Verdict::Succeeded, None),
            Rollout::Failed { reason } => self.finish(Verdict::Failed, Some(reason.clone())),
            Rollout::RolledBack { reason, to } => {
                let reason = format!("{reason}; the service is back on {to}");
                self.finish(Verdict::RolledBack, Some(reason))
            }
            Rollout::Replaced { by } => {
                let reason =
                    format!("the service was moved to {by} by someone else during the rollout");
                self.finish(Verdict::Failed, Some(reason))
            }
        }
    }

    /// A retryable failure: the lease is released so the next tick takes over at once.
    pub(super) fn interrupted(&mut self, id: &DeploymentId, error: &str) -> Outcome {
        let Some(d) = self
            .held(id)
            .filter(|d| d.phase.kind() != PhaseKind::Stabilizing)
        else {
            return Outcome::Stale;
        };
        let now = self.now;
        self.edit(|d| d.lease_until = Some(now));
        let phase = d.phase.kind();
        self.transition(phase, phase, format!("interrupted, will retry: {error}"));
        Outcome::Progressed
    }

    pub(super) fn step_failed(&mut self, id: &DeploymentId, error: &str) -> Outcome {
        match self.held(id) {
            None => Outcome::Stale,
            Some(_) => self.finish(Verdict::Failed, Some(error.to_owned())),
        }
    }

    pub(super) fn failure_explained(
        &mut self,
        id: &DeploymentId,
        rolled_back_to: Option<&str>,
        reason: &str,
    ) -> Outcome {
        if self
            .ours(id)
            .is_none_or(|d| d.phase.kind() == PhaseKind::Registering)
        {
            return Outcome::Stale;
        }
        match rolled_back_to {
            Some(to) => {
                let reason = format!("{reason}; the service is back on {to}");
                self.finish(Verdict::RolledBack, Some(reason))
            }
            None => self.finish(Verdict::Failed, Some(reason.to_owned())),
        }
    }

    /// Whether ECS stopped the native deployment in flight; if it did not (nothing was in
    /// progress), the rollback updates the service itself.
    pub(super) fn rollout_stopped(&mut self, id: &DeploymentId, stopped: bool) -> Outcome {
        let Some(arn) = self.updating_arn(id) else {
            return Outcome::Stale;
        };
        if stopped {
            let note = "ECS stopped the deployment and rolls it back itself";
            self.stabilizing(arn, None, note);
        } else {
            self.renew_lease();
            self.run(Command::UpdateService {
                deployment: id.clone(),
                task_definition_arn: arn,
                adopt: false,
            });
        }
        Outcome::Progressed
    }

    pub(super) fn tick(&mut self) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            let settling = (self.s.pending.as_ref()).and_then(|p| p.settling_until());
            if settling.is_some_and(|until| until > self.now) {
                return Outcome::Nothing;
            }
            let held = (self.s.pending.as_ref()).and_then(|p| self.held_by_config(&p.release));
            if held.is_some() {
                return Outcome::Nothing;
            }
            return match self.s.pending.take() {
                Some(p) => self.begin(p),
                None => Outcome::Nothing,
            };
        };
        let command = match &d.phase {
            // ECS runs the task: following it needs no lease.
            Phase::Migrating {
                task: Some(run), ..
            } => Command::ObserveOneOff {
                deployment: d.id.clone(),
                run: run.clone(),
            },
            Phase::Stabilizing {
                task_definition_arn,
                ecs_deployment_id,
            } => Command::ObserveRollout {
                deployment: d.id.clone(),
                task_definition_arn: task_definition_arn.clone(),
                ecs_deployment_id: ecs_deployment_id.clone(),
            },
            _ if d.lease_until.is_some_and(|until| until > self.now) => return Outcome::Busy,
            _ if d.attempts + 1 > self.policy.max_attempts => {
                let reason = format!(
                    "gave up after {} attempts while {}",
                    d.attempts + 1,
                    d.phase
                );
                return self.finish(Verdict::Failed, Some(reason));
            }
            Phase::Registering => Command::FindRevision {
                deployment: d.id.clone(),
                image: d.release.image.clone(),
            },
            Phase::Migrating {
                task_definition_arn,
                ..
            } => Command::RunOneOff {
                deployment: d.id.clone(),
                task_definition_arn: task_definition_arn.clone(),
            },
            // A rollback whose first step (stopping the replaced deployment's migration) was not
            // seen done: done again (StopTask of a stopped task changes nothing).
            Phase::Updating {
                task_definition_arn,
            } => match d.stop_first.clone() {
                Some(run) => Command::StopOneOff {
                    deployment: d.id.clone(),
                    run,
                    reason: "stopped by harbormaster: the deployment it ran before was rolled back"
                        .into(),
                },
                None => Command::UpdateService {
                    deployment: d.id.clone(),
                    task_definition_arn: task_definition_arn.clone(),
                    adopt: true,
                },
            },
        };
        let followed = matches!(
            d.phase,
            Phase::Stabilizing { .. } | Phase::Migrating { task: Some(_), .. }
        );
        if !followed {
            self.take_over(d.phase.kind(), d.attempts);
        }
        self.run(command);
        Outcome::Progressed
    }

    /// The invocation that held the lease crashed or timed out: this one carries on.
    fn take_over(&mut self, phase: PhaseKind, attempts: u32) {
        self.edit(|d| d.attempts += 1);
        self.renew_lease();
        let note = format!("lease lapsed; taking over (attempt {})", attempts + 1);
        self.transition(phase, phase, note);
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{Observation, Rollout};
    use crate::state::{DeploymentId, Phase};

    fn updating() -> crate::state::ServiceState {
        in_flight(Phase::Updating {
            task_definition_arn: TD2.into(),
        })
    }

    fn lapsed(mut s: crate::state::ServiceState) -> crate::state::ServiceState {
        if let Some(d) = s.in_flight.as_mut() {
            d.lease_until = Some(t0() - chrono::Duration::seconds(1));
        }
        s
    }

    /// The lease taken over by another invocation (`run-z`) after this one's lapsed.
    fn taken_over(mut s: crate::state::ServiceState) -> crate::state::ServiceState {
        if let Some(d) = s.in_flight.as_mut() {
            d.lease_owner = Some("run-z".into());
        }
        s
    }

    /// An invocation whose lease lapsed and was taken over applies nothing of its step
    /// (issue 16, point 3): the one holding the lease now does.
    #[test]
    fn a_step_result_is_applied_only_by_the_lease_holder() {
        let rows = vec![
            Row {
                case: "UpdateService answered after another took the step over",
                state: taken_over(updating()),
                obs: Observation::ServiceUpdated {
                    deployment: d_b(),
                    ecs_deployment_id: Some("ecs-svc/2".into()),
                },
                outcome: "stale",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a registration answered after another took the step over",
                state: taken_over(in_flight(Phase::Registering)),
                obs: Observation::RevisionRegistered {
                    deployment: d_b(),
                    task_definition_arn: TD2.into(),
                    changes: None,
                },
                outcome: "stale",
                journal: &[],
                command: "-",
            },
            Row {
                case: "its own lease: applied",
                state: updating(),
                obs: Observation::ServiceUpdated {
                    deployment: d_b(),
                    ecs_deployment_id: None,
                },
                outcome: "progressed",
                journal: &["updating->stabilizing"],
                command: "-",
            },
        ];
        check(&policy(), rows);
    }

    /// Issue 20: the updating intent is saved with stabilizing, not before UpdateService; a
    /// takeover that finds the revision an earlier attempt registered looks at the service
    /// before updating it (that attempt may have updated it too).
    #[test]
    fn the_updating_intent_is_saved_with_the_next_step_and_a_takeover_looks_first() {
        use super::super::{decide, Command, Policy};
        let now = chrono::Utc::now();
        let registered = Observation::RevisionRegistered {
            deployment: d_b(),
            task_definition_arn: TD2.into(),
            changes: None,
        };
        let step = decide(&in_flight(Phase::Registering), &registered, now, &policy());
        assert!(step.save_with_next);
        assert!(matches!(
            step.command,
            Some(Command::UpdateService { adopt: false, .. })
        ));
        let found = Observation::RevisionSearched {
            deployment: d_b(),
            found: Some(TD2.into()),
        };
        let step = decide(&in_flight(Phase::Registering), &found, now, &policy());
        assert!(step.save_with_next);
        assert!(matches!(
            step.command,
            Some(Command::UpdateService { adopt: true, .. })
        ));
        // Issue 20's merge is for rolling deployments only: ECS calls a native strategy's
        // lifecycle hook as soon as UpdateService has started the deployment, and the hook
        // gates only the revision the saved state names (`registering` names none, so it
        // would wave the deployment through without its checks or approval).
        let native = Policy {
            native: true,
            ..policy()
        };
        let step = decide(&in_flight(Phase::Registering), &registered, now, &native);
        assert!(!step.save_with_next);
        let step = decide(&in_flight(Phase::Registering), &found, now, &native);
        assert!(!step.save_with_next);
        // What ends the step that follows is saved before anything else runs.
        let updated = Observation::ServiceUpdated {
            deployment: d_b(),
            ecs_deployment_id: Some("ecs-svc/2".into()),
        };
        assert!(!decide(&updating(), &updated, now, &policy()).save_with_next);
    }

    fn observed(rollout: Rollout) -> Observation {
        Observation::RolloutObserved {
            deployment: d_b(),
            rollout,
        }
    }

    #[test]
    fn a_rollout_goes_register_update_stabilize_verdict() {
        let rows = vec![
            Row {
                case: "a registered revision is rolled out next",
                state: in_flight(Phase::Registering),
                obs: Observation::RevisionRegistered {
                    deployment: d_b(),
                    task_definition_arn: TD2.into(),
                    changes: None,
                },
                outcome: "progressed",
                journal: &["registering->updating"],
                command: "UpdateService",
            },
            Row {
                case: "no revision from an earlier attempt: register it",
                state: in_flight(Phase::Registering),
                obs: Observation::RevisionSearched {
                    deployment: d_b(),
                    found: None,
                },
                outcome: "progressed",
                journal: &[],
                command: "RegisterRevision",
            },
            Row {
                case: "the service updated: ECS owns the rollout",
                state: updating(),
                obs: Observation::ServiceUpdated {
                    deployment: d_b(),
                    ecs_deployment_id: Some("ecs-svc/2".into()),
                },
                outcome: "progressed",
                journal: &["updating->stabilizing"],
                command: "-",
            },
            Row {
                case: "a completed rollout succeeds",
                state: stabilizing(),
                obs: observed(Rollout::Completed),
                outcome: "finished",
                journal: &["stabilizing->succeeded"],
                command: "-",
            },
            Row {
                case: "the circuit breaker's rollback is a failure",
                state: stabilizing(),
                obs: observed(Rollout::RolledBack {
                    reason: "tasks failed".into(),
                    to: TD1.into(),
                }),
                outcome: "finished",
                journal: &["stabilizing->rolled back"],
                command: "-",
            },
            Row {
                case: "a rollout in progress within its time waits",
                state: stabilizing(),
                obs: observed(Rollout::InProgress),
                outcome: "nothing",
                journal: &[],
                command: "-",
            },
            Row {
                case: "an answer about another deployment is stale",
                state: stabilizing(),
                obs: Observation::RolloutObserved {
                    deployment: DeploymentId("d-old".into()),
                    rollout: Rollout::Completed,
                },
                outcome: "stale",
                journal: &[],
                command: "-",
            },
            Row {
                case: "the tick follows a stabilizing rollout",
                state: stabilizing(),
                obs: Observation::Tick,
                outcome: "progressed",
                journal: &[],
                command: "ObserveRollout",
            },
            Row {
                case: "the tick leaves a step whose lease is held alone",
                state: updating(),
                obs: Observation::Tick,
                outcome: "busy",
                journal: &[],
                command: "-",
            },
            Row {
                case: "the tick takes over a step whose lease lapsed, adopting what it did",
                state: lapsed(updating()),
                obs: Observation::Tick,
                outcome: "progressed",
                journal: &["updating->updating"],
                command: "UpdateService",
            },
            Row {
                case: "a retryable failure releases the lease",
                state: in_flight(Phase::Registering),
                obs: Observation::StepInterrupted {
                    deployment: d_b(),
                    error: "throttled".into(),
                },
                outcome: "progressed",
                journal: &["registering->registering"],
                command: "-",
            },
            Row {
                case: "a permanent failure fails the deployment",
                state: updating(),
                obs: Observation::StepFailed {
                    deployment: d_b(),
                    error: "invalid".into(),
                },
                outcome: "finished",
                journal: &["updating->failed"],
                command: "-",
            },
        ];
        check(&policy(), rows);
    }
}
