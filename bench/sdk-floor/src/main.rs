//! The floor under `ecr-push`: what any Lambda function that makes a rolling deploy's SDK calls
//! costs, before doing anything else. Each of the seven operations a deploy makes per service
//! (`BENCHMARKS.md`, "Push to UpdateService") is called once with names from the event, so the
//! linker keeps exactly their code: S3 GetObject and PutObject (the state), SNS Publish, SSM
//! DescribeParameters and GetParameters, ECS RegisterTaskDefinition and UpdateService. No
//! config, no state machine, no error handling beyond `?`. `cargo xtask bench` measures it
//! beside `ecr-push` and the hello-world; it is never deployed.

// The SDK's futures nest deeply; release builds need more than the default query depth.
#![recursion_limit = "256"]

use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

/// Every client, built at the first event.
struct Clients {
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
    ssm: aws_sdk_ssm::Client,
    ecs: aws_sdk_ecs::Client,
}

async fn deploy(c: &Clients, event: &Value) -> Result<Value, Error> {
    let field = |k: &str| event[k].as_str().unwrap_or_default().to_owned();
    let state =
        c.s3.get_object()
            .bucket(field("bucket"))
            .key(field("key"))
            .send()
            .await?;
    let body = state.body.collect().await?.into_bytes();
    c.s3.put_object()
        .bucket(field("bucket"))
        .key(field("key"))
        .body(body.into())
        .send()
        .await?;
    c.sns
        .publish()
        .topic_arn(field("topic"))
        .message("started")
        .send()
        .await?;
    c.ssm
        .describe_parameters()
        .parameter_filters(
            aws_sdk_ssm::types::ParameterStringFilter::builder()
                .key("Name")
                .values(field("secret"))
                .build()?,
        )
        .send()
        .await?;
    let outputs = c.ssm.get_parameters().names(field("output")).send().await?;
    let registered = c
        .ecs
        .register_task_definition()
        .family(field("family"))
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(field("container"))
                .image(field("image"))
                .build(),
        )
        .send()
        .await?;
    let arn = registered
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .unwrap_or_default();
    c.ecs
        .update_service()
        .cluster(field("cluster"))
        .service(field("service"))
        .task_definition(&arn)
        .send()
        .await?;
    Ok(json!({ "revision": arn, "outputs": outputs.parameters().len() }))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    // Nothing before the first request: the SDK's settings are loaded and the clients built at
    // the first event (the default chain's loading alone costs 4 ms at start-up, measured).
    let clients = tokio::sync::OnceCell::new();
    lambda_runtime::run(service_fn(|e: LambdaEvent<Value>| {
        let clients = &clients;
        async move {
            let c = clients
                .get_or_init(|| async {
                    let sdk = aws_config::load_from_env().await;
                    Clients {
                        s3: aws_sdk_s3::Client::new(&sdk),
                        sns: aws_sdk_sns::Client::new(&sdk),
                        ssm: aws_sdk_ssm::Client::new(&sdk),
                        ecs: aws_sdk_ecs::Client::new(&sdk),
                    }
                })
                .await;
            deploy(c, &e.payload).await
        }
    }))
    .await
}
