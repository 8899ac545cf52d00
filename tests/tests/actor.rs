//! Issue 30, finding 15: deploys, rollbacks and approvals recorded `$USER`, which any machine
//! can set to anything. A person's rollback and approval now record who AWS says the caller is
//! (STS GetCallerIdentity's ARN), `$USER` only as a label beside it.

use harbormaster_e2e::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_a_rollback_records_the_caller_aws_names_not_user() {
    let w = World::start().await.unwrap();
    for (n, tag) in ["main-aaaa111", "main-bbbb222"].iter().enumerate() {
        let digest = w.push_image(tag).await.unwrap();
        w.push(&w.push_event(&format!("e{n}"), tag, &digest)).await;
        w.tick().await;
    }
    let out = w.cli_with(
        &["rollback", "--env", "dev", "--service", "web"],
        &[("USER", "mallory-says-she-is-alice")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = w.state_document("dev", "web").await.unwrap().unwrap();
    let why = state["in_flight"]["rollback"]["why"]
        .as_str()
        .unwrap_or_default();
    assert!(
        why.contains("rollback requested by arn:aws:")
            && why.contains("(mallory-says-she-is-alice)"),
        "{why}"
    );
}
