//! Config releases: git says something else for the image the service runs (a template, a
//! variable, a secret's name). The tick compares the config version the service last got with
//! the published one; a difference is a release of the same image through the same engine as a
//! push (strategy, gates, guard alarms, alarm rollback, notifications). A version an alarm
//! rolled back is not applied again until a newer one is published.

use super::context::Ctx;
use super::Outcome;
use crate::state::{BadConfig, Pending, Release, Trigger};

impl Ctx<'_> {
    pub(super) fn config_check(&mut self) -> Outcome {
        let Some(want) = self.policy.config_version.clone() else {
            return Outcome::Nothing;
        };
        if self.s.in_flight.is_some() || self.s.pending.is_some() {
            return Outcome::Nothing;
        }
        let Some(good) = self.s.last_known_good.clone() else {
            return Outcome::Nothing;
        };
        if self.bad_config(&want).is_some() || self.s.bad(&good.image.digest).is_some() {
            return Outcome::Nothing;
        }
        match &good.config {
            // A document from before config releases: what runs is taken as this version.
            None => {
                if let Some(g) = self.s.last_known_good.as_mut() {
                    g.config = Some(want);
                }
                Outcome::Nothing
            }
            Some(have) if *have == want => Outcome::Nothing,
            Some(_) => {
                let release = Release {
                    image: good.image,
                    trigger: Trigger::Config { version: want },
                    requested_at: self.now,
                    force: false,
                };
                self.begin(Pending::new(release))
            }
        }
    }

    pub(super) fn bad_config(&self, version: &str) -> Option<&BadConfig> {
        self.s.bad_configs.iter().find(|b| b.version == version)
    }

    /// An alarm (or a person) rolled a config release back: the version, not the image, is bad.
    pub(super) fn mark_config_bad(&mut self, version: Option<&str>, why: &str) {
        let Some(version) = version else { return };
        if self.bad_config(version).is_some() {
            return;
        }
        let bad = BadConfig {
            version: version.to_owned(),
            why: crate::text::clipped(why, crate::text::MAX_REASON),
            at: self.now,
        };
        self.s.bad_configs.insert(0, bad);
        self.s.bad_configs.truncate(self.policy.history_limit);
    }
}

/// A config version as people read it: its first 12 characters.
pub fn short_version(version: &str) -> &str {
    &version[..version.len().min(12)]
}
