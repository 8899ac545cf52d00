//! Git is the source of truth beyond the image (issue 17, points 2–3): a change of the config
//! for the image a service runs is a release through the same engine as a push; an unchanged
//! config costs nothing; an alarm after a config release puts the previous revision back and
//! that config version is not applied again until a newer one is published.

use chrono::Duration;

use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::scenario::{self, now, send, service_td, tick_once, CLUSTER};
use harbormaster_core::testing::{alarm_event, bundle_of, push_event, CONFIG};
use harbormaster_core::Bundle;

fn config(debug: &str) -> Bundle {
    bundle_of(
        &CONFIG
            .replace(
                "variables = { DEBUG = \"true\" }",
                &format!("variables = {{ DEBUG = \"{debug}\" }}"),
            )
            .replace(
                "[services.web.environments.dev]\n",
                "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n",
            ),
    )
}

fn mutating(ports: &harbormaster_core::memory::MemoryPorts) -> usize {
    ports.count("RegisterTaskDefinition") + ports.count("UpdateService")
}

/// The DEBUG variable of the web container in revision `td`.
fn debug(ports: &harbormaster_core::memory::MemoryPorts, td: &str) -> String {
    ports.with(|w| {
        let r = w.revisions.iter().find(|r| r.arn == td).unwrap();
        let env = r.body["containerDefinitions"][0]["environment"]
            .as_array()
            .unwrap();
        let var = env.iter().find(|v| v["name"] == "DEBUG").unwrap();
        var["value"].as_str().unwrap().to_owned()
    })
}

#[test]
fn a_config_change_in_git_is_released_once_and_an_alarm_puts_it_back_for_good() {
    let ports = scenario::ports();
    let v1 = config("true");
    send(&ports, &v1, &push_event("e1", "main-1", 'a', 0));
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v1);
    let td_1 = service_td(&ports);

    // The same config, ten ticks: nothing is called that changes anything.
    let before = mutating(&ports);
    for _ in 0..10 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v1);
    }
    assert_eq!(
        mutating(&ports),
        before,
        "an unchanged config makes no mutating call"
    );

    // DEBUG changes in git: the next tick releases the running image with it.
    let v2 = config("false");
    tick_once(&ports, &v2);
    assert_eq!(ports.count("RegisterTaskDefinition"), 2);
    let td_2 = service_td(&ports);
    assert_ne!(td_2, td_1);
    assert_eq!(debug(&ports, &td_2), "false");
    let started = ports.with(|w| {
        w.published
            .iter()
            .filter(|n| n.kind == NoticeKind::Started)
            .count()
    });
    assert_eq!(started, 2);
    let why = ports.with(|w| {
        w.published
            .last()
            .unwrap()
            .reason
            .clone()
            .unwrap_or_default()
    });
    assert!(why.contains("config in git changed"), "{why}");
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v2);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    // What changed, in a person's words: in the notification and the history.
    let said = "config changes: containerDefinitions[web].environment[DEBUG].value: true → false";
    let done = ports.with(|w| w.published.last().unwrap().clone());
    assert_eq!(done.kind, NoticeKind::Succeeded);
    assert_eq!(done.reason.as_deref(), Some(said));
    assert_eq!(st.history[0].reason.as_deref(), Some(said));
    let before = mutating(&ports);
    for _ in 0..10 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v2);
    }
    assert_eq!(mutating(&ports), before, "released once, then quiet");

    // An alarm within the window blames the config, not the image: back to the first revision.
    send(
        &ports,
        &v2,
        &alarm_event("al-1", "booking-dev-web-5xx", ("OK", "ALARM"), now(&ports)),
    );
    assert_eq!(service_td(&ports), td_1);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v2);
    let st = ports.state("dev", "web").unwrap();
    assert!(
        st.bad_releases.is_empty(),
        "the image is fine: {:?}",
        st.bad_releases
    );
    assert_eq!(st.bad_configs.len(), 1);
    let before = mutating(&ports);
    for _ in 0..5 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v2);
    }
    assert_eq!(
        mutating(&ports),
        before,
        "the version rolled back is not applied again"
    );

    // A newer publish is.
    let v3 = config("maybe");
    tick_once(&ports, &v3);
    assert_ne!(service_td(&ports), td_1);
    assert_eq!(debug(&ports, &service_td(&ports)), "maybe");
}

/// A change made outside git (the console pointed the service at another revision) is seen
/// within five ticks, reported once, and — with `self_heal` — put back through the engine
/// (issue 17, point 4).
#[test]
fn a_change_outside_git_is_reported_once_and_healed_when_asked() {
    for heal in [false, true] {
        let ports = scenario::ports();
        let b = if heal {
            bundle_of(&CONFIG.replace(
                "[environments.dev]\n",
                "[environments.dev]\nself_heal = true\n",
            ))
        } else {
            config("true")
        };
        send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
        ports.complete(CLUSTER, "web");
        tick_once(&ports, &b);
        let deployed = service_td(&ports);
        let console = "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:77";
        ports.with(|w| {
            w.services
                .get_mut(&(CLUSTER.to_string(), "web".to_string()))
                .unwrap()
                .task_definition = console.into()
        });
        let drift_notices = |ports: &harbormaster_core::memory::MemoryPorts| {
            ports.with(|w| {
                w.published
                    .iter()
                    .filter(|n| n.kind == NoticeKind::Drift)
                    .count()
            })
        };
        for _ in 0..10 {
            ports.advance(Duration::minutes(1));
            tick_once(&ports, &b);
            ports.complete(CLUSTER, "web");
        }
        assert_eq!(drift_notices(&ports), 1, "reported once");
        let st = ports.state("dev", "web").unwrap();
        if heal {
            assert_ne!(service_td(&ports), console, "put back");
            assert_ne!(
                service_td(&ports),
                deployed,
                "as a new revision of the desired config"
            );
            assert!(st.drift.is_none(), "{:?}", st.drift);
            assert_eq!(st.history[0].verdict, Verdict::Succeeded);
        } else {
            assert_eq!(service_td(&ports), console, "only reported");
            assert_eq!(
                st.drift.map(|d| d.task_definition_arn).as_deref(),
                Some(console)
            );
        }
    }
}
