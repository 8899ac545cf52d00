//! The deployment state machine: `decide(state, observation, now, policy) -> step`.
//!
//! Pure: no I/O, no clock, no randomness. Handlers turn events and AWS answers into
//! observations; the runner executes the step's command through ports and feeds the result
//! back. Each concern has its file, as Argo Rollouts keeps a file per strategy:
//!
//! | file | decides |
//! | --- | --- |
//! | `admission.rs` | whether a release deploys now, waits (pending, settling, held) or is ignored |
//! | `gate.rs` | what the environment lets happen by itself, and the failures remembered |
//! | `config.rs`, `heal.rs` | config releases, drift and its bounded heals, late calls repaired |
//! | `rollout.rs` | register → update → stabilize, takeovers after a lapsed lease |
//! | `hooks.rs`, `gates.rs` | lifecycle hooks of native strategies: metric checks, approval |
//! | `ecs_events.rs` | "ECS Deployment State Change" events |
//! | `rollback.rs` | alarms and rollbacks to the last known good |
//! | `scaling.rs` | worker desired counts from the backlog |
//! | `notices.rs` | what goes into the outbox |
//! | `context.rs` | what the others share: the deployment in flight, closing it, ids |

mod admission;
mod command;
mod config;
mod context;
mod ecs_events;
#[cfg(test)]
pub(crate) mod fixture;
mod gate;
mod gates;
mod heal;
mod hooks;
mod journal;
mod notices;
mod observation;
mod observe;
mod one_off;
mod protect;
mod refusal;
mod rollback;
mod rollout;
mod scaling;
mod skip;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub use refusal::Refusal;
pub use skip::{Skip, SkipKind};

pub use command::Command;
pub use config::{config_standing, short_version, ConfigStanding};
pub use heal::MAX_HEALS;
pub use journal::{Point, Transition};
pub use observation::{EcsChange, Measurement, Observation, Promotion, Rollout};

use crate::alarm::AlarmPolicy;
use crate::image::ImageOrder;
use crate::scaling::{ScaleDecision, ScalingPolicy};
use crate::state::{DeploymentId, ServiceState, Verdict};
use crate::strategy::Gates;
use context::Ctx;

/// The settings of one (environment, service) that the machine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub project: String,
    pub order: ImageOrder,
    pub lease: Duration,
    /// How long a pushed release waits for newer pushes before it starts (0: at once).
    pub settle: Duration,
    pub stabilize_timeout: Duration,
    pub max_attempts: u32,
    pub history_limit: usize,
    /// Checks and approval at the lifecycle hooks (native strategies), checks localised.
    pub gates: Gates,
    pub alarms: AlarmPolicy,
    /// Blue/green, canary or linear: a deployment in flight is stopped through ECS.
    pub native: bool,
    /// Worker services: desired count from the backlog.
    pub scaling: Option<ScalingPolicy>,
    /// Target tracking is configured (Application Auto Scaling owns the count).
    pub autoscaled: bool,
    /// Git sets a capacity strategy other than on-demand Fargate alone.
    pub custom_capacity: bool,
    /// How long the one-off task before the rollout (`before_deploy`) may run; `None`: there
    /// is none.
    pub one_off_timeout: Option<Duration>,
    /// The fingerprint of what git says this target runs, image aside
    /// ([`crate::Bundle::config_version`]); a deployment records it, the tick compares it.
    pub config_version: Option<String>,
    /// The same config's fingerprint in the scheme before [`crate::bundle::CONFIG_SCHEME`]: a
    /// service that recorded exactly this runs what git says, and is re-baselined to the
    /// current scheme without a release (an agent upgrade releases nothing by itself).
    pub config_baseline: Option<String>,
    /// Where that config came from (`commit 3f2c1ab by alice: …`), for people.
    pub config_origin: Option<String>,
    /// The published bundle that config is in (its digest), recorded with each release.
    pub bundle: Option<String>,
    /// The environment a config release must have succeeded in before it goes here by itself.
    pub promote_from: Option<String>,
    /// What the environment lets happen by itself.
    pub gate: Gate,
    /// Minutes between two looks at which revision the service runs.
    pub drift_every: u32,
    /// The invocation deciding (a token per run): a lease it takes names it, and the result of
    /// a step whose lease another invocation took over is not its to apply.
    pub owner: String,
}

/// What an environment lets the agent release by itself, as Argo CD's sync policy per
/// application: every automatic admission (a push, a lost push found, a config release, a heal)
/// asks it; a person's request does not, and an alarm's rollback is never gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Pushes deploy here by themselves (`auto_deploy`).
    pub pushes: bool,
    /// A config published to git is released here by itself (`config_releases`).
    pub config: crate::config::ConfigReleases,
    /// A service changed outside git is put back (`self_heal`), within bounds.
    pub self_heal: bool,
}

/// The answer to an ECS lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    Succeeded,
    Failed,
    /// Ask again after the callback delay.
    InProgress,
}

impl HookStatus {
    /// As ECS spells it (`hookStatus`).
    pub fn word(self) -> &'static str {
        match self {
            HookStatus::Succeeded => "SUCCEEDED",
            HookStatus::Failed => "FAILED",
            HookStatus::InProgress => "IN_PROGRESS",
        }
    }
}

/// What happened to the observation, for the caller's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Started {
        deployment: DeploymentId,
    },
    Queued,
    Duplicate,
    Ignored {
        reason: Skip,
    },
    /// A person's request (deploy, rollback, approve) that was not carried out, and why: a
    /// release marked bad, nothing to roll back to, nothing waiting for approval. Unlike
    /// `Ignored`, the caller asked for something it did not get (the CLI exits 1).
    Refused {
        reason: Refusal,
    },
    Progressed,
    Finished {
        deployment: DeploymentId,
        verdict: Verdict,
    },
    /// Another invocation holds the lease on the deployment in flight.
    Busy,
    /// The observation is about a deployment that is no longer in flight.
    Stale,
    Nothing,
    /// The lifecycle hook's answer.
    HookAnswered {
        status: HookStatus,
        reason: String,
    },
}

impl Outcome {
    fn ignored(kind: SkipKind, words: impl Into<String>) -> Self {
        Outcome::Ignored {
            reason: Skip::new(kind, words),
        }
    }

    fn refused(reason: Refusal) -> Self {
        Outcome::Refused { reason }
    }

    fn hook(status: HookStatus, reason: impl Into<String>) -> Self {
        Outcome::HookAnswered {
            status,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub state: ServiceState,
    /// The command that moves the deployment on: one step makes at most one effect.
    pub command: Option<Command>,
    /// The state need not be saved before the command runs: a crash after it is recovered
    /// from the state saved before, so the runner saves this one with the next step's.
    pub save_with_next: bool,
    /// Notifications this step put in the state's outbox.
    pub notices: Vec<crate::notify::Notification>,
    pub journal: Vec<Transition>,
    pub outcome: Outcome,
    /// A worker scaling decision this step made.
    pub scaled: Option<ScaleDecision>,
    /// A problem the step could not act on: the report's error and a warning in the log.
    pub problem: Option<String>,
}

/// One step of the state machine: what `obs` means for the service in `state` at `now`, under
/// the environment's `policy`.
///
/// # Guarantees
///
/// - Pure: the same inputs give the same step; nothing is called, read or timed here.
/// - At most one effect: the step carries at most one [`Command`], and its intent is in the
///   returned state, to be saved before the command runs (unless `save_with_next` says a crash
///   after it is recovered from the state saved before).
/// - Only the lease holder applies a result: an observation about a deployment no longer in
///   flight, or held by another invocation's lease, is [`Outcome::Stale`] and changes nothing.
/// - Notifications go to the state's outbox in the same step that decides them, and leave it
///   only once delivered: each is sent at least once, and said once per key.
/// - Time never goes backwards: older images, events and ECS updates than the ones applied are
///   ignored, with the reason in the outcome.
///
/// # Assumptions
///
/// - `state` is the document as last saved (the runner reads it, then writes with its version).
/// - `now` is the caller's clock; leases and windows are measured against it.
///
/// # Errors
///
/// None: a problem the step cannot act on is in [`Step::problem`] and the outcome.
pub fn decide(
    state: &ServiceState,
    obs: &Observation,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Step {
    let mut cx = Ctx::new(state, now, policy);
    let outcome = cx.observe(obs);
    cx.into_step(outcome)
}
