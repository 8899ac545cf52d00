//! What every concern shares while deciding one step: the state being changed, the step's
//! outputs, and the helpers that keep their rules in one place (the deployment in flight,
//! journal lines, leases, ids, and closing a deployment with its verdict).

use chrono::{DateTime, Utc};

use super::{Command, Outcome, Point, Policy, Step, Transition};
use crate::image::Digest;
use crate::notify::{NoticeKind, Notification};
use crate::scaling::ScaleDecision;
use crate::state::{
    Deployment, DeploymentId, FailedRelease, HistoryEntry, KnownGood, PhaseKind, ServiceState,
    Trigger, Verdict,
};

pub(super) struct Ctx<'a> {
    pub(super) s: ServiceState,
    pub(super) scaled: Option<ScaleDecision>,
    /// Something wrong the step cannot act on but must not hide (an unreadable backlog).
    pub(super) problem: Option<String>,
    command: Option<Command>,
    /// The step's state may be saved with the next step's instead of before its command.
    save_with_next: bool,
    pub(super) notices: Vec<Notification>,
    journal: Vec<Transition>,
    pub(super) now: DateTime<Utc>,
    pub(super) policy: &'a Policy,
    /// How the bundle stands where this environment is promoted from (a config check's).
    pub(super) promotion: Option<super::Promotion>,
}

impl<'a> Ctx<'a> {
    pub(super) fn new(state: &ServiceState, now: DateTime<Utc>, policy: &'a Policy) -> Self {
        Ctx {
            s: state.clone(),
            scaled: None,
            problem: None,
            command: None,
            save_with_next: false,
            notices: Vec::new(),
            journal: Vec::new(),
            now,
            policy,
            promotion: None,
        }
    }

    pub(super) fn into_step(self, outcome: Outcome) -> Step {
        Step {
            state: self.s,
            command: self.command,
            save_with_next: self.save_with_next,
            notices: self.notices,
            journal: self.journal,
            outcome,
            scaled: self.scaled,
            problem: self.problem,
        }
    }

    /// The step's one effect. A second would be a bug in the machine, not in the input.
    pub(super) fn run(&mut self, command: Command) {
        debug_assert!(self.command.is_none(), "one command per step: {command:?}");
        self.command = Some(command);
    }

    /// Changes the command this step asks for.
    pub(super) fn map_command(&mut self, f: impl FnOnce(&mut Command)) {
        if let Some(c) = self.command.as_mut() {
            f(c);
        }
    }

    /// This step's intent protects against no crash its command can leave behind: what the
    /// command does is found again from the last saved state (see the rollout's
    /// `update_next`), so the write before it can be saved with the next one.
    pub(super) fn save_with_next(&mut self) {
        self.save_with_next = true;
    }

    /// The deployment in flight, if it is `id`.
    pub(super) fn ours(&self, id: &DeploymentId) -> Option<Deployment> {
        self.s.in_flight.clone().filter(|d| &d.id == id)
    }

    /// The deployment in flight, if it is `id` and in phase `kind`, and its lease (if any)
    /// is this invocation's: a step's result is not applied once another took the step over.
    pub(super) fn current(&self, id: &DeploymentId, kind: PhaseKind) -> Option<Deployment> {
        self.held(id).filter(|d| d.phase.kind() == kind)
    }

    /// The deployment in flight, if it is `id` and no other invocation holds its lease.
    pub(super) fn held(&self, id: &DeploymentId) -> Option<Deployment> {
        let mine = |d: &Deployment| {
            (d.lease_owner.as_deref()).is_none_or(|owner| owner == self.policy.owner)
        };
        self.ours(id).filter(mine)
    }

    /// Changes the deployment in flight (if any) and stamps the change.
    pub(super) fn edit(&mut self, f: impl FnOnce(&mut Deployment)) {
        if let Some(d) = self.s.in_flight.as_mut() {
            f(d);
            d.updated_at = self.now;
        }
    }

    /// A journal line about the deployment in flight.
    pub(super) fn transition(
        &mut self,
        from: impl Into<Point>,
        to: impl Into<Point>,
        note: impl Into<String>,
    ) {
        let d = self.s.in_flight.as_ref();
        self.journal.push(Transition {
            deployment: d.map(|d| d.id.clone()),
            digest: d.map(|d| d.release.image.digest.clone()),
            from: from.into(),
            to: to.into(),
            note: note.into(),
        });
    }

    /// A journal line about a release that is not (or no longer) in flight.
    pub(super) fn journal_line(
        &mut self,
        deployment: Option<DeploymentId>,
        digest: Option<Digest>,
        (from, to): (Point, Point),
        note: impl Into<String>,
    ) {
        self.journal.push(Transition {
            deployment,
            digest,
            from,
            to,
            note: note.into(),
        });
    }

    /// Takes (or renews) the lease on the deployment in flight for this invocation.
    pub(super) fn renew_lease(&mut self) {
        let until = self.now + self.policy.lease;
        let owner = self.policy.owner.clone();
        self.edit(|d| {
            d.lease_until = Some(until);
            d.lease_owner = Some(owner);
        });
    }

    /// A new deployment id: readable and sortable; the serial makes it unique even for the same
    /// image in the same millisecond.
    pub(super) fn mint_id(&mut self, digest: &Digest) -> DeploymentId {
        self.s.deployments_started += 1;
        DeploymentId(format!(
            "{}-{}-{}",
            self.now.format("%Y%m%dT%H%M%S%3fZ"),
            &digest.short()[..8],
            self.s.deployments_started
        ))
    }

    /// Puts `entry` in the history (newest first, bounded).
    pub(super) fn record(&mut self, entry: HistoryEntry) {
        self.s.record(entry, self.policy.history_limit);
    }

    /// Closes the deployment in flight with a verdict: journal line, notification, last known
    /// good and history entry together; then starts what is pending.
    pub(super) fn finish(&mut self, verdict: Verdict, reason: Option<String>) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            return Outcome::Stale;
        };
        // A rollback that fails is not retried: the service is in a state a person must judge.
        let verdict = if d.rollback.is_some() && verdict.is_failure() {
            Verdict::RollbackFailed
        } else {
            verdict
        };
        // A config release says what it changed, whatever its end.
        let reason = match (&d.changes, reason) {
            (Some(c), None) => Some(format!("config changes: {c}")),
            (Some(c), Some(r)) => Some(format!("{r} (config changes: {c})")),
            (None, r) => r,
        };
        let mut reason = with_gate_failure(d.gate_failure.as_deref(), verdict, reason);
        if verdict.is_failure() && d.rollback.is_none() {
            let why = reason.as_deref().unwrap_or("failed");
            if let Some(config) = &d.config {
                self.remember_failure(&d.release.image, config, why);
            }
            if matches!(d.release.trigger, Trigger::Heal { .. }) {
                if let Some(stop) = self.heal_failed() {
                    reason = Some(format!("{why}; {stop}"));
                }
            }
        }
        self.transition(d.phase.kind(), verdict, reason.clone().unwrap_or_default());
        self.notify(NoticeKind::of_verdict(verdict), reason.clone());
        let arn = d.task_definition_arn().map(str::to_owned);
        if let (Verdict::Succeeded, Some(arn)) = (verdict, &arn) {
            // The image that ran with another config: what changed is the config (a person's
            // `deploy --config-only` as much as the tick's release), and an alarm blames it.
            let config_release = d.release.trigger.config_version().is_some()
                || (self.s.last_known_good.as_ref()).is_some_and(|g| {
                    g.image.digest == d.release.image.digest && g.config != d.config
                });
            self.s.last_known_good = Some(KnownGood {
                task_definition_arn: arn.clone(),
                image: d.release.image.clone(),
                deployment_id: d.id.clone(),
                at: self.now,
                started_at: Some(d.started_at),
                restored: d.rollback.is_some(),
                config: d.config.clone(),
                config_release,
                bundle: d.bundle.clone(),
            });
        }
        self.record(HistoryEntry {
            deployment_id: Some(d.id.clone()),
            image: d.release.image.clone(),
            verdict,
            task_definition_arn: arn,
            reason,
            at: self.now,
            gates: d.gates.clone(),
            config: d.config.clone(),
            bundle: d.bundle.clone(),
            rollback: d.rollback.is_some(),
        });
        self.s.in_flight = None;
        if let Some(p) = self.s.pending.take() {
            self.begin(p);
        }
        Outcome::Finished {
            deployment: d.id,
            verdict,
        }
    }
}

impl Ctx<'_> {
    /// The release of `image` with config `version` failed: the agent does not start that pair
    /// again by itself (bounded: the newest `agent.history_limit` failures).
    pub(super) fn remember_failure(
        &mut self,
        image: &crate::image::Image,
        version: &str,
        why: &str,
    ) {
        if self.s.failed(&image.digest, version).is_some() {
            return;
        }
        let failed = FailedRelease {
            digest: image.digest.clone(),
            config: version.to_owned(),
            why: crate::text::clipped(why, crate::text::MAX_REASON),
            at: self.now,
        };
        self.s.failed_releases.insert(0, failed);
        self.s.failed_releases.truncate(self.policy.history_limit);
    }
}

/// The gate that failed a deployment is the first thing a person needs to read.
fn with_gate_failure(
    gate: Option<&str>,
    verdict: Verdict,
    reason: Option<String>,
) -> Option<String> {
    match (gate, reason) {
        (Some(g), Some(r)) if verdict.is_failure() && !r.contains(g) => Some(format!("{g}; {r}")),
        (Some(g), None) if verdict.is_failure() => Some(g.to_owned()),
        (_, r) => r,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{decide, Observation, Rollout};
    use crate::state::{RollbackOf, Verdict};

    #[test]
    fn closing_a_deployment_keeps_its_verdict_history_and_last_known_good_together() {
        let rollback = {
            let mut s = stabilizing();
            if let Some(d) = s.in_flight.as_mut() {
                d.rollback = Some(RollbackOf {
                    release: "main-x".into(),
                    why: "alarm".into(),
                });
            }
            s
        };
        let gated = {
            let mut s = stabilizing();
            if let Some(d) = s.in_flight.as_mut() {
                d.gate_failure = Some("metric gate failed at X".into());
            }
            s
        };
        let completed = Observation::RolloutObserved {
            deployment: d_b(),
            rollout: Rollout::Completed,
        };
        let failed = Observation::StepFailed {
            deployment: d_b(),
            error: "boom".into(),
        };
        // (case, state, observation, verdict, reason starts with, last known good after)
        let cases = [
            (
                "success moves the last known good",
                stabilizing(),
                completed.clone(),
                Verdict::Succeeded,
                None,
                TD2,
            ),
            (
                "a failure leaves it",
                stabilizing(),
                failed.clone(),
                Verdict::Failed,
                Some("boom"),
                TD1,
            ),
            (
                "a failed rollback is a rollback failure",
                rollback,
                failed,
                Verdict::RollbackFailed,
                Some("boom"),
                TD1,
            ),
            (
                "the gate that failed it is said first",
                gated,
                Observation::RolloutObserved {
                    deployment: d_b(),
                    rollout: Rollout::RolledBack {
                        reason: "ECS rolled back".into(),
                        to: TD1.into(),
                    },
                },
                Verdict::RolledBack,
                Some("metric gate failed at X; ECS rolled back"),
                TD1,
            ),
        ];
        for (case, state, obs, verdict, reason, good) in cases {
            let step = decide(&state, &obs, t0(), &policy());
            let h = &step.state.history[0];
            assert_eq!(h.verdict, verdict, "{case}");
            match reason {
                Some(r) => assert!(
                    h.reason.as_deref().unwrap_or("").starts_with(r),
                    "{case}: {h:?}"
                ),
                None => assert!(h.reason.is_none(), "{case}"),
            }
            let lkg = step.state.last_known_good.as_ref().unwrap();
            assert_eq!(lkg.task_definition_arn, good, "{case}");
            assert!(step.state.in_flight.is_none(), "{case}");
        }
    }
}
