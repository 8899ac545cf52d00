//! Rendering for a deployment: the task definition from the template, placed with the
//! bootstrap's outputs, and the service's target (network, target group, a native strategy's
//! ARNs) with every id resolved.

use std::collections::BTreeMap;

use crate::bundle::Bundle;
use crate::ports::{PortError, Ports, ServiceTarget};
use crate::service::ServiceOutputs;
use crate::strategy::{output_names, NativeDeployment, HOOK_FUNCTION_OUTPUT, HOOK_ROLE_OUTPUT};
use crate::template::{Placement, RenderInput, RenderedTaskDefinition};

/// The service's target with every id known: the native strategy's ARNs and the service's
/// network and target group, from the config, else from the bootstrap's and the agent's
/// outputs in SSM (one read for all of them).
pub async fn target_for<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
) -> Result<ServiceTarget, RenderError> {
    target_with(ports, bundle, env, service, Outputs::Always).await
}

/// When the bootstrap's outputs are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// Always: a creation needs the network, `run` the task's.
    Always,
    /// Only when the config names something only they resolve (a target group, the load
    /// balancer, a native strategy's ARNs): an update of any other service makes no SSM call
    /// and leaves its network as it is.
    IfNeeded,
}

/// [`target_for`], reading the outputs as `when` says.
pub async fn target_with<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    when: Outputs,
) -> Result<ServiceTarget, RenderError> {
    let (Some((_, s, t)), Some(mut target)) = (
        bundle.config.target(env, service),
        bundle.service_target(env, service),
    ) else {
        return Err(RenderError::Other(format!(
            "no service `{service}` in environment `{env}`"
        )));
    };
    let needed = t.native.is_some() || !target.settings.missing.is_empty();
    if when == Outputs::IfNeeded && !needed {
        return Ok(target);
    }
    let project = &bundle.config.project;
    let env_root = format!("/{project}/{env}/outputs/");
    let agent_root = format!("/{project}/agent/");
    let mut names: Vec<String> = ServiceOutputs::names(&s.name)
        .iter()
        .map(|short| format!("{env_root}{short}"))
        .collect();
    if t.native.is_some() {
        names.extend(
            output_names(&s.name)
                .iter()
                .map(|(_, short)| format!("{env_root}{short}")),
        );
        names.push(format!("{agent_root}{HOOK_FUNCTION_OUTPUT}"));
        names.push(format!("{agent_root}{HOOK_ROLE_OUTPUT}"));
    }
    names.sort();
    names.dedup();
    let found = ports.outputs(&names).await.map_err(RenderError::Port)?;
    let short: BTreeMap<String, String> = found
        .into_iter()
        .filter_map(|(k, v)| {
            let k = k
                .strip_prefix(&env_root)
                .or_else(|| k.strip_prefix(&agent_root))?
                .to_owned();
            Some((k, v))
        })
        .collect();
    if let Some(settings) = bundle.resolved_service(env, service, &short) {
        target.settings = settings;
    }
    let Some(native) = &t.native else {
        return Ok(target);
    };
    let agent = &bundle.config.agent;
    target.native = Some(NativeDeployment::resolve(
        &s.name,
        native,
        &t.gates,
        (
            agent.hook_function_arn.as_deref(),
            agent.hook_role_arn.as_deref(),
        ),
        agent.hook_callback_seconds,
        &short,
    )?);
    Ok(target)
}

/// The task definition `service` would get in `env` for the image `digest`.
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
    /// A native deployment missing pieces neither the config nor the outputs name.
    #[error(transparent)]
    Unresolved(#[from] crate::strategy::Unresolved),
    #[error("{0}")]
    Other(String),
}
