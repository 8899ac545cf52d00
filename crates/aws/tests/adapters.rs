//! Adapter tests with aws-smithy-mocks: real HTTP responses go through the SDK's deserializers
//! and retry classifier, so these check how the adapters read AWS's answers (errors included)
//! without an emulator. Mocks replace responses only; what the requests carry is covered by the
//! end-to-end tests against ministack.

mod mocked;

use aws_smithy_mocks::{mock, Rule};
use harbormaster_aws::AwsPorts;
use harbormaster_core::ports::{ErrorKind, SaveError, Services, StateStore, TaskDefinitions};
use harbormaster_core::state::ServiceState;
use mocked::*;

#[tokio::test]
async fn throttling_twice_then_success_is_retried_by_the_sdk() {
    let rule = mock!(aws_sdk_ecs::Client::register_task_definition)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .times(2)
        .http_status(200, Some(REGISTERED.into()))
        .build();
    let p = ports(client!(aws_sdk_ecs, [&rule]), no_s3());
    let arn = p.register(&td()).await.unwrap();
    assert_eq!(
        arn,
        "arn:aws:ecs:us-east-1:1:task-definition/booking-dev-web:7"
    );
    assert_eq!(rule.num_calls(), 3);
}

#[tokio::test]
async fn throttling_beyond_the_retries_is_a_retryable_error() {
    let rule = mock!(aws_sdk_ecs::Client::register_task_definition)
        .sequence()
        .http_status(400, Some(THROTTLED.into()))
        .repeatedly()
        .build();
    let p = ports(client!(aws_sdk_ecs, [&rule]), no_s3());
    let e = p.register(&td()).await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::Throttled);
    assert!(e.kind.is_retryable());
    assert_eq!(e.operation, "RegisterTaskDefinition");
    assert!(e.message.contains("Rate exceeded"), "{e}");
}

#[tokio::test]
async fn a_server_error_is_transient_and_a_client_error_is_not_retried() {
    let rule = mock!(aws_sdk_ecs::Client::register_task_definition)
        .sequence()
        .http_status(
            500,
            Some(r#"{"__type":"ServerException","message":"boom"}"#.into()),
        )
        .http_status(
            400,
            Some(
                r#"{"__type":"ClientException","message":"Invalid setting for container 'web'"}"#
                    .into(),
            ),
        )
        .build();
    let p = ports(client!(aws_sdk_ecs, [&rule]), no_s3());
    let e = p.register(&td()).await.unwrap_err();
    assert_eq!(
        e.kind,
        ErrorKind::Invalid,
        "the 500 was retried, the 400 was final: {e}"
    );
    assert!(
        e.message.contains("ClientException: Invalid setting"),
        "{e}"
    );
    assert_eq!(rule.num_calls(), 2);
}

#[tokio::test]
async fn a_412_on_the_state_document_is_a_conflict() {
    let rule = mock!(aws_sdk_s3::Client::put_object)
        .sequence()
        .http_status(
            412,
            Some("<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>".into()),
        )
        .build();
    let p = ports(no_ecs(), client!(aws_sdk_s3, [&rule]));
    let r = p
        .save("state/dev/web.json", &ServiceState::new("dev", "web"), None)
        .await;
    assert_eq!(r, Err(SaveError::Conflict));
}

#[tokio::test]
async fn a_missing_state_document_is_none_and_a_corrupt_one_is_an_error() {
    let missing = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(404, Some("<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>".into()))
        .http_response(|| {
            let mut r = aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
                aws_smithy_types::body::SdkBody::from("{ not a state"),
            );
            r.headers_mut().insert("ETag", "\"e1\"");
            r
        })
        .build();
    let p = ports(no_ecs(), client!(aws_sdk_s3, [&missing]));
    assert!(p.load("state/dev/web.json").await.unwrap().is_none());
    let e = p.load("state/dev/web.json").await.unwrap_err();
    assert!(
        e.message
            .contains("s3://state/state/dev/web.json: not a state document"),
        "{e}"
    );
}

#[tokio::test]
async fn describe_services_reads_deployments_and_names_a_missing_service() {
    let answer = r#"{"services":[{"serviceName":"web","taskDefinition":"arn:td:2","deployments":[
        {"id":"ecs-svc/2","status":"PRIMARY","taskDefinition":"arn:td:2","rolloutState":"FAILED","rolloutStateReason":"ECS deployment circuit breaker: tasks failed to start.","runningCount":0,"desiredCount":1,"failedTasks":3},
        {"id":"ecs-svc/1","status":"ACTIVE","taskDefinition":"arn:td:1","rolloutState":"COMPLETED","runningCount":1,"desiredCount":1}],
        "events":[{"id":"1","message":"(service web) has started 1 tasks"}]}],"failures":[]}"#;
    let missing = r#"{"services":[],"failures":[{"arn":"arn:svc","reason":"MISSING"}]}"#;
    let rule = mock!(aws_sdk_ecs::Client::describe_services)
        .sequence()
        .http_status(200, Some(answer.into()))
        .http_status(200, Some(missing.into()))
        .build();
    let p = ports(client!(aws_sdk_ecs, [&rule]), no_s3());
    let snap = p.describe("c", "web").await.unwrap();
    assert_eq!(snap.deployments.len(), 2);
    assert_eq!(
        snap.deployments[0].rollout_state,
        Some(harbormaster_core::ports::RolloutState::Failed)
    );
    assert_eq!(snap.deployments[0].failed_tasks, 3);
    assert_eq!(snap.events, ["(service web) has started 1 tasks"]);
    let e = p.describe("c", "web").await.unwrap_err();
    assert_eq!(e.kind, ErrorKind::NotFound);
    assert!(e.message.contains("MISSING"), "{e}");
}

#[tokio::test]
async fn stopped_tasks_of_the_revision_are_explained_newest_first() {
    let list = mock!(aws_sdk_ecs::Client::list_tasks)
        .then_http_response(|| {
            http_json(r#"{"taskArns":["arn:aws:ecs:us-east-1:1:task/c/aaa","arn:aws:ecs:us-east-1:1:task/c/bbb","arn:aws:ecs:us-east-1:1:task/c/ccc"]}"#)
        });
    let describe = mock!(aws_sdk_ecs::Client::describe_tasks).then_http_response(|| {
        http_json(
            r#"{"tasks":[
              {"taskArn":"arn:aws:ecs:us-east-1:1:task/c/aaa","taskDefinitionArn":"td:7","stoppedAt":100,
               "stoppedReason":"Essential container in task exited",
               "containers":[{"name":"web","exitCode":137,"reason":"OutOfMemoryError: Container killed"},{"name":"sidecar"}]},
              {"taskArn":"arn:aws:ecs:us-east-1:1:task/c/bbb","taskDefinitionArn":"td:7","stoppedAt":200,
               "stoppedReason":"Task failed ELB health checks"},
              {"taskArn":"arn:aws:ecs:us-east-1:1:task/c/ccc","taskDefinitionArn":"td:6","stoppedAt":300,
               "stoppedReason":"Scaling activity initiated by deployment"}
            ],"failures":[]}"#,
        )
    });
    let p = ports(client!(aws_sdk_ecs, [&list, &describe]), no_s3());
    let stopped = p.stopped_tasks("c", "web", "td:7").await.unwrap();
    let described: Vec<String> = stopped.iter().map(|t| t.describe()).collect();
    assert_eq!(
        described,
        [
            "task bbb: Task failed ELB health checks",
            "task aaa: Essential container in task exited; web exited 137 (OutOfMemoryError: Container killed)",
        ]
    );
}

#[tokio::test]
async fn a_metric_cloudwatch_could_not_compute_is_reported_as_a_problem_not_a_value() {
    use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
    use aws_sdk_cloudwatch::types::{MessageData, MetricDataResult, StatusCode};
    use harbormaster_core::ports::Metrics;
    use harbormaster_core::strategy::{MetricQuery, QueryKind};
    let rule = mock!(aws_sdk_cloudwatch::Client::get_metric_data).then_output(|| {
        GetMetricDataOutput::builder()
            .metric_data_results(
                MetricDataResult::builder()
                    .id("errors")
                    .status_code(StatusCode::Complete)
                    .values(2.0)
                    .values(7.5)
                    .build(),
            )
            .metric_data_results(
                MetricDataResult::builder()
                    .id("rate")
                    .status_code(StatusCode::InternalError)
                    .messages(
                        MessageData::builder()
                            .code("Err")
                            .value("Division by zero")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let p = ports_with(
        no_ecs(),
        no_s3(),
        client!(aws_sdk_ssm, Vec::<&Rule>::new()),
        client!(aws_sdk_cloudwatch, [&rule]),
    );
    let queries = [
        MetricQuery {
            id: "errors".into(),
            kind: QueryKind::Metric {
                namespace: "AWS/ApplicationELB".into(),
                metric: "HTTPCode_Target_5XX_Count".into(),
                dimensions: Default::default(),
                stat: "Sum".into(),
                period_seconds: 60,
            },
        },
        MetricQuery {
            id: "rate".into(),
            kind: QueryKind::Expression {
                expression: "errors / requests * 100".into(),
                period_seconds: 60,
            },
        },
    ];
    let now = chrono::Utc::now();
    let series = p
        .measure(&queries, now - chrono::Duration::minutes(5), now)
        .await
        .unwrap();
    assert_eq!(series[0].values, [2.0, 7.5]);
    assert_eq!(series[0].problem, None);
    assert!(
        series[1]
            .problem
            .as_deref()
            .unwrap()
            .contains("Division by zero"),
        "{:?}",
        series[1]
    );
}

#[tokio::test]
async fn outputs_are_read_without_decryption_and_never_include_a_secure_string() {
    use harbormaster_core::ports::Parameters;
    let rule = mock!(aws_sdk_ssm::Client::get_parameters)
        .match_requests(|r| r.with_decryption() == Some(false))
        .then_http_response(|| {
            http_json(
                r#"{"Parameters":[
                  {"Name":"/booking/dev/outputs/roles/ecs-infrastructure","Type":"String","Value":"arn:aws:iam::1:role/x"},
                  {"Name":"/booking/agent/hook-role-arn","Type":"SecureString","Value":"AQICAHh-encrypted-blob"}
                ],"InvalidParameters":["/booking/dev/outputs/target-groups/web/green"]}"#,
            )
        });
    let p = ports_with(
        no_ecs(),
        no_s3(),
        client!(aws_sdk_ssm, [&rule]),
        client!(aws_sdk_cloudwatch, Vec::<&Rule>::new()),
    );
    let found = p
        .outputs(&[
            "/booking/dev/outputs/roles/ecs-infrastructure".into(),
            "/booking/agent/hook-role-arn".into(),
            "/booking/dev/outputs/target-groups/web/green".into(),
        ])
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(rule.num_calls(), 1);
}

/// The ECS API reference, DeploymentCircuitBreaker: "The deployment circuit breaker can only be
/// used for services using the rolling update (ECS) deployment type"
/// (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeploymentCircuitBreaker.html).
/// A rolling update asks for it with rollback; blue/green, canary and linear never send it.
#[tokio::test]
async fn the_circuit_breaker_is_sent_with_rolling_updates_only() {
    use harbormaster_core::ports::ServiceTarget;
    use harbormaster_core::state::DeploymentId;
    use harbormaster_core::strategy::{NativeDeployment, Strategy};

    const UPDATED: &str = r#"{"service":{"serviceName":"web","deployments":[]}}"#;
    let rolling = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| {
            let breaker = r
                .deployment_configuration()
                .and_then(|c| c.deployment_circuit_breaker());
            breaker.is_some_and(|b| b.enable() && b.rollback())
        })
        .then_http_response(|| http_json(UPDATED));
    let native = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| {
            let c = r.deployment_configuration();
            // The hook carries the agent's own longest wait, so ECS's 1,440-minute default
            // cannot decide a longer approval (issue 15, point 8).
            let hook = c.and_then(|c| c.lifecycle_hooks().first());
            let timeout = hook.and_then(|h| h.timeout_configuration());
            let held = timeout.is_some_and(|t| {
                t.timeout_in_minutes() == Some(10_097)
                    && t.action()
                        == Some(&aws_sdk_ecs::types::DeploymentLifecycleHookAction::Rollback)
            });
            held && c
                .is_some_and(|c| c.deployment_circuit_breaker().is_none() && c.strategy().is_some())
        })
        .then_http_response(|| http_json(UPDATED));
    let p = ports(client!(aws_sdk_ecs, [&rolling, &native]), no_s3());
    let mut target = ServiceTarget {
        environment: "dev".into(),
        name: "web".into(),
        cluster: "booking-dev".into(),
        service: "web".into(),
        native: None,
        settings: Default::default(),
    };
    let d = DeploymentId("d-1".into());
    p.update(&target, "arn:td:1", &d)
        .await
        .expect("rolling: breaker on");
    target.native = Some(NativeDeployment {
        strategy: Strategy::BlueGreen,
        bake_time_minutes: 5,
        canary: None,
        linear: None,
        container: "web".into(),
        port: 8000,
        target_group: "arn:tg/blue".into(),
        alternate_target_group: "arn:tg/green".into(),
        production_listener_rule: "arn:rule/prod".into(),
        test_listener_rule: None,
        role: "arn:role/infra".into(),
        hook_function: "arn:lambda:hook".into(),
        hook_role: "arn:role/hook".into(),
        hook_stages: Vec::new(),
        hook_timeout_minutes: 10_097,
    });
    p.update(&target, "arn:td:2", &d)
        .await
        .expect("blue/green: no breaker");
}

/// S3's GetObject reference: without `s3:ListBucket` on the bucket, a missing key is answered
/// "HTTP status code 403 (Access Denied)" rather than 404 NoSuchKey
/// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html, Permissions). The
/// installed roles grant ListBucket on the state bucket, so real S3 says 404; a bucket whose
/// policy still hides missing keys must not stop the first deployment of a service: the
/// document is created with `If-None-Match: *`, which can never overwrite one.
#[tokio::test]
async fn a_missing_state_document_answered_403_is_created_and_a_hidden_one_is_named() {
    const DENIED: &str = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    let denied = || {
        mock!(aws_sdk_s3::Client::get_object)
            .sequence()
            .http_status(403, Some(DENIED.into()))
            .build()
    };
    let (get, get_again) = (denied(), denied());
    let created = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(|r| r.if_none_match() == Some("*"))
        .then_http_response(|| {
            let mut r = http_json("");
            r.headers_mut().insert("ETag", "\"e1\"");
            r
        });
    let exists = mock!(aws_sdk_s3::Client::put_object)
        .match_requests(|r| r.if_none_match() == Some("*"))
        .then_http_response(|| {
            aws_smithy_runtime_api::http::Response::new(
                aws_smithy_runtime_api::http::StatusCode::try_from(412).unwrap(),
                aws_smithy_types::body::SdkBody::from(
                    "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>",
                ),
            )
        });
    let p = ports(
        no_ecs(),
        client!(aws_sdk_s3, [&get, &created, &get_again, &exists]),
    );
    let key = "state/dev/web.json";
    // The first push: nothing readable, so nothing there; the create goes through.
    assert!(p.load(key).await.unwrap().is_none());
    let doc = ServiceState::new("dev", "web");
    assert!(p.save(key, &doc, None).await.is_ok());
    // A document that exists but cannot be read: the create is refused, and said so plainly
    // (not a conflict to retry for ever).
    assert!(p.load(key).await.unwrap().is_none());
    let Err(SaveError::Port(e)) = p.save(key, &doc, None).await else {
        panic!("a document hidden by AccessDenied is an error, not a conflict");
    };
    assert_eq!(e.kind, ErrorKind::Denied, "{e}");
    assert!(
        e.message.contains("s3:GetObject") && e.message.contains(key),
        "{e}"
    );
}

/// A Lambda knows its account from its own ARN: placement then makes no GetCallerIdentity (the
/// STS client here answers nothing, so a call would fail), and only the clients a call needs
/// are ever built.
#[tokio::test]
async fn a_known_account_needs_no_get_caller_identity_and_no_client_is_built_before_its_call() {
    use harbormaster_core::ports::Placements;
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .build();
    let lazy = AwsPorts::new(&sdk, "state");
    assert!(
        lazy.clients.built().is_empty(),
        "{:?}",
        lazy.clients.built()
    );
    // Issue 20: the agent a function builds at cold start, reading its config from S3, has
    // not built the S3 client either (it once did, and with it the HTTPS connector and the
    // trusted roots, before the first event).
    let agent = harbormaster_aws::Agent::at(&sdk, "s3://booking-gitops/main");
    assert!(
        agent.ports.clients.built().is_empty(),
        "{:?}",
        agent.ports.clients.built()
    );
    let ports = from(silent());
    ports.know_account("arn:aws:lambda:us-east-1:123456789012:function:ecr-push");
    ports.know_account("123456789012");
    let env = dev();
    let placement = ports.placement(&env).await.unwrap();
    assert_eq!(placement.account, "123456789012");
    assert_eq!(placement.region, "us-east-1");
}
