//! What the state document remembers of releases after their deployment: verdicts, the
//! history, the last known good, what was marked bad, what drifted, and notifications that
//! could not be delivered.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{DeploymentId, GateRecord};
use crate::image::Image;

/// A notification that was never delivered, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Undelivered {
    pub id: String,
    pub subject: String,
    pub error: String,
    pub at: DateTime<Utc>,
}

/// A release that caused an alarm (or a person's rollback): never deployed again by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadRelease {
    pub image: Image,
    pub why: String,
    pub at: DateTime<Utc>,
}

/// A release held back because a guard alarm is in ALARM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuardWait {
    pub since: DateTime<Utc>,
    pub alarms: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Succeeded,
    Failed,
    /// ECS's circuit breaker (or an alarm) put the service back on its previous revision.
    RolledBack,
    /// A newer release took its place before it started, or it was older than what was there.
    Superseded,
    /// Putting the service back on its last known good failed: a person must act.
    RollbackFailed,
}

impl Verdict {
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Verdict::Failed | Verdict::RolledBack | Verdict::RollbackFailed
        )
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Succeeded => "succeeded",
            Verdict::Failed => "failed",
            Verdict::RolledBack => "rolled back",
            Verdict::Superseded => "superseded",
            Verdict::RollbackFailed => "rollback failed",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<DeploymentId>,
    pub image: Image,
    pub verdict: Verdict,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_definition_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// The gates as they stood when the deployment finished.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateRecord>,
    /// The config version the release ran with ([`crate::Bundle::config_version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The published bundle its config came from (its digest): what `promote_from` looks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// A rollback's own deployment (it put an earlier release back), so `status` does not show
    /// it as a plain success. Absent in documents written before it existed: `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rollback: bool,
}

impl HistoryEntry {
    /// The release as a rollback target, if it reached ECS (a revision and a deployment).
    pub fn known_good(&self) -> Option<KnownGood> {
        Some(KnownGood {
            task_definition_arn: self.task_definition_arn.clone()?,
            image: self.image.clone(),
            deployment_id: self.deployment_id.clone()?,
            config: self.config.clone(),
            bundle: self.bundle.clone(),
            config_release: false,
            at: self.at,
            started_at: None,
            restored: false,
        })
    }
}

/// A revision the service ran successfully: the rollback target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownGood {
    pub task_definition_arn: String,
    pub image: Image,
    pub deployment_id: DeploymentId,
    pub at: DateTime<Utc>,
    /// When the deployment that made it good began: alarms older than that are not its fault.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// The service got back here by a rollback: a later alarm is not this release's fault.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restored: bool,
    /// The config version it runs with; `None` in documents from before config releases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// It got here by a config release (same image, new config): a rollback blames the config.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub config_release: bool,
    /// The published bundle its config came from (its digest).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
}

/// A service running another revision than the one the agent deployed, since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drift {
    pub task_definition_arn: String,
    pub since: DateTime<Utc>,
}

/// A config version rolled back by an alarm (or a person) for this service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadConfig {
    pub version: String,
    pub why: String,
    pub at: DateTime<Utc>,
}

/// A release of an image with a config version that failed (the circuit breaker, a missing
/// secret, a gate, a timeout): the agent does not start the same pair again by itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedRelease {
    pub digest: crate::image::Digest,
    pub config: String,
    pub why: String,
    pub at: DateTime<Utc>,
}

/// The agent's heals of changes made outside git (`self_heal`): bounded in number, spaced out,
/// and stopped after one fails, until the drift or git changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healing {
    /// Heals started since `since` for git's config `config`.
    pub count: u32,
    pub since: DateTime<Utc>,
    pub last: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The agent stopped healing while the service runs this revision, and why (said once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<HealStop>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealStop {
    pub task_definition_arn: String,
    pub why: String,
    /// A heal failed: another drift may be healed. Else the heals ran out: none is, until git
    /// changes or a quiet day has passed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub failed: bool,
}
