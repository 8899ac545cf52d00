//! What every scenario test needs, once: a world (the in-memory account at the scenarios'
//! start time, `web` running in dev), events sent through the real dispatch, ticks, and the
//! journal as the words tests assert on.

use chrono::{DateTime, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::Value;

use crate::bundle::Bundle;
use crate::dispatch::{handle_event, tick, DispatchReport};
use crate::engine::RunOptions;
use crate::machine::Point;
use crate::memory::MemoryPorts;

pub const CLUSTER: &str = "booking-dev";
/// What dev's `web` runs before the agent deploys anything.
pub const INITIAL_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:0";

/// 12:00 on the scenarios' day (pushes in [`super::push_event`] happen from 11:00).
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

/// The in-memory account at [`start`], with dev's `web` running [`INITIAL_TD`].
pub fn ports() -> MemoryPorts {
    let ports = MemoryPorts::new(start());
    ports.add_service(CLUSTER, "web", INITIAL_TD);
    ports
}

/// [`ports`] with the test config ([`super::CONFIG`]).
pub fn world() -> (MemoryPorts, Bundle) {
    (ports(), super::bundle())
}

/// One event through exactly the dispatch the Lambda functions use. ECR sends a push event
/// once the image is stored: a push puts its image in the in-memory registry first.
pub fn send(ports: &MemoryPorts, b: &Bundle, event: &Value) -> DispatchReport {
    stored(ports, event);
    block_on(handle_event(ports, b, event, RunOptions::default())).expect("event handled")
}

/// The image a successful ECR push event names, added to the registry (as it was pushed).
pub fn stored(ports: &MemoryPorts, event: &Value) {
    let d = &event["detail"];
    let pushed = event["detail-type"] == "ECR Image Action"
        && d["action-type"] == "PUSH"
        && d["result"] == "SUCCESS";
    let digest = d["image-digest"]
        .as_str()
        .and_then(|x| crate::image::Digest::parse(x).ok());
    let at = event["time"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok());
    let (Some(digest), Some(at), Some(repository), true) =
        (digest, at, d["repository-name"].as_str(), pushed)
    else {
        return;
    };
    let image = crate::image::Image {
        repository: repository.to_owned(),
        digest,
        tag: d["image-tag"].as_str().map(str::to_owned),
        pushed_at: at.with_timezone(&Utc),
    };
    ports.with(|w| {
        if !w.images.contains(&image) {
            w.images.push(image);
        }
    });
}

/// One minute's tick.
pub fn tick_once(ports: &MemoryPorts, b: &Bundle) -> DispatchReport {
    block_on(tick(ports, b, RunOptions::default()))
}

/// The task definition dev's `web` runs now.
pub fn service_td(ports: &MemoryPorts) -> String {
    ports.with(|w| {
        w.services[&(CLUSTER.to_string(), "web".to_string())]
            .task_definition
            .clone()
    })
}

/// The world's clock.
pub fn now(ports: &MemoryPorts) -> DateTime<Utc> {
    ports.with(|w| w.now)
}

/// The report's journal as `from->to` words, in order: the releases' transitions (the images'
/// protection, housekeeping of every tick, is in [`protection_notes`]).
pub fn journal_words(r: &DispatchReport) -> Vec<String> {
    r.targets
        .iter()
        .flat_map(|t| t.journal.iter())
        .filter(|j| j.from != Point::Protection)
        .map(|j| format!("{}->{}", j.from, j.to))
        .collect()
}

/// What the report's journal says of the images' protection tags, in order.
pub fn protection_notes(r: &DispatchReport) -> Vec<String> {
    r.targets
        .iter()
        .flat_map(|t| t.journal.iter())
        .filter(|j| j.from == Point::Protection)
        .map(|j| j.note.clone())
        .collect()
}
