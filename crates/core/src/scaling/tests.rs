use super::*;
use chrono::TimeZone;

/// An SQS worker: 100 messages a task, 1 to 5 tasks.
pub(crate) fn policy() -> ScalingPolicy {
    ScalingPolicy {
        source: BacklogSource::Sqs {
            queue: "q".into(),
            in_flight: false,
        },
        per_task: 100.0,
        min: 1,
        max: 5,
        step: None,
        scale_in_cooldown: Duration::minutes(5),
        scale_out_cooldown: Duration::minutes(1),
        alert_after: Duration::minutes(10),
    }
}

fn t(min: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap() + Duration::minutes(min)
}

fn m(backlog: u64, desired: u32) -> Measured {
    Measured {
        backlog,
        desired,
        running: desired,
    }
}

#[test]
fn the_target_is_the_backlog_over_per_task_clamped() {
    let cases = [
        // (backlog, current, min, max, expected)
        (1000, 1, 1, 5, 5),
        (250, 1, 1, 5, 3),
        (0, 0, 0, 5, 0),
        (1, 0, 0, 5, 1), // wakes from zero
        (0, 3, 2, 5, 3), // wants 2, but not before the cooldown
        (100_000, 1, 1, 5, 5),
    ];
    for (i, (backlog, current, min, max, want)) in cases.into_iter().enumerate() {
        let p = ScalingPolicy {
            min,
            max,
            ..policy()
        };
        let (d, _) = decide(
            &p,
            &ScalingState::default(),
            m(backlog, current),
            false,
            t(0),
        );
        assert_eq!(d.desired, want, "case {i}: {d:?}");
    }
}

#[test]
fn zero_running_tasks_count_as_one_for_backlog_per_task() {
    let (d, _) = decide(
        &policy(),
        &ScalingState::default(),
        Measured {
            backlog: 40,
            desired: 0,
            running: 0,
        },
        false,
        t(0),
    );
    assert_eq!(d.backlog_per_task, 40.0);
    assert_eq!(d.desired, 1);
}

#[test]
fn scale_out_respects_the_step_limit_and_its_cooldown() {
    let p = ScalingPolicy {
        step: Some(2),
        max: 10,
        ..policy()
    };
    let (d, s) = decide(&p, &ScalingState::default(), m(1000, 1), false, t(0));
    assert_eq!((d.desired, d.target), (3, 10));
    let (d, s) = decide(&p, &s, m(1000, 3), false, t(0) + Duration::seconds(30));
    assert_eq!(d.desired, 3, "within the scale-out cooldown: {}", d.reason);
    let (d, _) = decide(&p, &s, m(1000, 3), false, t(2));
    assert_eq!(d.desired, 5);
}

#[test]
fn scale_in_waits_for_the_backlog_to_stay_low_and_a_flapping_backlog_never_scales_in() {
    let p = policy();
    let (d, s) = decide(&p, &ScalingState::default(), m(0, 5), false, t(0));
    assert_eq!(d.desired, 5, "{}", d.reason);
    let (d, s2) = decide(&p, &s, m(0, 5), false, t(4));
    assert_eq!(d.desired, 5);
    let (d, _) = decide(&p, &s2, m(0, 5), false, t(5));
    assert_eq!(d.desired, 1, "{}", d.reason);
    // Low, then high again, then low: the clock starts over.
    let (_, s) = decide(&p, &ScalingState::default(), m(0, 5), false, t(0));
    let (_, s) = decide(&p, &s, m(500, 5), false, t(3));
    let (d, s) = decide(&p, &s, m(0, 5), false, t(6));
    assert_eq!(d.desired, 5, "{}", d.reason);
    let (d, _) = decide(&p, &s, m(0, 5), false, t(11));
    assert_eq!(d.desired, 1);
}

#[test]
fn nothing_changes_while_a_deployment_is_in_flight() {
    let (d, _) = decide(&policy(), &ScalingState::default(), m(1000, 1), true, t(0));
    assert!(!d.changes());
    assert!(d.reason.contains("deployment"));
}

#[test]
fn at_max_with_a_growing_backlog_the_team_hears_once() {
    let p = policy();
    let (d, s) = decide(&p, &ScalingState::default(), m(900, 5), false, t(0));
    assert!(d.alert.is_none());
    let (d, s) = decide(&p, &s, m(1200, 5), false, t(11));
    assert!(
        d.alert.as_deref().unwrap().contains("maximum of 5"),
        "{d:?}"
    );
    let (d, s) = decide(&p, &s, m(1500, 5), false, t(20));
    assert!(d.alert.is_none(), "once");
    let (_, s) = decide(&p, &s, m(100, 5), false, t(21));
    assert!(!s.alerted && s.at_max_since.is_none());
}

#[test]
fn the_emf_line_names_the_metrics_and_dimensions() {
    let (d, _) = decide(&policy(), &ScalingState::default(), m(1000, 1), false, t(0));
    let v: serde_json::Value = serde_json::from_str(&emf_line("dev", "worker", &d, t(0))).unwrap();
    assert_eq!(
        v["_aws"]["CloudWatchMetrics"][0]["Namespace"],
        "Harbormaster"
    );
    assert_eq!(v["Backlog"], 1000);
    assert_eq!(v["DesiredCount"], 5);
    assert_eq!(v["Service"], "worker");
}
