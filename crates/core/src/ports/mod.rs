//! Ports: what the engine needs from the world, in domain words. `harbormaster-aws` implements
//! them with the AWS SDK; `crate::memory` (the `testing` feature) implements them in memory
//! for scenario tests.

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Environment;
use crate::image::Image;
use crate::notify::Notification;
use crate::service::{ResolvedService, ScalingStep, ScalingWant, TaskProgress, TaskRun};
use crate::state::{DeploymentId, ServiceState};
use crate::strategy::{MetricQuery, NativeDeployment};
use crate::template::{Placement, RenderedTaskDefinition};

mod service_view;
pub use service_view::*;

/// How an AWS (or other) failure should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Rate limited: retry later.
    Throttled,
    /// Timeouts, 5xx, dropped connections: retry later.
    Transient,
    /// Someone else changed it first.
    Conflict,
    NotFound,
    /// The request itself is wrong; retrying will not help.
    Invalid,
    Denied,
}

impl ErrorKind {
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Throttled | ErrorKind::Transient)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{operation}: {message} ({kind:?})")]
pub struct PortError {
    pub kind: ErrorKind,
    /// The AWS operation or port step, e.g. `RegisterTaskDefinition`.
    pub operation: String,
    /// Safe to show: never a request body, never a secret.
    pub message: String,
}

impl PortError {
    pub fn new(kind: ErrorKind, operation: impl Into<String>, message: impl Into<String>) -> Self {
        PortError {
            kind,
            operation: operation.into(),
            message: message.into(),
        }
    }
}

/// The version of a stored document: the S3 ETag, used as the fencing token of the next write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(pub String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaveError {
    #[error("the state document changed since it was read")]
    Conflict,
    #[error(transparent)]
    Port(#[from] PortError),
}

pub trait StateStore {
    fn load(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<(ServiceState, Version)>, PortError>> + Send;
    /// Create when `expected` is `None` (fails if it exists), else replace only that version.
    fn save(
        &self,
        key: &str,
        state: &ServiceState,
        expected: Option<&Version>,
    ) -> impl Future<Output = Result<Version, SaveError>> + Send;
    /// Deletes the document: only a person's `service delete`, after it archived it (the
    /// agent itself never deletes one).
    fn remove(&self, key: &str) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait TaskDefinitions {
    /// Returns the new revision's ARN.
    fn register(
        &self,
        td: &RenderedTaskDefinition,
    ) -> impl Future<Output = Result<String, PortError>> + Send;
    /// DescribeTaskDefinition's answer as sent (`{"taskDefinition": …, "tags": …}`): every
    /// field ECS knows, for `diff` and `init`.
    fn describe_body(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<serde_json::Value, PortError>> + Send;
    /// The revision of `family` tagged with this deployment id, if an earlier attempt registered one.
    fn find_by_deployment(
        &self,
        family: &str,
        deployment: &DeploymentId,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
}

/// Where and how a service is updated.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceTarget {
    /// The config's names (environment, service), for the lifecycle hooks' details.
    pub environment: String,
    pub name: String,
    pub cluster: String,
    /// The ECS service's name.
    pub service: String,
    /// Blue/green, canary or linear, with every ARN resolved; `None`: rolling.
    pub native: Option<NativeDeployment>,
    /// Every setting of the service itself (count, rolling percentages and grace, alarms,
    /// network, load balancer, capacity, target tracking, tags), with the bootstrap's outputs
    /// filled in: what CreateService and UpdateService both send, declared once.
    pub settings: ResolvedService,
}

/// A task that stopped, as ECS explains it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoppedTask {
    pub task_arn: String,
    pub stopped_reason: Option<String>,
    /// (container, exit code, reason)
    pub containers: Vec<(String, Option<i32>, Option<String>)>,
}

impl StoppedTask {
    pub fn describe(&self) -> String {
        let id = self.task_arn.rsplit('/').next().unwrap_or(&self.task_arn);
        let mut s = format!(
            "task {id}: {}",
            self.stopped_reason.as_deref().unwrap_or("stopped")
        );
        for (name, code, reason) in &self.containers {
            match (code, reason) {
                (Some(c), Some(r)) => s.push_str(&format!("; {name} exited {c} ({r})")),
                (Some(c), None) => s.push_str(&format!("; {name} exited {c}")),
                (None, Some(r)) => s.push_str(&format!("; {name}: {r}")),
                (None, None) => {}
            }
        }
        s
    }
}

/// One query's datapoints in the window, or why CloudWatch gave none.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Series {
    pub id: String,
    pub values: Vec<f64>,
    pub problem: Option<String>,
}

/// Where worker services' backlogs are read.
pub trait Backlogs {
    fn backlog(
        &self,
        source: &crate::scaling::BacklogSource,
    ) -> impl Future<Output = Result<u64, PortError>> + Send;
}

/// CloudWatch alarms.
pub trait Alarms {
    /// The ones among `names` that are in ALARM now.
    fn firing(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
    /// An alarm's tags (`harbormaster:service`, `harbormaster:environment` map it to a service).
    fn alarm_tags(
        &self,
        alarm_arn: &str,
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, String>, PortError>> + Send;
    /// Creates or updates an alarm (PutMetricAlarm is an upsert).
    fn put_alarm(
        &self,
        spec: &crate::alarm::AlarmSpec,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait Metrics {
    /// CloudWatch GetMetricData over `[start, end)`; the series of the queries that return data.
    fn measure(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Series>, PortError>> + Send;
}

pub trait Services {
    /// CreateService with the revision and every setting of `target`; `client_token` makes a
    /// resend after a lost answer find the service instead of failing. Returns the id of the
    /// first ECS deployment.
    fn create(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
        client_token: &str,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
    /// The services in `cluster` tagged as the agent's.
    fn owned(
        &self,
        cluster: &str,
    ) -> impl Future<Output = Result<Vec<OwnedService>, PortError>> + Send;
    /// DeleteService (with `force`: the count is set to zero first by the caller).
    fn delete(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Returns the id of the ECS deployment that UpdateService started.
    /// `deployment` goes into the lifecycle hooks' details, so the hook knows what it gates.
    fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
    fn describe(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<ServiceSnapshot, PortError>> + Send;
    /// The task definition a service revision runs, if ECS knows the revision.
    fn revision_task_definition(
        &self,
        revision_arn: &str,
    ) -> impl Future<Output = Result<Option<String>, PortError>> + Send;
    /// UpdateService with only the desired count (worker scaling).
    fn set_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Stops, with rollback (StopServiceDeployment), the native deployment in progress that
    /// rolls out `task_definition_arn`, and no other (a deployment someone else started since
    /// is not the agent's to stop). `false` when there is none: the caller then updates the
    /// service itself.
    fn stop_rollout(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> impl Future<Output = Result<bool, PortError>> + Send;
    /// Recently stopped tasks of the service that ran `task_definition_arn`, newest first.
    fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> impl Future<Output = Result<Vec<StoppedTask>, PortError>> + Send;
}

/// One-off tasks (a migration before a rollout, `harbormaster run`).
pub trait Tasks {
    /// RunTask; returns the task's ARN. The run's client token makes a resend return the
    /// task the first attempt started.
    fn run_task(&self, run: &TaskRun) -> impl Future<Output = Result<String, PortError>> + Send;
    /// Where the task is (DescribeTasks), judged by `container`'s exit code.
    fn task_progress(
        &self,
        cluster: &str,
        task_arn: &str,
        container: &str,
    ) -> impl Future<Output = Result<TaskProgress, PortError>> + Send;
    fn stop_task(
        &self,
        cluster: &str,
        task_arn: &str,
        reason: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// Application Auto Scaling for ECS services (`service/<cluster>/<service>`,
/// `ecs:service:DesiredCount`).
pub trait Autoscaler {
    /// The scalable target and its target-tracking policies, if registered.
    fn scaling(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = Result<Option<ScalingWant>, PortError>> + Send;
    fn apply_scaling(
        &self,
        cluster: &str,
        service: &str,
        step: &ScalingStep,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait Images {
    /// The image a tag names now, or `None` if the tag is not in the repository.
    fn resolve_tag(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<Option<Image>, PortError>> + Send;
    fn by_digest(
        &self,
        repository: &str,
        digest: &crate::image::Digest,
    ) -> impl Future<Output = Result<Option<Image>, PortError>> + Send;
    /// Tagged images of a repository, one entry per tag, for reconciling lost pushes.
    fn tagged(
        &self,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<Image>, PortError>> + Send;
    /// What one BatchGetImage tells of an image: `None` when it is not in the repository.
    /// `resolved`: the caller resolved the image moments ago (its existence is known); an
    /// adapter that already knows it is single-platform may answer without a call.
    fn manifest(
        &self,
        repository: &str,
        digest: &crate::image::Digest,
        resolved: bool,
    ) -> impl Future<Output = Result<Option<crate::image::Manifest>, PortError>> + Send;
    /// Adds `tag` to `image` (its manifest read, then put under the new tag). Done already (the
    /// tag is on that image) is success: a retry after a lost answer.
    fn protect(
        &self,
        image: &Image,
        tag: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// Takes `tag` off its image in `repository`; ECR deletes an image left with no tag. Gone
    /// already is success.
    fn unprotect(
        &self,
        repository: &str,
        tag: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

pub trait Notifier {
    fn publish(
        &self,
        topic: &str,
        notification: &Notification,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// SSM parameters, by name: whether they exist. Never their values.
pub trait Parameters {
    /// The names among `names` that do not exist.
    fn missing(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
    /// Values of plain (String) parameters, by name; absent ones are left out. Never decrypts:
    /// outputs are ARNs and ids, and a SecureString must not be read here.
    fn outputs(
        &self,
        names: &[String],
    ) -> impl Future<Output = Result<std::collections::BTreeMap<String, String>, PortError>> + Send;
}

/// Account and region an environment deploys into.
pub trait Placements {
    fn placement(
        &self,
        environment: &Environment,
    ) -> impl Future<Output = Result<Placement, PortError>> + Send;
}

/// Files of the GitOps source: the config and the task-definition templates.
pub trait ConfigSource: Sized {
    /// This source fixed at one published version (`harbormaster publish`'s pointer), so that
    /// one load never mixes two versions. A plain folder is its own version.
    fn pinned(&self) -> impl Future<Output = Result<Self, PortError>> + Send;
    /// What the pinned version came from, in words (`commit 3f2c1ab by alice: …`), if known.
    fn origin(&self) -> Option<String> {
        None
    }
    /// The published bundle the pinned version is (its digest); `None` for a folder.
    fn bundle(&self) -> Option<String> {
        None
    }
    fn read(&self, path: &str) -> impl Future<Output = Result<Vec<u8>, PortError>> + Send;
    /// Where `path` is, for error messages (`s3://bucket/prefix/path`, a file path).
    fn describe(&self, path: &str) -> String;
}

pub trait Clock {
    fn now(&self) -> DateTime<Utc>;
    /// Waits about `d` (a backoff before retrying a compare-and-swap).
    fn pause(&self, d: std::time::Duration) -> impl Future<Output = ()> + Send;
}

/// Declares [`Ports`] as every port at once, and implements it for whatever implements them
/// all (one list, so the trait and its blanket impl cannot drift apart).
macro_rules! ports {
    ($($port:ident),+) => {
        /// Everything the engine uses. One struct implements all of it per environment (AWS,
        /// memory).
        pub trait Ports: $($port +)+ Sync {}
        impl<T> Ports for T where T: $($port +)+ Sync {}
    };
}

ports!(
    StateStore,
    TaskDefinitions,
    Services,
    Tasks,
    Autoscaler,
    Images,
    Notifier,
    Parameters,
    Placements,
    Metrics,
    Alarms,
    Backlogs,
    Clock
);

/// Where CodePipeline put a job's input artifact (a zip in its artifact bucket).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    pub bucket_name: String,
    pub object_key: String,
}

/// The job's temporary credentials for its artifact bucket: only ever inside
/// [`crate::secrets::Redacted`], never formatted.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

/// CodePipeline's job and approval API.
pub trait Pipelines {
    /// PutJobSuccessResult (with a continuation token while work goes on) or
    /// PutJobFailureResult.
    fn report_job(
        &self,
        job_id: &str,
        result: &crate::pipeline::job::JobResult,
    ) -> impl Future<Output = Result<(), PortError>> + Send;

    /// The small files of the job's input artifact, read with the job's own credentials
    /// (anything over 1 MiB is listed with no content: not the build's image file).
    fn artifact_files(
        &self,
        location: &ArtifactLocation,
        credentials: &crate::secrets::Redacted<ArtifactCredentials>,
    ) -> impl Future<Output = Result<BTreeMap<String, Vec<u8>>, PortError>> + Send;

    /// Answers the manual approval action waiting at `pipeline` / `stage` / `action`.
    fn answer_approval(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        approved: bool,
        summary: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}
