//! Rendering for a deployment: the task definition from the template, placed with the
//! bootstrap's outputs, and a native strategy's settings with every ARN resolved.

use crate::bundle::Bundle;
use crate::ports::{PortError, Ports};
use crate::strategy::{output_names, NativeDeployment, HOOK_FUNCTION_OUTPUT, HOOK_ROLE_OUTPUT};
use crate::template::{Placement, RenderInput, RenderedTaskDefinition};

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
    let Some(native) = &t.native else {
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
        agent.hook_callback_seconds,
        &short,
    )
    .map(Some)
    .map_err(RenderError::Other)
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
    #[error("{0}")]
    Other(String),
}
