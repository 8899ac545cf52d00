//! What a test account holds before the agent acts: a service made by hand, and the stand-in
//! for Application Auto Scaling (no emulator beside ministack implements it).

use std::path::Path;

use anyhow::{Context, Result};
use aws_sdk_ecs::types::{
    AssignPublicIp, AwsVpcConfiguration, CapacityProviderStrategyItem, NetworkConfiguration,
    PropagateTags,
};
use serde_json::{json, Value};

use crate::{Clients, CLUSTER};

/// A Fargate service in [`CLUSTER`] on a first revision of `family` (one container running a
/// public image), as a team would have it before Harbormaster takes over.
pub async fn create_service(
    c: &Clients,
    family: &str,
    service: &str,
    container: &str,
) -> Result<()> {
    let td = c
        .ecs
        .register_task_definition()
        .family(family)
        .network_mode(aws_sdk_ecs::types::NetworkMode::Awsvpc)
        .requires_compatibilities(aws_sdk_ecs::types::Compatibility::Fargate)
        .cpu("256")
        .memory("512")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name(container)
                .image("public.ecr.aws/docker/library/python:3.12-slim")
                .essential(true)
                .build(),
        )
        .send()
        .await?;
    let arn = td
        .task_definition
        .and_then(|t| t.task_definition_arn)
        .context("td arn")?;
    c.ecs
        .create_service()
        .cluster(CLUSTER)
        .service_name(service)
        .task_definition(arn)
        .desired_count(1)
        // As the agent's CreateService makes it (on-demand Fargate by a capacity provider,
        // tags from the service): ministack keeps what CreateService sets but ignores both
        // when UpdateService sends them (measured), so a service made otherwise would read as
        // differing from git in `diff` for ever on the emulator.
        .capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("FARGATE")
                .weight(1)
                .build()?,
        )
        .propagate_tags(PropagateTags::Service)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .subnets("subnet-00000001")
                        .assign_public_ip(AssignPublicIp::Disabled)
                        .build()?,
                )
                .build(),
        )
        .send()
        .await?;
    Ok(())
}

/// A recording server for Application Auto Scaling (JSON 1.1, as `harbormaster_testkit::recorder`
/// serves CodePipeline's API): it finds no scalable target or policy and accepts every change,
/// so the tests read what the agent asked for. ministack does not implement the service; moto
/// does, and the adapter's round trip is checked against it in `tests/services.rs`.
pub fn autoscaling_recorder() -> Result<harbormaster_testkit::recorder::Recorder> {
    harbormaster_testkit::recorder::serve(|operation, _body: &Value| {
        let answer = match operation {
            "DescribeScalableTargets" => json!({"ScalableTargets": []}),
            "DescribeScalingPolicies" => json!({"ScalingPolicies": []}),
            "PutScalingPolicy" => {
                json!({"PolicyARN": "arn:aws:autoscaling:us-east-1:000000000000:scalingPolicy:recorded", "Alarms": []})
            }
            _ => json!({}),
        };
        (200, answer.to_string())
    })
}

/// `harbormaster-bootstrap apply --env dev` of the example against `emulator`, as a team runs
/// it: the emulator's CloudFormation builds the project's stack and dev's. Its NAT gateway is
/// left out (`nat = "none"`): ministack's CloudFormation has no `AWS::EC2::NatGateway`.
pub fn bootstrap(emulator: &harbormaster_testkit::Emulator) -> Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "hm-e2e-bootstrap-{}-{}",
        std::process::id(),
        emulator.port
    ));
    std::fs::create_dir_all(&dir)?;
    let example = crate::workspace_root().join("examples/booking/harbormaster.toml");
    std::fs::write(
        dir.join("harbormaster.toml"),
        without_nat(&std::fs::read_to_string(example)?),
    )?;
    let out = std::process::Command::new(crate::binary("harbormaster-bootstrap")?)
        .arg("--config")
        .arg(&dir)
        .args(["apply", "--env", "dev"])
        .envs(emulator.env())
        .output()?;
    let _ = std::fs::remove_dir_all(&dir);
    anyhow::ensure!(
        out.status.success(),
        "bootstrap apply failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// The example's bootstrap without NAT gateways, which the emulator's CloudFormation lacks.
pub fn without_nat(text: &str) -> String {
    text.replace("nat = \"single\"", "nat = \"none\"")
        .replace("nat = \"per_az\"", "nat = \"none\"")
}

/// What of the example the emulator cannot run is left out of the world's copy: the emulator
/// runs no containers (no Docker), so a `before_deploy` task never stops and its deployment
/// would wait for ever; and nothing listens at the Redis endpoint a queue-depth `scaling`
/// reads. The migration is covered where ECS is played in the test
/// (`crates/core/tests/services.rs`) and its RunTask against the emulator in
/// `tests/services.rs`; scaling by `tests/scaling.rs`, which gives the worker a backlog the
/// emulator's SQS or a real redis-server holds.
pub fn for_the_emulator(config_dir: &Path) -> Result<()> {
    let file = config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&file)?;
    std::fs::write(&file, emulator_config(&text))?;
    Ok(())
}

/// The text of [`for_the_emulator`]'s edit.
pub fn emulator_config(text: &str) -> String {
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            let l = l.trim_start();
            !l.starts_with("before_deploy") && !l.starts_with("scaling")
        })
        .collect();
    kept.join("\n") + "\n"
}
