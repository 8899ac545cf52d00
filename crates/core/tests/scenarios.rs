//! Scenario tests: the engine over in-memory ports with virtual time.
//! Given a world, when events arrive, then the ordered journal, the state and the side effects.

use chrono::{Duration, TimeZone, Utc};
use futures::executor::block_on;
use serde_json::json;

use harbormaster_core::dispatch::{handle_event, request_deploy};
use harbormaster_core::machine::{Outcome, SkipKind};
use harbormaster_core::memory::RolloutMode;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::{PhaseKind, Verdict};
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{
    journal_words, send, service_td, tick_once, world, CLUSTER, INITIAL_TD,
};
use harbormaster_core::{Bundle, RunOptions, Target};

#[test]
fn a_push_registers_pins_the_digest_and_updates_then_the_tick_records_success() {
    let (ports, b) = world();
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(r.targets.len(), 1, "only dev follows main-*: {r:?}");
    assert!(matches!(r.targets[0].outcome, Outcome::Started { .. }));
    assert_eq!(
        journal_words(&r),
        [
            "pending->registering",
            "registering->updating",
            "updating->stabilizing"
        ]
    );

    let rev = ports.with(|w| w.revisions[0].clone());
    assert_eq!(
        rev.body["containerDefinitions"][0]["image"],
        format!(
            "123456789012.dkr.ecr.us-east-1.amazonaws.com/booking/web@sha256:{}",
            "a".repeat(64)
        )
    );
    assert_eq!(service_td(&ports), rev.arn);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.in_flight.as_ref().unwrap().phase.kind(),
        PhaseKind::Stabilizing
    );
    assert!(st.last_known_good.is_none(), "not good until ECS says so");

    let t = tick_once(&ports, &b);
    let dev: Vec<_> = t
        .targets
        .iter()
        .filter(|t| t.environment == "dev")
        .collect();
    assert!(
        matches!(
            dev[0].outcome,
            Outcome::Finished {
                verdict: Verdict::Succeeded,
                ..
            }
        ),
        "the tick reports what it ended: {:?}",
        dev[0]
    );
    assert_eq!(journal_words(&t), ["stabilizing->succeeded"]);
    let st = ports.state("dev", "web").unwrap();
    assert!(st.in_flight.is_none());
    assert_eq!(
        st.last_known_good.as_ref().unwrap().task_definition_arn,
        rev.arn
    );
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    let kinds: Vec<_> = ports.with(|w| w.published.iter().map(|n| n.kind).collect());
    assert_eq!(kinds, [NoticeKind::Started, NoticeKind::Succeeded]);
}

#[test]
fn duplicate_event_sequential_gives_one_revision_and_one_update() {
    let (ports, b) = world();
    let e = push_event("e1", "main-1", 'a', 0);
    send(&ports, &b, &e);
    let second = send(&ports, &b, &e);
    assert!(
        matches!(second.targets[0].outcome, Outcome::Duplicate),
        "{second:?}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
    assert_eq!(ports.count("UpdateService"), 1);
}

#[test]
fn duplicate_event_concurrent_gives_one_revision_and_one_update() {
    for copies in [2, 5] {
        let (ports, b) = world();
        let e = push_event("e1", "main-1", 'a', 0);
        harbormaster_core::testing::scenario::stored(&ports, &e);
        let runs = (0..copies).map(|_| handle_event(&ports, &b, &e, RunOptions::default()));
        let reports = block_on(futures::future::join_all(runs));
        let started = reports
            .iter()
            .filter(|r| {
                matches!(
                    r.as_ref().unwrap().targets[0].outcome,
                    Outcome::Started { .. }
                )
            })
            .count();
        assert_eq!(started, 1, "{reports:?}");
        assert_eq!(ports.count("RegisterTaskDefinition"), 1);
        assert_eq!(ports.count("UpdateService"), 1);
        let conflicts = ports.count("PutObject") - 2;
        assert!(
            conflicts >= 1,
            "the copies really raced on the state document"
        );
    }
}

#[test]
fn an_image_older_than_the_deployed_one_is_ignored_and_recorded_superseded() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    tick_once(&ports, &b);
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::Older),
        "{r:?}"
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Superseded);
    assert_eq!(st.history[0].image.tag.as_deref(), Some("main-1"));
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
}

#[test]
fn a_push_mid_deployment_is_queued_and_deployed_next_latest_wins() {
    let (ports, b) = world();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let q2 = send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    let q3 = send(&ports, &b, &push_event("e3", "main-3", 'c', 120));
    assert!(matches!(q2.targets[0].outcome, Outcome::Queued));
    assert!(matches!(q3.targets[0].outcome, Outcome::Queued));
    assert_eq!(
        journal_words(&q3),
        ["pending->superseded", "received->pending"]
    );

    // Still in progress: the tick changes nothing.
    let t = tick_once(&ports, &b);
    assert!(journal_words(&t).is_empty());
    ports.complete(CLUSTER, "web");
    let t = tick_once(&ports, &b);
    assert_eq!(
        journal_words(&t),
        [
            "stabilizing->succeeded",
            "pending->registering",
            "registering->updating",
            "updating->stabilizing"
        ]
    );
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);

    let st = ports.state("dev", "web").unwrap();
    let deployed: Vec<_> = ports.with(|w| {
        w.revisions
            .iter()
            .map(|r| {
                r.body["containerDefinitions"][0]["image"].as_str().unwrap()[66..67].to_owned()
            })
            .collect()
    });
    assert_eq!(deployed, ["a", "c"], "main-2 was skipped");
    assert_eq!(
        st.last_known_good.unwrap().image.tag.as_deref(),
        Some("main-3")
    );
    let verdicts: Vec<_> = st
        .history
        .iter()
        .map(|h| (h.image.tag.clone().unwrap(), h.verdict))
        .collect();
    assert_eq!(
        verdicts,
        [
            ("main-3".into(), Verdict::Succeeded),
            ("main-1".into(), Verdict::Succeeded),
            ("main-2".into(), Verdict::Superseded)
        ]
    );
}

#[test]
fn last_known_good_is_recorded_only_when_a_rollout_completes() {
    let (ports, b) = world();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    assert!(ports.state("dev", "web").unwrap().last_known_good.is_none());
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let good = ports.state("dev", "web").unwrap().last_known_good.unwrap();
    assert_eq!(good.image.tag.as_deref(), Some("main-1"));
}

#[test]
fn a_circuit_breaker_rollback_is_a_failure_and_keeps_last_known_good() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let good = ports.state("dev", "web").unwrap().last_known_good.unwrap();

    ports.with(|w| w.rollout = RolloutMode::Manual);
    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start");
    let t = tick_once(&ports, &b);
    assert_eq!(journal_words(&t), ["stabilizing->rolled back"]);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.last_known_good.unwrap(), good);
    assert_eq!(st.history[0].verdict, Verdict::RolledBack);
    let reason = st.history[0].reason.clone().unwrap();
    assert!(
        reason.contains("tasks failed to start") && reason.contains(&good.task_definition_arn),
        "{reason}"
    );
    let last = ports.with(|w| w.published.last().cloned().unwrap());
    assert_eq!(last.kind, NoticeKind::RolledBack);
    assert!(
        last.text().contains("Why: tasks failed to start"),
        "{}",
        last.text()
    );
}

#[test]
fn a_rollout_that_never_stabilizes_fails_after_the_timeout() {
    let (ports, b) = world();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.advance(Duration::minutes(29));
    tick_once(&ports, &b);
    assert!(ports.state("dev", "web").unwrap().in_flight.is_some());
    ports.advance(Duration::minutes(2));
    let t = tick_once(&ports, &b);
    assert_eq!(journal_words(&t), ["stabilizing->failed"]);
}

#[test]
fn semver_environments_never_step_back_to_a_late_hotfix() {
    let (ports, b) = world();
    ports.add_service("booking-prod", "web", INITIAL_TD);
    let t0 = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap();
    ports.push_image("booking/web", "1.3.0", 'a', t0);
    ports.push_image("booking/web", "1.2.1", 'b', t0 + Duration::minutes(1));
    // prod does not auto-deploy: a person asks for 1.3.0, then the tick must not pick 1.2.1.
    block_on(request_deploy(
        &ports,
        &b,
        &Target::new("prod", "web"),
        "1.3.0",
        "test",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    tick_once(&ports, &b);
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
    let st = ports.state("prod", "web").unwrap();
    assert_eq!(
        st.last_known_good.unwrap().image.tag.as_deref(),
        Some("1.3.0")
    );
}

#[test]
fn delete_and_failed_push_events_do_nothing() {
    let (ports, b) = world();
    for (field, value) in [("action-type", "DELETE"), ("result", "FAILURE")] {
        let mut e = push_event("e1", "main-1", 'a', 0);
        e["detail"][field] = json!(value);
        let r = send(&ports, &b, &e);
        assert!(r.ignored.is_some() && r.targets.is_empty(), "{r:?}");
    }
    assert!(ports.with(|w| w.calls.is_empty()), "no AWS call at all");
}

#[test]
fn malformed_and_unknown_events_are_errors_and_call_nothing() {
    let (ports, b) = world();
    let mut bad = push_event("e1", "main-1", 'a', 0);
    bad["detail"]["image-digest"] = json!("sha256:nope");
    let err = block_on(handle_event(&ports, &b, &bad, RunOptions::default())).unwrap_err();
    assert!(err.to_string().contains("image-digest"), "{err}");
    let err = block_on(handle_event(
        &ports,
        &b,
        &json!({"source": "aws.s3", "detail-type": "x"}),
        RunOptions::default(),
    ))
    .unwrap_err();
    assert!(err.to_string().contains("unrecognised"), "{err}");
    assert!(ports.with(|w| w.calls.is_empty()));
}

#[test]
fn a_dry_run_decides_but_writes_and_mutates_nothing() {
    let (ports, b) = world();
    let r = block_on(handle_event(
        &ports,
        &b,
        &push_event("e1", "main-1", 'a', 0),
        RunOptions {
            dry_run: true,
            ..Default::default()
        },
    ))
    .unwrap();
    assert!(matches!(r.targets[0].outcome, Outcome::Started { .. }));
    assert!(
        r.targets[0]
            .planned
            .iter()
            .any(|p| p.starts_with("RegisterTaskDefinition")),
        "{r:?}"
    );
    let calls = ports.with(|w| w.calls.clone());
    assert_eq!(calls, ["GetObject"], "only the read of the state document");
}

#[test]
fn a_missing_secret_parameter_fails_the_deployment_before_registering() {
    let (ports, b) = world();
    ports.with(|w| w.parameters = Some(Default::default()));
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(
        journal_words(&r),
        ["pending->registering", "registering->failed"]
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);
    let reason = ports.state("dev", "web").unwrap().history[0]
        .reason
        .clone()
        .unwrap();
    assert!(
        reason.contains("/booking/dev/database/password"),
        "{reason}"
    );
}

/// The parameters a release references are looked up (DescribeParameters) only when its config
/// version differs from the one the running release started its tasks with: an image push on
/// an unchanged config references exactly the parameters those tasks already resolved, so the
/// lookup would say nothing new (and a person's deploy stays within its budget of calls). A
/// config that names another parameter is checked again, and a missing one still fails the
/// release before anything is registered.
#[test]
fn only_a_release_that_changes_its_config_looks_its_secrets_up_again() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    assert_eq!(
        ports.count("DescribeParameters"),
        1,
        "the first release checks"
    );

    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    assert_eq!(ports.count("RegisterTaskDefinition"), 2);
    assert_eq!(
        ports.count("DescribeParameters"),
        1,
        "the same config: the running tasks resolved these parameters"
    );
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);

    let another = harbormaster_core::testing::CONFIG.replace(
        "secrets = { DATABASE_PASSWORD = \"database/password\" }",
        "secrets = { DATABASE_PASSWORD = \"database/password\", API_KEY = \"api/key\" }",
    );
    let v2 = harbormaster_core::testing::bundle_of(&another);
    ports.with(|w| w.parameters = Some(["/booking/dev/database/password".to_owned()].into()));
    tick_once(&ports, &v2);
    assert_eq!(
        ports.count("DescribeParameters"),
        2,
        "a new config is checked"
    );
    assert_eq!(
        ports.count("RegisterTaskDefinition"),
        2,
        "the missing parameter fails the release before registering"
    );
    let reason = ports.state("dev", "web").unwrap().history[0]
        .reason
        .clone()
        .unwrap_or_default();
    assert!(reason.contains("/booking/dev/api/key"), "{reason}");
}

#[test]
fn a_repush_of_an_image_whose_deployment_failed_is_not_deployed_again_by_itself() {
    let (ports, b) = world();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start");
    tick_once(&ports, &b);
    let r = send(&ports, &b, &push_event("e2", "main-1-retag", 'a', 0));
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::AlreadyAccepted && reason.words().ends_with("its last deployment rolled back")),
        "{r:?}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
    // A person can still retry it.
    ports.push_image("booking/web", "main-1", 'a', Utc::now());
    let again = block_on(request_deploy(
        &ports,
        &b,
        &Target::new("dev", "web"),
        "main-1",
        "ops",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(
        matches!(again.outcome, Outcome::Started { .. }),
        "{again:?}"
    );
}

#[test]
fn a_burst_of_pushes_settles_into_one_deployment_of_the_newest() {
    use harbormaster_core::memory::MemorySource;
    use harbormaster_core::testing::{CONFIG, WEB_TEMPLATE};
    let config = CONFIG.replace(
        "[agent]\nlease_seconds = 60\n",
        "[agent]\nlease_seconds = 60\nsettle_seconds = 30\n",
    );
    assert_ne!(config, CONFIG);
    let b = block_on(Bundle::load(&MemorySource(
        [
            ("harbormaster.toml".to_owned(), config),
            ("taskdefs/web.json".to_owned(), WEB_TEMPLATE.to_owned()),
        ]
        .into(),
    )))
    .unwrap();
    let (ports, _) = world();
    // b, then a (older, arrives later), then c (newest), then b again (a redelivery).
    for (id, fill, secs) in [("e-b", 'b', 60), ("e-a", 'a', 0), ("e-c", 'c', 120)] {
        let r = send(&ports, &b, &push_event(id, "main-x", fill, secs));
        let outcome = serde_json::to_value(&r.targets[0].outcome).unwrap();
        assert_ne!(outcome["outcome"], "started", "{id}: {outcome}");
        ports.advance(Duration::seconds(5));
    }
    send(&ports, &b, &push_event("e-b", "main-x", 'b', 60));
    assert!(
        ports.with(|w| w.revisions.is_empty()),
        "nothing starts while settling"
    );
    // Before the window (from the first push) ends, the tick waits.
    tick_once(&ports, &b);
    assert!(ports.with(|w| w.revisions.is_empty()));
    ports.advance(Duration::seconds(20));
    let r = tick_once(&ports, &b);
    assert!(
        journal_words(&r).contains(&"registering->updating".to_string()),
        "{:?}",
        journal_words(&r)
    );
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(ports.with(|w| w.revisions.len()), 1, "one deployment");
    // Newest first: c deployed; b replaced before it started; a older than b on arrival.
    let verdicts: Vec<Verdict> = st.history.iter().map(|h| h.verdict).collect();
    assert_eq!(
        verdicts,
        [Verdict::Succeeded, Verdict::Superseded, Verdict::Superseded]
    );
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    assert!(st.history[0]
        .image
        .digest
        .as_str()
        .ends_with(&"c".repeat(64)));
    // A settle window belongs to its pending release now: none waits, settling or otherwise.
    assert!(st.pending.is_none());
    assert!(service_td(&ports).ends_with(":1"));
}

/// A rolling deploy writes its state document twice, each a compare-and-swap that a crash
/// test boundary relies on: the intent to register (with its "started" notice claimed in the
/// same write, so a concurrent invocation never sends it too), and stabilizing (ECS's
/// deployment id, which the tick follows; the sent notice dropped with it). The intent to
/// update, once a third write, protects against no crash the registering intent does not: a
/// takeover finds the revision by its tag and checks the service before updating it
/// (issue 20; `crash.rs` kills the engine at every call, UpdateService included).
#[test]
fn a_rolling_deploy_writes_its_state_twice() {
    let (ports, b) = world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    ports.with(|w| w.calls.clear());
    let r = send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    assert!(
        matches!(r.targets[0].outcome, Outcome::Started { .. }),
        "{r:?}"
    );
    let calls = ports.with(|w| w.calls.clone());
    let writes = calls.iter().filter(|c| *c == "PutObject").count();
    assert_eq!(writes, 2, "{calls:?}");
    assert_eq!(ports.count("Publish"), 1, "its start, sent once");
}
