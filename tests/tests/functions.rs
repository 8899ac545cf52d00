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
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
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
    let logs = String::from_utf8_lossy(&out.stderr);
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

/// Runs a function binary on one event and returns its answer to the Runtime API.
fn answer_of(w: &World, function: &str, event: &Value) -> (String, Value) {
    let (port, seen) = runtime_api::serve(vec![event.to_string()]).unwrap();
    let mut child = Command::new(binary(function).unwrap())
        .envs(w.cli_env())
        .envs(runtime_api::lambda_env(port, function))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let answer = loop {
        match seen.recv_timeout(Duration::from_secs(30)) {
            Ok(Seen::Answer(path, body)) => break (path, serde_json::from_str(&body).unwrap()),
            Ok(Seen::FirstRequest(_)) => {}
            Err(e) => panic!("{function} did not answer: {e}"),
        }
    };
    child.kill().unwrap();
    let _ = child.wait();
    answer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ecs_functions_answer_ecs_and_eventbridge_in_their_own_shapes() {
    let w = World::start().await.unwrap();
    // The hook answers ECS with hookStatus at the top, its details handed back.
    let hook = harbormaster_e2e::fixture("ecs-hook-post-test-traffic-shift.json");
    let (path, answer) = answer_of(&w, "ecs-hook", &hook);
    assert!(path.ends_with("/response"), "{path}");
    assert_eq!(
        answer["hookStatus"], "SUCCEEDED",
        "nothing in flight: {answer}"
    );
    assert_eq!(answer["hookDetails"]["harbormaster:service"], "web");

    // An ECS event about a deployment the agent does not know is reported, not an error.
    let event = harbormaster_e2e::fixture("ecs-deployment-completed.json");
    let (path, answer) = answer_of(&w, "ecs-event", &event);
    assert!(path.ends_with("/response"), "{path}");
    assert_eq!(answer["targets"][0]["outcome"], "ignored", "{answer}");

    // The wrong kind of event for a function is an error, so nothing is done with it.
    let (path, _) = answer_of(&w, "ecs-hook", &event);
    assert!(path.ends_with("/error"), "{path}");
}

/// Issue 20: the functions are linked position-dependent (`functions/no-pie.rs`: no dynamic
/// relocation at start-up), the CLI stays position-independent. ELF's `e_type`, at offset 16:
/// 2 is `ET_EXEC`, 3 `ET_DYN` (a PIE).
#[test]
fn the_functions_are_position_dependent_and_the_cli_is_not() {
    let e_type = |name: &str| {
        let bytes = std::fs::read(binary(name).unwrap()).unwrap();
        assert_eq!(&bytes[..4], b"\x7fELF", "{name}");
        u16::from_le_bytes([bytes[16], bytes[17]])
    };
    for f in harbormaster_aws::handler::FUNCTIONS {
        assert_eq!(e_type(f.name), 2, "{} is not ET_EXEC", f.name);
    }
    assert_eq!(e_type("harbormaster"), 3, "the CLI is a PIE");
}
