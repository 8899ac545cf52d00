//! Incoming events: recognised, checked, and turned into domain values before anything acts.
//! A malformed event is an error naming the event and the field; it never starts anything.
//! One file per source: `ecr.rs`, `ecs.rs` (deployment events and lifecycle hooks), `alarm.rs`.

mod alarm;
mod ecr;
mod ecs;

use std::fmt;

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde_json::Value;

pub use alarm::{AlarmDetail, AlarmStateDetail, SnsAlarmMessage};
pub use ecr::{EcrAction, EcrImageActionDetail};
pub use ecs::{EcsDeploymentDetail, EcsServiceActionDetail, ExecutionDetails, HookPayload};

use crate::alarm::AlarmChange;
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

/// The most of an event's id an error shows.
const SHOWN_ID: usize = 80;
/// The most of a problem an error shows (one that quotes a value included).
const SHOWN_PROBLEM: usize = 300;

/// Where an event's errors point: its kind and, when it has one, its id.
#[derive(Clone, Copy)]
struct Source<'a> {
    event: &'static str,
    /// ` <id>`, or empty.
    id: &'a str,
}

impl Source<'_> {
    fn malformed(self, field: &str, problem: &str) -> EventError {
        EventError::Malformed {
            event: self.event,
            // An id is the event's value: shown escaped and clipped (a forged one may be a
            // megabyte of control characters).
            id: crate::text::clipped(&crate::text::shown(self.id), SHOWN_ID),
            field: field.to_owned(),
            // A problem may quote the value (a digest that is not one): clipped and escaped.
            problem: crate::text::clipped(&crate::text::shown(problem), SHOWN_PROBLEM),
        }
    }

    /// The bad field by its JSON path, and what was expected: never the value.
    fn malformed_field(self, e: &crate::json::JsonError) -> EventError {
        let field = if e.path.is_empty() { "event" } else { &e.path };
        self.malformed(field, &e.problem)
    }

    fn require_id(self, id: &str) -> Result<(), EventError> {
        if id.is_empty() {
            return Err(self.malformed("id", "is required to recognise redeliveries"));
        }
        self.short("id", id)
    }

    /// An identifier kept in the state document is at most [`crate::text::MAX_ID`] long: an
    /// event with a longer one was not written by AWS.
    fn short(self, field: &str, value: &str) -> Result<(), EventError> {
        if value.len() > crate::text::MAX_ID {
            let why = format!("is longer than {} characters", crate::text::MAX_ID);
            return Err(self.malformed(field, &why));
        }
        Ok(())
    }
}

/// An ECS service as its ARN names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceArn {
    /// `None` for the legacy format, which names no cluster.
    pub cluster: Option<String>,
    pub service: String,
}

impl fmt::Display for ServiceArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.cluster {
            Some(c) => write!(f, "{c}/{}", self.service),
            None => f.write_str(&self.service),
        }
    }
}

/// Both formats ECS uses ("Amazon Resource Names (ARNs) and IDs", ECS developer guide):
/// `…:service/<cluster>/<service>`, and the legacy `…:service/<service>` of services created
/// before the long ARN format, which they keep.
pub fn service_of_arn(arn: &str) -> Option<ServiceArn> {
    let rest = arn.split(":service/").nth(1)?;
    let (cluster, service) = match rest.split_once('/') {
        Some((c, s)) => (Some(c), s),
        None => (None, rest),
    };
    let ok = |s: &str| !s.is_empty() && !s.contains('/');
    (ok(service) && cluster.is_none_or(ok)).then(|| ServiceArn {
        cluster: cluster.map(str::to_owned),
        service: service.to_owned(),
    })
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
        /// From `resources`.
        service: ServiceArn,
        detail: EcsDeploymentDetail,
    },
    EcsServiceAction {
        id: String,
        service: ServiceArn,
        detail: EcsServiceActionDetail,
    },
    /// Alarm state changes: one from EventBridge, one per record from SNS.
    Alarms(Vec<AlarmChange>),
}

impl Event {
    pub fn parse(value: &Value) -> Result<Event, EventError> {
        let obj = value.as_object().ok_or(EventError::NotAnObject)?;
        if obj.contains_key("lifecycleStage") || obj.contains_key("executionId") {
            return ecs::parse_hook(value);
        }
        if obj.contains_key("Records") {
            return alarm::parse_sns(value);
        }
        let get = |k: &str| obj.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let (source, detail_type) = (get("source"), get("detail-type"));
        let id = get("id");
        let id_note = if id.is_empty() {
            String::new()
        } else {
            format!(" {id}")
        };
        let at = |event: &'static str| Source {
            event,
            id: &id_note,
        };
        match (source.as_str(), detail_type.as_str()) {
            ("aws.ecr", "ECR Image Action") => {
                ecr::parse(value, id.clone(), at("ECR Image Action"))
            }
            ("aws.events", "Scheduled Event") => {
                let ev: EventBridgeEvent = crate::json::typed(value)
                    .map_err(|e| at("Scheduled Event").malformed_field(&e))?;
                Ok(Event::Scheduled { id, time: ev.time })
            }
            ("aws.ecs", "ECS Deployment State Change") => {
                ecs::parse_deployment(value, id.clone(), at("ECS Deployment State Change"))
            }
            ("aws.ecs", "ECS Service Action") => {
                ecs::parse_service_action(value, id.clone(), at("ECS Service Action"))
            }
            ("aws.cloudwatch", ALARM_KIND) => alarm::parse(value, id.clone(), at(ALARM_KIND)),
            _ => Err(EventError::Unknown {
                source_name: source,
                detail_type,
            }),
        }
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
                "{} of {service} deployment {} (event {id})",
                detail.event_name, detail.deployment_id
            ),
            Event::EcsServiceAction {
                id,
                detail,
                service,
            } => format!("{} of {service} (event {id})", detail.event_name),
            Event::Alarms(changes) => changes
                .iter()
                .map(|c| format!("alarm {} → {:?} (event {})", c.alarm, c.state, c.id))
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// An aws.ecs event's (cluster, service), from `resources`, and its typed detail.
fn ecs_event<D: serde::de::DeserializeOwned + serde::Serialize>(
    value: &Value,
    at: Source<'_>,
) -> Result<(ServiceArn, D), EventError> {
    let ev: EventBridgeEvent<D> = crate::json::typed(value).map_err(|e| at.malformed_field(&e))?;
    let service = ev
        .resources
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find_map(|r| service_of_arn(r))
        .ok_or_else(|| {
            at.malformed(
                "resources",
                "must hold the service's ARN (arn:aws:ecs:…:service/[<cluster>/]<service>)",
            )
        })?;
    Ok((service, ev.detail))
}

#[cfg(test)]
mod tests;
