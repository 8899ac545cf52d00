//! The `pipeline-job` function's edge: the Lambda deadline and panics around the core's job
//! flow ([`harbormaster_core::pipeline::job`]), and [`Pipelines`] with the CodePipeline and S3
//! SDKs: job results, the artifact download, manual approvals.
//!
//! The job's artifact credentials arrive in [`Redacted`]; they build one S3 client for one
//! GetObject and are never formatted.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Read;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use aws_sdk_codepipeline::types::{ExecutionDetails, FailureDetails, FailureType};
use futures::FutureExt;
use harbormaster_core::pipeline::job::{self, JobReport, JobResult};
use harbormaster_core::pipeline::JobInputError;
use harbormaster_core::ports::{
    ArtifactCredentials, ArtifactLocation, ErrorKind, Pipelines, PortError,
};
use harbormaster_core::secrets::Redacted;
use harbormaster_core::RunOptions;
use serde_json::Value;
use tracing::warn;

use crate::errors::classify;
use crate::{Agent, AwsPorts};

/// Time kept back from the Lambda deadline to report to CodePipeline.
const REPORT_MARGIN: Duration = Duration::from_secs(5);

/// Parses the job, does one step, tells CodePipeline. Only an event without a job id is an
/// error (there is no job to fail); everything else, a panic included, ends in a job result.
pub async fn handle_job(
    agent: &Agent,
    event: &Value,
    deadline: Option<Instant>,
    opts: RunOptions,
) -> Result<JobReport, String> {
    let id = job::job_id(event).map_err(|e| e.0)?;
    let work = async {
        let (ports, bundle) = agent
            .prepare()
            .await
            .map_err(|e| JobInputError(format!("config: {e}")))?;
        job::step(&ports, &bundle, event, opts).await
    };
    let result = guarded(work, event, deadline).await;
    job::report(&agent.ports, id, result, opts)
        .await
        .map_err(|e| e.to_string())
}

/// Runs one step of a job to a result CodePipeline can be told: an error or a panic becomes
/// `Failed`, the Lambda deadline a continuation. This is why the release profile unwinds
/// (`panic = "unwind"` in the workspace's Cargo.toml): with `abort` the guard never runs and
/// the stage waits for CodePipeline's own timeout.
pub async fn guarded<F>(work: F, event: &Value, deadline: Option<Instant>) -> JobResult
where
    F: Future<Output = Result<JobResult, JobInputError>>,
{
    let budget = deadline
        .map(|d| {
            d.saturating_duration_since(Instant::now())
                .saturating_sub(REPORT_MARGIN)
        })
        .unwrap_or(Duration::from_secs(60));
    match tokio::time::timeout(budget, AssertUnwindSafe(work).catch_unwind()).await {
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
        Err(_) => match job::continuation(event) {
            Some(t) => JobResult::Continue {
                token: t.to_owned(),
                summary: "still working".into(),
            },
            None => JobResult::Failed {
                reason: "the deployment could not be started within the function's time".into(),
            },
        },
    }
}

impl Pipelines for AwsPorts {
    async fn report_job(&self, id: &str, result: &JobResult) -> Result<(), PortError> {
        let cp = &self.clients.codepipeline;
        let sent = match result {
            JobResult::Continue { token, summary } => cp
                .put_job_success_result()
                .job_id(id)
                .continuation_token(token)
                .execution_details(ExecutionDetails::builder().summary(clip(summary)).build())
                .send()
                .await
                .map(|_| ())
                .map_err(|e| classify("PutJobSuccessResult", &e)),
            JobResult::Succeeded { outputs, summary } => {
                let details = ExecutionDetails::builder()
                    .summary(clip(summary))
                    .percent_complete(100)
                    .build();
                cp.put_job_success_result()
                    .job_id(id)
                    .set_output_variables(Some(outputs.clone().into_iter().collect()))
                    .execution_details(details)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("PutJobSuccessResult", &e))
            }
            JobResult::Failed { reason } => {
                let details = FailureDetails::builder()
                    .r#type(FailureType::JobFailed)
                    .message(clip(reason))
                    .build()
                    .map_err(|e| invalid("PutJobFailureResult", e))?;
                cp.put_job_failure_result()
                    .job_id(id)
                    .failure_details(details)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| classify("PutJobFailureResult", &e))
            }
        };
        sent.inspect_err(|e| {
            warn!(job_id = id, error = %e, "CodePipeline not told; it will time the job out");
        })
    }

    async fn artifact_files(
        &self,
        loc: &ArtifactLocation,
        creds: &Redacted<ArtifactCredentials>,
    ) -> Result<BTreeMap<String, Vec<u8>>, PortError> {
        let c = creds.expose();
        let credentials = aws_sdk_s3::config::Credentials::new(
            c.access_key_id.clone(),
            c.secret_access_key.clone(),
            Some(c.session_token.clone()),
            None,
            "codepipeline-artifact",
        );
        let config = self.clients.s3.config().to_builder();
        let s3 = aws_sdk_s3::Client::from_conf(config.credentials_provider(credentials).build());
        let where_ = format!("s3://{}/{}", loc.bucket_name, loc.object_key);
        let out = s3
            .get_object()
            .bucket(&loc.bucket_name)
            .key(&loc.object_key)
            .send()
            .await
            .map_err(|e| {
                let e = classify("GetObject", &e);
                PortError::new(e.kind, "GetObject", format!("{where_}: {}", e.message))
            })?;
        let bytes = read_capped(out.body, out.content_length, MAX_ARTIFACT_BYTES, &where_).await?;
        unzip(&bytes)
    }

    async fn answer_approval(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        approved: bool,
        summary: &str,
    ) -> Result<(), PortError> {
        // The token comes from GetPipelineState.
        use aws_sdk_codepipeline::types::{ApprovalResult, ApprovalStatus};
        let cp = &self.clients.codepipeline;
        let state = cp
            .get_pipeline_state()
            .name(pipeline)
            .send()
            .await
            .map_err(|e| classify("GetPipelineState", &e))?;
        let not_found = |m: String| PortError::new(ErrorKind::NotFound, "GetPipelineState", m);
        let stages = state.stage_states();
        let s = stages
            .iter()
            .find(|s| s.stage_name() == Some(stage))
            .ok_or_else(|| {
                let names: Vec<&str> = stages.iter().filter_map(|s| s.stage_name()).collect();
                let names = names.join(", ");
                not_found(format!(
                    "pipeline {pipeline} has no stage `{stage}` (stages: {names})"
                ))
            })?;
        let a = s
            .action_states()
            .iter()
            .find(|a| a.action_name() == Some(action))
            .ok_or_else(|| {
                not_found(format!(
                    "stage {stage} of {pipeline} has no action `{action}`"
                ))
            })?;
        let token = a
            .latest_execution()
            .filter(|e| e.status().map(|s| s.as_str()) == Some("InProgress"))
            .and_then(|e| e.token())
            .ok_or_else(|| {
                not_found(format!(
                    "no approval is waiting at {pipeline} / {stage} / {action}"
                ))
            })?;
        let status = if approved {
            ApprovalStatus::Approved
        } else {
            ApprovalStatus::Rejected
        };
        let result = ApprovalResult::builder()
            .summary(clip(summary))
            .status(status)
            .build()
            .map_err(|e| invalid("PutApprovalResult", e))?;
        cp.put_approval_result()
            .pipeline_name(pipeline)
            .stage_name(stage)
            .action_name(action)
            .result(result)
            .token(token)
            .send()
            .await
            .map_err(|e| classify("PutApprovalResult", &e))?;
        Ok(())
    }
}

fn invalid(operation: &str, e: impl std::fmt::Display) -> PortError {
    PortError::new(ErrorKind::Invalid, operation, e.to_string())
}

/// CodePipeline takes at most 2,048 characters of summary or message.
fn clip(s: &str) -> String {
    s.chars().take(2000).collect()
}

/// The largest input artifact read: the build's output files are a few kilobytes; a zip that
/// carries the image itself is refused before it fills the function's memory.
pub const MAX_ARTIFACT_BYTES: usize = 64 * 1024 * 1024;

/// The object's bytes, refused as soon as its announced length or what arrived passes `cap`.
pub async fn read_capped(
    mut body: aws_sdk_s3::primitives::ByteStream,
    announced: Option<i64>,
    cap: usize,
    where_: &str,
) -> Result<Vec<u8>, PortError> {
    let too_big = |n: u64| {
        invalid(
            "GetObject",
            format!(
                "{where_} is {} MiB; the input artifact is read whole, at most {} MiB: give the action the build's small output files ({} or {}), not the image",
                n / (1024 * 1024),
                cap / (1024 * 1024),
                harbormaster_core::pipeline::IMAGE_DETAIL,
                harbormaster_core::pipeline::IMAGE_DEFINITIONS
            ),
        )
    };
    if let Some(n) = announced
        .and_then(|n| u64::try_from(n).ok())
        .filter(|n| *n > cap as u64)
    {
        return Err(too_big(n));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = body
        .try_next()
        .await
        .map_err(|e| PortError::new(ErrorKind::Transient, "GetObject", format!("{where_}: {e}")))?
    {
        bytes.extend_from_slice(&chunk);
        if bytes.len() > cap {
            return Err(too_big(bytes.len() as u64));
        }
    }
    Ok(bytes)
}

/// The small JSON files of an artifact zip (anything over 1 MiB is skipped: not ours).
fn unzip(bytes: &[u8]) -> Result<BTreeMap<String, Vec<u8>>, PortError> {
    let bad = |e: &dyn std::fmt::Display| invalid("GetObject", e);
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).map_err(|e| {
        bad(&format!(
            "not a zip archive ({e}); expected the build's output with {} or {}",
            harbormaster_core::pipeline::IMAGE_DETAIL,
            harbormaster_core::pipeline::IMAGE_DEFINITIONS
        ))
    })?;
    let mut files = BTreeMap::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i).map_err(|e| bad(&e))?;
        if f.is_dir() {
            continue;
        }
        let path = f.name().map(|n| n.into_owned()).map_err(|e| bad(&e))?;
        if f.size() > 1 << 20 {
            files.insert(path, Vec::new());
            continue;
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)
            .map_err(|e| bad(&format!("{path}: {e}")))?;
        files.insert(path, buf);
    }
    Ok(files)
}
