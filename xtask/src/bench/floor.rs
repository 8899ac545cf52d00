//! The floor under `ecr-push`: `bench/sdk-floor`, a Lambda function that makes exactly the seven
//! SDK calls of a rolling deploy and nothing else, built with the same profile and linked the
//! same way. Measured like `ecr-push` (start-up, memory at ready, size) and invoked once against
//! the emulator, so the figure is of a function that works, not of dead code the linker kept.
//! Its deploy has its own state object, family and service: the agent's services are untouched.

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Result};
use harbormaster_e2e::{World, BUCKET};
use serde_json::{json, Value};

use super::startup::{invoke_once, start_up, StartUp, RUNS};

const CLUSTER: &str = "booking-dev";
const NAME: &str = "sdk-floor";
const KEY: &str = "bench/sdk-floor.json";

pub(crate) struct Floor {
    pub start: StartUp,
    /// Exec → the deploy's seven calls answered.
    pub deployed: Duration,
    pub deployed_rss_kib: u64,
}

pub(crate) async fn floor(w: &World, release: &Path, env: &[(&str, String)]) -> Result<Floor> {
    let binary = release.join(NAME);
    let start = start_up(&binary, env, RUNS)?;
    let c = &w.clients;
    c.s3.put_object()
        .bucket(BUCKET)
        .key(KEY)
        .body(b"{}".to_vec().into())
        .send()
        .await?;
    let container = aws_sdk_ecs::types::ContainerDefinition::builder()
        .name("app")
        .image("public.ecr.aws/docker/library/busybox:latest")
        .build();
    let first = c
        .ecs
        .register_task_definition()
        .family(NAME)
        .container_definitions(container)
        .send()
        .await?;
    let first = first.task_definition.and_then(|t| t.task_definition_arn);
    if c.ecs
        .describe_services()
        .cluster(CLUSTER)
        .services(NAME)
        .send()
        .await?
        .services()
        .is_empty()
    {
        c.ecs
            .create_service()
            .cluster(CLUSTER)
            .service_name(NAME)
            .set_task_definition(first)
            .desired_count(0)
            .send()
            .await?;
    }
    let event = json!({
        "bucket": BUCKET, "key": KEY, "topic": w.topic_arn,
        "secret": "/booking/dev/secrets/none", "output": "/booking/dev/outputs/none",
        "family": NAME, "container": "app",
        "image": "public.ecr.aws/docker/library/busybox:stable",
        "cluster": CLUSTER, "service": NAME,
    });
    let (deployed, answer, deployed_rss_kib) = invoke_once(&binary, env, &event.to_string())?;
    let answer: Value = serde_json::from_str(&answer).unwrap_or(Value::Null);
    if !answer["revision"].as_str().unwrap_or("").contains(NAME) {
        bail!("{NAME} did not deploy: {answer}");
    }
    Ok(Floor {
        start,
        deployed,
        deployed_rss_kib,
    })
}
