//! Incoming events: recognised, checked, and turned into domain values before anything acts.
//! A malformed event is an error naming the event and the field; it never starts anything.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::alarm::{parse_time, AlarmChange, AlarmState};
use crate::image::{Digest, Image};
use crate::strategy::Stage;

/// What the `ecs-hook` function is handed: no EventBridge envelope, recognised by its shape.
pub const HOOK_KIND: &str = "ECS lifecycle hook";
/// A CloudWatch alarm action's message, delivered by SNS to a Lambda (`Records[].Sns`).
pub const ALARM_SNS_KIND: &str = "CloudWatch alarm via SNS";
pub const ALARM_KIND: &str = "CloudWatch Alarm State Change";
/// A CodePipeline Lambda invoke action's job (`{"CodePipeline.job": …}`).
pub const JOB_KIND: &str = "CodePipeline job";
/// The hook-details keys the agent sets with UpdateService, so the hook knows what it gates.
pub const HOOK_ENVIRONMENT: &str = "harbormaster:environment";
pub const HOOK_SERVICE: &str = "harbormaster:service";
pub const HOOK_DEPLOYMENT: &str = "harbormaster:deployment";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("unrecognised event (source `{source_name}`, detail-type `{detail_type}`): Harbormaster handles \"ECR Image Action\" from aws.ecr, \"ECS Deployment State Change\" and \"ECS Service Action\" from aws.ecs, \"Scheduled Event\" from aws.events, and ECS lifecycle hook invocations")]
    Unknown {
        source_name: String,
        detail_type: String,
    },
    #[error("malformed {event} event{id}: `{field}` {problem}")]
    Malformed {
        event: &'static str,
        id: String,
        field: String,
        problem: String,
    },
}

/// The `detail` of an EventBridge "ECR Image Action" event. aws_lambda_events has no type for it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageActionDetail {
    pub result: String,
    pub repository_name: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    pub action_type: String,
    #[serde(default)]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrAction {
    /// A successful push of a tagged image.
    Pushed(Image),
    /// Anything else: a failed push, a DELETE, an untagged push. Nothing to deploy; the reason
    /// says why.
    NothingToDeploy(String),
}

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

/// `arn:aws:ecs:<region>:<account>:service/<cluster>/<service>` → (cluster, service).
pub fn service_of_arn(arn: &str) -> Option<(String, String)> {
    let rest = arn.split(":service/").nth(1)?;
    let (cluster, service) = rest.split_once('/')?;
    (!cluster.is_empty() && !service.is_empty() && !service.contains('/'))
        .then(|| (cluster.to_owned(), service.to_owned()))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    EcrImageAction {
        id: String,
        account: Option<String>,
        region: Option<String>,
        action: EcrAction,
    },
    Scheduled {
        id: String,
        time: Option<DateTime<Utc>>,
    },
    Hook {
        stage: Stage,
        payload: HookPayload,
    },
    EcsDeployment {
        id: String,
        /// (cluster, service) from `resources`.
        service: (String, String),
        detail: EcsDeploymentDetail,
    },
    EcsServiceAction {
        id: String,
        service: (String, String),
        detail: EcsServiceActionDetail,
    },
    /// Alarm state changes: one from EventBridge, one per record from SNS.
    Alarms(Vec<AlarmChange>),
}

/// The `detail` of "CloudWatch Alarm State Change" (what the agent reads).
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AlarmDetail {
    pub alarm_name: String,
    pub state: AlarmStateDetail,
    #[serde(default)]
    pub previous_state: Option<AlarmStateDetail>,
}

#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
pub struct AlarmStateDetail {
    pub value: String,
    #[serde(default)]
    pub reason: Option<String>,
    pub timestamp: String,
}

/// The JSON an alarm action publishes to SNS. `AlarmDescription` is often null (which
/// aws_lambda_events' own type rejects), so only what the agent reads is typed.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct SnsAlarmMessage {
    pub alarm_name: String,
    pub new_state_value: String,
    #[serde(default)]
    pub old_state_value: Option<String>,
    #[serde(default)]
    pub new_state_reason: Option<String>,
    pub state_change_time: String,
    #[serde(default)]
    pub alarm_arn: Option<String>,
}

impl Event {
    pub fn parse(value: &Value) -> Result<Event, EventError> {
        let obj = value.as_object().ok_or(EventError::NotAnObject)?;
        if obj.contains_key("lifecycleStage") || obj.contains_key("executionId") {
            return Event::parse_hook(value);
        }
        if obj.contains_key("Records") {
            return Event::parse_sns_alarms(value);
        }
        let get = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (source, detail_type) = (get("source"), get("detail-type"));
        let id = get("id");
        let id_note = if id.is_empty() {
            String::new()
        } else {
            format!(" {id}")
        };
        match (source.as_str(), detail_type.as_str()) {
            ("aws.ecr", "ECR Image Action") => {
                let malformed = |field: &str, problem: String| EventError::Malformed {
                    event: "ECR Image Action",
                    id: id_note.clone(),
                    field: field.to_owned(),
                    problem,
                };
                let ev: EventBridgeEvent<EcrImageActionDetail> =
                    serde_json::from_value(value.clone()).map_err(|e| {
                        let msg = e.to_string();
                        let field = msg
                            .split('`')
                            .nth(1)
                            .map(|f| format!("detail.{f}"))
                            .unwrap_or_else(|| "detail".into());
                        malformed(&field, format!("is missing or invalid: {msg}"))
                    })?;
                if id.is_empty() {
                    return Err(malformed(
                        "id",
                        "is required to recognise redeliveries".into(),
                    ));
                }
                let d = ev.detail;
                let action = if d.action_type != "PUSH" {
                    EcrAction::NothingToDeploy(format!(
                        "{} action: nothing to deploy",
                        d.action_type
                    ))
                } else if d.result != "SUCCESS" {
                    EcrAction::NothingToDeploy(format!(
                        "push result {}: nothing to deploy",
                        d.result
                    ))
                } else {
                    let raw = d.image_digest.ok_or_else(|| {
                        malformed(
                            "detail.image-digest",
                            "is required for a successful push".into(),
                        )
                    })?;
                    let digest = Digest::parse(&raw)
                        .map_err(|e| malformed("detail.image-digest", e.to_string()))?;
                    let time = ev
                        .time
                        .ok_or_else(|| malformed("time", "is required to order pushes".into()))?;
                    if d.repository_name.is_empty() {
                        return Err(malformed(
                            "detail.repository-name",
                            "must not be empty".into(),
                        ));
                    }
                    match d.image_tag.filter(|t| !t.is_empty()) {
                        None => EcrAction::NothingToDeploy(
                            "untagged push: environments follow tags, nothing to deploy".into(),
                        ),
                        Some(tag) => EcrAction::Pushed(Image {
                            repository: d.repository_name,
                            digest,
                            tag: Some(tag),
                            pushed_at: time,
                        }),
                    }
                };
                Ok(Event::EcrImageAction {
                    id,
                    account: ev.account,
                    region: ev.region,
                    action,
                })
            }
            ("aws.events", "Scheduled Event") => {
                let ev: EventBridgeEvent =
                    serde_json::from_value(value.clone()).map_err(|e| EventError::Malformed {
                        event: "Scheduled Event",
                        id: id_note.clone(),
                        field: "time".into(),
                        problem: e.to_string(),
                    })?;
                Ok(Event::Scheduled { id, time: ev.time })
            }
            ("aws.ecs", "ECS Deployment State Change") => {
                let (service, detail) = ecs_event::<EcsDeploymentDetail>(
                    value,
                    "ECS Deployment State Change",
                    &id_note,
                )?;
                if id.is_empty() {
                    return Err(malformed(
                        "ECS Deployment State Change",
                        &id_note,
                        "id",
                        "is required to recognise redeliveries",
                    ));
                }
                Ok(Event::EcsDeployment {
                    id,
                    service,
                    detail,
                })
            }
            ("aws.ecs", "ECS Service Action") => {
                let (service, detail) =
                    ecs_event::<EcsServiceActionDetail>(value, "ECS Service Action", &id_note)?;
                Ok(Event::EcsServiceAction {
                    id,
                    service,
                    detail,
                })
            }
            ("aws.cloudwatch", ALARM_KIND) => {
                let ev: EventBridgeEvent<AlarmDetail> = serde_json::from_value(value.clone())
                    .map_err(|e| malformed_field(ALARM_KIND, &id_note, &e))?;
                if id.is_empty() {
                    return Err(malformed(
                        ALARM_KIND,
                        &id_note,
                        "id",
                        "is required to recognise redeliveries",
                    ));
                }
                let d = ev.detail;
                let state =
                    alarm_state(ALARM_KIND, &id_note, "detail.state.value", &d.state.value)?;
                let previous = match &d.previous_state {
                    Some(p) => Some(alarm_state(
                        ALARM_KIND,
                        &id_note,
                        "detail.previousState.value",
                        &p.value,
                    )?),
                    None => None,
                };
                let at = parse_time(&d.state.timestamp).ok_or_else(|| {
                    malformed(
                        ALARM_KIND,
                        &id_note,
                        "detail.state.timestamp",
                        "is not a time",
                    )
                })?;
                Ok(Event::Alarms(vec![AlarmChange {
                    id,
                    alarm: d.alarm_name,
                    arn: ev.resources.unwrap_or_default().into_iter().next(),
                    state,
                    previous,
                    at,
                    reason: d.state.reason.unwrap_or_default(),
                }]))
            }
            _ => Err(EventError::Unknown {
                source_name: source,
                detail_type,
            }),
        }
    }

    fn parse_sns_alarms(value: &Value) -> Result<Event, EventError> {
        let records = value["Records"].as_array().ok_or_else(|| {
            malformed(
                ALARM_SNS_KIND,
                "",
                "Records",
                "must be a list of SNS records",
            )
        })?;
        let mut changes = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let field = |f: &str| format!("Records[{i}].Sns.{f}");
            let sns = &r["Sns"];
            let id = sns["MessageId"].as_str().unwrap_or_default().to_owned();
            if id.is_empty() {
                return Err(malformed(
                    ALARM_SNS_KIND,
                    "",
                    &field("MessageId"),
                    "is required to recognise redeliveries",
                ));
            }
            let note = format!(" {id}");
            let text = sns["Message"].as_str().ok_or_else(|| {
                malformed(
                    ALARM_SNS_KIND,
                    &note,
                    &field("Message"),
                    "must be the alarm's JSON, as a string",
                )
            })?;
            let m: SnsAlarmMessage = serde_json::from_str(text).map_err(|e| {
                malformed(
                    ALARM_SNS_KIND,
                    &note,
                    &field("Message"),
                    &format!("is not a CloudWatch alarm notification: {e}"),
                )
            })?;
            let state = alarm_state(
                ALARM_SNS_KIND,
                &note,
                &field("Message.NewStateValue"),
                &m.new_state_value,
            )?;
            let previous = match &m.old_state_value {
                Some(v) => Some(alarm_state(
                    ALARM_SNS_KIND,
                    &note,
                    &field("Message.OldStateValue"),
                    v,
                )?),
                None => None,
            };
            let at = parse_time(&m.state_change_time).ok_or_else(|| {
                malformed(
                    ALARM_SNS_KIND,
                    &note,
                    &field("Message.StateChangeTime"),
                    "is not a time",
                )
            })?;
            changes.push(AlarmChange {
                id,
                alarm: m.alarm_name,
                arn: m.alarm_arn,
                state,
                previous,
                at,
                reason: m.new_state_reason.unwrap_or_default(),
            });
        }
        Ok(Event::Alarms(changes))
    }

    fn parse_hook(value: &Value) -> Result<Event, EventError> {
        let id = value
            .get("executionId")
            .and_then(Value::as_str)
            .map(|i| format!(" {i}"))
            .unwrap_or_default();
        let payload: HookPayload = serde_json::from_value(value.clone()).map_err(|e| {
            let msg = e.to_string();
            let field = msg.split('`').nth(1).unwrap_or("payload").to_owned();
            malformed(
                HOOK_KIND,
                &id,
                &field,
                &format!("is missing or invalid: {msg}"),
            )
        })?;
        let stage = Stage::parse(&payload.lifecycle_stage).ok_or_else(|| {
            malformed(
                HOOK_KIND,
                &id,
                "lifecycleStage",
                &format!(
                    "`{}` is not an ECS lifecycle stage",
                    payload.lifecycle_stage
                ),
            )
        })?;
        if service_of_arn(&payload.execution_details.service_arn).is_none() {
            return Err(malformed(
                HOOK_KIND,
                &id,
                "executionDetails.serviceArn",
                "is not a service ARN (arn:aws:ecs:…:service/<cluster>/<service>)",
            ));
        }
        Ok(Event::Hook { stage, payload })
    }

    /// The kind of event: its detail-type, or [`HOOK_KIND`] for a hook payload.
    pub fn kind_of(value: &Value) -> Option<&str> {
        let obj = value.as_object()?;
        if obj.contains_key("lifecycleStage") || obj.contains_key("executionId") {
            return Some(HOOK_KIND);
        }
        if obj.contains_key("Records") {
            return Some(ALARM_SNS_KIND);
        }
        if obj.contains_key("CodePipeline.job") {
            return Some(JOB_KIND);
        }
        obj.get("detail-type").and_then(Value::as_str)
    }

    pub fn describe(&self) -> String {
        match self {
            Event::EcrImageAction { id, action, .. } => match action {
                EcrAction::Pushed(img) => format!("ECR push {} (event {id})", img.label()),
                EcrAction::NothingToDeploy(why) => format!("ECR Image Action (event {id}): {why}"),
            },
            Event::Scheduled { id, .. } => format!("scheduled tick (event {id})"),
            Event::Hook { stage, payload } => format!(
                "ECS lifecycle hook {stage} for {} (execution {})",
                payload.execution_details.service_arn, payload.execution_id
            ),
            Event::EcsDeployment {
                id,
                detail,
                service,
            } => format!(
                "{} of {}/{} deployment {} (event {id})",
                detail.event_name, service.0, service.1, detail.deployment_id
            ),
            Event::EcsServiceAction {
                id,
                detail,
                service,
            } => format!(
                "{} of {}/{} (event {id})",
                detail.event_name, service.0, service.1
            ),
            Event::Alarms(changes) => changes
                .iter()
                .map(|c| format!("alarm {} → {:?} (event {})", c.alarm, c.state, c.id))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

fn alarm_state(
    event: &'static str,
    id: &str,
    field: &str,
    v: &str,
) -> Result<AlarmState, EventError> {
    AlarmState::parse(v).ok_or_else(|| {
        malformed(
            event,
            id,
            field,
            &format!("`{v}` is not OK, ALARM or INSUFFICIENT_DATA"),
        )
    })
}

fn malformed(event: &'static str, id: &str, field: &str, problem: &str) -> EventError {
    EventError::Malformed {
        event,
        id: id.to_owned(),
        field: field.to_owned(),
        problem: problem.to_owned(),
    }
}

fn malformed_field(event: &'static str, id: &str, e: &serde_json::Error) -> EventError {
    let msg = e.to_string();
    let field = msg
        .split('`')
        .nth(1)
        .map(|f| format!("detail.{f}"))
        .unwrap_or_else(|| "detail".into());
    malformed(event, id, &field, &format!("is missing or invalid: {msg}"))
}

/// An aws.ecs event's (cluster, service), from `resources`, and its typed detail.
fn ecs_event<D: serde::de::DeserializeOwned + serde::Serialize>(
    value: &Value,
    event: &'static str,
    id: &str,
) -> Result<((String, String), D), EventError> {
    let ev: EventBridgeEvent<D> =
        serde_json::from_value(value.clone()).map_err(|e| malformed_field(event, id, &e))?;
    let service = ev
        .resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|r| service_of_arn(r))
        .ok_or_else(|| {
            malformed(
                event,
                id,
                "resources",
                "must hold the service's ARN (arn:aws:ecs:…:service/<cluster>/<service>)",
            )
        })?;
    Ok((service, ev.detail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push() -> Value {
        json!({
            "version": "0", "id": "13cde686-328b-6117-af20-0e5566167482",
            "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2019-11-16T01:54:34Z", "region": "us-west-2",
            "resources": [],
            "detail": {"result": "SUCCESS", "repository-name": "my-repository-name",
              "image-digest": "sha256:7f5b2640fe6fb4f46592dfd3410c4a79dac4f89e4782432e0378abcd12345678",
              "action-type": "PUSH", "image-tag": "latest"}
        })
    }

    #[test]
    fn a_successful_push_becomes_an_image() {
        let Event::EcrImageAction {
            action: EcrAction::Pushed(img),
            id,
            ..
        } = Event::parse(&push()).unwrap()
        else {
            panic!("expected a push")
        };
        assert_eq!(id, "13cde686-328b-6117-af20-0e5566167482");
        assert_eq!(img.repository, "my-repository-name");
        assert_eq!(img.tag.as_deref(), Some("latest"));
        assert_eq!(img.pushed_at.to_rfc3339(), "2019-11-16T01:54:34+00:00");
    }

    #[test]
    fn delete_failed_and_untagged_pushes_deploy_nothing() {
        for (path, v) in [
            ("action-type", json!("DELETE")),
            ("result", json!("FAILURE")),
            ("image-tag", Value::Null),
        ] {
            let mut e = push();
            e["detail"][path] = v;
            let parsed = Event::parse(&e).unwrap();
            assert!(
                matches!(
                    parsed,
                    Event::EcrImageAction {
                        action: EcrAction::NothingToDeploy(_),
                        ..
                    }
                ),
                "{path}: {parsed:?}"
            );
        }
    }

    #[test]
    fn malformed_pushes_name_the_field() {
        let mut e = push();
        e["detail"]["image-digest"] = json!("sha256:short");
        let err = Event::parse(&e).unwrap_err().to_string();
        assert!(
            err.contains("`detail.image-digest`") && err.contains("13cde686"),
            "{err}"
        );

        let mut e = push();
        e["detail"]
            .as_object_mut()
            .unwrap()
            .remove("repository-name");
        let err = Event::parse(&e).unwrap_err().to_string();
        assert!(err.contains("repository-name"), "{err}");

        let mut e = push();
        e.as_object_mut().unwrap().remove("time");
        let err = Event::parse(&e).unwrap_err().to_string();
        assert!(err.contains("`time`"), "{err}");
    }

    #[test]
    fn unknown_events_say_what_is_handled() {
        let err = Event::parse(&json!({"source": "aws.s3", "detail-type": "Object Created"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("aws.s3") && err.contains("ECR Image Action"),
            "{err}"
        );
        assert_eq!(
            Event::parse(&json!([1])).unwrap_err(),
            EventError::NotAnObject
        );
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/../../tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    #[test]
    fn ecs_fixtures_parse_and_round_trip() {
        let hook = fixture("ecs-hook-post-test-traffic-shift.json");
        let Event::Hook { stage, payload } = Event::parse(&hook).unwrap() else {
            panic!("a hook")
        };
        assert_eq!(stage, Stage::PostTestTrafficShift);
        assert_eq!(serde_json::to_value(&payload).unwrap(), hook);
        assert_eq!(Event::kind_of(&hook), Some(HOOK_KIND));

        for (name, event_name) in [
            (
                "ecs-deployment-in-progress.json",
                "SERVICE_DEPLOYMENT_IN_PROGRESS",
            ),
            (
                "ecs-deployment-completed.json",
                "SERVICE_DEPLOYMENT_COMPLETED",
            ),
            ("ecs-deployment-failed.json", "SERVICE_DEPLOYMENT_FAILED"),
        ] {
            let v = fixture(name);
            let Event::EcsDeployment {
                service, detail, ..
            } = Event::parse(&v).unwrap()
            else {
                panic!("{name}: a deployment event")
            };
            assert_eq!(service, ("booking-dev".into(), "web".into()));
            assert_eq!(detail.event_name, event_name);
            let typed: EventBridgeEvent<EcsDeploymentDetail> =
                serde_json::from_value(v.clone()).unwrap();
            let mut back = serde_json::to_value(&typed).unwrap();
            // The detail round-trips exactly; timestamps re-serialise in RFC 3339.
            assert_eq!(back["detail"]["deploymentId"], v["detail"]["deploymentId"]);
            back["detail"]["updatedAt"] = v["detail"]["updatedAt"].clone();
            back["time"] = v["time"].clone();
            assert_eq!(back["detail"], v["detail"], "{name}");
        }
        let v = fixture("ecs-service-action-steady-state.json");
        assert!(matches!(
            Event::parse(&v).unwrap(),
            Event::EcsServiceAction { detail, .. } if detail.event_name == "SERVICE_STEADY_STATE"
        ));
    }

    #[test]
    fn malformed_hook_payloads_name_the_field() {
        let mut hook = fixture("ecs-hook-post-test-traffic-shift.json");
        hook["lifecycleStage"] = json!("LUNCH_BREAK");
        let err = Event::parse(&hook).unwrap_err().to_string();
        assert!(
            err.contains("`lifecycleStage`") && err.contains("e8d5a28f"),
            "{err}"
        );
        let mut hook = fixture("ecs-hook-post-test-traffic-shift.json");
        hook["executionDetails"]
            .as_object_mut()
            .unwrap()
            .remove("serviceArn");
        let err = Event::parse(&hook).unwrap_err().to_string();
        assert!(err.contains("serviceArn"), "{err}");
        let mut e = fixture("ecs-deployment-failed.json");
        e["resources"] = json!([]);
        let err = Event::parse(&e).unwrap_err().to_string();
        assert!(err.contains("`resources`"), "{err}");
    }

    #[test]
    fn alarm_fixtures_parse_from_eventbridge_and_from_sns() {
        let eb = fixture("cloudwatch-alarm-state-change.json");
        let Event::Alarms(changes) = Event::parse(&eb).unwrap() else {
            panic!("an alarm")
        };
        let c = &changes[0];
        assert_eq!(c.alarm, "booking-dev-web-5xx");
        assert_eq!(
            (c.state, c.previous),
            (AlarmState::Alarm, Some(AlarmState::Ok))
        );
        assert_eq!(c.at.to_rfc3339(), "2026-11-23T12:15:00.235+00:00");
        assert!(c
            .arn
            .as_deref()
            .unwrap()
            .ends_with(":alarm:booking-dev-web-5xx"));
        let typed: EventBridgeEvent<AlarmDetail> = serde_json::from_value(eb.clone()).unwrap();
        let back = serde_json::to_value(&typed.detail).unwrap();
        assert_eq!(
            back["state"]["timestamp"],
            eb["detail"]["state"]["timestamp"]
        );
        assert_eq!(back["alarmName"], eb["detail"]["alarmName"]);

        let sns = fixture("sns-alarm.json");
        assert_eq!(Event::kind_of(&sns), Some(ALARM_SNS_KIND));
        let Event::Alarms(from_sns) = Event::parse(&sns).unwrap() else {
            panic!("an alarm")
        };
        assert_eq!(from_sns[0].alarm, c.alarm);
        assert_eq!(from_sns[0].at, c.at);
        assert_eq!(from_sns[0].id, "95df01b4-ee98-5cb9-9903-4c221d41eb5e");
        let text = sns["Records"][0]["Sns"]["Message"].as_str().unwrap();
        let m: SnsAlarmMessage = serde_json::from_str(text).unwrap();
        let round: SnsAlarmMessage =
            serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(round, m);

        let mut bad = sns.clone();
        bad["Records"][0]["Sns"]["Message"] = json!("{\"AlarmName\": \"x\"}");
        let err = Event::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("Records[0].Sns.Message"), "{err}");
        let mut bad = eb;
        bad["detail"]["state"]["value"] = json!("ON_FIRE");
        let err = Event::parse(&bad).unwrap_err().to_string();
        assert!(
            err.contains("detail.state.value") && err.contains("ON_FIRE"),
            "{err}"
        );
    }
}
