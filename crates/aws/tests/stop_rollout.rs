//! Issue 30, finding 9: StopServiceDeployment stopped whatever deployment was in progress. It
//! now stops only the one whose target service revision runs the release being rolled back
//! (ListServiceDeployments, then DescribeServiceRevisions, as the ECS API reference shapes
//! them: https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListServiceDeployments.html,
//! API_DescribeServiceRevisions.html); a deployment someone else started is not the agent's.

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_core::ports::Services;
use mocked::*;

const OURS: &str = "arn:aws:ecs:us-east-1:1:task-definition/booking-dev-web:7";
const THEIRS: &str = "arn:aws:ecs:us-east-1:1:task-definition/booking-dev-web:8";
const SD: &str = "arn:aws:ecs:us-east-1:1:service-deployment/booking-dev/web";
const REV: &str = "arn:aws:ecs:us-east-1:1:service-revision/booking-dev/web";

fn listed(revision: &'static str) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_ecs::Client::list_service_deployments).then_http_response(move || {
        http_json(&format!(
            r#"{{"serviceDeployments": [{{"serviceDeploymentArn": "{SD}/{revision}",
                "serviceArn": "arn:aws:ecs:us-east-1:1:service/booking-dev/web",
                "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/booking-dev",
                "targetServiceRevisionArn": "{REV}/{revision}", "status": "IN_PROGRESS"}}]}}"#
        ))
    })
}

fn revision(id: &'static str, td: &'static str) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_ecs::Client::describe_service_revisions).then_http_response(move || {
        http_json(&format!(
            r#"{{"serviceRevisions": [{{"serviceRevisionArn": "{REV}/{id}", "taskDefinition": "{td}"}}], "failures": []}}"#
        ))
    })
}

#[tokio::test]
async fn only_the_deployment_rolling_out_the_release_is_stopped() {
    let list = listed("r1");
    let rev = revision("r1", OURS);
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .match_requests(|r| r.service_deployment_arn() == Some(&format!("{SD}/r1")[..]))
        .then_http_response(|| http_json(&format!(r#"{{"serviceDeploymentArn": "{SD}/r1"}}"#)));
    let p = ports(client!(aws_sdk_ecs, [&list, &rev, &stop]), no_s3());
    assert!(p.stop_rollout("booking-dev", "web", OURS).await.unwrap());
    assert_eq!(stop.num_calls(), 1);
}

#[tokio::test]
async fn a_deployment_someone_else_started_is_not_stopped() {
    let list = listed("r2");
    let rev = revision("r2", THEIRS);
    let stop = mock!(aws_sdk_ecs::Client::stop_service_deployment)
        .then_http_response(|| http_json(r#"{}"#));
    let p = ports(client!(aws_sdk_ecs, [&list, &rev, &stop]), no_s3());
    assert!(!p.stop_rollout("booking-dev", "web", OURS).await.unwrap());
    assert_eq!(stop.num_calls(), 0, "theirs is left alone");
}
