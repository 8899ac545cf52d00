//! Why an observation changed nothing: its kind, a type a caller or a test asks about, and the
//! words a person reads (with the names, versions and times that explain it). Serialised as
//! those words (`reason` in `--json`), as it always was.

use std::fmt;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    pub kind: SkipKind,
    words: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// The digest is the deployment in flight.
    AlreadyBeingDeployed,
    /// The digest waits as the pending release.
    AlreadyPending,
    /// The digest runs, and nothing else is in flight or waiting.
    AlreadyDeployed,
    /// The image is the newest accepted already (a repeat, or a re-tag of it).
    AlreadyAccepted,
    /// Older than the newest accepted: superseded.
    Older,
    /// The release is marked bad; only a person deploys it again.
    MarkedBad,
    /// Guard alarms stayed in ALARM past their timeout.
    GuardsStillFiring,
    /// The environment's gate does not let this happen by itself (`auto_deploy`,
    /// `config_releases = "manual"`, `self_heal` off).
    GateClosed,
    /// `promote_from`: git's config has not (yet) succeeded in the environment it comes from.
    NotPromotedYet,
    /// Git's config for the target was rolled back by an alarm.
    ConfigRolledBack,
    /// Git's config failed with this image before.
    ConfigFailed,
    /// The hour's bound on what the agent starts by itself is reached.
    OverBound,
    /// Self-heal stopped, or waits for its next try.
    HealStopped,
    HealWaits,
    /// An alarm that is not a change to ALARM, or a repeat of one.
    AlarmNotFiring,
    /// An alarm while a rollback is under way already.
    RollbackUnderWay,
    /// An alarm older than the deployment or release it would blame.
    AlarmBeforeRelease,
    /// An alarm after the release completed longer ago than the rollback window.
    AlarmOutsideWindow,
    /// An alarm with nothing deployed by the agent to blame.
    NothingDeployed,
    /// An alarm while the service is back on its last known good already.
    AlreadyRestored,
    /// An alarm after the last rollback failed: a person must act.
    LastRollbackFailed,
    /// An ECS event while nothing is in flight (not the agent's, or recorded already).
    EcsEventNothingInFlight,
    /// An ECS event about another ECS deployment than the one in flight.
    EcsEventOtherDeployment,
    /// An ECS event older than one applied already (delivered out of order).
    EcsEventOutOfOrder,
    /// The backlog could not be read, or the desired count not set.
    ScalingFailed,
}

impl Skip {
    pub fn new(kind: SkipKind, words: impl Into<String>) -> Self {
        Skip {
            kind,
            words: words.into(),
        }
    }

    pub fn words(&self) -> &str {
        &self.words
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.words)
    }
}

impl Serialize for Skip {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.words)
    }
}
