//! Services owned from git, end to end (issue 18): after `harbormaster-bootstrap apply`, the
//! first push creates both services with the bootstrap's network and target group, the
//! capacity strategy and the tags — no AWS call made by the test on the agent's behalf. The
//! same push delivered twice at once creates each once. Application Auto Scaling is a
//! recording server here (ministack lacks it); its adapter's round trip runs against moto below.

use aws_sdk_ecs::types::ServiceField;
use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{setup, World, CLUSTER};
use serde_json::Value;

/// An emulator after `harbormaster-bootstrap apply --env dev`, and the team's world on it: no
/// ECS service yet.
async fn bootstrapped() -> World {
    let emulator = harbormaster_testkit::Emulator::start().unwrap();
    setup::bootstrap(&emulator).unwrap();
    World::on(emulator, harbormaster_e2e::Base::Bootstrapped)
        .await
        .unwrap()
}

/// DescribeServices of `names` in the world's cluster, with their tags.
async fn described(w: &World, names: &[&str]) -> Vec<aws_sdk_ecs::types::Service> {
    let mut req = w.clients.ecs.describe_services().cluster(CLUSTER);
    for n in names {
        req = req.services(*n);
    }
    let out = req.include(ServiceField::Tags).send().await.unwrap();
    out.services().to_vec()
}

async fn output(w: &World, name: &str) -> String {
    w.clients
        .ssm
        .get_parameter()
        .name(format!("/booking/dev/outputs/{name}"))
        .send()
        .await
        .unwrap()
        .parameter
        .and_then(|p| p.value)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_bootstrap_a_push_creates_both_services_wired_to_it_and_twice_at_once_creates_each_once(
) {
    let w = bootstrapped().await;
    let listed = w
        .clients
        .ecs
        .list_services()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap();
    assert!(
        listed.service_arns().is_empty(),
        "no service before the push"
    );

    let digest = w.push_image("main-5e7f001").await.unwrap();
    let event = w.push_event("push-1", "main-5e7f001", &digest);
    let (agent_a, agent_b) = (w.agent(), w.agent());
    let (a, b) = tokio::join!(
        handler::dispatch(&agent_a, ECR_PUSH, &event, RunOptions::default()),
        handler::dispatch(&agent_b, ECR_PUSH, &event, RunOptions::default()),
    );
    let reports = format!("{:?}\n{:?}", a.unwrap(), b.unwrap());

    let listed = w
        .clients
        .ecs
        .list_services()
        .cluster(CLUSTER)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.service_arns().len(), 2, "{reports}");
    expect_wired_to_the_bootstrap(&w).await;
    // One deployment each, though the push arrived twice at once.
    for service in ["web", "worker"] {
        let st: Value = w.state_document("dev", service).await.unwrap().unwrap();
        assert_eq!(st["deployments_started"], 1, "{service}: {st}");
    }
    expect_target_tracking_for_web(&w);
}

/// Each service in the bootstrap's private subnets and services group, no public IP, tagged
/// as the agent's, on its capacity (Spot for the worker in dev); web behind its blue target
/// group at dev's count.
async fn expect_wired_to_the_bootstrap(w: &World) {
    let described = described(w, &["web", "worker"]).await;
    let subnets: Vec<String> = output(w, "private-subnet-ids")
        .await
        .split(',')
        .map(str::to_owned)
        .collect();
    let sg = output(w, "security-groups/services").await;
    let blue = output(w, "target-groups/web/blue").await;
    for svc in &described {
        let name = svc.service_name().unwrap();
        let vpc = svc
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .unwrap_or_else(|| panic!("{name}: no network"));
        assert_eq!(vpc.subnets(), subnets.as_slice(), "{name}");
        assert_eq!(vpc.security_groups(), std::slice::from_ref(&sg), "{name}");
        assert_eq!(
            vpc.assign_public_ip(),
            Some(&aws_sdk_ecs::types::AssignPublicIp::Disabled)
        );
        let tags: Vec<(String, String)> = svc
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect();
        assert!(
            tags.contains(&("harbormaster:service".into(), name.into())),
            "{name}: {tags:?}"
        );
        let strategy: Vec<(String, i32, i32)> = svc
            .capacity_provider_strategy()
            .iter()
            .map(|c| (c.capacity_provider().to_owned(), c.weight(), c.base()))
            .collect();
        match name {
            "web" => {
                let lb = &svc.load_balancers()[0];
                assert_eq!(lb.target_group_arn(), Some(blue.as_str()));
                assert_eq!(
                    (lb.container_name(), lb.container_port()),
                    (Some("web"), Some(8000))
                );
                // No strategy in git: the FARGATE launch type, which any cluster takes
                // (issue 33, item 10).
                assert_eq!(strategy, []);
                assert_eq!(
                    svc.launch_type(),
                    Some(&aws_sdk_ecs::types::LaunchType::Fargate)
                );
                assert_eq!(
                    svc.desired_count(),
                    1,
                    "dev's count, within autoscaling's 1..5"
                );
            }
            "worker" => {
                assert!(svc.load_balancers().is_empty());
                assert_eq!(
                    strategy,
                    [
                        ("FARGATE".to_string(), 1, 1),
                        ("FARGATE_SPOT".to_string(), 3, 0)
                    ],
                    "Spot in dev"
                );
            }
            other => panic!("unexpected service {other}"),
        }
    }
}

/// Target tracking as the config says, for web only.
fn expect_target_tracking_for_web(w: &World) {
    let registered = w.autoscaling.calls.of("RegisterScalableTarget");
    assert_eq!(registered.len(), 1, "{:?}", w.autoscaling.calls.all());
    assert_eq!(registered[0]["ResourceId"], "service/booking-dev/web");
    assert_eq!(
        registered[0]["ScalableDimension"],
        "ecs:service:DesiredCount"
    );
    assert_eq!(
        (
            registered[0]["MinCapacity"].as_i64(),
            registered[0]["MaxCapacity"].as_i64()
        ),
        (Some(1), Some(5))
    );
    let mut policies: Vec<(String, f64)> = w
        .autoscaling
        .calls
        .of("PutScalingPolicy")
        .iter()
        .map(|p| {
            let c = &p["TargetTrackingScalingPolicyConfiguration"];
            (
                c["PredefinedMetricSpecification"]["PredefinedMetricType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                c["TargetValue"].as_f64().unwrap(),
            )
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        policies,
        [
            ("ECSServiceAverageCPUUtilization".to_string(), 70.0),
            ("ECSServiceAverageMemoryUtilization".to_string(), 80.0)
        ]
    );
}

/// Issue 32, finding 4: `service delete` left the service's state document behind, so a
/// later service of that name would start with a last known good that never ran there. It is
/// archived (`archive/state/<env>/<service>/<time>.json`, the history kept) and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_4_service_delete_archives_the_state_document() {
    let w = bootstrapped().await;
    let digest = w.push_image("main-5e7f002").await.unwrap();
    w.push(&w.push_event("push-1", "main-5e7f002", &digest))
        .await;
    assert!(w.state_document("dev", "worker").await.unwrap().is_some());
    let shown = w.cli_ok(&["service", "delete", "--env", "dev", "--service", "worker"]);
    let words = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        words.contains("archive its state document state/dev/worker.json"),
        "{words}"
    );
    assert!(
        w.state_document("dev", "worker").await.unwrap().is_some(),
        "a preview"
    );
    w.cli_ok(&[
        "service",
        "delete",
        "--env",
        "dev",
        "--service",
        "worker",
        "--yes",
    ]);
    assert!(w.state_document("dev", "worker").await.unwrap().is_none());
    let listed = (w.clients.s3.list_objects_v2())
        .bucket("booking-harbormaster-state")
        .prefix("archive/state/dev/worker/")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.contents().len(), 1, "{listed:?}");
}

/// The adapter against moto's Application Auto Scaling (and its ECS, which it checks a target
/// against): what is registered reads back as what was asked (so the next plan is empty), a
/// policy dropped from git goes, and `autoscaling` removed deregisters the target. Then
/// `harbormaster service delete` shows its steps and changes nothing, and with `--yes` the
/// service and its scalable target are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_tracking_round_trips_through_moto_and_service_delete_removes_it_all() {
    use harbormaster_core::ports::Autoscaler;
    use harbormaster_core::service::{plan_scaling, ScalingWant};
    let moto = harbormaster_testkit::moto::Moto::start().unwrap();
    let sdk = harbormaster_e2e::sdk_at(&moto.endpoint).await;
    let ports = a_service_on(&moto, &sdk).await;
    let want = cpu_and_memory();
    let sync = |want: Option<ScalingWant>| {
        let ports = ports.clone();
        async move {
            let now = ports.scaling(CLUSTER, "web").await.unwrap();
            for step in plan_scaling(now.as_ref(), want.as_ref()) {
                ports.apply_scaling(CLUSTER, "web", &step).await.unwrap();
            }
            ports.scaling(CLUSTER, "web").await.unwrap()
        }
    };
    let registered = sync(Some(want.clone())).await.expect("registered");
    assert_eq!((registered.min, registered.max), (1, 5));
    let mut got = registered.policies.clone();
    got.sort_by(|a, b| a.name.cmp(&b.name));
    assert_eq!(got, want.policies, "read back as asked");
    assert!(plan_scaling(Some(&registered), Some(&want)).is_empty());

    let mut cpu_only = want.clone();
    cpu_only.policies.truncate(1);
    let now = sync(Some(cpu_only.clone())).await.unwrap();
    assert_eq!(now.policies, cpu_only.policies);
    assert_eq!(sync(None).await, None, "removed from git: deregistered");

    sync(Some(want.clone())).await.unwrap();
    expect_service_delete_removes_it_all(&moto, &ports).await;
}

/// What the bootstrap makes (the cluster) and dev's web created on it by the adapter, as the
/// agent creates a service.
async fn a_service_on(
    moto: &harbormaster_testkit::moto::Moto,
    sdk: &aws_config::SdkConfig,
) -> harbormaster_aws::AwsPorts {
    use harbormaster_core::ports::{ServiceTarget, Services};
    let ecs = aws_sdk_ecs::Client::new(sdk);
    ecs.create_cluster()
        .cluster_name(CLUSTER)
        .send()
        .await
        .unwrap();
    let td = ecs
        .register_task_definition()
        .family("booking-dev-web")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("web")
                .image("public.ecr.aws/docker/library/python:3.12-slim")
                .memory(512)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .unwrap();
    let ports = harbormaster_aws::AwsPorts::new(sdk, "");
    let mut target = ServiceTarget {
        environment: "dev".into(),
        name: "web".into(),
        cluster: CLUSTER.into(),
        service: "web".into(),
        native: None,
        settings: Default::default(),
    };
    target.settings.network = Some(harbormaster_core::service::Network {
        subnets: vec![moto.default_subnet().unwrap()],
        security_groups: Vec::new(),
        assign_public_ip: false,
    });
    target.settings.capacity = harbormaster_core::service::Capacity::default().strategy();
    target.settings.initial_count = 1;
    target.settings.tags = vec![
        ("harbormaster:project".into(), "booking".into()),
        ("harbormaster:environment".into(), "dev".into()),
        ("harbormaster:service".into(), "web".into()),
    ];
    let d = harbormaster_core::state::DeploymentId("d-1".into());
    ports.create(&target, &td, &d, "token-1").await.unwrap();
    // Issue 32, finding 4: a service of the config's name the agent did not create (no tags).
    target.name = "worker".into();
    target.service = "worker".into();
    target.settings.tags = Vec::new();
    ports.create(&target, &td, &d, "token-2").await.unwrap();
    ports
}

/// Web's target tracking as the example asks: CPU at 70 %, memory at 80 %, 1 to 5 tasks.
fn cpu_and_memory() -> harbormaster_core::service::ScalingWant {
    use harbormaster_core::service::{ScalingWant, TrackingPolicy};
    let policy = |metric: &str, target: f64| TrackingPolicy {
        name: harbormaster_core::service::policy_name(metric),
        metric: metric.into(),
        resource_label: None,
        target,
        scale_in_cooldown_seconds: 120,
        scale_out_cooldown_seconds: 300,
    };
    ScalingWant {
        min: 1,
        max: 5,
        policies: vec![
            policy("ECSServiceAverageCPUUtilization", 70.0),
            policy("ECSServiceAverageMemoryUtilization", 80.0),
        ],
    }
}

/// `service delete`: without --yes it shows its steps and nothing changes; with it the service
/// and its scalable target go.
async fn expect_service_delete_removes_it_all(
    moto: &harbormaster_testkit::moto::Moto,
    ports: &harbormaster_aws::AwsPorts,
) {
    use harbormaster_core::ports::{Autoscaler, ServiceStatus, Services};
    let config = harbormaster_e2e::TempDir::new("moto-config").unwrap();
    std::fs::create_dir_all(config.0.join("taskdefs")).unwrap();
    for f in [
        "harbormaster.toml",
        "taskdefs/web.json",
        "taskdefs/worker.json",
    ] {
        let from = harbormaster_e2e::workspace_root()
            .join("examples/booking")
            .join(f);
        std::fs::copy(from, config.0.join(f)).unwrap();
    }
    let cli = |args: &[&str]| {
        std::process::Command::new(harbormaster_e2e::cli_binary().unwrap())
            .arg("--config")
            .arg(&config.0)
            .args(args)
            .envs(moto.env())
            .output()
            .unwrap()
    };
    // Issue 32, finding 4: `service delete --yes` deleted any ECS service of the config's name.
    let refused = cli(&[
        "service",
        "delete",
        "--env",
        "dev",
        "--service",
        "worker",
        "--yes",
    ]);
    let err = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(
        !refused.status.success() && err.contains("not tagged as booking's dev/worker"),
        "{err}"
    );
    assert_eq!(
        ports.describe(CLUSTER, "worker").await.unwrap().status,
        ServiceStatus::Active,
        "another's service is left alone"
    );
    let shown = cli(&["service", "delete", "--env", "dev", "--service", "web"]);
    let words = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(
        words.contains("DeregisterScalableTarget") && words.contains("DeleteService"),
        "{words}"
    );
    assert!(words.contains("nothing was changed"), "{words}");
    assert!(ports.scaling(CLUSTER, "web").await.unwrap().is_some());
    assert_eq!(
        ports.describe(CLUSTER, "web").await.unwrap().status,
        ServiceStatus::Active
    );

    let done = cli(&[
        "service",
        "delete",
        "--env",
        "dev",
        "--service",
        "web",
        "--yes",
    ]);
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(ports.scaling(CLUSTER, "web").await.unwrap(), None);
    let gone = ports.describe(CLUSTER, "web").await;
    assert!(
        gone.as_ref()
            .map_or(true, |s| s.status != ServiceStatus::Active),
        "{gone:?}"
    );
}

/// The migration's RunTask against the emulator: the new revision, the container's command
/// overridden, the service's network; the emulator never stops it (no containers without
/// Docker), so the deployment waits in `migrating` — ten ticks later still with one task and
/// the service untouched. Its exit codes are played in `crates/core/tests/services.rs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migration_runs_the_new_revision_once_in_the_service_network_before_any_update() {
    let w = bootstrapped().await;
    // Put back the example's migration the world leaves out.
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[services.web.environments.dev]\n",
        "before_deploy = { command = [\"python\", \"manage.py\", \"migrate\", \"--noinput\"] }\n[services.web.environments.dev]\n",
    );
    std::fs::write(&path, text).unwrap();

    let digest = w.push_image("main-5e7f002").await.unwrap();
    let event = w.push_event("push-m", "main-5e7f002", &digest);
    w.push(&event).await;
    for _ in 0..10 {
        w.tick().await;
    }
    let listed = w
        .clients
        .ecs
        .list_tasks()
        .cluster(CLUSTER)
        .started_by("harbormaster")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.task_arns().len(), 1, "one task, however many ticks");
    let tasks = w
        .clients
        .ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(listed.task_arns().to_vec()))
        .send()
        .await
        .unwrap();
    let task = &tasks.tasks()[0];
    let st: Value = w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(st["in_flight"]["phase"], "migrating", "{st}");
    assert_eq!(
        task.task_definition_arn(),
        st["in_flight"]["task_definition_arn"].as_str()
    );
    let o = &task.overrides().unwrap().container_overrides()[0];
    assert_eq!(o.name(), Some("web"));
    assert_eq!(o.command(), ["python", "manage.py", "migrate", "--noinput"]);
    // web does not exist yet: the migration runs before the service is created.
    let web = described(&w, &["web"]).await;
    assert!(
        web.iter().all(|s| s.status() != Some("ACTIVE")),
        "the service is not touched while the migration runs"
    );
}

/// A deleted service is listed INACTIVE for a while; ECS refuses to update it, and the
/// emulator did not (a push "started"). It counts as missing: the next push creates it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_service_is_created_again_by_the_next_push() {
    let w = bootstrapped().await;
    for (n, tag) in ["main-de1e7e1", "main-de1e7e2"].iter().enumerate() {
        if n == 1 {
            // Someone deletes web by hand.
            let ecs = &w.clients.ecs;
            ecs.delete_service()
                .cluster(CLUSTER)
                .service("web")
                .force(true)
                .send()
                .await
                .unwrap();
        }
        let digest = w.push_image(tag).await.unwrap();
        let event = w.push_event(&format!("push-d{n}"), tag, &digest);
        w.push(&event).await;
        w.tick().await;
    }
    let web = described(&w, &["web"]).await;
    let web = &web[0];
    // The emulator accepts UpdateService of a deleted service and leaves it INACTIVE: ACTIVE
    // means CreateService ran.
    assert_eq!(web.status(), Some("ACTIVE"));
    let st: Value = w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(st["history"][0]["verdict"], "succeeded", "{st}");
    assert_eq!(
        web.task_definition(),
        st["last_known_good"]["task_definition_arn"].as_str()
    );
}

/// `harbormaster run` against the emulator: `--dry-run` starts nothing; a run starts one task
/// of the revision web runs, in its network, with the command overridden, and — the emulator
/// never stopping a task — gives up waiting with exit 4 after `--timeout-minutes 0`. Exit codes
/// by the task's end are the adapter's (`crates/aws/tests/tasks.rs`) and `Exit`'s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_starts_one_task_of_the_running_revision_with_the_command() {
    let w = bootstrapped().await;
    let digest = w.push_image("main-0e0e0e1").await.unwrap();
    let event = w.push_event("push-r", "main-0e0e0e1", &digest);
    w.push(&event).await;
    let running = w.service_task_definition("web").await.unwrap();
    let tasks = || async {
        w.clients
            .ecs
            .list_tasks()
            .cluster(CLUSTER)
            .started_by("harbormaster-run")
            .send()
            .await
            .unwrap()
            .task_arns()
            .to_vec()
    };
    let args = [
        "run",
        "--env",
        "dev",
        "--service",
        "web",
        "--timeout-minutes",
        "0",
    ];
    let dry = w.cli(
        &[
            &args[..],
            &["--dry-run", "--", "python", "manage.py", "check"],
        ]
        .concat(),
    );
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(tasks().await.is_empty(), "a dry run starts nothing");

    let out = w.cli(&[&args[..], &["--", "python", "manage.py", "check"]].concat());
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("still running"));
    let started = tasks().await;
    assert_eq!(started.len(), 1);
    let described = w
        .clients
        .ecs
        .describe_tasks()
        .cluster(CLUSTER)
        .set_tasks(Some(started))
        .send()
        .await
        .unwrap();
    let task = &described.tasks()[0];
    assert_eq!(task.task_definition_arn(), Some(running.as_str()));
    let o = &task.overrides().unwrap().container_overrides()[0];
    assert_eq!(o.command(), ["python", "manage.py", "check"]);
}

/// A service removed from git keeps running: `status` and `diff` name it as orphaned (and
/// `diff` exits 1); nothing deletes it by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_removed_from_git_is_reported_orphaned_and_left_running() {
    let w = bootstrapped().await;
    let digest = w.push_image("main-0a0a0a1").await.unwrap();
    let event = w.push_event("push-o", "main-0a0a0a1", &digest);
    w.push(&event).await;
    w.tick().await;
    // The worker leaves git.
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept = &text[..text.find("[services.worker]").unwrap()];
    std::fs::write(&path, kept).unwrap();
    w.tick().await;

    let status = w.cli(&["status", "--env", "dev"]);
    let words = String::from_utf8_lossy(&status.stdout);
    assert!(words.contains("dev/worker: ORPHANED"), "{words}");
    let json = w.cli(&["status", "--env", "dev", "--json"]);
    let v: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(
        v.as_array()
            .unwrap()
            .iter()
            .any(|e| e["service"] == "worker" && e["orphaned"] == true),
        "{v}"
    );
    let diff = w.cli(&["diff", "--env", "dev"]);
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    assert!(String::from_utf8_lossy(&diff.stdout).contains("dev/worker: ORPHANED"));
    let worker = described(&w, &["worker"]).await;
    assert_eq!(worker[0].status(), Some("ACTIVE"), "still running");
}
