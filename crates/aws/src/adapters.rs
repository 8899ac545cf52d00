//! The core's ports implemented with the AWS SDK.

use std::sync::Arc;

use aws_sdk_ecs::types::{
    AdvancedConfiguration, CanaryConfiguration, DeploymentAlarms, DeploymentCircuitBreaker,
    DeploymentConfiguration, DeploymentLifecycleHook, DeploymentLifecycleHookStage,
    DeploymentLifecycleHookTargetType, DeploymentStrategy, DesiredStatus, LinearConfiguration,
    LoadBalancer, TaskDefinitionField,
};
use aws_smithy_types::body::SdkBody;
use chrono::{DateTime, Utc};
use harbormaster_core::config::Environment;
use harbormaster_core::event::{HOOK_DEPLOYMENT, HOOK_ENVIRONMENT, HOOK_SERVICE};
use harbormaster_core::image::{Digest, Image};
use harbormaster_core::notify::Notification;
use harbormaster_core::ports::*;
use harbormaster_core::scaling::{BacklogSource, RedisUrl};
use harbormaster_core::secrets::Redacted;
use harbormaster_core::state::{DeploymentId, ServiceState};
use harbormaster_core::strategy::{MetricQuery, NativeDeployment, QueryKind};
use harbormaster_core::template::{Placement, RenderedTaskDefinition, TAG_DEPLOYMENT};
use tokio::sync::OnceCell;

use crate::errors::classify;

/// The SDK clients the adapters use.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sts: aws_sdk_sts::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Only the pipeline job and `approve --pipeline` call it.
    pub codepipeline: aws_sdk_codepipeline::Client,
    /// Worker backlogs.
    pub sqs: aws_sdk_sqs::Client,
}

/// One set of clients, built once per process (a Lambda's cold start) and shared.
#[derive(Clone)]
pub struct AwsPorts {
    pub clients: Clients,
    pub state_bucket: String,
    pub region: String,
    account: Arc<OnceCell<String>>,
}

impl AwsPorts {
    pub fn new(sdk: &aws_config::SdkConfig, state_bucket: &str) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                // Path-style works with every endpoint, emulators included, and with bucket
                // names that contain dots.
                .force_path_style(true)
                .build(),
        );
        AwsPorts {
            clients: Clients {
                ecs: aws_sdk_ecs::Client::new(sdk),
                ecr: aws_sdk_ecr::Client::new(sdk),
                s3,
                sns: aws_sdk_sns::Client::new(sdk),
                sts: aws_sdk_sts::Client::new(sdk),
                ssm: aws_sdk_ssm::Client::new(sdk),
                cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
                codepipeline: aws_sdk_codepipeline::Client::new(sdk),
                sqs: aws_sdk_sqs::Client::new(sdk),
            },
            state_bucket: state_bucket.to_owned(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            account: Arc::new(OnceCell::new()),
        }
    }

    /// From clients built elsewhere (tests with mocked HTTP, say).
    pub fn from_clients(c: Clients, state_bucket: &str, region: &str) -> Self {
        AwsPorts {
            clients: c,
            state_bucket: state_bucket.to_owned(),
            region: region.to_owned(),
            account: Arc::new(OnceCell::new()),
        }
    }

    pub fn with_state_bucket(&self, bucket: &str) -> Self {
        let mut p = self.clone();
        p.state_bucket = bucket.to_owned();
        p
    }

    async fn account(&self) -> Result<String, PortError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .clients
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify("GetCallerIdentity", &e))?;
                out.account.ok_or_else(|| {
                    PortError::new(
                        ErrorKind::Invalid,
                        "GetCallerIdentity",
                        "no account in the answer",
                    )
                })
            })
            .await
            .cloned()
    }
}

impl StateStore for AwsPorts {
    async fn load(&self, key: &str) -> Result<Option<(ServiceState, Version)>, PortError> {
        let out = match self
            .clients
            .s3
            .get_object()
            .bucket(&self.state_bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let pe = classify("GetObject", &e);
                return if pe.kind == ErrorKind::NotFound && pe.message.contains("NoSuchKey") {
                    Ok(None)
                } else {
                    Err(pe)
                };
            }
        };
        let etag = out.e_tag.clone().ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                "GetObject",
                "no ETag on the state document",
            )
        })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|_| PortError::new(ErrorKind::Transient, "GetObject", "the body was cut off"))?
            .into_bytes();
        let state: ServiceState = serde_json::from_slice(&bytes).map_err(|e| {
            PortError::new(
                ErrorKind::Invalid,
                "GetObject",
                format!(
                    "s3://{}/{key} is not a state document: {e}",
                    self.state_bucket
                ),
            )
        })?;
        Ok(Some((state, Version(etag))))
    }

    async fn save(
        &self,
        key: &str,
        state: &ServiceState,
        expected: Option<&Version>,
    ) -> Result<Version, SaveError> {
        let body = serde_json::to_vec_pretty(state).expect("state serialises");
        let req = self
            .clients
            .s3
            .put_object()
            .bucket(&self.state_bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into());
        // The ETag is the fencing token: create only if absent, replace only the version read.
        let req = match expected {
            None => req.if_none_match("*"),
            Some(v) => req.if_match(&v.0),
        };
        match req.send().await {
            Ok(out) => Ok(Version(out.e_tag.unwrap_or_default())),
            Err(e) => {
                let pe = classify("PutObject", &e);
                if pe.kind == ErrorKind::Conflict {
                    Err(SaveError::Conflict)
                } else {
                    Err(SaveError::Port(pe))
                }
            }
        }
    }
}

/// Sends of RegisterTaskDefinition one `register` makes at most before the engine takes over.
const REGISTER_SENDS: u32 = 4;

impl TaskDefinitions for AwsPorts {
    async fn register(&self, td: &RenderedTaskDefinition) -> Result<String, PortError> {
        // RegisterTaskDefinition has no idempotency token: if its answer is lost after ECS
        // registered, sending it again makes a second revision. So the SDK does not retry it
        // (its retry cannot know), and before sending again this looks for the revision tagged
        // with the deployment; only a throttle (never executed) is re-sent without looking.
        let deployment = td.body["tags"]
            .as_array()
            .and_then(|tags| {
                tags.iter()
                    .find(|t| t["key"] == TAG_DEPLOYMENT)
                    .and_then(|t| t["value"].as_str())
            })
            .map(|v| DeploymentId(v.to_owned()));
        let mut last: Option<PortError> = None;
        for send in 0..REGISTER_SENDS {
            if let Some(e) = &last {
                tokio::time::sleep(register_backoff(send)).await;
                if let (Some(id), false) = (&deployment, e.kind == ErrorKind::Throttled) {
                    if let Some(arn) = self.find_by_deployment(&td.family, id).await? {
                        return Ok(arn);
                    }
                }
            }
            match self.register_once(td).await {
                Ok(arn) => return Ok(arn),
                Err(e) if e.kind.is_retryable() => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.expect("at least one send failed"))
    }

    async fn find_by_deployment(
        &self,
        family: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        // An earlier attempt registers at most one revision, and it is among the newest.
        let list = self
            .clients
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .sort(aws_sdk_ecs::types::SortOrder::Desc)
            .max_results(10)
            .send()
            .await
            .map_err(|e| classify("ListTaskDefinitions", &e))?;
        for arn in list.task_definition_arns() {
            if !arn.contains(&format!("task-definition/{family}:")) {
                continue;
            }
            let d = self
                .clients
                .ecs
                .describe_task_definition()
                .task_definition(arn)
                .include(TaskDefinitionField::Tags)
                .send()
                .await
                .map_err(|e| classify("DescribeTaskDefinition", &e))?;
            if d.tags().iter().any(|t| {
                t.key() == Some(TAG_DEPLOYMENT) && t.value() == Some(deployment.0.as_str())
            }) {
                return Ok(Some(arn.clone()));
            }
        }
        Ok(None)
    }
}

/// 0.1 s, 0.4 s, 1.6 s between sends, with up to half again of jitter so concurrent agents
/// spread out.
fn register_backoff(send: u32) -> std::time::Duration {
    let base = 100u64 * 4u64.pow(send.saturating_sub(1));
    let jitter = u64::from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0),
    ) % (base / 2 + 1);
    std::time::Duration::from_millis(base + jitter)
}

impl AwsPorts {
    async fn register_once(&self, td: &RenderedTaskDefinition) -> Result<String, PortError> {
        // The Rust SDK's types cannot be built from JSON, and a hand-written mapping would
        // silently drop every field it does not know. The template *is* RegisterTaskDefinition's
        // wire format (awsJson1_1), so the rendered JSON is sent as the request body; the SDK
        // still signs and parses the answer.
        let body = serde_json::to_vec(&td.body).expect("JSON serialises");
        let len = body.len().to_string();
        let out = self
            .clients
            .ecs
            .register_task_definition()
            .family(&td.family)
            .customize()
            .config_override(
                aws_sdk_ecs::config::Config::builder()
                    .retry_config(aws_sdk_ecs::config::retry::RetryConfig::disabled()),
            )
            .mutate_request(move |req| {
                *req.body_mut() = SdkBody::from(body.clone());
                req.headers_mut().insert("content-length", len.clone());
            })
            .send()
            .await
            .map_err(|e| classify("RegisterTaskDefinition", &e))?;
        out.task_definition
            .and_then(|t| t.task_definition_arn)
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::Invalid,
                    "RegisterTaskDefinition",
                    "no ARN in the answer",
                )
            })
    }
}

impl Services for AwsPorts {
    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        let invalid = |e: &dyn std::fmt::Display| {
            PortError::new(ErrorKind::Invalid, "UpdateService", e.to_string())
        };
        let mut config = DeploymentConfiguration::builder()
            .minimum_healthy_percent(target.rolling.min_healthy_percent as i32)
            .maximum_percent(target.rolling.max_percent as i32)
            .deployment_circuit_breaker(
                DeploymentCircuitBreaker::builder()
                    .enable(true)
                    .rollback(true)
                    .build(),
            );
        if !target.alarms.is_empty() {
            config = config.alarms(
                DeploymentAlarms::builder()
                    .set_alarm_names(Some(target.alarms.clone()))
                    .enable(true)
                    .rollback(true)
                    .build()
                    .map_err(|e| invalid(&e))?,
            );
        }
        let mut load_balancer = None;
        if let Some(n) = &target.native {
            config = native_configuration(config, n, target, deployment);
            let mut advanced = AdvancedConfiguration::builder()
                .alternate_target_group_arn(&n.alternate_target_group)
                .production_listener_rule(&n.production_listener_rule)
                .role_arn(&n.role);
            if let Some(rule) = &n.test_listener_rule {
                advanced = advanced.test_listener_rule(rule);
            }
            load_balancer = Some(
                LoadBalancer::builder()
                    .target_group_arn(&n.target_group)
                    .container_name(&n.container)
                    .container_port(i32::from(n.port))
                    .advanced_configuration(advanced.build())
                    .build(),
            );
        }
        let mut req = self
            .clients
            .ecs
            .update_service()
            .cluster(&target.cluster)
            .service(&target.service)
            .task_definition(task_definition_arn)
            .deployment_configuration(config.build())
            .set_load_balancers(load_balancer.map(|lb| vec![lb]));
        if let Some(n) = target.desired_count {
            req = req.desired_count(n as i32);
        }
        if let Some(g) = target.rolling.health_check_grace_period_seconds {
            req = req.health_check_grace_period_seconds(g as i32);
        }
        let out = req
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        Ok(out.service.and_then(|s| {
            s.deployments()
                .iter()
                .find(|d| {
                    deployment_status(d.status()) == DeploymentStatus::Primary
                        && d.task_definition() == Some(task_definition_arn)
                })
                .and_then(|d| d.id().map(str::to_owned))
        }))
    }

    async fn describe(&self, cluster: &str, service: &str) -> Result<ServiceSnapshot, PortError> {
        let out = self
            .clients
            .ecs
            .describe_services()
            .cluster(cluster)
            .services(service)
            .send()
            .await
            .map_err(|e| classify("DescribeServices", &e))?;
        let Some(s) = out.services().first() else {
            let why = out
                .failures()
                .first()
                .and_then(|f| f.reason())
                .unwrap_or("not returned")
                .to_owned();
            return Err(PortError::new(
                ErrorKind::NotFound,
                "DescribeServices",
                format!("service {service} in cluster {cluster}: {why}"),
            ));
        };
        Ok(ServiceSnapshot {
            task_definition: s.task_definition().unwrap_or_default().to_owned(),
            desired_count: s.desired_count(),
            running_count: s.running_count(),
            deployments: s
                .deployments()
                .iter()
                .map(|d| EcsDeployment {
                    id: d.id().unwrap_or_default().to_owned(),
                    status: deployment_status(d.status()),
                    task_definition: d.task_definition().unwrap_or_default().to_owned(),
                    rollout_state: d.rollout_state().and_then(rollout_state),
                    rollout_reason: d.rollout_state_reason().map(str::to_owned),
                    running: d.running_count(),
                    desired: d.desired_count(),
                    failed_tasks: d.failed_tasks(),
                })
                .collect(),
            events: s
                .events()
                .iter()
                .take(5)
                .filter_map(|e| e.message().map(str::to_owned))
                .collect(),
        })
    }

    async fn revision_task_definition(
        &self,
        revision_arn: &str,
    ) -> Result<Option<String>, PortError> {
        let out = self
            .clients
            .ecs
            .describe_service_revisions()
            .service_revision_arns(revision_arn)
            .send()
            .await
            .map_err(|e| classify("DescribeServiceRevisions", &e))?;
        Ok(out
            .service_revisions()
            .iter()
            .find(|r| r.service_revision_arn() == Some(revision_arn))
            .and_then(|r| r.task_definition().map(str::to_owned)))
    }

    async fn set_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), PortError> {
        self.clients
            .ecs
            .update_service()
            .cluster(cluster)
            .service(service)
            .desired_count(desired as i32)
            .send()
            .await
            .map_err(|e| classify("UpdateService", &e))?;
        Ok(())
    }

    async fn stop_rollout(&self, cluster: &str, service: &str) -> Result<bool, PortError> {
        use aws_sdk_ecs::types::{ServiceDeploymentStatus, StopServiceDeploymentStopType};
        let listed = self
            .clients
            .ecs
            .list_service_deployments()
            .cluster(cluster)
            .service(service)
            .status(ServiceDeploymentStatus::InProgress)
            .send()
            .await
            .map_err(|e| classify("ListServiceDeployments", &e))?;
        let Some(arn) = listed
            .service_deployments()
            .iter()
            .find_map(|d| d.service_deployment_arn())
        else {
            return Ok(false);
        };
        self.clients
            .ecs
            .stop_service_deployment()
            .service_deployment_arn(arn)
            .stop_type(StopServiceDeploymentStopType::Rollback)
            .send()
            .await
            .map_err(|e| classify("StopServiceDeployment", &e))?;
        Ok(true)
    }

    async fn stopped_tasks(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> Result<Vec<StoppedTask>, PortError> {
        let listed = self
            .clients
            .ecs
            .list_tasks()
            .cluster(cluster)
            .service_name(service)
            .desired_status(DesiredStatus::Stopped)
            .max_results(20)
            .send()
            .await
            .map_err(|e| classify("ListTasks", &e))?;
        if listed.task_arns().is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .clients
            .ecs
            .describe_tasks()
            .cluster(cluster)
            .set_tasks(Some(listed.task_arns().to_vec()))
            .send()
            .await
            .map_err(|e| classify("DescribeTasks", &e))?;
        let mut tasks: Vec<_> = out
            .tasks()
            .iter()
            .filter(|t| t.task_definition_arn() == Some(task_definition_arn))
            .collect();
        tasks.sort_by_key(|t| std::cmp::Reverse(t.stopped_at().map(|d| d.secs())));
        Ok(tasks
            .into_iter()
            .map(|t| StoppedTask {
                task_arn: t.task_arn().unwrap_or_default().to_owned(),
                stopped_reason: t.stopped_reason().map(str::to_owned),
                containers: t
                    .containers()
                    .iter()
                    .filter(|c| c.exit_code().is_some() || c.reason().is_some())
                    .map(|c| {
                        (
                            c.name().unwrap_or_default().to_owned(),
                            c.exit_code(),
                            c.reason().map(str::to_owned),
                        )
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Strategy, bake time, traffic steps and the lifecycle hook for a native deployment. The hook
/// details name the deployment, so the hook knows what it gates without another lookup.
fn native_configuration(
    config: aws_sdk_ecs::types::builders::DeploymentConfigurationBuilder,
    n: &NativeDeployment,
    target: &ServiceTarget,
    deployment: &DeploymentId,
) -> aws_sdk_ecs::types::builders::DeploymentConfigurationBuilder {
    use aws_smithy_types::Document;
    let mut config = config
        .strategy(DeploymentStrategy::from(n.strategy.ecs_name()))
        .bake_time_in_minutes(n.bake_time_minutes as i32);
    if let Some(c) = &n.canary {
        config = config.canary_configuration(
            CanaryConfiguration::builder()
                .canary_percent(c.percent)
                .canary_bake_time_in_minutes(c.interval_minutes as i32)
                .build(),
        );
    }
    if let Some(l) = &n.linear {
        config = config.linear_configuration(
            LinearConfiguration::builder()
                .step_percent(l.percent)
                .step_bake_time_in_minutes(l.interval_minutes as i32)
                .build(),
        );
    }
    let details = Document::Object(
        [
            (HOOK_ENVIRONMENT, target.environment.as_str()),
            (HOOK_SERVICE, target.name.as_str()),
            (HOOK_DEPLOYMENT, deployment.0.as_str()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), Document::String(v.to_owned())))
        .collect(),
    );
    config.lifecycle_hooks(
        DeploymentLifecycleHook::builder()
            .target_type(DeploymentLifecycleHookTargetType::AwsLambda)
            .hook_target_arn(&n.hook_function)
            .role_arn(&n.hook_role)
            .set_lifecycle_stages(Some(
                n.hook_stages
                    .iter()
                    .map(|s| DeploymentLifecycleHookStage::from(s.as_str()))
                    .collect(),
            ))
            .hook_details(details)
            .build(),
    )
}

impl Backlogs for AwsPorts {
    async fn backlog(&self, source: &BacklogSource) -> Result<u64, PortError> {
        match source {
            BacklogSource::Sqs { queue, in_flight } => self.sqs_backlog(queue, *in_flight).await,
            BacklogSource::Metric {
                namespace,
                metric,
                dimensions,
                stat,
            } => {
                let query = MetricQuery {
                    id: "backlog".into(),
                    kind: QueryKind::Metric {
                        namespace: namespace.clone(),
                        metric: metric.clone(),
                        dimensions: dimensions.clone(),
                        stat: stat.clone(),
                        period_seconds: 60,
                    },
                };
                let now = Utc::now();
                let series = self
                    .measure(&[query], now - chrono::Duration::minutes(5), now)
                    .await?;
                // GetMetricData answers newest first: the latest datapoint is the backlog now.
                let s = series.into_iter().next().unwrap_or_default();
                match (s.problem, s.values.first()) {
                    (Some(p), _) => Err(PortError::new(ErrorKind::Transient, "GetMetricData", p)),
                    (None, Some(v)) => Ok(v.max(0.0).round() as u64),
                    (None, None) => Err(PortError::new(
                        ErrorKind::NotFound,
                        "GetMetricData",
                        format!("no datapoint of {namespace}/{metric} in the last 5 minutes"),
                    )),
                }
            }
            BacklogSource::Redis { url, keys } => {
                let url = match url {
                    RedisUrl::Plain(u) => Redacted::new(u.clone()),
                    RedisUrl::Parameter(name) => self.secret(name).await?,
                };
                redis_backlog(&url, keys).await
            }
        }
    }
}

impl AwsPorts {
    async fn sqs_backlog(&self, queue: &str, in_flight: bool) -> Result<u64, PortError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = if queue.starts_with("https://") || queue.starts_with("http://") {
            queue.to_owned()
        } else {
            self.clients
                .sqs
                .get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| classify("GetQueueUrl", &e))?
                .queue_url
                .unwrap_or_default()
        };
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", &e))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(n(A::ApproximateNumberOfMessages)
            + if in_flight {
                n(A::ApproximateNumberOfMessagesNotVisible)
            } else {
                0
            })
    }

    /// A SecureString's value, decrypted, held redacted: only the Redis connection reads it.
    async fn secret(&self, name: &str) -> Result<Redacted<String>, PortError> {
        let out = self
            .clients
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| classify("GetParameter", &e))?;
        out.parameter
            .and_then(|p| p.value)
            .map(Redacted::new)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "GetParameter", name.to_owned()))
    }
}

/// LLEN of each list, summed. Errors never carry the URL (it may hold a password).
async fn redis_backlog(url: &Redacted<String>, keys: &[String]) -> Result<u64, PortError> {
    let fail = |e: redis::RedisError| {
        let kind = if e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            ErrorKind::Transient
        } else {
            ErrorKind::Invalid
        };
        PortError::new(
            kind,
            "Redis LLEN",
            format!("{:?}: {}", e.kind(), e.detail().unwrap_or("")),
        )
    };
    let client = redis::Client::open(url.expose().as_str()).map_err(fail)?;
    let mut con = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| PortError::new(ErrorKind::Transient, "Redis LLEN", "connecting timed out"))?
    .map_err(fail)?;
    let mut total = 0u64;
    for k in keys {
        let n: u64 = redis::cmd("LLEN")
            .arg(k)
            .query_async(&mut con)
            .await
            .map_err(fail)?;
        total += n;
    }
    Ok(total)
}

impl Alarms for AwsPorts {
    async fn firing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        let mut firing = Vec::new();
        for chunk in names.chunks(100) {
            let out = self
                .clients
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                .send()
                .await
                .map_err(|e| classify("DescribeAlarms", &e))?;
            firing.extend(
                out.metric_alarms()
                    .iter()
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
            firing.extend(
                out.composite_alarms()
                    .iter()
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
        }
        Ok(firing)
    }

    async fn alarm_tags(
        &self,
        alarm_arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, PortError> {
        let out = self
            .clients
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(alarm_arn)
            .send()
            .await
            .map_err(|e| classify("ListTagsForResource", &e))?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect())
    }

    async fn put_alarm(&self, spec: &harbormaster_core::alarm::AlarmSpec) -> Result<(), PortError> {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
        let mut req = self
            .clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&spec.name)
            .alarm_description(&spec.description)
            .namespace(&spec.namespace)
            .metric_name(&spec.metric)
            .statistic(Statistic::from(spec.statistic.as_str()))
            .period(spec.period_seconds as i32)
            .evaluation_periods(spec.evaluation_periods as i32)
            .threshold(spec.threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            // No traffic is not an error: a quiet service must not roll back.
            .treat_missing_data("notBreaching");
        for (k, v) in &spec.dimensions {
            req = req.dimensions(Dimension::builder().name(k).value(v).build());
        }
        for (k, v) in &spec.tags {
            req = req.tags(Tag::builder().key(k).value(v).build());
        }
        req.send()
            .await
            .map_err(|e| classify("PutMetricAlarm", &e))?;
        Ok(())
    }
}

impl Metrics for AwsPorts {
    async fn measure(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Series>, PortError> {
        use aws_sdk_cloudwatch::types::{
            Dimension, Metric, MetricDataQuery, MetricStat, StatusCode,
        };
        let mut req = self
            .clients
            .cloudwatch
            .get_metric_data()
            .start_time(aws_smithy_types::DateTime::from_secs(start.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(end.timestamp()));
        for q in queries {
            let mut b = MetricDataQuery::builder().id(&q.id);
            b = match &q.kind {
                QueryKind::Metric {
                    namespace,
                    metric,
                    dimensions,
                    stat,
                    period_seconds,
                } => b.metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(namespace)
                                .metric_name(metric)
                                .set_dimensions(Some(
                                    dimensions
                                        .iter()
                                        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                                        .collect(),
                                ))
                                .build(),
                        )
                        .period(*period_seconds as i32)
                        .stat(stat)
                        .build(),
                ),
                QueryKind::Expression {
                    expression,
                    period_seconds,
                } => b.expression(expression).period(*period_seconds as i32),
            };
            // Every query returns data: a check may compare any of them.
            req = req.metric_data_queries(b.return_data(true).build());
        }
        let mut series: Vec<Series> = Vec::new();
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("GetMetricData", &e))?;
            for r in page.metric_data_results() {
                let id = r.id().unwrap_or_default().to_owned();
                let problem = match r.status_code() {
                    Some(StatusCode::InternalError) | Some(StatusCode::Forbidden) => Some(format!(
                        "CloudWatch: {}",
                        r.messages()
                            .iter()
                            .filter_map(|m| m.value())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                    _ => None,
                };
                match series.iter_mut().find(|s| s.id == id) {
                    Some(s) => s.values.extend_from_slice(r.values()),
                    None => series.push(Series {
                        id,
                        values: r.values().to_vec(),
                        problem,
                    }),
                }
            }
        }
        Ok(series)
    }
}

fn to_utc(t: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

impl AwsPorts {
    async fn describe_images(
        &self,
        repository: &str,
        id: Option<aws_sdk_ecr::types::ImageIdentifier>,
    ) -> Result<Vec<aws_sdk_ecr::types::ImageDetail>, PortError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .clients
                .ecr
                .describe_images()
                .repository_name(repository)
                .set_next_token(token.clone());
            match &id {
                Some(id) => req = req.image_ids(id.clone()),
                None => {
                    req = req.filter(
                        aws_sdk_ecr::types::DescribeImagesFilter::builder()
                            .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                            .build(),
                    )
                }
            }
            match req.send().await {
                Ok(page) => {
                    out.extend(page.image_details().iter().cloned());
                    token = page.next_token().map(str::to_owned);
                    if token.is_none() || id.is_some() {
                        return Ok(out);
                    }
                }
                Err(e) => {
                    let pe = classify("DescribeImages", &e);
                    return if pe.kind == ErrorKind::NotFound
                        && id.is_some()
                        && pe.message.contains("ImageNotFound")
                    {
                        Ok(Vec::new())
                    } else {
                        Err(pe)
                    };
                }
            }
        }
    }
}

fn images_of(
    repository: &str,
    detail: &aws_sdk_ecr::types::ImageDetail,
    only_tag: Option<&str>,
) -> Vec<Image> {
    let Some(digest) = detail.image_digest().and_then(|d| Digest::parse(d).ok()) else {
        return Vec::new();
    };
    let pushed_at = to_utc(detail.image_pushed_at());
    let tags: Vec<Option<String>> = match only_tag {
        Some(t) => vec![Some(t.to_owned())],
        None if detail.image_tags().is_empty() => vec![None],
        None => detail
            .image_tags()
            .iter()
            .map(|t| Some(t.clone()))
            .collect(),
    };
    tags.into_iter()
        .map(|tag| Image {
            repository: repository.to_owned(),
            digest: digest.clone(),
            tag,
            pushed_at,
        })
        .collect()
}

impl Images for AwsPorts {
    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Image>, PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(tag)
            .build();
        let found = self.describe_images(repository, Some(id)).await?;
        Ok(found
            .first()
            .and_then(|d| images_of(repository, d, Some(tag)).into_iter().next()))
    }

    async fn by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Image>, PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest.as_str())
            .build();
        let found = self.describe_images(repository, Some(id)).await?;
        Ok(found.first().and_then(|d| {
            let tag = d.image_tags().first().map(String::as_str);
            images_of(repository, d, tag).into_iter().next()
        }))
    }

    async fn tagged(&self, repository: &str) -> Result<Vec<Image>, PortError> {
        let found = self.describe_images(repository, None).await?;
        Ok(found
            .iter()
            .flat_map(|d| images_of(repository, d, None))
            .collect())
    }
}

impl Notifier for AwsPorts {
    async fn publish(&self, topic: &str, n: &Notification) -> Result<(), PortError> {
        // Per-protocol messages: people on email and chat read text, machines on SQS, Lambda
        // and HTTPS get JSON. Attributes let subscriptions filter by environment or severity.
        let json = n.json().to_string();
        let message = serde_json::json!({
            "default": n.text(),
            "email": n.text(),
            "sqs": json,
            "lambda": json,
            "http": json,
            "https": json,
        });
        let mut req = self
            .clients
            .sns
            .publish()
            .topic_arn(topic)
            .subject(n.subject())
            .message_structure("json")
            .message(message.to_string());
        for (k, v) in n.attributes() {
            req = req.message_attributes(
                k,
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| PortError::new(ErrorKind::Invalid, "Publish", e.to_string()))?,
            );
        }
        req.send().await.map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}

impl Parameters for AwsPorts {
    async fn missing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        // DescribeParameters answers with metadata only: no value, encrypted or not, is read.
        let mut found = std::collections::BTreeSet::new();
        for chunk in names.chunks(50) {
            let mut token = None;
            loop {
                let out = self
                    .clients
                    .ssm
                    .describe_parameters()
                    .parameter_filters(
                        aws_sdk_ssm::types::ParameterStringFilter::builder()
                            .key("Name")
                            .option("Equals")
                            .set_values(Some(chunk.to_vec()))
                            .build()
                            .map_err(|e| {
                                PortError::new(
                                    ErrorKind::Invalid,
                                    "DescribeParameters",
                                    e.to_string(),
                                )
                            })?,
                    )
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeParameters", &e))?;
                found.extend(
                    out.parameters()
                        .iter()
                        .filter_map(|p| p.name().map(str::to_owned)),
                );
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(names
            .iter()
            .filter(|n| !found.contains(*n))
            .cloned()
            .collect())
    }

    async fn outputs(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeMap<String, String>, PortError> {
        let mut found = std::collections::BTreeMap::new();
        for chunk in names.chunks(10) {
            let out = self
                .clients
                .ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                // Outputs are plain Strings; a SecureString is never decrypted here.
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| classify("GetParameters", &e))?;
            for p in out.parameters() {
                if p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString) {
                    continue;
                }
                if let (Some(n), Some(v)) = (p.name(), p.value()) {
                    found.insert(n.to_owned(), v.to_owned());
                }
            }
        }
        Ok(found)
    }
}

impl Placements for AwsPorts {
    async fn placement(&self, environment: &Environment) -> Result<Placement, PortError> {
        let account = match &environment.account_id {
            Some(a) => a.clone(),
            None => self.account().await?,
        };
        Ok(Placement {
            account,
            region: self.region.clone(),
        })
    }
}

impl Clock for AwsPorts {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// ECS's word for a deployment's place in the service (the API types it as a plain string).
fn deployment_status(status: Option<&str>) -> DeploymentStatus {
    match status {
        Some("PRIMARY") => DeploymentStatus::Primary,
        Some("ACTIVE") => DeploymentStatus::Active,
        _ => DeploymentStatus::Inactive,
    }
}

fn rollout_state(state: &aws_sdk_ecs::types::DeploymentRolloutState) -> Option<RolloutState> {
    use aws_sdk_ecs::types::DeploymentRolloutState as Wire;
    match state {
        Wire::InProgress => Some(RolloutState::InProgress),
        Wire::Completed => Some(RolloutState::Completed),
        Wire::Failed => Some(RolloutState::Failed),
        _ => None,
    }
}
