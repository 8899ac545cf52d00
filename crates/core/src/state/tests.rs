//! The state document's shape across schemas, and its bounds.
use super::*;

/// History written before `rollback` existed reads as no rollback, and an entry that is not
/// one writes no `rollback` key (documents stay as small as they were).
#[test]
fn a_history_entry_without_the_rollback_flag_is_not_a_rollback() {
    let entry = r#"{"deployment_id": "d-1", "verdict": "succeeded", "at": "2026-11-23T12:00:00Z",
        "image": {"repository": "booking/web", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "pushed_at": "2026-11-23T11:00:00Z"}}"#;
    let mut h: HistoryEntry = serde_json::from_str(entry).unwrap();
    assert!(!h.rollback);
    assert!(serde_json::to_value(&h).unwrap().get("rollback").is_none());
    h.rollback = true;
    assert_eq!(serde_json::to_value(&h).unwrap()["rollback"], true);
}

/// A document as the agent before typed phases wrote it (schema 1): the phase, its ARN and
/// ECS's deployment id side by side.
const WRITTEN_BEFORE: &str = r#"{
  "schema": 1, "environment": "dev", "service": "web",
  "in_flight": {
    "id": "20261123T120000000Z-aaaaaaaa-1",
    "release": {"image": {"repository": "booking/web", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "tag": "main-1", "pushed_at": "2026-11-23T11:00:00Z"},
                "trigger": {"kind": "push", "event_id": "e1"}, "requested_at": "2026-11-23T12:00:00Z"},
    "phase": "stabilizing", "started_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:01Z",
    "attempts": 0, "task_definition_arn": "arn:td/web:1", "ecs_deployment_id": "ecs-svc/1"
  },
  "history": [], "processed_events": ["e1"], "deployments_started": 1
}"#;

#[test]
fn a_document_written_before_typed_phases_reads_and_writes_back_the_same() {
    let s: ServiceState = serde_json::from_str(WRITTEN_BEFORE).unwrap();
    let d = s.in_flight.as_ref().unwrap();
    assert_eq!(
        d.phase,
        Phase::Stabilizing {
            task_definition_arn: "arn:td/web:1".into(),
            ecs_deployment_id: Some("ecs-svc/1".into()),
        }
    );
    let before: serde_json::Value = serde_json::from_str(WRITTEN_BEFORE).unwrap();
    assert_eq!(serde_json::to_value(&s).unwrap(), before);
}

#[test]
fn a_phase_that_needs_an_arn_without_one_is_refused_naming_it() {
    let broken = WRITTEN_BEFORE
        .replace(r#""phase": "stabilizing""#, r#""phase": "updating""#)
        .replace(r#""task_definition_arn": "arn:td/web:1", "#, "");
    let e = serde_json::from_str::<ServiceState>(&broken).unwrap_err();
    assert!(e.to_string().contains("task_definition_arn"), "{e}");
}

/// Finding 2: failed deployments evicted every success, so after 25 failures `rollback` was
/// refused. Successes are kept apart: a rollback target exists once one succeeded.
#[test]
fn finding_2_failed_deployments_never_evict_the_successes() {
    let at: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let image: Image = serde_json::from_value(serde_json::json!({"repository": "booking/web",
        "digest": format!("sha256:{}", "a".repeat(64)), "pushed_at": "2026-11-23T11:00:00Z"}))
    .unwrap();
    let entry = |n: usize, verdict: Verdict| HistoryEntry {
        deployment_id: Some(DeploymentId(format!("d-{n}"))),
        image: image.clone(),
        verdict,
        task_definition_arn: Some(format!("arn:td/web:{n}")),
        reason: None,
        at,
        gates: Vec::new(),
        config: None,
        bundle: None,
        rollback: false,
    };
    let mut s = ServiceState::new("dev", "web");
    s.record(entry(0, Verdict::Succeeded), 25);
    s.record(entry(1, Verdict::Succeeded), 25);
    for n in 2..40 {
        s.record(entry(n, Verdict::Failed), 25);
    }
    let successes = s.history.iter().filter(|h| h.verdict == Verdict::Succeeded);
    assert_eq!(successes.count(), 2);
    let failures = s.history.iter().filter(|h| h.verdict == Verdict::Failed);
    assert_eq!(failures.count(), 25, "failures are bounded too");
}
