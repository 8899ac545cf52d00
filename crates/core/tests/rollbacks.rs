//! Rollbacks a person asks for and the ones alarms make: to the release before or a named
//! revision, never to a release marked bad, and never losing the rollback target to a burst of
//! skipped releases. The engine over in-memory ports with virtual time.

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::request_rollback;
use harbormaster_core::machine::{Outcome, Refusal};
use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::ports::{ErrorKind, PortError};
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::scenario::{self, now, send, service_td, tick_once, CLUSTER};
use harbormaster_core::testing::{bundle_of, push_event, CONFIG};
use harbormaster_core::{Bundle, RunOptions, Target, TargetReport};

mod common;

use common::*;

/// What `harbormaster rollback --dry-run` of dev's web, by alice, would do.
fn rollback_plan(ports: &MemoryPorts, b: &Bundle) -> TargetReport {
    block_on(request_rollback(
        ports,
        b,
        &Target::new("dev", "web"),
        None,
        false,
        "alice",
        RunOptions {
            dry_run: true,
            ..Default::default()
        },
    ))
    .unwrap()
}

#[test]
fn a_person_rolls_back_to_the_release_before_or_to_a_named_revision() {
    let (ports, b) = world();
    let v1 = release(&ports, &b, 1, 'a');
    let v2 = release(&ports, &b, 2, 'b');
    release(&ports, &b, 3, 'c');
    let dry = rollback_plan(&ports, &b);
    assert!(dry.planned.iter().any(|p| p.contains(&v2)), "{dry:?}");
    let r = block_on(request_rollback(
        &ports,
        &b,
        &Target::new("dev", "web"),
        None,
        false,
        "alice",
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }));
    assert_eq!(service_td(&ports), v2);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let rev = v1.rsplit(':').next().unwrap().to_owned();
    let r = block_on(request_rollback(
        &ports,
        &b,
        &Target::new("dev", "web"),
        Some(rev),
        false,
        "alice",
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
    assert_eq!(service_td(&ports), v1);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let r = block_on(request_rollback(
        &ports,
        &b,
        &Target::new("dev", "web"),
        Some("999".into()),
        false,
        "alice",
        RunOptions::default(),
    ))
    .unwrap();
    assert!(
        matches!(
            &r.outcome,
            Outcome::Refused {
                reason: Refusal::NotARevisionThatRan { .. }
            }
        ),
        "{r:?}"
    );

    // v3 was marked bad by the first rollback: refused, unless forced (issue 16, point 1).
    let v3 = ports.with(|w| w.revisions[2].arn.clone());
    for force in [false, true] {
        let r = block_on(request_rollback(
            &ports,
            &b,
            &Target::new("dev", "web"),
            Some(v3.clone()),
            force,
            "alice",
            RunOptions::default(),
        ))
        .unwrap();
        match force {
            false => assert!(
                matches!(
                    &r.outcome,
                    Outcome::Refused {
                        reason: Refusal::RollbackToBad { .. }
                    }
                ),
                "{r:?}"
            ),
            true => assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}"),
        }
    }
    assert_eq!(service_td(&ports), v3);
}

/// A rollback target is never a release marked bad (issue 16, point 1). A, B and C succeed; an
/// alarm after C rolls back to B, which fails, so C is marked bad while still the last known
/// good. D is pushed; an alarm during D must return to B, not to C.
#[test]
fn a_rollback_never_returns_to_a_release_marked_bad() {
    let (ports, b) = world();
    release(&ports, &b, 1, 'a');
    let td_b = release(&ports, &b, 2, 'b');
    let td_c = release(&ports, &b, 3, 'c');
    ports.with(|w| {
        w.faults.push_back((
            "UpdateService".into(),
            PortError::new(ErrorKind::Invalid, "UpdateService", "throttled for good"),
        ))
    });
    send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::RollbackFailed);
    assert!(st
        .bad_releases
        .iter()
        .any(|r| r.image.tag.as_deref() == Some("main-3")));

    ports.advance(Duration::minutes(40));
    send(&ports, &b, &push_event("p4", "main-4", 'd', 4));
    assert!(ports.state("dev", "web").unwrap().in_flight.is_some());
    send(
        &ports,
        &b,
        &alarm("al-2", ALARM, "OK", "ALARM", now(&ports)),
    );
    tick_once(&ports, &b);
    assert_ne!(service_td(&ports), td_c, "back on the release marked bad");
    assert_eq!(service_td(&ports), td_b);
}

/// What a rollback needs is never pushed out by what was skipped (issue 16, point 2): A runs,
/// then a burst of 27 pushes settles into one release B (26 superseded on the way); an alarm
/// after B still finds A, and so does a person's rollback.
#[test]
fn a_burst_of_skipped_releases_never_evicts_the_rollback_target() {
    let ports = scenario::ports();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    let config = CONFIG
        .replace(
            "lease_seconds = 60\n",
            "lease_seconds = 60\nsettle_seconds = 60\n",
        )
        .replace(
            "[services.web.environments.dev]\n",
            "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n",
        );
    let b = bundle_of(&config);
    send(&ports, &b, &push_event("p0", "main-0", 'a', 0));
    ports.advance(Duration::seconds(61));
    tick_once(&ports, &b);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let td_a = service_td(&ports);
    for n in 1..=27i64 {
        let mut e = push_event(&format!("p{n}"), &format!("main-{n}"), 'b', 10 + n);
        e["detail"]["image-digest"] = serde_json::json!(format!("sha256:{:064x}", n));
        send(&ports, &b, &e);
    }
    ports.advance(Duration::seconds(61));
    tick_once(&ports, &b);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    assert_ne!(service_td(&ports), td_a);

    let dry = rollback_plan(&ports, &b);
    assert!(dry.planned.iter().any(|p| p.contains(&td_a)), "{dry:?}");
    send(
        &ports,
        &b,
        &alarm("al-1", ALARM, "OK", "ALARM", now(&ports)),
    );
    assert_eq!(service_td(&ports), td_a);
}
