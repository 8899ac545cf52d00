//! The one-off task before a rollout (`before_deploy`, a migration): started with an intent
//! recorded first (RunTask's client token makes a resend find the same task), followed by the
//! tick while ECS runs it, and judged by its exit code. The service is touched only after it
//! exits 0.

use super::context::Ctx;
use super::{Command, Outcome};
use crate::service::TaskProgress;
use crate::state::{DeploymentId, OneOffRun, Phase, PhaseKind, Verdict};

impl Ctx<'_> {
    pub(super) fn start_one_off(&mut self, id: &DeploymentId, arn: &str, note: String) {
        self.edit(|d| {
            d.phase = Phase::Migrating {
                task_definition_arn: arn.to_owned(),
                task: None,
            };
        });
        self.renew_lease();
        self.transition(PhaseKind::Registering, PhaseKind::Migrating, note);
        self.run(Command::RunOneOff {
            deployment: id.clone(),
            task_definition_arn: arn.to_owned(),
        });
    }

    pub(super) fn one_off_started(&mut self, id: &DeploymentId, run: &OneOffRun) -> Outcome {
        let Some(d) = self.current(id, PhaseKind::Migrating) else {
            return Outcome::Stale;
        };
        let Phase::Migrating {
            task_definition_arn,
            task: None,
        } = d.phase
        else {
            return Outcome::Stale;
        };
        self.edit(|d| {
            d.phase = Phase::Migrating {
                task_definition_arn,
                task: Some(run.clone()),
            };
            // ECS runs it now; the tick follows it, whoever ticks.
            d.lease_until = None;
            d.lease_owner = None;
        });
        let note = format!("started task {} before the rollout", run.task_arn);
        self.transition(PhaseKind::Migrating, PhaseKind::Migrating, note);
        Outcome::Progressed
    }

    pub(super) fn one_off_observed(
        &mut self,
        id: &DeploymentId,
        progress: &TaskProgress,
    ) -> Outcome {
        if let Some(run) = self.held(id).and_then(|d| d.stop_first) {
            return self.stopped_before_rollback(id, &run);
        }
        let Some(d) = self
            .ours(id)
            .filter(|d| d.phase.kind() == PhaseKind::Migrating)
        else {
            return Outcome::Stale;
        };
        let Phase::Migrating {
            task_definition_arn: arn,
            task: Some(run),
        } = d.phase
        else {
            return Outcome::Stale;
        };
        let timeout = self.policy.one_off_timeout.unwrap_or_default();
        match progress {
            TaskProgress::Running if self.now - run.started_at > timeout => {
                let minutes = timeout.num_minutes();
                let reason = format!(
                    "stopped by harbormaster after {minutes} minutes (`before_deploy.timeout_minutes`)"
                );
                self.run(Command::StopOneOff {
                    deployment: id.clone(),
                    run,
                    reason,
                });
                Outcome::Progressed
            }
            TaskProgress::Running => Outcome::Nothing,
            // Just started: DescribeTasks may not know it yet.
            TaskProgress::Unknown if crate::service::not_visible_yet(run.started_at, self.now) => {
                Outcome::Nothing
            }
            TaskProgress::Stopped {
                exit_code: Some(0), ..
            } => {
                let note = format!("task {} exited 0; updating the service", run.task_arn);
                self.update_next(id, &arn, PhaseKind::Migrating, note);
                Outcome::Progressed
            }
            TaskProgress::Stopped { exit_code, reason } => {
                let code = match exit_code {
                    Some(c) => format!("exited {c}"),
                    None => "stopped without an exit code".to_owned(),
                };
                let logs = run
                    .log_stream
                    .as_ref()
                    .map(|l| format!("; logs: {l}"))
                    .unwrap_or_default();
                let why = format!(
                    "the task before the rollout (container {}, task {}) {code}: {reason}{logs}; the service was not changed",
                    run.container, run.task_arn
                );
                self.finish(Verdict::Failed, Some(why))
            }
            TaskProgress::Unknown => {
                let why = format!(
                    "ECS no longer knows task {}, the task before the rollout; the service was not changed",
                    run.task_arn
                );
                self.finish(Verdict::Failed, Some(why))
            }
        }
    }

    /// A rollback's first step: the task the rolled-back deployment started before its rollout
    /// (a migration, under the code being rolled back) is stopped. Then the service goes back to
    /// the last known good (it was never touched; `adopt` makes that no deployment at all).
    fn stopped_before_rollback(&mut self, id: &DeploymentId, run: &OneOffRun) -> Outcome {
        let Some(arn) = self.updating_arn(id) else {
            return Outcome::Stale;
        };
        self.edit(|d| d.stop_first = None);
        self.renew_lease();
        let note = format!(
            "stopped task {} (the task before the rolled-back rollout)",
            run.task_arn
        );
        self.transition(PhaseKind::Updating, PhaseKind::Updating, note);
        self.run(Command::UpdateService {
            deployment: id.clone(),
            task_definition_arn: arn,
            adopt: true,
        });
        Outcome::Progressed
    }
}
