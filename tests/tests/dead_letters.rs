//! Issue 33, item 15: what used to fill the dead-letter queue. The tick's schedule calls again
//! every minute, so a config that cannot be loaded is answered (said once an hour), not an
//! error Lambda retries twice into the queue: three messages a minute for as long as the config
//! stays broken. Against the emulator's S3, with the handler every function runs.

use harbormaster_aws::handler;
use harbormaster_e2e::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_15_a_tick_without_a_loadable_config_is_answered_not_failed() {
    let w = World::start().await.unwrap();
    let nowhere = format!("s3://{}/no-config-here", harbormaster_e2e::BUCKET);
    let s3 = aws_sdk_s3::Client::new(&w.sdk);
    let agent = harbormaster_aws::Agent::of(
        w.ports(),
        harbormaster_aws::Source::parse(&nowhere, &s3.clone().into()),
    );
    let scheduled = harbormaster_e2e::fixture("scheduled.json");
    let answer = handler::handle(&agent, handler::TICK, scheduled.clone(), None)
        .await
        .expect("the tick answers: the schedule is its retry");
    let said = answer["error"].as_str().unwrap_or_default();
    assert!(said.contains("config not loaded"), "{answer}");
    // A function Lambda retries still fails, so its event is retried and, at last, kept.
    let push = w.push_event("p-1", "main-1", &format!("sha256:{}", "a".repeat(64)));
    let failed = handler::handle(&agent, handler::ECR_PUSH, push, None).await;
    assert!(failed.is_err(), "{failed:?}");
}
