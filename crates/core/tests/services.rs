//! Services owned from git (issue 18): a service git names and ECS lacks is created by its
//! first deployment, wired to the bootstrap's outputs; target tracking follows git; a
//! migration runs before the service is touched and decides whether it is.
//!
//! ECS is played in memory: no emulator stops a task with an exit code (ministack runs no
//! containers without Docker), and none implements Application Auto Scaling beside the ECS it
//! emulates (the adapter is checked against moto in `tests/tests/services.rs`).

use futures::executor::block_on;

use harbormaster_core::dispatch::handle_event;
use harbormaster_core::memory::MemoryPorts;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::ports::ServiceStatus;
use harbormaster_core::service::{ScalingWant, TaskProgress};
use harbormaster_core::state::{PhaseKind, Verdict};
use harbormaster_core::testing::scenario::{now, send, tick_once, CLUSTER, INITIAL_TD};
use harbormaster_core::testing::{bundle_of, push_event, CONFIG};
use harbormaster_core::{Bundle, RunOptions};

const SUBNETS: &str = "subnet-0a1,subnet-0b2";
const SG: &str = "sg-0services";
const TG: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/booking-dev-web-blue/0123456789abcdef";
const ALB: &str =
    "arn:aws:elasticloadbalancing:us-east-1:123456789012:loadbalancer/app/booking-dev/fedcba9876543210";

/// The test config with `settings` added to `[services.web]`.
fn config(settings: &str) -> Bundle {
    bundle_of(&CONFIG.replace(
        "[services.web.environments.dev]\n",
        &format!("{settings}\n[services.web.environments.dev]\n"),
    ))
}

/// An account after `harbormaster-bootstrap apply --env dev`: its outputs in SSM, no service.
fn bootstrapped() -> MemoryPorts {
    let ports = MemoryPorts::new(harbormaster_core::testing::scenario::start());
    ports.with(|w| {
        for (k, v) in [
            ("private-subnet-ids", SUBNETS),
            ("security-groups/services", SG),
            ("target-groups/web/blue", TG),
            ("alb-arn", ALB),
        ] {
            w.outputs
                .insert(format!("/booking/dev/outputs/{k}"), v.into());
        }
    });
    ports
}

fn created(ports: &MemoryPorts) -> harbormaster_core::ports::ServiceTarget {
    ports.with(|w| {
        let s = &w.services[&(CLUSTER.to_string(), "web".to_string())];
        s.created.clone().expect("created by the agent").0
    })
}

const WEB: &str = r#"load_balancer = { container = "web", port = 8000 }
capacity = { fargate = 1, fargate_spot = 3, base = 1 }
health_check_grace_period_seconds = 60"#;

#[test]
fn a_service_git_names_and_ecs_lacks_is_created_with_the_bootstrap_network_and_target_group() {
    let ports = bootstrapped();
    let b = config(WEB);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));

    // UpdateService first (no extra call when the service exists), refused: then created.
    assert_eq!(ports.count("UpdateService"), 1);
    assert_eq!(ports.count("CreateService"), 1);
    let t = created(&ports);
    let s = &t.settings;
    let network = s.network.as_ref().expect("network");
    assert_eq!(network.subnets, ["subnet-0a1", "subnet-0b2"]);
    assert_eq!(network.security_groups, [SG]);
    assert!(!network.assign_public_ip);
    let lb = s.load_balancer.as_ref().expect("load balancer");
    assert_eq!(
        (lb.container.as_str(), lb.port, lb.target_group.as_str()),
        ("web", 8000, TG)
    );
    let strategy: Vec<_> = s
        .capacity
        .iter()
        .map(|c| (c.provider.as_str(), c.weight, c.base))
        .collect();
    assert_eq!(strategy, [("FARGATE", 1, 1), ("FARGATE_SPOT", 3, 0)]);
    assert!(s
        .tags
        .contains(&("harbormaster:service".to_string(), "web".to_string())));
    assert_eq!(s.initial_count, 1, "dev's desired_count");

    // The deployment goes on as any other: the next look finds the rollout done.
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
    assert!(st.history[0]
        .reason
        .as_deref()
        .is_none_or(|r| !r.contains("fail")));
}

#[test]
fn the_same_push_delivered_twice_at_once_creates_the_service_once() {
    let ports = bootstrapped();
    let b = config(WEB);
    let e = push_event("e1", "main-1", 'a', 0);
    harbormaster_core::testing::scenario::stored(&ports, &e);
    let runs = (0..2).map(|_| handle_event(&ports, &b, &e, RunOptions::default()));
    block_on(futures::future::join_all(runs));
    assert_eq!(ports.count("CreateService"), 1);
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
}

#[test]
fn a_crash_after_create_service_is_taken_over_without_a_second_service() {
    let ports = bootstrapped();
    let b = config(WEB);
    // CreateService goes through but its answer is lost.
    ports.with(|w| w.lose_response.push("CreateService".into()));
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(ports.count("CreateService"), 1);
    ports.advance(chrono::Duration::minutes(2));
    tick_once(&ports, &b);
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded, "{st:?}");
    assert_eq!(ports.count("CreateService"), 1, "found, not made again");
}

/// Real ECS lists a deleted service as INACTIVE and answers UpdateService with
/// ServiceNotActiveException; the emulator accepted the update and the push "started".
#[test]
fn a_deleted_service_still_listed_inactive_counts_as_missing_and_is_created_again() {
    let ports = bootstrapped();
    ports.add_service(CLUSTER, "web", INITIAL_TD);
    ports.with(|w| {
        let s = w
            .services
            .get_mut(&(CLUSTER.to_string(), "web".to_string()))
            .unwrap();
        s.status = ServiceStatus::Inactive;
    });
    let b = config(WEB);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(ports.count("CreateService"), 1);
    let active = ports.with(|w| w.services[&(CLUSTER.to_string(), "web".to_string())].status);
    assert_eq!(active, ServiceStatus::Active);
}

#[test]
fn without_a_network_from_config_or_bootstrap_the_creation_is_refused_by_name() {
    let ports = MemoryPorts::new(harbormaster_core::testing::scenario::start());
    let b = config("");
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(ports.count("CreateService"), 0);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    let why = st.history[0].reason.clone().unwrap_or_default();
    assert!(why.contains("services.web.network"), "{why}");
    assert!(why.contains("private-subnet-ids"), "{why}");
}

const TRACKED: &str = r#"load_balancer = { container = "web", port = 8000 }
autoscaling = { min = 1, max = 5, cpu = 70, memory = 80, requests_per_target = 500, scale_in_cooldown_seconds = 120 }"#;

#[test]
fn target_tracking_follows_git_and_goes_when_git_drops_it() {
    let ports = bootstrapped();
    let b = config(TRACKED);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let registered: ScalingWant =
        ports.with(|w| w.autoscaling[&(CLUSTER.to_string(), "web".to_string())].clone());
    assert_eq!((registered.min, registered.max), (1, 5));
    let mut policies: Vec<_> = registered
        .policies
        .iter()
        .map(|p| (p.metric.as_str(), p.target, p.resource_label.clone()))
        .collect();
    policies.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        policies,
        [
            (
                "ALBRequestCountPerTarget",
                500.0,
                Some("app/booking-dev/fedcba9876543210/targetgroup/booking-dev-web-blue/0123456789abcdef".into())
            ),
            ("ECSServiceAverageCPUUtilization", 70.0, None),
            ("ECSServiceAverageMemoryUtilization", 80.0, None),
        ]
    );
    assert!(registered
        .policies
        .iter()
        .all(|p| p.scale_in_cooldown_seconds == 120 && p.scale_out_cooldown_seconds == 300));
    // The count is autoscaling's: a deployment never sets it.
    send(&ports, &b, &push_event("e2", "main-2", 'b', 10));
    tick_once(&ports, &b);
    let update = ports.with(|w| w.updates.last().cloned().unwrap());
    assert_eq!(update.0.settings.desired_count, None);
    assert!(ports.state("dev", "web").unwrap().autoscaled);

    // Memory dropped in git: its policy goes, the others stay.
    let b2 = config(&TRACKED.replace("memory = 80, ", ""));
    tick_once(&ports, &b2);
    tick_once(&ports, &b2);
    let names: Vec<String> = ports.with(|w| {
        w.autoscaling[&(CLUSTER.to_string(), "web".to_string())]
            .policies
            .iter()
            .map(|p| p.name.clone())
            .collect()
    });
    assert!(
        !names.contains(&"harbormaster-memory".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"harbormaster-cpu".to_string()), "{names:?}");

    // `autoscaling` gone from git: the scalable target is deregistered.
    let b3 = config(r#"load_balancer = { container = "web", port = 8000 }"#);
    tick_once(&ports, &b3);
    tick_once(&ports, &b3);
    let left = ports.with(|w| w.autoscaling.len());
    assert_eq!(left, 0, "deregistered when removed from git");
    assert!(!ports.state("dev", "web").unwrap().autoscaled);
    assert_eq!(ports.count("DeregisterScalableTarget"), 1);
}

const MIGRATE: &str =
    r#"before_deploy = { command = ["python", "manage.py", "migrate"], timeout_minutes = 15 }"#;

/// The web template with an awslogs driver, so the failure can name the log stream.
fn migrating_world() -> (MemoryPorts, Bundle) {
    let ports = bootstrapped();
    ports.add_service(CLUSTER, "web", INITIAL_TD);
    let config = CONFIG.replace(
        "[services.web.environments.dev]\n",
        &format!("{MIGRATE}\n[services.web.environments.dev]\n"),
    );
    let template = harbormaster_core::testing::WEB_TEMPLATE.replace(
        r#""environment": [{"name": "DEBUG", "value": "false"}]}"#,
        r#""environment": [{"name": "DEBUG", "value": "false"}],
     "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/booking/dev/web", "awslogs-region": "us-east-1", "awslogs-stream-prefix": "web"}}}"#,
    );
    assert_ne!(template, harbormaster_core::testing::WEB_TEMPLATE);
    let source = harbormaster_core::memory::MemorySource(
        [
            ("harbormaster.toml".to_string(), config),
            ("taskdefs/web.json".to_string(), template),
        ]
        .into_iter()
        .collect(),
    );
    let b = block_on(Bundle::load(&source)).expect("bundle loads");
    (ports, b)
}

fn only_task(ports: &MemoryPorts) -> (String, harbormaster_core::memory::SimTask) {
    let tasks = ports.tasks();
    assert_eq!(tasks.len(), 1, "one task, never two");
    tasks.into_iter().next().unwrap()
}

#[test]
fn a_migration_that_exits_1_fails_the_deployment_before_the_service_is_touched() {
    let (ports, b) = migrating_world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let (arn, task) = only_task(&ports);
    assert_eq!(task.run.command, ["python", "manage.py", "migrate"]);
    assert_eq!(task.run.container, "web");
    assert_eq!(task.run.subnets, ["subnet-0a1", "subnet-0b2"]);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.in_flight.unwrap().phase.kind(), PhaseKind::Migrating);

    // Still running: the tick looks, nothing else happens; ten ticks start no second task.
    for _ in 0..10 {
        tick_once(&ports, &b);
    }
    only_task(&ports);
    assert_eq!(ports.count("UpdateService"), 0);

    ports.finish_task(&arn, Some(1), "Essential container in task exited");
    tick_once(&ports, &b);
    assert_eq!(
        ports.count("UpdateService"),
        0,
        "the service was never touched"
    );
    let running = ports.with(|w| {
        w.services[&(CLUSTER.to_string(), "web".to_string())]
            .task_definition
            .clone()
    });
    assert_eq!(running, INITIAL_TD, "the service keeps its old revision");
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    let failed = ports.with(|w| {
        w.published
            .iter()
            .find(|n| n.kind == NoticeKind::Failed)
            .cloned()
            .expect("a failure notification")
    });
    let text = format!("{failed:?}");
    assert!(text.contains("exited 1"), "{text}");
    assert!(
        text.contains("Essential container in task exited"),
        "{text}"
    );
    let id = arn.rsplit('/').next().unwrap();
    assert!(
        text.contains(&format!("/booking/dev/web:web/web/{id}")),
        "the log stream: {text}"
    );
}

#[test]
fn a_migration_that_exits_0_lets_the_rollout_continue() {
    let (ports, b) = migrating_world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let (arn, _) = only_task(&ports);
    ports.finish_task(&arn, Some(0), "Essential container in task exited");
    // Right after RunTask, DescribeTasks may not know the task yet (the first tick waits).
    tick_once(&ports, &b);
    assert_eq!(ports.count("UpdateService"), 0);
    tick_once(&ports, &b);
    assert_eq!(ports.count("UpdateService"), 1);
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
}

#[test]
fn a_crash_while_starting_the_migration_neither_starts_a_second_task_nor_loses_it() {
    let (ports, b) = migrating_world();
    // RunTask starts the task but its answer is lost: the intent is recorded, the token kept.
    ports.with(|w| w.lose_response.push("RunTask".into()));
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    ports.advance(chrono::Duration::minutes(2));
    tick_once(&ports, &b);
    let (arn, _) = only_task(&ports);
    let st = ports.state("dev", "web").unwrap();
    let phase = st.in_flight.unwrap().phase;
    assert!(
        matches!(&phase, harbormaster_core::state::Phase::Migrating { task: Some(t), .. } if t.task_arn == arn),
        "{phase:?}"
    );
}

#[test]
fn a_migration_past_its_timeout_is_stopped_and_fails_the_deployment() {
    let (ports, b) = migrating_world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let (arn, _) = only_task(&ports);
    ports.advance(chrono::Duration::minutes(16));
    tick_once(&ports, &b);
    assert_eq!(ports.count("StopTask"), 1);
    let (_, task) = only_task(&ports);
    assert!(matches!(
        task.progress,
        TaskProgress::Stopped {
            exit_code: None,
            ..
        }
    ));
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    let why = st.history[0].reason.clone().unwrap_or_default();
    assert!(why.contains("15 minutes") && why.contains(&arn), "{why}");
    assert_eq!(ports.count("UpdateService"), 0);
    let _ = now(&ports);
}

#[test]
fn a_setting_changed_in_git_reaches_the_service_through_a_config_release() {
    let ports = bootstrapped();
    let b = config(WEB);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let before = ports.count("UpdateService");
    for _ in 0..3 {
        tick_once(&ports, &b);
    }
    let unchanged = ports.count("UpdateService") - before;
    assert_eq!(unchanged, 0, "an unchanged config changes nothing");

    let b2 = config(&WEB.replace("fargate_spot = 3", "fargate_spot = 1"));
    tick_once(&ports, &b2);
    assert_eq!(ports.count("UpdateService"), before + 1);
    let (target, _, _) = ports.with(|w| w.updates.last().cloned().unwrap());
    let strategy: Vec<_> = target
        .settings
        .capacity
        .iter()
        .map(|c| (c.provider.as_str(), c.weight))
        .collect();
    assert_eq!(strategy, [("FARGATE", 1), ("FARGATE_SPOT", 1)]);
    assert_eq!(
        ports.count("CreateService"),
        1,
        "updated, not created again"
    );

    // Spot dropped from git: the default strategy is sent back, not left as it was.
    let b3 = config(&WEB.replace(
        "capacity = { fargate = 1, fargate_spot = 3, base = 1 }\n",
        "",
    ));
    tick_once(&ports, &b3);
    let (target, _, _) = ports.with(|w| w.updates.last().cloned().unwrap());
    let strategy: Vec<_> = (target.settings.capacity.iter())
        .map(|c| (c.provider.as_str(), c.weight))
        .collect();
    assert_eq!(strategy, [("FARGATE", 1)]);
    assert!(!ports.state("dev", "web").unwrap().custom_capacity);
}

/// Owning services costs an update of an existing one no call: UpdateService goes first, and
/// the bootstrap's outputs are read only for what the config leaves to them.
#[test]
fn updating_a_service_that_exists_costs_no_extra_call() {
    let (ports, b) = harbormaster_core::testing::scenario::world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    assert_eq!(ports.count("UpdateService"), 1);
    assert_eq!(ports.count("DescribeServices"), 0);
    assert_eq!(ports.count("GetParameters"), 0);
    assert_eq!(ports.count("CreateService"), 0);
    assert_eq!(ports.count("DescribeScalableTargets"), 0);
}

/// A service made by hand, in an account without the bootstrap's outputs and with no `network`
/// in git: its migration runs where the service runs.
#[test]
fn a_migration_of_a_service_made_by_hand_runs_in_its_own_network() {
    let ports = MemoryPorts::new(harbormaster_core::testing::scenario::start());
    ports.add_service(CLUSTER, "web", INITIAL_TD);
    ports.with(|w| {
        let s = w
            .services
            .get_mut(&(CLUSTER.to_string(), "web".to_string()))
            .unwrap();
        s.network = Some(harbormaster_core::service::Network {
            subnets: vec!["subnet-0own".into()],
            security_groups: vec!["sg-0own".into()],
            assign_public_ip: false,
        });
    });
    send(
        &ports,
        &config(MIGRATE),
        &push_event("e1", "main-1", 'a', 0),
    );
    let (_, task) = only_task(&ports);
    assert_eq!(task.run.subnets, ["subnet-0own"]);
    assert_eq!(task.run.security_groups, ["sg-0own"]);
}

/// Issue 30, finding 10: a rollback while the migration of the release it rolls back runs left
/// the migration running under the code being rolled back. The task is stopped first; the
/// service, never touched, stays on the last known good.
#[test]
fn finding_10_a_rollback_during_the_migration_stops_the_migration_first() {
    use harbormaster_core::dispatch::request_rollback;
    use harbormaster_core::Target;
    let (ports, b) = migrating_world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let (first, _) = only_task(&ports);
    ports.finish_task(&first, Some(0), "Essential container in task exited");
    for _ in 0..3 {
        tick_once(&ports, &b);
    }
    let good = ports.state("dev", "web").unwrap().last_known_good.unwrap();

    send(&ports, &b, &push_event("e2", "main-2", 'b', 60));
    let second = (ports.tasks().into_iter())
        .map(|(arn, _)| arn)
        .find(|arn| *arn != first)
        .expect("the second migration");
    let updates = ports.count("UpdateService");
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
    assert!(r.error.is_none(), "{r:?}");
    tick_once(&ports, &b);

    let stopped = ports
        .tasks()
        .into_iter()
        .find(|(arn, _)| *arn == second)
        .unwrap()
        .1;
    assert!(
        matches!(&stopped.progress, TaskProgress::Stopped { reason, .. } if reason.contains("rolled back")),
        "{:?}",
        stopped.progress
    );
    assert_eq!(ports.count("StopTask"), 1);
    let running = ports.with(|w| {
        w.services[&(CLUSTER.to_string(), "web".to_string())]
            .task_definition
            .clone()
    });
    assert_eq!(
        running, good.task_definition_arn,
        "the service stays where it was"
    );
    assert!(ports.count("UpdateService") <= updates + 1);
    let st = ports.state("dev", "web").unwrap();
    assert!(st.in_flight.is_none(), "{:?}", st.in_flight);
    let verdicts: Vec<_> = st.history.iter().take(2).map(|h| h.verdict).collect();
    assert_eq!(verdicts, [Verdict::Succeeded, Verdict::RolledBack]);
}

/// Issue 33, item 2: the in-memory ECS refuses a strategy change without `forceNewDeployment`,
/// as ECS does (UpdateService API reference, `capacityProviderStrategy`: "you must force a new
/// deployment"); a capacity changed in git still reaches the service, and the next push after it
/// deploys (the old code sent no force: the release failed, and every one after it the same way).
#[test]
fn item_2_a_capacity_change_forces_a_new_deployment_and_later_pushes_still_deploy() {
    let ports = bootstrapped();
    let b = config(WEB);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let spot = config(&WEB.replace("fargate_spot = 3", "fargate_spot = 1"));
    tick_once(&ports, &spot);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.history[0].verdict,
        Verdict::Succeeded,
        "{:?}",
        st.history[0]
    );
    let weights: Vec<u32> = ports.with(|w| {
        let s = &w.services[&(CLUSTER.to_string(), "web".to_string())];
        s.capacity.iter().map(|c| c.weight).collect()
    });
    assert_eq!(weights, [1, 1]);
    send(&ports, &spot, &push_event("e2", "main-2", 'b', 60));
    for _ in 0..2 {
        ports.complete(CLUSTER, "web");
        tick_once(&ports, &spot);
    }
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.history[0].verdict,
        Verdict::Succeeded,
        "{:?}",
        st.history[0]
    );
    assert_eq!(st.history[0].image.tag.as_deref(), Some("main-2"));
}

/// The rule itself: without the force, the in-memory ECS refuses and keeps the old strategy.
#[test]
fn the_in_memory_ecs_refuses_a_strategy_change_without_a_forced_deployment() {
    use harbormaster_core::ports::Services;
    let ports = bootstrapped();
    let b = config(WEB);
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    let (mut target, arn, d) = ports.with(|w| w.updates.last().cloned().unwrap());
    target.settings.capacity[1].weight = 7;
    target.settings.force_new_deployment = false;
    let err = block_on(ports.update(&target, &arn, &d)).unwrap_err();
    assert!(err.message.contains("force a new deployment"), "{err}");
    target.settings.force_new_deployment = true;
    block_on(ports.update(&target, &arn, &d)).unwrap();
}

/// Issue 33, item 8: right after RunTask, DescribeTasks may answer MISSING (RunTask API
/// reference: eventually consistent); the migration is waited for, not failed as a task ECS
/// forgot (the old code failed the deployment on that first answer). Long after its start, a
/// task ECS does not know is gone, and the deployment fails saying so.
#[test]
fn item_8_a_task_not_yet_known_to_describe_tasks_is_waited_for_then_trusted() {
    let (ports, b) = migrating_world();
    send(&ports, &b, &push_event("e1", "main-1", 'a', 0));
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(
        st.in_flight.map(|d| d.phase.kind()),
        Some(PhaseKind::Migrating)
    );
    assert!(st.history.is_empty(), "{:?}", st.history);

    // ECS forgot it (stopped tasks go after about an hour): past the grace, a failure.
    let (arn, _) = only_task(&ports);
    ports.with(|w| {
        w.tasks.remove(&arn);
    });
    ports.advance(chrono::Duration::minutes(2));
    tick_once(&ports, &b);
    let st = ports.state("dev", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Failed);
    assert!(st.history[0]
        .reason
        .as_deref()
        .unwrap_or_default()
        .contains("no longer knows"));
}
