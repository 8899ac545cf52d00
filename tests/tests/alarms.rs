//! Alarm-driven rollback end to end against the emulator: standard alarms created by the CLI
//! (tagged), two releases deployed, an alarm driven to ALARM in the emulator's CloudWatch, and
//! the event EventBridge (or the alarm action's SNS message) would deliver run through the
//! `alarm` dispatch.

use harbormaster_aws::handler;
use harbormaster_core::RunOptions;
use harbormaster_e2e::{TempDir, World, ACCOUNT, REGION};
use serde_json::{json, Value};

/// Puts the alarm in ALARM and writes the event EventBridge would send for it to a file.
async fn fire(w: &World, tmp: &TempDir, name: &str) -> String {
    let e = w
        .fire_alarm(
            name,
            "Threshold Crossed: 3 datapoints were greater than the threshold (80.0).",
        )
        .await
        .unwrap();
    let path = tmp.0.join(format!("{name}.json"));
    std::fs::write(&path, e.to_string()).unwrap();
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_after_the_second_release_puts_the_first_back_once_and_the_bad_digest_stays_out() {
    let w = World::start().await.unwrap();
    // The standard alarms, tagged for web in dev: the config does not name them.
    let listed = w.cli_ok(&["alarms", "--env", "dev", "--service", "web"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("would put booking-dev-web-cpu"));
    w.cli_ok(&["alarms", "--env", "dev", "--service", "web", "--apply"]);
    let (_, v1) = w.ship("web", "main-aaaa111").await;
    let (bad_digest, v2) = w.ship("web", "main-bbbb222").await;
    assert_ne!(v1, v2);
    w.inbox().await.unwrap();

    let tmp = TempDir::new("alarms").unwrap();
    let file = fire(&w, &tmp, "booking-dev-web-cpu").await;
    let (code, r) = w.invoke(&file);
    assert_eq!(
        (code, &r["targets"][0]["outcome"]),
        (0, &json!("started")),
        "{r}"
    );
    expect_the_rollback_in_flight(&w, &v1, &bad_digest).await;

    // The same event delivered again changes nothing.
    let before = w.state_document("dev", "web").await.unwrap();
    let (code, r) = w.invoke(&file);
    let outcome = r["targets"][0]["outcome"].as_str();
    assert_eq!((code, outcome), (0, Some("duplicate")), "{r}");
    let mut after = w.document("dev", "web").await;
    after["processed_events"] = before.as_ref().unwrap()["processed_events"].clone();
    assert_eq!(Some(after), before);
    assert!(w.inbox().await.unwrap().is_empty(), "nothing sent twice");

    w.tick().await;
    let state = w.document("dev", "web").await;
    assert_eq!(state["last_known_good"]["task_definition_arn"], v1.as_str());
    assert_eq!(state["last_known_good"]["restored"], true);
    expect_the_bad_digest_kept_out(&w, &v1, &bad_digest).await;
}

/// While the rollback is in flight: the service is back on `v1`, `status` does not call the
/// release it blames the last known good and shows ECS's own view (issue 21), the bad digest is
/// marked and the team hears why.
async fn expect_the_rollback_in_flight(w: &World, v1: &str, bad_digest: &str) {
    let text = w.status("web");
    assert!(
        text.contains("last known good: none now: booking/web:main-bbbb222")
            && text.contains(
                "is marked bad; the rollback in flight puts back booking/web:main-aaaa111"
            ),
        "{text}"
    );
    assert!(
        text.contains("  ECS:             1/1 running, 0 pending; primary rev booking-dev-web:"),
        "{text}"
    );
    w.expect_running("web", v1).await;
    let state = w.document("dev", "web").await;
    let why = state["in_flight"]["rollback"]["why"].as_str().unwrap();
    assert!(
        why.contains("booking-dev-web-cpu") && why.contains("ALARM"),
        "{state}"
    );
    assert_eq!(state["bad_releases"][0]["image"]["digest"], bad_digest);
    let told = w.told("rolled_back").await;
    assert!(
        told.subject.contains("ROLLED BACK") && told.subject.contains("main-bbbb222"),
        "{}",
        told.subject
    );
    let reason = told.message["reason"].as_str().unwrap();
    assert!(
        reason.contains("booking-dev-web-cpu") && reason.contains("main-aaaa111"),
        "{reason}"
    );
}

/// After the rollback: a push of the bad digest (another tag, a new event) is not deployed and
/// the team hears so; `status` shows it marked bad, the rollback as a rollback and the
/// revisions `rollback --to` takes; a CI step deploying it is refused (exit 1).
async fn expect_the_bad_digest_kept_out(w: &World, v1: &str, bad_digest: &str) {
    let again = w.push_event("push-bad-again", "main-bbbb223", bad_digest);
    let v = serde_json::to_value(w.push(&again).await).unwrap();
    assert_eq!(v["targets"][0]["outcome"], "ignored", "{v}");
    w.expect_running("web", v1).await;
    assert_eq!(w.told("ignored").await.message["service"], "web");
    let text = w.status("web");
    assert!(text.contains("marked bad:"), "{text}");
    let v1_revision = format!("rev {}", v1.rsplit('/').next().unwrap());
    assert!(
        text.contains("last known good: booking/web:main-aaaa111")
            && text.contains(&format!("{v1_revision} (put back by a rollback)")),
        "{text}"
    );
    let rolled =
        (text.lines().find(|l| l.contains(" rollback "))).unwrap_or_else(|| panic!("{text}"));
    assert!(
        rolled.contains("main-aaaa111") && rolled.contains(&v1_revision),
        "{text}"
    );
    let blamed = text
        .lines()
        .find(|l| l.contains("main-bbbb222") && l.contains(" rev "));
    assert!(blamed.unwrap().contains("[marked bad]"), "{text}");

    let out = w.deploy("web", &format!("booking/web@{bad_digest}"), &["--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["outcome"], "refused", "{report}");
    assert!(
        report["reason"].as_str().unwrap().contains("--force"),
        "{report}"
    );
    w.expect_running("web", v1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_action_delivered_through_sns_rolls_back_too() {
    let w = World::start().await.unwrap();
    // This time the config names the alarms (by pattern), and the alarm's action is SNS.
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[services.web.environments.dev]\n",
        "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let sqs = &w.clients.sqs;
    let sns = &w.clients.sns;
    let topic = sns
        .create_topic()
        .name("booking-alarms")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = sqs
        .create_queue()
        .queue_name("alarm-fn")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:alarm-fn");
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&w.sdk);
    cw.put_metric_alarm()
        .alarm_name("booking-dev-web-errors")
        .namespace("Booking/Web")
        .metric_name("Errors")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(&topic)
        .send()
        .await
        .unwrap();

    let (_, v1) = w.ship("web", "main-cccc333").await;
    let (_, _v2) = w.ship("web", "main-dddd444").await;
    cw.set_alarm_state()
        .alarm_name("booking-dev-web-errors")
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("Threshold Crossed")
        .send()
        .await
        .unwrap();
    // What SNS delivered, wrapped as Lambda hands SNS messages to a function.
    let mut envelope = None;
    for _ in 0..10 {
        let out = sqs
            .receive_message()
            .queue_url(&queue)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if let Some(m) = out.messages().first() {
            envelope = Some(serde_json::from_str::<Value>(m.body().unwrap()).unwrap());
            break;
        }
    }
    let envelope = envelope.expect("the alarm action reached SNS");
    let event = json!({"Records": [{
        "EventSource": "aws:sns", "EventVersion": "1.0",
        "EventSubscriptionArn": format!("{topic}:sub"),
        "Sns": envelope,
    }]});
    let r = handler::dispatch(&w.agent(), handler::ALARM, &event, RunOptions::default())
        .await
        .unwrap();
    let v = serde_json::to_value(&r).unwrap();
    assert_eq!(v["targets"][0]["outcome"], "started", "{v}");
    assert_eq!(w.service_task_definition("web").await.unwrap(), v1);
}
