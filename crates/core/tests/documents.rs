//! The state document under version skew, hostile sizes and corruption (issue 16): what an
//! agent reads it keeps, what it cannot read it does not overwrite, and nothing in it grows
//! without bound.

use serde_json::{json, Value};

use harbormaster_core::state::ServiceState;
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{send, tick_once, world};

const KEY: &str = "state/dev/web.json";

fn raw(ports: &harbormaster_core::memory::MemoryPorts) -> Value {
    ports.with(|w| serde_json::from_str(&w.states[KEY].0).unwrap())
}

fn put_raw(ports: &harbormaster_core::memory::MemoryPorts, doc: &Value) {
    ports.with(|w| {
        let v = w.states.get(KEY).map(|(_, v)| *v).unwrap_or(0) + 1000;
        w.states.insert(KEY.into(), (doc.to_string(), v));
    });
}

/// SAM updates the functions one by one: for a while a newer agent and an older one share the
/// documents. A field the older one does not know survives its read-modify-write; a document
/// of a newer schema is refused with an error naming it, and not written.
#[test]
fn an_older_agent_keeps_what_it_does_not_know_and_never_overwrites_a_newer_schema() {
    let (ports, b) = world();
    assert_eq!(ServiceState::key("dev", "web"), KEY);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);

    let mut doc = raw(&ports);
    doc["rollout_notes"] = json!({"written_by": "a newer agent", "keep": [1, 2, 3]});
    put_raw(&ports, &doc);
    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    let after = raw(&ports);
    assert_eq!(after["rollout_notes"], doc["rollout_notes"], "{after}");
    assert_ne!(
        after["processed_events"], doc["processed_events"],
        "it was written"
    );

    let mut newer = after.clone();
    let next = harbormaster_core::state::SCHEMA + 1;
    newer["schema"] = json!(next);
    put_raw(&ports, &newer);
    let before = ports.with(|w| w.states[KEY].clone());
    let r = send(&ports, &b, &push_event("e3", "main-3", 'c', 120));
    let error = r.targets[0].error.clone().unwrap_or_default();
    let named = format!("schema {next}");
    assert!(
        error.contains(&named) && error.contains("newer agent"),
        "{r:?}"
    );
    assert_eq!(
        ports.with(|w| w.states[KEY].clone()),
        before,
        "nothing written"
    );
}

/// Nothing an event carries grows the document without bound (issue 16, point 6). An id of
/// a megabyte is refused (it made a 2 MB document); under the worst inputs accepted — 300
/// pushes with 256-character ids and 128-character tags, ECS and alarm reasons of 100 KB —
/// the document stays under 256 KB, far below what S3 and Lambda handle comfortably (Lambda's
/// response limit is 6 MB; every invocation reads and writes the whole document).
#[test]
fn the_worst_inputs_leave_the_document_small() {
    let (ports, b) = world();
    let mut e = push_event("e1", "main-1", 'a', 0);
    e["id"] = json!("x".repeat(1 << 20));
    let err = futures::executor::block_on(harbormaster_core::dispatch::handle_event(
        &ports,
        &b,
        &e,
        harbormaster_core::RunOptions::default(),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("`id`") && err.contains("longer than 256"),
        "{}",
        &err[..200.min(err.len())]
    );
    assert!(ports.with(|w| w.states.is_empty()), "nothing written");

    for i in 0..300u32 {
        let tag = format!("main-{i:04}-{}", "t".repeat(118));
        let mut e = push_event(&format!("{i:0256}"), &tag, 'a', i64::from(i) * 60);
        let digest = format!("sha256:{:064x}", u64::from(i) + 1);
        e["detail"]["image-digest"] = json!(digest);
        send(&ports, &b, &e);
        if i % 25 == 0 {
            tick_once(&ports, &b);
        }
    }
    let mut failed = harbormaster_core::testing::native::ecs_event(
        &"f".repeat(256),
        "SERVICE_DEPLOYMENT_FAILED",
        "ecs-svc/1",
        chrono::Utc::now(),
        &"r".repeat(100_000),
    );
    failed["resources"] = json!(["arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web"]);
    send(&ports, &b, &failed);
    let mut alarm = harbormaster_core::testing::alarm_event(
        &"a".repeat(256),
        "booking-web-5xx",
        ("OK", "ALARM"),
        chrono::Utc::now(),
    );
    alarm["detail"]["state"]["reason"] = json!("r".repeat(100_000));
    send(&ports, &b, &alarm);
    tick_once(&ports, &b);

    let size = ports.with(|w| w.states[KEY].0.len());
    eprintln!("the state document after the worst inputs: {size} bytes");
    assert!(size < 256 * 1024, "{size} bytes");
    let doc = raw(&ports);
    assert!(
        !doc.to_string().contains(&"r".repeat(2000)),
        "reasons are clipped"
    );
}

/// One corrupt document blinds nothing else (issue 16, point 7): the tick runs every other
/// service, reports the corrupt one as an error that no retry can fix (so Lambda does not
/// retry the tick and fill the dead-letter queue), and leaves the document alone.
#[test]
fn a_corrupt_document_is_isolated_and_not_retried() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    ports.with(|w| {
        w.states
            .insert(KEY.into(), ("{\"schema\": 1, \"history\": 7".into(), 99))
    });
    let r = tick_once(&ports, &b);
    let dev = r.targets.iter().find(|t| t.environment == "dev").unwrap();
    let error = dev.error.clone().expect("the corrupt one is reported");
    assert!(
        error.contains(KEY) && error.contains("not a state document"),
        "{error}"
    );
    assert!(!dev.retry, "no retry can fix it");
    assert!(r.retryable_errors().is_empty(), "{r:?}");
    let other = r.targets.iter().find(|t| t.environment == "prod").unwrap();
    assert!(other.error.is_none(), "{other:?}");
    assert_eq!(ports.with(|w| w.states[KEY].1), 99, "left alone");
}
