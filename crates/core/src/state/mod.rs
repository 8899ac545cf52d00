//! The state document: one per (environment, service), stored with compare-and-swap.

use std::collections::VecDeque;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod document;
mod pending;
mod phase;
mod protection;
mod records;

pub use document::DocumentError;
pub use pending::{Pending, Wait};
pub use phase::{OneOffRun, Phase, PhaseKind};
pub use protection::{Protection, ProtectionStatus, PROTECTION_ATTEMPTS};
pub use records::{
    BadConfig, BadRelease, Drift, FailedRelease, GuardWait, HealStop, Healing, HistoryEntry,
    KnownGood, Undelivered, Verdict,
};

use crate::image::Image;
use crate::strategy::Stage;

/// 2: config releases (`Trigger::Config`, `config` on deployments and history).
/// 3: the `migrating` phase (a one-off task before the rollout), `autoscaled` and
/// `custom_capacity`.
/// 4: `rollback` on history entries (nested: an older agent would drop it on its next write).
/// 5: `failed_releases`, `healing` and the `heal` trigger: what the agent remembers of its own
/// automatic releases (an older agent would release again what failed).
pub const SCHEMA: u32 = 5;
/// Event ids remembered for de-duplication. EventBridge redelivers within minutes, so a few
/// hundred recent ids cover many hours of pushes to one service.
pub const PROCESSED_EVENTS_KEPT: usize = 200;
/// Undelivered notifications kept: enough to see what was lost and why, never more.
pub const UNDELIVERED_KEPT: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DeploymentId(pub String);

impl fmt::Display for DeploymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What asked for a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Trigger {
    /// An ECR push event, by EventBridge event id.
    Push { event_id: String },
    /// A person or a build step, through the CLI.
    Request { by: String },
    /// Found by the tick in ECR, its push event having been lost.
    Reconcile,
    /// Putting the service back on its last known good: after an alarm, or asked by a person.
    Rollback { why: String },
    /// The config in git changed for the image the service runs (`version`: its fingerprint).
    Config { version: String },
    /// Putting back a service changed outside git (`self_heal`), with git's config `version`.
    Heal { version: String },
}

impl Trigger {
    /// The config version a release of the running image carries (a config release, a heal).
    pub fn config_version(&self) -> Option<&str> {
        match self {
            Trigger::Config { version } | Trigger::Heal { version } => Some(version),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    pub image: Image,
    pub trigger: Trigger,
    pub requested_at: DateTime<Utc>,
    /// A person's `--force`: deployed even if marked bad or while a guard alarm fires.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// How a gate stood the last time the hook evaluated it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateStatus {
    Passed,
    Failed,
    /// Could not be measured (no data, an API error): neither passed nor failed.
    Inconclusive,
    /// Waiting for a person's decision.
    Waiting,
}

impl fmt::Display for GateStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GateStatus::Passed => "passed",
            GateStatus::Failed => "failed",
            GateStatus::Inconclusive => "inconclusive",
            GateStatus::Waiting => "waiting",
        })
    }
}

/// One gate at one lifecycle stage: `metric:<check>`, `approval` or `supersession`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    pub stage: Stage,
    pub gate: String,
    pub status: GateStatus,
    /// What was measured or decided, in words (`worst 7.2 over 5 min; at most 5`).
    pub detail: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Rounds in a row that could not be measured.
    #[serde(default)]
    pub inconclusive: u32,
    /// When the gate was first evaluated at this stage (approval timeouts count from here).
    pub since: DateTime<Utc>,
    pub at: DateTime<Utc>,
}

/// A person's answer to an approval gate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalDecision {
    pub approved: bool,
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    pub id: DeploymentId,
    pub release: Release,
    #[serde(flatten)]
    pub phase: Phase,
    pub started_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Until then the invocation that wrote this phase owns the next step; after it, anyone may
    /// take over (that invocation crashed or timed out).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
    /// The invocation holding the lease: only its step results are applied (see `Policy::owner`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
    /// Times the deployment was taken over after a lapsed lease.
    #[serde(default)]
    pub attempts: u32,
    /// The lifecycle stage ECS last called the hook at (native strategies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<ApprovalDecision>,
    /// Why the hook failed this deployment: said again when ECS reports the rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_failure: Option<String>,
    /// `updatedAt` of the newest ECS deployment event applied: older ones arrive late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ecs_event_at: Option<DateTime<Utc>>,
    /// Set when this deployment puts the service back on a known good revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<RollbackOf>,
    /// The config version it deploys ([`crate::Bundle::config_version`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// A config release's changes against the revision it replaces, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changes: Option<String>,
    /// The published bundle its config came from (its digest), when it came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bundle: Option<String>,
    /// A rollback's first step: the one-off task (a migration) the deployment it replaces
    /// started, stopped before the service is touched. Kept until stopped, so a takeover does it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_first: Option<OneOffRun>,
}

impl Deployment {
    /// A deployment starting `now` in `phase`, its lease held until `lease_until`.
    pub fn new(
        id: DeploymentId,
        release: Release,
        phase: Phase,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Self {
        Deployment {
            id,
            release,
            phase,
            started_at: now,
            updated_at: now,
            lease_until: Some(lease_until),
            lease_owner: None,
            attempts: 0,
            stage: None,
            gates: Vec::new(),
            approval: None,
            gate_failure: None,
            ecs_event_at: None,
            rollback: None,
            config: None,
            changes: None,
            bundle: None,
            stop_first: None,
        }
    }

    pub fn task_definition_arn(&self) -> Option<&str> {
        self.phase.task_definition_arn()
    }
}

/// What a rollback deployment undoes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackOf {
    /// The release taken off the service (now marked bad), as a label.
    pub release: String,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    pub schema: u32,
    pub environment: String,
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<Deployment>,
    /// The newest release waiting to deploy (latest wins), and what it waits for.
    #[serde(flatten, with = "pending::flat")]
    pub pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_known_good: Option<KnownGood>,
    /// The newest image accepted for deployment; older ones are ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_accepted: Option<Image>,
    /// Newest first: up to `agent.history_limit` releases that ran and as many skipped ones
    /// ([`ServiceState::record`]).
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// Oldest first, bounded by [`PROCESSED_EVENTS_KEPT`].
    #[serde(default)]
    pub processed_events: VecDeque<String>,
    /// Notifications saved with the step that caused them and removed once SNS took them, so a
    /// crash or an SNS outage delays them instead of losing them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outbox: Vec<crate::notify::Notification>,
    /// Notifications SNS refused for good, or after every attempt, with the error: newest
    /// first, bounded by [`UNDELIVERED_KEPT`]; `status` shows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub undelivered: Vec<Undelivered>,
    /// Deployments started so far; makes every deployment id unique for this service.
    #[serde(default)]
    pub deployments_started: u64,
    /// Newest first, bounded by `agent.history_limit`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_releases: Vec<BadRelease>,
    /// Config versions an alarm rolled back, newest first, bounded by `agent.history_limit`:
    /// not applied again until a newer version is published.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_configs: Vec<BadConfig>,
    /// The service found running another revision than deployed (changed outside git).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Releases of (image, config version) that failed, newest first, bounded by
    /// `agent.history_limit`: never started again by the agent itself, only by a person.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failed_releases: Vec<FailedRelease>,
    /// The heals of changes made outside git: how many, when, and whether the agent stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healing: Option<Healing>,
    /// When the deployments the agent started by itself in the last hour began (pushes, config
    /// releases, heals, alarm rollbacks): the bound every automatic kind shares
    /// (`machine/gate.rs`). Bounded by the hour and by the bound.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub automatic: Vec<DateTime<Utc>>,
    /// When the agent last said it had reached that bound (said once an hour).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bound_said: Option<DateTime<Utc>>,
    /// The service has an Application Auto Scaling target the agent registered: a config
    /// that drops `autoscaling` deregisters it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub autoscaled: bool,
    /// The agent set a capacity strategy other than on-demand Fargate alone: a config that
    /// drops `capacity` sends the default back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub custom_capacity: bool,
    /// The tags the agent put on images to keep them from ECR's lifecycle rules: at most one
    /// per image [`crate::retention::kept_images`] names, plus those being taken off. Not a
    /// schema change: an older agent keeps the field as it is (`unknown`) and a newer one
    /// takes off what is no longer needed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protections: Vec<Protection>,
    /// What worker scaling remembers between ticks.
    #[serde(default, skip_serializing_if = "is_default")]
    pub scaling: crate::scaling::ScalingState,
    /// Top-level fields a newer agent wrote and this one does not know: kept as they were
    /// (see `document.rs`).
    #[serde(flatten)]
    pub unknown: serde_json::Map<String, serde_json::Value>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl ServiceState {
    pub fn new(environment: &str, service: &str) -> Self {
        ServiceState {
            schema: SCHEMA,
            environment: environment.to_owned(),
            service: service.to_owned(),
            in_flight: None,
            pending: None,
            last_known_good: None,
            newest_accepted: None,
            history: Vec::new(),
            autoscaled: false,
            custom_capacity: false,
            processed_events: VecDeque::new(),
            outbox: Vec::new(),
            undelivered: Vec::new(),
            deployments_started: 0,
            bad_releases: Vec::new(),
            bad_configs: Vec::new(),
            drift: None,
            failed_releases: Vec::new(),
            healing: None,
            automatic: Vec::new(),
            bound_said: None,
            protections: Vec::new(),
            scaling: Default::default(),
            unknown: Default::default(),
        }
    }

    pub fn has_processed(&self, event_id: &str) -> bool {
        self.processed_events.iter().any(|e| e == event_id)
    }

    pub fn remember_event(&mut self, event_id: &str) {
        if !self.has_processed(event_id) {
            self.processed_events.push_back(event_id.to_owned());
            while self.processed_events.len() > PROCESSED_EVENTS_KEPT {
                self.processed_events.pop_front();
            }
        }
    }

    /// Adds an entry, newest first. Releases that succeeded (what a rollback returns to),
    /// releases that ran and failed, and releases skipped on the way (superseded, older than
    /// what ran) are bounded apart, each to `limit`: neither a burst of skipped pushes nor a
    /// run of failures ever evicts a rollback target. Reasons are clipped, so the history is
    /// bounded in bytes too.
    pub fn record(&mut self, mut entry: HistoryEntry, limit: usize) {
        entry.reason =
            (entry.reason).map(|r| crate::text::clipped(&r, 2 * crate::text::MAX_REASON));
        self.history.insert(0, entry);
        let (mut succeeded, mut failed, mut skipped) = (0, 0, 0);
        self.history.retain(|h| {
            let n = match (&h.deployment_id, h.verdict) {
                (Some(_), Verdict::Succeeded) => &mut succeeded,
                (Some(_), _) => &mut failed,
                (None, _) => &mut skipped,
            };
            *n += 1;
            *n <= limit
        });
        self.forget_marks(limit);
    }

    /// Bounds what was marked bad: the newest `limit` marks, and any older one whose release
    /// is still recorded (in the history or as the last known good), so a release marked bad
    /// long ago never becomes a rollback target again.
    pub fn forget_marks(&mut self, limit: usize) {
        let digests: std::collections::BTreeSet<_> = (self.history.iter().map(|h| &h.image))
            .chain(self.last_known_good.as_ref().map(|g| &g.image))
            .map(|i| i.digest.clone())
            .collect();
        let mut n = 0;
        self.bad_releases.retain(|b| {
            n += 1;
            n <= limit || digests.contains(&b.image.digest)
        });
        let versions: std::collections::BTreeSet<_> = (self.history.iter())
            .filter_map(|h| h.config.clone())
            .chain(self.last_known_good.as_ref().and_then(|g| g.config.clone()))
            .collect();
        let mut n = 0;
        self.bad_configs.retain(|b| {
            n += 1;
            n <= limit || versions.contains(&b.version)
        });
    }

    /// Whether the release of `digest` with config `version` failed before.
    pub fn failed(&self, digest: &crate::image::Digest, version: &str) -> Option<&FailedRelease> {
        (self.failed_releases.iter()).find(|f| &f.digest == digest && f.config == version)
    }

    pub fn bad(&self, digest: &crate::image::Digest) -> Option<&BadRelease> {
        self.bad_releases.iter().find(|b| &b.image.digest == digest)
    }

    /// The newest release that succeeded before `current` and is not marked bad: where a
    /// rollback from `current` goes.
    pub fn good_before(&self, current: &KnownGood) -> Option<KnownGood> {
        // By revision, not by image: a config release runs the same image with another one.
        let current_arn = Some(current.task_definition_arn.as_str());
        self.history
            .iter()
            .filter(|h| h.verdict == Verdict::Succeeded)
            .filter(|h| h.task_definition_arn.as_deref() != current_arn)
            .filter(|h| self.bad(&h.image.digest).is_none())
            .filter(|h| {
                (h.config.as_deref())
                    .is_none_or(|c| !self.bad_configs.iter().any(|b| b.version == c))
            })
            .find_map(HistoryEntry::known_good)
    }

    /// Where a rollback of the deployment in flight goes: the last known good, unless it was
    /// marked bad since (a rollback from it failed), then the newest good release before it
    /// that is not. Never a release marked bad.
    pub fn rollback_target(&self) -> Option<KnownGood> {
        let good = self.last_known_good.as_ref()?;
        match self.bad(&good.image.digest) {
            None => Some(good.clone()),
            Some(_) => self.good_before(good),
        }
    }

    /// The storage key of this document in the state bucket.
    pub fn key(environment: &str, service: &str) -> String {
        format!("state/{environment}/{service}.json")
    }
}

#[cfg(test)]
mod tests;
