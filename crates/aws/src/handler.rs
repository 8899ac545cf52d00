//! The body of every Lambda function: load the (cached) config, dispatch the event, report.

use harbormaster_core::bundle::BundleError;
use harbormaster_core::dispatch::{handle_event, DispatchError, DispatchReport, HookResponse};
use harbormaster_core::event::{Event, ALARM_KIND, ALARM_SNS_KIND, HOOK_KIND, JOB_KIND};
use harbormaster_core::machine::HookStatus;
use harbormaster_core::RunOptions;
use serde_json::Value;
use tracing::{error, info};

use crate::Agent;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{function} handles {expected}; this event is `{got}`")]
    WrongEvent {
        function: &'static str,
        expected: String,
        got: String,
    },
    #[error("config: {0}")]
    Config(#[from] BundleError),
    #[error(transparent)]
    Event(#[from] DispatchError),
    /// A CodePipeline event without a job id: there is no job to fail.
    #[error("{0}")]
    NoJob(String),
    /// Some targets failed in a way a retry may fix; the event is safe to redeliver.
    #[error("{}", .0.join("; "))]
    Retry(Vec<String>),
}

/// How often ECS asks again when the hook could not decide (the config could not be read).
const HOOK_RETRY_SECONDS: u32 = 30;

/// A Lambda function and the kinds of event it accepts (each one's IAM policy is cut to them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    pub name: &'static str,
    /// EventBridge detail-types, or [`HOOK_KIND`].
    pub accepts: &'static [&'static str],
    /// Every IAM action this function's code may call, in groups: its role in
    /// `deploy/template.yaml` grants exactly these (a test compares them).
    pub permissions: &'static [&'static [&'static str]],
    /// What handles its events.
    pub runs: Runs,
    /// Who tries a failed event again.
    pub retried_by: Retried,
    /// What it does when the config cannot be read (S3 unreachable, say).
    pub without_config: WithoutConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runs {
    /// The dispatch every event goes through (`harbormaster invoke` too).
    Dispatch,
    /// A CodePipeline job: every outcome is told to CodePipeline.
    PipelineJob,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retried {
    /// Lambda, when the handler returns an error (events are asynchronous, handling is
    /// idempotent): only for what a retry may get past.
    ByLambda,
    /// Its own schedule a minute later (the tick): a retry by Lambda would only fill the
    /// dead-letter queue, and a lasting failure is logged once an hour.
    BySchedule,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WithoutConfig {
    /// An error: Lambda tries again.
    Fails,
    /// ECS is asked to call the lifecycle hook again, instead of failing a deployment nothing
    /// is wrong with.
    AsksAgain,
}

impl Function {
    /// The IAM actions of [`Function::permissions`], sorted, each once.
    pub fn actions(&self) -> Vec<&'static str> {
        let mut a: Vec<&str> = self
            .permissions
            .iter()
            .flat_map(|g| g.iter().copied())
            .collect();
        a.sort_unstable();
        a.dedup();
        a
    }
}

/// What any function that may start or finish a deployment calls: the state and config in S3,
/// the notification topic, rendering (account, secrets, native outputs), registering and
/// updating, guard alarms.
const DEPLOYS: &[&str] = &[
    "s3:GetObject",
    "s3:PutObject",
    // Not a call: without it S3 answers a missing state document 403, not 404.
    "s3:ListBucket",
    "sns:Publish",
    "sts:GetCallerIdentity",
    "ssm:DescribeParameters",
    "ssm:GetParameters",
    "ecs:RegisterTaskDefinition",
    "ecs:TagResource",
    "ecs:ListTaskDefinitions",
    "ecs:DescribeTaskDefinition",
    "ecs:UpdateService",
    "ecs:DescribeServices",
    "iam:PassRole",
    "cloudwatch:DescribeAlarms",
    // Before registering (or putting a known revision back): the image is still in ECR and,
    // if multi-platform, offers the task definition's architecture.
    "ecr:BatchGetImage",
    // A service git names and ECS lacks is created; its one-off task before a rollout runs;
    // its target tracking follows git.
    "ecs:CreateService",
    "ecs:RunTask",
    "application-autoscaling:DescribeScalableTargets",
    "application-autoscaling:DescribeScalingPolicies",
    "application-autoscaling:RegisterScalableTarget",
    "application-autoscaling:PutScalingPolicy",
    "application-autoscaling:DeleteScalingPolicy",
    "application-autoscaling:DeregisterScalableTarget",
    // Not a call: the account's first RegisterScalableTarget creates the service-linked role.
    "iam:CreateServiceLinkedRole",
    // Not calls of ours: Application Auto Scaling creates and deletes a target tracking
    // policy's alarms with the caller's permissions (Application Auto Scaling User Guide,
    // "Permissions required for API actions on target services and CloudWatch").
    "cloudwatch:PutMetricAlarm",
    "cloudwatch:DeleteAlarms",
];

/// Reading ECR (reconciling lost pushes, resolving a pipeline's image).
const READS_ECR: &[&str] = &["ecr:DescribeImages"];
/// Keeping what each environment needs from ECR's lifecycle rules: the manifest read, put again
/// under the protection tag, and the tag taken off when no longer needed (the tick).
const PROTECTS_IMAGES: &[&str] = &["ecr:BatchGetImage", "ecr:PutImage", "ecr:BatchDeleteImage"];
/// Explaining a failed rollout: its stopped tasks.
const EXPLAINS: &[&str] = &["ecs:ListTasks", "ecs:DescribeTasks"];
/// Following the one-off task before a rollout, and stopping it past its time.
const FOLLOWS_TASKS: &[&str] = &["ecs:DescribeTasks", "ecs:StopTask"];
/// Rolling back a deployment whose one-off task (a migration) runs: that task is stopped first.
const ROLLS_BACK: &[&str] = &["ecs:StopTask"];
/// Worker scaling's backlog sources (the Redis URL is a SecureString).
const SCALES: &[&str] = &[
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "cloudwatch:GetMetricData",
    "ssm:GetParameter",
];

pub const ECR_PUSH: Function = Function {
    name: "ecr-push",
    accepts: &["ECR Image Action"],
    permissions: &[DEPLOYS],
    runs: Runs::Dispatch,
    retried_by: Retried::ByLambda,
    without_config: WithoutConfig::Fails,
};
pub const TICK: Function = Function {
    name: "tick",
    accepts: &["Scheduled Event"],
    permissions: &[
        DEPLOYS,
        READS_ECR,
        PROTECTS_IMAGES,
        EXPLAINS,
        FOLLOWS_TASKS,
        SCALES,
    ],
    runs: Runs::Dispatch,
    retried_by: Retried::BySchedule,
    without_config: WithoutConfig::Fails,
};
pub const ECS_HOOK: Function = Function {
    name: "ecs-hook",
    accepts: &[HOOK_KIND],
    // Gates only: it never starts or ends a deployment.
    permissions: &[&[
        "s3:GetObject",
        "s3:PutObject",
        "s3:ListBucket",
        "sns:Publish",
        "ecs:DescribeServiceRevisions",
        "cloudwatch:GetMetricData",
    ]],
    runs: Runs::Dispatch,
    retried_by: Retried::ByLambda,
    without_config: WithoutConfig::AsksAgain,
};
pub const ECS_EVENT: Function = Function {
    name: "ecs-event",
    accepts: &["ECS Deployment State Change", "ECS Service Action"],
    permissions: &[DEPLOYS, EXPLAINS, ROLLS_BACK],
    runs: Runs::Dispatch,
    retried_by: Retried::ByLambda,
    without_config: WithoutConfig::Fails,
};
pub const ALARM: Function = Function {
    name: "alarm",
    accepts: &[ALARM_KIND, ALARM_SNS_KIND],
    permissions: &[
        DEPLOYS,
        ROLLS_BACK,
        &[
            "cloudwatch:ListTagsForResource",
            "ecs:ListServiceDeployments",
            // Which in-progress deployment rolls out the release being rolled back.
            "ecs:DescribeServiceRevisions",
            "ecs:StopServiceDeployment",
        ],
    ],
    runs: Runs::Dispatch,
    retried_by: Retried::ByLambda,
    without_config: WithoutConfig::Fails,
};
pub const PIPELINE_JOB: Function = Function {
    name: "pipeline-job",
    accepts: &[JOB_KIND],
    // The artifact is read with the job's own credentials, not the role's.
    permissions: &[
        DEPLOYS,
        READS_ECR,
        EXPLAINS,
        FOLLOWS_TASKS,
        &[
            "codepipeline:PutJobSuccessResult",
            "codepipeline:PutJobFailureResult",
        ],
    ],
    runs: Runs::PipelineJob,
    retried_by: Retried::ByLambda,
    without_config: WithoutConfig::Fails,
};
pub const FUNCTIONS: &[Function] = &[ECR_PUSH, TICK, ECS_HOOK, ECS_EVENT, ALARM, PIPELINE_JOB];

/// The function that handles this event, by its kind.
pub fn route(event: &Value) -> Option<Function> {
    let kind = Event::kind_of(event)?;
    FUNCTIONS
        .iter()
        .copied()
        .find(|f| f.accepts.contains(&kind))
}

/// What a Lambda function returns: the report, or an error that makes Lambda retry.
pub async fn handle(
    agent: &Agent,
    function: Function,
    event: Value,
    deadline: Option<std::time::Instant>,
) -> Result<Value, HandlerError> {
    // Lambda's deadline on the wall clock: the leases this invocation takes outlast it.
    let opts = RunOptions {
        deadline: deadline.map(|d| {
            let left = d.saturating_duration_since(std::time::Instant::now());
            chrono::Utc::now() + chrono::Duration::from_std(left).unwrap_or_default()
        }),
        ..RunOptions::default()
    };
    if function.runs == Runs::PipelineJob {
        // Every outcome is reported to CodePipeline; only a job without an id is an error.
        let report = crate::pipeline::handle_job(agent, &event, deadline, opts)
            .await
            .map_err(HandlerError::NoJob)?;
        return Ok(serde_json::to_value(report).expect("report serialises"));
    }
    let report = match dispatch(agent, function, &event, opts).await {
        Ok(r) => r,
        Err(e @ HandlerError::Config(_)) => return without_config(function, &event, e),
        Err(e) => return Err(e),
    };
    // CloudWatch reads embedded-metric-format lines from the function's log.
    for line in report.targets.iter().flat_map(|t| &t.metrics) {
        eprintln!("{line}");
    }
    if let Some(answer) = &report.hook {
        // ECS reads only this; the rest of the report is in the log line above.
        return Ok(serde_json::to_value(answer).expect("answer serialises"));
    }
    // Returning an error makes Lambda retry an async event (handling is idempotent): only for
    // what a retry may get past, and only where Lambda is who retries (`Function::retried_by`).
    let retryable = report.retryable_errors();
    let by_schedule = function.retried_by == Retried::BySchedule;
    if retryable.is_empty() || by_schedule {
        let now = chrono::Utc::now();
        for t in report.targets.iter().filter(|t| t.error.is_some()) {
            let (env, service) = (&t.environment, &t.service);
            let error = t.error.as_deref().unwrap_or_default();
            if t.retry
                || !by_schedule
                || harbormaster_core::dispatch::hourly_report(now, &format!("{env}/{service}"))
            {
                tracing::error!(function = function.name, environment = %env, service = %service, error = %error, "not retried by Lambda: the next tick looks again");
            } else {
                tracing::debug!(environment = %env, service = %service, error = %error, "still failing (reported once an hour)");
            }
        }
        Ok(serde_json::to_value(&report).expect("report serialises"))
    } else {
        Err(HandlerError::Retry(retryable))
    }
}

/// What a function answers when its config cannot be loaded (`e` is [`HandlerError::Config`]).
fn without_config(
    function: Function,
    event: &Value,
    e: HandlerError,
) -> Result<Value, HandlerError> {
    match e {
        // The config could not be read (S3 unreachable, say): a hook asks ECS to call again
        // instead of failing, which would roll back a deployment nothing is wrong with.
        HandlerError::Config(e) if function.without_config == WithoutConfig::AsksAgain => {
            let details = event.get("hookDetails").and_then(Value::as_object);
            let reason = format!("config not loaded: {e}");
            let answer = HookResponse::new(
                HookStatus::InProgress,
                &reason,
                details.cloned().unwrap_or_default(),
                HOOK_RETRY_SECONDS,
            );
            Ok(serde_json::to_value(answer).expect("answer serialises"))
        }
        // The tick's schedule calls again in a minute: an error would add Lambda's two retries
        // to the dead-letter queue, three messages a minute while the config stays broken.
        // Answered, and said once an hour.
        HandlerError::Config(e) if function.retried_by == Retried::BySchedule => {
            let now = chrono::Utc::now();
            if harbormaster_core::dispatch::hourly_report(now, "config") {
                error!(function = function.name, error = %e, "config not loaded; nothing done (said once an hour; the next tick tries again)");
            } else {
                tracing::debug!(error = %e, "config still not loaded");
            }
            let report = serde_json::json!({"event": function.name, "error": format!("config not loaded: {e}")});
            Ok(report)
        }
        e => {
            error!(function = function.name, error = %e, "config not loaded; nothing done");
            Err(e)
        }
    }
}

/// The dispatch every function runs, and `harbormaster invoke` with it.
pub async fn dispatch(
    agent: &Agent,
    function: Function,
    event: &Value,
    opts: RunOptions,
) -> Result<DispatchReport, HandlerError> {
    let got = Event::kind_of(event).unwrap_or("").to_owned();
    if !function.accepts.contains(&got.as_str()) {
        return Err(HandlerError::WrongEvent {
            function: function.name,
            expected: function.accepts.join(", "),
            got,
        });
    }
    let function = function.name;
    // A config that cannot be loaded is logged by the caller: once an hour for the tick.
    let (ports, bundle) = agent.prepare().await?;
    let report: DispatchReport = Box::pin(handle_event(&ports, &bundle, event, opts))
        .await
        .inspect_err(|e| {
            error!(error = %e, "event rejected; nothing done");
        })?;
    info!(function, event = %report.event, targets = report.targets.len(), ignored = report.ignored.as_deref().unwrap_or(""), "handled");
    Ok(report)
}

/// A Lambda function's whole life: JSON logs; clients and the config cache built once at cold
/// start (a missing setting fails here, naming it) and reused by warm invocations; then events.
pub async fn serve(function: Function) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_json();
    let agent = Agent::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let agent = agent.clone();
            // The function's ARN names its account: placement needs no GetCallerIdentity.
            let arn = &event.context.invoked_function_arn;
            agent
                .ports
                .know_account(arn.split(':').nth(4).unwrap_or_default());
            async move {
                // Lambda's deadline (ms since the epoch) as a point on this process's clock.
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or_default();
                let left =
                    std::time::Duration::from_millis(event.context.deadline.saturating_sub(now_ms));
                let deadline = std::time::Instant::now() + left;
                handle(&agent, function, event.payload, Some(deadline))
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
