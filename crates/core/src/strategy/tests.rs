//! The strategies' table tests.

use super::*;

fn native() -> NativeSettings {
    NativeSettings {
        strategy: Strategy::Canary,
        bake_time_minutes: 5,
        canary: Some(Shift {
            percent: 10.0,
            interval_minutes: 3,
        }),
        linear: None,
        load_balancer: LoadBalancerSettings {
            container: "web".into(),
            port: 8000,
            ..Default::default()
        },
    }
}

fn outputs() -> BTreeMap<String, String> {
    [
        ("target-groups/web/blue", "arn:tg/blue"),
        ("target-groups/web/green", "arn:tg/green"),
        ("production-rules/web", "arn:rule/prod"),
        ("roles/ecs-infrastructure", "arn:role/infra"),
        (HOOK_FUNCTION_OUTPUT, "arn:lambda:hook"),
        (HOOK_ROLE_OUTPUT, "arn:role/hook"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[test]
fn outputs_fill_what_the_config_leaves_out() {
    let d = NativeDeployment::resolve(
        "web",
        &native(),
        &Gates::default(),
        (None, None),
        30,
        &outputs(),
    )
    .unwrap();
    assert_eq!(d.alternate_target_group, "arn:tg/green");
    assert_eq!(d.hook_function, "arn:lambda:hook");
    assert_eq!(d.hook_stages, vec![Stage::ProductionTrafficShift]);
    assert_eq!(d.test_listener_rule, None);
}

#[test]
fn every_missing_piece_is_named() {
    let mut o = outputs();
    o.remove("target-groups/web/green");
    o.remove(HOOK_ROLE_OUTPUT);
    let gates = Gates {
        approval: Some(ApprovalGate {
            stage: Stage::PostTestTrafficShift,
            timeout_minutes: 10,
            on_timeout: OnTimeout::Reject,
        }),
        ..Default::default()
    };
    let err =
        NativeDeployment::resolve("web", &native(), &gates, (None, None), 30, &o).unwrap_err();
    assert_eq!(
        err.missing,
        [
            Missing::LoadBalancer {
                key: "alternate_target_group",
                output: "target-groups/web/green".into()
            },
            Missing::Agent {
                key: "hook_role_arn",
                output: HOOK_ROLE_OUTPUT
            },
            Missing::TestListenerFor(Stage::PostTestTrafficShift),
        ]
    );
    let said = err.to_string();
    assert!(
        said.starts_with("canary deployment of `web` cannot start; missing: `load_balancer.alternate_target_group`"),
        "{said}"
    );
}

fn metric_check() -> MetricCheck {
    MetricCheck {
        name: "x".into(),
        stages: vec![Stage::PostProductionTrafficShift],
        fail_when: Direction::Above,
        threshold: 5.0,
        window_minutes: 5,
        max_inconclusive: 3,
        value: "v".into(),
        queries: vec![],
    }
}

#[test]
fn worst_datapoint_decides_by_direction() {
    let mut c = metric_check();
    assert_eq!(c.worst(&[1.0, 7.0, 2.0]), Some(7.0));
    assert!(c.breached(7.0));
    c.fail_when = Direction::Below;
    assert_eq!(c.worst(&[1.0, 7.0, f64::NAN]), Some(1.0));
    assert!(c.breached(1.0));
    assert_eq!(c.worst(&[]), None);
}

/// ECS's API reference, LinearConfiguration `stepBakeTimeInMinutes`: "This bake time is not
/// applied after reaching 100 percent traffic." Shifting 25 % at a time is four shifts and three
/// step bakes; 30 % is four shifts (30, 60, 90, 100) and three bakes too. The canary waits once.
#[test]
fn the_time_budget_counts_the_bakes_ecs_makes() {
    let gates = Gates::default();
    let mut linear = native();
    linear.strategy = Strategy::Linear;
    linear.canary = None;
    let cases = [
        (25.0, 2, 3 * 2),
        (30.0, 2, 3 * 2),
        (100.0, 7, 0),
        (3.0, 1, 33),
    ];
    for (percent, interval_minutes, bakes) in cases {
        linear.linear = Some(Shift {
            percent,
            interval_minutes,
        });
        let want = i64::from(linear.bake_time_minutes) + bakes;
        assert_eq!(linear.extra_minutes(&gates, 30), want, "{percent} %");
    }
    assert_eq!(native().extra_minutes(&gates, 30), 5 + 3);
}

/// ECS's default hook timeout (1,440 minutes, then ROLLBACK) would decide a week-long approval
/// for the agent: the hook is registered with the agent's own longest wait at one stage, plus
/// a margin (DeploymentLifecycleHookTimeoutConfiguration, ECS API reference).
#[test]
fn the_hook_timeout_covers_the_longest_wait_at_one_stage() {
    let check = |stage, max_inconclusive| MetricCheck {
        stages: vec![stage],
        max_inconclusive,
        ..metric_check()
    };
    let approval = |timeout_minutes| ApprovalGate {
        stage: Stage::PostProductionTrafficShift,
        timeout_minutes,
        on_timeout: OnTimeout::Approve,
    };
    // Nothing gated: only the supersession check at production traffic shift, one answer.
    assert_eq!(Gates::default().hook_timeout_minutes(30), 15);
    // 4 rounds of 30 s at one stage = 2 minutes; a check at another stage does not add up.
    let checks = Gates {
        checks: vec![
            check(Stage::PostProductionTrafficShift, 3),
            check(Stage::ProductionTrafficShift, 1),
        ],
        approval: None,
    };
    assert_eq!(checks.hook_timeout_minutes(30), 2 + 15);
    // The approval and the checks at its stage wait one after the other.
    let both = Gates {
        approval: Some(approval(10_080)),
        ..checks
    };
    assert_eq!(both.hook_timeout_minutes(30), 10_080 + 2 + 15);
    let d =
        NativeDeployment::resolve("web", &native(), &both, (None, None), 30, &outputs()).unwrap();
    assert_eq!(d.hook_timeout_minutes, 10_097);
}
