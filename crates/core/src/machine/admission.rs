//! Admission: a release comes in (a push, a person's request, a push the tick found, a config
//! git changed, a heal) and is deployed now, queued behind the deployment in flight, left to
//! settle, held while a guard alarm fires or git's config is marked bad, or ignored — and the
//! one it replaces is recorded as superseded.
//!
//! Every automatic release comes through this door, and only here are the environment's gate
//! ([`super::Gate`]), the failures remembered per (image, config version) and the bounds
//! applied: a new kind of automatic action gets all of them by coming in as an [`Admission`].
//! A person's request passes the gate; an alarm's rollback (`rollback.rs`) is never gated.

use std::cmp::Ordering;

use chrono::Duration;

use super::context::Ctx;
use super::Refusal;
use super::{Command, Outcome, Point, SkipKind};
use crate::image::{Image, ImageOrder};
use crate::notify::NoticeKind;
use crate::state::{
    Deployment, GuardWait, HistoryEntry, Pending, Phase, PhaseKind, Release, ServiceState, Trigger,
    Verdict, Wait,
};

/// How a release came in decides which checks it passes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// A push event: must not be older than what was accepted, nor what runs already.
    Pushed,
    /// Found by reconciling (already compared on ECR's clock): must not be what runs already.
    Reconciled,
    /// Asked for by a person: deployed as asked (a redeploy of the same image included).
    Requested,
    /// Git's config changed for the image that runs: only where the environment releases
    /// config by itself, never a version rolled back or failed with this image.
    Config,
    /// Putting back a change made outside git: with the environment's consent, bounded.
    Heal,
    /// Putting back what a late call of the agent's own changed: always, bounded as heals.
    Repair,
}

/// The image a lost push event would have announced: the newest of the listing, if it is newer
/// than the accepted one *by the listing's own clock*. Event times and ECR's push times come from
/// different clocks and are never compared with each other here.
fn lost_push(s: &ServiceState, images: &[Image], order: ImageOrder) -> Option<Image> {
    // Without a reference point the agent would deploy whatever is newest in the repository on
    // its first tick, which nobody asked for.
    let accepted = s.newest_accepted.as_ref()?;
    let reference = images
        .iter()
        .find(|i| i.digest == accepted.digest)
        .unwrap_or(accepted);
    let newest = images.iter().max_by(|a, b| order.compare(a, b))?;
    let tied = images
        .iter()
        .any(|i| i.digest != newest.digest && order.compare(i, newest) == Ordering::Equal);
    // A tie means two images were pushed in the same second: which one is newer is unknown, so
    // the tick leaves it to the push events rather than guess.
    (!tied && newest.digest != accepted.digest && order.is_newer(newest, reference))
        .then(|| newest.clone())
}

impl Ctx<'_> {
    pub(super) fn pushed(&mut self, event_id: &str, image: &Image) -> Outcome {
        if self.s.has_processed(event_id) {
            return Outcome::Duplicate;
        }
        self.s.remember_event(event_id);
        let trigger = Trigger::Push {
            event_id: event_id.to_owned(),
        };
        self.accept(self.release(image, trigger, false), Admission::Pushed)
    }

    pub(super) fn requested(&mut self, image: &Image, by: &str, force: bool) -> Outcome {
        let trigger = Trigger::Request { by: by.to_owned() };
        self.accept(self.release(image, trigger, force), Admission::Requested)
    }

    pub(super) fn listed(&mut self, images: &[Image]) -> Outcome {
        match lost_push(&self.s, images, self.policy.order) {
            Some(image) => {
                let release = self.release(&image, Trigger::Reconcile, false);
                self.accept(release, Admission::Reconciled)
            }
            None => Outcome::Nothing,
        }
    }

    fn release(&self, image: &Image, trigger: Trigger, force: bool) -> Release {
        Release {
            image: image.clone(),
            trigger,
            requested_at: self.now,
            force,
        }
    }

    /// A release arrives: deploy it now, queue it, or ignore it.
    pub(super) fn accept(&mut self, release: Release, admission: Admission) -> Outcome {
        if let Some(refusal) = self.refuse(&release, admission) {
            return refusal;
        }
        if matches!(
            admission,
            Admission::Config | Admission::Heal | Admission::Repair
        ) {
            // The image that runs: no watermark to raise, no burst to settle.
            return self.begin(Pending::new(release));
        }
        let raise_watermark = match &self.s.newest_accepted {
            // Found by reconciling: already known to be newer, on ECR's clock.
            _ if admission == Admission::Reconciled => true,
            Some(n) => self.policy.order.compare(&release.image, n) != Ordering::Less,
            None => true,
        };
        if raise_watermark {
            self.s.newest_accepted = Some(release.image.clone());
        }
        let settling = (self.s.pending.as_ref())
            .and_then(Pending::settling_until)
            .filter(|until| *until > self.now);
        if admission == Admission::Pushed
            && self.s.in_flight.is_none()
            && (settling.is_some() || self.policy.settle > Duration::zero())
        {
            // The window runs from the burst's first push, so a steady stream of pushes cannot
            // hold deployments off for ever.
            let until = settling.unwrap_or(self.now + self.policy.settle);
            let note = format!(
                "deploys at {} unless a newer push arrives first",
                until.format("%H:%M:%S UTC")
            );
            let wait = Wait::Settling { until };
            return self.queue(Pending { release, wait }, Point::Settling, note);
        }
        if self.s.in_flight.is_some() {
            let note = "a deployment is in flight; this release follows it";
            self.queue(Pending::new(release), Point::Pending, note.into())
        } else {
            self.begin(Pending::new(release))
        }
    }

    /// Why `release` is not taken, if it is not: the environment's gate, marked bad, already
    /// deploying or pending, already deployed, failed before, accepted before, or older than
    /// what was accepted.
    pub(super) fn refuse(&mut self, release: &Release, admission: Admission) -> Option<Outcome> {
        if let Some(closed) = self.gate_closed(admission) {
            return Some(closed);
        }
        if let Some(bounded) = self.over_bound(admission, release) {
            return Some(bounded);
        }
        let digest = &release.image.digest;
        if let Some(bad) = self.s.bad(digest).filter(|_| !release.force).cloned() {
            let label = release.image.label();
            // A person asked for it: told no. A push or a reconcile just does not deploy it.
            if admission == Admission::Requested {
                let why = bad.why.clone();
                return Some(Outcome::Refused {
                    reason: Refusal::MarkedBad { label, why },
                });
            }
            let reason = format!("{label} is marked bad ({}); it is not deployed again by itself (a person can, with --force)", bad.why);
            if admission == Admission::Pushed {
                let about = self.deployment_of(digest);
                self.notice_now(NoticeKind::Ignored, about, release.image.clone(), &reason);
            }
            return Some(Outcome::ignored(SkipKind::MarkedBad, reason));
        }
        if let Some(d) = self
            .s
            .in_flight
            .as_ref()
            .filter(|d| &d.release.image.digest == digest)
        {
            let reason = format!("{} is already being deployed ({})", digest.short(), d.id);
            return Some(Outcome::ignored(SkipKind::AlreadyBeingDeployed, reason));
        }
        if self
            .s
            .pending
            .as_ref()
            .is_some_and(|p| &p.release.image.digest == digest)
        {
            let words = format!("{} is already pending", digest.short());
            return Some(Outcome::ignored(SkipKind::AlreadyPending, words));
        }
        let idle = self.s.in_flight.is_none() && self.s.pending.is_none();
        let deployed = self
            .s
            .last_known_good
            .as_ref()
            .is_some_and(|g| &g.image.digest == digest);
        let pushed = matches!(admission, Admission::Pushed | Admission::Reconciled);
        if pushed && idle && deployed {
            let words = format!("{} is already deployed", digest.short());
            return Some(Outcome::ignored(SkipKind::AlreadyDeployed, words));
        }
        match admission {
            Admission::Pushed => self.refuse_push(release),
            Admission::Config => self.refuse_config(release),
            Admission::Heal | Admission::Repair => self.refuse_heal(release),
            // A person is told no, where a push would be held.
            Admission::Requested => self.held_by_config(release).map(Outcome::refused),
            Admission::Reconciled => None,
        }
    }

    fn refuse_push(&mut self, release: &Release) -> Option<Outcome> {
        let newest = self.s.newest_accepted.clone()?;
        let digest = &release.image.digest;
        if &newest.digest == digest {
            // The image was accepted before (pushed again under another tag, or re-pushed after
            // its deployment failed): not a new release. A person can still deploy it.
            let verdict = self
                .s
                .history
                .iter()
                .find(|h| &h.image.digest == digest && h.deployment_id.is_some())
                .map(|h| format!("; its last deployment {}", h.verdict))
                .unwrap_or_default();
            let reason = format!("{} was already accepted{verdict}", newest.label());
            return Some(Outcome::ignored(SkipKind::AlreadyAccepted, reason));
        }
        // Same second, other digest: both are "the latest"; the later processed wins.
        if self.policy.order.compare(&release.image, &newest) == Ordering::Less {
            let reason = format!("older than {}, which was already accepted", newest.label());
            self.supersede(&release.image, Point::Received, &reason);
            return Some(Outcome::ignored(SkipKind::Older, reason));
        }
        None
    }

    /// Makes `p` the pending release, replacing (as superseded) what waited there.
    fn queue(&mut self, p: Pending, to: Point, note: String) -> Outcome {
        let label = p.release.image.label();
        if let Some(old) = self.s.pending.take() {
            let reason = format!("replaced by {label} before it started");
            self.supersede(&old.release.image, Point::Pending, &reason);
        }
        let digest = Some(p.release.image.digest.clone());
        self.journal_line(None, digest, (Point::Received, to), note);
        self.s.pending = Some(p);
        Outcome::Queued
    }

    /// Starts a release unless git's config is marked bad (a new image would carry it: it
    /// waits for git to change) or a guard alarm may be firing: then it waits its turn while
    /// CloudWatch is asked (a release already held stays held, its timeout counting on).
    pub(super) fn begin(&mut self, p: Pending) -> Outcome {
        if let Some(held) = self.held_by_config(&p.release) {
            let digest = Some(p.release.image.digest.clone());
            self.journal_line(
                None,
                digest,
                (Point::Pending, Point::Held),
                held.to_string(),
            );
            self.s.pending = Some(p);
            return Outcome::Queued;
        }
        if self.policy.alarms.guards.is_empty() || p.release.force {
            return self.start(p.release);
        }
        let wait = match p.wait {
            Wait::Held(g) => Wait::Held(g),
            _ => Wait::Turn,
        };
        self.s.pending = Some(Pending { wait, ..p });
        self.run(Command::CheckGuards);
        Outcome::Queued
    }

    pub(super) fn guards_checked(&mut self, firing: &[String]) -> Outcome {
        if self.s.in_flight.is_some() {
            return Outcome::Stale;
        }
        let Some(p) = self.s.pending.clone() else {
            return Outcome::Nothing;
        };
        if firing.is_empty() {
            self.s.pending = None;
            return self.start(p.release);
        }
        let held = p.held().map(|g| g.since);
        let since = held.unwrap_or(self.now);
        let minutes = self.policy.alarms.guard_timeout_minutes;
        let alarms = firing.join(", ");
        if self.now - since >= Duration::minutes(minutes.into()) {
            return self.give_up_held(p.release, &alarms);
        }
        if held.is_none() {
            let note = format!("guard alarms in ALARM: {alarms}; it deploys when they clear (gives up after {minutes} min)");
            let digest = Some(p.release.image.digest.clone());
            self.journal_line(None, digest, (Point::Pending, Point::Held), note);
        }
        let alarms = firing.to_vec();
        let wait = Wait::Held(GuardWait { since, alarms });
        self.s.pending = Some(Pending { wait, ..p });
        Outcome::Queued
    }

    /// A release held past the guard timeout is not deployed: recorded failed, the team told.
    fn give_up_held(&mut self, p: Release, alarms: &str) -> Outcome {
        let minutes = self.policy.alarms.guard_timeout_minutes;
        let reason = format!(
            "guard alarms still in ALARM after {minutes} min: {alarms}; not deployed (deploy it again when they clear, or with --force)"
        );
        self.s.pending = None;
        self.skipped(&p.image, Verdict::Failed, &reason);
        if let Some(version) = p.trigger.config_version() {
            self.remember_failure(&p.image, version, &reason);
        }
        let digest = Some(p.image.digest.clone());
        let to = Point::Verdict(Verdict::Failed);
        self.journal_line(None, digest, (Point::Held, to), reason.clone());
        let about = crate::notify::Subject::held(&p.image.digest);
        self.notice_now(NoticeKind::Failed, about, p.image.clone(), &reason);
        Outcome::ignored(SkipKind::GuardsStillFiring, reason)
    }

    /// A release that will never be deployed: in the history, with why.
    pub(super) fn supersede(&mut self, image: &Image, from: Point, reason: &str) {
        self.skipped(image, Verdict::Superseded, reason);
        let to = Point::Verdict(Verdict::Superseded);
        self.journal_line(None, Some(image.digest.clone()), (from, to), reason);
    }

    /// A history entry for a release that never reached ECS.
    fn skipped(&mut self, image: &Image, verdict: Verdict, reason: &str) {
        self.record(HistoryEntry {
            deployment_id: None,
            image: image.clone(),
            verdict,
            task_definition_arn: None,
            reason: Some(reason.to_owned()),
            config: None,
            bundle: None,
            at: self.now,
            gates: Vec::new(),
            rollback: false,
        });
    }

    /// The deployment begins: its intent is recorded with a lease, then the revision registered.
    fn start(&mut self, release: Release) -> Outcome {
        let id = self.mint_id(&release.image.digest);
        let image = release.image.clone();
        let lease = self.now + self.policy.lease;
        let config = (release.trigger.config_version().map(str::to_owned))
            .or_else(|| self.policy.config_version.clone());
        let origin = (self.policy.config_origin.as_deref())
            .map(|o| format!(", {o}"))
            .unwrap_or_default();
        let why = match &release.trigger {
            Trigger::Config { version } => Some(format!(
                "the config in git changed for the image it runs (version {}{origin})",
                super::config::short_version(version),
            )),
            Trigger::Heal { version } => Some(format!(
                "putting back what git says (self_heal, heal {} of at most {}; version {}{origin})",
                self.s.healing.as_ref().map_or(1, |h| h.count),
                super::MAX_HEALS,
                super::config::short_version(version),
            )),
            _ => None,
        };
        // Pushes and requests are someone's intent; what the agent starts of its own accord counts.
        if matches!(
            release.trigger,
            Trigger::Config { .. } | Trigger::Heal { .. } | Trigger::Reconcile
        ) {
            self.count_automatic();
        }
        let mut d = Deployment::new(id.clone(), release, Phase::Registering, self.now, lease);
        d.config = config;
        d.bundle = self.policy.bundle.clone();
        self.s.in_flight = Some(d);
        self.renew_lease();
        self.transition(
            Point::Pending,
            PhaseKind::Registering,
            why.clone().unwrap_or_default(),
        );
        self.notify(NoticeKind::Started, why);
        self.run(Command::RegisterRevision {
            deployment: id.clone(),
            image,
        });
        Outcome::Started { deployment: id }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::Observation;

    fn pushed(id: &str, fill: char, secs: i64) -> Observation {
        Observation::ImagePushed {
            event_id: id.into(),
            image: image(fill, secs),
        }
    }

    #[test]
    fn admission_decides_whether_a_release_starts_waits_or_is_ignored() {
        let mut seen = deployed();
        seen.remember_event("e-1");
        let mut guarded = policy();
        guarded.alarms.guards = vec!["db-cpu".into()];
        let mut pending = idle();
        pending.pending = Some(crate::state::Pending::new(crate::state::Release {
            image: image('c', 30),
            trigger: crate::state::Trigger::Reconcile,
            requested_at: t0(),
            force: false,
        }));
        let rows = vec![
            Row {
                case: "a newer push to an idle service starts at once",
                state: deployed(),
                obs: pushed("e-1", 'c', 30),
                outcome: "started",
                journal: &["pending->registering"],
                command: "RegisterRevision",
            },
            Row {
                case: "a redelivered event changes nothing",
                state: seen,
                obs: pushed("e-1", 'c', 30),
                outcome: "duplicate",
                journal: &[],
                command: "-",
            },
            Row {
                case: "an image older than the accepted one is superseded",
                state: deployed(),
                obs: pushed("e-2", 'e', 3600),
                outcome: "ignored",
                journal: &["received->superseded"],
                command: "-",
            },
            Row {
                case: "the image already running is not a new release",
                state: deployed(),
                obs: pushed("e-3", 'a', 600),
                outcome: "ignored",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a push while a deployment is in flight waits behind it",
                state: stabilizing(),
                obs: pushed("e-4", 'c', 30),
                outcome: "queued",
                journal: &["received->pending"],
                command: "-",
            },
            Row {
                case: "a person may redeploy what runs",
                state: deployed(),
                obs: Observation::DeployRequested {
                    image: image('a', 600),
                    by: "alice".into(),
                    force: false,
                },
                outcome: "started",
                journal: &["pending->registering"],
                command: "RegisterRevision",
            },
            Row {
                case: "the tick finds a newer image whose push event was lost",
                state: deployed(),
                obs: Observation::ImagesListed {
                    images: vec![image('a', 600), image('c', 30)],
                },
                outcome: "started",
                journal: &["pending->registering"],
                command: "RegisterRevision",
            },
            Row {
                case: "nothing newer in ECR: nothing to do",
                state: deployed(),
                obs: Observation::ImagesListed {
                    images: vec![image('a', 600)],
                },
                outcome: "nothing",
                journal: &[],
                command: "-",
            },
            Row {
                case: "a firing guard holds a pending release",
                state: pending,
                obs: Observation::GuardsChecked {
                    firing: vec!["db-cpu".into()],
                },
                outcome: "queued",
                journal: &["pending->held"],
                command: "-",
            },
        ];
        check(&policy(), rows);
        // With guard alarms, a release first asks CloudWatch.
        check(
            &guarded,
            vec![Row {
                case: "guard alarms are read before a release starts",
                state: deployed(),
                obs: pushed("e-5", 'c', 30),
                outcome: "queued",
                journal: &[],
                command: "CheckGuards",
            }],
        );
    }
}
