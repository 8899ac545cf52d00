//! Issue 30, part (a): every automatic release passes one admission that knows the
//! environment's gate, the failures remembered per (image, config version) and the bounds.
//! Each test is named by the finding it pins, and failed on the code before the fix.

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::request_deploy;
use harbormaster_core::machine::{Outcome, SkipKind};
use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::state::Verdict;
use harbormaster_core::testing::scenario::{self, now, send, service_td, tick_once, CLUSTER};
use harbormaster_core::testing::{alarm_event, bundle_of, push_event, CONFIG};
use harbormaster_core::{Bundle, RunOptions, Target};

const PROD: &str = "booking-prod";
const PROD_TD: &str = "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-prod-web:0";

/// The test config with dev's web watching its alarms and `edit` applied (a "publish").
fn published(edit: impl Fn(String) -> String) -> Bundle {
    let config = CONFIG.replace(
        "[services.web.environments.dev]\n",
        "[services.web.environments.dev]\nalarms = [\"booking-dev-web-*\"]\n",
    );
    bundle_of(&edit(config))
}

/// The service-wide variable every environment's web reads, set to `value`.
fn settings_module(value: &str) -> Bundle {
    published(|c| c.replace("booking.settings\"", &format!("{value}\"")))
}

fn debug(value: &str) -> Bundle {
    published(|c| {
        c.replace(
            "variables = { DEBUG = \"true\" }",
            &format!("variables = {{ DEBUG = \"{value}\" }}"),
        )
    })
}

fn count(ports: &MemoryPorts, kind: NoticeKind) -> usize {
    ports.with(|w| w.published.iter().filter(|n| n.kind == kind).count())
}

/// Notifications whose reason says `words`.
fn said(ports: &MemoryPorts, words: &str) -> usize {
    let says = |n: &&harbormaster_core::notify::Notification| {
        n.reason.as_deref().is_some_and(|r| r.contains(words))
    };
    ports.with(|w| w.published.iter().filter(says).count())
}

/// A minute later: the tick under `b` starts what it releases, ECS completes it, the tick
/// records it; dev's web as it stands then.
fn a_minute_on(ports: &MemoryPorts, b: &Bundle) -> harbormaster_core::state::ServiceState {
    ports.advance(Duration::minutes(1));
    tick_once(ports, b);
    ports.complete(CLUSTER, "web");
    tick_once(ports, b);
    ports.state("dev", "web").unwrap()
}

/// The test config with `self_heal = true` in dev.
fn self_healing() -> Bundle {
    let config = CONFIG.replace(
        "[environments.dev]\n",
        "[environments.dev]\nself_heal = true\n",
    );
    bundle_of(&config)
}

fn registered(ports: &MemoryPorts) -> usize {
    ports.count("RegisterTaskDefinition")
}

fn td_of(ports: &MemoryPorts, cluster: &str) -> String {
    ports.with(|w| {
        w.services[&(cluster.to_string(), "web".to_string())]
            .task_definition
            .clone()
    })
}

fn deploy(ports: &MemoryPorts, b: &Bundle, env: &str, image: &str, force: bool) -> Outcome {
    let target = Target::new(env, "web");
    let r = block_on(request_deploy(
        ports,
        b,
        &target,
        image,
        "alice",
        force,
        RunOptions::default(),
    ))
    .expect("a configured target");
    r.outcome
}

/// Dev's web runs `main-1` (image `a`) under `b`, deployed by a push.
fn dev_running(ports: &MemoryPorts, b: &Bundle) {
    send(ports, b, &push_event("e1", "main-1", 'a', 0));
    ports.complete(CLUSTER, "web");
    tick_once(ports, b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
}

/// Finding 1: a publish reached every environment on the next tick, `auto_deploy = false`
/// ones included. Prod takes no pushes, so it takes no config release by itself either: the
/// tick shows the config as pending, and a person's deploy of the running image carries it.
#[test]
fn finding_1_a_publish_releases_nothing_by_itself_where_the_environment_takes_no_pushes() {
    let ports = scenario::ports();
    ports.add_service(PROD, "web", PROD_TD);
    let v1 = settings_module("booking.settings");
    dev_running(&ports, &v1);
    ports.push_image("booking/web", "1.0.0", 'e', now(&ports));
    assert!(matches!(
        deploy(&ports, &v1, "prod", "1.0.0", false),
        Outcome::Started { .. }
    ));
    ports.complete(PROD, "web");
    tick_once(&ports, &v1);
    let prod_td = td_of(&ports, PROD);
    assert_ne!(prod_td, PROD_TD);

    // A service-wide change: dev releases it, prod holds it as pending.
    let v2 = settings_module("booking.settings_v2");
    for _ in 0..3 {
        ports.advance(Duration::minutes(1));
        let r = tick_once(&ports, &v2);
        ports.complete(CLUSTER, "web");
        let prod = r.targets.iter().find(|t| t.environment == "prod").unwrap();
        assert!(
            matches!(&prod.outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::GateClosed),
            "{:?}",
            prod.outcome
        );
    }
    assert_eq!(td_of(&ports, PROD), prod_td, "prod untouched by the tick");
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.last_known_good.unwrap().config,
        v2.config_version("dev", "web")
    );

    // A person carries it: the running image with git's config.
    assert!(matches!(
        deploy(&ports, &v2, "prod", "1.0.0", false),
        Outcome::Started { .. }
    ));
    ports.complete(PROD, "web");
    tick_once(&ports, &v2);
    assert_ne!(td_of(&ports, PROD), prod_td);
    let st = ports.state("prod", "web").unwrap();
    let good = st.last_known_good.unwrap();
    assert_eq!(good.config, v2.config_version("prod", "web"));
    assert!(good.config_release, "the same image with another config");
}

/// Finding 2: a config version whose release failed was released again every minute. It is
/// released once, the team hears of it once, and git's next version is released again.
#[test]
fn finding_2_a_config_that_cannot_succeed_is_released_once_and_told_once() {
    let ports = scenario::ports();
    let v1 = debug("true");
    dev_running(&ports, &v1);
    // The secret's parameter is gone: every release of a new config fails before registering.
    ports.with(|w| w.parameters = Some(Default::default()));
    let v2 = debug("false");
    let (started, failed) = (
        count(&ports, NoticeKind::Started),
        count(&ports, NoticeKind::Failed),
    );
    for _ in 0..30 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v2);
    }
    assert_eq!(
        count(&ports, NoticeKind::Started),
        started + 1,
        "released once"
    );
    assert_eq!(count(&ports, NoticeKind::Failed), failed + 1, "told once");
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);

    // A person may try it again: it is not refused, it fails again (the parameter is missing).
    ports.push_image("booking/web", "main-1", 'a', now(&ports));
    assert!(matches!(
        deploy(&ports, &v2, "dev", "main-1", true),
        Outcome::Started { .. } | Outcome::Finished { .. }
    ));

    // Git changes (and the parameter is back): the new version is released.
    ports.with(|w| w.parameters = None);
    let v3 = debug("maybe");
    let st = a_minute_on(&ports, &v3);
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    assert_eq!(
        st.last_known_good.unwrap().config,
        v3.config_version("dev", "web")
    );
}

/// Finding 2, the circuit breaker's way: each attempt registered a revision. Once.
#[test]
fn finding_2_a_config_the_circuit_breaker_rolls_back_is_not_released_again() {
    let ports = scenario::ports();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    let v1 = debug("true");
    dev_running(&ports, &v1);
    let v2 = debug("false");
    let before = registered(&ports);
    for _ in 0..20 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v2);
        ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start");
    }
    assert_eq!(
        registered(&ports),
        before + 1,
        "one revision, not one a minute"
    );
    assert_eq!(count(&ports, NoticeKind::RolledBack), 1);
}

/// Finding 6: `self_heal` against a circuit breaker that keeps returning to the console's
/// revision gave 59 revisions an hour. A failed heal is reported once, then no more.
#[test]
fn finding_6_self_heal_stops_after_a_failed_heal_and_says_so_once() {
    let ports = scenario::ports();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    let b = self_healing();
    dev_running(&ports, &b);
    let console = "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:77";
    console_sets(&ports, console);
    let before = registered(&ports);
    for _ in 0..60 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &b);
        ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start");
    }
    assert_eq!(service_td(&ports), console);
    let heals = registered(&ports) - before;
    assert!((1..=3).contains(&heals), "{heals} heals in an hour");
    assert_eq!(count(&ports, NoticeKind::Drift), 1, "the drift, once");
    assert_eq!(said(&ports, "no longer heals"), 1, "the stop, once");
}

/// The console points the service at `td`, as a completed ECS deployment.
fn console_sets(ports: &MemoryPorts, td: &str) {
    ports.add_service(CLUSTER, "web", td);
}

/// Finding 7: a config version an alarm marked bad rode the next push, and the next alarm
/// marked the innocent image bad. The push is held while git's version is marked bad, and
/// deploys with the next version git publishes.
#[test]
fn finding_7_a_push_is_held_while_the_config_is_marked_bad_and_the_image_never_blamed() {
    let ports = scenario::ports();
    let v1 = debug("true");
    dev_running(&ports, &v1);
    let td_1 = service_td(&ports);
    let v2 = debug("false");
    tick_once(&ports, &v2);
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v2);
    let alarm = |id: &str| alarm_event(id, "booking-dev-web-5xx", ("OK", "ALARM"), now(&ports));
    send(&ports, &v2, &alarm("al-1"));
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v2);
    assert_eq!(service_td(&ports), td_1);
    assert_eq!(ports.state("dev", "web").unwrap().bad_configs.len(), 1);

    // A push while git still says v2: held, with the reason.
    let before = registered(&ports);
    let r = send(&ports, &v2, &push_event("e2", "main-2", 'c', 100));
    assert!(
        matches!(&r.targets[0].outcome, Outcome::Queued),
        "{:?}",
        r.targets[0].outcome
    );
    for _ in 0..5 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &v2);
    }
    assert_eq!(
        registered(&ports),
        before,
        "not deployed with the bad config"
    );
    let st = ports.state("dev", "web").unwrap();
    let pending = st.pending.expect("held");
    assert_eq!(pending.release.image.tag.as_deref(), Some("main-2"));
    assert!(st.bad_releases.is_empty(), "{:?}", st.bad_releases);

    // An alarm now is no release's fault: the image stays unblamed.
    ports.advance(Duration::minutes(1));
    send(&ports, &v2, &alarm("al-2"));
    assert!(ports.state("dev", "web").unwrap().bad_releases.is_empty());

    // Git moves on: the held push deploys with the new version.
    let v3 = debug("maybe");
    let st = a_minute_on(&ports, &v3);
    let good = st.last_known_good.unwrap();
    assert_eq!(good.image.tag.as_deref(), Some("main-2"));
    assert_eq!(good.config, v3.config_version("dev", "web"));
}

/// Finding 8: for a service whose settings are all defaults, its count, rolling percentages and
/// rollback alarms were not in the fingerprint, so changing them in git released nothing.
#[test]
fn finding_8_a_desired_count_changed_in_git_is_released() {
    let ports = scenario::ports();
    let v1 = published(|c| c);
    dev_running(&ports, &v1);
    let v2 = published(|c| c.replace("desired_count = 1\n", "desired_count = 3\n"));
    assert_ne!(
        v1.config_version("dev", "web"),
        v2.config_version("dev", "web")
    );
    let before = ports.count("UpdateService");
    tick_once(&ports, &v2);
    assert_eq!(ports.count("UpdateService"), before + 1);
}

/// The example config, as `publish` would upload it.
fn example() -> Bundle {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/booking");
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    let files = [
        "harbormaster.toml",
        "taskdefs/web.json",
        "taskdefs/worker.json",
    ];
    let source = harbormaster_core::memory::MemorySource(
        files.iter().map(|f| (f.to_string(), read(f))).collect(),
    );
    block_on(Bundle::load(&source)).expect("the example loads")
}

/// Finding 8: nothing pinned the fingerprint, so a new default or tag in a later agent could
/// change every service's and release everything on the first tick after an upgrade. These
/// values may change only with a new `CONFIG_SCHEME` (and the previous scheme kept as the
/// baseline), or with a change of the example itself.
#[test]
fn the_example_configs_fingerprints_are_pinned() {
    let b = example();
    // (environment, service, scheme 2, scheme 1 — as the agent before scheme 2 computed it).
    let pinned = [
        (
            "dev",
            "web",
            "2:beedd0637117a184b07f682eb42e449f",
            "d2b263631176e32382f82576492443ae",
        ),
        (
            "dev",
            "worker",
            "2:9414d970dc900e548f60227282b025db",
            "d99995ec5860c0dc08042c3cd5f95f47",
        ),
        (
            "prod",
            "web",
            "2:6383aa24beef3f6f94cd1aebcca580ec",
            "7b4c07d126a3a706e8f331053e3db4f1",
        ),
        (
            "prod",
            "worker",
            "2:c43d66a675a588fc54194ad48c78e163",
            "8b90f93543da5561d32ed35ca860a72e",
        ),
    ];
    let got: Vec<_> = pinned
        .iter()
        .map(|(env, svc, ..)| {
            let v = b.config_version(env, svc).unwrap();
            let base = b.config_baseline(env, svc).unwrap();
            format!("{env}/{svc} {v} {base}")
        })
        .collect();
    let want: Vec<_> = pinned
        .iter()
        .map(|(env, svc, v, base)| format!("{env}/{svc} {v} {base}"))
        .collect();
    assert_eq!(got, want);
}

/// Finding 8: an agent upgrade that changes the fingerprint's scheme re-baselines what runs
/// and releases nothing; a service whose recorded version is neither (git changed meanwhile)
/// is released.
#[test]
fn finding_8_an_agent_upgrade_releases_nothing_by_itself() {
    for git_changed_too in [false, true] {
        let ports = scenario::ports();
        let b = debug("true");
        dev_running(&ports, &b);
        // The document as the agent before scheme 2 left it.
        let old = if git_changed_too {
            debug("false").config_baseline("dev", "web")
        } else {
            b.config_baseline("dev", "web")
        };
        ports.with(|w| {
            let key = "state/dev/web.json".to_string();
            let (text, etag) = w.states[&key].clone();
            let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            doc["last_known_good"]["config"] = serde_json::json!(old);
            w.states.insert(key, (doc.to_string(), etag + 1));
        });
        let before = registered(&ports);
        for _ in 0..3 {
            ports.advance(Duration::minutes(1));
            tick_once(&ports, &b);
            ports.complete(CLUSTER, "web");
        }
        let st = ports.state("dev", "web").unwrap();
        assert_eq!(
            st.last_known_good.unwrap().config,
            b.config_version("dev", "web")
        );
        let released = registered(&ports) - before;
        assert_eq!(
            released,
            usize::from(git_changed_too),
            "git changed: {git_changed_too}"
        );
    }
}

/// Finding 6, the other way round: heals that work, against a tool that keeps changing the
/// service back. At most `MAX_HEALS` heals, spaced out, then the agent stops and says so once.
#[test]
fn finding_6_heals_that_keep_being_undone_are_bounded_and_the_stop_said_once() {
    let ports = scenario::ports();
    let b = self_healing();
    dev_running(&ports, &b);
    let before = registered(&ports);
    for n in 0..120 {
        if n % 5 == 0 {
            console_sets(
                &ports,
                &format!(
                    "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-dev-web:{}",
                    70 + n
                ),
            );
        }
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &b);
        ports.complete(CLUSTER, "web");
    }
    let heals = registered(&ports) - before;
    assert_eq!(heals, harbormaster_core::machine::MAX_HEALS as usize);
    assert_eq!(said(&ports, "no longer heals"), 1, "the stop, once");
}

/// Promotion applies to config as to images: prod, promoted from dev (`promote_from = "dev"`,
/// config released by itself there), takes a published bundle only once its release succeeded
/// in dev; `status` says why it waits meanwhile.
#[test]
fn a_config_goes_to_an_environment_promoted_from_another_only_once_it_succeeded_there() {
    let ports = scenario::ports();
    ports.add_service(PROD, "web", PROD_TD);
    let publish = |variable: &str, digest: char| {
        let mut b = published(|c| {
            c.replace("booking.settings\"", &format!("{variable}\""))
                .replace(
                    "auto_deploy = false\n",
                    "auto_deploy = false\nconfig_releases = \"auto\"\npromote_from = \"dev\"\n",
                )
        });
        b.published = Some(format!("sha256-{}", digest.to_string().repeat(64)));
        b
    };
    let v1 = publish("booking.settings", '1');
    dev_running(&ports, &v1);
    ports.push_image("booking/web", "1.0.0", 'e', now(&ports));
    deploy(&ports, &v1, "prod", "1.0.0", false);
    ports.complete(PROD, "web");
    tick_once(&ports, &v1);
    let prod_td = td_of(&ports, PROD);

    let v2 = publish("booking.settings_v2", '2');
    let r = tick_once(&ports, &v2);
    let prod = r.targets.iter().find(|t| t.environment == "prod").unwrap();
    assert!(
        matches!(&prod.outcome, Outcome::Ignored { reason } if reason.kind == SkipKind::NotPromotedYet),
        "{:?}",
        prod.outcome
    );
    assert_eq!(td_of(&ports, PROD), prod_td, "not before dev");

    // Dev's release succeeds: the next tick promotes the bundle to prod.
    ports.complete(CLUSTER, "web");
    tick_once(&ports, &v2);
    ports.advance(Duration::minutes(1));
    tick_once(&ports, &v2);
    ports.complete(PROD, "web");
    tick_once(&ports, &v2);
    let st = ports.state("prod", "web").unwrap();
    let good = st.last_known_good.unwrap();
    assert_eq!(good.config, v2.config_version("prod", "web"));
    assert_eq!(good.bundle.as_deref(), v2.published.as_deref());
}

#[test]
fn promote_from_must_name_another_environment() {
    for from in ["prod", "staging"] {
        let config = CONFIG.replace(
            "auto_deploy = false\n",
            &format!("auto_deploy = false\npromote_from = \"{from}\"\n"),
        );
        let source = harbormaster_core::testing::source_of(&config);
        let e = block_on(Bundle::load(&source)).unwrap_err().to_string();
        assert!(
            e.contains("environments.prod.promote_from") && e.contains("these are: dev"),
            "{e}"
        );
    }
}
