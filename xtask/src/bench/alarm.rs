//! The incident path in `cargo xtask bench`: a "CloudWatch Alarm State Change" through the
//! `alarm` dispatch to the rollback's UpdateService answered, through the counting proxy.
//!
//! Each round first ships a new release of web (push, deploy, tick until it succeeded), so
//! there is a last known good to go back to, then fires web's CPU alarm. *Warm*: the agent
//! that has handled events before (clients built, config read). *Cold*: a new agent in the
//! process, so building its clients and reading the config are inside the clock (a Lambda's
//! process start is the start-up table's).

use std::time::Instant;

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler::{self, ALARM, ECR_PUSH};
use harbormaster_aws::{Agent, Source};
use harbormaster_core::RunOptions;
use harbormaster_e2e::World;
use harbormaster_testkit::proxy::CountingProxy;
use serde_json::json;

use super::{counted, percentile};
use crate::demo::tick;

const ROUNDS: usize = 5;
const ALARM_NAME: &str = "booking-dev-web-cpu";

/// The rollback measured in one round: ms to UpdateService answered, and the calls made.
struct Rollback {
    ms: f64,
    calls: Vec<harbormaster_testkit::proxy::Call>,
}

fn agent(sdk: &aws_config::SdkConfig, w: &World) -> Agent {
    Agent::of(
        w.ports_via(sdk, &w.autoscaling.endpoint),
        Source::Folder(w.config_dir.clone()),
    )
}

/// One alarm event through `agent`, timed from the event to the rollback's UpdateService.
async fn roll_back(
    w: &World,
    agent: &Agent,
    proxy: &CountingProxy,
    round: String,
) -> Result<Rollback> {
    let mut event = w
        .fire_alarm(ALARM_NAME, "bench: CPU over the threshold")
        .await?;
    // Rounds can fall in one second: each alarm is its own event.
    event["id"] = json!(format!("bench-alarm-{round}"));
    proxy.reset();
    let start = Instant::now();
    let report = handler::dispatch(agent, ALARM, &event, RunOptions::default()).await?;
    if !report.errors().is_empty() {
        bail!("the alarm failed: {:?}", report.errors());
    }
    let calls = proxy.calls();
    let answered = (calls.iter())
        .find(|c| c.operation == "ecs:UpdateService")
        .and_then(|c| c.answered)
        .context("the alarm made no rollback (no UpdateService)")?;
    let ms = answered.duration_since(start).as_secs_f64() * 1000.0;
    Ok(Rollback { ms, calls })
}

pub(crate) async fn alarm_rounds(w: &World, proxy: &CountingProxy) -> Result<String> {
    crate::demo::put_standard_alarms(w).await?;
    let sdk = harbormaster_e2e::sdk_at(&proxy.endpoint).await;
    let warm = agent(&sdk, w);
    let cloudwatch = aws_sdk_cloudwatch::Client::new(&sdk);
    let (mut cold, mut hot, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for round in 0..ROUNDS * 2 {
        let tag = format!("main-a{round:06}");
        let digest = w.push_image(&tag).await?;
        let push = w.push_event(&format!("bench-alarm-push-{round}"), &tag, &digest);
        handler::dispatch(&warm, ECR_PUSH, &push, RunOptions::default()).await?;
        tick(&warm).await?;
        let is_cold = round % 2 == 0;
        let fresh = agent(&sdk, w);
        let used = if is_cold { &fresh } else { &warm };
        let r = roll_back(w, used, proxy, round.to_string()).await?;
        if is_cold {
            cold.push(r.ms)
        } else {
            hot.push(r.ms)
        }
        calls = r.calls;
        tick(&warm).await?;
        // Back to OK, so the next round's ALARM is a state change again.
        (cloudwatch.set_alarm_state().alarm_name(ALARM_NAME))
            .state_value(aws_sdk_cloudwatch::types::StateValue::Ok)
            .state_reason("bench: back to normal")
            .send()
            .await?;
    }
    for v in [&mut cold, &mut hot] {
        v.sort_by(|a, b| a.total_cmp(b));
    }
    Ok(format!(
        "| measure | value |\n| --- | --- |\n\
         | alarm event → rollback's UpdateService answered, warm, median of {ROUNDS} (min {:.0}, max {:.0}) | {:.0} ms |\n\
         | same, cold (a new agent: clients built, config read), median of {ROUNDS} (min {:.0}, max {:.0}) | {:.0} ms |\n\
         | AWS calls of the alarm's dispatch (warm) | {} |\n\
         | calls | {} |\n",
        hot[0],
        hot[hot.len() - 1],
        percentile(&hot, 0.5),
        cold[0],
        cold[cold.len() - 1],
        percentile(&cold, 0.5),
        calls.len(),
        counted(&calls)
    ))
}
