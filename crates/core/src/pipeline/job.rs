//! The `pipeline-job` use case: a CodePipeline Lambda invoke action deploys the image its build
//! produced and reports back — PutJobSuccessResult with a continuation token while the
//! deployment runs, then with output variables; PutJobFailureResult with the reason otherwise.
//!
//! The job event carries temporary artifact credentials. They are held in [`Redacted`], passed
//! only to [`Pipelines::artifact_files`], and never formatted: not in a log line, an error or a
//! report.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    promotion_allowed, release_status, BuiltImages, JobInputError, JobParams, JobToken,
    ReleaseStatus,
};
use crate::bundle::Bundle;
use crate::dispatch::{follow, request_deploy};
use crate::engine::RunOptions;
use crate::image::resolve_image;
use crate::image::Digest;
use crate::machine::Outcome;
use crate::ports::{ArtifactCredentials, ArtifactLocation, Pipelines, Ports};
use crate::secrets::Redacted;
use crate::state::ServiceState;
use crate::target::Target;

#[derive(Deserialize)]
struct JobEvent {
    #[serde(rename = "CodePipeline.job")]
    job: Job,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Job {
    id: String,
    data: JobData,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JobData {
    action_configuration: ActionConfiguration,
    #[serde(default)]
    input_artifacts: Vec<Artifact>,
    artifact_credentials: Option<Redacted<ArtifactCredentials>>,
    #[serde(default)]
    continuation_token: Option<String>,
}

#[derive(Deserialize)]
struct ActionConfiguration {
    configuration: Configuration,
}

#[derive(Deserialize)]
struct Configuration {
    #[serde(rename = "UserParameters", default)]
    user_parameters: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Artifact {
    name: String,
    location: Location,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Location {
    s3_location: ArtifactLocation,
}

/// How the job ends this time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum JobResult {
    /// PutJobSuccessResult with a continuation token: CodePipeline invokes again.
    Continue {
        token: String,
        summary: String,
    },
    Succeeded {
        outputs: BTreeMap<String, String>,
        summary: String,
    },
    Failed {
        reason: String,
    },
}

impl JobResult {
    pub fn word(&self) -> &'static str {
        match self {
            JobResult::Continue { .. } => "continue",
            JobResult::Succeeded { .. } => "succeeded",
            JobResult::Failed { .. } => "failed",
        }
    }
}

/// The function's report: the job id and what CodePipeline was told.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    pub job_id: String,
    #[serde(flatten)]
    pub result: JobResult,
}

/// The job's id, or why the event is not a job (then there is no job to fail).
pub fn job_id(event: &Value) -> Result<String, JobInputError> {
    event["CodePipeline.job"]["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            JobInputError(
                "malformed CodePipeline job event: `CodePipeline.job.id` is missing".into(),
            )
        })
}

/// The continuation token of an invocation that is a continuation.
pub fn continuation(event: &Value) -> Option<&str> {
    event["CodePipeline.job"]["data"]["continuationToken"].as_str()
}

/// Tells CodePipeline (unless a dry run) and reports what it was told.
pub async fn report<P: Pipelines>(
    ports: &P,
    job_id: String,
    result: JobResult,
    opts: RunOptions,
) -> Result<JobReport, crate::ports::PortError> {
    if !opts.dry_run {
        ports.report_job(&job_id, &result).await?;
    }
    tracing::info!(job_id = %job_id, result = result.word(), "pipeline job reported");
    Ok(JobReport { job_id, result })
}

/// One invocation's work: start the job's deployments, or move them on and say how they stand.
pub async fn step<P: Ports + Pipelines>(
    ports: &P,
    bundle: &Bundle,
    event: &Value,
    opts: RunOptions,
) -> Result<JobResult, JobInputError> {
    // The path and what was expected, never the value: a field may hold credentials.
    let e: JobEvent = crate::json::typed(event)
        .map_err(|e| JobInputError(format!("malformed CodePipeline job event: {e}")))?;
    let data = e.job.data;
    let user_parameters = data.action_configuration.configuration.user_parameters;
    let params = JobParams::parse(user_parameters.as_deref())?;
    for s in &params.services {
        if bundle.config.target(&params.environment, s).is_none() {
            return Err(JobInputError(format!(
                "UserParameters: service `{s}` is not deployed to `{}` by the config",
                params.environment
            )));
        }
    }
    if let Some(token) = data.continuation_token.as_deref() {
        let token = JobToken::decode(token)?;
        for s in token.digests.keys() {
            follow(ports, bundle, &Target::new(&token.environment, s), opts).await;
        }
        return status(ports, token, true).await;
    }
    let artifact = data.input_artifacts.first().ok_or_else(|| {
        JobInputError("the action has no input artifact: give it the build's output".into())
    })?;
    let creds = data
        .artifact_credentials
        .as_ref()
        .ok_or_else(|| JobInputError("the job event carries no artifact credentials".into()))?;
    let files = ports
        .artifact_files(&artifact.location.s3_location, creds)
        .await
        .map_err(|e| JobInputError(format!("input artifact {}: {e}", artifact.name)))?;
    let built = BuiltImages::from_artifact(&artifact.name, &files)?;
    let digests = resolve_all(ports, bundle, &params, &built).await?;
    let token = JobToken {
        environment: params.environment.clone(),
        digests,
    };
    // Too many images to follow: refused before anything is deployed.
    let encoded = token.encode()?;
    let by = format!("codepipeline job {}", e.job.id);
    start(
        ports,
        bundle,
        &params.environment,
        &token.digests,
        &by,
        opts,
    )
    .await?;
    if opts.dry_run {
        return Ok(JobResult::Continue {
            token: encoded,
            summary: "dry run: nothing was deployed".into(),
        });
    }
    // A rollout just started is not done: CodePipeline asks again (about every 30 s) and the
    // continuation moves it on. Only releases that were already in place end the job now.
    status(ports, token, false).await
}

/// Every service's image resolved and checked before any of them is deployed.
async fn resolve_all<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    params: &JobParams,
    built: &BuiltImages,
) -> Result<BTreeMap<String, Digest>, JobInputError> {
    let mut digests = BTreeMap::new();
    for s in &params.services {
        let svc = &bundle.config.services[s];
        let containers = svc.containers.clone().unwrap_or_default();
        let reference = built.for_service(s, &containers)?;
        let image = resolve_image(ports, &svc.repository, &reference)
            .await
            .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        let env_source = (bundle.config.environments.get(&params.environment))
            .and_then(|e| e.promote_from.as_ref());
        if let Some(source) = params.promote_from.as_ref().or(env_source) {
            let state = load(ports, source, s).await?;
            promotion_allowed(source, state.as_ref(), &image.digest)
                .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        }
        digests.insert(s.clone(), image.digest);
    }
    Ok(digests)
}

/// Deploys each service's digest; a release refused for a reason other than "already there"
/// fails the job, saying why.
async fn start<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    digests: &BTreeMap<String, Digest>,
    by: &str,
    opts: RunOptions,
) -> Result<(), JobInputError> {
    for (s, digest) in digests {
        let reference = format!("{}@{digest}", bundle.config.services[s].repository);
        let target = Target::new(env, s);
        let r = request_deploy(ports, bundle, &target, &reference, by, false, opts)
            .await
            .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        if opts.dry_run {
            continue;
        }
        if let Outcome::Refused { reason } = &r.outcome {
            return Err(JobInputError(format!("{s}: {reason}")));
        }
        if let Outcome::Ignored { reason } = &r.outcome {
            let state = load(ports, env, s).await?;
            if let ReleaseStatus::Failed(_) = release_status(state.as_ref(), digest) {
                return Err(JobInputError(format!("{s}: {reason}")));
            }
        }
    }
    Ok(())
}

/// The job's result from the state documents: running, done (with output variables), failed.
async fn status<P: Ports>(
    ports: &P,
    token: JobToken,
    followed: bool,
) -> Result<JobResult, JobInputError> {
    let env = &token.environment;
    let mut outputs = BTreeMap::new();
    let mut running = Vec::new();
    let single = token.digests.len() == 1;
    for (s, digest) in &token.digests {
        let state = load(ports, env, s).await?;
        match release_status(state.as_ref(), digest) {
            ReleaseStatus::Running => running.push(s.clone()),
            ReleaseStatus::Failed(why) => {
                return Err(JobInputError(format!("{s} in {env}: {why}")))
            }
            ReleaseStatus::Succeeded {
                task_definition_arn,
                deployment_id,
            } => {
                let key = |k: &str| {
                    if single {
                        k.to_owned()
                    } else {
                        format!("{s}_{k}")
                    }
                };
                outputs.insert(key("TaskDefinitionArn"), task_definition_arn);
                outputs.insert(key("Digest"), digest.to_string());
                outputs.insert(key("DeploymentId"), deployment_id);
            }
        }
    }
    let names = token.digests.keys().cloned().collect::<Vec<_>>().join(", ");
    if running.is_empty() {
        let summary = format!("deployed {names} to {env}");
        return Ok(JobResult::Succeeded { outputs, summary });
    }
    let how = if followed { "in progress" } else { "started" };
    Ok(JobResult::Continue {
        token: token.encode()?,
        summary: format!("deploying to {env}: {} {how}", running.join(", ")),
    })
}

async fn load<P: Ports>(
    ports: &P,
    env: &str,
    service: &str,
) -> Result<Option<ServiceState>, JobInputError> {
    ports
        .load(&ServiceState::key(env, service))
        .await
        .map(|o| o.map(|(s, _)| s))
        .map_err(|e| JobInputError(format!("state of {service} in {env}: {e}")))
}
