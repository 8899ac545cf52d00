//! Guard alarms: a release waits while one fires, deploys when it clears, and fails after the
//! timeout unless forced. The engine over in-memory ports with virtual time.

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::request_deploy;
use harbormaster_core::machine::Outcome;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{journal_words, now, send, tick_once};
use harbormaster_core::{RunOptions, Target};

mod common;

use common::*;

const GUARDED: &str = "guard_alarms = [\"booking-dev-db-cpu\"]\nguard_timeout_minutes = 20\n";

#[test]
fn a_release_waits_while_a_guard_alarm_fires_and_deploys_when_it_clears() {
    let (ports, b) = world_with(GUARDED);
    ports.with(|w| {
        w.firing.insert("booking-dev-db-cpu".into());
    });
    let r = send(&ports, &b, &push_event("p1", "main-1", 'a', 1));
    assert_eq!(r.targets[0].outcome, Outcome::Queued);
    assert_eq!(journal_words(&r), ["pending->held"]);
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);
    ports.advance(Duration::minutes(5));
    tick_once(&ports, &b);
    assert_eq!(ports.count("RegisterTaskDefinition"), 0, "still held");
    ports.with(|w| w.firing.clear());
    ports.advance(Duration::minutes(1));
    let r = tick_once(&ports, &b);
    assert!(
        matches!(
            r.targets
                .iter()
                .find(|t| t.environment == "dev")
                .unwrap()
                .outcome,
            Outcome::Started { .. }
        ),
        "{r:?}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
}

#[test]
fn a_release_held_by_a_guard_alarm_fails_after_the_timeout_and_force_overrides() {
    let (ports, b) = world_with(GUARDED);
    ports.with(|w| {
        w.firing.insert("booking-dev-db-cpu".into());
    });
    send(&ports, &b, &push_event("p1", "main-1", 'a', 1));
    ports.advance(Duration::minutes(21));
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert!(st.pending.is_none());
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    assert!(st.history[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("booking-dev-db-cpu"));
    assert_eq!(kinds(&ports).last(), Some(&NoticeKind::Failed));
    // A person forces it while the alarm still fires.
    ports.push_image("booking/web", "main-1", 'a', now(&ports));
    let r = block_on(request_deploy(
        &ports,
        &b,
        &Target::new("dev", "web"),
        "main-1",
        "alice",
        true,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
}
