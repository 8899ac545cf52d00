//! One state document per service, against the emulator's S3: its conditional writes refuse
//! stale and duplicate saves, concurrent deliveries of one push register one revision and notify
//! each kind once, and a corrupt document hides no other service.

use std::process::Command;

use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::ports::{SaveError, StateStore};
use harbormaster_core::state::ServiceState;
use harbormaster_core::RunOptions;
use harbormaster_e2e::{cli_binary, fixture, World, FAMILY};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_invoke_twice_in_a_row_and_twice_at_once_registers_one_revision() {
    let w = World::start().await.unwrap();
    let bin = cli_binary().unwrap();
    let dir = harbormaster_e2e::TempDir::new("events").unwrap();
    let before = w.revisions(FAMILY).await.unwrap().len();
    let invoke = |file: std::path::PathBuf| {
        let mut c = Command::new(&bin);
        c.args(["--json", "invoke", "--event"])
            .arg(file)
            .envs(w.cli_env());
        c
    };

    // In a row.
    let file = w
        .push_event_file(&dir.0, "e-seq", "main-1111111")
        .await
        .unwrap();
    for round in 0..2 {
        let out = invoke(file.clone()).output().unwrap();
        assert!(
            out.status.success(),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let expected = if round == 0 { "started" } else { "duplicate" };
        assert_eq!(report["targets"][0]["outcome"], expected, "{report}");
    }
    assert_eq!(w.revisions(FAMILY).await.unwrap().len(), before + 1);
    w.cli_ok(&["tick"]);

    // At the same time: two processes racing on the same state document.
    let digest = w.push_image("main-2222222").await.unwrap();
    let file = dir.0.join("push-2.json");
    std::fs::write(
        &file,
        w.push_event("e-par", "main-2222222", &digest).to_string(),
    )
    .unwrap();
    let children: Vec<_> = (0..2)
        .map(|_| {
            invoke(file.clone())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outcomes: Vec<String> = children
        .into_iter()
        .map(|c| {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success() || out.status.code() == Some(3),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            v["targets"][0]["outcome"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        outcomes.iter().filter(|o| *o == "started").count(),
        1,
        "{outcomes:?}"
    );
    let revisions = w.revisions(FAMILY).await.unwrap();
    assert_eq!(
        revisions.len(),
        before + 2,
        "exactly one more revision: {revisions:?}"
    );
    let td = w.task_definition(revisions.last().unwrap()).await.unwrap();
    assert!(td.container_definitions()[0]
        .image()
        .unwrap()
        .ends_with(&digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_state_store_refuses_stale_and_duplicate_writes() {
    let w = World::start().await.unwrap();
    let ports = harbormaster_aws::AwsPorts::new(&w.sdk, harbormaster_e2e::BUCKET);
    let key = ServiceState::key("dev", "web");
    let doc = ServiceState::new("dev", "web");
    let v1 = ports.save(&key, &doc, None).await.unwrap();
    assert_eq!(
        ports.save(&key, &doc, None).await,
        Err(SaveError::Conflict),
        "create only if absent"
    );
    let mut changed = doc.clone();
    changed.remember_event("x");
    let v2 = ports.save(&key, &changed, Some(&v1)).await.unwrap();
    assert_eq!(
        ports.save(&key, &doc, Some(&v1)).await,
        Err(SaveError::Conflict),
        "stale ETag"
    );
    let (loaded, v) = ports.load(&key).await.unwrap().unwrap();
    assert_eq!((loaded, v), (changed, v2));
    assert!(ports.load("state/none/none.json").await.unwrap().is_none());
}

/// Ten deliveries of one push at once against S3's conditional writes and SNS → SQS (issue 16):
/// one revision and one deployment per service, and exactly one notification of each kind per
/// service in the subscribed queue — the outbox is claimed in the document before publishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_deliveries_notify_each_kind_once_per_service() {
    let w = World::start().await.unwrap();
    let revisions_before = w.revisions(FAMILY).await.unwrap().len();
    let digest = w.push_image("main-c0ffee1").await.unwrap();
    let event = w.push_event("e-ten", "main-c0ffee1", &digest);
    let agent = std::sync::Arc::new(w.agent());
    let runs: Vec<_> = (0..10)
        .map(|_| {
            let (agent, event) = (agent.clone(), event.clone());
            tokio::spawn(async move {
                handler::dispatch(&agent, ECR_PUSH, &event, RunOptions::default()).await
            })
        })
        .collect();
    for r in runs {
        let report = r.await.unwrap().expect("dispatched");
        assert!(report.errors().is_empty(), "{report:?}");
    }
    assert_eq!(
        w.revisions(FAMILY).await.unwrap().len(),
        revisions_before + 1
    );
    let t = w.tick().await;
    assert!(t.errors().is_empty(), "{t:?}");

    let inbox = w.inbox().await.unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (_, m, _) in &inbox {
        let key = (
            m["service"].as_str().unwrap().to_owned(),
            m["kind"].as_str().unwrap().to_owned(),
        );
        *seen.entry(key).or_insert(0) += 1;
    }
    assert!(!seen.is_empty());
    assert!(seen.values().all(|n| *n == 1), "{seen:?}");
    assert_eq!(
        seen.get(&("web".into(), "started".into())),
        Some(&1),
        "{seen:?}"
    );
    assert_eq!(
        seen.get(&("web".into(), "succeeded".into())),
        Some(&1),
        "{seen:?}"
    );
}

/// One corrupt state document in S3 hides no other service (issue 16, point 7): `status` shows
/// the others and names the broken one (exit 2), and the tick function returns normally, so
/// Lambda does not retry it every minute into the dead-letter queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_document_hides_no_other_service_and_is_not_retried() {
    let w = World::start().await.unwrap();
    let digest = w.push_image("main-dead001").await.unwrap();
    w.push(&w.push_event("e-c", "main-dead001", &digest)).await;
    w.tick().await;
    w.clients
        .s3
        .put_object()
        .bucket(harbormaster_e2e::BUCKET)
        .key("state/dev/web.json")
        .body(b"{\"schema\": 1, \"history\": ".to_vec().into())
        .send()
        .await
        .unwrap();
    let out = w.cli(&["status"]);
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dev/web\n  STATE UNREADABLE: "), "{text}");
    assert!(
        text.contains("dev/worker\n"),
        "the others still show: {text}"
    );

    let handled = handler::handle(&w.agent(), handler::TICK, fixture("scheduled.json"), None).await;
    let report = handled.expect("the tick returns normally: no Lambda retry");
    assert!(
        report.to_string().contains("not a state document"),
        "{report}"
    );
}
