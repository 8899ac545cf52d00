//! The `pipeline-job` function end to end. No emulator implements CodePipeline's job API, so a
//! small recording server in the tests speaks its JSON 1.1 protocol (`AWS_ENDPOINT_URL_CODEPIPELINE`
//! points the SDK at it) and records what the agent reports; S3 (the artifact), ECR, ECS and SNS
//! stay on the emulator.

use std::io::Write;

use harbormaster_e2e::{fixture, TempDir, World, ACCOUNT, REGION, REPOSITORY};
use harbormaster_testkit::recorder::{self, Recorder};
use serde_json::{json, Value};

const ARTIFACTS: &str = "booking-pipeline-artifacts";
// Recognisable artifact credentials: none may show up anywhere the agent writes.
const KEY_ID: &str = "AKIACANARY0000000042";
const SECRET: &str = "secret-CANARY-4f0d9e1c7b";
const TOKEN: &str = "session-CANARY-88a1f3";

struct Pipeline {
    w: World,
    rec: Recorder,
    tmp: TempDir,
}

async fn pipeline() -> Pipeline {
    let w = World::start().await.unwrap();
    w.clients
        .s3
        .create_bucket()
        .bucket(ARTIFACTS)
        .send()
        .await
        .unwrap();
    let rec = recorder::serve(|operation, _| match operation {
        "GetPipelineState" => (
            200,
            json!({"pipelineName": "booking", "stageStates": [
                {"stageName": "Approve", "actionStates": [
                    {"actionName": "Production", "latestExecution": {"status": "InProgress", "token": "approval-token-7"}}
                ]}
            ]})
            .to_string(),
        ),
        _ => (200, "{}".into()),
    })
    .unwrap();
    Pipeline {
        w,
        rec,
        tmp: TempDir::new("pipeline").unwrap(),
    }
}

impl Pipeline {
    /// Uploads a zip holding `files` as the build's output artifact; returns its key.
    async fn artifact(&self, name: &str, files: &[(&str, &[u8])]) -> String {
        let mut buf = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut buf);
            for (path, body) in files {
                z.start_file(*path, zip::write::SimpleFileOptions::default())
                    .unwrap();
                z.write_all(body).unwrap();
            }
            z.finish().unwrap();
        }
        let key = format!("booking/BuildOutput/{name}");
        self.w
            .clients
            .s3
            .put_object()
            .bucket(ARTIFACTS)
            .key(&key)
            .body(buf.into_inner().into())
            .send()
            .await
            .unwrap();
        key
    }

    /// AWS's job event sample, tied to this world: parameters, artifact, credentials, token.
    fn job(&self, id: &str, params: Value, key: &str, token: Option<&str>) -> String {
        let mut e = fixture("codepipeline-job.json");
        let job = &mut e["CodePipeline.job"];
        job["id"] = json!(id);
        job["accountId"] = json!(ACCOUNT);
        let data = &mut job["data"];
        data["actionConfiguration"]["configuration"]["UserParameters"] = json!(params.to_string());
        data["inputArtifacts"][0]["location"]["s3Location"] =
            json!({"bucketName": ARTIFACTS, "objectKey": key});
        data["artifactCredentials"] =
            json!({"accessKeyId": KEY_ID, "secretAccessKey": SECRET, "sessionToken": TOKEN});
        match token {
            Some(t) => data["continuationToken"] = json!(t),
            None => {
                data.as_object_mut().unwrap().remove("continuationToken");
            }
        }
        let path = self.tmp.0.join(format!("{id}-{}.json", token.is_some()));
        std::fs::write(&path, e.to_string()).unwrap();
        path.display().to_string()
    }

    /// `harbormaster invoke` with CodePipeline pointed at the recorder, logging JSON lines.
    fn invoke(&self, file: &str) -> (i32, Value, String) {
        let out = self.cli(&["-v", "--log-json", "--json", "invoke", "--event", file]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
        let report = serde_json::from_str(&stdout).unwrap_or(Value::Null);
        (out.status.code().unwrap_or(-1), report, all)
    }

    /// The CLI with CodePipeline pointed at the recorder.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(harbormaster_e2e::cli_binary().unwrap())
            .args(args)
            .envs(self.w.cli_env())
            .env("AWS_ENDPOINT_URL_CODEPIPELINE", &self.rec.endpoint)
            .output()
            .unwrap()
    }

    fn image_detail(&self, digest: &str) -> Vec<u8> {
        json!({"ImageURI": format!("{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{REPOSITORY}@{digest}")})
            .to_string()
            .into_bytes()
    }
}

fn assert_no_credentials(text: &str) {
    for secret in [KEY_ID, SECRET, TOKEN] {
        assert!(!text.contains(secret), "artifact credential leaked: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_release_ends_in_one_success_after_a_continuation() {
    let p = pipeline().await;
    let digest = p.w.push_image("main-ab12cd3").await.unwrap();
    let key = p
        .artifact("good", &[("imageDetail.json", &p.image_detail(&digest))])
        .await;
    let params = json!({"environment": "dev", "services": ["web"]});

    let (code, first, logs1) = p.invoke(&p.job("job-1", params.clone(), &key, None));
    assert_eq!(
        (code, first["result"].as_str()),
        (0, Some("continue")),
        "{first}\n{logs1}"
    );
    let state = p.w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(
        state["in_flight"]["phase"], "stabilizing",
        "registered and updated: {state}"
    );
    let token = first["token"].as_str().unwrap().to_owned();

    let (code, second, logs2) = p.invoke(&p.job("job-1", params, &key, Some(&token)));
    assert_eq!(
        (code, second["result"].as_str()),
        (0, Some("succeeded")),
        "{second}\n{logs2}"
    );

    let successes = p.rec.calls.of("PutJobSuccessResult");
    assert!(p.rec.calls.of("PutJobFailureResult").is_empty());
    let finals: Vec<&Value> = successes
        .iter()
        .filter(|b| b.get("continuationToken").is_none())
        .collect();
    assert_eq!(finals.len(), 1, "exactly one final success: {successes:?}");
    assert_eq!(successes.len(), 2);
    assert_eq!(successes[0]["continuationToken"], token.as_str());
    let vars = &finals[0]["outputVariables"];
    assert_eq!(vars["Digest"], digest.as_str());
    assert_eq!(
        vars["TaskDefinitionArn"],
        state["in_flight"]["task_definition_arn"]
    );
    assert_eq!(vars["DeploymentId"], state["in_flight"]["id"]);
    assert_eq!(finals[0]["jobId"], "job-1");

    // The credentials were used (the artifact was read with them) and never written anywhere.
    assert_no_credentials(&logs1);
    assert_no_credentials(&logs2);
    assert_no_credentials(&format!("{:?}", p.rec.calls.all()));
    assert_no_credentials(&format!("{:?}", p.w.inbox().await.unwrap()));
    assert_no_credentials(
        &p.w.state_document("dev", "web")
            .await
            .unwrap()
            .unwrap()
            .to_string(),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoting_a_digest_that_failed_in_staging_fails_the_job_and_deploys_nothing() {
    let p = pipeline().await;
    // dev plays staging; the release fails there (a secret it references is missing).
    p.w.clients
        .ssm
        .delete_parameter()
        .name("/booking/dev/database/password")
        .send()
        .await
        .unwrap();
    let digest = p.w.push_image("main-fa11ed0").await.unwrap();
    let key = p
        .artifact(
            "promote",
            &[(
                "imagedefinitions.json",
                format!(r#"[{{"name":"web","imageUri":"{REPOSITORY}@{digest}"}}]"#).as_bytes(),
            )],
        )
        .await;
    let (_, r, _) = p.invoke(&p.job(
        "stage-1",
        json!({"environment": "dev", "service": "web"}),
        &key,
        None,
    ));
    assert_eq!(r["result"], "failed", "{r}");
    let history = p.w.state_document("dev", "web").await.unwrap().unwrap();
    assert_eq!(history["history"][0]["verdict"], "failed");

    let (code, r, logs) = p.invoke(&p.job(
        "prod-1",
        json!({"environment": "prod", "service": "web", "promote_from": "dev"}),
        &key,
        None,
    ));
    assert_eq!(code, 1, "{r}");
    let failures = p.rec.calls.of("PutJobFailureResult");
    let prod: Vec<&Value> = failures.iter().filter(|f| f["jobId"] == "prod-1").collect();
    assert_eq!(prod.len(), 1, "{failures:?}");
    let message = prod[0]["failureDetails"]["message"].as_str().unwrap();
    assert!(
        message.contains("did not succeed in dev") && message.contains("failed"),
        "{message}"
    );
    assert_eq!(prod[0]["failureDetails"]["type"], "JobFailed");
    assert!(p
        .rec
        .calls
        .of("PutJobSuccessResult")
        .iter()
        .all(|s| s["jobId"] != "prod-1"));
    assert!(
        p.w.state_document("prod", "web").await.unwrap().is_none(),
        "nothing deployed to prod"
    );
    assert_no_credentials(&logs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_artifacts_and_unknown_digests_fail_the_job_saying_which_file() {
    let p = pipeline().await;
    let params = json!({"environment": "dev", "services": ["web"]});
    let cases: Vec<(String, &str)> = vec![
        (
            p.artifact("empty", &[("README.md", b"hello")]).await,
            "neither imageDetail.json nor imagedefinitions.json",
        ),
        (
            p.artifact("broken", &[("imageDetail.json", b"{\"Image\": 3}")])
                .await,
            "BuildOutput/imageDetail.json",
        ),
        (
            p.artifact(
                "missing",
                &[(
                    "imageDetail.json",
                    &p.image_detail(&format!("sha256:{}", "e".repeat(64))),
                )],
            )
            .await,
            "is not in ECR",
        ),
    ];
    for (i, (key, expected)) in cases.iter().enumerate() {
        let (code, r, _) = p.invoke(&p.job(&format!("bad-{i}"), params.clone(), key, None));
        assert_eq!(code, 1, "{r}");
        let reason = r["reason"].as_str().unwrap_or_default();
        assert!(
            reason.contains(expected),
            "case {i}: `{expected}` not in `{reason}`"
        );
    }
    // Not a zip at all.
    p.w.clients
        .s3
        .put_object()
        .bucket(ARTIFACTS)
        .key("plain")
        .body(b"not a zip".to_vec().into())
        .send()
        .await
        .unwrap();
    let (_, r, _) = p.invoke(&p.job("bad-zip", params.clone(), "plain", None));
    assert!(
        r["reason"].as_str().unwrap().contains("not a zip archive"),
        "{r}"
    );
    assert_eq!(p.rec.calls.of("PutJobFailureResult").len(), 4);
    assert!(p.rec.calls.of("PutJobSuccessResult").is_empty());

    // Credentials in the wrong shape (a forged or corrupted job): the reason sent to
    // CodePipeline, the log and the report name the path, never the value (issue 16, point 10).
    let file = p.job("bad-credentials", params, "plain", None);
    let mut e: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    e["CodePipeline.job"]["data"]["artifactCredentials"] = json!(format!("{KEY_ID}:{SECRET}"));
    std::fs::write(&file, e.to_string()).unwrap();
    let (code, r, all) = p.invoke(&file);
    assert_eq!(code, 1, "{r}");
    let reason = r["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("artifactCredentials"), "{r}");
    assert_no_credentials(&all);
    let failures = p.rec.calls.of("PutJobFailureResult");
    assert_eq!(failures.len(), 5);
    for body in failures {
        assert_no_credentials(&body.to_string());
    }
    assert_eq!(
        p.w.revisions(harbormaster_e2e::FAMILY).await.unwrap().len(),
        1,
        "nothing registered"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolled_back_deployment_fails_the_job_with_the_reason() {
    let p = pipeline().await;
    let first = p.w.push_image("main-0001111").await.unwrap();
    let key1 = p
        .artifact("one", &[("imageDetail.json", &p.image_detail(&first))])
        .await;
    let params = json!({"environment": "dev", "services": ["web"]});
    let (_, r, _) = p.invoke(&p.job("j1", params.clone(), &key1, None));
    let (_, r, _) = p.invoke(&p.job("j1", params.clone(), &key1, r["token"].as_str()));
    assert_eq!(r["result"], "succeeded", "{r}");
    let good = p.w.service_task_definition("web").await.unwrap();

    let second = p.w.push_image("main-0002222").await.unwrap();
    let key2 = p
        .artifact("two", &[("imageDetail.json", &p.image_detail(&second))])
        .await;
    let (_, r, _) = p.invoke(&p.job("j2", params.clone(), &key2, None));
    assert_eq!(r["result"], "continue", "{r}");
    // ECS's circuit breaker puts the service back (the emulator does not; the test does what
    // ECS would) and reports the deployment failed.
    p.w.clients
        .ecs
        .update_service()
        .cluster(harbormaster_e2e::CLUSTER)
        .service("web")
        .task_definition(&good)
        .send()
        .await
        .unwrap();
    let state = p.w.state_document("dev", "web").await.unwrap().unwrap();
    let mut event = fixture("ecs-deployment-failed.json");
    event["detail"]["deploymentId"] = state["in_flight"]["ecs_deployment_id"].clone();
    event["detail"]["updatedAt"] = json!(chrono::Utc::now().to_rfc3339());
    let file = p.tmp.0.join("ecs-failed.json");
    std::fs::write(&file, event.to_string()).unwrap();
    p.w.invoke(&file.display().to_string());

    let (code, r, _) = p.invoke(&p.job("j2", params, &key2, r["token"].as_str()));
    assert_eq!(code, 1, "{r}");
    let failure = p.rec.calls.of("PutJobFailureResult");
    let message = failure[0]["failureDetails"]["message"].as_str().unwrap();
    assert!(
        message.contains("rolled back") && message.contains("circuit breaker"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_approval_is_answered_with_the_token_from_the_pipeline_state() {
    let p = pipeline().await;
    let out = p.cli(&[
        "approve",
        "--pipeline",
        "booking",
        "--stage",
        "Approve",
        "--action",
        "Production",
        "--summary",
        "staging looks fine",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let put = p.rec.calls.of("PutApprovalResult");
    assert_eq!(put.len(), 1);
    assert_eq!(put[0]["token"], "approval-token-7");
    assert_eq!(
        put[0]["result"],
        json!({"summary": "staging looks fine", "status": "Approved"})
    );
    assert_eq!(
        (put[0]["stageName"].as_str(), put[0]["actionName"].as_str()),
        (Some("Approve"), Some("Production"))
    );
    // No such action: an error naming it, and nothing sent.
    let out = p.cli(&[
        "approve",
        "--pipeline",
        "booking",
        "--stage",
        "Approve",
        "--action",
        "Nope",
        "--reject",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no action `Nope`"));
    assert_eq!(p.rec.calls.of("PutApprovalResult").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_wait_from_codebuild_exits_zero_only_when_the_release_succeeded() {
    let p = pipeline().await;
    let digest = p.w.push_image("main-77aa77a").await.unwrap();
    let detail = p.tmp.0.join("imageDetail.json");
    std::fs::write(&detail, p.image_detail(&digest)).unwrap();
    let detail = detail.display().to_string();
    let args = [
        "deploy",
        "--env",
        "dev",
        "--service",
        "web",
        "--image-detail",
        &detail,
        "--wait",
        "--timeout-minutes",
        "2",
    ];
    let out = p.w.cli(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("dev/web: succeeded on"), "{err}");

    // The worker's secret is gone: its deployment fails, and so does the command.
    p.w.clients
        .ssm
        .delete_parameter()
        .name("/booking/dev/redis/url")
        .send()
        .await
        .unwrap();
    let digest = p.w.push_image("main-77bb77b").await.unwrap();
    std::fs::write(&detail, p.image_detail(&digest)).unwrap();
    let args = [
        "deploy",
        "--env",
        "dev",
        "--service",
        "worker",
        "--image-detail",
        &detail,
        "--wait",
    ];
    let out = p.w.cli(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("dev/worker: FAILED") && err.contains("/booking/dev/redis/url"),
        "{err}"
    );
}
