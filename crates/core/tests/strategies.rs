//! Scenario tests for blue/green, canary and linear: the engine over in-memory ports with
//! virtual time. ECS is played by the test: it calls the lifecycle hook with the payload AWS
//! documents and sends "ECS Deployment State Change" events; the agent answers and records.

use chrono::{DateTime, Duration, Utc};
use futures::executor::block_on;
use serde_json::{json, Value};

use harbormaster_core::dispatch::{handle_event, record_approval, DispatchReport};
use harbormaster_core::machine::{HookStatus, Outcome};
use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::ports::StoppedTask;
use harbormaster_core::state::{GateStatus, Verdict};
use harbormaster_core::strategy::Stage;
use harbormaster_core::testing::scenario::{self, journal_words, send, CLUSTER, INITIAL_TD};
use harbormaster_core::testing::{bundle_of, push_event, NATIVE_OUTPUTS};
use harbormaster_core::{Bundle, RunOptions, Target};

const METRIC: &str = "AWS/ApplicationELB/HTTPCode_Target_5XX_Count";

fn config(strategy: &str, extra: &str) -> String {
    let shift = match strategy {
        "canary" => "canary = { percent = 10, interval_minutes = 5 }",
        "linear" => "linear = { percent = 25, interval_minutes = 2 }",
        _ => "",
    };
    format!(
        r#"
project = "booking"
state_bucket = "booking-state"
notification_topic = "arn:aws:sns:us-east-1:123456789012:booking-deployments"

[agent]
lease_seconds = 60

[environments.dev]
cluster = "booking-dev"

[services.web]
repository = "booking/web"
task_definition = "taskdefs/web.json"
strategy = "{strategy}"
bake_time_minutes = 10
{shift}

[services.web.load_balancer]
container = "web"
port = 8000
test_listener_rule = "arn:aws:elasticloadbalancing:us-east-1:123456789012:listener-rule/app/booking-dev/1/2/test"

[services.web.checks.errors]
stages = ["post_test_traffic_shift", "post_production_traffic_shift"]
threshold = 5
window_minutes = 5
max_inconclusive = 2

[[services.web.checks.errors.queries]]
id = "errors"
namespace = "AWS/ApplicationELB"
metric = "HTTPCode_Target_5XX_Count"
dimensions = {{ TargetGroup = "targetgroup/booking-${{env}}-web-green/1" }}
stat = "Sum"

[services.web.environments.dev]
follow = {{ regex = "^main-" }}
{extra}
"#
    )
}

fn world(strategy: &str, extra: &str) -> (MemoryPorts, Bundle) {
    let ports = scenario::ports();
    ports.with(|w| {
        w.rollout = RolloutMode::Manual;
        for (k, v) in NATIVE_OUTPUTS {
            w.outputs.insert(k.into(), v.into());
        }
    });
    (ports, bundle_of(&config(strategy, extra)))
}

/// The last UpdateService: what ECS was told, and the deployment it named in the hook details.
fn last_update(ports: &MemoryPorts) -> (String, String) {
    ports.with(|w| {
        let (_, td, d) = w.updates.last().expect("an UpdateService").clone();
        (td, d.0)
    })
}

/// The payload ECS sends the hook (AWS's documented shape), with the details the agent set.
fn hook(ports: &MemoryPorts, b: &Bundle, stage: &str) -> (HookStatus, String) {
    let (_, deployment) = last_update(ports);
    let payload = json!({
        "executionId": format!("exec-{stage}"),
        "lifecycleStage": stage,
        "resourceArn": "arn:aws:ecs:us-east-1:123456789012:service-deployment/booking-dev/web/abc",
        "executionDetails": {
            "serviceArn": "arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web",
            "targetServiceRevisionArn": "arn:aws:ecs:us-east-1:123456789012:service-revision/booking-dev/web/1",
            "testTrafficWeights": {},
            "productionTrafficWeights": {}
        },
        "hookDetails": {
            "harbormaster:environment": "dev",
            "harbormaster:service": "web",
            "harbormaster:deployment": deployment,
        }
    });
    let r = send(ports, b, &payload);
    let h = r.hook.expect("a hook answer");
    (h.hook_status, h.reason().to_owned())
}

fn ecs_event(id: &str, name: &str, ecs_id: &str, at: DateTime<Utc>, reason: &str) -> Value {
    json!({
        "version": "0", "id": id, "detail-type": "ECS Deployment State Change",
        "source": "aws.ecs", "account": "123456789012", "time": at.to_rfc3339(),
        "region": "us-east-1",
        "resources": ["arn:aws:ecs:us-east-1:123456789012:service/booking-dev/web"],
        "detail": {
            "eventType": if name.ends_with("FAILED") { "ERROR" } else { "INFO" },
            "eventName": name, "deploymentId": ecs_id,
            "updatedAt": at.to_rfc3339(), "reason": reason
        }
    })
}

fn measure(ports: &MemoryPorts, value: f64) {
    ports.with(|w| {
        let at = w.now - Duration::minutes(1);
        w.datapoints
            .entry(METRIC.into())
            .or_default()
            .push((at, value));
    });
}

fn approvals_asked(ports: &MemoryPorts) -> usize {
    ports.with(|w| {
        w.published
            .iter()
            .filter(|n| n.kind == NoticeKind::ApprovalNeeded)
            .count()
    })
}

fn ecs_id(ports: &MemoryPorts, b: &Bundle) -> String {
    let _ = b;
    ports
        .state("dev", "web")
        .and_then(|s| s.in_flight)
        .and_then(|d| d.phase.ecs_deployment_id().map(str::to_owned))
        .expect("the deployment has an ECS id")
}

fn words(reports: &[DispatchReport]) -> Vec<String> {
    reports.iter().flat_map(journal_words).collect()
}

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
        let id = ecs_id(&ports, &b);
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
    let first = ecs_id(&ports, &b);
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
    let ours = ecs_id(&ports, &b);
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

const APPROVAL: &str = r#"approval = { stage = "post_test_traffic_shift", timeout_minutes = 30 }"#;

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
            matches!(again.outcome, Outcome::Ignored { .. }),
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
    let first = ecs_id(&ports, &b);

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
    let id = ecs_id(&ports, &b);
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
        matches!(&early.targets[0].outcome, Outcome::Ignored { reason } if reason.contains("out of order"))
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
        matches!(&other.targets[0].outcome, Outcome::Ignored { reason } if reason.contains("ecs-svc/999"))
    );
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
        RunOptions { dry_run: true },
    ))
    .unwrap();
    assert_eq!(r.hook.unwrap().hook_status, HookStatus::InProgress);
    assert_eq!(ports.state("dev", "web"), before);
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
