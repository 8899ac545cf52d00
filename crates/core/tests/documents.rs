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
    assert_ne!(after["processed_events"], doc["processed_events"], "it was written");

    let mut newer = after.clone();
    newer["schema"] = json!(2);
    put_raw(&ports, &newer);
    let before = ports.with(|w| w.states[KEY].clone());
    let r = send(&ports, &b, &push_event("e3", "main-3", 'c', 120));
    let error = r.targets[0].error.clone().unwrap_or_default();
    assert!(error.contains("schema 2") && error.contains("newer agent"), "{r:?}");
    assert_eq!(ports.with(|w| w.states[KEY].clone()), before, "nothing written");
}
