//! The secrets canary: recognisable secret values (SSM SecureStrings: a database password, a
//! Django key, a Redis URL with a password) sit where the agent reads around them while it
//! deploys, ticks, rolls back, scales and reports. None may appear in any log line, error,
//! report, notification or state document. (The pipeline's artifact credentials have their own
//! canary test in `pipeline.rs`.)

use harbormaster_e2e::{TempDir, World};

const CANARIES: [&str; 3] = [
    "db-password-CANARY-7c1f",
    "django-key-CANARY-93ab",
    "redis-CANARY-55d0",
];

fn run(w: &World, args: &[&str], seen: &mut String) -> std::process::Output {
    // The full reports: more fields where a secret could slip in than the summaries.
    let mut all = vec!["-v", "--log-json", "--json"];
    all.extend_from_slice(args);
    let out = w.cli(&all);
    seen.push_str(&String::from_utf8_lossy(&out.stdout));
    seen.push_str(&String::from_utf8_lossy(&out.stderr));
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_a_log_an_error_a_report_or_a_notification() {
    let w = World::start().await.unwrap();
    // The worker scales on Redis whose URL (with its password) is an SSM SecureString; the host
    // does not resolve here, so the agent also has to report a failure without the URL in it.
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[services.worker.environments.dev]\n",
        "[services.worker.environments.dev]\nscaling = { max = 3, per_task = 10, redis = { url_secret = \"redis/url\" } }\nalarms = [\"booking-dev-worker-*\"]\n",
    );
    std::fs::write(&path, text).unwrap();
    let tmp = TempDir::new("secrets").unwrap();
    let mut seen = String::new();

    for tag in ["main-5ec0001", "main-5ec0002"] {
        let file = w.push_event_file(&tmp.0, tag, tag).await.unwrap();
        run(
            &w,
            &["invoke", "--event", &file.display().to_string()],
            &mut seen,
        );
        run(&w, &["tick"], &mut seen);
    }
    run(
        &w,
        &[
            "render",
            "--env",
            "dev",
            "--service",
            "web",
            "--image",
            "main-5ec0002",
        ],
        &mut seen,
    );
    let out = run(
        &w,
        &["scale", "--env", "dev", "--service", "worker", "--dry-run"],
        &mut seen,
    );
    assert!(
        !out.status.success(),
        "the Redis host does not resolve here"
    );
    let alarm = harbormaster_e2e::alarm_event(
        "secrets-alarm",
        "booking-dev-worker-errors",
        chrono::Utc::now(),
    );
    let file = tmp.0.join("alarm.json");
    std::fs::write(&file, alarm.to_string()).unwrap();
    run(
        &w,
        &["invoke", "--event", &file.display().to_string()],
        &mut seen,
    );
    run(&w, &["status"], &mut seen);
    run(&w, &["status"], &mut seen);

    for s in ["web", "worker"] {
        seen.push_str(
            &w.state_document("dev", s)
                .await
                .unwrap()
                .unwrap()
                .to_string(),
        );
    }
    let inbox = w.inbox().await.unwrap();
    assert!(
        inbox.iter().any(|(_, m, _)| m["kind"] == "rolled_back"),
        "the story ran: {inbox:?}"
    );
    seen.push_str(&format!("{inbox:?}"));
    // What ECS was given references the secrets by ARN only.
    let td = w.service_task_definition("web").await.unwrap();
    seen.push_str(&format!("{:?}", w.task_definition(&td).await.unwrap()));

    assert!(
        seen.contains("valueFrom") || seen.contains("value_from"),
        "the secrets were referenced"
    );
    for c in CANARIES {
        assert!(
            !seen.contains(c),
            "secret `{c}` leaked into what the agent wrote"
        );
    }
}
