//! "ECS Deployment State Change" events: the fast path to a verdict for the deployment in
//! flight (the tick's DescribeServices is the slow path that works without them).

use chrono::{DateTime, Utc};

use super::context::Ctx;
use super::{Command, EcsChange, Outcome};
use crate::state::Verdict;

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
            return Outcome::ignored(format!("no deployment of {} is in flight; {ecs_id} is not the agent's, or already recorded", self.s.service));
        };
        let ours = d.phase.ecs_deployment_id();
        if ours != Some(ecs_id) {
            let ours = ours.unwrap_or("not started in ECS yet");
            let why = format!(
                "the event is about ECS deployment {ecs_id}; {} is {ours}",
                d.id
            );
            return Outcome::ignored(why);
        }
        if d.ecs_event_at.is_some_and(|at| updated_at < at) {
            return Outcome::ignored(
                "older than an event already applied (delivered out of order)",
            );
        }
        // Not a change of the deployment's own progress: `updated_at` stays as it was.
        if let Some(d) = self.s.in_flight.as_mut() {
            d.ecs_event_at = Some(updated_at);
        }
        match change {
            EcsChange::InProgress => Outcome::Nothing,
            EcsChange::Completed => self.finish(Verdict::Succeeded, None),
            EcsChange::Failed => {
                // An ECS id is only known once the service was updated, so the ARN is there.
                let arn = d.task_definition_arn().unwrap_or_default().to_owned();
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
