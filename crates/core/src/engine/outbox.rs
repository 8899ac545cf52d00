//! Delivering the outbox: each notice is claimed in the document (compare-and-swap) before it
//! is published — in the same write as the step that queued it, so a deployment's start costs
//! no write of its own — and of many invocations running at once only the claimant sends it; a claim
//! lapses after [`CLAIM`], so a crash between claiming and publishing delays the notice, never
//! loses it (at least once). SNS refusing a notice for good (or [`MAX_ATTEMPTS`] times) sets
//! it aside with the error, and the outbox never holds more than [`OUTBOX_MAX`].

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use crate::state::{ServiceState, Undelivered, UNDELIVERED_KEPT};

/// How long a claim holds: longer than one Publish with the SDK's retries.
pub(super) const CLAIM: Duration = Duration::seconds(60);
/// Attempts before a notice SNS keeps refusing (throttled, down) is set aside.
pub(super) const MAX_ATTEMPTS: u32 = 10;
/// Notices waiting at most; beyond, the oldest are set aside (SNS has been refusing them).
pub(super) const OUTBOX_MAX: usize = 50;

/// What this invocation learnt about the outbox, applied to whichever version of the document
/// it writes next (its own, or a fresher one after a conflict).
#[derive(Default)]
pub(super) struct Delivery {
    /// Taken by SNS.
    pub sent: BTreeSet<String>,
    /// Claimed by this invocation: it may try them again without waiting for the claim to lapse.
    pub mine: BTreeSet<String>,
    /// Refused for good: to move out of the outbox.
    pub set_aside: Vec<Undelivered>,
    /// Failed for now: the claim is given up so the next invocation tries at once.
    pub released: BTreeSet<String>,
}

impl Delivery {
    /// Claims, in `state`, what this invocation may publish now: notices nobody claimed, whose
    /// claim lapsed, or that it claimed itself. Returns their ids.
    pub fn claim(&mut self, state: &mut ServiceState, now: DateTime<Utc>) -> Vec<String> {
        self.bound(state, now);
        let mut ids = Vec::new();
        for n in &mut state.outbox {
            let free =
                n.claimed_until.is_none_or(|until| until <= now) || self.mine.contains(&n.id);
            if free && !self.sent.contains(&n.id) {
                n.claimed_until = Some(now + CLAIM);
                n.attempts += 1;
                ids.push(n.id.clone());
            }
        }
        ids
    }

    /// Sets aside what exceeds [`OUTBOX_MAX`], oldest first.
    fn bound(&mut self, state: &ServiceState, now: DateTime<Utc>) {
        let over = state.outbox.len().saturating_sub(OUTBOX_MAX);
        for n in state.outbox.iter().take(over) {
            let error = format!("the outbox held more than {OUTBOX_MAX} notifications");
            self.set_aside(n, error, now);
        }
    }

    pub fn set_aside(&mut self, n: &crate::notify::Notification, error: String, at: DateTime<Utc>) {
        self.set_aside.push(Undelivered {
            id: n.id.clone(),
            subject: n.subject(),
            error: crate::text::clipped(&error, crate::text::MAX_REASON),
            at,
        });
    }

    /// Applies what this invocation learnt to `state`. Returns whether it changed.
    pub fn apply(&self, state: &mut ServiceState) -> bool {
        let gone: BTreeSet<&str> = self.set_aside.iter().map(|u| u.id.as_str()).collect();
        let before = state.outbox.len();
        state
            .outbox
            .retain(|n| !self.sent.contains(&n.id) && !gone.contains(n.id.as_str()));
        let mut changed = state.outbox.len() != before;
        for n in &mut state.outbox {
            if self.released.contains(&n.id) && n.claimed_until.is_some() {
                n.claimed_until = None;
                changed = true;
            }
        }
        for u in &self.set_aside {
            if !state.undelivered.iter().any(|x| x.id == u.id) {
                state.undelivered.insert(0, u.clone());
                changed = true;
            }
        }
        state.undelivered.truncate(UNDELIVERED_KEPT);
        changed
    }
}
