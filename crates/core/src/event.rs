//! Incoming events: recognised, checked, and turned into domain values before anything acts.
//! A malformed event is an error naming the event and the field; it never starts anything.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::image::{Digest, Image};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the event is not a JSON object")]
    NotAnObject,
    #[error("unrecognised event (source `{source_name}`, detail-type `{detail_type}`): Harbormaster handles \"ECR Image Action\" from aws.ecr and \"Scheduled Event\" from aws.events")]
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

#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl Event {
    pub fn parse(value: &Value) -> Result<Event, EventError> {
        let obj = value.as_object().ok_or(EventError::NotAnObject)?;
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
            _ => Err(EventError::Unknown {
                source_name: source,
                detail_type,
            }),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Event::EcrImageAction { id, action, .. } => match action {
                EcrAction::Pushed(img) => format!("ECR push {} (event {id})", img.label()),
                EcrAction::NothingToDeploy(why) => format!("ECR Image Action (event {id}): {why}"),
            },
            Event::Scheduled { id, .. } => format!("scheduled tick (event {id})"),
        }
    }
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
}
