//! Alarms and rollbacks: an alarm within the window (or a person) puts the service back on its
//! last known good revision and marks the release that caused it bad.

use chrono::Duration;

use super::context::Ctx;
use super::Refusal;
use super::{Command, Outcome, Point, SkipKind};
use crate::alarm::{AlarmChange, AlarmState};
use crate::notify::NoticeKind;
use crate::state::{
    BadRelease, Deployment, HistoryEntry, KnownGood, Phase, PhaseKind, Release, RollbackOf,
    Trigger, Verdict,
};

/// CloudWatch's clock against the agent's, and alarm times given in whole seconds: a change
/// this close to a deployment's start is not taken as older than it.
const CLOCK_SLACK: Duration = Duration::seconds(5);

/// How a rollback begins.
enum Begin {
    Now,
    /// The one-off task (a migration) of the deployment in flight is stopped first: it runs the
    /// code being rolled back.
    StopTaskFirst(crate::state::OneOffRun),
    /// A native deployment in flight (rolling out this revision) is stopped through ECS first.
    StopFirst(String),
    /// After the replaced deployment's lease: its invocation may still have a call on its way.
    After(chrono::DateTime<chrono::Utc>),
}

impl Ctx<'_> {
    pub(super) fn alarm(&mut self, c: &AlarmChange) -> Outcome {
        if self.s.has_processed(&c.id) {
            return Outcome::Duplicate;
        }
        self.s.remember_event(&c.id);
        if c.state != AlarmState::Alarm {
            return Outcome::ignored(
                SkipKind::AlarmNotFiring,
                format!("{} is {:?}: nothing to roll back", c.alarm, c.state),
            );
        }
        if c.previous == Some(AlarmState::Alarm) {
            let words = format!("{} was already in ALARM: a repeat", c.alarm);
            return Outcome::ignored(SkipKind::AlarmNotFiring, words);
        }
        let why = format!(
            "alarm {} went to ALARM at {}: {}",
            c.alarm,
            c.at.format("%Y-%m-%d %H:%M:%S UTC"),
            c.reason
        );
        let outcome = match self.s.in_flight.clone() {
            Some(d) => self.alarm_in_flight(c, &d, why),
            None => self.alarm_after_release(c, why),
        };
        // Never held back, but counted: the bound is shared by everything the agent starts.
        if matches!(outcome, Outcome::Started { .. }) {
            self.count_automatic();
        }
        outcome
    }

    fn alarm_in_flight(&mut self, c: &AlarmChange, d: &Deployment, why: String) -> Outcome {
        if d.rollback.is_some() {
            let words = format!("{}: a rollback is already under way", c.alarm);
            return Outcome::ignored(SkipKind::RollbackUnderWay, words);
        }
        if c.at + CLOCK_SLACK < d.started_at {
            let words = format!("{} changed state before {} began", c.alarm, d.id);
            return Outcome::ignored(SkipKind::AlarmBeforeRelease, words);
        }
        self.roll_back_in_flight(why)
    }

    /// No deployment in flight: the release that completed last is to blame, if it completed
    /// within the rollback window and the alarm is not older than it.
    fn alarm_after_release(&mut self, c: &AlarmChange, why: String) -> Outcome {
        let Some(good) = self.s.last_known_good.clone() else {
            let note = "the agent has deployed nothing here yet";
            return self.alarm_noted(c, SkipKind::NothingDeployed, (&why, note));
        };
        if good.restored {
            let note =
                "the service is already back on its last known good; a rollback would not help";
            return self.alarm_noted(c, SkipKind::AlreadyRestored, (&why, note));
        }
        let last_ran = self.s.history.iter().find(|h| h.deployment_id.is_some());
        if last_ran.is_some_and(|h| h.verdict == Verdict::RollbackFailed) {
            let note = "the last rollback failed; a person must act";
            return self.alarm_noted(c, SkipKind::LastRollbackFailed, (&why, note));
        }
        if c.at + CLOCK_SLACK < good.started_at.unwrap_or(good.at) {
            let label = good.image.label();
            let words = format!("{} changed state before {label} was deployed", c.alarm);
            return Outcome::ignored(SkipKind::AlarmBeforeRelease, words);
        }
        let window = self.policy.alarms.window_minutes;
        if c.at - good.at > Duration::minutes(window.into()) {
            let note = format!(
                "{} completed at {}, more than {window} min before; not rolling back",
                good.image.label(),
                good.at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            return self.alarm_noted(c, SkipKind::AlarmOutsideWindow, (&why, &note));
        }
        self.roll_back_release(good, why)
    }

    /// Tells the team about an alarm the agent does not act on, and why.
    fn alarm_noted(
        &mut self,
        c: &AlarmChange,
        kind: SkipKind,
        (why, note): (&str, &str),
    ) -> Outcome {
        let reason = format!("{why}; {note}");
        let Some(g) = self.s.last_known_good.clone() else {
            return Outcome::ignored(kind, reason);
        };
        let id = format!("{}/alarm/{}", g.deployment_id, c.id);
        let arn = Some(g.task_definition_arn);
        let r = Some(reason.clone());
        self.notice_about(NoticeKind::Alarm, id, g.deployment_id, g.image, arn, r);
        Outcome::ignored(kind, reason)
    }

    /// A completed release caused it: its config if it was a config release (or ran with a
    /// config already marked bad: a person forced it), else its image.
    fn blame(&mut self, good: &KnownGood, why: &str) {
        let config = good.config.as_deref();
        if good.config_release || config.is_some_and(|c| self.bad_config(c).is_some()) {
            self.mark_config_bad(config, why);
        } else {
            self.mark_bad(&good.image, why);
        }
    }

    fn mark_bad(&mut self, image: &crate::image::Image, why: &str) {
        if self.s.bad(&image.digest).is_some() {
            return;
        }
        let bad = BadRelease {
            image: image.clone(),
            why: why.to_owned(),
            at: self.now,
        };
        self.s.bad_releases.insert(0, bad);
        self.s.forget_marks(self.policy.history_limit);
    }

    /// The deployment in flight caused it: stop it and go back to the last known good.
    fn roll_back_in_flight(&mut self, why: String) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            return Outcome::Stale;
        };
        let config = d.config.as_deref();
        let config_marked = config.is_some_and(|c| self.bad_config(c).is_some());
        if d.release.trigger.config_version().is_some() || config_marked {
            self.mark_config_bad(config, &why);
        } else {
            self.mark_bad(&d.release.image, &why);
        }
        // The rollback goes first; what is pending follows it.
        let pending = self.s.pending.take();
        // RunTask is a call too: its task may be started after the rollback began.
        let calling = matches!(d.phase.kind(), PhaseKind::Registering | PhaseKind::Updating)
            || matches!(d.phase, Phase::Migrating { task: None, .. });
        let begin = match (
            d.lease_until.filter(|until| calling && *until > self.now),
            &d.phase,
        ) {
            (Some(until), _) => Begin::After(until),
            // The service was never touched: the migration is what must stop.
            (
                None,
                Phase::Migrating {
                    task: Some(run), ..
                },
            ) => Begin::StopTaskFirst(run.clone()),
            (None, Phase::Migrating { .. }) => Begin::Now,
            (None, phase) if self.policy.native && phase.kind() != PhaseKind::Registering => {
                match phase.task_definition_arn() {
                    Some(arn) => Begin::StopFirst(arn.to_owned()),
                    None => Begin::Now,
                }
            }
            (None, _) => Begin::Now,
        };
        let outcome = match self.s.rollback_target() {
            Some(good) => {
                let reason = format!("{why}; returning to {}", good.image.label());
                self.finish(Verdict::RolledBack, Some(reason));
                self.start_rollback(good, d.release.image.label(), why, begin)
            }
            None => {
                let reason =
                    format!("{why}; there is no good release (not marked bad) to return to");
                self.finish(Verdict::RollbackFailed, Some(reason))
            }
        };
        self.s.pending = pending;
        outcome
    }

    /// A release that completed caused it: back to the good one before it.
    fn roll_back_release(&mut self, good: KnownGood, why: String) -> Outcome {
        self.blame(&good, &why);
        let Some(target) = self.s.good_before(&good) else {
            return self.nothing_to_return_to(good, &why);
        };
        let reason = format!(
            "{why}; rolling back to {} ({})",
            target.image.label(),
            target.task_definition_arn
        );
        let id = format!("{}/rolled_back", good.deployment_id);
        let arn = Some(good.task_definition_arn.clone());
        let (deployment, image) = (good.deployment_id.clone(), good.image.clone());
        self.notice_about(
            NoticeKind::RolledBack,
            id,
            deployment,
            image,
            arn,
            Some(reason),
        );
        self.set_previous(Some(target.image.label()));
        self.start_rollback(target, good.image.label(), why, Begin::Now)
    }

    /// An alarm after a release, with no earlier good release recorded: a person must act.
    fn nothing_to_return_to(&mut self, good: KnownGood, why: &str) -> Outcome {
        let reason = format!(
            "{why}; no earlier good release of {} is recorded to return to",
            self.s.service
        );
        let id = format!("{}/rollback_failed", good.deployment_id);
        let arn = Some(good.task_definition_arn.clone());
        let (deployment, image) = (good.deployment_id.clone(), good.image.clone());
        let r = Some(reason.clone());
        self.notice_about(NoticeKind::RollbackFailed, id, deployment, image, arn, r);
        self.record(HistoryEntry {
            deployment_id: Some(good.deployment_id.clone()),
            image: good.image.clone(),
            verdict: Verdict::RollbackFailed,
            task_definition_arn: Some(good.task_definition_arn.clone()),
            reason: Some(reason.clone()),
            at: self.now,
            gates: Vec::new(),
            config: good.config.clone(),
            bundle: good.bundle.clone(),
            rollback: false,
        });
        let points = (
            Point::Verdict(Verdict::Succeeded),
            Point::Verdict(Verdict::RollbackFailed),
        );
        let (deployment, digest) = (Some(good.deployment_id.clone()), Some(good.image.digest));
        self.journal_line(deployment, digest, points, reason);
        Outcome::Finished {
            deployment: good.deployment_id,
            verdict: Verdict::RollbackFailed,
        }
    }

    /// A deployment of a known revision: nothing to register; UpdateService (or, for a native
    /// deployment in flight, StopServiceDeployment first), or nothing yet while the deployment
    /// it replaces may still have a call on its way to ECS.
    fn start_rollback(
        &mut self,
        target: KnownGood,
        from: String,
        why: String,
        begin: Begin,
    ) -> Outcome {
        let id = self.mint_id(&target.image.digest);
        let release = Release {
            image: target.image.clone(),
            trigger: Trigger::Rollback { why: why.clone() },
            requested_at: self.now,
            force: true,
        };
        let arn = target.task_definition_arn.clone();
        let phase = Phase::Updating {
            task_definition_arn: arn.clone(),
        };
        let lease = self.now + self.policy.lease;
        let mut d = Deployment::new(id.clone(), release, phase, self.now, lease);
        d.config = target.config.clone();
        d.bundle = target.bundle.clone();
        d.rollback = Some(RollbackOf {
            release: from.clone(),
            why,
        });
        self.s.in_flight = Some(d);
        self.renew_lease();
        let note = format!("from {from} back to {} ({arn})", target.image.label());
        self.transition(Point::Rollback, PhaseKind::Updating, note);
        match begin {
            Begin::Now => self.run(Command::UpdateService {
                deployment: id.clone(),
                task_definition_arn: arn,
                adopt: false,
            }),
            Begin::StopFirst(replaced) => self.run(Command::StopRollout {
                deployment: id.clone(),
                task_definition_arn: replaced,
            }),
            Begin::StopTaskFirst(run) => {
                self.edit(|d| d.stop_first = Some(run.clone()));
                let reason = format!(
                    "stopped by harbormaster: the deployment it ran before was rolled back ({from})"
                );
                self.run(Command::StopOneOff {
                    deployment: id.clone(),
                    run,
                    reason: crate::text::clipped(&reason, 255),
                });
            }
            // The replaced deployment's invocation may have an UpdateService on its way: sent
            // now, the rollback's could land first and leave the service on the bad release.
            // Its lease ends after its calls can (leases outlast the function's timeout); then
            // the tick takes the rollback over, adopting what ECS runs.
            Begin::After(until) => {
                self.edit(|d| {
                    d.lease_until = Some(until);
                    d.lease_owner = None;
                });
                let note = format!(
                    "waits until {} for the replaced deployment's calls",
                    until.format("%H:%M:%S")
                );
                self.transition(PhaseKind::Updating, PhaseKind::Updating, note);
            }
        }
        Outcome::Started { deployment: id }
    }

    pub(super) fn rollback_requested(
        &mut self,
        to: Option<&str>,
        by: &str,
        force: bool,
    ) -> Outcome {
        let why = format!("rollback requested by {by}");
        if let Some(d) = self.s.in_flight.clone() {
            if d.rollback.is_some() {
                return Outcome::refused(Refusal::AlreadyARollback { deployment: d.id });
            }
            if to.is_some() {
                return Outcome::refused(Refusal::InFlight { deployment: d.id });
            }
            return self.roll_back_in_flight(why);
        }
        let Some(good) = self.s.last_known_good.clone() else {
            return Outcome::refused(Refusal::NothingRecorded);
        };
        let target = match to {
            None => self.s.good_before(&good),
            Some(r) => self.succeeded_revision(r),
        };
        let Some(target) = target else {
            return Outcome::refused(match to {
                Some(r) => Refusal::NotARevisionThatRan {
                    revision: r.to_owned(),
                },
                None => Refusal::NoEarlierGood,
            });
        };
        if target.task_definition_arn == good.task_definition_arn {
            let arn = target.task_definition_arn.clone();
            return Outcome::refused(Refusal::AlreadyOn { arn });
        }
        if let (Some(bad), false) = (self.s.bad(&target.image.digest), force) {
            return Outcome::refused(Refusal::RollbackToBad {
                label: target.image.label(),
                why: bad.why.clone(),
            });
        }
        self.blame(&good, &why);
        self.start_rollback(target, good.image.label(), why, Begin::Now)
    }

    /// A revision the service ran successfully, by ARN, `family:revision` or revision number.
    fn succeeded_revision(&self, r: &str) -> Option<KnownGood> {
        self.s
            .history
            .iter()
            .filter(|h| h.verdict == Verdict::Succeeded)
            .find(|h| {
                h.task_definition_arn.as_deref().is_some_and(|arn| {
                    arn == r || arn.ends_with(&format!("/{r}")) || arn.ends_with(&format!(":{r}"))
                })
            })
            .and_then(HistoryEntry::known_good)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::Observation;
    use crate::alarm::{AlarmChange, AlarmState};

    fn alarm(id: &str, state: AlarmState, minutes_ago: i64) -> Observation {
        Observation::AlarmChanged {
            change: AlarmChange {
                id: id.into(),
                alarm: "booking-dev-web-5xx".into(),
                arn: None,
                state,
                previous: Some(AlarmState::Ok),
                at: t0() - chrono::Duration::minutes(minutes_ago),
                reason: "Threshold Crossed".into(),
            },
        }
    }

    #[test]
    fn an_alarm_or_a_person_returns_the_service_to_its_last_known_good() {
        let rows = vec![
            Row {
                case: "an alarm during a deployment rolls it back to the last known good",
                state: stabilizing(),
                obs: alarm("al-1", AlarmState::Alarm, 0),
                outcome: "started",
                journal: &["stabilizing->rolled back", "rollback->updating"],
                command: "UpdateService",
            },
            Row {
                case: "an alarm from before the deployment began is not its fault",
                state: stabilizing(),
                obs: alarm("al-2", AlarmState::Alarm, 10),
                outcome: "ignored",
                journal: &[],
                command: "-",
            },
            Row {
                case: "an alarm going back to OK does nothing",
                state: stabilizing(),
                obs: alarm("al-3", AlarmState::Ok, 0),
                outcome: "ignored",
                journal: &[],
                command: "-",
            },
            Row {
                case: "after a release with nothing good before it, the rollback fails urgently",
                state: deployed(),
                obs: alarm("al-4", AlarmState::Alarm, 0),
                outcome: "finished",
                journal: &["succeeded->rollback failed"],
                command: "-",
            },
            Row {
                case: "a person's rollback with nothing recorded is refused",
                state: idle(),
                obs: Observation::RollbackRequested {
                    to: None,
                    by: "alice".into(),
                    force: false,
                },
                outcome: "refused",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a person's rollback of the deployment in flight",
                state: stabilizing(),
                obs: Observation::RollbackRequested {
                    to: None,
                    by: "alice".into(),
                    force: false,
                },
                outcome: "started",
                journal: &["stabilizing->rolled back", "rollback->updating"],
                command: "UpdateService",
            },
        ];
        check(&policy(), rows);
        let mut native = policy();
        native.native = true;
        check(
            &native,
            vec![Row {
                case: "a native deployment in flight is stopped through ECS first",
                state: stabilizing(),
                obs: alarm("al-5", AlarmState::Alarm, 0),
                outcome: "started",
                journal: &["stabilizing->rolled back", "rollback->updating"],
                command: "StopRollout",
            }],
        );
    }

    /// Finding 16: `bad_releases` was cut at `history_limit`, so behind 25 newer bad releases
    /// an old one could be chosen as a rollback target again. A release stays marked bad while
    /// any record of it remains.
    #[test]
    fn finding_16_a_release_marked_bad_long_ago_is_never_a_rollback_target_again() {
        use crate::state::{BadRelease, HistoryEntry, Verdict};
        let entry = |fill: char, td: &str, minutes: i64| HistoryEntry {
            deployment_id: Some(crate::state::DeploymentId(format!("d-{fill}"))),
            image: image(fill, 600),
            verdict: Verdict::Succeeded,
            task_definition_arn: Some(td.into()),
            reason: None,
            at: t0() - chrono::Duration::minutes(minutes),
            gates: Vec::new(),
            config: Some("config-1".into()),
            bundle: None,
            rollback: false,
        };
        let bad = |fill: char| BadRelease {
            image: image(fill, 600),
            why: "alarm".into(),
            at: t0(),
        };
        // History, newest first: h (the last known good, marked bad since: a rollback from it
        // failed), x (marked bad long ago), g (good).
        let mut s = stabilizing();
        s.history.clear();
        for (fill, td, minutes) in [('9', "arn:td/web:g", 30), ('8', "arn:td/web:x", 20)] {
            s.record(entry(fill, td, minutes), 25);
        }
        s.record(entry('7', TD1, 10), 25);
        if let Some(g) = s.last_known_good.as_mut() {
            g.image = image('7', 600);
        }
        // 24 other releases marked bad since x; h the newest.
        let others = "0123456acdef0123456acdef".chars().map(|c| {
            let mut b = bad(c);
            b.image.repository = format!("other/{c}");
            b
        });
        s.bad_releases = std::iter::once(bad('7')).chain(others).collect();
        s.bad_releases.push(bad('8'));
        assert_eq!(s.bad_releases.len(), 26);
        let step = super::super::decide(&s, &alarm("al-16", AlarmState::Alarm, 0), t0(), &policy());
        let st = &step.state;
        assert!(
            st.bad(&image('8', 600).digest).is_some(),
            "x is still marked bad"
        );
        let target = st.in_flight.as_ref().and_then(|d| d.task_definition_arn());
        assert_eq!(target, Some("arn:td/web:g"), "back to g, never to x");
    }
}
