//! One-off tasks: a migration before a rollout (`before_deploy`), or `harbormaster run`. The
//! revision runs once with its command overridden, in the service's network; the agent
//! follows it without waiting in a function (the tick looks again), and judges it by the
//! container's exit code.

use serde::{Deserialize, Serialize};

use super::resolve::ResolvedService;

/// `before_deploy = { command, container, timeout_minutes }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OneOffTask {
    pub command: Vec<String>,
    /// The container whose command is replaced; default: the first container that runs the
    /// service's image.
    pub container: Option<String>,
    pub timeout_minutes: u32,
}

/// What RunTask is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRun {
    pub cluster: String,
    pub task_definition_arn: String,
    pub container: String,
    pub command: Vec<String>,
    /// The service's network, resolved.
    pub subnets: Vec<String>,
    pub security_groups: Vec<String>,
    pub assign_public_ip: bool,
    pub platform_version: Option<String>,
    /// RunTask's idempotency token (at most 64 characters): the same for every attempt of one
    /// deployment's task, so a retry after a crash finds the task instead of starting another.
    pub client_token: String,
    /// `startedBy` (at most 36 characters): the deployment, or `harbormaster-run`.
    pub started_by: String,
    pub tags: Vec<(String, String)>,
}

impl TaskRun {
    /// The one-off task for `service`: `None` when its network is not known (no bootstrap
    /// outputs and no `network` in the config).
    pub fn for_service(
        service: &ResolvedService,
        task_definition_arn: &str,
        container: &str,
        command: Vec<String>,
        token: &str,
    ) -> Option<TaskRun> {
        let network = service.network.as_ref()?;
        Some(TaskRun {
            cluster: service.cluster.clone(),
            task_definition_arn: task_definition_arn.to_owned(),
            container: container.to_owned(),
            command,
            subnets: network.subnets.clone(),
            security_groups: network.security_groups.clone(),
            assign_public_ip: network.assign_public_ip,
            platform_version: service.platform_version.clone(),
            client_token: crate::text::fingerprint(token.as_bytes()),
            started_by: "harbormaster".into(),
            tags: service.tags.clone(),
        })
    }
}

/// How long a task just started may be unknown to DescribeTasks: ECS is eventually consistent
/// ("RunTask", Amazon ECS API Reference: "...use exponential backoff..." when describing a task
/// right after starting it). A MISSING answer within it means "not yet", not "gone".
pub const VISIBLE_WITHIN: chrono::Duration = chrono::Duration::seconds(60);

/// Whether a task started at `started_at` that DescribeTasks does not know at `now` may still
/// appear ([`VISIBLE_WITHIN`]).
pub fn not_visible_yet(
    started_at: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> bool {
    now - started_at < VISIBLE_WITHIN
}

/// Where a one-off task is, as DescribeTasks says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum TaskProgress {
    /// Provisioning, pending or running.
    Running,
    Stopped {
        /// The overridden container's exit code; `None` when it never ran (an image that could
        /// not be pulled, say): a failure.
        exit_code: Option<i32>,
        reason: String,
    },
    /// ECS no longer knows the task (it forgets stopped tasks after about an hour).
    Unknown,
}

/// The CloudWatch Logs stream an `awslogs` container writes to:
/// `<awslogs-stream-prefix>/<container>/<task id>` (Amazon ECS Developer Guide, "Using the
/// awslogs log driver"). `None` when the container logs elsewhere or without a prefix.
pub fn log_stream(
    task_definition: &serde_json::Value,
    container: &str,
    task_arn: &str,
) -> Option<String> {
    let c = task_definition
        .get("containerDefinitions")?
        .as_array()?
        .iter()
        .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(container))?;
    let log = c.get("logConfiguration")?;
    if log.get("logDriver")?.as_str()? != "awslogs" {
        return None;
    }
    let options = log.get("options")?;
    let group = options.get("awslogs-group")?.as_str()?;
    let prefix = options.get("awslogs-stream-prefix")?.as_str()?;
    let task_id = task_arn.rsplit('/').next()?;
    Some(format!("{group}:{prefix}/{container}/{task_id}"))
}
