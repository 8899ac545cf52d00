//! The rendered stacks deployed on the emulator's CloudFormation (ministack implements change
//! sets, stack events and most of these resource types; not NAT gateways or Elastic IPs, so
//! this runs with `nat = "none"` and the NAT variants are left to cfn-lint in `.ci/run` and
//! the rendering tests): the project's stack, then dev's, both complete, the outputs land in
//! SSM where the agent reads them, and the database password appears in no template or event.

use std::time::Duration;

use aws_sdk_cloudformation::types::{Capability, StackStatus};
use harbormaster_bootstrap::spec::Spec;
use harbormaster_bootstrap::stacks;
use harbormaster_core::config::Config;
use harbormaster_testkit::Emulator;

const CANARY: &str = "pw-CANARY-5t4ck5";

async fn deploy(cf: &aws_sdk_cloudformation::Client, name: &str, body: &str) -> String {
    cf.create_stack()
        .stack_name(name)
        .template_body(body)
        .capabilities(Capability::CapabilityNamedIam)
        .send()
        .await
        .unwrap();
    for _ in 0..120 {
        let s = cf.describe_stacks().stack_name(name).send().await.unwrap();
        let status = s.stacks()[0].stack_status().cloned().unwrap();
        if !status.as_str().ends_with("IN_PROGRESS") {
            let events = cf
                .describe_stack_events()
                .stack_name(name)
                .send()
                .await
                .unwrap();
            let failed: Vec<String> = events
                .stack_events()
                .iter()
                .filter(|e| {
                    e.resource_status()
                        .is_some_and(|s| s.as_str().contains("FAILED"))
                })
                .map(|e| {
                    format!(
                        "{:?}: {:?}",
                        e.logical_resource_id(),
                        e.resource_status_reason()
                    )
                })
                .collect();
            assert_eq!(status, StackStatus::CreateComplete, "{name}: {failed:?}");
            return format!("{events:?}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{name} did not complete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_project_stack_and_an_environment_stack_deploy_and_write_the_outputs() {
    let emulator = Emulator::start().unwrap();
    let text = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples/booking/harbormaster.toml"),
    )
    .unwrap()
    .replace("nat = \"single\"", "nat = \"none\"");
    let config = Config::parse("harbormaster.toml", &text).unwrap();
    let spec = Spec::from_config("harbormaster.toml", &config, "dev").unwrap();
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&emulator.endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_ssm::config::Credentials::new(
            "test", "test", None, None, "t",
        ))
        .load()
        .await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    // The password is written first, as a SecureString; the template only names it.
    ssm.put_parameter()
        .name(spec.password_parameter())
        .value(CANARY)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let cf = aws_sdk_cloudformation::Client::new(&sdk);
    let (project_name, env_name) = stacks::stack_names(&spec);
    let project = stacks::project(&spec).to_string();
    let environment = stacks::environment(&spec).to_string();
    let mut seen = deploy(&cf, &project_name, &project).await;
    seen.push_str(&deploy(&cf, &env_name, &environment).await);
    for name in [
        "private-subnet-ids",
        "security-groups/services",
        "target-groups/web/blue",
        "production-rules/web",
        "test-rules/web",
        "topic-arn",
        "state-bucket",
        "repositories/booking/web",
        "database-endpoint",
    ] {
        let got = ssm
            .get_parameter()
            .name(format!("/booking/dev/outputs/{name}"))
            .send()
            .await
            .unwrap();
        let value = got
            .parameter()
            .and_then(|p| p.value())
            .unwrap_or_default()
            .to_owned();
        assert!(!value.is_empty(), "{name} is empty");
        seen.push_str(&value);
    }
    seen.push_str(&project);
    seen.push_str(&environment);
    let templates = cf
        .get_template()
        .stack_name(&env_name)
        .send()
        .await
        .unwrap();
    seen.push_str(templates.template_body().unwrap_or_default());
    assert!(!seen.contains(CANARY), "the password leaked");
}
