//! Dispatch: an event in, the affected (environment, service) pairs run, a report out. The Lambda
//! functions and `harbormaster invoke` both call exactly this.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::alarm::{AlarmChange, TAG_ENVIRONMENT, TAG_SERVICE};
use crate::bundle::Bundle;
use crate::engine::{run, RunOptions, TargetReport};
use crate::event::{
    service_of_arn, EcrAction, Event, EventError, HookPayload, HOOK_DEPLOYMENT, HOOK_ENVIRONMENT,
    HOOK_SERVICE,
};
use crate::image::{Digest, Image};
use crate::machine::{EcsChange, HookStatus, Observation, Outcome};
use crate::ports::{PortError, Ports};
use crate::state::DeploymentId;
use crate::strategy::Stage;

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
    pub fn reason(&self) -> &str {
        self.hook_details
            .get("harbormaster:reason")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
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
}

impl DispatchReport {
    /// Targets whose run ended in an error (worth a retry of the whole event: it is idempotent).
    pub fn errors(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter_map(|t| {
                t.error
                    .as_ref()
                    .map(|e| format!("{}/{}: {e}", t.environment, t.service))
            })
            .collect()
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

pub async fn handle_event<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    value: &Value,
    opts: RunOptions,
) -> Result<DispatchReport, DispatchError> {
    let event = Event::parse(value)?;
    let description = event.describe();
    match event {
        Event::EcrImageAction { id, action, .. } => match action {
            EcrAction::NothingToDeploy(why) => Ok(DispatchReport::ignored(description, why)),
            EcrAction::Pushed(image) => {
                let targets = push_targets(bundle, &image);
                if targets.is_empty() {
                    let tag = image.tag.clone().unwrap_or_default();
                    return Ok(DispatchReport::ignored(
                        description,
                        format!("no environment auto-deploys {}:{tag}", image.repository),
                    ));
                }
                let runs = targets.iter().map(|(env, svc)| {
                    let obs = Observation::ImagePushed {
                        event_id: id.clone(),
                        image: image.clone(),
                    };
                    run_reported(ports, bundle, env, svc, vec![obs], opts)
                });
                Ok(DispatchReport {
                    event: description,
                    ignored: None,
                    targets: futures::future::join_all(runs).await,
                    hook: None,
                })
            }
        },
        Event::Scheduled { .. } => {
            let mut r = tick(ports, bundle, opts).await;
            r.event = description;
            Ok(r)
        }
        Event::Hook { stage, payload } => {
            let mut r = hook(ports, bundle, stage, &payload, opts).await;
            r.event = description;
            Ok(r)
        }
        Event::EcsDeployment {
            id,
            service: (cluster, ecs_service),
            detail,
        } => {
            let (env, svc) = match known_target(bundle, &cluster, &ecs_service) {
                Ok(t) => t,
                Err(why) => return Ok(DispatchReport::ignored(description, why)),
            };
            let change = match detail.event_name.as_str() {
                "SERVICE_DEPLOYMENT_IN_PROGRESS" => EcsChange::InProgress,
                "SERVICE_DEPLOYMENT_COMPLETED" => EcsChange::Completed,
                "SERVICE_DEPLOYMENT_FAILED" => EcsChange::Failed,
                other => {
                    return Ok(DispatchReport::ignored(
                        description,
                        format!("{other}: not a deployment state the agent acts on"),
                    ))
                }
            };
            let obs = Observation::EcsDeploymentChanged {
                event_id: id,
                ecs_deployment_id: detail.deployment_id,
                change,
                reason: detail
                    .reason
                    .unwrap_or_else(|| detail.event_name.to_lowercase()),
                updated_at: detail.updated_at,
            };
            Ok(DispatchReport {
                event: description,
                ignored: None,
                targets: vec![run_reported(ports, bundle, &env, &svc, vec![obs], opts).await],
                hook: None,
            })
        }
        Event::Alarms(changes) => {
            let mut targets = Vec::new();
            let mut unmapped = Vec::new();
            for change in changes {
                let mapped = alarm_targets(ports, bundle, &change).await?;
                if mapped.is_empty() {
                    unmapped.push(change.alarm.clone());
                }
                for (env, svc) in mapped {
                    let obs = Observation::AlarmChanged {
                        change: change.clone(),
                    };
                    targets.push(run_reported(ports, bundle, &env, &svc, vec![obs], opts).await);
                }
            }
            Ok(DispatchReport {
                event: description,
                ignored: (!unmapped.is_empty()).then(|| {
                    format!(
                        "no service's `alarms` names {}, and no harbormaster:service/environment tags map it",
                        unmapped.join(", ")
                    )
                }),
                targets,
                hook: None,
            })
        }
        Event::EcsServiceAction {
            service: (cluster, ecs_service),
            detail,
            ..
        } => {
            let (env, svc) = match known_target(bundle, &cluster, &ecs_service) {
                Ok(t) => t,
                Err(why) => return Ok(DispatchReport::ignored(description, why)),
            };
            if detail.event_name != "SERVICE_STEADY_STATE" {
                return Ok(DispatchReport::ignored(
                    description,
                    format!(
                        "{}: the tick follows the rollout; nothing to decide now",
                        detail.event_name
                    ),
                ));
            }
            // Steady state is the moment to look: the rollout has settled one way or the other.
            Ok(DispatchReport {
                event: description,
                ignored: None,
                targets: vec![
                    run_reported(ports, bundle, &env, &svc, vec![Observation::Tick], opts).await,
                ],
                hook: None,
            })
        }
    }
}

fn known_target(bundle: &Bundle, cluster: &str, service: &str) -> Result<(String, String), String> {
    target_of(bundle, cluster, service)
        .ok_or_else(|| format!("{cluster}/{service} is not a service the config deploys"))
}

/// An alarm speaks for the services whose config names it (or matches it with a pattern);
/// failing that, for the one its `harbormaster:environment` and `harbormaster:service` tags
/// name.
async fn alarm_targets<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    change: &AlarmChange,
) -> Result<Vec<(String, String)>, PortError> {
    let named: Vec<(String, String)> = bundle
        .config
        .targets()
        .filter(|(_, _, t)| t.alarms.speaks_for(&change.alarm))
        .map(|(e, s, _)| (e.name.clone(), s.name.clone()))
        .collect();
    if !named.is_empty() {
        return Ok(named);
    }
    let Some(arn) = &change.arn else {
        return Ok(Vec::new());
    };
    let tags = ports.alarm_tags(arn).await?;
    Ok(match (tags.get(TAG_ENVIRONMENT), tags.get(TAG_SERVICE)) {
        (Some(e), Some(s)) if bundle.config.target(e, s).is_some() => vec![(e.clone(), s.clone())],
        _ => Vec::new(),
    })
}

/// The (environment, service) deploying ECS service `service` in cluster `cluster`.
pub fn target_of(bundle: &Bundle, cluster: &str, service: &str) -> Option<(String, String)> {
    bundle
        .config
        .targets()
        .find(|(e, s, _)| e.cluster == cluster && s.ecs_service == service)
        .map(|(e, s, _)| (e.name.clone(), s.name.clone()))
}

/// A lifecycle hook: which deployment it gates (from the hook details the agent set, else the
/// service ARN), what the target revision runs, then the gates, through the engine.
async fn hook<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    stage: Stage,
    payload: &HookPayload,
    opts: RunOptions,
) -> DispatchReport {
    let mut details = payload.hook_details.clone().unwrap_or_default();
    let detail = |k: &str| details.get(k).and_then(Value::as_str).map(str::to_owned);
    let named = match (detail(HOOK_ENVIRONMENT), detail(HOOK_SERVICE)) {
        (Some(e), Some(s)) if bundle.config.target(&e, &s).is_some() => Some((e, s)),
        _ => None,
    };
    let target = named.or_else(|| {
        let (cluster, service) = service_of_arn(&payload.execution_details.service_arn)?;
        target_of(bundle, &cluster, &service)
    });
    let deployment = detail(HOOK_DEPLOYMENT).map(DeploymentId);
    let callback = bundle.config.agent.hook_callback_seconds;
    let mut answer = |status: HookStatus, reason: String| {
        details.insert("harbormaster:stage".into(), stage.as_str().into());
        details.insert("harbormaster:reason".into(), reason.into());
        HookResponse {
            hook_status: status,
            call_back_delay: (status == HookStatus::InProgress).then_some(callback),
            hook_details: details.clone(),
        }
    };
    let Some((env, svc)) = target else {
        return DispatchReport {
            event: String::new(),
            ignored: Some("not a service the config deploys".into()),
            targets: Vec::new(),
            hook: Some(answer(
                HookStatus::Succeeded,
                format!(
                    "{} is not a service this config deploys; not gating it",
                    payload.execution_details.service_arn
                ),
            )),
        };
    };
    // Tells a rollback (whose hooks ECS also runs) from the deployment itself. Best effort:
    // without it the hook details still name the deployment.
    let revision_task_definition = match ports
        .revision_task_definition(&payload.execution_details.target_service_revision_arn)
        .await
    {
        Ok(td) => td,
        Err(e) => {
            tracing::warn!(environment = %env, service = %svc, error = %e, "target revision not described; relying on the hook details");
            None
        }
    };
    let obs = Observation::HookInvoked {
        stage,
        deployment,
        revision_task_definition,
    };
    let report = run_reported(ports, bundle, &env, &svc, vec![obs], opts).await;
    let response = match (&report.outcome, &report.error) {
        (Outcome::HookAnswered { status, reason }, _) => answer(*status, reason.clone()),
        // The gates could not be decided now (state store unreachable, contention): ask again
        // rather than fail a healthy deployment or pass an unchecked one.
        (_, Some(e)) => answer(HookStatus::InProgress, format!("could not decide yet: {e}")),
        _ if opts.dry_run => answer(
            HookStatus::InProgress,
            format!("dry run: would run {}", report.planned.join(", ")),
        ),
        (other, None) => answer(
            HookStatus::InProgress,
            format!(
                "no answer yet ({})",
                serde_json::to_string(other).unwrap_or_default()
            ),
        ),
    };
    DispatchReport {
        event: String::new(),
        ignored: None,
        targets: vec![report],
        hook: Some(response),
    }
}

/// Moves one target's deployment on now (what the tick does for it), instead of waiting for
/// the next tick: a pipeline job asking how its release stands.
pub async fn follow<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    opts: RunOptions,
) -> TargetReport {
    run_reported(ports, bundle, env, service, vec![Observation::Tick], opts).await
}

/// Sizes a worker service from its backlog now (what the tick does each minute). With
/// `dry_run` it reads the backlog and the service and decides, but saves and changes nothing.
pub async fn scale<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    let (_, _, t) = bundle.config.target(env, service).ok_or_else(|| {
        DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{env}` by the config"
        ))
    })?;
    let Some(policy) = t.scaling.clone() else {
        return Err(DispatchError::Usage(format!(
            "`{service}` has no `scaling` in `{env}`: nothing to decide"
        )));
    };
    if !opts.dry_run {
        return Ok(run_reported(
            ports,
            bundle,
            env,
            service,
            vec![Observation::ScaleTick],
            opts,
        )
        .await);
    }
    let state = ports
        .load(&crate::state::ServiceState::key(env, service))
        .await?
        .map(|(s, _)| s)
        .unwrap_or_else(|| crate::state::ServiceState::new(env, service));
    let target = bundle.service_target(env, service).ok_or_else(|| {
        DispatchError::Usage(format!("no service `{service}` in environment `{env}`"))
    })?;
    let measured = crate::engine::measure_backlog(ports, &policy, &target).await?;
    let (d, _) = crate::scaling::decide(
        &policy,
        &state.scaling,
        measured,
        state.in_flight.is_some(),
        ports.now(),
    );
    Ok(TargetReport {
        environment: env.into(),
        service: service.into(),
        outcome: Outcome::Nothing,
        journal: Vec::new(),
        planned: if d.changes() {
            vec![format!("UpdateService desiredCount={}", d.desired)]
        } else {
            Vec::new()
        },
        metrics: vec![crate::scaling::emf_line(env, service, &d, ports.now())],
        scaling: Some(d),
        error: None,
    })
}

/// A person puts a service back on a known good revision (`to`: one from its history).
pub async fn request_rollback<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    to: Option<String>,
    by: &str,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    if bundle.config.target(env, service).is_none() {
        return Err(DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{env}` by the config"
        )));
    }
    let obs = Observation::RollbackRequested {
        to,
        by: by.to_owned(),
    };
    Ok(run_reported(ports, bundle, env, service, vec![obs], opts).await)
}

/// A person approves or rejects the deployment in flight (its approval gate).
#[allow(clippy::too_many_arguments)]
pub async fn record_approval<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    approved: bool,
    by: &str,
    summary: Option<String>,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    if bundle.config.target(env, service).is_none() {
        return Err(DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{env}` by the config"
        )));
    }
    let obs = Observation::ApprovalRecorded {
        approved,
        by: by.to_owned(),
        summary,
    };
    Ok(run_reported(ports, bundle, env, service, vec![obs], opts).await)
}

/// (environment, service) pairs that deploy this push automatically.
pub fn push_targets(bundle: &Bundle, image: &Image) -> Vec<(String, String)> {
    let tag = image.tag.as_deref().unwrap_or("");
    bundle
        .config
        .targets()
        .filter(|(e, s, t)| {
            e.auto_deploy
                && s.repository == image.repository
                && t.follow.as_ref().is_some_and(|rule| rule.matches(tag))
        })
        .map(|(e, s, _)| (e.name.clone(), s.name.clone()))
        .collect()
}

async fn run_reported<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    observations: Vec<Observation>,
    opts: RunOptions,
) -> TargetReport {
    // Boxed: one target's run is a deep future; boxing here keeps the types of everything that
    // awaits several of them (dispatch, the tick, the Lambda handler) shallow.
    match Box::pin(run(ports, bundle, env, service, observations, opts)).await {
        Ok(r) => r,
        Err(e) => TargetReport {
            environment: env.into(),
            service: service.into(),
            outcome: Outcome::Nothing,
            journal: Vec::new(),
            planned: Vec::new(),
            scaling: None,
            metrics: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Every minute: reconcile pushes whose events were lost, then follow what is in flight.
pub async fn tick<P: Ports>(ports: &P, bundle: &Bundle, opts: RunOptions) -> DispatchReport {
    let mut found: BTreeMap<(String, String), Vec<Image>> = BTreeMap::new();
    let mut errors: BTreeMap<(String, String), String> = BTreeMap::new();
    if bundle.config.agent.reconcile {
        let mut by_repo: BTreeMap<String, Result<Vec<Image>, PortError>> = BTreeMap::new();
        for (e, s, t) in bundle.config.targets() {
            let Some(rule) = t.follow.as_ref().filter(|_| e.auto_deploy) else {
                continue;
            };
            if !by_repo.contains_key(&s.repository) {
                let images = ports.tagged(&s.repository).await;
                by_repo.insert(s.repository.clone(), images);
            }
            match &by_repo[&s.repository] {
                Ok(images) => {
                    let followed: Vec<Image> = images
                        .iter()
                        .filter(|i| i.tag.as_deref().is_some_and(|tag| rule.matches(tag)))
                        .cloned()
                        .collect();
                    if !followed.is_empty() {
                        found.insert((e.name.clone(), s.name.clone()), followed);
                    }
                }
                Err(err) => {
                    errors.insert(
                        (e.name.clone(), s.name.clone()),
                        format!("reconcile: {err}"),
                    );
                }
            }
        }
    }
    let runs = bundle.config.targets().map(|(e, s, _)| {
        let key = (e.name.clone(), s.name.clone());
        let images = found.get(&key).cloned();
        let error = errors.get(&key).cloned();
        async move {
            let (env, svc) = (&key.0, &key.1);
            // The reconcile, then the tick, on one reading of the state document.
            let mut observations: Vec<Observation> = images
                .map(|images| Observation::ImagesListed { images })
                .into_iter()
                .collect();
            observations.push(Observation::Tick);
            // After the deployment's turn, so a release that just started holds the scaler.
            if bundle
                .config
                .target(env, svc)
                .is_some_and(|(_, _, t)| t.scaling.is_some())
            {
                observations.push(Observation::ScaleTick);
            }
            let mut r = run_reported(ports, bundle, env, svc, observations, opts).await;
            if r.error.is_none() {
                r.error = error;
            }
            r
        }
    });
    DispatchReport {
        event: "tick".into(),
        ignored: None,
        targets: futures::future::join_all(runs).await,
        hook: None,
    }
}

/// A person's or a build's deploy request: `reference` is a tag, `sha256:…`, `repo:tag` or
/// `repo@sha256:…` (the repository must be the service's).
#[allow(clippy::too_many_arguments)]
pub async fn request_deploy<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    reference: &str,
    by: &str,
    force: bool,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    let (_, svc, _) = bundle.config.target(env, service).ok_or_else(|| {
        DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{env}` by the config"
        ))
    })?;
    let image = resolve_image(ports, &svc.repository, reference).await?;
    Ok(run_reported(
        ports,
        bundle,
        env,
        service,
        vec![Observation::DeployRequested {
            image,
            by: by.to_owned(),
            force,
        }],
        opts,
    )
    .await)
}

pub async fn resolve_image<P: Ports>(
    ports: &P,
    repository: &str,
    reference: &str,
) -> Result<Image, DispatchError> {
    // Strip a registry host and the repository, if given, keeping `:tag` or `@digest`.
    let mut rest = reference;
    if let Some(i) = rest.find(repository) {
        let after = &rest[i + repository.len()..];
        if after.starts_with(':') || after.starts_with('@') {
            rest = &after[1..];
        } else {
            return Err(DispatchError::Usage(format!(
                "`{reference}` is not an image of repository `{repository}`"
            )));
        }
    } else if rest.contains('/') {
        return Err(DispatchError::Usage(format!(
            "`{reference}` is not an image of repository `{repository}`"
        )));
    }
    let rest = rest.trim_start_matches('@');
    if rest.starts_with("sha256:") {
        let digest = Digest::parse(rest).map_err(|e| DispatchError::Usage(e.to_string()))?;
        ports
            .by_digest(repository, &digest)
            .await?
            .ok_or_else(|| DispatchError::Usage(format!("{repository}@{digest} is not in ECR")))
    } else {
        ports.resolve_tag(repository, rest).await?.ok_or_else(|| {
            DispatchError::Usage(format!(
                "tag `{rest}` is not in ECR repository `{repository}`"
            ))
        })
    }
}
