//! What a person or a build asks for: deploy an image, roll back, approve or reject, follow a
//! deployment now, size a worker now.

use super::{configured, run_reported, DispatchError};
use crate::bundle::Bundle;
use crate::engine::{measure_backlog, RunOptions, TargetReport};
use crate::image::resolve_image;
use crate::machine::Observation;
use crate::ports::Ports;
use crate::state::ServiceState;
use crate::target::Target;

/// A person's or a build's deploy request: `reference` is a tag, `sha256:…`, `repo:tag` or
/// `repo@sha256:…` (the repository must be the service's).
pub async fn request_deploy<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    reference: &str,
    by: &str,
    force: bool,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    let (svc, _) = configured(bundle, target)?;
    let image = resolve_image(ports, &svc.repository, reference).await?;
    let obs = Observation::DeployRequested {
        image,
        by: by.to_owned(),
        force,
    };
    Ok(run_reported(ports, bundle, target, vec![obs], opts).await)
}

/// The image the agent last deployed to `target` successfully: what a config-only deploy
/// releases again with git's config.
pub async fn running_image<P: Ports>(
    ports: &P,
    target: &Target,
) -> Result<crate::image::Digest, DispatchError> {
    let state = ports.load(&target.state_key()).await?.map(|(s, _)| s);
    let good = state.and_then(|s| s.last_known_good);
    good.map(|g| g.image.digest).ok_or_else(|| {
        DispatchError::Usage(format!(
            "{}/{}: the agent has deployed nothing here yet; give --image for the first deployment",
            target.environment, target.service
        ))
    })
}

/// A person puts a service back on a known good revision (`to`: one from its history).
pub async fn request_rollback<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    to: Option<String>,
    force: bool,
    by: &str,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    configured(bundle, target)?;
    let obs = Observation::RollbackRequested {
        to,
        by: by.to_owned(),
        force,
    };
    Ok(run_reported(ports, bundle, target, vec![obs], opts).await)
}

/// A person approves or rejects the deployment in flight (its approval gate).
pub async fn record_approval<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    approved: bool,
    by: &str,
    summary: Option<String>,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    configured(bundle, target)?;
    // Both are kept in the state document: bounded like anything else from outside.
    use crate::text::{clipped, MAX_ID, MAX_REASON};
    let obs = Observation::ApprovalRecorded {
        approved,
        by: clipped(by, MAX_ID),
        summary: summary.map(|s| clipped(&s, MAX_REASON)),
    };
    Ok(run_reported(ports, bundle, target, vec![obs], opts).await)
}

/// Moves one target's deployment on now (what the tick does for it), instead of waiting for
/// the next tick: a pipeline job or `deploy --wait` asking how its release stands.
pub async fn follow<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    opts: RunOptions,
) -> TargetReport {
    run_reported(ports, bundle, target, vec![Observation::Tick], opts).await
}

/// Sizes a worker service from its backlog now (what the tick does each minute). With
/// `dry_run` it reads the backlog and the service and decides, but saves and changes nothing.
pub async fn scale<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    target: &Target,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    let (_, t) = configured(bundle, target)?;
    let Target {
        environment: env,
        service,
    } = target;
    let Some(policy) = t.scaling.clone() else {
        return Err(DispatchError::Usage(format!(
            "`{service}` has no `scaling` in `{env}`: nothing to decide"
        )));
    };
    if !opts.dry_run {
        let obs = vec![Observation::ScaleTick];
        return Ok(run_reported(ports, bundle, target, obs, opts).await);
    }
    let state = ports
        .load(&target.state_key())
        .await?
        .map(|(s, _)| s)
        .unwrap_or_else(|| ServiceState::new(env, service));
    let service_target = bundle.service_target(env, service).ok_or_else(|| {
        DispatchError::Usage(format!("no service `{service}` in environment `{env}`"))
    })?;
    let measured = measure_backlog(ports, &policy, &service_target).await?;
    let deploying = state.in_flight.is_some();
    let (d, _) = crate::scaling::decide(&policy, &state.scaling, measured, deploying, ports.now());
    let mut report = TargetReport::new(target);
    if d.changes() {
        report.planned = vec![format!("UpdateService desiredCount={}", d.desired)];
    }
    report.metrics = vec![crate::scaling::emf_line(env, service, &d, ports.now())];
    report.scaling = Some(d);
    Ok(report)
}
