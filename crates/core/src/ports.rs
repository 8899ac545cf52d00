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

/// An ECS deployment's `status`, translated by the adapter from ECS's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeploymentStatus {
    /// The deployment ECS is rolling the service onto (`PRIMARY`).
    Primary,
    /// An older deployment still draining (`ACTIVE`).
    #[default]
    Active,
    /// Done with (`INACTIVE`), or a word this agent does not know.
    Inactive,
}

/// An ECS deployment's `rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EcsDeployment {
    pub id: String,
    pub status: DeploymentStatus,
    pub task_definition: String,
    /// When ECS reports one.
    pub rollout_state: Option<RolloutState>,
    pub rollout_reason: Option<String>,
    pub running: i32,
    pub desired: i32,
    pub failed_tasks: i32,
}

impl EcsDeployment {
    pub fn is_primary(&self) -> bool {
        self.status == DeploymentStatus::Primary
    }
}

/// A service's `status`: a deleted service is still listed for a while, DRAINING then
/// INACTIVE, and ECS refuses to update it (ServiceNotActiveException).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceStatus {
    #[default]
    Active,
    Draining,
    Inactive,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSnapshot {
    pub status: ServiceStatus,
    /// Its awsvpc network, as ECS has it (a one-off task of a service made by hand runs there
    /// when neither git nor the bootstrap says where).
    pub network: Option<crate::service::Network>,
    pub task_definition: String,
    pub desired_count: i32,
    pub running_count: i32,
    /// Tasks started but not yet running (provisioning, pulling the image).
    pub pending_count: i32,
    pub deployments: Vec<EcsDeployment>,
    /// Newest first.
    pub events: Vec<String>,
    /// The settings the agent sends with every UpdateService, as ECS keeps them.
    pub settings: LiveSettings,
}

/// A service's settings as ECS keeps them after CreateService or UpdateService (DescribeServices),
/// in the shape [`LiveSettings::sent`] gives what the agent would send: `diff` compares the two.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveSettings {
    pub min_healthy_percent: Option<i32>,
    pub max_percent: Option<i32>,
    pub health_check_grace_period_seconds: Option<i32>,
    /// The capacity provider strategy; empty: a launch type, or left as it is.
    pub capacity: Vec<crate::service::CapacityItem>,
    pub platform_version: Option<String>,
    pub execute_command: bool,
    /// `SERVICE`, `TASK_DEFINITION` or `NONE`, as ECS names them.
    pub propagate_tags: Option<String>,
    /// (container, port, target group) of each load balancer.
    pub load_balancers: Vec<(String, i32, String)>,
    /// The deployment's rollback alarms.
    pub alarms: Vec<String>,
    pub network: Option<crate::service::Network>,
}

impl LiveSettings {
    /// What an UpdateService for `target` sets, as ECS would then describe it; what it leaves
    /// as it is stays `None` or empty (a native strategy's load balancers: ECS swaps their
    /// target groups with each deployment).
    pub fn sent(target: &ServiceTarget) -> LiveSettings {
        let s = &target.settings;
        LiveSettings {
            min_healthy_percent: Some(s.rolling.min_healthy_percent as i32),
            max_percent: Some(s.rolling.max_percent as i32),
            health_check_grace_period_seconds: (s.rolling.health_check_grace_period_seconds)
                .map(|g| g as i32),
            capacity: s.capacity.clone(),
            platform_version: s.platform_version.clone(),
            execute_command: s.execute_command,
            propagate_tags: Some(s.propagate_tags.ecs_name().to_owned()),
            load_balancers: (s.load_balancer.iter())
                .filter(|_| target.native.is_none())
                .map(|l| {
                    (
                        l.container.clone(),
                        i32::from(l.port),
                        l.target_group.clone(),
                    )
                })
                .collect(),
            alarms: s.alarms.clone(),
            network: s.network.clone(),
        }
    }
}

impl LiveSettings {
    /// Each setting in words, by its name in `harbormaster.toml`, in one order; `None`: not set
    /// (or left as it is). Lists are sorted where ECS keeps no order (alarms, the network).
    pub fn fields(&self) -> [(&'static str, Option<String>); 12] {
        fn opt<T: ToString>(v: &Option<T>) -> Option<String> {
            v.as_ref().map(ToString::to_string)
        }
        fn listed<T>(items: &[T], word: impl Fn(&T) -> String, sort: bool) -> Option<String> {
            let mut words: Vec<String> = items.iter().map(word).collect();
            if sort {
                words.sort();
            }
            (!words.is_empty()).then(|| words.join(", "))
        }
        let capacity = |i: &crate::service::CapacityItem| {
            format!("{} weight {} base {}", i.provider, i.weight, i.base)
        };
        let balancer = |(c, p, tg): &(String, i32, String)| format!("{c}:{p} → {tg}");
        let net = self.network.as_ref();
        let sorted = |v: &[String]| listed(v, String::clone, true).unwrap_or_default();
        [
            ("min_healthy_percent", opt(&self.min_healthy_percent)),
            ("max_percent", opt(&self.max_percent)),
            (
                "health_check_grace_period_seconds",
                opt(&self.health_check_grace_period_seconds),
            ),
            ("capacity", listed(&self.capacity, capacity, false)),
            ("platform_version", self.platform_version.clone()),
            (
                "enable_execute_command",
                Some(self.execute_command.to_string()),
            ),
            ("propagate_tags", self.propagate_tags.clone()),
            (
                "load_balancer",
                listed(&self.load_balancers, balancer, false),
            ),
            ("rollback_alarms", listed(&self.alarms, String::clone, true)),
            ("network.subnets", net.map(|n| sorted(&n.subnets))),
            (
                "network.security_groups",
                (net.filter(|n| !n.security_groups.is_empty())).map(|n| sorted(&n.security_groups)),
            ),
            (
                "network.assign_public_ip",
                net.map(|n| n.assign_public_ip.to_string()),
            ),
        ]
    }
}

impl ServiceSnapshot {
    pub fn primary(&self) -> Option<&EcsDeployment> {
        self.deployments.iter().find(|d| d.is_primary())
    }
}

/// An ECS service the agent created (tagged `harbormaster:service`), as ListServices and
/// DescribeServices tell it: what `status` and `diff` compare with git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedService {
    /// The ECS service's name.
    pub name: String,
    /// Its `harbormaster:service` tag: the config's name for it.
    pub service: String,
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
