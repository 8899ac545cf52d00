//! Worker scaling end to end: the backlog in the emulator's SQS (or a real redis-server), the
//! tick or `harbormaster scale`, and the ECS service's desired count.

use harbormaster_e2e::World;
use harbormaster_testkit::redis::RedisServer;
use serde_json::Value;

const QUEUE: &str = "booking-dev-jobs";

/// `scale --dry-run` of the worker, its report as JSON: the decision and its inputs, nothing
/// changed.
const SCALE_PLAN: &[&str] = &[
    "--json",
    "scale",
    "--env",
    "dev",
    "--service",
    "worker",
    "--dry-run",
];

/// The example config with the worker scaled on `source` (a TOML inline table).
fn scale_worker(w: &World, source: &str) {
    // The example as the world has it (what the emulator can run), the worker scaled in dev.
    let path = w.config_dir.join("harbormaster.toml");
    let example = harbormaster_e2e::workspace_root().join("examples/booking/harbormaster.toml");
    let example = std::fs::read_to_string(example).unwrap();
    let text = harbormaster_e2e::emulator_config(&example).replace(
        "[services.worker.environments.dev]\n",
        &format!(
            "[services.worker.environments.dev]\nscaling = {{ min = 1, max = 5, per_task = 100, scale_in_cooldown_seconds = 2, scale_out_cooldown_seconds = 0, {source} }}\n"
        ),
    );
    std::fs::write(&path, text).unwrap();
}

/// A world whose worker scales on the SQS queue [`QUEUE`]: the world and the queue's URL.
async fn sqs_world() -> (World, String) {
    let w = World::start().await.unwrap();
    let url = w
        .clients
        .sqs
        .create_queue()
        .queue_name(QUEUE)
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    scale_worker(&w, &format!("sqs = {{ queue = \"{QUEUE}\" }}"));
    (w, url)
}

async fn desired(w: &World) -> i32 {
    w.clients
        .ecs
        .describe_services()
        .cluster(harbormaster_e2e::CLUSTER)
        .services("worker")
        .send()
        .await
        .unwrap()
        .services
        .unwrap()[0]
        .desired_count
}

async fn fill(w: &World, url: &str, n: usize) {
    use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
    for batch in 0..n / 10 {
        let entries = (0..10)
            .map(|i| {
                SendMessageBatchRequestEntry::builder()
                    .id(format!("m{i}"))
                    .message_body(format!("{{\"job\": {}}}", batch * 10 + i))
                    .build()
                    .unwrap()
            })
            .collect();
        w.clients
            .sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .unwrap();
    }
}

fn worker(report: &harbormaster_core::dispatch::DispatchReport) -> Value {
    let t = report
        .targets
        .iter()
        .find(|t| t.service == "worker")
        .unwrap();
    serde_json::to_value(t).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_take_the_worker_to_max_and_an_empty_queue_back_to_min() {
    let (w, url) = sqs_world().await;
    fill(&w, &url, 1000).await;
    assert_eq!(desired(&w).await, 1);

    // The dry run decides and says why, from the real inputs, and changes nothing.
    let out = w.cli_ok(SCALE_PLAN);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scaling"]["backlog"], 1000, "{r}");
    assert_eq!(r["scaling"]["desired"], 5, "{r}");
    let emf = String::from_utf8_lossy(&out.stderr);
    assert!(
        emf.contains("\"CloudWatchMetrics\"") && emf.contains("\"BacklogPerTask\""),
        "{emf}"
    );
    assert_eq!(desired(&w).await, 1, "a dry run changes nothing");

    let t = w.tick().await;
    assert_eq!(worker(&t)["scaling"]["desired"], 5, "{}", worker(&t));
    assert_eq!(
        desired(&w).await,
        5,
        "one tick with 1,000 messages sets 5 (max)"
    );

    w.clients
        .sqs
        .purge_queue()
        .queue_url(&url)
        .send()
        .await
        .unwrap();
    w.tick().await;
    assert_eq!(
        desired(&w).await,
        5,
        "not before the backlog stayed low for the cooldown"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2200)).await;
    let t = w.tick().await;
    assert_eq!(desired(&w).await, 1, "back to min: {}", worker(&t));
    // No change: no UpdateService for the count.
    let t = w.tick().await;
    assert_eq!(
        worker(&t)["journal"].as_array().map(Vec::len),
        Some(0),
        "{}",
        worker(&t)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_waits_while_a_deployment_of_the_worker_is_in_flight() {
    let (w, url) = sqs_world().await;
    fill(&w, &url, 300).await;
    let digest = w.push_image("main-5ca1e00").await.unwrap();
    let event = w.push_event("push-scale", "main-5ca1e00", &digest);
    harbormaster_aws::handler::dispatch(
        &w.agent(),
        harbormaster_aws::handler::ECR_PUSH,
        &event,
        harbormaster_core::RunOptions::default(),
    )
    .await
    .unwrap();
    let out = w.cli_ok(&["--json", "scale", "--env", "dev", "--service", "worker"]);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        r["scaling"]["reason"]
            .as_str()
            .unwrap()
            .contains("deployment"),
        "{r}"
    );
    assert_eq!(desired(&w).await, 1);
    let state = w.state_document("dev", "worker").await.unwrap().unwrap();
    assert_eq!(state["scaling"]["waiting_for_deployment"], true, "{state}");
    // The tick finishes the rollout first, then scales.
    w.tick().await;
    assert_eq!(desired(&w).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dramatiqs_redis_lists_are_the_backlog() {
    let w = World::start().await.unwrap();
    let redis = RedisServer::start().unwrap();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    for (key, n) in [("dramatiq:default", 250), ("dramatiq:default.DQ", 120)] {
        for i in 0..n {
            let _: () = redis::cmd("RPUSH")
                .arg(key)
                .arg(format!("msg-{i}"))
                .query_async(&mut con)
                .await
                .unwrap();
        }
    }
    scale_worker(
        &w,
        &format!(
            "redis = {{ url = \"{}\", queues = [\"default\"] }}",
            redis.url()
        ),
    );
    let out = w.cli_ok(SCALE_PLAN);
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (
            r["scaling"]["backlog"].as_u64(),
            r["scaling"]["desired"].as_u64()
        ),
        (Some(250), Some(3)),
        "{r}"
    );

    scale_worker(
        &w,
        &format!(
            "redis = {{ url = \"{}\", queues = [\"default\"], include_delayed = true }}",
            redis.url()
        ),
    );
    w.cli_ok(&["--json", "scale", "--env", "dev", "--service", "worker"]);
    assert_eq!(desired(&w).await, 4, "250 + 120 delayed at 100 per task");
}

/// ElastiCache with transit encryption answers TLS only, so the bootstrap writes `rediss://`
/// (issue 15, point 12). Against a TLS-only redis-server with its own CA: trusted (the CA in
/// `SSL_CERT_FILE`, as the system's roots hold Amazon's in Lambda), `scale --dry-run` and the
/// tick read the queue; untrusted, the failure is a reason in the report, a non-zero exit, and
/// an UNREADABLE backlog in `status`, never a silent "progressed".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dramatiq_queue_is_read_over_tls_and_an_unreadable_one_is_visible() {
    let w = World::start().await.unwrap();
    let redis = RedisServer::start_tls().unwrap();
    let ca = redis.ca_file().unwrap().display().to_string();
    let certs = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(std::fs::read(&ca).unwrap()),
    };
    let client = redis::Client::build_with_tls(redis.url(), certs).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    for i in 0..250 {
        let _: () = redis::cmd("RPUSH")
            .arg("dramatiq:default")
            .arg(format!("msg-{i}"))
            .query_async(&mut con)
            .await
            .unwrap();
    }
    assert!(redis.url().starts_with("rediss://"));
    scale_worker(
        &w,
        &format!(
            "redis = {{ url = \"{}\", queues = [\"default\"] }}",
            redis.url()
        ),
    );
    let trusted = [("SSL_CERT_FILE", ca.as_str())];

    // Without the CA the server's certificate is refused, and the reason says so.
    let untrusted = w.cli(&["scale", "--env", "dev", "--service", "worker", "--dry-run"]);
    assert!(
        !untrusted.status.success(),
        "an unreadable backlog is a failure"
    );
    let reason = String::from_utf8_lossy(&untrusted.stderr);
    assert!(
        reason.contains("Redis LLEN: invalid peer certificate"),
        "{reason}"
    );
    assert!(!reason.contains("rediss://"), "{reason}");

    let out = w.cli_with(SCALE_PLAN, &trusted);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["scaling"]["backlog"].as_u64(), Some(250), "{r}");

    // The tick without the CA: the problem is in its report and in the state `status` shows.
    let tick = w.cli(&["tick"]);
    assert!(!tick.status.success());
    let status = w.cli(&["status", "--env", "dev", "--service", "worker"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("backlog:         UNREADABLE since"), "{text}");
    // With it: read, sized, and the problem gone.
    let tick = w.cli_with(&["tick"], &trusted);
    assert!(
        tick.status.success(),
        "{}",
        String::from_utf8_lossy(&tick.stdout)
    );
    assert_eq!(desired(&w).await, 3, "250 at 100 per task");
    let status = w.cli(&["status", "--env", "dev", "--service", "worker"]);
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("backlog:         250"), "{text}");
}
