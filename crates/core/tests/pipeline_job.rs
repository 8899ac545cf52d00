//! The pipeline job as a use case over the in-memory ports, like every other one: the job
//! event is AWS's documented sample ("Example JSON event" of the Lambda invoke action, in the
//! CodePipeline user guide's "Invoke an AWS Lambda function in a pipeline"), tied to this
//! world; CodePipeline's job API is the `Pipelines` port.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use futures::executor::block_on;
use serde_json::{json, Value};

use harbormaster_core::memory::{MemoryPorts, RolloutMode};
use harbormaster_core::pipeline::job::{self, JobResult};
use harbormaster_core::testing::bundle;
use harbormaster_core::testing::scenario::{self, CLUSTER};
use harbormaster_core::{Bundle, RunOptions};

const SAMPLE: &str = include_str!("../../../tests/fixtures/codepipeline-job.json");
const ARTIFACT: &str = "codepipeline-us-east-1-1234567890/booking-pipeline/BuildOutpu/Etdq4K8";

fn world() -> (MemoryPorts, Bundle) {
    let ports = scenario::ports();
    ports.with(|w| w.rollout = RolloutMode::Manual);
    let pushed = Utc.with_ymd_and_hms(2026, 11, 23, 11, 0, 0).unwrap();
    let image = ports.push_image("booking/web", "main-1", 'a', pushed);
    let definitions = json!([{"name": "web", "imageUri": format!("booking/web@{}", image.digest)}]);
    let files = BTreeMap::from([(
        "imagedefinitions.json".to_owned(),
        definitions.to_string().into_bytes(),
    )]);
    ports.with(|w| w.artifacts.insert(ARTIFACT.into(), files));
    (ports, bundle())
}

/// The documented sample with these parameters, and a continuation token or none.
fn job_event(params: Value, token: Option<&str>) -> Value {
    let mut e: Value = serde_json::from_str(SAMPLE).unwrap();
    let data = &mut e["CodePipeline.job"]["data"];
    data["actionConfiguration"]["configuration"]["UserParameters"] = json!(params.to_string());
    match token {
        Some(t) => data["continuationToken"] = json!(t),
        None => {
            data.as_object_mut().unwrap().remove("continuationToken");
        }
    }
    e
}

/// One invocation: the step, then CodePipeline told.
fn invoke(ports: &MemoryPorts, b: &Bundle, event: &Value) -> JobResult {
    let result = match block_on(job::step(ports, b, event, RunOptions::default())) {
        Ok(r) => r,
        Err(e) => JobResult::Failed { reason: e.0 },
    };
    let id = job::job_id(event).unwrap();
    block_on(job::report(ports, id, result, RunOptions::default()))
        .unwrap()
        .result
}

fn told(ports: &MemoryPorts) -> Vec<&'static str> {
    ports.with(|w| w.job_results.iter().map(|(_, r)| r.word()).collect())
}

#[test]
fn a_job_deploys_the_built_image_continues_while_it_rolls_out_then_succeeds_with_outputs() {
    let (ports, b) = world();
    let params = json!({"environment": "dev", "services": ["web"]});
    let first = invoke(&ports, &b, &job_event(params.clone(), None));
    let JobResult::Continue { token, summary } = first else {
        panic!("a rollout just started continues: {first:?}");
    };
    assert!(summary.contains("web started"), "{summary}");

    let still = invoke(&ports, &b, &job_event(params.clone(), Some(&token)));
    assert!(matches!(still, JobResult::Continue { .. }), "{still:?}");

    ports.complete(CLUSTER, "web");
    let done = invoke(&ports, &b, &job_event(params, Some(&token)));
    let JobResult::Succeeded { outputs, .. } = done else {
        panic!("the completed rollout ends the job: {done:?}");
    };
    assert!(
        outputs["TaskDefinitionArn"].contains("booking-dev-web:1"),
        "{outputs:?}"
    );
    assert_eq!(outputs["Digest"], format!("sha256:{}", "a".repeat(64)));
    assert_eq!(told(&ports), ["continue", "continue", "succeeded"]);
}

#[test]
fn a_rollout_the_circuit_breaker_rolls_back_fails_the_job_with_the_reason() {
    let (ports, b) = world();
    let params = json!({"environment": "dev", "service": "web"});
    let JobResult::Continue { token, .. } = invoke(&ports, &b, &job_event(params.clone(), None))
    else {
        panic!("started");
    };
    ports.fail_with_rollback(CLUSTER, "web", "tasks failed to start");
    let r = invoke(&ports, &b, &job_event(params, Some(&token)));
    let JobResult::Failed { reason } = r else {
        panic!("a rolled-back release fails the job: {r:?}");
    };
    assert!(
        reason.contains("web in dev") && reason.contains("rolled back"),
        "{reason}"
    );
    assert_eq!(told(&ports), ["continue", "failed"]);
}

#[test]
fn a_job_for_a_service_the_environment_does_not_deploy_fails_before_any_deployment() {
    let (ports, b) = world();
    let params = json!({"environment": "dev", "services": ["web", "cron"]});
    let r = invoke(&ports, &b, &job_event(params, None));
    let JobResult::Failed { reason } = r else {
        panic!("refused: {r:?}");
    };
    assert!(
        reason.contains("service `cron` is not deployed to `dev`"),
        "{reason}"
    );
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);
    assert_eq!(told(&ports), ["failed"]);
}

#[test]
fn promotion_from_an_environment_where_the_image_never_ran_is_refused() {
    let (ports, b) = world();
    let params = json!({"environment": "dev", "services": ["web"], "promote_from": "prod"});
    let r = invoke(&ports, &b, &job_event(params, None));
    let JobResult::Failed { reason } = r else {
        panic!("refused: {r:?}");
    };
    assert!(reason.contains("did not succeed in prod"), "{reason}");
    assert_eq!(ports.count("UpdateService"), 0);
}

#[test]
fn a_malformed_job_fails_naming_the_field_never_the_credentials() {
    let (ports, b) = world();
    let mut e = job_event(json!({"environment": "dev", "services": ["web"]}), None);
    e["CodePipeline.job"]["data"]["inputArtifacts"] = json!("BuildOutput");
    let r = invoke(&ports, &b, &e);
    let JobResult::Failed { reason } = r else {
        panic!("refused: {r:?}");
    };
    assert!(
        reason.starts_with("malformed CodePipeline job event"),
        "{reason}"
    );
    assert!(
        !reason.contains("EXAMPLEKEY") && !reason.contains("AKIA"),
        "{reason}"
    );
}

/// `artifactCredentials` given as a string (a forged or corrupted job) used to put the string
/// itself into the failure reason through serde's "invalid type: string …" (issue 16, point
/// 10): the reason names the JSON path and what was expected, never the value.
#[test]
fn credentials_in_the_wrong_shape_never_reach_the_reason() {
    let (ports, b) = world();
    let mut e = job_event(json!({"environment": "dev", "services": ["web"]}), None);
    e["CodePipeline.job"]["data"]["artifactCredentials"] =
        json!("AKIAIOSFODNN7EXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let r = invoke(&ports, &b, &e);
    let JobResult::Failed { reason } = r else {
        panic!("refused: {r:?}");
    };
    assert!(
        reason.contains("CodePipeline.job.data.artifactCredentials"),
        "{reason}"
    );
    assert!(
        !reason.contains("EXAMPLEKEY") && !reason.contains("AKIA"),
        "{reason}"
    );
}
