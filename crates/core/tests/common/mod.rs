//! What the alarm and rollback scenarios share: dev's `web` watching its alarms, releases ECS
//! finishes, and the notices sent. Each test file uses part of it.
#![allow(dead_code)]

use chrono::{DateTime, Utc};
use serde_json::Value;

use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::scenario::{self, send, tick_once, CLUSTER};
use harbormaster_core::testing::{alarm_event, bundle_of, push_event, CONFIG};
use harbormaster_core::Bundle;

pub const ALARM: &str = "booking-dev-web-5xx";

pub fn world_with(extra: &str) -> (MemoryPorts, Bundle) {
    let ports = scenario::ports();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    let config = CONFIG.replace(
        "[services.web.environments.dev]\n",
        &format!("[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n{extra}"),
    );
    (ports, bundle_of(&config))
}

pub fn world() -> (MemoryPorts, Bundle) {
    world_with("")
}

pub fn alarm(id: &str, name: &str, from: &str, to: &str, at: DateTime<Utc>) -> Value {
    alarm_event(id, name, (from, to), at)
}

/// Deploys a release and lets ECS finish it: returns its task definition.
pub fn release(ports: &MemoryPorts, b: &Bundle, n: i64, fill: char) -> String {
    send(
        ports,
        b,
        &push_event(&format!("p{n}"), &format!("main-{n}"), fill, n),
    );
    ports.complete(CLUSTER, "web");
    tick_once(ports, b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.history[0].verdict,
        Verdict::Succeeded,
        "{:?}",
        st.history[0]
    );
    st.last_known_good.unwrap().task_definition_arn
}

pub fn kinds(ports: &MemoryPorts) -> Vec<NoticeKind> {
    ports.with(|w| w.published.iter().map(|n| n.kind).collect())
}
