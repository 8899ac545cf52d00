//! The environment's gate and what the agent remembers of its own releases: what an
//! environment does not let happen by itself (`auto_deploy`, `config_releases`, `self_heal`,
//! `promote_from`), a config version an alarm rolled back or whose release failed with this
//! image, and a new image held while git's config is one an alarm rolled back. Admission
//! (`admission.rs`) asks these; nothing else starts a release.

use chrono::Duration;

use super::admission::Admission;
use super::context::Ctx;
use super::Refusal;
use super::{Outcome, Skip, SkipKind};
use crate::config::ConfigReleases;
use crate::notify::NoticeKind;
use crate::state::{Release, Trigger};

/// Deployments the agent may start of its own accord for one service in an hour (config
/// releases, heals, repairs, lost pushes found, alarm rollbacks): past it, the first four wait
/// and the team hears of it once. A person, a push and an alarm's rollback still go (a
/// rollback still counts).
pub const MAX_AUTOMATIC_PER_HOUR: usize = 6;

impl Ctx<'_> {
    /// The environment's gate: what it does not let happen by itself is not done (said in the
    /// report and, for config, in `status`; nothing is sent each minute).
    pub(super) fn gate_closed(&self, admission: Admission) -> Option<Outcome> {
        let env = &self.s.environment;
        let gate = self.policy.gate;
        let reason = match admission {
            Admission::Pushed | Admission::Reconciled if !gate.pushes => format!(
                "auto_deploy = false in `{env}`: pushes deploy here only when a person or the pipeline asks"
            ),
            Admission::Config if gate.config == ConfigReleases::Manual => {
                let version = self.policy.config_version.as_deref().unwrap_or_default();
                format!(
                    "git's config {} is pending: config_releases = \"manual\" in `{env}`; `harbormaster deploy --env {env} --service {} --config-only` releases it",
                    super::config::short_version(version),
                    self.s.service
                )
            }
            Admission::Heal if !gate.self_heal => format!("self_heal is off in `{env}`"),
            _ => return None,
        };
        Some(Outcome::Ignored {
            reason: Skip::new(SkipKind::GateClosed, reason),
        })
    }

    /// A config release of the image that runs: not a version an alarm rolled back, nor one
    /// whose release with this image failed (the team heard of that once, when it failed).
    pub(super) fn refuse_config(&mut self, release: &Release) -> Option<Outcome> {
        let version = release.trigger.config_version()?;
        let short = super::config::short_version(version);
        if let Some(source) = &self.policy.promote_from {
            let reason = match &self.promotion {
                Some(super::Promotion::Succeeded) => None,
                Some(super::Promotion::NotYet(why)) => Some(why.clone()),
                None => Some(format!(
                    "whether git's config succeeded in `{source}` is not known yet (promote_from)"
                )),
            };
            if let Some(reason) = reason {
                return Some(Outcome::Ignored {
                    reason: Skip::new(SkipKind::NotPromotedYet, reason),
                });
            }
        }
        if let Some(bad) = self.bad_config(version) {
            let reason = format!("git's config {short} was rolled back ({}); it is released again only when git changes or a person deploys it", bad.why);
            return Some(Outcome::Ignored {
                reason: Skip::new(SkipKind::ConfigRolledBack, reason),
            });
        }
        let failed = self.s.failed(&release.image.digest, version)?;
        let reason = format!(
            "git's config {short} failed with {} at {} ({}); it is released again only when git changes or a person deploys it",
            release.image.label(),
            failed.at.format("%Y-%m-%d %H:%M UTC"),
            failed.why
        );
        Some(Outcome::Ignored {
            reason: Skip::new(SkipKind::ConfigFailed, reason),
        })
    }

    /// Why a new image may not start now: git's config for this target is one an alarm rolled
    /// back, and the image would carry it (then the next alarm would blame the image). A
    /// person's `--force` deploys it anyway; a newer config in git releases it.
    pub(super) fn held_by_config(&self, release: &Release) -> Option<Refusal> {
        let carries_git = matches!(
            release.trigger,
            Trigger::Push { .. } | Trigger::Reconcile | Trigger::Request { .. }
        );
        let version = self.policy.config_version.as_deref()?;
        let bad = self
            .bad_config(version)
            .filter(|_| carries_git && !release.force)?;
        Some(Refusal::ConfigRolledBack {
            version: super::config::short_version(version).to_owned(),
            why: bad.why.clone(),
            label: release.image.label(),
        })
    }

    /// Counts a deployment the agent started by itself now (the last hour's are kept).
    pub(super) fn count_automatic(&mut self) {
        let hour_ago = self.now - Duration::hours(1);
        self.s.automatic.retain(|at| *at > hour_ago);
        self.s.automatic.push(self.now);
        let excess = self
            .s
            .automatic
            .len()
            .saturating_sub(MAX_AUTOMATIC_PER_HOUR);
        self.s.automatic.drain(..excess);
    }

    /// The bound every automatic kind shares: past it, an action the agent would take of its
    /// own accord waits for the hour to pass (said once).
    pub(super) fn over_bound(
        &mut self,
        admission: Admission,
        release: &Release,
    ) -> Option<Outcome> {
        let own_accord = matches!(
            admission,
            Admission::Config | Admission::Heal | Admission::Repair | Admission::Reconciled
        );
        let hour_ago = self.now - Duration::hours(1);
        let recent: Vec<_> = (self.s.automatic.iter())
            .filter(|at| **at > hour_ago)
            .collect();
        if !own_accord || recent.len() < MAX_AUTOMATIC_PER_HOUR {
            return None;
        }
        let until = *recent[0] + Duration::hours(1);
        let reason = format!(
            "{} deployments started by the agent itself in the last hour (alarm rollbacks included): nothing more of its own accord until {} — look at `harbormaster status`",
            recent.len(),
            until.format("%H:%M UTC")
        );
        if self.s.bound_said.is_none_or(|at| at <= hour_ago) {
            self.s.bound_said = Some(self.now);
            let about = self.deployment_of(&release.image.digest);
            self.notice_now(NoticeKind::Ignored, about, release.image.clone(), &reason);
        }
        Some(Outcome::Ignored {
            reason: Skip::new(SkipKind::OverBound, reason),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::SkipKind;
    use super::super::{decide, Observation, Outcome};
    use super::MAX_AUTOMATIC_PER_HOUR;
    use crate::notify::NoticeKind;

    /// Every automatic kind shares one bound, alarm rollbacks counted in: past it, a config
    /// release waits for the hour (said once), while an alarm's rollback still goes.
    #[test]
    fn past_the_hours_bound_the_agent_starts_nothing_of_its_own_accord_and_says_so_once() {
        let mut s = deployed();
        s.automatic = (0..MAX_AUTOMATIC_PER_HOUR as i64)
            .map(|m| t0() - chrono::Duration::minutes(50 - m))
            .collect();
        let mut p = policy();
        p.config_version = Some("config-2".into());
        let check = Observation::ConfigCheck { promotion: None };
        let first = decide(&s, &check, t0(), &p);
        assert!(
            matches!(&first.outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::OverBound && reason.words().contains("until 12:10 UTC")),
            "{:?}",
            first.outcome
        );
        assert_eq!(first.notices.len(), 1);
        assert_eq!(first.notices[0].kind, NoticeKind::Ignored);
        let again = decide(
            &first.state,
            &check,
            t0() + chrono::Duration::minutes(1),
            &p,
        );
        assert!(matches!(again.outcome, Outcome::Ignored { .. }));
        assert!(again.notices.is_empty(), "said once");
        // After the oldest start leaves the hour, the release goes.
        let later = decide(
            &again.state,
            &check,
            t0() + chrono::Duration::minutes(11),
            &p,
        );
        assert!(
            matches!(later.outcome, Outcome::Started { .. }),
            "{:?}",
            later.outcome
        );
        // The two that left the hour are forgotten; the new start is counted.
        assert_eq!(later.state.automatic.len(), MAX_AUTOMATIC_PER_HOUR - 1);
    }
}
