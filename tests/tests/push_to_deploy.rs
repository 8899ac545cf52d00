//! End to end against the local emulator (ministack) over real HTTP with the real SDK: an ECR
//! push event deploys the image by digest, the tick records the outcome, SNS tells the team.

use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{fixture, World, ACCOUNT, FAMILY, REGION, REPOSITORY};
use serde_json::{json, Value};

const CANARIES: [&str; 3] = [
    "db-password-CANARY-7c1f",
    "django-key-CANARY-93ab",
    "redis-CANARY-55d0",
];

/// No revision registered, no state written, no notification sent.
async fn assert_nothing_changed(w: &World, revisions_before: &[String]) {
    assert_eq!(w.revisions(FAMILY).await.unwrap(), revisions_before);
    assert!(w.state_document("dev", "web").await.unwrap().is_none());
    assert!(w.inbox().await.unwrap().is_empty());
}

fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        assert!(!text.contains(c), "a secret value leaked into {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_deploys_the_digest_with_secret_arns_and_the_team_is_told() {
    let w = World::start().await.unwrap();
    let before = w.revisions(FAMILY).await.unwrap();
    let digest = w.push_image("main-abc1234").await.unwrap();
    let report = w.push(&w.push_event("e-1", "main-abc1234", &digest)).await;
    let targets: Vec<_> = report
        .targets
        .iter()
        .map(|t| format!("{}/{}", t.environment, t.service))
        .collect();
    assert_eq!(
        targets,
        ["dev/web", "dev/worker"],
        "both dev services follow main-*; prod does not auto-deploy"
    );
    assert!(report.errors().is_empty(), "{report:?}");

    // One new revision per service, the image pinned by digest, secrets by ARN.
    let after = w.revisions(FAMILY).await.unwrap();
    assert_eq!(after.len(), before.len() + 1);
    let new_arn = after.iter().find(|a| !before.contains(a)).unwrap().clone();
    let td = w.task_definition(&new_arn).await.unwrap();
    let web = &td.container_definitions()[0];
    assert_eq!(
        web.image(),
        Some(format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}@{digest}").as_str())
    );
    let secrets: Vec<(String, String)> = web
        .secrets()
        .iter()
        .map(|s| (s.name().to_owned(), s.value_from().to_owned()))
        .collect();
    assert!(secrets.contains(&(
        "DATABASE_PASSWORD".into(),
        format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/booking/dev/database/password")
    )));
    assert!(web
        .environment()
        .iter()
        .any(|e| e.name() == Some("DJANGO_DEBUG") && e.value() == Some("false")));
    assert_eq!(td.cpu(), Some("512"));
    assert_eq!(w.service_task_definition("web").await.unwrap(), new_arn);

    // The tick follows the rollout (ministack completes it at once) and records it.
    let t = w.tick().await;
    assert!(t.errors().is_empty(), "{t:?}");
    let state = w
        .state_document("dev", "web")
        .await
        .unwrap()
        .expect("state written");
    assert!(state.get("in_flight").is_none(), "{state}");
    assert_eq!(state["last_known_good"]["task_definition_arn"], new_arn);
    assert_eq!(state["last_known_good"]["image"]["digest"], digest);
    assert_eq!(state["history"][0]["verdict"], "succeeded");
    assert_eq!(state["processed_events"], json!(["e-1"]));

    // SNS → SQS: start and success for each service, JSON for machines, attributes for filters.
    let inbox = w.inbox().await.unwrap();
    let web_msgs: Vec<_> = inbox
        .iter()
        .filter(|(_, m, _)| m["service"] == "web")
        .collect();
    let kinds: Vec<_> = web_msgs
        .iter()
        .map(|(_, m, _)| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["started", "succeeded"], "{inbox:?}");
    let (subject, message, attrs) = web_msgs[1];
    assert_eq!(subject, "[booking dev] web: deployed main-abc1234");
    assert_eq!(message["task_definition_arn"], new_arn);
    assert!(message["text"]
        .as_str()
        .unwrap()
        .contains("web is now running booking/web:main-abc1234"));
    assert_eq!(attrs["severity"]["Value"], "info");
    assert_eq!(attrs["environment"]["Value"], "dev");

    // No secret value anywhere: task definition, state, notifications.
    assert_no_canary("the task definition", &format!("{td:?}"));
    assert_no_canary("the state document", &state.to_string());
    assert_no_canary("notifications", &format!("{inbox:?}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_pushes_and_deletes_do_nothing() {
    let w = World::start().await.unwrap();
    let before = w.revisions(FAMILY).await.unwrap();
    for name in ["ecr-push-failed.json", "ecr-delete.json"] {
        let mut e = fixture(name);
        e["detail"]["repository-name"] = json!(REPOSITORY);
        e["detail"]["image-tag"] = json!("main-abc1234");
        let r = w.push(&e).await;
        assert!(r.ignored.is_some() && r.targets.is_empty(), "{name}: {r:?}");
    }
    assert_nothing_changed(&w, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_unknown_events_are_named_errors_and_change_nothing() {
    let w = World::start().await.unwrap();
    let dir = harbormaster_e2e::TempDir::new("bad").unwrap();
    let before = w.revisions(FAMILY).await.unwrap();

    // AWS's own documented sample has a 60-digit digest: not a real one.
    let mut sample = fixture("ecr-push.json");
    sample["detail"]["repository-name"] = json!(REPOSITORY);
    sample["detail"]["image-tag"] = json!("main-abc1234");
    let file = dir.0.join("sample.json");
    std::fs::write(&file, sample.to_string()).unwrap();
    let out = w.cli(&["invoke", "--event", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("sample.json")
            && err.contains("detail.image-digest")
            && err.contains("13cde686"),
        "{err}"
    );

    let file = dir.0.join("unknown.json");
    std::fs::write(
        &file,
        json!({"source": "aws.s3", "detail-type": "Object Created", "detail": {}}).to_string(),
    )
    .unwrap();
    let out = w.cli(&["invoke", "--event", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown.json") && err.contains("Object Created"),
        "{err}"
    );

    let file = dir.0.join("garbage.json");
    std::fs::write(&file, "{ not json").unwrap();
    let out = w.cli(&["invoke", "--event", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("garbage.json: not a JSON event"));

    // The ecr-push function refuses other kinds of event.
    let e = handler::dispatch(
        &w.agent(),
        ECR_PUSH,
        &fixture("scheduled.json"),
        RunOptions::default(),
    )
    .await;
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("ecr-push handles ECR Image Action"));

    assert_nothing_changed(&w, &before).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_runs_make_no_mutating_call() {
    let w = World::start().await.unwrap();
    let dir = harbormaster_e2e::TempDir::new("dry").unwrap();
    let before = w.revisions(FAMILY).await.unwrap();
    let service_td = w.service_task_definition("web").await.unwrap();
    let file = w
        .push_event_file(&dir.0, "e-dry", "main-3333333")
        .await
        .unwrap();

    let out = w.cli_ok(&[
        "--json",
        "invoke",
        "--dry-run",
        "--event",
        file.to_str().unwrap(),
    ]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["targets"][0]["outcome"], "started");
    assert!(
        report["targets"][0]["planned"]
            .to_string()
            .contains("RegisterTaskDefinition"),
        "{report}"
    );

    w.deploy_ok("web", "main-3333333", &["--dry-run"]);

    assert_nothing_changed(&w, &before).await;
    assert_eq!(w.service_task_definition("web").await.unwrap(), service_td);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_deploy_by_tag_then_status_shows_last_known_good() {
    let w = World::start().await.unwrap();
    let digest = w.push_image("main-4444444").await.unwrap();
    w.deploy_ok("web", "main-4444444", &[]);
    w.cli_ok(&["tick"]);

    let out = w.cli(&["status", "--env", "dev", "--service", "web"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("last known good: booking/web:main-4444444"),
        "{text}"
    );
    assert!(text.contains("succeeded"), "{text}");

    let out = w.cli(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let web = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["environment"] == "dev" && s["service"] == "web")
        .unwrap();
    assert_eq!(web["state"]["last_known_good"]["image"]["digest"], digest);

    // Render against AWS: the account from STS, the digest from ECR's tag.
    let out = w.cli_ok(&[
        "render",
        "--env",
        "dev",
        "--service",
        "web",
        "--image",
        "main-4444444",
    ]);
    let td: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        td["containerDefinitions"][0]["image"],
        format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}@{digest}")
    );
    assert_eq!(
        td["executionRoleArn"],
        format!("arn:aws:iam::{ACCOUNT}:role/booking-dev-execution")
    );

    // A tag that is not in ECR is refused before anything happens.
    let out = w.deploy("web", "main-nope", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("tag `main-nope` is not in ECR"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_during_a_deployment_queue_and_the_latest_wins() {
    let w = World::start().await.unwrap();
    let before = w.revisions(FAMILY).await.unwrap().len();
    let mut digests = Vec::new();
    for (i, tag) in ["main-aaaaaaa", "main-bbbbbbb", "main-ccccccc"]
        .iter()
        .enumerate()
    {
        let d = w.push_image(tag).await.unwrap();
        // Event times are whole seconds: keep the pushes apart as they would be.
        let mut e = w.push_event(&format!("e-{i}"), tag, &d);
        e["time"] = json!(format!("2026-11-23T10:00:0{i}Z"));
        let r = w.push(&e).await;
        let expected = if i == 0 { "started" } else { "queued" };
        assert_eq!(
            serde_json::to_value(&r.targets[0]).unwrap()["outcome"],
            expected
        );
        digests.push(d);
    }
    w.tick().await; // first succeeds, the latest starts
    w.tick().await; // the latest succeeds
    let revisions = w.revisions(FAMILY).await.unwrap();
    assert_eq!(revisions.len(), before + 2, "the middle push was skipped");
    let current = w.service_task_definition("web").await.unwrap();
    let td = w.task_definition(&current).await.unwrap();
    assert!(td.container_definitions()[0]
        .image()
        .unwrap()
        .ends_with(&digests[2]));
    let state = w.state_document("dev", "web").await.unwrap().unwrap();
    let verdicts: Vec<_> = state["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["verdict"].as_str().unwrap())
        .collect();
    assert_eq!(verdicts, ["succeeded", "succeeded", "superseded"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tick_deploys_a_push_whose_event_was_lost() {
    let w = World::start().await.unwrap();
    let d1 = w.push_image("main-1000000").await.unwrap();
    let mut e = w.push_event("e-1", "main-1000000", &d1);
    e["time"] = json!("2020-01-01T00:00:00Z");
    w.push(&e).await;
    w.tick().await;
    // ECR's push times (in the emulator) have whole seconds; same-second pushes are left to
    // their events, so keep this one apart.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Pushed, but its event never arrives.
    let d2 = w.push_image("main-2000000").await.unwrap();
    w.tick().await;
    w.tick().await;
    let current = w.service_task_definition("web").await.unwrap();
    let td = w.task_definition(&current).await.unwrap();
    assert!(td.container_definitions()[0]
        .image()
        .unwrap()
        .ends_with(&d2));
    let state = w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(state["last_known_good"]["image"]["tag"], "main-2000000");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambdas_read_the_config_from_s3_and_follow_changes() {
    let w = World::start().await.unwrap();
    let s3 = &w.clients.s3;
    s3.create_bucket()
        .bucket("booking-gitops")
        .send()
        .await
        .unwrap();
    let upload = |path: &'static str, body: String| async move {
        s3.put_object()
            .bucket("booking-gitops")
            .key(format!("main/{path}"))
            .body(body.into_bytes().into())
            .send()
            .await
            .unwrap();
    };
    let toml = std::fs::read_to_string(w.config_dir.join("harbormaster.toml")).unwrap();
    upload("harbormaster.toml", toml.clone()).await;
    for t in ["taskdefs/web.json", "taskdefs/worker.json"] {
        upload(t, std::fs::read_to_string(w.config_dir.join(t)).unwrap()).await;
    }
    let source =
        harbormaster_aws::Source::parse("s3://booking-gitops/main", &w.clients.s3.clone().into());
    // A prefix without a pointer is not read as a folder unless declared one (issue 30, 5).
    let undeclared = harbormaster_aws::Agent::of(w.ports(), source.clone());
    let err = undeclared
        .prepare()
        .await
        .err()
        .expect("no pointer")
        .to_string();
    assert!(err.contains("HARBORMASTER_CONFIG_LAYOUT=folder"), "{err}");
    let agent = harbormaster_aws::Agent::of(w.ports(), source.as_plain_folder());
    let (_, b1) = agent.prepare().await.unwrap();
    assert_eq!(
        b1.config.services["web"].targets["dev"].desired_count,
        Some(1)
    );
    // Warm invocation, nothing changed: served from the ETag cache.
    let (_, b2) = agent.prepare().await.unwrap();
    assert_eq!(b2.config.project, "booking");
    // A commit changes the desired count: the next invocation sees it.
    upload(
        "harbormaster.toml",
        toml.replacen("desired_count = 1\n", "desired_count = 3\n", 1),
    )
    .await;
    let (_, b3) = agent.prepare().await.unwrap();
    assert_eq!(
        b3.config.services["web"].targets["dev"].desired_count,
        Some(3)
    );
    // A bad commit is refused, naming the object.
    upload(
        "harbormaster.toml",
        toml.replace(
            "cluster = \"booking-dev\"",
            "cluster = \"booking-dev\"\nclustr = 1",
        ),
    )
    .await;
    let err = agent.prepare().await.err().expect("refused").to_string();
    assert!(
        err.contains("s3://booking-gitops/main/harbormaster.toml") && err.contains("clustr"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_secret_parameter_fails_the_deployment_and_says_which() {
    let w = World::start().await.unwrap();
    w.clients
        .ssm
        .delete_parameter()
        .name("/booking/dev/redis/url")
        .send()
        .await
        .unwrap();
    let before = w.revisions("booking-dev-worker").await.unwrap();
    let digest = w.push_image("main-5555555").await.unwrap();
    let r = w
        .push(&w.push_event("e-ssm", "main-5555555", &digest))
        .await;
    let worker = r.targets.iter().find(|t| t.service == "worker").unwrap();
    let v = serde_json::to_value(worker).unwrap();
    assert_eq!(
        (v["outcome"].as_str(), v["verdict"].as_str()),
        (Some("finished"), Some("failed")),
        "{v}"
    );
    assert_eq!(v["journal"][1]["to"], "failed", "{v}");
    assert_eq!(
        w.revisions("booking-dev-worker").await.unwrap(),
        before,
        "nothing registered"
    );
    let inbox = w.inbox().await.unwrap();
    let failed = inbox
        .iter()
        .find(|(_, m, _)| m["service"] == "worker" && m["kind"] == "failed")
        .expect("a failure notice");
    assert!(
        failed.1["reason"]
            .as_str()
            .unwrap()
            .contains("/booking/dev/redis/url"),
        "{failed:?}"
    );
    assert_eq!(failed.2["severity"]["Value"], "critical");
    // The web service, whose parameters exist, deployed as usual.
    assert_eq!(
        r.targets.iter().find(|t| t.service == "web").unwrap().error,
        None
    );
}
