//! Events as AWS sends them, and as they go wrong.

use super::*;
use crate::alarm::AlarmState;
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
        let cluster = Some("booking-dev".to_owned());
        assert_eq!(
            service,
            ServiceArn {
                cluster,
                service: "web".into()
            }
        );
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
    let round: SnsAlarmMessage = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
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

/// Services created before ECS's long ARN format keep `…:service/<service>`, without the
/// cluster ("Amazon Resource Names (ARNs) and IDs", ECS developer guide): their events are
/// read, not refused as malformed; a name with more parts is still no service ARN.
#[test]
fn a_legacy_service_arn_names_the_service_without_a_cluster() {
    let mut v = fixture("ecs-deployment-completed.json");
    v["resources"] = json!(["arn:aws:ecs:us-west-2:111122223333:service/web"]);
    let Event::EcsDeployment { service, .. } = Event::parse(&v).unwrap() else {
        panic!("a deployment event")
    };
    assert_eq!(
        service,
        ServiceArn {
            cluster: None,
            service: "web".into()
        }
    );
    for bad in [
        "arn:aws:ecs:us-west-2:1:service/",
        "arn:aws:ecs:us-west-2:1:service/a/b/c",
        "arn:aws:ecs:us-west-2:1:service//web",
    ] {
        assert_eq!(service_of_arn(bad), None, "{bad}");
    }
}

/// A legacy ARN is the target only when one environment deploys a service of that name; with
/// two, the event cannot say which and is not the agent's to act on.
#[test]
fn a_legacy_service_arn_maps_to_the_one_target_deploying_that_name() {
    use crate::dispatch::target_of;
    use crate::testing::{bundle, bundle_of, CONFIG};

    let legacy = ServiceArn {
        cluster: None,
        service: "web".into(),
    };
    let dev_only = CONFIG
        .split("\n[services.web.environments.prod]")
        .next()
        .unwrap();
    let one = bundle_of(dev_only);
    assert_eq!(
        target_of(&one, &legacy),
        Some(crate::Target::new("dev", "web"))
    );
    let long = ServiceArn {
        cluster: Some("booking-dev".into()),
        ..legacy.clone()
    };
    assert_eq!(target_of(&one, &long), target_of(&one, &legacy));
    let other = ServiceArn {
        cluster: Some("booking-prod".into()),
        ..legacy.clone()
    };
    assert_eq!(target_of(&one, &other), None);
    let two = bundle();
    assert_eq!(
        target_of(&two, &other),
        Some(crate::Target::new("prod", "web"))
    );
    assert_eq!(target_of(&two, &legacy), None);
}

/// A tag ECR would never accept (a bidi override that makes `main-1` read backwards, a
/// newline forging a notification line) is not a release; the reason shows it escaped
/// (issue 16, point 14).
#[test]
fn a_tag_ecr_would_refuse_deploys_nothing_and_is_shown_escaped() {
    for (tag, escaped) in [
        ("main-\u{202E}1a2b3c4", "main-\\u{202e}1a2b3c4"),
        (
            "main-1\n[prod] web: deployed",
            "main-1\\u{a}[prod] web: deployed",
        ),
    ] {
        let e = crate::testing::push_event("e1", tag, 'a', 0);
        let Event::EcrImageAction { action, .. } = Event::parse(&e).unwrap() else {
            panic!("a push")
        };
        let EcrAction::NothingToDeploy(why) = action else {
            panic!("{tag:?} deployed")
        };
        assert!(why.contains(escaped), "{why}");
        assert!(!why.contains('\u{202E}') && !why.contains('\n'), "{why:?}");
    }
}

/// A bad value is reported at its JSON path, without the value (issue 16, point 11): a numeric
/// `image-tag` used to read "`detail.12345` is missing or invalid", a bad `time` was blamed on
/// `detail`.
#[test]
fn a_bad_value_is_named_by_its_path_never_by_itself() {
    let mut e = crate::testing::push_event("e1", "main-1", 'a', 0);
    e["detail"]["image-tag"] = json!(12345);
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(err.contains("`detail.image-tag`"), "{err}");
    assert!(!err.contains("12345"), "{err}");

    let mut e = crate::testing::push_event("e1", "main-1", 'a', 0);
    e["time"] = json!("yesterday-ish");
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(err.contains("`time`"), "{err}");
    assert!(!err.contains("yesterday"), "{err}");
}

/// Issue 32, finding 1: the agent's PutImage of a protection tag is a push as EventBridge
/// delivers it (the documented "ECR Image Action" sample, `tests/fixtures/ecr-push.json`, with
/// that tag): it deploys nothing, whatever an environment follows.
#[test]
fn finding_1_a_push_of_a_protection_tag_deploys_nothing() {
    let mut e = fixture("ecr-push.json");
    e["detail"]["image-tag"] = json!("hm-keep-prod-web-0123456789ab");
    // The documented sample's digest is 60 hex digits long; ECR's are 64.
    e["detail"]["image-digest"] = json!(format!("sha256:{}", "7f".repeat(32)));
    let Event::EcrImageAction { action, .. } = Event::parse(&e).unwrap() else {
        panic!("a push")
    };
    let EcrAction::NothingToDeploy(why) = action else {
        panic!("a protection tag was taken for a release")
    };
    assert!(why.contains("protection tag"), "{why}");
}

/// Issue 33, item 13: an SNS-delivered alarm's `MessageId` has no documented length limit; a
/// 1 MiB one grew a state document from 1,390 bytes to 1 MB. An id over `text::MAX_ID` (256)
/// is refused naming its field; the error shows the id clipped and escaped, never whole.
#[test]
fn item_13_an_overlong_id_is_refused_by_its_field_and_shown_clipped() {
    let huge = format!("\u{202E}{}", "m".repeat(1 << 20));
    let message = json!({
        "AlarmName": "booking-dev-web-5xx", "NewStateValue": "ALARM", "OldStateValue": "OK",
        "NewStateReason": "x", "StateChangeTime": "2026-11-23T12:00:00.000+0000",
        "AlarmArn": "arn:aws:cloudwatch:us-east-1:123456789012:alarm:booking-dev-web-5xx"
    });
    let e = json!({"Records": [{"EventSource": "aws:sns", "Sns": {
        "Type": "Notification", "MessageId": huge,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:alarms",
        "Message": message.to_string(), "Timestamp": "2026-11-23T12:00:01.000Z"
    }}]});
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(
        err.contains("Records[0].Sns.MessageId"),
        "{}",
        &err[..err.len().min(300)]
    );
    assert!(err.len() < 400, "{} bytes", err.len());
    assert!(!err.contains('\u{202E}'), "shown escaped");
}

/// Issue 33, item 13: a value quoted in an error (a 100 KB "digest") is clipped and escaped.
#[test]
fn item_13_a_value_quoted_in_an_error_is_clipped_and_escaped() {
    let mut e = crate::testing::push_event("e1", "main-1", 'a', 0);
    e["detail"]["image-digest"] = json!(format!("sha256:\u{1b}[31m{}", "f".repeat(100_000)));
    let err = Event::parse(&e).unwrap_err().to_string();
    assert!(
        err.contains("detail.image-digest"),
        "{}",
        &err[..err.len().min(300)]
    );
    assert!(err.len() < 600, "{} bytes", err.len());
    assert!(!err.contains('\u{1b}'), "escape sequences shown escaped");
}
