//! Scenario tests for blue/green, canary and linear: the engine over in-memory ports with
//! virtual time. ECS is played by the test: it calls the lifecycle hook with the payload AWS
//! documents and sends "ECS Deployment State Change" events; the agent answers and records.

use chrono::Duration;
use futures::executor::block_on;
use serde_json::json;

use harbormaster_core::dispatch::handle_event;
use harbormaster_core::machine::{HookStatus, Outcome};
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::ports::StoppedTask;
use harbormaster_core::state::{GateStatus, Verdict};
use harbormaster_core::strategy::Stage;
use harbormaster_core::testing::native::*;
use harbormaster_core::testing::push_event;
use harbormaster_core::testing::scenario::{send, CLUSTER, INITIAL_TD};
use harbormaster_core::RunOptions;

#[test]
fn each_strategy_with_every_gate_passing_is_journaled_stage_by_stage_and_succeeds() {
    for strategy in ["blue_green", "canary", "linear"] {
        let (ports, b) = world(strategy, "");
        let mut reports = vec![send(&ports, &b, &push_event("e1", "main-1", 'a', 0))];

        // What ECS was asked for: the native strategy with both target groups and the hook.
        let target = ports.with(|w| w.updates[0].0.clone());
        let n = target.native.expect("native settings sent");
        assert_eq!(n.strategy.ecs_name(), strategy.to_uppercase());
        assert_eq!(n.bake_time_minutes, 10);
        assert_eq!(n.canary.is_some(), strategy == "canary", "{strategy}");
        assert_eq!(n.linear.is_some(), strategy == "linear", "{strategy}");
        assert_eq!(
            (n.target_group.as_str(), n.alternate_target_group.as_str()),
            ("arn:tg/web-blue", "arn:tg/web-green")
        );
        assert_eq!(n.production_listener_rule, "arn:rule/web-prod");
        assert!(n.test_listener_rule.is_some());
        assert_eq!(
            (n.hook_function.as_str(), n.role.as_str()),
            ("arn:lambda:ecs-hook", "arn:role/infra")
        );
        assert_eq!(
            n.hook_stages,
            [
                Stage::PostTestTrafficShift,
                Stage::ProductionTrafficShift,
                Stage::PostProductionTrafficShift
            ]
        );

        measure(&ports, 1.0);
        for stage in [
            "POST_TEST_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT",
        ] {
            let (status, reason) = hook(&ports, &b, stage);
            assert_eq!(
                status,
                HookStatus::Succeeded,
                "{strategy} {stage}: {reason}"
            );
        }
        let id = ecs_id(&ports);
        ports.complete(CLUSTER, "web");
        let at = ports.with(|w| w.now);
        reports.push(send(
            &ports,
            &b,
            &ecs_event("d1", "SERVICE_DEPLOYMENT_COMPLETED", &id, at, "done"),
        ));
        let st = ports.state("dev", "web").unwrap();
        assert!(st.in_flight.is_none(), "{strategy}");
        assert_eq!(st.history[0].verdict, Verdict::Succeeded, "{strategy}");
        let gates = &st.history[0].gates;
        assert_eq!(
            gates.len(),
            2,
            "{strategy}: the check at two stages: {gates:?}"
        );
        assert!(gates
            .iter()
            .all(|g| g.status == GateStatus::Passed && g.value == Some(1.0)));
        assert_eq!(
            st.last_known_good.as_ref().map(|g| g.image.tag.as_deref()),
            Some(Some("main-1"))
        );
        assert_eq!(
            words(&reports),
            [
                "pending->registering",
                "registering->updating",
                "updating->stabilizing",
                "stabilizing->succeeded"
            ],
            "{strategy}: the journal of the push and of ECS's event"
        );
    }
}

#[test]
fn the_hook_journals_each_stage_it_gates_in_order() {
    let (ports, b) = world("canary", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    measure(&ports, 0.0);
    let (_, deployment) = last_update(&ports);
    let mut journal = Vec::new();
    for stage in [
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    ] {
        let payload = json!({
            "executionId": "x", "lifecycleStage": stage,
            "executionDetails": {
                "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web",
                "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1"
            },
            "hookDetails": {"harbormaster:environment": "dev", "harbormaster:service": "web", "harbormaster:deployment": deployment}
        });
        journal.extend(words(&[send(&ports, &b, &payload)]));
    }
    assert_eq!(
        journal,
        [
            "stabilizing->POST_TEST_TRAFFIC_SHIFT",
            "POST_TEST_TRAFFIC_SHIFT->POST_TEST_TRAFFIC_SHIFT passed",
            "POST_TEST_TRAFFIC_SHIFT->PRODUCTION_TRAFFIC_SHIFT",
            "PRODUCTION_TRAFFIC_SHIFT->PRODUCTION_TRAFFIC_SHIFT passed",
            "PRODUCTION_TRAFFIC_SHIFT->POST_PRODUCTION_TRAFFIC_SHIFT",
            "POST_PRODUCTION_TRAFFIC_SHIFT->POST_PRODUCTION_TRAFFIC_SHIFT passed",
        ]
    );
}

#[test]
fn a_metric_breach_at_the_second_stage_fails_there_and_the_rollback_notice_says_why() {
    let (ports, b) = world("linear", "");
    send(&ports, &b, &push_event("e0", "main-0", '0', 0));
    measure(&ports, 0.0);
    for stage in [
        "POST_TEST_TRAFFIC_SHIFT",
        "PRODUCTION_TRAFFIC_SHIFT",
        "POST_PRODUCTION_TRAFFIC_SHIFT",
    ] {
        assert_eq!(hook(&ports, &b, stage).0, HookStatus::Succeeded);
    }
    let first = ecs_id(&ports);
    ports.complete(CLUSTER, "web");
    let t0 = ports.with(|w| w.now);
    send(
        &ports,
        &b,
        &ecs_event("d0", "SERVICE_DEPLOYMENT_COMPLETED", &first, t0, ""),
    );
    let good = ports.state("dev", "web").unwrap().last_known_good.unwrap();

    ports.advance(Duration::minutes(30));
    send(&ports, &b, &push_event("e1", "main-1", 'a', 60));
    measure(&ports, 2.0);
    let (status, _) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Succeeded);
    assert_eq!(
        hook(&ports, &b, "PRODUCTION_TRAFFIC_SHIFT").0,
        HookStatus::Succeeded
    );
    measure(&ports, 9.0);
    let (status, reason) = hook(&ports, &b, "POST_PRODUCTION_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Failed);
    assert!(
        reason.contains("POST_PRODUCTION_TRAFFIC_SHIFT")
            && reason.contains("measured 9")
            && reason.contains("at most 5"),
        "{reason}"
    );
    // ECS asks again (a retry): the same answer.
    assert_eq!(
        hook(&ports, &b, "POST_PRODUCTION_TRAFFIC_SHIFT").0,
        HookStatus::Failed
    );

    // ECS rolls back and reports it; a task had crashed too.
    let ours = ecs_id(&ports);
    ports.with(|w| {
        w.stopped.push(StoppedTask {
            task_arn: "arn:aws:ecs:us-east-1:123456789012:task/booking-dev/0123abcd".into(),
            stopped_reason: Some("Essential container in task exited".into()),
            containers: vec![("web".into(), Some(137), Some("OutOfMemoryError".into()))],
        })
    });
    ports.fail_with_rollback(CLUSTER, "web", "hook failed");
    let at = ports.with(|w| w.now);
    let r = send(
        &ports,
        &b,
        &ecs_event(
            "d1",
            "SERVICE_DEPLOYMENT_FAILED",
            &ours,
            at,
            "ECS deployment failed: lifecycle hook failed",
        ),
    );
    assert!(
        matches!(
            &r.targets[0].outcome,
            Outcome::Finished {
                verdict: Verdict::RolledBack,
                ..
            }
        ),
        "{:?}",
        r.targets[0].outcome
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::RolledBack);
    assert_eq!(
        st.last_known_good.as_ref(),
        Some(&good),
        "last known good stays"
    );
    let notice = ports.with(|w| w.published.last().cloned().unwrap());
    assert_eq!(notice.kind, NoticeKind::RolledBack);
    let why = notice.reason.unwrap();
    for part in [
        "metric gate failed at POST_PRODUCTION_TRAFFIC_SHIFT",
        "measured 9",
        "lifecycle hook failed",
        "web exited 137 (OutOfMemoryError)",
        "the service is back on",
    ] {
        assert!(why.contains(part), "`{part}` missing from: {why}");
    }
}

#[test]
fn an_unmeasurable_check_waits_then_fails_and_never_passes() {
    let (ports, b) = world("blue_green", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    // No datapoints at all: inconclusive, asked again, until max_inconclusive (2) is exceeded.
    for round in 1..=2 {
        let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
        assert_eq!(status, HookStatus::InProgress, "round {round}: {reason}");
        assert!(reason.contains("no datapoints"), "{reason}");
        ports.advance(Duration::seconds(30));
    }
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Failed, "{reason}");
    assert!(
        reason.contains("could not be measured in 3 rounds"),
        "{reason}"
    );
    let gates = ports.state("dev", "web").unwrap().in_flight.unwrap().gates;
    assert_eq!(gates[0].status, GateStatus::Failed);
    assert_eq!(gates[0].inconclusive, 3);
}

#[test]
fn a_cloudwatch_error_is_inconclusive_not_a_failure_and_data_afterwards_passes() {
    let (ports, b) = world("blue_green", "");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.with(|w| {
        w.faults.push_back((
            "GetMetricData".into(),
            harbormaster_core::ports::PortError::new(
                harbormaster_core::ports::ErrorKind::Throttled,
                "GetMetricData",
                "Rate exceeded",
            ),
        ))
    });
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::InProgress);
    assert!(reason.contains("Rate exceeded"), "{reason}");
    measure(&ports, 3.0);
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Succeeded, "{reason}");
}

#[test]
fn a_hook_for_a_rollback_or_a_revision_from_elsewhere_is_not_gated() {
    let (ports, b) = world("blue_green", APPROVAL);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    // ECS says the target revision runs the old task definition: a rollback's hook.
    ports.with(|w| {
        w.service_revisions.insert(
            "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1".into(),
            INITIAL_TD.into(),
        )
    });
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Succeeded, "{reason}");
    assert!(reason.contains("rollback"), "{reason}");
    // No in-flight deployment: nothing to gate.
    let (ports, b) = world("blue_green", APPROVAL);
    ports.with(|w| {
        w.updates.push((
            b.service_target("dev", "web").unwrap(),
            INITIAL_TD.into(),
            harbormaster_core::state::DeploymentId("someone-else".into()),
        ))
    });
    let (status, reason) = hook(&ports, &b, "POST_TEST_TRAFFIC_SHIFT");
    assert_eq!(status, HookStatus::Succeeded, "{reason}");
}

#[test]
fn a_missing_second_target_group_fails_the_deployment_before_any_mutating_call() {
    let (ports, b) = world("blue_green", "");
    ports.with(|w| {
        w.outputs
            .remove("/booking/dev/outputs/target-groups/web/green");
    });
    let r = send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert!(
        matches!(
            r.targets[0].outcome,
            Outcome::Finished {
                verdict: Verdict::Failed,
                ..
            }
        ),
        "{:?}",
        r.targets[0].outcome
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    let why = st.history[0].reason.clone().unwrap();
    assert!(
        why.contains("load_balancer.alternate_target_group")
            && why.contains("target-groups/web/green"),
        "{why}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);
    assert_eq!(ports.count("UpdateService"), 0);
}

#[test]
fn a_hook_dry_run_decides_but_records_nothing() {
    let (ports, b) = world("blue_green", APPROVAL);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let before = ports.state("dev", "web");
    let (_, deployment) = last_update(&ports);
    let payload = json!({
        "executionId": "x", "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "executionDetails": {
            "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web",
            "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1"
        },
        "hookDetails": {"harbormaster:deployment": deployment}
    });
    let r = block_on(handle_event(
        &ports,
        &b,
        &payload,
        RunOptions {
            dry_run: true,
            ..Default::default()
        },
    ))
    .unwrap();
    assert_eq!(r.hook.unwrap().hook_status, HookStatus::InProgress);
    assert_eq!(ports.state("dev", "web"), before);
}

/// For canary and linear, ECS calls PRODUCTION_TRAFFIC_SHIFT at every traffic step (ECS guide,
/// "Lifecycle hooks for Amazon ECS service deployments"). What that means here, decided:
/// - checks at that stage run at every step, each against the window before it;
/// - the inconclusive counter counts unmeasured rounds in a row across steps, and a
///   measurement resets it, so a gap at one step does not add to a gap at another;
/// - the approval is asked once per deployment: approved at the first step, later steps
///   pass without asking again; a breach at a later step still fails the deployment.
#[test]
fn each_traffic_step_runs_the_checks_and_the_approval_is_asked_once() {
    use harbormaster_core::dispatch::record_approval;
    use harbormaster_core::testing::bundle_of;
    use harbormaster_core::Target;

    let approval = r#"approval = { stage = "production_traffic_shift", timeout_minutes = 60 }"#;
    let (ports, _) = world("linear", approval);
    let b = bundle_of(&config("linear", approval).replace(
        r#"stages = ["post_test_traffic_shift", "post_production_traffic_shift"]"#,
        r#"stages = ["production_traffic_shift"]"#,
    ));
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let green = "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1";
    let blue = "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/0";
    let step = |ports: &_, percent: f64| {
        hook_with(
            ports,
            &b,
            "PRODUCTION_TRAFFIC_SHIFT",
            json!({ green: percent, blue: 100.0 - percent }),
        )
    };

    // Step 1: measured and passing, then the approval is asked.
    measure(&ports, 0.0);
    assert_eq!(step(&ports, 0.0).0, HookStatus::InProgress);
    assert_eq!(approvals_asked(&ports), 1);
    let approved = block_on(record_approval(
        &ports,
        &b,
        &Target::new("dev", "web"),
        true,
        "ops@example.com",
        None,
        RunOptions::default(),
    ));
    assert!(approved.is_ok());
    measure(&ports, 0.0);
    assert_eq!(step(&ports, 0.0).0, HookStatus::Succeeded);

    // Step 2, two minutes on: nothing measured yet in its window; the counter starts afresh
    // (round 1 of 3), and a measurement then passes without asking anyone again.
    ports.advance(Duration::minutes(7));
    let (status, reason) = step(&ports, 25.0);
    assert_eq!(status, HookStatus::InProgress, "{reason}");
    assert!(reason.contains("round 1 of 3"), "{reason}");
    measure(&ports, 1.0);
    assert_eq!(step(&ports, 25.0).0, HookStatus::Succeeded);
    assert_eq!(approvals_asked(&ports), 1, "asked once per deployment");

    // Step 3: a breach fails the deployment even though it was approved.
    ports.advance(Duration::minutes(2));
    measure(&ports, 9.0);
    let (status, reason) = step(&ports, 50.0);
    assert_eq!(status, HookStatus::Failed);
    assert!(
        reason.contains("metric gate failed at PRODUCTION_TRAFFIC_SHIFT"),
        "{reason}"
    );
}

/// Rolling in dev, canary in prod (issue 17, point 7): each environment's UpdateService carries
/// its own strategy — none of the native settings in dev, the canary in prod.
#[test]
fn each_environment_deploys_with_its_own_strategy() {
    use harbormaster_core::dispatch::request_deploy;
    use harbormaster_core::strategy::Strategy;
    use harbormaster_core::testing::scenario;
    use harbormaster_core::testing::{bundle_of, CONFIG, NATIVE_OUTPUTS};
    use harbormaster_core::Target;

    let ports = scenario::ports();
    ports.add_service("booking-prod", "web", INITIAL_TD);
    ports.with(|w| {
        for (k, v) in NATIVE_OUTPUTS {
            w.outputs.insert(k.replace("/dev/", "/prod/"), v.into());
        }
    });
    let b = bundle_of(&CONFIG.replace(
        "[services.web.environments.prod]\n",
        "[services.web.environments.prod]\nstrategy = \"canary\"\ncanary = { percent = 10, interval_minutes = 5 }\nload_balancer = { container = \"web\", port = 8000 }\n",
    ));
    let pushed = chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 23, 11, 0, 0).unwrap();
    let image = ports.push_image("booking/web", "main-1", 'a', pushed);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(image.tag.as_deref(), Some("main-1"));
    let r = block_on(request_deploy(
        &ports,
        &b,
        &Target::new("prod", "web"),
        "main-1",
        "alice",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
    let strategies: Vec<(String, Option<Strategy>)> = ports.with(|w| {
        (w.updates.iter())
            .map(|(t, _, _)| (t.environment.clone(), t.native.as_ref().map(|n| n.strategy)))
            .collect()
    });
    assert_eq!(
        strategies,
        [
            ("dev".into(), None),
            ("prod".into(), Some(Strategy::Canary))
        ]
    );
}
