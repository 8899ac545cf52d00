//! Scenario tests of recovery: crashes between steps, lost answers, throttling, lost push
//! events found by the tick, and notifications that wait in the outbox until SNS takes them.
use chrono::{Duration, TimeZone, Utc};
use futures::executor::block_on;

use harbormaster_core::dispatch::handle_event;
use harbormaster_core::machine::Outcome;
use harbormaster_core::memory::RolloutMode;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::{PhaseKind, Verdict};
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::stored;
use harbormaster_core::testing::scenario::{
    journal_words, send, service_td, tick_once, world, CLUSTER,
};
use harbormaster_core::RunOptions;

/// Runs a push to completion; returns (revisions registered, UpdateService calls, final service TD).
fn uninterrupted() -> (usize, u32, String) {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let updates = ports.with(|w| w.services[&(CLUSTER.to_string(), "web".to_string())].updates);
    (
        ports.with(|w| w.revisions.len()),
        updates,
        service_td(&ports),
    )
}

#[test]
fn a_crash_between_any_two_steps_converges_without_a_second_revision() {
    let reference = uninterrupted();
    // Crash at the n-th port call of the push's invocation, with and without that call's effect
    // having happened; then restart and let ticks run after the lease lapsed.
    for n in 0..12 {
        for executed in [false, true] {
            let (ports, b) = world();
            // ECR has the image before it sends the push event.
            stored(&ports, &push_event("e1", "main-1", 'a', 0));
            ports.with(|w| w.crash_at = Some((n, executed)));
            let _ = block_on(handle_event(
                &ports,
                &b,
                &push_event("e1", "main-1", 'a', 0),
                RunOptions::default(),
            ));
            ports.revive();
            // EventBridge redelivers the event (Lambda retries on error)…
            let _ = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
            // …and the tick takes over once the lease has lapsed.
            for _ in 0..4 {
                ports.advance(Duration::minutes(2));
                tick_once(&ports, &b);
            }
            let updates =
                ports.with(|w| w.services[&(CLUSTER.to_string(), "web".to_string())].updates);
            let got = (
                ports.with(|w| w.revisions.len()),
                updates,
                service_td(&ports),
            );
            assert_eq!(
                got.0, 1,
                "crash at call {n} (executed: {executed}): one revision"
            );
            assert_eq!(
                got.2, reference.2,
                "crash at call {n} (executed: {executed}): same final revision"
            );
            let st = ports.state("dev", "web").unwrap();
            assert!(
                st.in_flight.is_none(),
                "crash at {n}/{executed}: settled: {st:?}"
            );
            assert_eq!(
                st.last_known_good
                    .as_ref()
                    .map(|g| g.task_definition_arn.clone()),
                Some(reference.2.clone()),
                "crash at {n}/{executed}"
            );
            assert!(
                got.1 >= 1 && got.1 <= 2,
                "crash at {n}/{executed}: {} updates",
                got.1
            );
        }
    }
}

#[test]
fn a_lost_register_response_is_adopted_not_registered_again() {
    let (ports, b) = world();
    ports.with(|w| w.lose_response.push("RegisterTaskDefinition".into()));
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert!(
        r.targets[0].error.is_some(),
        "the invocation saw the lost response"
    );
    ports.advance(Duration::seconds(1));
    let t = tick_once(&ports, &b);
    let notes: Vec<_> = t
        .targets
        .iter()
        .flat_map(|t| t.journal.iter().map(|j| j.note.clone()))
        .collect();
    assert!(notes.iter().any(|n| n.starts_with("adopted")), "{notes:?}");
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
    assert_eq!(ports.count("UpdateService"), 1);
}

#[test]
fn throttling_interrupts_and_the_next_tick_finishes_without_waiting_for_the_lease() {
    use harbormaster_core::ports::{ErrorKind, PortError};
    let (ports, b) = world();
    ports.with(|w| {
        w.faults.push_back((
            "UpdateService".into(),
            PortError::new(ErrorKind::Throttled, "UpdateService", "Rate exceeded"),
        ))
    });
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert!(r.targets[0]
        .error
        .as_deref()
        .unwrap()
        .contains("Rate exceeded"));
    assert_eq!(
        ports
            .state("dev", "web")
            .unwrap()
            .in_flight
            .unwrap()
            .phase
            .kind(),
        PhaseKind::Updating
    );
    ports.advance(Duration::seconds(1));
    tick_once(&ports, &b);
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert!(
        st.in_flight.is_none() && st.last_known_good.is_some(),
        "{st:?}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
}

#[test]
fn a_permanent_error_fails_the_deployment_and_says_why() {
    use harbormaster_core::ports::{ErrorKind, PortError};
    let (ports, b) = world();
    ports.with(|w| {
        w.faults.push_back((
            "RegisterTaskDefinition".into(),
            PortError::new(
                ErrorKind::Invalid,
                "RegisterTaskDefinition",
                "Invalid setting for container 'web'",
            ),
        ))
    });
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(
        journal_words(&r),
        ["pending->registering", "registering->failed"]
    );
    let st = ports.state("dev", "web").unwrap();
    assert!(st.in_flight.is_none());
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    let n = ports.with(|w| w.published.last().cloned().unwrap());
    assert_eq!(n.kind, NoticeKind::Failed);
    assert!(n.reason.unwrap().contains("Invalid setting"));
    assert_eq!(ports.count("UpdateService"), 0);
}

#[test]
fn a_lost_push_event_is_found_by_the_tick() {
    let (ports, b) = world();
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap();
    ports.push_image("booking/web", "main-1", 'a', t0);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    // main-2 is pushed but its event never arrives.
    ports.push_image("booking/web", "main-2", 'b', t0 + Duration::minutes(5));
    ports.push_image("booking/web", "release-x", 'c', t0 + Duration::minutes(6));
    let t = tick_once(&ports, &b);
    assert!(
        journal_words(&t).contains(&"pending->registering".to_string()),
        "{t:?}"
    );
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.last_known_good.unwrap().image.tag.as_deref(),
        Some("main-2")
    );
    // Nothing new: further ticks do nothing.
    let before = ports.count("RegisterTaskDefinition");
    tick_once(&ports, &b);
    assert_eq!(ports.count("RegisterTaskDefinition"), before);
}

#[test]
fn reconciling_never_deploys_on_a_service_the_agent_has_not_seen_yet() {
    let (ports, b) = world();
    ports.push_image("booking/web", "main-1", 'a', Utc::now());
    tick_once(&ports, &b);
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);
}

#[test]
fn notifications_read_well_and_carry_filter_attributes() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let n = ports.with(|w| w.published[0].clone());
    assert_eq!(n.subject(), "[booking dev] web: deploying main-1");
    assert!(n.text().contains("Deployment of booking/web:main-1"));
    let attrs = n.attributes();
    assert!(
        attrs.contains(&("kind", "started".into())) && attrs.contains(&("severity", "info".into()))
    );
    assert_eq!(n.json()["image"]["tag"], "main-1");

    // A reason quoting an event is shown escaped: no forged line, no reordered text.
    let mut hostile = n.clone();
    hostile.reason = Some("Threshold Crossed\n[prod] web: deployed \u{202E}1-niam".into());
    let text = hostile.text();
    assert!(
        text.contains("Why: Threshold Crossed\\u{a}[prod] web: deployed \\u{202e}1-niam"),
        "{text}"
    );
}

#[test]
fn reconciling_never_flips_to_an_image_pushed_in_the_same_second() {
    let (ports, b) = world();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    // Three pushes within one second: ECR's times tie, the events arrive with their own times.
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap();
    for (i, (tag, fill)) in [("main-1", 'a'), ("main-2", 'b'), ("main-3", 'c')]
        .into_iter()
        .enumerate()
    {
        ports.push_image("booking/web", tag, fill, t);
        send(
            &ports,
            &b,
            &push_event(&format!("e{i}"), tag, fill, i as i64),
        );
    }
    ports.complete(CLUSTER, "web");
    for _ in 0..3 {
        tick_once(&ports, &b);
        ports.complete(CLUSTER, "web");
    }
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.last_known_good.unwrap().image.tag.as_deref(),
        Some("main-3")
    );
    assert_eq!(
        ports.count("RegisterTaskDefinition"),
        2,
        "main-1, then main-3; never main-1 or main-2 again"
    );
}

#[test]
fn a_notification_sns_refused_waits_in_the_outbox_and_goes_out_with_the_next_tick() {
    use harbormaster_core::ports::{ErrorKind, PortError};
    let (ports, b) = world();
    // SNS is down for the whole push: each of its three steps tries once.
    ports.with(|w| {
        for _ in 0..3 {
            w.faults.push_back((
                "Publish".into(),
                PortError::new(ErrorKind::Transient, "Publish", "Service Unavailable"),
            ));
        }
    });
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(ports.count("Publish"), 3);
    assert!(
        matches!(r.targets[0].outcome, Outcome::Started { .. }),
        "the deployment went on: {r:?}"
    );
    assert_eq!(ports.count("UpdateService"), 1);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.outbox.len(), 1, "kept: {:?}", st.outbox);
    assert!(ports.with(|w| w.published.is_empty()));

    tick_once(&ports, &b);
    let kinds: Vec<_> = ports.with(|w| w.published.iter().map(|n| n.kind).collect());
    assert_eq!(
        kinds,
        [NoticeKind::Started, NoticeKind::Succeeded],
        "late, in order, once each"
    );
    assert!(ports.state("dev", "web").unwrap().outbox.is_empty());
}

#[test]
fn a_crash_right_after_a_step_is_saved_delays_its_notification_but_never_loses_it() {
    // Calls of the push: GetObject, PutObject (intent + notice), then Publish: die there.
    let (ports, b) = world();
    stored(&ports, &push_event("e1", "main-1", 'a', 0));
    ports.with(|w| w.crash_at = Some((2, false)));
    let _ = block_on(handle_event(
        &ports,
        &b,
        &push_event("e1", "main-1", 'a', 0),
        RunOptions::default(),
    ));
    ports.revive();
    assert!(ports.with(|w| w.published.is_empty()));
    ports.advance(Duration::minutes(2));
    for _ in 0..2 {
        tick_once(&ports, &b);
    }
    let kinds: Vec<_> = ports.with(|w| w.published.iter().map(|n| n.kind).collect());
    assert_eq!(kinds, [NoticeKind::Started, NoticeKind::Succeeded]);
}

#[test]
fn a_tick_reads_each_state_document_once_reconcile_included() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap();
    ports.push_image("booking/web", "main-1", 'a', t0);
    let before = ports.count("GetObject");
    tick_once(&ports, &b);
    // dev/web (listing, then tick) and prod/web (tick): one read each.
    assert_eq!(ports.count("GetObject") - before, 2);
}

/// Ten deliveries of one push at once (EventBridge redelivers, Lambda runs them side by side):
/// one revision, one deployment, and the team hears each thing once (issue 16, point 8). Each
/// invocation used to publish the outbox it read before the compare-and-swap that emptied it.
#[test]
fn ten_concurrent_deliveries_send_each_notification_once() {
    let (ports, b) = world();
    let e = push_event("e1", "main-1", 'a', 0);
    stored(&ports, &e);
    let runs = (0..10).map(|_| handle_event(&ports, &b, &e, RunOptions::default()));
    let reports = block_on(futures::future::join_all(runs));
    assert!(reports.iter().all(|r| r.is_ok()), "{reports:?}");
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
    assert_eq!(ports.count("UpdateService"), 1);
    let started = ports.with(|w| {
        (w.published.iter())
            .filter(|n| n.kind == NoticeKind::Started)
            .count()
    });
    assert_eq!(started, 1, "{:?}", ports.with(|w| w.published.clone()));
    assert!(ports.state("dev", "web").unwrap().outbox.is_empty());
}

/// A topic SNS refuses for good (a wrong ARN, a policy denying us): each notice is tried, then
/// set aside in the document's dead letters with the error, logged as an error once, shown by
/// `status`; nothing is republished every invocation and nothing grows without bound (issue
/// 16, point 5).
#[test]
fn notifications_sns_refuses_for_good_are_set_aside_once_and_bounded() {
    use harbormaster_core::ports::{ErrorKind, PortError};
    let (ports, b) = world();
    ports.with(|w| {
        for _ in 0..1000 {
            w.faults.push_back((
                "Publish".into(),
                PortError::new(ErrorKind::NotFound, "Publish", "Topic does not exist"),
            ));
        }
    });
    for n in 0..40i64 {
        let mut e = push_event(&format!("e{n}"), &format!("main-{n}"), 'a', n * 60);
        e["detail"]["image-digest"] = serde_json::json!(format!("sha256:{:064x}", n + 1));
        send(&ports, &b, &e);
        tick_once(&ports, &b);
    }
    let st = ports.state("dev", "web").unwrap();
    assert!(st.outbox.is_empty(), "{} waiting", st.outbox.len());
    let notices = 80;
    assert_eq!(
        ports.count("Publish"),
        notices,
        "each tried once, never again"
    );
    assert!(st.undelivered.len() <= 20, "{}", st.undelivered.len());
    let last = st.undelivered.first().expect("set aside");
    assert!(last.error.contains("Topic does not exist"), "{last:?}");
    tick_once(&ports, &b);
    assert_eq!(
        ports.count("Publish"),
        notices,
        "a tick republishes nothing"
    );
}

/// Twenty-five different pushes to one service at once: every invocation settles (the latest
/// wins, the others are superseded or queued), none gives up on contention (issue 16, point 9).
#[test]
fn a_burst_of_different_pushes_settles_without_giving_up() {
    let (ports, b) = world();
    let events: Vec<_> = (0..25i64)
        .map(|n| {
            let mut e = push_event(&format!("b{n}"), &format!("main-{n}"), 'a', n);
            e["detail"]["image-digest"] = serde_json::json!(format!("sha256:{:064x}", n + 1));
            e
        })
        .collect();
    for e in &events {
        stored(&ports, e);
    }
    let runs = events
        .iter()
        .map(|e| handle_event(&ports, &b, e, RunOptions::default()));
    let reports = block_on(futures::future::join_all(runs));
    let gave_up: Vec<_> = reports
        .iter()
        .filter_map(|r| r.as_ref().ok())
        .flat_map(|r| r.targets.iter().filter_map(|t| t.error.clone()))
        .chain(
            reports
                .iter()
                .filter_map(|r| r.as_ref().err().map(|e| e.to_string())),
        )
        .collect();
    assert!(gave_up.is_empty(), "{gave_up:?}");
    assert_eq!(
        ports.state("dev", "web").unwrap().processed_events.len(),
        25
    );
}
