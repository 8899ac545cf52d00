//! Issue 32, finding 1, against the emulator's ECR with the real adapter: the tick tags what dev
//! runs and can roll back to (BatchGetImage, PutImage), takes the tag off once a release is
//! none of those (BatchDeleteImage of the tag: the image keeps its own), and the push event of
//! the agent's own PutImage deploys nothing. ECR's lifecycle evaluation itself is not emulated:
//! `harbormaster_core::retention` and its scenario tests cover it.

use harbormaster_e2e::World;

/// The tags ECR holds on `digest` in the example's repository.
async fn tags_of(w: &World, digest: &str) -> Vec<String> {
    let id = aws_sdk_ecr::types::ImageIdentifier::builder()
        .image_digest(digest)
        .build();
    let out = (w.clients.ecr.describe_images())
        .repository_name("booking/web")
        .image_ids(id)
        .send()
        .await
        .expect("DescribeImages");
    out.image_details()
        .first()
        .map(|d| d.image_tags().to_vec())
        .unwrap_or_default()
}

fn protection(digest: &str) -> String {
    format!("hm-keep-dev-web-{}", digest.trim_start_matches("sha256:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_1_what_dev_runs_is_tagged_and_the_tag_comes_off_when_no_longer_needed() {
    let w = World::start().await.unwrap();
    let (first, _) = w.ship("web", "main-aaaa001").await;
    let tags = tags_of(&w, &first).await;
    assert!(tags.contains(&protection(&first)), "{tags:?}");
    assert!(tags.contains(&"main-aaaa001".to_owned()), "{tags:?}");

    // The agent's PutImage reaches EventBridge as a push: ecr-push deploys nothing for it.
    let event = w.push_event("push-protection", &protection(&first), &first);
    let report = serde_json::to_value(w.push(&event).await).unwrap();
    assert_eq!(report["targets"], serde_json::json!([]), "{report}");
    assert!(
        report["ignored"]
            .as_str()
            .unwrap_or_default()
            .contains("protection tag"),
        "{report}"
    );

    // Four newer releases: the first is no longer running nor among three rollback targets.
    for n in 2..=5 {
        w.ship("web", &format!("main-aaaa00{n}")).await;
    }
    let tags = tags_of(&w, &first).await;
    assert_eq!(
        tags,
        ["main-aaaa001"],
        "the protection came off, the image stayed"
    );
    let doc = w.document("dev", "web").await;
    let held = doc["protections"].as_array().map(Vec::len);
    assert_eq!(held, Some(4), "{doc}");
}
