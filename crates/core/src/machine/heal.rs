//! Heals: putting back a service changed outside git (`self_heal`). The environment's consent
//! is not enough: a heal that fights another tool, or a circuit breaker that returns to the
//! console's revision, must not redeploy for ever. So heals are counted per git config (at most
//! [`MAX_HEALS`] a day), spaced out (5, 10, 20 minutes…), and after a heal fails the agent stops
//! healing — saying so once — until the drift or git changes.

use chrono::Duration;

use super::context::Ctx;
use super::{Outcome, SkipKind};
use crate::notify::NoticeKind;
use crate::state::{HealStop, Healing, Release};

/// Heals of one config in a day; then a person must look.
pub const MAX_HEALS: u32 = 3;
/// Between two heals: this, doubled after each.
const FIRST_WAIT_MINUTES: i64 = 5;
/// A quiet day forgets the count.
const MEMORY_HOURS: i64 = 24;

impl Ctx<'_> {
    /// Why the heal of the current drift does not start now, if it does not; else it is counted.
    pub(super) fn refuse_heal(&mut self, release: &Release) -> Option<Outcome> {
        let drifted = self.s.drift.as_ref()?.task_definition_arn.clone();
        let config = release.trigger.config_version().map(str::to_owned);
        let now = self.now;
        let h = self.s.healing.get_or_insert_with(|| Healing {
            count: 0,
            since: now,
            last: now,
            config: config.clone(),
            stopped: None,
        });
        let stale = h.config != config || now - h.last > Duration::hours(MEMORY_HOURS);
        if (h.stopped.as_ref()).is_some_and(|s| s.failed && s.task_definition_arn != drifted) {
            // Another drift than the one whose heal failed: it may be healed (counted on).
            h.stopped = None;
        }
        if stale {
            *h = Healing {
                count: 0,
                since: now,
                last: now,
                config,
                stopped: None,
            };
        }
        if let Some(stop) = &h.stopped {
            let reason = format!("not healed: {}", stop.why);
            return Some(Outcome::ignored(SkipKind::HealStopped, reason));
        }
        if h.count >= MAX_HEALS {
            let why = format!(
                "{} heals since {} and the service drifted again: self_heal no longer heals here until git changes or a day passes without a heal",
                h.count,
                h.since.format("%Y-%m-%d %H:%M UTC")
            );
            return Some(self.stop_healing(drifted, why, false));
        }
        let wait = Duration::minutes(FIRST_WAIT_MINUTES << h.count.saturating_sub(1).min(8));
        if h.count > 0 && now < h.last + wait {
            let at = (h.last + wait).format("%H:%M UTC");
            let reason = format!("the next heal waits until {at}");
            return Some(Outcome::ignored(SkipKind::HealWaits, reason));
        }
        h.count += 1;
        h.last = now;
        None
    }

    /// A heal failed (`failed`: no more heals of this drift, said in the failed deployment's
    /// notice) or too many were needed (no more heals, said in a notice of its own): once.
    pub(super) fn stop_healing(&mut self, drifted: String, why: String, failed: bool) -> Outcome {
        if let Some(h) = self.s.healing.as_mut() {
            h.stopped = Some(HealStop {
                task_definition_arn: drifted.clone(),
                why: why.clone(),
                failed,
            });
        }
        if !failed {
            if let Some(g) = self.s.last_known_good.clone() {
                let id = format!("{}/heal-stopped/{drifted}", g.deployment_id);
                let arn = Some(g.task_definition_arn);
                let (d, image) = (g.deployment_id, g.image);
                self.notice_about(NoticeKind::Drift, id, d, image, arn, Some(why.clone()));
            }
        }
        Outcome::ignored(SkipKind::HealStopped, why)
    }

    /// The heal in flight ended in failure: the words its notice ends with.
    pub(super) fn heal_failed(&mut self) -> Option<String> {
        let drifted = self.s.drift.as_ref()?.task_definition_arn.clone();
        let why = format!(
            "the heal failed; self_heal no longer heals this drift ({drifted}) until it or git changes"
        );
        self.stop_healing(drifted, why.clone(), true);
        Some(why)
    }
}
