//! What the adapter tests share: SDK clients answered by aws-smithy-mocks rules, the agent's
//! ports over them, and a few documents. Each test file uses part of it.
#![allow(dead_code)]

use aws_smithy_mocks::Rule;
use harbormaster_aws::adapters::Clients;
use harbormaster_aws::AwsPorts;
use harbormaster_core::template::RenderedTaskDefinition;
use serde_json::json;

#[macro_export]
macro_rules! client {
    ($krate:ident, $rules:expr) => {{
        let mut interceptor = aws_smithy_mocks::MockResponseInterceptor::new()
            .rule_mode(aws_smithy_mocks::RuleMode::Sequential);
        for r in $rules {
            interceptor = interceptor.with_rule(r);
        }
        $krate::Client::from_conf(
            $krate::Config::builder()
                .behavior_version($krate::config::BehaviorVersion::latest())
                .region($krate::config::Region::new("us-east-1"))
                .credentials_provider($krate::config::Credentials::new(
                    "AKID", "SECRET", None, None, "test",
                ))
                .retry_config(
                    $krate::config::retry::RetryConfig::standard()
                        .with_max_attempts(3)
                        .with_initial_backoff(std::time::Duration::from_millis(1)),
                )
                .http_client(aws_smithy_mocks::create_mock_http_client())
                .interceptor(interceptor)
                .build(),
        )
    }};
}

/// Clients that answer nothing: a test replaces the ones its calls go to.
pub fn silent() -> Clients {
    Clients {
        ecs: client!(aws_sdk_ecs, Vec::<&Rule>::new()).into(),
        ecr: client!(aws_sdk_ecr, Vec::<&Rule>::new()).into(),
        s3: client!(aws_sdk_s3, Vec::<&Rule>::new()).into(),
        sns: client!(aws_sdk_sns, Vec::<&Rule>::new()).into(),
        sts: client!(aws_sdk_sts, Vec::<&Rule>::new()).into(),
        ssm: client!(aws_sdk_ssm, Vec::<&Rule>::new()).into(),
        cloudwatch: client!(aws_sdk_cloudwatch, Vec::<&Rule>::new()).into(),
        codepipeline: client!(aws_sdk_codepipeline, Vec::<&Rule>::new()).into(),
        sqs: client!(aws_sdk_sqs, Vec::<&Rule>::new()).into(),
        autoscaling: client!(aws_sdk_applicationautoscaling, Vec::<&Rule>::new()).into(),
    }
}

/// The dev environment, with no account id set (placement must find it).
pub fn dev() -> harbormaster_core::config::Environment {
    harbormaster_core::config::Environment {
        name: "dev".into(),
        cluster: "booking-dev".into(),
        auto_deploy: true,
        config_releases: harbormaster_core::config::ConfigReleases::Auto,
        promote_from: None,
        self_heal: false,
        account_id: None,
        bootstrap: None,
    }
}

pub fn from(clients: Clients) -> AwsPorts {
    AwsPorts::from_clients(clients, "state", "us-east-1")
}

pub fn ports(ecs: aws_sdk_ecs::Client, s3: aws_sdk_s3::Client) -> AwsPorts {
    from(Clients {
        ecs: ecs.into(),
        s3: s3.into(),
        ..silent()
    })
}

pub fn ports_with(
    ecs: aws_sdk_ecs::Client,
    s3: aws_sdk_s3::Client,
    ssm: aws_sdk_ssm::Client,
    cloudwatch: aws_sdk_cloudwatch::Client,
) -> AwsPorts {
    from(Clients {
        ecs: ecs.into(),
        s3: s3.into(),
        ssm: ssm.into(),
        cloudwatch: cloudwatch.into(),
        ..silent()
    })
}

pub fn no_ecs() -> aws_sdk_ecs::Client {
    client!(aws_sdk_ecs, Vec::<&Rule>::new())
}
pub fn no_s3() -> aws_sdk_s3::Client {
    client!(aws_sdk_s3, Vec::<&Rule>::new())
}

pub fn td() -> RenderedTaskDefinition {
    RenderedTaskDefinition {
        family: "booking-dev-web".into(),
        body: json!({"family": "booking-dev-web", "containerDefinitions": [{"name": "web", "image": "x"}]}),
        image: "x".into(),
        containers: vec!["web".into()],
    }
}

pub const THROTTLED: &str = r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#;
pub const REGISTERED: &str = r#"{"taskDefinition":{"taskDefinitionArn":"arn:aws:ecs:us-east-1:1:task-definition/booking-dev-web:7","family":"booking-dev-web","revision":7}}"#;

pub fn http_json(body: &str) -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
        aws_smithy_types::body::SdkBody::from(body.to_owned()),
    )
}
