//! `tick`: the Lambda function for "Scheduled Event" events. All logic is in the core; this wires it up.
// The SDK's and the runtime's futures nest deeply; release builds (inlining) need more than
// the default query depth to lay out `main`.
#![recursion_limit = "256"]

use harbormaster_aws::{handler, telemetry, Agent};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    telemetry::init_json();
    // Clients and the config cache are built once and reused by warm invocations. A missing
    // setting fails here, at cold start, naming it.
    let agent = Agent::from_env().await?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| {
        let agent = agent.clone();
        async move {
            handler::handle(&agent, handler::TICK, event.payload)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
