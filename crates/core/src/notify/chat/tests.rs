//! The chat form against the custom notification schema of Amazon Q Developer in chat
//! applications: <https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>
//! ("Event schema", "Parameter details"). `conforms` encodes that page: the keys it names and
//! no others, `version` "1.0", `source` "custom", `textType` "client-markdown", strings and
//! lists of strings where it says so, `additionalContext` a map of strings.

use chrono::TimeZone;
use serde_json::{json, Value};

use crate::image::{Digest, Image};
use crate::notify::{NoticeKind, Notification};
use crate::state::DeploymentId;

fn conforms(v: &Value) -> Result<(), String> {
    let top = v.as_object().ok_or("not an object")?;
    only(top, &["version", "source", "id", "content", "metadata"], "")?;
    if v["version"] != "1.0" {
        return Err("version must be \"1.0\"".into());
    }
    if v["source"] != "custom" {
        return Err("source must be \"custom\"".into());
    }
    string_if_present(v, "id")?;
    let content = v["content"]
        .as_object()
        .ok_or("content must be an object")?;
    only(
        content,
        &["textType", "title", "description", "nextSteps", "keywords"],
        "content.",
    )?;
    if let Some(t) = content.get("textType") {
        if t != "client-markdown" {
            return Err("content.textType: only client-markdown is supported".into());
        }
    }
    string_if_present(&v["content"], "title")?;
    string_if_present(&v["content"], "description")?;
    strings_if_present(&v["content"], "nextSteps")?;
    strings_if_present(&v["content"], "keywords")?;
    if let Some(m) = top.get("metadata") {
        let meta = m.as_object().ok_or("metadata must be an object")?;
        only(
            meta,
            &[
                "threadId",
                "summary",
                "eventType",
                "relatedResources",
                "additionalContext",
            ],
            "metadata.",
        )?;
        string_if_present(m, "threadId")?;
        string_if_present(m, "summary")?;
        string_if_present(m, "eventType")?;
        strings_if_present(m, "relatedResources")?;
        if let Some(c) = meta.get("additionalContext") {
            let c = c
                .as_object()
                .ok_or("metadata.additionalContext must be an object")?;
            if !c.values().all(Value::is_string) {
                return Err("metadata.additionalContext values must be strings".into());
            }
        }
    }
    Ok(())
}

fn only(o: &serde_json::Map<String, Value>, allowed: &[&str], at: &str) -> Result<(), String> {
    match o.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(format!("{at}{k} is not in the schema")),
        None => Ok(()),
    }
}

fn string_if_present(v: &Value, k: &str) -> Result<(), String> {
    match v.get(k) {
        None | Some(Value::String(_)) => Ok(()),
        Some(_) => Err(format!("{k} must be a string")),
    }
}

fn strings_if_present(v: &Value, k: &str) -> Result<(), String> {
    match v.get(k) {
        None => Ok(()),
        Some(Value::Array(a)) if a.iter().all(Value::is_string) => Ok(()),
        Some(_) => Err(format!("{k} must be a list of strings")),
    }
}

fn notice(kind: NoticeKind, reason: Option<&str>) -> Notification {
    let at = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 9, 30, 0).unwrap();
    Notification {
        id: format!("d-42/{}", kind.word()),
        kind,
        project: "booking".into(),
        environment: "prod".into(),
        service: "web".into(),
        subject: DeploymentId("d-42".into()).into(),
        image: Image {
            repository: "booking/web".into(),
            digest: Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap(),
            tag: Some("main-abc1234".into()),
            pushed_at: at,
        },
        task_definition_arn: Some(
            "arn:aws:ecs:eu-west-1:123456789012:task-definition/booking-prod-web:7".into(),
        ),
        previous: Some("booking/web:main-0ff1ce0".into()),
        reason: reason.map(str::to_owned),
        at,
        claimed_until: None,
        attempts: 0,
    }
}

#[test]
fn the_checker_takes_the_documented_samples_and_refuses_what_chat_drops() {
    // Shaped as the page's samples: the least it takes, and every field it documents.
    let least = json!({"version": "1.0", "source": "custom",
        "content": {"description": ":warning: Refresh failed for *OrderService*"}});
    assert_eq!(conforms(&least), Ok(()));
    let full = json!({"version": "1.0", "source": "custom", "id": "c-1",
        "content": {"textType": "client-markdown", "title": "t", "description": "d",
            "nextSteps": ["a"], "keywords": ["k"]},
        "metadata": {"threadId": "t-1", "summary": "s", "eventType": "e",
            "relatedResources": ["arn:aws:ecs:…"], "additionalContext": {"k": "v"}}});
    assert_eq!(conforms(&full), Ok(()));
    // Today's JSON form, which chat would not show.
    let ours = notice(NoticeKind::Failed, None).json();
    assert!(conforms(&ours).is_err());
    let mut wrong = full.clone();
    wrong["metadata"]["additionalContext"]["n"] = json!(1);
    assert!(conforms(&wrong).is_err());
}

#[test]
fn every_kind_of_notice_has_a_chat_form_in_the_documented_schema() {
    use NoticeKind::*;
    for kind in [
        Started,
        Succeeded,
        Failed,
        RolledBack,
        ApprovalNeeded,
        Ignored,
        Alarm,
    ]
    .into_iter()
    .chain([RollbackFailed, AtMax, Drift])
    {
        let chat = notice(kind, Some("alarm booking-prod-web-5xx")).chat();
        assert_eq!(conforms(&chat), Ok(()), "{kind:?}: {chat:#}");
    }
}

#[test]
fn a_failure_in_chat_says_its_severity_service_release_and_reason() {
    let chat = notice(
        NoticeKind::RolledBack,
        Some("alarm `booking-prod-web-5xx` is ALARM"),
    )
    .chat();
    let title = chat["content"]["title"].as_str().unwrap();
    let body = chat["content"]["description"].as_str().unwrap();
    assert!(
        title.contains("ROLLED BACK") && title.contains("web"),
        "{title}"
    );
    assert!(body.contains("critical"), "{body}");
    assert!(
        body.contains("`booking/web:main-abc1234 (abababababab)`"),
        "{body}"
    );
    // The reason is quoted, and its own backticks cannot end the code span.
    assert!(
        body.contains("`alarm 'booking-prod-web-5xx' is ALARM`"),
        "{body}"
    );
    assert_eq!(
        chat["metadata"]["threadId"], "d-42",
        "a deployment is one thread"
    );
    assert_eq!(
        chat["metadata"]["additionalContext"]["severity"],
        "critical"
    );
    assert_eq!(chat["metadata"]["additionalContext"]["environment"], "prod");
    let steps = chat["content"]["nextSteps"].to_string();
    assert!(
        steps.contains("harbormaster status --env prod --service web"),
        "{steps}"
    );
}

#[test]
fn an_approval_in_chat_says_how_to_approve_or_reject() {
    let chat = notice(NoticeKind::ApprovalNeeded, None).chat();
    let steps = chat["content"]["nextSteps"].to_string();
    assert!(
        steps.contains("harbormaster approve --env prod --service web"),
        "{steps}"
    );
    assert!(steps.contains("--reject"), "{steps}");
}

#[test]
fn a_long_reason_is_cut_in_chat() {
    let long = "x".repeat(20_000);
    let chat = notice(NoticeKind::Failed, Some(&long)).chat();
    let body = chat["content"]["description"].as_str().unwrap();
    assert!(body.chars().count() <= super::DESCRIPTION_MAX && body.ends_with('…'));
}
