//! "ECS Deployment State Change" events: the fast path to a verdict for the deployment in
//! flight (the tick's DescribeServices is the slow path that works without them).

use chrono::{DateTime, Utc};

use super::context::Ctx;
use super::{Command, EcsChange, Outcome, SkipKind};
use crate::state::{Phase, Verdict};

impl Ctx<'_> {
    pub(super) fn ecs_changed(
        &mut self,
        event_id: &str,
        ecs_id: &str,
        change: EcsChange,
        reason: &str,
        updated_at: DateTime<Utc>,
    ) -> Outcome {
        if self.s.has_processed(event_id) {
            return Outcome::Duplicate;
        }
        self.s.remember_event(event_id);
        let Some(d) = self.s.in_flight.clone() else {
            let words = format!("no deployment of {} is in flight; {ecs_id} is not the agent's, or already recorded", self.s.service);
            return Outcome::ignored(SkipKind::EcsEventNothingInFlight, words);
        };
        // Only a stabilizing deployment has an ECS deployment id, and it carries its revision.
        let arn = match &d.phase {
            Phase::Stabilizing {
                task_definition_arn,
                ecs_deployment_id: Some(ours),
            } if ours == ecs_id => task_definition_arn.clone(),
            phase => {
                let ours = phase
                    .ecs_deployment_id()
                    .unwrap_or("not started in ECS yet");
                let why = format!(
                    "the event is about ECS deployment {ecs_id}; {} is {ours}",
                    d.id
                );
                return Outcome::ignored(SkipKind::EcsEventOtherDeployment, why);
            }
        };
        if d.ecs_event_at.is_some_and(|at| updated_at < at) {
            let words = "older than an event already applied (delivered out of order)";
            return Outcome::ignored(SkipKind::EcsEventOutOfOrder, words);
        }
        // Not a change of the deployment's own progress: `updated_at` stays as it was.
        if let Some(d) = self.s.in_flight.as_mut() {
            d.ecs_event_at = Some(updated_at);
        }
        match change {
            EcsChange::InProgress => Outcome::Nothing,
            EcsChange::Completed => self.finish(Verdict::Succeeded, None),
            EcsChange::Failed => {
                self.run(Command::ExplainFailure {
                    deployment: d.id.clone(),
                    task_definition_arn: arn,
                    reason: reason.to_owned(),
                });
                Outcome::Progressed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{EcsChange, Observation};

    fn event(id: &str, ecs_id: &str, change: EcsChange) -> Observation {
        Observation::EcsDeploymentChanged {
            event_id: id.into(),
            ecs_deployment_id: ecs_id.into(),
            change,
            reason: "ECS says so".into(),
            updated_at: t0(),
        }
    }

    #[test]
    fn ecs_deployment_events_give_the_deployment_in_flight_its_verdict() {
        let mut seen = stabilizing();
        seen.remember_event("ev-1");
        let rows = vec![
            Row {
                case: "completed: succeeded",
                state: stabilizing(),
                obs: event("ev-1", "ecs-svc/2", EcsChange::Completed),
                outcome: "finished",
                journal: &["stabilizing->succeeded"],
                command: "-",
            },
            Row {
                case: "failed: first find out why",
                state: stabilizing(),
                obs: event("ev-1", "ecs-svc/2", EcsChange::Failed),
                outcome: "progressed",
                journal: &[],
                command: "ExplainFailure",
            },
            Row {
                case: "in progress: nothing to decide",
                state: stabilizing(),
                obs: event("ev-1", "ecs-svc/2", EcsChange::InProgress),
                outcome: "nothing",
                journal: &[],
                command: "-",
            },
            Row {
                case: "another ECS deployment is not ours",
                state: stabilizing(),
                obs: event("ev-1", "ecs-svc/9", EcsChange::Completed),
                outcome: "ignored",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a redelivered event changes nothing",
                state: seen,
                obs: event("ev-1", "ecs-svc/2", EcsChange::Completed),
                outcome: "duplicate",
                journal: &[],
                command: "-",
            },
        ];
        check(&policy(), rows);
    }
}
