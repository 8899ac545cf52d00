//! A lifecycle hook: which deployment it gates (from the hook details the agent set, else the
//! service ARN), what the target revision runs, then the gates, through the engine.

use serde_json::Value;

use super::{run_reported, target_of, DispatchReport, HookResponse};
use crate::bundle::Bundle;
use crate::engine::{RunOptions, TargetReport};
use crate::event::{service_of_arn, HookPayload, HOOK_DEPLOYMENT, HOOK_ENVIRONMENT, HOOK_SERVICE};
use crate::machine::{HookStatus, Observation, Outcome};
use crate::ports::Ports;
use crate::state::DeploymentId;
use crate::strategy::Stage;
use crate::target::Target;

pub(super) async fn hook<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    stage: Stage,
    payload: &HookPayload,
    opts: RunOptions,
) -> DispatchReport {
    let mut details = payload.hook_details.clone().unwrap_or_default();
    details.insert("harbormaster:stage".into(), stage.as_str().into());
    let callback = bundle.config.agent.hook_callback_seconds;
    let answer = |status: HookStatus, reason: &str| {
        HookResponse::new(status, reason, details.clone(), callback)
    };
    let detail = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_owned);
    let service_arn = &payload.execution_details.service_arn;
    let named = match (detail(HOOK_ENVIRONMENT), detail(HOOK_SERVICE)) {
        (Some(e), Some(s)) if bundle.config.target(&e, &s).is_some() => Some(Target::new(e, s)),
        _ => None,
    };
    let target = named.or_else(|| target_of(bundle, &service_of_arn(service_arn)?));
    let Some(target) = target else {
        let why = format!("{service_arn} is not a service this config deploys; not gating it");
        return DispatchReport {
            hook: Some(answer(HookStatus::Succeeded, &why)),
            ..DispatchReport::ignored(String::new(), "not a service the config deploys".into())
        };
    };
    let obs = Observation::HookInvoked {
        stage,
        deployment: detail(HOOK_DEPLOYMENT).map(DeploymentId),
        revision_task_definition: revision_of(ports, &target, payload).await,
        shifted_back: shifted_back(payload),
    };
    let report = run_reported(ports, bundle, &target, vec![obs], opts).await;
    let (status, reason) = response(&report, opts);
    let hook = Some(answer(status, &reason));
    DispatchReport {
        hook,
        ..DispatchReport::of(String::new(), vec![report])
    }
}

/// Production traffic is on another revision than the target: the target's weight is 0 and
/// another's is not. ECS's rollback calls keep the green revision as the target and flip the
/// weights ("Lifecycle hooks for Amazon ECS service deployments", lifecycle payloads).
fn shifted_back(payload: &HookPayload) -> bool {
    let details = &payload.execution_details;
    let weights = &details.production_traffic_weights;
    let target = weights
        .get(&details.target_service_revision_arn)
        .copied()
        .unwrap_or(0.0);
    target == 0.0
        && weights
            .iter()
            .any(|(rev, w)| *rev != details.target_service_revision_arn && *w > 0.0)
}

/// What the target revision runs. Tells a rollback (whose hooks ECS also runs) from the
/// deployment itself. Best effort: without it the hook details still name the deployment.
async fn revision_of<P: Ports>(
    ports: &P,
    target: &Target,
    payload: &HookPayload,
) -> Option<String> {
    let revision = &payload.execution_details.target_service_revision_arn;
    match ports.revision_task_definition(revision).await {
        Ok(td) => td,
        Err(e) => {
            let Target {
                environment,
                service,
            } = target;
            tracing::warn!(environment = %environment, service = %service, error = %e, "target revision not described; relying on the hook details");
            None
        }
    }
}

/// The engine's answer, or IN_PROGRESS when the gates could not be decided now.
fn response(report: &TargetReport, opts: RunOptions) -> (HookStatus, String) {
    match (&report.outcome, &report.error) {
        (Outcome::HookAnswered { status, reason }, _) => (*status, reason.clone()),
        // The state store unreachable, contention: ask again rather than fail a healthy
        // deployment or pass an unchecked one.
        (_, Some(e)) => (HookStatus::InProgress, format!("could not decide yet: {e}")),
        _ if opts.dry_run => (
            HookStatus::InProgress,
            format!("dry run: would run {}", report.planned.join(", ")),
        ),
        (other, None) => (
            HookStatus::InProgress,
            format!(
                "no answer yet ({})",
                serde_json::to_string(other).unwrap_or_default()
            ),
        ),
    }
}
