//! The engine drives the state machine through the ports: the runner (`runner.rs`) persists
//! each step and feeds results back; the executor (`execute.rs`) makes each command's calls;
//! `ecs_view.rs` reads ECS's answers; `render.rs` renders what a deployment registers.

mod ecs_view;
mod execute;
mod one_off;
mod outbox;
mod render;
mod runner;
mod service;
mod words;

use serde::Serialize;

pub use ecs_view::rollout_of;
pub use execute::measure_backlog;
pub use one_off::{start_one_off, OneOffError, OneOffStart};
pub use render::{render_for, target_for, target_with, Outputs, RenderError};

use crate::bundle::Bundle;
use crate::machine::{Observation, Outcome, Transition};
use crate::ports::{PortError, Ports};
use crate::target::Target;
use execute::Executor;
use runner::Runner;

/// Lost compare-and-swap races before giving up (each re-reads and decides again).
const MAX_CONFLICTS: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct TargetReport {
    pub environment: String,
    pub service: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub journal: Vec<Transition>,
    /// With `--dry-run`: the commands that would run, none of which did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<String>,
    /// Worker scaling: the decision and its inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaling: Option<crate::scaling::ScaleDecision>,
    /// CloudWatch embedded-metric-format lines; the edges print them to the log.
    #[serde(skip)]
    pub metrics: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The error may go away by itself (throttling, contention, an interrupted step): handling
    /// the same event again is worth it. A corrupt document or a refused request is not.
    #[serde(skip)]
    pub retry: bool,
}

impl TargetReport {
    /// A report of nothing done yet for `target`.
    pub fn new(target: &Target) -> Self {
        TargetReport {
            environment: target.environment.clone(),
            service: target.service.clone(),
            outcome: Outcome::Nothing,
            journal: Vec::new(),
            planned: Vec::new(),
            scaling: None,
            metrics: Vec::new(),
            error: None,
            retry: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no service `{service}` in environment `{environment}` in the config")]
    UnknownTarget {
        environment: String,
        service: String,
    },
    #[error("state document {key}: gave up after {MAX_CONFLICTS} concurrent changes")]
    Contention { key: String },
    #[error(transparent)]
    Port(#[from] PortError),
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Decide and report, but save nothing and execute no command.
    pub dry_run: bool,
    /// When this invocation is stopped (Lambda's deadline): a lease it takes lasts at least
    /// until then and [`CALL_TIMEOUT`] more, whatever `agent.function_timeout_seconds` says, so
    /// no other invocation takes over a step whose call may still be on its way.
    pub deadline: Option<chrono::DateTime<chrono::Utc>>,
}

/// The longest an AWS call may take, retries included (the adapters' SDK operation timeout). A
/// mutating call is sent only while the lease has this long left (half the lease, for leases
/// under twice this), so the call ends, one way or the other, before another invocation may
/// take the step over. ECS has no precondition to fence a late call with; what one did anyway
/// is seen by the next look and put right (`machine/config.rs`).
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `observations` in order, each once the previous one has settled, on one reading of the
/// state document. The report's outcome is the last observation's.
///
/// # Guarantees
///
/// - Intent before effect: each step's state (the command it is about to run, the notices it
///   claims) is saved with a compare-and-swap on the document's version before the command
///   runs; a crash at any port call is taken over from what was saved, and ends where the
///   uninterrupted run does (`crates/core/tests/crash.rs` kills every call, before and after
///   its effect).
/// - Only the lease holder applies a result: every write is fenced by the version read, a lost
///   race re-reads and decides again, and a mutating call is sent only while the lease has
///   [`CALL_TIMEOUT`] left (`RunOptions::deadline` lengthens a Lambda's lease to its deadline).
/// - The outbox is delivered at least once: a notice claimed in a saved step is published
///   after the save, marked sent in the next write, and published again by whoever finds it
///   unsent.
/// - Bounded: at most `MAX_STEPS` steps per call; what is left is for the next invocation.
///
/// # Assumptions
///
/// - The state store compares versions (S3's conditional writes; the in-memory store alike).
/// - The ports' clock is the one leases are measured by.
///
/// # Errors
///
/// [`RunError::UnknownTarget`] when the bundle has no such target (nothing is read or written);
/// [`RunError::Contention`] after `MAX_CONFLICTS` lost races in a row; [`RunError::Port`] when
/// the state cannot be read or written after the SDK's retries. A failed AWS
/// call of a step is no error here: the step's observation carries it and the deployment's
/// verdict says it.
pub async fn run<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    observations: Vec<Observation>,
    opts: RunOptions,
) -> Result<TargetReport, RunError> {
    let (env, service) = (target.environment.as_str(), target.service.as_str());
    let mut policy = bundle
        .policy(env, service)
        .ok_or_else(|| RunError::UnknownTarget {
            environment: env.into(),
            service: service.into(),
        })?;
    let jitter = runner::jitter_seed(ports.now());
    policy.owner = format!("{jitter:016x}");
    if let Some(deadline) = opts.deadline {
        let call = chrono::Duration::from_std(CALL_TIMEOUT).unwrap_or_default();
        policy.lease = policy.lease.max(deadline - ports.now() + call);
    }
    let mut queue = observations.into_iter();
    let Some(first) = queue.next() else {
        return Ok(TargetReport::new(target));
    };
    let key = target.state_key();
    let current = runner::load(ports, &key, env, service).await?;
    let runner = Runner {
        exec: Executor {
            ports,
            bundle,
            env,
            service,
        },
        policy,
        key,
        topic: &bundle.config.notification_topic,
        current,
        delivery: Default::default(),
        unsaved_outbox: false,
        conflicts: 0,
        jitter,
        report: TargetReport::new(target),
    };
    if opts.dry_run {
        return Ok(runner.plan(first, queue));
    }
    runner.drive(first, queue).await
}
