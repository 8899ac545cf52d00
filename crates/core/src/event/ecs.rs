//! aws.ecs: "ECS Deployment State Change", "ECS Service Action", and the payload ECS sends a
//! lifecycle hook function (no EventBridge envelope).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{ecs_event, service_of_arn, Event, EventError, Source, HOOK_KIND};
use crate::strategy::Stage;

/// The payload ECS sends a lifecycle hook function (AWS's documented shape).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HookPayload {
    pub execution_id: String,
    pub lifecycle_stage: String,
    /// The service deployment's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_arn: Option<String>,
    pub execution_details: ExecutionDetails,
    /// What the hook configuration carries, plus what the last IN_PROGRESS answer returned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_details: Option<serde_json::Map<String, Value>>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetails {
    pub service_arn: String,
    pub target_service_revision_arn: String,
    #[serde(default)]
    pub test_traffic_weights: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    pub production_traffic_weights: std::collections::BTreeMap<String, f64>,
}

/// The `detail` of "ECS Deployment State Change".
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EcsDeploymentDetail {
    pub event_type: String,
    pub event_name: String,
    pub deployment_id: String,
    pub updated_at: DateTime<Utc>,
    #[serde(default)]
    pub reason: Option<String>,
}

impl EcsDeploymentDetail {
    /// What the event's `eventName` means for a deployment, if it is a state the agent acts on:
    /// the only place ECS's words for it are read.
    pub fn change(&self) -> Option<crate::machine::EcsChange> {
        use crate::machine::EcsChange;
        match self.event_name.as_str() {
            "SERVICE_DEPLOYMENT_IN_PROGRESS" => Some(EcsChange::InProgress),
            "SERVICE_DEPLOYMENT_COMPLETED" => Some(EcsChange::Completed),
            "SERVICE_DEPLOYMENT_FAILED" => Some(EcsChange::Failed),
            _ => None,
        }
    }
}

/// The `detail` of "ECS Service Action" (only what the agent reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct EcsServiceActionDetail {
    pub event_type: String,
    pub event_name: String,
    #[serde(default)]
    pub cluster_arn: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

impl EcsServiceActionDetail {
    /// `SERVICE_STEADY_STATE`: the service has settled, one way or the other.
    pub fn is_steady_state(&self) -> bool {
        self.event_name == "SERVICE_STEADY_STATE"
    }
}

pub(super) fn parse_deployment(
    value: &Value,
    id: String,
    at: Source<'_>,
) -> Result<Event, EventError> {
    let (service, mut detail) = ecs_event::<EcsDeploymentDetail>(value, at)?;
    at.require_id(&id)?;
    at.short("detail.deploymentId", &detail.deployment_id)?;
    detail.reason = (detail.reason).map(|r| crate::text::clipped(&r, crate::text::MAX_REASON));
    Ok(Event::EcsDeployment {
        id,
        service,
        detail,
    })
}

pub(super) fn parse_service_action(
    value: &Value,
    id: String,
    at: Source<'_>,
) -> Result<Event, EventError> {
    let (service, detail) = ecs_event::<EcsServiceActionDetail>(value, at)?;
    Ok(Event::EcsServiceAction {
        id,
        service,
        detail,
    })
}

pub(super) fn parse_hook(value: &Value) -> Result<Event, EventError> {
    let id = value
        .get("executionId")
        .and_then(Value::as_str)
        .map(|i| format!(" {i}"))
        .unwrap_or_default();
    let at = Source {
        event: HOOK_KIND,
        id: &id,
    };
    let payload: HookPayload = crate::json::typed(value).map_err(|e| {
        let field = if e.path.is_empty() {
            "payload"
        } else {
            &e.path
        };
        at.malformed(field, &e.problem)
    })?;
    let stage = Stage::parse(&payload.lifecycle_stage).ok_or_else(|| {
        let stage = &payload.lifecycle_stage;
        at.malformed(
            "lifecycleStage",
            &format!("`{stage}` is not an ECS lifecycle stage"),
        )
    })?;
    if service_of_arn(&payload.execution_details.service_arn).is_none() {
        return Err(at.malformed(
            "executionDetails.serviceArn",
            "is not a service ARN (arn:aws:ecs:…:service/[<cluster>/]<service>)",
        ));
    }
    Ok(Event::Hook { stage, payload })
}
