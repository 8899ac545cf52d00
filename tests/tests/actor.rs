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

/// A person's deploy records the same: the release's trigger names the caller's ARN. The call
/// that tells it is within the deploy's budget of calls (BENCHMARKS.md: the lookup of secrets
/// the running tasks already resolved is not repeated).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_a_deploy_records_the_caller_aws_names_not_user() {
    let w = World::start().await.unwrap();
    w.push_image("main-aaaa111").await.unwrap();
    let out = w.cli_with(
        &[
            "deploy",
            "--env",
            "dev",
            "--service",
            "web",
            "--image",
            "main-aaaa111",
        ],
        &[("USER", "mallory-says-she-is-alice")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let state = w.state_document("dev", "web").await.unwrap().unwrap();
    let by = state["in_flight"]["release"]["trigger"]["by"]
        .as_str()
        .unwrap_or_default();
    assert!(
        by.starts_with("arn:aws:") && by.ends_with("(mallory-says-she-is-alice)"),
        "{state}"
    );
}

/// Issue 30's budget: a person's deploy of a new image makes no more than 9 AWS calls, the
/// GetCallerIdentity that names them included (counted at a proxy in front of the emulator,
/// as `cargo xtask bench` counts them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_names_its_caller_stays_within_nine_calls() {
    use harbormaster_testkit::proxy::CountingProxy;
    let w = World::start().await.unwrap();
    let port: u16 = (w.emulator.endpoint.rsplit(':').next().unwrap())
        .parse()
        .unwrap();
    let proxy = CountingProxy::start(port).unwrap();
    let cli = |args: &[&str]| w.cli_via(&proxy.endpoint, args);
    for tag in ["main-aaaa111", "main-bbbb222"] {
        let digest = w.push_image(tag).await.unwrap();
        proxy.reset();
        cli(&[
            "deploy",
            "--env",
            "dev",
            "--service",
            "web",
            "--image",
            &digest,
        ]);
        let calls: Vec<String> = proxy.calls().into_iter().map(|c| c.operation).collect();
        assert!(
            calls.iter().any(|c| c == "sts:GetCallerIdentity"),
            "{calls:?}"
        );
        if tag == "main-bbbb222" {
            assert!(calls.len() <= 9, "{} calls: {calls:?}", calls.len());
        }
        cli(&["tick"]);
    }
}
