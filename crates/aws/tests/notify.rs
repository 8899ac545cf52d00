//! Notifications as SNS publishes them: one form per protocol.

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_aws::adapters::Clients;
use mocked::*;
use serde_json::json;

/// SNS delivers one message per protocol when `MessageStructure` is `json`: "the value of the
/// Message parameter must ... contain at least a top-level JSON key of "default" with a value
/// that is a string", other keys name protocols
/// (https://docs.aws.amazon.com/sns/latest/api/API_Publish.html). Email reads text, queues and
/// functions the full report, HTTPS (how Amazon Q Developer in chat applications subscribes)
/// the custom notification schema (core's notify/chat.rs checks it field by field).
#[tokio::test]
async fn a_notification_is_published_in_one_form_per_protocol() {
    use harbormaster_core::image::{Digest, Image};
    use harbormaster_core::notify::{NoticeKind, Notification};
    use harbormaster_core::ports::Notifier;
    use harbormaster_core::state::DeploymentId;
    use std::sync::{Arc, Mutex};

    // (MessageStructure, Message) of each Publish.
    type Published = Vec<(Option<String>, String)>;
    let seen: Arc<Mutex<Published>> = Arc::default();
    let into = seen.clone();
    let rule = mock!(aws_sdk_sns::Client::publish)
        .match_requests(move |r| {
            let structure = r.message_structure().map(str::to_owned);
            into.lock()
                .unwrap()
                .push((structure, r.message().unwrap_or_default().to_owned()));
            true
        })
        .then_output(|| aws_sdk_sns::operation::publish::PublishOutput::builder().build());
    let p = from(Clients {
        sns: client!(aws_sdk_sns, [&rule]).into(),
        ..silent()
    });
    let at = chrono::Utc::now();
    let n = Notification {
        id: "d-1/rolled_back".into(),
        kind: NoticeKind::RolledBack,
        project: "booking".into(),
        environment: "prod".into(),
        service: "web".into(),
        subject: DeploymentId("d-1".into()).into(),
        image: Image {
            repository: "booking/web".into(),
            digest: Digest::parse(&format!("sha256:{}", "cd".repeat(32))).unwrap(),
            tag: Some("main-abc1234".into()),
            pushed_at: at,
        },
        task_definition_arn: None,
        previous: None,
        reason: Some("alarm booking-prod-web-5xx is ALARM".into()),
        at,
        claimed_until: None,
        attempts: 0,
    };
    p.publish("arn:aws:sns:us-east-1:123456789012:booking", &n)
        .await
        .unwrap();
    let seen = seen.lock().unwrap();
    let (structure, message) = &seen[0];
    assert_eq!(structure.as_deref(), Some("json"));
    let forms: serde_json::Value = serde_json::from_str(message).unwrap();
    let text = |k: &str| {
        forms[k]
            .as_str()
            .unwrap_or_else(|| panic!("no {k} form"))
            .to_owned()
    };
    assert!(text("default").starts_with("Deployment of booking/web:main-abc1234"));
    assert_eq!(text("email"), text("default"), "people read text");
    for machine in ["sqs", "lambda", "http", "firehose", "email-json"] {
        let report: serde_json::Value = serde_json::from_str(&text(machine)).unwrap();
        assert_eq!(report["kind"], "rolled_back", "{machine}");
        assert_eq!(
            report["reason"], "alarm booking-prod-web-5xx is ALARM",
            "{machine}"
        );
    }
    let chat: serde_json::Value = serde_json::from_str(&text("https")).unwrap();
    assert_eq!(
        (&chat["version"], &chat["source"]),
        (&json!("1.0"), &json!("custom"))
    );
    assert_eq!(chat["content"]["textType"], "client-markdown");
    assert_eq!(chat["metadata"]["additionalContext"]["service"], "web");
}

/// DescribeImages without a `registryId` answers from "the default registry for your account"
/// (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImages.html), and
/// each ImageDetail names it in `registryId`: the CLI's digest check teaches the account, so
/// the deploy after it makes no GetCallerIdentity (the STS client here answers nothing).
#[tokio::test]
async fn the_digest_check_teaches_the_account_so_no_get_caller_identity_follows() {
    use harbormaster_core::image::Digest;
    use harbormaster_core::ports::{Images, Placements};
    let digest = format!("sha256:{}", "ef".repeat(32));
    let answer = format!(
        r#"{{"imageDetails":[{{"registryId":"210987654321","repositoryName":"booking/web",
            "imageDigest":"{digest}","imageTags":["main-abc1234"],"imagePushedAt":1.7648e9}}]}}"#
    );
    let rule = mock!(aws_sdk_ecr::Client::describe_images)
        .match_requests(|r| r.registry_id().is_none())
        .then_http_response(move || http_json(&answer));
    let p = from(Clients {
        ecr: client!(aws_sdk_ecr, [&rule]).into(),
        ..silent()
    });
    let found = p
        .by_digest("booking/web", &Digest::parse(&digest).unwrap())
        .await
        .unwrap();
    assert!(found.is_some());
    let env = dev();
    assert_eq!(p.placement(&env).await.unwrap().account, "210987654321");
}
