//! RegisterTaskDefinition without a client token: never re-sent blind (a lost answer is
//! looked up by the deployment's tag first).

use aws_sdk_ecs::types::TaskDefinitionField;
use aws_smithy_types::body::SdkBody;
use harbormaster_core::ports::*;
use harbormaster_core::state::DeploymentId;
use harbormaster_core::template::{RenderedTaskDefinition, TAG_DEPLOYMENT};

use crate::errors::classify;

use super::*;

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

    async fn describe_body(&self, arn: &str) -> Result<serde_json::Value, PortError> {
        // The SDK's types cannot be turned back into JSON without a mapping that drops what it
        // does not know; the answer's body, as ECS sent it, is kept by an interceptor instead.
        let body = RawBody::default();
        self.clients
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .include(TaskDefinitionField::Tags)
            .customize()
            .interceptor(body.clone())
            .send()
            .await
            .map_err(|e| classify("DescribeTaskDefinition", &e))?;
        let bytes = body.0.lock().expect("body lock").take().unwrap_or_default();
        serde_json::from_slice(&bytes).map_err(|_| {
            PortError::new(
                ErrorKind::Invalid,
                "DescribeTaskDefinition",
                "the answer is not JSON",
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

/// Keeps the body of the answer it is attached to (after the SDK read it whole).
#[derive(Debug, Clone, Default)]
struct RawBody(std::sync::Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl aws_smithy_runtime_api::client::interceptors::Intercept for RawBody {
    fn name(&self) -> &'static str {
        "RawBody"
    }

    fn read_after_deserialization(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::AfterDeserializationInterceptorContextRef<'_>,
        _: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        if let Some(bytes) = context.response().body().bytes() {
            *self.0.lock().expect("body lock") = Some(bytes.to_vec());
        }
        Ok(())
    }
}
