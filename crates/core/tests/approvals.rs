//! Scenario tests for the approval gate and for ECS's own events during a native deployment:
//! approve, reject, time out, supersession at the next hook, duplicate and late events.

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::record_approval;
use harbormaster_core::machine::{HookStatus, Outcome, SkipKind};
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::native::*;
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{send, CLUSTER};
use harbormaster_core::{RunOptions, Target};

#[test]
fn an_approval_that_times_out_is_rejected() {
    let (ports, b) = world("blue_green", APPROVAL);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    measure(&ports, 0.0);
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::InProgress);
    assert!(
        reason.contains("harbormaster approve --env dev --service web"),
        "{reason}"
    );
    let asked = approvals_asked(&ports);
    assert_eq!(asked, 1, "the team is asked once");

    ports.advance(Duration::minutes(29));
    measure(&ports, 0.0);
    assert_eq!(
        hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT").0,
        HookStatus::InProgress
    );
    ports.advance(Duration::minutes(2));
    measure(&ports, 0.0);
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Failed);
    assert!(
        reason.contains("no decision within 30 min; rejected"),
        "{reason}"
    );
    let asked = approvals_asked(&ports);
    assert_eq!(asked, 1, "never asked twice");
}

#[test]
fn an_approval_lets_the_deployment_through_and_a_rejection_fails_it() {
    for approved in [true, false] {
        let (ports, b) = world("canary", APPROVAL);
        send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
        measure(&ports, 0.0);
        assert_eq!(
            hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT").0,
            HookStatus::InProgress
        );
        let r = block_on(record_approval(
            &ports,
            &b,
            &Target::new("dev", "web"),
            approved,
            "alice",
            Some("looked at the test listener".into()),
            RunOptions::default(),
        ))
        .unwrap();
        assert_eq!(r.outcome, Outcome::Progressed);
        // A second decision changes nothing.
        let again = block_on(record_approval(
            &ports,
            &b,
            &Target::new("dev", "web"),
            !approved,
            "bob",
            None,
            RunOptions::default(),
        ))
        .unwrap();
        assert!(
            matches!(again.outcome, Outcome::Refused { .. }),
            "{:?}",
            again.outcome
        );
        let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
        if approved {
            assert_eq!(status, HookStatus::Succeeded, "{reason}");
        } else {
            assert_eq!(status, HookStatus::Failed);
            assert!(
                reason.contains("rejected by alice: looked at the test listener"),
                "{reason}"
            );
        }
    }
}

#[test]
fn a_newer_push_during_bake_fails_the_current_at_its_next_hook_and_deploys_after() {
    let (ports, b) = world("canary", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    measure(&ports, 0.0);
    assert_eq!(
        hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT").0,
        HookStatus::Succeeded
    );
    let first = ecs_id(&ports);

    let r = send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    assert_eq!(r.targets[0].outcome, Outcome::Queued);
    let (status, reason) = hook(&ports, &b, "PRODUCTION_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Failed);
    assert!(
        reason.contains("supersession") && reason.contains("main-2"),
        "{reason}"
    );

    ports.fail_with_rollback(CLUSTER, "web", "lifecycle hook failed");
    let at = ports.with(|w| w.now);
    send(
        &ports,
        &b,
        &ecs_event("d1", "SERVICE_DEPLOYMENT_FAILED", &first, at, "hook failed"),
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::RolledBack);
    let next = st.in_flight.expect("the newer release started");
    assert_eq!(next.release.image.tag.as_deref(), Some("main-2"));
    assert_eq!(ports.with(|w| w.updates.len()), 2);
    // The new deployment is gated afresh.
    measure(&ports, 0.0);
    assert_eq!(
        hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT").0,
        HookStatus::Succeeded
    );
}

#[test]
fn duplicate_and_out_of_order_ecs_events_change_nothing() {
    let (ports, b) = world("blue_green", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let id = ecs_id(&ports);
    let t = ports.with(|w| w.now);
    let late = send(
        &ports,
        &b,
        &ecs_event(
            "p2",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            &id,
            t + Duration::seconds(20),
            "",
        ),
    );
    assert_eq!(late.targets[0].outcome, Outcome::Nothing);
    let early = send(
        &ports,
        &b,
        &ecs_event(
            "p1",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            &id,
            t + Duration::seconds(10),
            "",
        ),
    );
    assert!(
        matches!(&early.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::EcsEventOutOfOrder)
    );
    ports.complete(CLUSTER, "web");
    let done = ecs_event(
        "c1",
        "SERVICE_DEPLOYMENT_COMPLETED",
        &id,
        t + Duration::seconds(60),
        "",
    );
    send(&ports, &b, &done);
    let after = ports.state("dev", "web").unwrap();
    let published = ports.with(|w| w.published.len());
    let again = send(&ports, &b, &done);
    assert_eq!(again.targets[0].outcome, Outcome::Duplicate);
    let stale = send(
        &ports,
        &b,
        &ecs_event(
            "p3",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            &id,
            t + Duration::seconds(30),
            "",
        ),
    );
    assert!(matches!(stale.targets[0].outcome, Outcome::Ignored { .. }));
    let mut now = ports.state("dev", "web").unwrap();
    // Only the event ids remembered differ.
    now.processed_events = after.processed_events.clone();
    assert_eq!(now, after);
    assert_eq!(
        ports.with(|w| w.published.len()),
        published,
        "no second notification"
    );
    // Some other deployment's event (the rollback's own, say) is not this one's.
    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    let other = send(
        &ports,
        &b,
        &ecs_event("x1", "SERVICE_DEPLOYMENT_FAILED", "ecs-svc/999", t, ""),
    );
    assert!(
        matches!(&other.targets[0].outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::EcsEventOtherDeployment && reason.words().contains("ecs-svc/999"))
    );
}

#[test]
fn the_tick_waits_as_long_as_the_strategy_and_the_approval_may_take() {
    // stabilize_timeout_minutes is 30; bake 10 + canary 5 + approval 30 + check rounds allow more.
    let (ports, b) = world("canary", APPROVAL);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.advance(Duration::minutes(70));
    let r = block_on(harbormaster_core::dispatch::tick(
        &ports,
        &b,
        RunOptions::default(),
    ));
    assert!(
        !matches!(r.targets[0].outcome, Outcome::Finished { .. }),
        "still within what ECS may take: {:?}",
        r.targets[0].outcome
    );
    assert!(ports.state("dev", "web").unwrap().in_flight.is_some());
    ports.advance(Duration::minutes(20));
    let r = block_on(harbormaster_core::dispatch::tick(
        &ports,
        &b,
        RunOptions::default(),
    ));
    assert!(
        matches!(
            &r.targets[0].outcome,
            Outcome::Finished {
                verdict: Verdict::Failed,
                ..
            }
        ),
        "{:?}",
        r.targets[0].outcome
    );
}

/// After the agent failed a gate (or gave way to a newer release), ECS rolls the deployment
/// back and runs the TEST_TRAFFIC_SHIFT and PRODUCTION_TRAFFIC_SHIFT hooks again, the target
/// revision still green and production traffic back on blue: those calls are ECS's rollback and
/// are never stood in the way of. A call again at the stage that failed is a retry: FAILED again.
#[test]
fn the_rollback_after_a_failed_gate_or_a_supersession_is_let_through() {
    for cause in ["metric", "supersession"] {
        let (ports, b) = world("blue_green", "");
        send(&ports, &b, &push_event("e1", "main-1", 'a', 60));
        if cause == "metric" {
            measure(&ports, 9.0);
        } else {
            send(&ports, &b, &push_event("e2", "main-2", 'b', 120));
        }
        let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
        assert_eq!(status, HookStatus::Failed, "{cause}: {reason}");
        assert!(reason.contains(&format!("{cause} gate failed")), "{reason}");
        for stage in ["PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT"] {
            let (status, reason) = rollback_hook(&ports, &b, stage);
            assert_eq!(
                status,
                HookStatus::Succeeded,
                "{cause} at {stage}: {reason}"
            );
        }
        let (status, _) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
        assert_eq!(
            status,
            HookStatus::Failed,
            "{cause}: a retry of the failed call"
        );
    }
}

/// The supersession check runs at PRODUCTION_TRAFFIC_SHIFT, so that is where the gate fails;
/// ECS's rollback then calls PRODUCTION_TRAFFIC_SHIFT again with the same target (green) and
/// production traffic back on blue (the ECS guide's rollback payload). That call is the
/// rollback, answered SUCCEEDED; one with production still moving to green is a retry of the
/// failed call and fails again.
#[test]
fn a_rollback_at_the_stage_that_failed_is_told_from_a_retry_by_the_weights() {
    let (ports, b) = world("blue_green", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 60));
    send(&ports, &b, &push_event("e2", "main-2", 'b', 120));
    let (status, reason) = hook(&ports, &b, "PRODUCTION_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Failed, "{reason}");
    assert!(reason.contains("supersession gate failed"), "{reason}");

    let forward = serde_json::json!({
        "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1": 50,
        "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/0": 50
    });
    let (status, _) = hook_with(&ports, &b, "PRODUCTION_TRAFFIC_SHIFT", forward);
    assert_eq!(status, HookStatus::Failed, "a retry of the failed call");
    for stage in ["TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"] {
        let (status, reason) = rollback_hook(&ports, &b, stage);
        assert_eq!(status, HookStatus::Succeeded, "{stage}: {reason}");
        assert!(reason.contains("rolling"), "{reason}");
    }
}

/// Issue 33, item 6: ECS rolls a deployment back by itself (a deployment alarm during the bake,
/// the hook's timeout action) without the agent having failed a gate, and runs the
/// PRODUCTION_TRAFFIC_SHIFT and TEST_TRAFFIC_SHIFT hooks again ("Lifecycle hooks for Amazon ECS
/// service deployments": on a rollback ECS runs the hooks of those two stages). Those calls come
/// after the deployment reached a later stage, which a deployment going forward never does:
/// recognised before any gate, they pass — never FAILED by the supersession check a newer
/// release waiting would trip. (The old code knew a rollback call only after its own gate had
/// failed.)
#[test]
fn item_6_ecs_rolling_back_by_itself_meets_no_gate() {
    let (ports, b) = world("blue_green", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 60));
    measure(&ports, 0.0);
    for stage in ["POST_TEST_TRAFFIC_SHIFT", "POST_PRODUCTION_TRAFFIC_SHIFT"] {
        let (status, reason) = hook(&ports, &b, stage);
        assert_eq!(status, HookStatus::Succeeded, "{stage}: {reason}");
    }
    // A newer release waits: at a stage going forward, the supersession check would fail it.
    send(&ports, &b, &push_event("e2", "main-2", 'b', 120));
    for stage in ["PRODUCTION_TRAFFIC_SHIFT", "TEST_TRAFFIC_SHIFT"] {
        let (status, reason) = rollback_hook(&ports, &b, stage);
        assert_eq!(status, HookStatus::Succeeded, "{stage}: {reason}");
        assert!(reason.contains("rolling"), "{reason}");
    }
}
