//! One-off tasks read from ECS's answers (aws-smithy-mocks): no emulator stops a task with an
//! exit code, so DescribeTasks is answered here as the ECS API reference shows it
//! (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DescribeTasks.html:
//! `lastStatus`, `stoppedReason`, each container's `exitCode` and `reason`).

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_aws::AwsPorts;
use harbormaster_core::ports::Tasks;
use harbormaster_core::service::TaskProgress;
use mocked::*;

/// ECS answered by `rules` in order; every other client answers nothing.
fn ports_answering(rules: &[&aws_smithy_mocks::Rule]) -> AwsPorts {
    ports(client!(aws_sdk_ecs, rules.iter().copied()), no_s3())
}

fn answer(body: &'static str) -> impl Fn() -> aws_smithy_runtime_api::http::Response {
    move || {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(200).unwrap(),
            aws_smithy_types::body::SdkBody::from(body),
        )
    }
}

const TASK: &str =
    "arn:aws:ecs:us-east-1:012345678910:task/booking-dev/1dc5c17a422548af8e6ee1abc2da0b15";

const STOPPED_1: &str = r#"{"tasks": [{
  "taskArn": "arn:aws:ecs:us-east-1:012345678910:task/booking-dev/1dc5c17a422548af8e6ee1abc2da0b15",
  "lastStatus": "STOPPED", "desiredStatus": "STOPPED",
  "stopCode": "EssentialContainerExited",
  "stoppedReason": "Essential container in task exited",
  "containers": [
    {"name": "sidecar", "lastStatus": "STOPPED", "exitCode": 0},
    {"name": "web", "lastStatus": "STOPPED", "exitCode": 1, "reason": "OutOfMemoryError: Container killed due to memory usage"}
  ]}], "failures": []}"#;

const RUNNING: &str = r#"{"tasks": [{
  "taskArn": "arn:aws:ecs:us-east-1:012345678910:task/booking-dev/1dc5c17a422548af8e6ee1abc2da0b15",
  "lastStatus": "RUNNING", "desiredStatus": "RUNNING",
  "containers": [{"name": "web", "lastStatus": "RUNNING"}]}], "failures": []}"#;

const GONE: &str = r#"{"tasks": [], "failures": [{"arn": "arn:aws:ecs:us-east-1:012345678910:task/booking-dev/1dc5c17a422548af8e6ee1abc2da0b15", "reason": "MISSING"}]}"#;

#[tokio::test]
async fn a_stopped_task_is_judged_by_the_overridden_container_s_exit_code() {
    let rules = [
        mock!(aws_sdk_ecs::Client::describe_tasks).then_http_response(answer(STOPPED_1)),
        mock!(aws_sdk_ecs::Client::describe_tasks).then_http_response(answer(RUNNING)),
        mock!(aws_sdk_ecs::Client::describe_tasks).then_http_response(answer(GONE)),
    ];
    let p = ports_answering(&rules.iter().collect::<Vec<_>>());
    let stopped = p.task_progress("booking-dev", TASK, "web").await.unwrap();
    let TaskProgress::Stopped { exit_code, reason } = stopped else {
        panic!("{stopped:?}");
    };
    assert_eq!(exit_code, Some(1), "the web container's, not the sidecar's");
    assert!(
        reason.contains("Essential container in task exited"),
        "{reason}"
    );
    assert!(reason.contains("OutOfMemoryError"), "{reason}");
    assert_eq!(
        p.task_progress("booking-dev", TASK, "web").await.unwrap(),
        TaskProgress::Running
    );
    assert_eq!(
        p.task_progress("booking-dev", TASK, "web").await.unwrap(),
        TaskProgress::Unknown
    );
}

#[tokio::test]
async fn run_task_sends_the_command_override_and_the_client_token() {
    let run = mock!(aws_sdk_ecs::Client::run_task)
        .match_requests(|r| {
            let o = r
                .overrides()
                .map(|o| o.container_overrides())
                .unwrap_or_default();
            o.len() == 1
                && o[0].name() == Some("web")
                && o[0].command() == ["python", "manage.py", "migrate"]
                && r.client_token() == Some("token-1")
                && r.count() == Some(1)
                // Issue 33, item 10: on-demand Fargate as a launch type, which any cluster
                // takes; a FARGATE provider strategy is refused by a cluster without it
                // associated (RunTask API reference, capacityProviderStrategy).
                && r.launch_type() == Some(&aws_sdk_ecs::types::LaunchType::Fargate)
                && r.capacity_provider_strategy().is_empty()
        })
        .then_http_response(answer(RUNNING));
    let p = ports_answering(&[&run]);
    let arn = p
        .run_task(&harbormaster_core::service::TaskRun {
            cluster: "booking-dev".into(),
            task_definition_arn:
                "arn:aws:ecs:us-east-1:012345678910:task-definition/booking-dev-web:7".into(),
            container: "web".into(),
            command: vec!["python".into(), "manage.py".into(), "migrate".into()],
            subnets: vec!["subnet-1".into()],
            security_groups: vec!["sg-1".into()],
            assign_public_ip: false,
            platform_version: None,
            client_token: "token-1".into(),
            started_by: "harbormaster".into(),
            tags: Vec::new(),
        })
        .await
        .expect("the request matched");
    assert_eq!(arn, TASK);
}
