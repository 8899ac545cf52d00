//! ECS lifecycle hooks (native blue/green, canary, linear): whether this call gates our
//! deployment at all, and which gates it runs. The gates themselves are in `gates.rs`.

use super::context::Ctx;
use super::Refusal;
use super::{Command, HookStatus, Outcome, Point};
use crate::state::{ApprovalDecision, DeploymentId};
use crate::strategy::Stage;

impl Ctx<'_> {
    /// ECS asks whether the deployment may go on at `stage`.
    pub(super) fn hook(
        &mut self,
        stage: Stage,
        deployment: Option<&DeploymentId>,
        revision_task_definition: Option<&str>,
        shifted_back: bool,
    ) -> Outcome {
        let service = self.s.service.clone();
        let Some(d) = self.s.in_flight.clone() else {
            let why = format!("no deployment of {service} is in flight; nothing to gate");
            return Outcome::hook(HookStatus::Succeeded, why);
        };
        if let Some(id) = deployment.filter(|id| **id != d.id) {
            // Its deployment finished already: this is ECS rolling it back, or a late call.
            let why = format!("the hook is for {id}, which is no longer in flight; not gating it");
            return Outcome::hook(HookStatus::Succeeded, why);
        }
        let Some(ours) = d.task_definition_arn() else {
            let why = format!(
                "{} has not updated the service yet; this ECS deployment is not the agent's",
                d.id
            );
            return Outcome::hook(HookStatus::Succeeded, why);
        };
        if let Some(rev) = revision_task_definition.filter(|rev| *rev != ours) {
            // A rollback runs hooks too: never stand in its way.
            let why = format!("the target revision runs {rev}, not {ours} of {}: a rollback or a change from elsewhere; not gating it", d.id);
            return Outcome::hook(HookStatus::Succeeded, why);
        }
        if d.rollback.is_some() {
            let why = format!(
                "{} is a rollback to the last known good; rollbacks are not gated",
                d.id
            );
            return Outcome::hook(HookStatus::Succeeded, why);
        }
        if let Some(failure) = &d.gate_failure {
            return rolled_back(&d.id, d.stage, stage, shifted_back, failure);
        }
        // ECS also rolls back by itself (a deployment alarm, a hook's timeout action): it runs
        // the TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks again after the deployment
        // went past them ("Lifecycle hooks for Amazon ECS service deployments"). A deployment
        // going forward never calls a stage earlier than one it reached: before any gate.
        if let Some(reached) = d.stage.filter(|r| *r > stage && is_rollback_stage(stage)) {
            let why = format!(
                "ECS is rolling {} back by itself ({stage} called after {reached}); not standing in its way",
                d.id
            );
            return Outcome::hook(HookStatus::Succeeded, why);
        }
        self.enter_stage(stage);
        if let Some(p) = self.s.pending.clone() {
            let why = format!(
                "{} is waiting to deploy; this release gives way (ECS rolls it back) and the newer one follows",
                p.release.image.label()
            );
            return self.fail_gate(stage, "supersession", why);
        }
        if self.policy.gates.checks_at(stage).next().is_some() {
            self.run(Command::MeasureChecks {
                deployment: d.id.clone(),
                stage,
            });
            return Outcome::Progressed;
        }
        self.approval_gate(stage)
    }

    /// Records the stage ECS called at, once per stage.
    fn enter_stage(&mut self, stage: Stage) {
        let Some(d) = self.s.in_flight.as_ref().filter(|d| d.stage != Some(stage)) else {
            return;
        };
        let from = match d.stage {
            Some(s) => Point::Stage(s),
            None => Point::Phase(d.phase.kind()),
        };
        self.edit(|d| d.stage = Some(stage));
        self.transition(from, Point::Stage(stage), "lifecycle hook");
    }

    pub(super) fn record_approval(
        &mut self,
        approved: bool,
        by: &str,
        summary: Option<String>,
    ) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            let service = self.s.service.clone();
            return Outcome::refused(Refusal::NothingInFlight { service });
        };
        if self.policy.gates.approval.is_none() {
            let (service, environment) = (self.s.service.clone(), self.s.environment.clone());
            return Outcome::refused(Refusal::NoApprovalGate {
                service,
                environment,
            });
        }
        if let Some(a) = &d.approval {
            return Outcome::refused(Refusal::AlreadyDecided {
                deployment: d.id.clone(),
                approved: a.approved,
                by: a.by.clone(),
            });
        }
        let decision = ApprovalDecision {
            approved,
            by: by.to_owned(),
            summary: summary.clone(),
            at: self.now,
        };
        self.edit(|d| d.approval = Some(decision));
        let (word, to) = if approved {
            ("approved", Point::Approved)
        } else {
            ("rejected", Point::Rejected)
        };
        let summary = summary.map(|s| format!(": {s}")).unwrap_or_default();
        self.transition(
            Point::AwaitingApproval,
            to,
            format!("{word} by {by}{summary}"),
        );
        Outcome::Progressed
    }
}

/// After a gate failed at `failed_at`, ECS rolls the deployment back and runs the
/// TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks again ("Lifecycle hooks for Amazon ECS
/// service deployments"), the target revision still the green one: those calls are its
/// rollback, never to be stood in the way of. At another stage than the one that failed, a call
/// at those stages is the rollback; at the failed stage itself (the supersession check runs at
/// PRODUCTION_TRAFFIC_SHIFT) it is the rollback when production traffic is back on the other
/// revision, as the guide says to tell, and otherwise a retry of the failed call, which gets
/// the same answer.
/// The stages whose hooks ECS runs again while it rolls a deployment back.
fn is_rollback_stage(stage: Stage) -> bool {
    matches!(
        stage,
        Stage::TestTrafficShift | Stage::ProductionTrafficShift
    )
}

fn rolled_back(
    id: &DeploymentId,
    failed_at: Option<Stage>,
    stage: Stage,
    shifted_back: bool,
    failure: &str,
) -> Outcome {
    if is_rollback_stage(stage) && (failed_at != Some(stage) || shifted_back) {
        let why = format!("ECS is rolling {id} back ({failure}); not standing in its way");
        return Outcome::hook(HookStatus::Succeeded, why);
    }
    Outcome::hook(HookStatus::Failed, failure.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::Observation;
    use crate::state::{DeploymentId, Phase};
    use crate::strategy::Stage;

    fn hook(deployment: Option<&str>, revision: Option<&str>) -> Observation {
        Observation::HookInvoked {
            stage: Stage::PostTestTrafficShift,
            deployment: deployment.map(|d| DeploymentId(d.into())),
            revision_task_definition: revision.map(str::to_owned),
            shifted_back: false,
        }
    }

    #[test]
    fn a_hook_gates_only_the_agents_own_deployment() {
        let mut native = policy();
        native.native = true;
        let mut rollback = stabilizing();
        if let Some(d) = rollback.in_flight.as_mut() {
            d.rollback = Some(crate::state::RollbackOf {
                release: "x".into(),
                why: "alarm".into(),
            });
        }
        let rows = vec![
            Row {
                case: "nothing in flight: nothing to gate",
                state: deployed(),
                obs: hook(None, None),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
            Row {
                case: "no gates at this stage: it passes, journaled",
                state: stabilizing(),
                obs: hook(Some("d-b"), Some(TD2)),
                outcome: "hook_answered",
                journal: &[
                    "stabilizing->POST_TEST_TRAFFIC_SHIFT",
                    "POST_TEST_TRAFFIC_SHIFT->POST_TEST_TRAFFIC_SHIFT passed",
                ],
                command: "-",
            },
            Row {
                case: "a hook for a deployment no longer in flight is not gated",
                state: stabilizing(),
                obs: hook(Some("d-old"), None),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a target revision running something else is not gated",
                state: stabilizing(),
                obs: hook(Some("d-b"), Some(TD1)),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a deployment that has not updated the service is not gated",
                state: in_flight(Phase::Registering),
                obs: hook(None, None),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a rollback is never gated",
                state: rollback,
                obs: hook(Some("d-b"), Some(TD2)),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
            Row {
                case: "an approval where no gate asks for one is refused",
                state: stabilizing(),
                obs: Observation::ApprovalRecorded {
                    approved: true,
                    by: "alice".into(),
                    summary: None,
                },
                outcome: "refused",
                journal: &[],
                command: "-",
            },
        ];
        check(&native, rows);
    }
}
