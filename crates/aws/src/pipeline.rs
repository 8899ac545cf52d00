//! The `pipeline-job` function: a CodePipeline Lambda invoke action that deploys the image the
//! build produced and reports back with PutJobSuccessResult (with a continuation token while the
//! deployment runs) or PutJobFailureResult.
//!
//! The job event carries temporary artifact credentials. They are held in [`Redacted`], used only
//! to read the input artifact, and never formatted: not in a log line, an error or a report.

use std::collections::BTreeMap;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType};
use futures::FutureExt;
use harbormaster_core::dispatch::{follow, request_deploy, resolve_image};
use harbormaster_core::pipeline::{
    promotion_allowed, release_status, BuiltImages, JobInputError, JobParams, JobToken,
    ReleaseStatus,
};
use harbormaster_core::ports::StateStore;
use harbormaster_core::secrets::Redacted;
use harbormaster_core::state::ServiceState;
use harbormaster_core::{Bundle, RunOptions};
use serde::Deserialize;
use serde_json::Value;
use tracing::{info, warn};

use crate::{Agent, AwsPorts};

/// Time kept back from the Lambda deadline to report to CodePipeline.
const REPORT_MARGIN: Duration = Duration::from_secs(5);

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
    artifact_credentials: Option<Redacted<Credentials>>,
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
    location: ArtifactLocation,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation {
    s3_location: S3Location,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct S3Location {
    bucket_name: String,
    object_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
}

/// How the job ends this time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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

/// The function's report: the job id and what CodePipeline was told.
#[derive(Debug, Clone, serde::Serialize)]
pub struct JobReport {
    pub job_id: String,
    #[serde(flatten)]
    pub result: JobResult,
}

/// Parses the job, does one step, tells CodePipeline. Only an event without a job id is an
/// error (there is no job to fail); everything else, a panic included, ends in a job result.
pub async fn handle_job(
    agent: &Agent,
    event: &Value,
    deadline: Option<Instant>,
    opts: RunOptions,
) -> Result<JobReport, String> {
    let id = event["CodePipeline.job"]["id"]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or("malformed CodePipeline job event: `CodePipeline.job.id` is missing")?
        .to_owned();
    let work = AssertUnwindSafe(step(agent, event, opts)).catch_unwind();
    let budget = deadline
        .map(|d| {
            d.saturating_duration_since(Instant::now())
                .saturating_sub(REPORT_MARGIN)
        })
        .unwrap_or(Duration::from_secs(60));
    let result = match tokio::time::timeout(budget, work).await {
        Ok(Ok(Ok(r))) => r,
        Ok(Ok(Err(e))) => JobResult::Failed { reason: e.0 },
        Ok(Err(panic)) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            JobResult::Failed {
                reason: format!("internal error in the agent: {what}"),
            }
        }
        // Out of Lambda time: the state saved so far stands; the next invocation looks again.
        Err(_) => match event["CodePipeline.job"]["data"]["continuationToken"].as_str() {
            Some(t) => JobResult::Continue {
                token: t.to_owned(),
                summary: "still working".into(),
            },
            None => JobResult::Failed {
                reason: "the deployment could not be started within the function's time".into(),
            },
        },
    };
    if !opts.dry_run {
        report(&agent.ports, &id, &result).await?;
    }
    let word = match &result {
        JobResult::Continue { .. } => "continue",
        JobResult::Succeeded { .. } => "succeeded",
        JobResult::Failed { .. } => "failed",
    };
    info!(job_id = %id, result = word, "pipeline job reported");
    Ok(JobReport { job_id: id, result })
}

async fn report(ports: &AwsPorts, id: &str, result: &JobResult) -> Result<(), String> {
    let cp = &ports.clients.codepipeline;
    let sent = match result {
        JobResult::Continue { token, summary } => cp
            .put_job_success_result()
            .job_id(id)
            .continuation_token(token)
            .execution_details(ExecutionDetails::builder().summary(clip(summary)).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::errors::classify("PutJobSuccessResult", &e)),
        JobResult::Succeeded { outputs, summary } => cp
            .put_job_success_result()
            .job_id(id)
            .set_output_variables(Some(outputs.clone().into_iter().collect()))
            .execution_details(
                ExecutionDetails::builder()
                    .summary(clip(summary))
                    .percent_complete(100)
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| crate::errors::classify("PutJobSuccessResult", &e)),
        JobResult::Failed { reason } => {
            let details = FailureDetails::builder()
                .r#type(FailureType::JobFailed)
                .message(clip(reason))
                .build()
                .map_err(|e| e.to_string())?;
            cp.put_job_failure_result()
                .job_id(id)
                .failure_details(details)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| crate::errors::classify("PutJobFailureResult", &e))
        }
    };
    sent.map_err(|e| {
        warn!(job_id = id, error = %e, "CodePipeline not told; it will time the job out");
        e.to_string()
    })
}

/// CodePipeline takes at most 2,048 characters of summary or message.
fn clip(s: &str) -> String {
    s.chars().take(2000).collect()
}

async fn step(agent: &Agent, event: &Value, opts: RunOptions) -> Result<JobResult, JobInputError> {
    let e: JobEvent = serde_json::from_value(event.clone()).map_err(|e| {
        // serde's message names the field, never a value.
        JobInputError(format!("malformed CodePipeline job event: {e}"))
    })?;
    let data = e.job.data;
    let params = JobParams::parse(
        data.action_configuration
            .configuration
            .user_parameters
            .as_deref(),
    )?;
    let (ports, bundle) = agent
        .prepare()
        .await
        .map_err(|e| JobInputError(format!("config: {e}")))?;
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
        return progress(&ports, &bundle, token, opts).await;
    }
    let artifact = data.input_artifacts.first().ok_or_else(|| {
        JobInputError("the action has no input artifact: give it the build's output".into())
    })?;
    let creds = data
        .artifact_credentials
        .as_ref()
        .ok_or_else(|| JobInputError("the job event carries no artifact credentials".into()))?;
    let files = read_artifact(agent, artifact, creds).await?;
    let built = BuiltImages::from_artifact(&artifact.name, &files)?;

    // Resolve and check every service's image before deploying any of them.
    let mut digests = BTreeMap::new();
    for s in &params.services {
        let svc = &bundle.config.services[s];
        let containers = svc.containers.clone().unwrap_or_default();
        let reference = built.for_service(s, &containers)?;
        let image = resolve_image(&ports, &svc.repository, &reference)
            .await
            .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        if let Some(source) = &params.promote_from {
            let state = load(&ports, source, s).await?;
            promotion_allowed(source, state.as_ref(), &image.digest)
                .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        }
        digests.insert(s.clone(), image.digest);
    }
    let by = format!("codepipeline job {}", e.job.id);
    for (s, digest) in &digests {
        let reference = format!("{}@{digest}", bundle.config.services[s].repository);
        let r = request_deploy(
            &ports,
            &bundle,
            &params.environment,
            s,
            &reference,
            &by,
            false,
            opts,
        )
        .await
        .map_err(|e| JobInputError(format!("{s}: {e}")))?;
        if opts.dry_run {
            continue;
        }
        // Ignored for a reason other than "already there": the job fails saying why.
        if let harbormaster_core::machine::Outcome::Ignored { reason } = &r.outcome {
            let state = load(&ports, &params.environment, s).await?;
            if let ReleaseStatus::Failed(_) = release_status(state.as_ref(), digest) {
                return Err(JobInputError(format!("{s}: {reason}")));
            }
        }
    }
    let token = JobToken {
        v: 1,
        environment: params.environment.clone(),
        digests,
    };
    if opts.dry_run {
        return Ok(JobResult::Continue {
            token: token.encode(),
            summary: "dry run: nothing was deployed".into(),
        });
    }
    // A rollout just started is not done: CodePipeline asks again (about every 30 s) and the
    // continuation moves it on. Only releases that were already in place end the job now.
    status(&ports, token, false).await
}

/// How the job's releases stand; moves each on first, as the tick would.
async fn progress(
    ports: &AwsPorts,
    bundle: &Bundle,
    token: JobToken,
    opts: RunOptions,
) -> Result<JobResult, JobInputError> {
    for s in token.digests.keys() {
        follow(ports, bundle, &token.environment, s, opts).await;
    }
    status(ports, token, true).await
}

/// The job's result from the state documents: running, done (with output variables), failed.
async fn status(
    ports: &AwsPorts,
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
    Ok(if running.is_empty() {
        JobResult::Succeeded {
            outputs,
            summary: format!("deployed {names} to {env}"),
        }
    } else {
        JobResult::Continue {
            token: token.encode(),
            summary: format!(
                "deploying to {env}: {} {}",
                running.join(", "),
                if followed { "in progress" } else { "started" }
            ),
        }
    })
}

async fn load(
    ports: &AwsPorts,
    env: &str,
    service: &str,
) -> Result<Option<ServiceState>, JobInputError> {
    ports
        .load(&ServiceState::key(env, service))
        .await
        .map(|o| o.map(|(s, _)| s))
        .map_err(|e| JobInputError(format!("state of {service} in {env}: {e}")))
}

/// The input artifact (a zip in CodePipeline's bucket), read with the job's own credentials.
async fn read_artifact(
    agent: &Agent,
    artifact: &Artifact,
    creds: &Redacted<Credentials>,
) -> Result<BTreeMap<String, Vec<u8>>, JobInputError> {
    let c = creds.expose();
    let s3 = aws_sdk_s3::Client::from_conf(
        agent
            .ports
            .clients
            .s3
            .config()
            .to_builder()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                c.access_key_id.clone(),
                c.secret_access_key.clone(),
                Some(c.session_token.clone()),
                None,
                "codepipeline-artifact",
            ))
            .build(),
    );
    let loc = &artifact.location.s3_location;
    let where_ = format!("s3://{}/{}", loc.bucket_name, loc.object_key);
    let out = s3
        .get_object()
        .bucket(&loc.bucket_name)
        .key(&loc.object_key)
        .send()
        .await
        .map_err(|e| {
            JobInputError(format!(
                "input artifact {} ({where_}): {}",
                artifact.name,
                crate::errors::classify("GetObject", &e)
            ))
        })?;
    let bytes = out
        .body
        .collect()
        .await
        .map_err(|e| JobInputError(format!("input artifact {} ({where_}): {e}", artifact.name)))?
        .into_bytes();
    unzip(&artifact.name, &bytes)
}

/// The small JSON files of an artifact zip (anything over 1 MiB is skipped: not ours).
fn unzip(name: &str, bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, JobInputError> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        JobInputError(format!(
            "input artifact {name} is not a zip archive ({e}); expected the build's output with {} or {}",
            harbormaster_core::pipeline::IMAGE_DETAIL,
            harbormaster_core::pipeline::IMAGE_DEFINITIONS
        ))
    })?;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive
            .by_index(i)
            .map_err(|e| JobInputError(format!("input artifact {name}: {e}")))?;
        if f.is_dir() {
            continue;
        }
        let path = f
            .name()
            .map(|n| n.into_owned())
            .map_err(|e| JobInputError(format!("input artifact {name}: {e}")))?;
        if f.size() > 1 << 20 {
            files.insert(path, Vec::new());
            continue;
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| JobInputError(format!("input artifact {name}: {path}: {e}")))?;
        files.insert(path, buf);
    }
    Ok(files)
}

/// Answers a pipeline's manual approval action: the token comes from GetPipelineState.
pub async fn answer_approval(
    ports: &AwsPorts,
    pipeline: &str,
    stage: &str,
    action: &str,
    approved: bool,
    summary: &str,
) -> Result<String, String> {
    use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
    let cp = &ports.clients.codepipeline;
    let state = cp
        .get_pipeline_state()
        .name(pipeline)
        .send()
        .await
        .map_err(|e| crate::errors::classify("GetPipelineState", &e).to_string())?;
    let stages = state.stage_states();
    let s = stages
        .iter()
        .find(|s| s.stage_name() == Some(stage))
        .ok_or_else(|| {
            format!(
                "pipeline {pipeline} has no stage `{stage}` (stages: {})",
                stages
                    .iter()
                    .filter_map(|s| s.stage_name())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    let a = s
        .action_states()
        .iter()
        .find(|a| a.action_name() == Some(action))
        .ok_or_else(|| format!("stage {stage} of {pipeline} has no action `{action}`"))?;
    let token = a
        .latest_execution()
        .filter(|e| e.status().map(|s| s.as_str()) == Some("InProgress"))
        .and_then(|e| e.token())
        .ok_or_else(|| format!("no approval is waiting at {pipeline} / {stage} / {action}"))?;
    let result = ApprovalResult::builder()
        .summary(clip(summary))
        .status(if approved {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        })
        .build()
        .map_err(|e| e.to_string())?;
    cp.put_approval_result()
        .pipeline_name(pipeline)
        .stage_name(stage)
        .action_name(action)
        .result(result)
        .token(token)
        .send()
        .await
        .map_err(|e| crate::errors::classify("PutApprovalResult", &e).to_string())?;
    Ok(format!(
        "{} {pipeline} / {stage} / {action}",
        if approved { "approved" } else { "rejected" }
    ))
}
