//! The runner: feeds an observation to the state machine, persists each step with
//! compare-and-swap, then executes the step's commands through the ports and feeds their results
//! back, until nothing is left to do.
//!
//! Order matters for crash safety: a step's state (the intent) is saved *before* its command
//! runs, so a crash between the two is seen by the next invocation, which adopts what the first
//! attempt did instead of doing it again.

use std::collections::BTreeSet;

use serde::Serialize;
use tracing::{info, warn};

use crate::bundle::Bundle;
use crate::machine::{
    decide, Command, Measurement, Observation, Outcome, Rollout, Step, Transition,
};
use crate::ports::{PortError, Ports, SaveError, ServiceSnapshot, StoppedTask, Version};
use crate::state::{DeploymentId, ServiceState};
use crate::strategy::{output_names, NativeDeployment, HOOK_FUNCTION_OUTPUT, HOOK_ROLE_OUTPUT};
use crate::template::{Placement, RenderInput, RenderedTaskDefinition};

/// Steps one invocation takes at most; a deployment needs four, plus one to start what is pending.
const MAX_STEPS: usize = 12;
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
}

/// Runs `observations` in order, each once the previous one has settled, on one reading of the
/// state document. The report's outcome is the last observation's.
pub async fn run<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    observations: Vec<Observation>,
    opts: RunOptions,
) -> Result<TargetReport, RunError> {
    let policy = bundle
        .policy(env, service)
        .ok_or_else(|| RunError::UnknownTarget {
            environment: env.into(),
            service: service.into(),
        })?;
    let key = ServiceState::key(env, service);
    let mut report = TargetReport {
        environment: env.into(),
        service: service.into(),
        outcome: Outcome::Nothing,
        journal: Vec::new(),
        planned: Vec::new(),
        scaling: None,
        metrics: Vec::new(),
        error: None,
    };
    let mut queue = observations.into_iter();
    let Some(mut obs) = queue.next() else {
        return Ok(report);
    };
    let mut current = load(ports, &key, env, service).await?;
    let topic = &bundle.config.notification_topic;
    let mut first_outcome = true;
    let mut conflicts = 0;
    let mut steps = 0;
    // Notifications SNS has taken during this run, and whether the stored outbox still lists some.
    let mut sent = BTreeSet::new();
    let mut unsaved_outbox = false;
    while steps < MAX_STEPS {
        let step = decide(&current.0, &obs, ports.now(), &policy);
        if opts.dry_run {
            // Each observation is decided on the state the previous one would leave; nothing
            // is saved or executed.
            report.outcome = step.outcome.clone();
            report.journal.extend(step.journal.iter().cloned());
            report
                .planned
                .extend(step.commands.iter().map(describe_command));
            report.planned.extend(
                step.notices
                    .iter()
                    .map(|n| format!("Publish \"{}\"", n.subject())),
            );
            match queue.next() {
                Some(next) => {
                    current.0 = step.state;
                    obs = next;
                    continue;
                }
                None => return Ok(report),
            }
        }
        if step.state != current.0 || unsaved_outbox {
            match ports.save(&key, &step.state, current.1.as_ref()).await {
                Ok(v) => {
                    current = (step.state.clone(), Some(v));
                    unsaved_outbox = false;
                }
                Err(SaveError::Conflict) => {
                    conflicts += 1;
                    if conflicts > MAX_CONFLICTS {
                        return Err(RunError::Contention { key });
                    }
                    // Someone moved first: read what they wrote and decide again.
                    current = load(ports, &key, env, service).await?;
                    unsaved_outbox = forget_sent(&mut current.0, &sent);
                    continue;
                }
                Err(SaveError::Port(e)) => return Err(e.into()),
            }
        }
        steps += 1;
        // The first step says what the observation did (queued, progressed…); a later step that
        // starts or ends a deployment, or answers a hook, says more and is what a caller acts on.
        if first_outcome
            || matches!(
                step.outcome,
                Outcome::HookAnswered { .. } | Outcome::Finished { .. } | Outcome::Started { .. }
            )
        {
            report.outcome = step.outcome.clone();
            first_outcome = false;
        }
        log_transitions(env, service, &step);
        report.journal.extend(step.journal.iter().cloned());
        if let Some(d) = &step.scaled {
            report
                .metrics
                .push(crate::scaling::emf_line(env, service, d, ports.now()));
            report.scaling = Some(d.clone());
        }
        unsaved_outbox |= flush_outbox(ports, topic, &mut current.0, &mut sent).await;
        let Some(effect) = step.effect().cloned() else {
            match queue.next() {
                Some(next) => {
                    obs = next;
                    first_outcome = true;
                    continue;
                }
                None => break,
            }
        };
        obs = match execute(ports, bundle, env, service, &current.0, &effect).await {
            Ok(next) => next,
            Err(Failure::Retryable(deployment, e)) => {
                warn!(environment = env, service, deployment_id = %deployment, error = %e, "step interrupted; the next tick retries it");
                report.error = Some(e.to_string());
                let interrupted = Observation::StepInterrupted {
                    deployment,
                    error: e.to_string(),
                };
                let step = decide(&current.0, &interrupted, ports.now(), &policy);
                // Best effort: if this write fails too, the lease lapses by itself.
                if step.state != current.0 || unsaved_outbox {
                    if let Ok(v) = ports.save(&key, &step.state, current.1.as_ref()).await {
                        log_transitions(env, service, &step);
                        report.journal.extend(step.journal);
                        current = (step.state, Some(v));
                        unsaved_outbox = false;
                    }
                }
                // What else was asked still gets its turn (the tick after its reconcile).
                match queue.next() {
                    Some(next) => {
                        first_outcome = true;
                        next
                    }
                    None => return Ok(report),
                }
            }
            Err(Failure::Permanent(deployment, error)) => {
                Observation::StepFailed { deployment, error }
            }
        };
    }
    if unsaved_outbox {
        persist_sent(ports, &key, env, service, current, &sent).await;
    }
    Ok(report)
}

/// Publishes what waits in the outbox; keeps what SNS did not take. Returns whether the outbox
/// changed (and so needs saving).
async fn flush_outbox<P: Ports>(
    ports: &P,
    topic: &str,
    state: &mut ServiceState,
    sent: &mut BTreeSet<String>,
) -> bool {
    let waiting = std::mem::take(&mut state.outbox);
    let before = waiting.len();
    for n in waiting {
        if sent.contains(&n.id) {
            continue;
        }
        match ports.publish(topic, &n).await {
            Ok(()) => {
                sent.insert(n.id.clone());
            }
            Err(e) => {
                warn!(environment = %state.environment, service = %state.service, deployment_id = %n.deployment_id, error = %e, "notification not sent yet; kept for the next invocation");
                state.outbox.push(n);
            }
        }
    }
    state.outbox.len() != before
}

fn forget_sent(state: &mut ServiceState, sent: &BTreeSet<String>) -> bool {
    let before = state.outbox.len();
    state.outbox.retain(|n| !sent.contains(&n.id));
    state.outbox.len() != before
}

/// Removes sent notifications from the stored outbox; if this fails, the next invocation sends
/// them again (at least once, never lost).
async fn persist_sent<P: Ports>(
    ports: &P,
    key: &str,
    env: &str,
    service: &str,
    mut current: (ServiceState, Option<Version>),
    sent: &BTreeSet<String>,
) {
    for _ in 0..MAX_CONFLICTS {
        match ports.save(key, &current.0, current.1.as_ref()).await {
            Ok(_) => return,
            Err(SaveError::Conflict) => match load(ports, key, env, service).await {
                Ok(mut fresh) => {
                    if !forget_sent(&mut fresh.0, sent) {
                        return;
                    }
                    current = fresh;
                }
                Err(_) => return,
            },
            Err(SaveError::Port(e)) => {
                warn!(environment = env, service, error = %e, "sent notifications stay in the outbox; they may be sent twice");
                return;
            }
        }
    }
}

async fn load<P: Ports>(
    ports: &P,
    key: &str,
    env: &str,
    service: &str,
) -> Result<(ServiceState, Option<Version>), PortError> {
    Ok(match ports.load(key).await? {
        Some((s, v)) => (s, Some(v)),
        None => (ServiceState::new(env, service), None),
    })
}

fn log_transitions(env: &str, service: &str, step: &Step) {
    for t in &step.journal {
        info!(
            environment = env,
            service,
            deployment_id = t.deployment.as_ref().map(|d| d.0.as_str()).unwrap_or(""),
            digest = t.digest.as_ref().map(|d| d.as_str()).unwrap_or(""),
            from = %t.from,
            to = %t.to,
            note = %t.note,
            "transition"
        );
    }
}

pub fn describe_command(c: &Command) -> String {
    match c {
        Command::FindRevision { deployment, .. } => {
            format!("look for a revision tagged {deployment}")
        }
        Command::RegisterRevision { image, .. } => format!(
            "RegisterTaskDefinition with {}@{}",
            image.repository, image.digest
        ),
        Command::UpdateService {
            task_definition_arn,
            adopt,
            ..
        } => {
            if *adopt {
                format!("UpdateService to {task_definition_arn} (unless it already runs it)")
            } else {
                format!("UpdateService to {task_definition_arn}")
            }
        }
        Command::ObserveRollout {
            task_definition_arn,
            ..
        } => format!("DescribeServices (rollout of {task_definition_arn})"),
        Command::MeasureChecks { stage, .. } => {
            format!("GetMetricData for the checks at {stage}")
        }
        Command::CheckGuards => "DescribeAlarms (guard alarms)".into(),
        Command::MeasureBacklog => "read the backlog and DescribeServices".into(),
        Command::SetDesired { desired } => format!("UpdateService desiredCount={desired}"),
        Command::StopRollout { .. } => {
            "StopServiceDeployment (rollback) of the deployment in progress".into()
        }
        Command::ExplainFailure {
            task_definition_arn,
            ..
        } => format!("DescribeServices and stopped tasks of {task_definition_arn}"),
    }
}

/// The native strategy's settings with every ARN known: from the config, else from the
/// bootstrap's and the agent's outputs in SSM. `Ok(None)` for a rolling service.
pub async fn native_for<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
) -> Result<Option<NativeDeployment>, RenderError> {
    let Some((_, s, t)) = bundle.config.target(env, service) else {
        return Err(RenderError::Other(format!(
            "no service `{service}` in environment `{env}`"
        )));
    };
    let Some(native) = &s.native else {
        return Ok(None);
    };
    let project = &bundle.config.project;
    let env_root = format!("/{project}/{env}/outputs/");
    let agent_root = format!("/{project}/agent/");
    let mut names: Vec<String> = output_names(&s.name)
        .iter()
        .map(|(_, short)| format!("{env_root}{short}"))
        .collect();
    names.push(format!("{agent_root}{HOOK_FUNCTION_OUTPUT}"));
    names.push(format!("{agent_root}{HOOK_ROLE_OUTPUT}"));
    let found = ports.outputs(&names).await.map_err(RenderError::Port)?;
    let short = found
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k
                .strip_prefix(&env_root)
                .or_else(|| k.strip_prefix(&agent_root))?
                .to_owned();
            Some((k, v))
        })
        .collect();
    let agent = &bundle.config.agent;
    NativeDeployment::resolve(
        &s.name,
        native,
        &t.gates,
        (
            agent.hook_function_arn.as_deref(),
            agent.hook_role_arn.as_deref(),
        ),
        &short,
    )
    .map(Some)
    .map_err(RenderError::Other)
}

/// A failed rollout's reason with what explains it: stopped tasks' reasons and exit codes.
fn with_stopped_tasks(reason: String, stopped: &[StoppedTask]) -> String {
    if stopped.is_empty() {
        return reason;
    }
    let tasks: Vec<String> = stopped.iter().take(3).map(StoppedTask::describe).collect();
    format!("{reason} (stopped tasks: {})", tasks.join(" | "))
}

enum Failure {
    Retryable(DeploymentId, PortError),
    Permanent(DeploymentId, String),
}

fn classify(deployment: &DeploymentId, e: PortError) -> Failure {
    if e.kind.is_retryable() {
        Failure::Retryable(deployment.clone(), e)
    } else {
        Failure::Permanent(deployment.clone(), e.to_string())
    }
}

pub async fn render_for<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    digest: &crate::image::Digest,
    deployment: &str,
) -> Result<RenderedTaskDefinition, RenderError> {
    let (e, s, t) = bundle.config.target(env, service).ok_or_else(|| {
        RenderError::Other(format!("no service `{service}` in environment `{env}`"))
    })?;
    let template = bundle
        .templates
        .get(service)
        .ok_or_else(|| RenderError::Other(format!("no template loaded for `{service}`")))?;
    let mut placement: Placement = ports.placement(e).await.map_err(RenderError::Port)?;
    if let Some(r) = &bundle.config.region {
        placement.region = r.clone();
    }
    template
        .render(&RenderInput {
            config: &bundle.config,
            environment: e,
            service: s,
            target: t,
            digest,
            placement: &placement,
            deployment_id: deployment,
        })
        .map_err(|e| RenderError::Other(e.to_string()))
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Port(PortError),
    #[error("{0}")]
    Other(String),
}

async fn execute<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    state: &ServiceState,
    command: &Command,
) -> Result<Observation, Failure> {
    let render = |deployment: &DeploymentId, digest: crate::image::Digest| {
        let deployment = deployment.clone();
        async move {
            render_for(ports, bundle, env, service, &digest, &deployment.0)
                .await
                .map_err(|e| render_failure(&deployment, e))
        }
    };
    match command {
        Command::FindRevision { deployment, image } => {
            let td = render(deployment, image.digest.clone()).await?;
            let found = ports
                .find_by_deployment(&td.family, deployment)
                .await
                .map_err(|e| classify(deployment, e))?;
            Ok(Observation::RevisionSearched {
                deployment: deployment.clone(),
                found,
            })
        }
        Command::RegisterRevision { deployment, image } => {
            // A native deployment missing a target group or listener rule fails here, before
            // anything is registered.
            native_for(ports, bundle, env, service)
                .await
                .map_err(|e| render_failure(deployment, e))?;
            let td = render(deployment, image.digest.clone()).await?;
            // A task whose secret is missing fails to start long after the deploy "worked";
            // checking the parameters exist first fails the deployment now, saying which.
            let names: Vec<String> = bundle
                .config
                .target(env, service)
                .map(|(_, _, t)| {
                    t.secrets
                        .values()
                        .filter_map(|s| s.parameter_name(&bundle.config.project, env))
                        .collect()
                })
                .unwrap_or_default();
            if !names.is_empty() {
                let missing = ports
                    .missing(&names)
                    .await
                    .map_err(|e| classify(deployment, e))?;
                if !missing.is_empty() {
                    return Err(Failure::Permanent(
                        deployment.clone(),
                        format!(
                            "SSM parameters referenced as secrets do not exist: {} (create them, then deploy again)",
                            missing.join(", ")
                        ),
                    ));
                }
            }
            let arn = ports
                .register(&td)
                .await
                .map_err(|e| classify(deployment, e))?;
            Ok(Observation::RevisionRegistered {
                deployment: deployment.clone(),
                task_definition_arn: arn,
            })
        }
        Command::UpdateService {
            deployment,
            task_definition_arn,
            adopt,
        } => {
            let mut target = service_target(bundle, env, service, deployment)?;
            target.native = native_for(ports, bundle, env, service)
                .await
                .map_err(|e| render_failure(deployment, e))?;
            if *adopt {
                let snap = ports
                    .describe(&target.cluster, &target.service)
                    .await
                    .map_err(|e| classify(deployment, e))?;
                if let Some(p) = snap
                    .primary()
                    .filter(|p| &p.task_definition == task_definition_arn)
                {
                    return Ok(Observation::ServiceUpdated {
                        deployment: deployment.clone(),
                        ecs_deployment_id: Some(p.id.clone()),
                    });
                }
            }
            let id = ports
                .update(&target, task_definition_arn, deployment)
                .await
                .map_err(|e| classify(deployment, e))?;
            Ok(Observation::ServiceUpdated {
                deployment: deployment.clone(),
                ecs_deployment_id: id,
            })
        }
        Command::ObserveRollout {
            deployment,
            task_definition_arn,
            ecs_deployment_id,
        } => {
            let target = service_target(bundle, env, service, deployment)?;
            let snap = ports
                .describe(&target.cluster, &target.service)
                .await
                .map_err(|e| classify(deployment, e))?;
            let previous = state
                .last_known_good
                .as_ref()
                .map(|g| g.task_definition_arn.as_str());
            let mut rollout = rollout_of(
                &snap,
                task_definition_arn,
                ecs_deployment_id.as_deref(),
                previous,
            );
            if let Rollout::Failed { reason } | Rollout::RolledBack { reason, .. } = &mut rollout {
                // Best effort: the verdict stands without the explanation.
                let stopped = ports
                    .stopped_tasks(&target.cluster, &target.service, task_definition_arn)
                    .await
                    .unwrap_or_default();
                *reason = with_stopped_tasks(std::mem::take(reason), &stopped);
            }
            Ok(Observation::RolloutObserved {
                deployment: deployment.clone(),
                rollout,
            })
        }
        Command::MeasureChecks { deployment, stage } => {
            let policy = bundle
                .policy(env, service)
                .ok_or_else(|| left_the_config(deployment))?;
            let now = ports.now();
            let mut measurements = Vec::new();
            for check in policy.gates.checks_at(*stage) {
                let start = now - chrono::Duration::minutes(check.window_minutes.into());
                // Anything that keeps a value from being measured is inconclusive, never a pass.
                let value = match ports.measure(&check.queries, start, now).await {
                    Err(e) => Err(format!("GetMetricData failed: {e}")),
                    Ok(series) => match series.iter().find(|s| s.id == check.value) {
                        None => Err(format!(
                            "CloudWatch returned no result for `{}`",
                            check.value
                        )),
                        Some(s) => match &s.problem {
                            Some(p) => Err(p.clone()),
                            None => check.worst(&s.values).ok_or_else(|| {
                                format!("no datapoints in the last {} min", check.window_minutes)
                            }),
                        },
                    },
                };
                measurements.push(Measurement {
                    check: check.name.clone(),
                    value,
                });
            }
            Ok(Observation::ChecksMeasured {
                deployment: deployment.clone(),
                stage: *stage,
                measurements,
            })
        }
        Command::MeasureBacklog => {
            let Some(policy) = bundle.policy(env, service).and_then(|p| p.scaling) else {
                return Ok(Observation::BacklogMeasured {
                    measured: Err("no scaling in the config".into()),
                });
            };
            let Some(target) = bundle.service_target(env, service) else {
                return Ok(Observation::BacklogMeasured {
                    measured: Err("service left the config".into()),
                });
            };
            // Nothing here fails a deployment: an unreadable backlog leaves the count alone.
            let measured = measure_backlog(ports, &policy, &target)
                .await
                .map_err(|e| e.to_string());
            Ok(Observation::BacklogMeasured { measured })
        }
        Command::SetDesired { desired } => {
            let error = match bundle.service_target(env, service) {
                None => Some("service left the config".to_owned()),
                Some(t) => ports
                    .set_desired(&t.cluster, &t.service, *desired)
                    .await
                    .err()
                    .map(|e| e.to_string()),
            };
            Ok(Observation::DesiredSet {
                desired: *desired,
                error,
            })
        }
        Command::CheckGuards => {
            let guards = bundle
                .config
                .target(env, service)
                .map(|(_, _, t)| t.alarms.guards.clone())
                .unwrap_or_default();
            // Unknown is not clear: if CloudWatch cannot say, the release keeps waiting.
            let firing = match ports.firing(&guards).await {
                Ok(f) => f,
                Err(e) => vec![format!("(guard alarms unreadable: {e})")],
            };
            Ok(Observation::GuardsChecked { firing })
        }
        Command::StopRollout { deployment } => {
            let target = service_target(bundle, env, service, deployment)?;
            let stopped = ports
                .stop_rollout(&target.cluster, &target.service)
                .await
                .map_err(|e| classify(deployment, e))?;
            Ok(Observation::RolloutStopped {
                deployment: deployment.clone(),
                stopped,
            })
        }
        Command::ExplainFailure {
            deployment,
            task_definition_arn,
            reason,
        } => {
            let target = service_target(bundle, env, service, deployment)?;
            let snap = ports
                .describe(&target.cluster, &target.service)
                .await
                .map_err(|e| classify(deployment, e))?;
            let stopped = ports
                .stopped_tasks(&target.cluster, &target.service, task_definition_arn)
                .await
                .unwrap_or_default();
            let events: Vec<&str> = snap.events.iter().take(3).map(String::as_str).collect();
            let mut why = with_stopped_tasks(reason.clone(), &stopped);
            if !events.is_empty() {
                why = format!("{why} (service events: {})", events.join(" | "));
            }
            let rolled_back_to = snap
                .primary()
                .filter(|p| &p.task_definition != task_definition_arn)
                .map(|p| p.task_definition.clone());
            Ok(Observation::FailureExplained {
                deployment: deployment.clone(),
                rolled_back_to,
                reason: why,
            })
        }
    }
}

/// A worker's backlog and its service's desired and running counts: what scaling decides on.
pub async fn measure_backlog<P: Ports>(
    ports: &P,
    policy: &crate::scaling::ScalingPolicy,
    target: &crate::ports::ServiceTarget,
) -> Result<crate::scaling::Measured, PortError> {
    let backlog = ports.backlog(&policy.source).await?;
    let snap = ports.describe(&target.cluster, &target.service).await?;
    Ok(crate::scaling::Measured {
        backlog,
        desired: snap.desired_count.max(0) as u32,
        running: snap.running_count.max(0) as u32,
    })
}

fn left_the_config(deployment: &DeploymentId) -> Failure {
    Failure::Permanent(deployment.clone(), "service left the config".into())
}

fn service_target(
    bundle: &Bundle,
    env: &str,
    service: &str,
    deployment: &DeploymentId,
) -> Result<crate::ports::ServiceTarget, Failure> {
    bundle
        .service_target(env, service)
        .ok_or_else(|| left_the_config(deployment))
}

fn render_failure(deployment: &DeploymentId, e: RenderError) -> Failure {
    match e {
        RenderError::Port(p) => classify(deployment, p),
        RenderError::Other(m) => Failure::Permanent(deployment.clone(), m),
    }
}

/// What ECS's view of the service means for our deployment.
pub fn rollout_of(
    snap: &ServiceSnapshot,
    arn: &str,
    ecs_id: Option<&str>,
    previous: Option<&str>,
) -> Rollout {
    let ours = snap
        .deployments
        .iter()
        .find(|d| Some(d.id.as_str()) == ecs_id)
        .or_else(|| snap.deployments.iter().find(|d| d.task_definition == arn));
    let recent_events = || {
        let ev: Vec<&str> = snap.events.iter().take(3).map(String::as_str).collect();
        if ev.is_empty() {
            String::new()
        } else {
            format!(" (service events: {})", ev.join(" | "))
        }
    };
    match ours {
        Some(d) => match d.rollout_state.as_deref() {
            Some("FAILED") => {
                let reason = format!(
                    "{}{}",
                    d.rollout_reason
                        .clone()
                        .unwrap_or_else(|| "ECS reported the rollout FAILED".into()),
                    recent_events()
                );
                match snap.primary().filter(|p| p.task_definition != arn) {
                    Some(p) => Rollout::RolledBack {
                        reason,
                        to: p.task_definition.clone(),
                    },
                    None => Rollout::Failed { reason },
                }
            }
            Some("COMPLETED") if d.status == "PRIMARY" => Rollout::Completed,
            // No longer primary and not failed: a newer deployment from elsewhere took over.
            _ if d.status != "PRIMARY" => Rollout::Replaced {
                by: snap
                    .primary()
                    .map(|p| p.task_definition.clone())
                    .unwrap_or_else(|| snap.task_definition.clone()),
            },
            // Without rollout state (older ECS answers): done when alone and at strength.
            None if d.status == "PRIMARY"
                && snap.deployments.len() == 1
                && d.running >= d.desired =>
            {
                Rollout::Completed
            }
            _ => Rollout::InProgress,
        },
        None if snap.task_definition == arn => Rollout::Completed,
        None if previous == Some(snap.task_definition.as_str()) => Rollout::RolledBack {
            reason: format!("ECS no longer lists the deployment{}", recent_events()),
            to: snap.task_definition.clone(),
        },
        None => Rollout::Replaced {
            by: snap.task_definition.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::EcsDeployment;

    fn dep(id: &str, status: &str, td: &str, state: &str) -> EcsDeployment {
        EcsDeployment {
            id: id.into(),
            status: status.into(),
            task_definition: td.into(),
            rollout_state: Some(state.into()),
            ..Default::default()
        }
    }

    fn snap(deployments: Vec<EcsDeployment>) -> ServiceSnapshot {
        ServiceSnapshot {
            task_definition: deployments[0].task_definition.clone(),
            desired_count: 1,
            running_count: 1,
            deployments,
            events: vec!["(service web) has started 1 tasks".into()],
        }
    }

    #[test]
    fn rollout_states_map_to_outcomes() {
        let ours = "td:2";
        let cases = [
            (
                snap(vec![dep("d2", "PRIMARY", ours, "COMPLETED")]),
                "completed",
            ),
            (
                snap(vec![
                    dep("d2", "PRIMARY", ours, "IN_PROGRESS"),
                    dep("d1", "ACTIVE", "td:1", "COMPLETED"),
                ]),
                "in_progress",
            ),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:1", "COMPLETED"),
                    dep("d2", "ACTIVE", ours, "FAILED"),
                ]),
                "rolled_back",
            ),
            (snap(vec![dep("d2", "PRIMARY", ours, "FAILED")]), "failed"),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:9", "IN_PROGRESS"),
                    dep("d2", "ACTIVE", ours, "IN_PROGRESS"),
                ]),
                "replaced",
            ),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:9", "IN_PROGRESS"),
                    dep("d2", "ACTIVE", ours, "COMPLETED"),
                ]),
                "replaced",
            ),
            (
                snap(vec![dep("d1", "PRIMARY", "td:1", "COMPLETED")]),
                "rolled_back",
            ),
            (
                snap(vec![dep("d9", "PRIMARY", "td:9", "COMPLETED")]),
                "replaced",
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            let got = rollout_of(s, ours, Some("d2"), Some("td:1"));
            let word = serde_json::to_value(&got).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(&word, want, "case {i}: {got:?}");
        }
        let failed = rollout_of(
            &snap(vec![dep("d2", "PRIMARY", ours, "FAILED")]),
            ours,
            Some("d2"),
            None,
        );
        assert!(
            matches!(failed, Rollout::Failed { reason } if reason.contains("has started 1 tasks"))
        );
    }
}
