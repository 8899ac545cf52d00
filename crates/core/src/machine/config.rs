//! Config releases: git says something else for the image the service runs (a template, a
//! variable, a secret's name). The tick compares the config version the service last got with
//! the published one; a difference is a release of the same image through the same engine as a
//! push (strategy, gates, guard alarms, alarm rollback, notifications), admitted by the same
//! door (`admission.rs`): only where the environment releases config by itself, never a version
//! an alarm rolled back or whose release failed with this image. A change of the fingerprint's
//! scheme alone (an agent upgrade) re-baselines what runs and releases nothing.

use super::admission::Admission;
use super::context::Ctx;
use super::{Command, Outcome, Point};
use crate::notify::NoticeKind;
use crate::state::{BadConfig, Drift, KnownGood, Release, ServiceState, Trigger};

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
                self.rebaseline(want);
                Outcome::Nothing
            }
            Some(have) if *have == want => self.look_for_drift(),
            // The agent's fingerprint changed, not git: what runs is git's config.
            Some(have) if self.policy.config_baseline.as_ref() == Some(have) => {
                let note = format!(
                    "the config fingerprint's scheme changed (agent upgrade): {} is recorded as {}; nothing to release",
                    short_version(have),
                    short_version(&want)
                );
                let digest = Some(good.image.digest.clone());
                self.journal_line(None, digest, (Point::InSync, Point::InSync), note);
                self.rebaseline(want);
                Outcome::Progressed
            }
            Some(_) => {
                let release = Release {
                    image: good.image,
                    trigger: Trigger::Config { version: want },
                    requested_at: self.now,
                    force: false,
                };
                self.accept(release, Admission::Config)
            }
        }
    }

    /// What runs is recorded as git's config `version`, without deploying anything.
    fn rebaseline(&mut self, version: String) {
        if let Some(g) = self.s.last_known_good.as_mut() {
            g.config = Some(version);
        }
    }

    /// Asks ECS which revision runs, when this target's minute comes (`agent.drift_check_minutes`,
    /// each target its own minute: one DescribeServices per service every five minutes by
    /// default, not every tick), and every tick while a drift is recorded, to see it end.
    fn look_for_drift(&mut self) -> Outcome {
        use chrono::Timelike;
        let key = format!("{}/{}", self.s.environment, self.s.service);
        let hash = crate::text::fingerprint(key.as_bytes());
        let every = u64::from(self.policy.drift_every.max(1));
        let slot = u64::from_str_radix(&hash[..8], 16).unwrap_or_default() % every;
        if self.s.drift.is_some() || u64::from(self.now.minute()) % every == slot {
            self.run(Command::ObserveService);
        }
        Outcome::Nothing
    }

    /// The revision the service runs, against the one the agent deployed: a change made outside
    /// git is reported once, and put back when `self_heal` says so.
    pub(super) fn service_observed(&mut self, running: &Result<String, String>) -> Outcome {
        let Ok(running) = running else {
            return Outcome::Nothing;
        };
        if self.s.in_flight.is_some() || self.s.pending.is_some() {
            return Outcome::Nothing;
        }
        let Some(good) = self.s.last_known_good.clone() else {
            return Outcome::Nothing;
        };
        if *running == good.task_definition_arn {
            if let Some(d) = self.s.drift.take() {
                let note = format!("runs {running} again (drift since {})", d.since);
                let points = (Point::Drifted, Point::InSync);
                self.journal_line(None, None, points, note);
                return Outcome::Progressed;
            }
            return Outcome::Nothing;
        }
        let known = self.s.drift.as_ref().map(|d| &d.task_definition_arn) == Some(running);
        // One of the agent's own earlier revisions: a call of a deployment another invocation
        // took over, landing after a newer one (ECS has no precondition to refuse it). Not a
        // change outside git: put right whatever `self_heal` says, within the heals' bounds.
        let late = (self.s.history.iter()).any(|h| {
            h.deployment_id.is_some() && h.task_definition_arn.as_deref() == Some(running)
        });
        if !known {
            self.drift_seen(running, &good, late);
        }
        if !self.policy.gate.self_heal && !late {
            return if known {
                Outcome::Nothing
            } else {
                Outcome::Progressed
            };
        }
        let version = self.policy.config_version.clone().or(good.config.clone());
        let release = Release {
            image: good.image,
            trigger: Trigger::Heal {
                version: version.unwrap_or_default(),
            },
            requested_at: self.now,
            force: false,
        };
        let admission = if late {
            Admission::Repair
        } else {
            Admission::Heal
        };
        match self.accept(release, admission) {
            // Not healed now: the drift's first sighting is still news.
            Outcome::Ignored { .. } if !known => Outcome::Progressed,
            o => o,
        }
    }

    /// A first sighting of the service on `running`: remembered, said once (a notice and a
    /// journal line), as a change outside git or, `late`, a stale call of the agent's own.
    fn drift_seen(&mut self, running: &str, good: &KnownGood, late: bool) {
        self.s.drift = Some(Drift {
            task_definition_arn: running.to_owned(),
            since: self.now,
        });
        let deployed = &good.task_definition_arn;
        let why = match (late, self.policy.gate.self_heal) {
            (true, _) => format!(
                "the service runs {running}, an earlier revision the agent deployed, not {deployed} as deployed since: a late call of a deployment taken over; putting {} back",
                good.image.label()
            ),
            (false, heal) => format!(
                "the service runs {running}, not {deployed} as deployed: changed outside git{}",
                if heal { "; putting it back (self_heal)" } else { "" }
            ),
        };
        let id = format!("{}/drift/{running}", good.deployment_id);
        let arn = Some(deployed.clone());
        let (deployment, image) = (good.deployment_id.clone(), good.image.clone());
        let (kind, reason) = (NoticeKind::Drift, Some(why.clone()));
        self.notice_about(kind, id, deployment, image, arn, reason);
        self.journal_line(None, None, (Point::InSync, Point::Drifted), why);
    }

    /// Keeps what a config release changes, for its notifications and history.
    pub(super) fn note_changes(&mut self, id: &crate::state::DeploymentId, changes: Option<&str>) {
        let Some(changes) = changes.filter(|c| !c.is_empty()) else {
            return;
        };
        if self.held(id).is_some() {
            let changes = crate::text::clipped(changes, crate::text::MAX_REASON);
            self.edit(|d| d.changes = Some(changes));
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
        self.s.forget_marks(self.policy.history_limit);
    }
}

/// Where a target stands with git's config: what `status` shows and `diff` says beside the
/// changes. The reason a pending version is not released is the admission's own.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "standing", rename_all = "snake_case")]
pub enum ConfigStanding {
    /// Nothing deployed yet, or no config to compare.
    Unknown,
    InSync {
        version: String,
    },
    /// Git has a version the service does not run.
    Pending {
        version: String,
        /// What runs (absent in documents from before config releases).
        running: Option<String>,
        /// Why the tick does not release it (the environment's gate, a failure remembered, a
        /// rollback); `None`: the next tick does.
        held: Option<String>,
    },
}

/// Where `state` stands with the config `policy` carries, at `now`.
pub fn config_standing(
    state: &ServiceState,
    now: chrono::DateTime<chrono::Utc>,
    policy: &super::Policy,
    promotion: Option<super::Promotion>,
) -> ConfigStanding {
    let (Some(want), Some(good)) = (&policy.config_version, &state.last_known_good) else {
        return ConfigStanding::Unknown;
    };
    let have = good.config.clone();
    if have.as_ref() == Some(want) || (have.is_some() && have == policy.config_baseline) {
        return ConfigStanding::InSync {
            version: want.clone(),
        };
    }
    let mut cx = Ctx::new(state, now, policy);
    cx.promotion = promotion;
    let release = Release {
        image: good.image.clone(),
        trigger: Trigger::Config {
            version: want.clone(),
        },
        requested_at: now,
        force: false,
    };
    let held = match cx.refuse(&release, Admission::Config) {
        Some(Outcome::Ignored { reason }) => Some(reason.to_string()),
        Some(Outcome::Refused { reason }) => Some(reason.to_string()),
        Some(_) => Some("a release is in flight or pending".into()),
        None => None,
    };
    ConfigStanding::Pending {
        version: want.clone(),
        running: have,
        held,
    }
}

/// A config version as people read it: its scheme (if any) and 12 characters.
pub fn short_version(version: &str) -> &str {
    let scheme = version.find(':').map_or(0, |i| i + 1);
    let end = (scheme + 12).min(version.len());
    version.get(..end).unwrap_or(version)
}
