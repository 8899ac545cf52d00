//! Scenario tests for alarm-driven rollback: the engine over in-memory ports with virtual time,
//! one test per policy line of the issue. Guard alarms are in `guard_alarms.rs`, rollbacks a
//! person asks for in `rollbacks.rs`.

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::request_deploy;
use harbormaster_core::machine::{Outcome, Refusal, SkipKind};
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::ports::{ErrorKind, PortError};
use harbormaster_core::state::{PhaseKind, Verdict};
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{
    journal_words, now, send, service_td, tick_once, CLUSTER,
};
use harbormaster_core::{RunOptions, Target};

mod common;

use common::*;

#[test]
fn an_alarm_within_the_window_after_a_release_puts_the_one_before_back_and_marks_it_bad() {
    let (ports, b) = world();
    let v1 = release(&ports, &b, 1, 'a');
    ports.advance(Duration::minutes(10));
    let v2 = release(&ports, &b, 2, 'b');
    ports.advance(Duration::minutes(5));

    let event = alarm("al-1", ALARM, "OK", "ALARM", now(&ports));
    let r = send(&ports, &b, &event);
    assert!(
        matches!(r.targets[0].outcome, Outcome::Started { .. }),
        "{r:?}"
    );
    assert_eq!(
        journal_words(&r),
        ["rollback->updating", "updating->stabilizing"]
    );
    assert_eq!(
        service_td(&ports),
        v1,
        "the service is on the first release's revision"
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.bad_releases[0].image.tag.as_deref(), Some("main-2"));
    assert!(st.bad_releases[0].why.contains(ALARM));
    let notice = ports.with(|w| w.published.last().cloned().unwrap());
    assert_eq!(notice.kind, NoticeKind::RolledBack);
    let why = notice.reason.unwrap();
    assert!(
        why.contains(ALARM) && why.contains("rolling back to booking/web:main-1"),
        "{why}"
    );
    assert!(notice.previous.as_deref().unwrap().contains("main-1"));
    assert_ne!(v1, v2);

    // The same event again changes nothing.
    let before = ports.state("dev", "web");
    let calls = ports.with(|w| w.calls.len());
    assert_eq!(
        send(&ports, &b, &event).targets[0].outcome,
        Outcome::Duplicate
    );
    assert_eq!(ports.state("dev", "web"), before);
    assert_eq!(ports.count("UpdateService"), 3);
    assert!(
        ports.with(|w| w.calls.len()) > calls,
        "it was read, not acted on"
    );

    // ECS finishes the rollback: v1 is the last known good again, restored.
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    let good = st.last_known_good.unwrap();
    assert_eq!(
        (good.task_definition_arn.as_str(), good.restored),
        (v1.as_str(), true)
    );

    // A push of the bad digest (a new event) is not deployed, and the team is told.
    let r = send(
        &ports,
        &b,
        &push_event("p2-again", "main-2-retag", 'b', 100),
    );
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::MarkedBad),
        "{r:?}"
    );
    assert_eq!(kinds(&ports).last(), Some(&NoticeKind::Ignored));
    assert_eq!(service_td(&ports), v1);
    // A person must force it.
    ports.push_image("booking/web", "main-2", 'b', now(&ports));
    let r = block_on(request_deploy(
        &ports,
        &b,
        &Target::new("dev", "web"),
        "main-2",
        "bob",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(
        matches!(&r.outcome, Outcome::Refused { reason: Refusal::MarkedBad { label, .. } } if label.starts_with("booking/web:main-2 ")),
        "{r:?}"
    );
    let r = block_on(request_deploy(
        &ports,
        &b,
        &Target::new("dev", "web"),
        "main-2",
        "bob",
        true,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
}

#[test]
fn an_alarm_during_a_deployment_stops_it_and_returns_to_last_known_good() {
    let (ports, b) = world();
    let v1 = release(&ports, &b, 1, 'a');
    send(&ports, &b, &push_event("p2", "main-2", 'b', 2));
    ports.advance(Duration::minutes(2));
    let r = send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert_eq!(
        journal_words(&r),
        [
            "stabilizing->rolled back",
            "rollback->updating",
            "updating->stabilizing"
        ]
    );
    assert_eq!(service_td(&ports), v1);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::RolledBack);
    assert!(st.history[0].reason.as_deref().unwrap().contains(ALARM));
    assert!(st.in_flight.as_ref().unwrap().rollback.is_some());
    ports.complete(CLUSTER, "web");
    let r = tick_once(&ports, &b);
    assert!(matches!(
        r.targets[0].outcome,
        Outcome::Finished {
            verdict: Verdict::Succeeded,
            ..
        }
    ));
    assert!(
        ports
            .state("dev", "web")
            .unwrap()
            .last_known_good
            .unwrap()
            .restored
    );
}

#[test]
fn a_native_deployment_in_flight_is_stopped_through_ecs() {
    let (ports, b) = harbormaster_core::testing::native::blue_green_with_alarms();
    let v1 = release(&ports, &b, 1, 'a');
    send(&ports, &b, &push_event("p2", "main-2", 'b', 2));
    let updates = ports.count("UpdateService");
    send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert_eq!(ports.count("StopServiceDeployment"), 1);
    assert_eq!(
        ports.count("UpdateService"),
        updates,
        "ECS rolls back itself"
    );
    assert_eq!(service_td(&ports), v1);
    let d = ports.state("dev", "web").unwrap().in_flight.unwrap();
    assert_eq!(d.phase.kind(), PhaseKind::Stabilizing);
    let r = tick_once(&ports, &b);
    assert!(
        matches!(
            r.targets[0].outcome,
            Outcome::Finished {
                verdict: Verdict::Succeeded,
                ..
            }
        ),
        "{r:?}"
    );
}

#[test]
fn an_alarm_outside_the_window_only_notifies() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    release(&ports, &b, 2, 'b');
    ports.advance(Duration::minutes(31));
    let updates = ports.count("UpdateService");
    let r = send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::AlarmOutsideWindow),
        "{r:?}"
    );
    assert_eq!(ports.count("UpdateService"), updates);
    assert_eq!(kinds(&ports).last(), Some(&NoticeKind::Alarm));
    assert!(ports.state("dev", "web").unwrap().bad_releases.is_empty());
}

#[test]
fn an_alarm_on_a_service_already_back_on_its_last_known_good_only_notifies_and_never_loops() {
    let (ports, b) = world();
    let v1 = release(&ports, &b, 1, 'a');
    release(&ports, &b, 2, 'b');
    send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    ports.advance(Duration::minutes(1));
    let updates = ports.count("UpdateService");
    // The alarm clears and fires again: v1 is not rolled back to anything older.
    send(
        &ports,
        &b,
        &alarm("al-2", ALARM, "ALARM", "OK", now(&ports)),
    );
    let r = send(
        &ports,
        &b,
        &alarm("al-3", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::AlreadyRestored),
        "{r:?}"
    );
    assert_eq!(ports.count("UpdateService"), updates);
    assert_eq!(service_td(&ports), v1);
    assert_eq!(kinds(&ports).last(), Some(&NoticeKind::Alarm));
}

#[test]
fn stale_repeated_and_clearing_alarm_changes_do_nothing() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    let before_release = now(&ports);
    ports.advance(Duration::minutes(1));
    release(&ports, &b, 2, 'b');
    let state = ports.state("dev", "web");
    let published = kinds(&ports).len();
    for (id, from, to, at) in [
        ("old", "OK", "ALARM", before_release), // before the release began
        ("repeat", "ALARM", "ALARM", now(&ports)), // ALARM → ALARM
        ("ok", "OK", "OK", now(&ports)),        // OK → OK
        ("clears", "ALARM", "OK", now(&ports)), // clearing
    ] {
        let r = send(&ports, &b, &alarm(id, ALARM, from, to, at));
        assert!(
            matches!(r.targets[0].outcome, Outcome::Ignored { .. }),
            "{id}: {r:?}"
        );
    }
    let mut after = ports.state("dev", "web").unwrap();
    after.processed_events = state.as_ref().unwrap().processed_events.clone();
    assert_eq!(Some(after), state);
    assert_eq!(kinds(&ports).len(), published);
    // An alarm no service claims is reported, not acted on.
    let r = send(
        &ports,
        &b,
        &alarm("x", "someone-elses-alarm", "OK", "ALARM", now(&ports)),
    );
    assert!(r.targets.is_empty() && r.ignored.is_some(), "{r:?}");
}

#[test]
fn an_alarm_is_mapped_by_its_tags_when_the_config_does_not_name_it() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    release(&ports, &b, 2, 'b');
    ports.with(|w| {
        w.alarm_tags.insert(
            "arn:aws:cloudwatch:us-east-1:123456789012:alarm:latency-p99".into(),
            [
                ("harbormaster:service".to_owned(), "web".to_owned()),
                ("harbormaster:environment".to_owned(), "dev".to_owned()),
            ]
            .into(),
        )
    });
    let r = send(
        &ports,
        &b,
        &alarm("t1", "latency-p99", "OK", "ALARM", now(&ports)),
    );
    assert_eq!(r.targets.len(), 1, "{r:?}");
    assert!(matches!(r.targets[0].outcome, Outcome::Started { .. }));
}

#[test]
fn a_rollback_with_nothing_to_return_to_fails_urgently_and_does_not_retry() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    let r = send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert!(matches!(
        r.targets[0].outcome,
        Outcome::Finished {
            verdict: Verdict::RollbackFailed,
            ..
        }
    ));
    let n = ports.with(|w| w.published.last().cloned().unwrap());
    assert_eq!(n.kind, NoticeKind::RollbackFailed);
    assert_eq!(n.severity(), harbormaster_core::notify::Severity::Critical);
    assert!(n.subject().contains("ROLLBACK FAILED"), "{}", n.subject());
    // The next alarm only notifies: a person must act.
    ports.advance(Duration::minutes(1));
    let r = send(
        &ports,
        &b,
        &alarm("al-2", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::LastRollbackFailed),
        "{r:?}"
    );
}

#[test]
fn a_rollback_whose_revision_is_gone_ends_in_rollback_failed_without_a_retry_loop() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    release(&ports, &b, 2, 'b');
    ports.with(|w| {
        w.faults.push_back((
            "UpdateService".into(),
            PortError::new(
                ErrorKind::Invalid,
                "UpdateService",
                "TaskDefinition is inactive",
            ),
        ))
    });
    let r = send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert!(
        matches!(
            r.targets[0].outcome,
            Outcome::Finished {
                verdict: Verdict::RollbackFailed,
                ..
            }
        ),
        "{r:?}"
    );
    let st = ports.state("dev", "web").unwrap();
    assert!(st.in_flight.is_none());
    assert!(st.history[0]
        .reason
        .as_deref()
        .unwrap()
        .contains("inactive"));
    assert_eq!(kinds(&ports).last(), Some(&NoticeKind::RollbackFailed));
    let updates = ports.count("UpdateService");
    for _ in 0..3 {
        ports.advance(Duration::minutes(5));
        tick_once(&ports, &b);
    }
    assert_eq!(ports.count("UpdateService"), updates, "no retry loop");
}

/// Issue 33, item 15: an alarm no service names, whose tags cannot be read because it was
/// deleted (CloudWatch answers ResourceNotFound to ListTagsForResource), is answered once as
/// unmapped, saying why, instead of failing its whole event into Lambda's retries and the
/// dead-letter queue (the old code's `?`).
#[test]
fn item_15_a_deleted_unnamed_alarm_is_answered_not_failed() {
    use harbormaster_core::dispatch::handle_event;
    let (ports, b) = world();
    let gone = PortError::new(
        ErrorKind::NotFound,
        "ListTagsForResource",
        "ResourceNotFoundException: alarm not found",
    );
    ports.with(|w| w.faults.push_back(("ListTagsForResource".into(), gone)));
    let event = alarm("al-x", "someone-elses-alarm", "OK", "ALARM", now(&ports));
    let report = block_on(handle_event(&ports, &b, &event, RunOptions::default()))
        .expect("answered, not failed");
    let why = report.ignored.unwrap_or_default();
    assert!(
        why.contains("someone-elses-alarm") && why.contains("could not be read"),
        "{why}"
    );
    assert!(report.targets.is_empty());
}
