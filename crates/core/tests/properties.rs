//! Property tests of the engine over in-memory ports: random sequences of pushes (duplicated,
//! out of order), ticks, ECS outcomes, clock jumps and crashes at random port calls. After every
//! step the state's invariants hold; at the end, with the faults gone, everything settles.

use std::collections::BTreeMap;

use chrono::{Duration, TimeZone, Utc};
use futures::executor::block_on;
use proptest::prelude::*;
use serde_json::json;

use harbormaster_core::dispatch::{handle_event, tick};
use harbormaster_core::image::ImageOrder;
use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::state::{PhaseKind, ServiceState, Verdict, PROCESSED_EVENTS_KEPT};
use harbormaster_core::template::TAG_DEPLOYMENT;
use harbormaster_core::testing::bundle;
use harbormaster_core::RunOptions;

const CLUSTER: &str = "booking-dev";

#[derive(Debug, Clone)]
enum Op {
    /// Event `id` announcing image `image` (its time grows with the image number).
    Push {
        id: u8,
        image: u8,
    },
    Tick,
    Complete,
    FailWithRollback,
    Advance {
        minutes: i64,
    },
    /// The next operation's invocation dies at its n-th port call.
    Crash {
        at: usize,
        executed: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..8, 0u8..5).prop_map(|(id, image)| Op::Push { id, image }),
        3 => Just(Op::Tick),
        2 => Just(Op::Complete),
        1 => Just(Op::FailWithRollback),
        1 => (0i64..8).prop_map(|minutes| Op::Advance { minutes }),
        1 => (0usize..8, any::<bool>()).prop_map(|(at, executed)| Op::Crash { at, executed }),
    ]
}

fn push_event(id: u8, image: u8) -> serde_json::Value {
    let fill = (b'a' + image) as char;
    let t = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap() + Duration::minutes(image.into());
    json!({
        "version": "0", "id": format!("e{id}-{image}"), "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": "123456789012", "time": t.to_rfc3339(), "region": "us-east-1", "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "booking/web",
          "image-digest": format!("sha256:{}", fill.to_string().repeat(64)),
          "action-type": "PUSH", "image-tag": format!("main-{image}")}
    })
}

fn check_invariants(
    ports: &MemoryPorts,
    previous: Option<&ServiceState>,
) -> Result<(), TestCaseError> {
    let Some(st) = ports.state("dev", "web") else {
        return Ok(());
    };
    if let Some(d) = &st.in_flight {
        match d.phase.kind() {
            PhaseKind::Registering => prop_assert!(d.task_definition_arn().is_none()),
            PhaseKind::Migrating | PhaseKind::Updating | PhaseKind::Stabilizing => {
                prop_assert!(d.task_definition_arn().is_some())
            }
        }
    }
    // A pending release waits only behind one in flight.
    prop_assert!(
        st.pending.is_none() || st.in_flight.is_some(),
        "pending without in flight: {st:?}"
    );
    // The last known good is a revision that succeeded.
    if let Some(good) = &st.last_known_good {
        let ok = st.history.iter().any(|h| {
            h.verdict == Verdict::Succeeded
                && h.task_definition_arn.as_ref() == Some(&good.task_definition_arn)
        });
        prop_assert!(
            ok || st.history.len() >= 25,
            "last known good without success: {st:?}"
        );
    }
    prop_assert!(st.processed_events.len() <= PROCESSED_EVENTS_KEPT);
    let mut ids: Vec<_> = st.processed_events.iter().collect();
    ids.sort();
    ids.dedup();
    prop_assert_eq!(ids.len(), st.processed_events.len());
    prop_assert!(st.history.len() <= 25);
    // The watermark never moves back.
    if let (Some(prev), Some(now)) = (
        previous.and_then(|p| p.newest_accepted.as_ref()),
        &st.newest_accepted,
    ) {
        prop_assert!(
            ImageOrder::PushTime.compare(now, prev) != std::cmp::Ordering::Less,
            "watermark moved back"
        );
    }
    // One revision per deployment, whatever crashed where.
    let mut per_deployment: BTreeMap<String, usize> = BTreeMap::new();
    ports.with(|w| {
        for r in &w.revisions {
            let id = r.body["tags"]
                .as_array()
                .and_then(|t| t.iter().find(|t| t["key"] == TAG_DEPLOYMENT))
                .and_then(|t| t["value"].as_str())
                .unwrap_or("")
                .to_owned();
            *per_deployment.entry(id).or_default() += 1;
        }
    });
    for (id, n) in per_deployment {
        prop_assert_eq!(n, 1, "deployment {} registered {} revisions", id, n);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_and_everything_settles(ops in proptest::collection::vec(op(), 1..40)) {
        let ports = MemoryPorts::new(Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap());
        ports.add_service(CLUSTER, "web", "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:0");
        ports.add_service("booking-prod", "web", "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-prod-web:0");
        ports.with(|w| w.rollout = RolloutMode::Manual);
        let b = bundle();
        let mut previous = None;
        for op in ops {
            match op {
                Op::Push { id, image } => {
                    let e = push_event(id, image);
                    harbormaster_core::testing::scenario::stored(&ports, &e);
                    let _ = block_on(handle_event(&ports, &b, &e, RunOptions::default()));
                }
                Op::Tick => {
                    block_on(tick(&ports, &b, RunOptions::default()));
                }
                Op::Complete => ports.complete(CLUSTER, "web"),
                Op::FailWithRollback => ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start"),
                Op::Advance { minutes } => ports.advance(Duration::minutes(minutes)),
                Op::Crash { at, executed } => {
                    ports.with(|w| w.crash_at = Some((at, executed)));
                    continue;
                }
            }
            ports.revive();
            check_invariants(&ports, previous.as_ref())?;
            previous = ports.state("dev", "web");
        }

        // Faults gone, time passes, ECS finishes what it was doing: everything settles.
        ports.revive();
        for _ in 0..12 {
            ports.advance(Duration::minutes(2));
            ports.complete(CLUSTER, "web");
            block_on(tick(&ports, &b, RunOptions::default()));
        }
        check_invariants(&ports, previous.as_ref())?;
        if let Some(st) = ports.state("dev", "web") {
            prop_assert!(st.in_flight.is_none() && st.pending.is_none(), "did not settle: {st:?}");
            // Notifications are delayed by crashes, never lost.
            prop_assert!(st.outbox.is_empty(), "outbox not drained: {:?}", st.outbox);
            let published: Vec<String> = ports.with(|w| w.published.iter().map(|n| n.id.clone()).collect());
            for h in st.history.iter().filter(|h| h.deployment_id.is_some()) {
                let id = h.deployment_id.as_ref().unwrap();
                let word = match h.verdict {
                    Verdict::Succeeded => "succeeded",
                    Verdict::RolledBack => "rolled_back",
                    _ => "failed",
                };
                prop_assert!(published.contains(&format!("{id}/started")), "{id} started unannounced");
                prop_assert!(published.contains(&format!("{id}/{word}")), "{id} {word} unannounced");
            }
            let service_td = ports.with(|w| w.services[&(CLUSTER.to_string(), "web".to_string())].task_definition.clone());
            if let Some(last) = st.history.iter().find(|h| h.deployment_id.is_some()) {
                if last.verdict == Verdict::Succeeded {
                    prop_assert_eq!(Some(&service_td), last.task_definition_arn.as_ref());
                    prop_assert_eq!(st.last_known_good.map(|g| g.task_definition_arn), Some(service_td));
                }
            }
        }
    }
}
