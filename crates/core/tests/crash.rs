//! Crash at every boundary. A fixed story (three pushes, one of them arriving while another
//! deploys, ECS finishing each rollout, an alarm that rolls the last release back) runs once
//! without faults. Then, for every port call the story makes, in turn, it runs again with the
//! invocation dying at that call (with the call's effect lost, and with it done but its answer
//! lost); the invocation is restarted from what was persisted, as Lambda's retry and the next
//! tick would. Every run must end with the same state, the same revisions, the same ECS updates
//! and the same notifications as the uninterrupted one.
//!
//! Times are left out of the comparison (a restart happens later) and deployment ids are
//! compared by their ordinal; everything else is compared as stored.

use std::collections::BTreeSet;

use chrono::{Duration, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::{json, Value};

use harbormaster_core::dispatch::{handle_event, tick};
use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::template::TAG_DEPLOYMENT;
use harbormaster_core::testing::{bundle, push_event};
use harbormaster_core::{Bundle, RunOptions};

const CLUSTER: &str = "booking-dev";
/// Longer than `lease_seconds` in the test config, so a lease cut off by a crash has lapsed.
const RESTART_AFTER: i64 = 2;

#[derive(Clone, Copy, Debug)]
enum Step {
    Push {
        id: &'static str,
        fill: char,
        secs: i64,
    },
    /// ECS finishes the rollout in flight (not an invocation: nothing to crash).
    Complete,
    Tick,
    /// `booking-web-5xx` goes to ALARM now.
    Alarm {
        id: &'static str,
    },
}

const STORY: &[Step] = &[
    Step::Push {
        id: "e1",
        fill: 'a',
        secs: 0,
    },
    Step::Complete,
    Step::Tick,
    Step::Push {
        id: "e2",
        fill: 'b',
        secs: 60,
    },
    // Arrives while b deploys: waits as pending, then deploys after it.
    Step::Push {
        id: "e3",
        fill: 'c',
        secs: 120,
    },
    Step::Complete,
    Step::Tick,
    Step::Complete,
    Step::Tick,
    // Within the rollback window of c: c is marked bad, b comes back.
    Step::Alarm { id: "alarm-1" },
    Step::Complete,
    Step::Tick,
    Step::Tick,
];

fn alarm_event(id: &str, at: chrono::DateTime<Utc>) -> Value {
    harbormaster_core::testing::alarm_event(id, "booking-web-5xx", ("OK", "ALARM"), at)
}

fn world() -> MemoryPorts {
    let ports = MemoryPorts::new(Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap());
    ports.add_service(
        CLUSTER,
        "web",
        "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:0",
    );
    ports.add_service(
        "booking-prod",
        "web",
        "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-prod-web:0",
    );
    ports.with(|w| w.rollout = RolloutMode::Manual);
    ports
}

/// What the story leaves behind, without times and with deployment ids as ordinals.
#[derive(Debug, PartialEq)]
struct End {
    states: Vec<Value>,
    /// (ARN, deployment tag) of every registered revision, in order.
    revisions: Vec<(String, String)>,
    /// The task definitions ECS was pointed at, in order (a repeated UpdateService to the same
    /// one is not a new effect: ECS starts nothing for it).
    updates: Vec<String>,
    /// Notification ids (delivery is at least once: a repeat is allowed, a loss is not).
    notifications: BTreeSet<String>,
    /// A person must not see two of anything but the at-least-once repeats.
    calls: usize,
}

fn deployment_ids() -> regex::Regex {
    regex::Regex::new(r"\d{8}T\d{6}\d{3}Z-[0-9a-f]{8}-(\d+)").unwrap()
}

/// Times written into reasons ("went to ALARM at 2026-11-23 12:04:30 UTC").
fn times_in_text(s: &str) -> String {
    let t = regex::Regex::new(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC").unwrap();
    t.replace_all(s, "<time>").into_owned()
}

fn normalise(v: &Value, ids: &regex::Regex) -> Value {
    const TIMES: [&str; 9] = [
        "at",
        // When a protection tag went on is timing (a crash delays it a tick); that it is on is not.
        "since",
        "bound_said",
        "updated_at",
        "started_at",
        "lease_until",
        "attempts",
        "ecs_event_at",
        "requested_at",
    ];
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !TIMES.contains(&k.as_str()))
                .map(|(k, v)| match (k.as_str(), v) {
                    // When the automatic starts began is timing; how many there were is not.
                    ("automatic", Value::Array(a)) => (k.clone(), Value::from(a.len())),
                    _ => (k.clone(), normalise(v, ids)),
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(|v| normalise(v, ids)).collect()),
        Value::String(s) => Value::String(times_in_text(&ids.replace_all(s, "deployment-$1"))),
        other => other.clone(),
    }
}

fn end(ports: &MemoryPorts) -> End {
    let ids = deployment_ids();
    let norm = |s: &str| ids.replace_all(s, "deployment-$1").into_owned();
    let states = ["dev", "prod"]
        .iter()
        .filter_map(|env| ports.state(env, "web"))
        .map(|s| normalise(&serde_json::to_value(s).unwrap(), &ids))
        .collect();
    ports.with(|w| {
        let mut updates: Vec<String> = Vec::new();
        for (_, td, _) in &w.updates {
            if updates.last() != Some(td) {
                updates.push(td.clone());
            }
        }
        End {
            states,
            revisions: w
                .revisions
                .iter()
                .map(|r| {
                    let tag = r.body["tags"]
                        .as_array()
                        .and_then(|t| t.iter().find(|t| t["key"] == TAG_DEPLOYMENT))
                        .and_then(|t| t["value"].as_str())
                        .unwrap_or("");
                    (r.arn.clone(), norm(tag))
                })
                .collect(),
            updates,
            notifications: w.published.iter().map(|n| norm(&n.id)).collect(),
            calls: 0,
        }
    })
}

/// Runs the story; with `crash = Some((n, executed))` the invocation dies at the n-th port call.
/// Returns the end and how many port calls the story made.
fn play(b: &Bundle, crash: Option<(usize, bool)>) -> (End, usize, Option<String>) {
    let ports = world();
    ports.with(|w| w.crash_at = crash);
    let mut crashed_in = None;
    for step in STORY {
        let now = ports.with(|w| w.now);
        let invoke = |ports: &MemoryPorts| match step {
            Step::Push { id, fill, secs } => {
                let e = push_event(id, &format!("main-{fill}"), *fill, *secs);
                harbormaster_core::testing::scenario::stored(ports, &e);
                let _ = block_on(handle_event(ports, b, &e, RunOptions::default()));
            }
            Step::Alarm { id } => {
                let _ = block_on(handle_event(
                    ports,
                    b,
                    &alarm_event(id, now),
                    RunOptions::default(),
                ));
            }
            Step::Tick => {
                block_on(tick(ports, b, RunOptions::default()));
            }
            Step::Complete => ports.complete(CLUSTER, "web"),
        };
        invoke(&ports);
        if ports.with(|w| w.dead) {
            crashed_in = Some(format!(
                "{step:?} at {}",
                ports.with(|w| w.calls.last().cloned().unwrap_or_default())
            ));
            // Restart: Lambda delivers the event again (a tick is simply the next tick), after
            // the cut-off invocation's lease has lapsed; then the tick takes over what is left.
            ports.revive();
            ports.advance(Duration::minutes(RESTART_AFTER));
            invoke(&ports);
            block_on(tick(&ports, b, RunOptions::default()));
        }
        ports.advance(Duration::seconds(30));
    }
    let calls = ports.with(|w| w.calls.len());
    let mut e = end(&ports);
    e.calls = 0;
    (e, calls, crashed_in)
}

#[test]
fn a_crash_at_any_port_call_ends_where_the_uninterrupted_run_does() {
    let b = bundle();
    let (want, calls, _) = play(&b, None);
    // The story is the one described: three releases, b rolled back to after c's alarm.
    let dev = &want.states[0];
    let verdicts: Vec<&str> = dev["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["verdict"].as_str().unwrap())
        .collect();
    // Newest first: the rollback to b, c, b, a. c stays "succeeded" in the history and is
    // marked bad; b is the last known good again.
    assert_eq!(verdicts, ["succeeded"; 4], "{dev:#}");
    let digest = |fill: char| format!("sha256:{}", fill.to_string().repeat(64));
    assert_eq!(
        dev["bad_releases"][0]["image"]["digest"],
        json!(digest('c')),
        "{dev:#}"
    );
    assert_eq!(
        dev["last_known_good"]["image"]["digest"],
        json!(digest('b')),
        "{dev:#}"
    );
    assert_eq!(want.revisions.len(), 3, "one revision per release");
    assert!(dev["in_flight"].is_null() && dev["pending"].is_null());
    assert!(calls > 40, "the story makes {calls} port calls");

    let mut runs = 0;
    for at in 0..calls {
        for executed in [false, true] {
            let (got, _, crashed_in) = play(&b, Some((at, executed)));
            let crashed_in = crashed_in.expect("the crash point is inside the story");
            runs += 1;
            assert_eq!(
                got,
                want,
                "crash at port call {at} ({crashed_in}), its effect {}",
                if executed {
                    "done, answer lost"
                } else {
                    "lost"
                }
            );
        }
    }
    eprintln!("{runs} crashed runs, each equal to the uninterrupted one ({calls} port calls)");
}

/// The lease's part of the story (issue 16, point 3): an alarm arrives while a deployment's
/// invocation is between any two of its port calls (its UpdateService already sent, say, and
/// landing late). Whatever the point, the service ends on the rollback target, the release
/// marked bad: the rollback waits for the in-flight call's lease, and the first invocation,
/// whose deployment was taken from it, advances nothing.
#[test]
fn an_alarm_at_any_point_of_a_deployment_ends_on_the_rollback_target() {
    use std::cell::Cell;

    let b = bundle();
    let a_then = |ports: &MemoryPorts| {
        let e = push_event("e1", "main-a", 'a', 0);
        harbormaster_core::testing::scenario::stored(ports, &e);
        let _ = block_on(handle_event(ports, &b, &e, RunOptions::default()));
        ports.complete(CLUSTER, "web");
        block_on(tick(ports, &b, RunOptions::default()));
        ports.advance(Duration::seconds(30));
        ports.with(|w| {
            (
                w.calls.len(),
                w.services[&(CLUSTER.to_string(), "web".to_string())]
                    .task_definition
                    .clone(),
            )
        })
    };
    let push_b = push_event("e2", "main-b", 'b', 60);
    // The calls of the deployment's invocation, alone: the hold points are those after its
    // intent is saved (before it, the alarm finds nothing in flight to blame).
    let alone = world();
    let (before, _) = a_then(&alone);
    harbormaster_core::testing::scenario::stored(&alone, &push_b);
    let _ = block_on(handle_event(&alone, &b, &push_b, RunOptions::default()));
    let calls: Vec<String> = alone.with(|w| w.calls[before..].to_vec());
    let first_save = calls
        .iter()
        .position(|c| c.starts_with("PutObject"))
        .unwrap();

    for (n, call) in calls.iter().enumerate().skip(first_save + 1) {
        let ports = world();
        let (_, td_a) = a_then(&ports);
        harbormaster_core::testing::scenario::stored(&ports, &push_b);
        ports.hold_call(n);
        let x_done = Cell::new(false);
        let x = async {
            let _ = handle_event(&ports, &b, &push_b, RunOptions::default()).await;
            x_done.set(true);
        };
        let now = ports.with(|w| w.now);
        let y = async {
            ports.until_held_or(|| x_done.get()).await;
            let _ =
                handle_event(&ports, &b, &alarm_event("al-1", now), RunOptions::default()).await;
            ports.release();
        };
        block_on(futures::future::join(x, y));
        for _ in 0..3 {
            ports.advance(Duration::minutes(RESTART_AFTER));
            block_on(tick(&ports, &b, RunOptions::default()));
            ports.complete(CLUSTER, "web");
        }
        block_on(tick(&ports, &b, RunOptions::default()));
        let st = ports.state("dev", "web").unwrap();
        let service = ports.with(|w| {
            w.services[&(CLUSTER.to_string(), "web".to_string())]
                .task_definition
                .clone()
        });
        assert_eq!(service, td_a, "alarm during {call} (call {n}): {st:#?}");
        assert!(
            st.bad_releases
                .iter()
                .any(|r| r.image.tag.as_deref() == Some("main-b")),
            "call {n}"
        );
        assert!(st.in_flight.is_none(), "call {n}: {st:#?}");
    }
}
