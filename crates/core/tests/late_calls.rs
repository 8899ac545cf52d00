//! Issue 30, finding 9: the lease fences the state document, not ECS. A call held on its way
//! (a laptop that sleeps, a function past its declared timeout) may land after another
//! invocation took its step over and a newer release succeeded. Such a call is not sent with
//! less than a call's time left on the lease; one that lands anyway is seen by the next look and
//! put right, said once.

use std::cell::Cell;

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::{handle_event, tick};
use harbormaster_core::memory::MemoryPorts;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::scenario::{self, service_td, CLUSTER};
use harbormaster_core::testing::{bundle, push_event};
use harbormaster_core::{Bundle, RunOptions};

fn released(ports: &MemoryPorts, b: &Bundle, id: &str, tag: &str, fill: char, secs: i64) {
    let e = push_event(id, tag, fill, secs);
    scenario::stored(ports, &e);
    let _ = block_on(handle_event(ports, b, &e, RunOptions::default()));
    ports.complete(CLUSTER, "web");
    block_on(tick(ports, b, RunOptions::default()));
}

/// The port calls of B's push after A's release, run alone: where a test holds one.
fn calls_of_b_alone(b: &Bundle) -> Vec<String> {
    let alone = scenario::ports();
    released(&alone, b, "e1", "main-a", 'a', 0);
    let before = alone.with(|w| w.calls.len());
    let e2 = push_event("e2", "main-b", 'b', 60);
    scenario::stored(&alone, &e2);
    let _ = block_on(handle_event(&alone, b, &e2, RunOptions::default()));
    alone.with(|w| w.calls[before..].to_vec())
}

#[test]
fn finding_9_a_late_call_that_lands_after_a_newer_release_is_put_right_once() {
    let b = bundle();
    let ports = scenario::ports();
    released(&ports, &b, "e1", "main-a", 'a', 0);
    // Where B's UpdateService comes among its calls, from a run of B alone.
    let calls = calls_of_b_alone(&b);
    let update = calls
        .iter()
        .position(|c| c.starts_with("UpdateService"))
        .unwrap();

    ports.hold_call(update);
    let x_done = Cell::new(false);
    let x = async {
        let e2 = push_event("e2", "main-b", 'b', 60);
        scenario::stored(&ports, &e2);
        let _ = handle_event(&ports, &b, &e2, RunOptions::default()).await;
        x_done.set(true);
    };
    let y = async {
        ports.until_held_or(|| x_done.get()).await;
        // X's lease lapses; the tick takes B over and finishes it; C follows and succeeds.
        ports.advance(Duration::minutes(3));
        let _ = tick(&ports, &b, RunOptions::default()).await;
        ports.complete(CLUSTER, "web");
        let _ = tick(&ports, &b, RunOptions::default()).await;
        let e3 = push_event("e3", "main-c", 'c', 120);
        scenario::stored(&ports, &e3);
        let _ = handle_event(&ports, &b, &e3, RunOptions::default()).await;
        ports.complete(CLUSTER, "web");
        let _ = tick(&ports, &b, RunOptions::default()).await;
        ports.release();
    };
    block_on(futures::future::join(x, y));
    let st = ports.state("dev", "web").unwrap();
    let good = st.last_known_good.clone().unwrap();
    assert_eq!(good.image.tag.as_deref(), Some("main-c"), "{st:#?}");
    let b_revision = (st.history.iter())
        .find(|h| h.image.tag.as_deref() == Some("main-b") && h.verdict == Verdict::Succeeded)
        .and_then(|h| h.task_definition_arn.clone())
        .expect("B succeeded, by the tick");
    assert_eq!(service_td(&ports), b_revision, "X's late call landed");

    // The next looks see it and put C back, once.
    for _ in 0..10 {
        ports.advance(Duration::minutes(1));
        block_on(tick(&ports, &b, RunOptions::default()));
        ports.complete(CLUSTER, "web");
    }
    let st = ports.state("dev", "web").unwrap();
    let now = st.last_known_good.unwrap();
    assert_eq!(now.image.tag.as_deref(), Some("main-c"));
    assert_eq!(service_td(&ports), now.task_definition_arn, "C runs again");
    let said = ports.with(|w| {
        (w.published.iter())
            .filter(|n| n.kind == NoticeKind::Drift)
            .filter(|n| n.reason.as_deref().is_some_and(|r| r.contains("late call")))
            .count()
    });
    assert_eq!(said, 1, "said once");
}

/// A call is not sent once the lease has less than a call's time left: the step is
/// interrupted and the tick takes it over (a call sent then could land after the takeover).
#[test]
fn a_call_is_not_sent_with_less_than_a_calls_time_left_on_the_lease() {
    let b = bundle();
    let ports = scenario::ports();
    released(&ports, &b, "e1", "main-a", 'a', 0);
    // The state write before UpdateService takes 50 of the lease's 60 seconds.
    let calls = calls_of_b_alone(&b);
    let update = calls
        .iter()
        .position(|c| c.starts_with("UpdateService"))
        .unwrap();
    let save = calls[..update]
        .iter()
        .rposition(|c| c.starts_with("PutObject"))
        .unwrap();
    ports.hold_call(save);
    let x = async {
        let e2 = push_event("e2", "main-b", 'b', 60);
        scenario::stored(&ports, &e2);
        handle_event(&ports, &b, &e2, RunOptions::default()).await
    };
    let y = async {
        ports.until_held_or(|| false).await;
        ports.advance(Duration::seconds(50));
        ports.release();
    };
    let (report, ()) = block_on(futures::future::join(x, y));
    let report = report.unwrap();
    let error = report.targets[0].error.clone().unwrap_or_default();
    assert!(error.contains("not sent"), "{report:?}");
    assert_eq!(ports.count("UpdateService"), 1, "only the first release's");
    // The tick carries it on at once (the lease was given back).
    block_on(tick(&ports, &b, RunOptions::default()));
    assert_eq!(ports.count("UpdateService"), 2);
}
