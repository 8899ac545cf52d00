//! Dispatch: an event in, the affected targets run, a report out. The Lambda functions and
//! `harbormaster invoke` both call exactly this. `events.rs` maps each kind of event to its
//! targets and observations, `hook.rs` answers lifecycle hooks, `requests.rs` holds what a
//! person or a build asks for, `tick.rs` the minute's work.

mod events;
mod hook;
mod requests;
mod tick;

use serde::Serialize;
use serde_json::Value;

pub use events::handle_event;
pub use requests::{
    follow, record_approval, request_deploy, request_rollback, running_image, scale,
};
pub use tick::{config_standing, hourly_report, promotion, tick};

use crate::bundle::Bundle;
use crate::config::{Service, TargetSettings};
use crate::engine::{run, RunError, RunOptions, TargetReport};
use crate::event::EventError;
use crate::event::ServiceArn;
use crate::image::{Image, ResolveError};
use crate::machine::{HookStatus, Observation};
use crate::ports::{PortError, Ports};
use crate::target::Target;

#[derive(Debug, Clone, Serialize)]
pub struct DispatchReport {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub targets: Vec<TargetReport>,
    /// For a lifecycle hook: the answer ECS gets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookResponse>,
}

impl DispatchReport {
    fn ignored(event: String, why: String) -> Self {
        DispatchReport {
            event,
            ignored: Some(why),
            targets: Vec::new(),
            hook: None,
        }
    }

    fn of(event: String, targets: Vec<TargetReport>) -> Self {
        DispatchReport {
            event,
            ignored: None,
            targets,
            hook: None,
        }
    }

    /// Targets whose run ended in an error, as `env/service: error`.
    pub fn errors(&self) -> Vec<String> {
        self.errors_where(|_| true)
    }

    /// The errors a retry of the whole event may get past (it is idempotent): throttling,
    /// contention, an interrupted step; not a corrupt document or a refused request.
    pub fn retryable_errors(&self) -> Vec<String> {
        self.errors_where(|t| t.retry)
    }

    fn errors_where(&self, keep: impl Fn(&TargetReport) -> bool) -> Vec<String> {
        self.targets
            .iter()
            .filter(|t| keep(t))
            .filter_map(|t| {
                t.error
                    .as_ref()
                    .map(|e| format!("{}/{}: {e}", t.environment, t.service))
            })
            .collect()
    }
}

/// What the `ecs-hook` function returns to ECS.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HookResponse {
    pub hook_status: HookStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call_back_delay: Option<u32>,
    /// ECS hands these back on the next call of this hook: the agent's own keys (which say
    /// what is gated) and its progress, readable in the ECS console.
    pub hook_details: serde_json::Map<String, Value>,
}

impl HookResponse {
    /// An answer with the agent's reason in the details; ECS calls again after `callback`
    /// seconds when the answer is IN_PROGRESS.
    pub fn new(
        status: HookStatus,
        reason: &str,
        mut details: serde_json::Map<String, Value>,
        callback: u32,
    ) -> Self {
        details.insert("harbormaster:reason".into(), reason.into());
        HookResponse {
            hook_status: status,
            call_back_delay: (status == HookStatus::InProgress).then_some(callback),
            hook_details: details,
        }
    }

    pub fn reason(&self) -> &str {
        self.hook_details
            .get("harbormaster:reason")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

impl From<ResolveError> for DispatchError {
    fn from(e: ResolveError) -> Self {
        match e {
            ResolveError::Invalid(m) => DispatchError::Usage(m),
            ResolveError::Port(p) => DispatchError::Port(p),
        }
    }
}

/// The target deploying this ECS service. A legacy ARN names no cluster: it is the target
/// only if no other environment deploys a service of that name.
pub fn target_of(bundle: &Bundle, arn: &ServiceArn) -> Option<Target> {
    let mut found = bundle.config.targets().filter(|(e, s, _)| {
        s.ecs_service == arn.service && arn.cluster.as_ref().is_none_or(|c| *c == e.cluster)
    });
    let (e, s, _) = found.next()?;
    found
        .next()
        .is_none()
        .then(|| Target::new(&e.name, &s.name))
}

/// The targets that deploy this push automatically.
pub fn push_targets(bundle: &Bundle, image: &Image) -> Vec<Target> {
    let tag = image.tag.as_deref().unwrap_or("");
    bundle
        .config
        .targets()
        .filter(|(e, s, t)| {
            e.auto_deploy
                && s.repository == image.repository
                && t.follow.as_ref().is_some_and(|rule| rule.matches(tag))
        })
        .map(|(e, s, _)| Target::new(&e.name, &s.name))
        .collect()
}

/// What the config says of `target`: a person's request naming a target it does not deploy is
/// a usage error.
fn configured<'b>(
    bundle: &'b Bundle,
    target: &Target,
) -> Result<(&'b Service, &'b TargetSettings), DispatchError> {
    let Target {
        environment,
        service,
    } = target;
    match bundle.config.target(environment, service) {
        Some((_, s, t)) => Ok((s, t)),
        None => Err(DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{environment}` by the config"
        ))),
    }
}

/// One target's run; an error is reported in it rather than failing the others.
async fn run_reported<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    observations: Vec<Observation>,
    opts: RunOptions,
) -> TargetReport {
    // Boxed: one target's run is a deep future; boxing here keeps the types of everything that
    // awaits several of them (dispatch, the tick, the Lambda handler) shallow.
    match Box::pin(run(ports, bundle, target, observations, opts)).await {
        Ok(r) => r,
        Err(e) => {
            let mut r = TargetReport::new(target);
            r.error = Some(e.to_string());
            r.retry = match &e {
                RunError::Contention { .. } => true,
                RunError::Port(p) => p.kind.is_retryable(),
                RunError::UnknownTarget { .. } => false,
            };
            r
        }
    }
}
