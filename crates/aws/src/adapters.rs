//! The core's ports implemented with the AWS SDK.

use std::sync::Arc;

use aws_sdk_ecs::types::{
    DeploymentAlarms, DeploymentCircuitBreaker, DeploymentConfiguration, TaskDefinitionField,
};
use aws_smithy_types::body::SdkBody;
use chrono::{DateTime, Utc};
use harbormaster_core::config::Environment;
use harbormaster_core::image::{Digest, Image};
use harbormaster_core::notify::Notification;
use harbormaster_core::ports::*;
use harbormaster_core::state::{DeploymentId, ServiceState};
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

impl TaskDefinitions for AwsPorts {
    async fn register(&self, td: &RenderedTaskDefinition) -> Result<String, PortError> {
        // The Rust SDK's types cannot be built from JSON, and a hand-written mapping would
        // silently drop every field it does not know. The template *is* RegisterTaskDefinition's
        // wire format (awsJson1_1), so the rendered JSON is sent as the request body; the SDK
        // still signs, retries and parses the answer.
        let body = serde_json::to_vec(&td.body).expect("JSON serialises");
        let len = body.len().to_string();
        let out = self
            .clients
            .ecs
            .register_task_definition()
            .family(&td.family)
            .customize()
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

impl Services for AwsPorts {
    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
    ) -> Result<Option<String>, PortError> {
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
                    .map_err(|e| {
                        PortError::new(ErrorKind::Invalid, "UpdateService", e.to_string())
                    })?,
            );
        }
        let mut req = self
            .clients
            .ecs
            .update_service()
            .cluster(&target.cluster)
            .service(&target.service)
            .task_definition(task_definition_arn)
            .deployment_configuration(config.build());
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
                    d.status() == Some("PRIMARY")
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
            deployments: s
                .deployments()
                .iter()
                .map(|d| EcsDeployment {
                    id: d.id().unwrap_or_default().to_owned(),
                    status: d.status().unwrap_or_default().to_owned(),
                    task_definition: d.task_definition().unwrap_or_default().to_owned(),
                    rollout_state: d.rollout_state().map(|r| r.as_str().to_owned()),
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
