//! The Lambda function binaries themselves, run as Lambda runs them: against a stand-in Runtime
//! API on loopback, with the emulator as AWS.

use std::process::{Command, Stdio};
use std::time::Duration;

use harbormaster_e2e::{binary, World, FAMILY};
use harbormaster_testkit::runtime_api::{self, Seen};
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecr_push_function_deploys_a_push_and_answers_the_runtime() {
    let w = World::start().await.unwrap();
    let before = w.revisions(FAMILY).await.unwrap().len();
    let digest = w.push_image("main-fade123").await.unwrap();
    let event = w.push_event("fn-1", "main-fade123", &digest);
    let (port, seen) = runtime_api::serve(vec![event.to_string(), event.to_string()]).unwrap();
    let mut child = Command::new(binary("ecr-push").unwrap())
        .envs(w.cli_env())
        .envs(runtime_api::lambda_env(port, "ecr-push"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut answers = Vec::new();
    while answers.len() < 2 {
        match seen.recv_timeout(Duration::from_secs(30)) {
            Ok(Seen::Answer(path, body)) => {
                answers.push((path, serde_json::from_str::<Value>(&body).unwrap()))
            }
            Ok(Seen::FirstRequest(_)) => {}
            Err(e) => panic!("the function did not answer: {e}"),
        }
    }
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        answers.iter().all(|(p, _)| p.ends_with("/response")),
        "{answers:?}"
    );
    assert_eq!(answers[0].1["targets"][0]["outcome"], "started");
    assert_eq!(
        answers[1].1["targets"][0]["outcome"], "duplicate",
        "a redelivery is a no-op"
    );
    assert_eq!(w.revisions(FAMILY).await.unwrap().len(), before + 1);

    // JSON logs, one line per transition, with the fields a query needs.
    let logs = String::from_utf8_lossy(&out.stdout);
    let transitions: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "transition")
        .collect();
    assert!(transitions.len() >= 3, "{logs}");
    let t = &transitions[0]["fields"];
    for field in [
        "environment",
        "service",
        "deployment_id",
        "digest",
        "from",
        "to",
    ] {
        assert!(t.get(field).is_some(), "missing {field} in {t}");
    }
    assert_eq!(t["digest"], digest);
}

#[test]
fn a_missing_setting_fails_at_cold_start_and_names_it() {
    let (port, _seen) = runtime_api::serve(Vec::new()).unwrap();
    let out = Command::new(binary("tick").unwrap())
        .env_remove("HARBORMASTER_CONFIG")
        .env("AWS_REGION", "us-east-1")
        .envs(runtime_api::lambda_env(port, "tick"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("HARBORMASTER_CONFIG"), "{text}");
}
