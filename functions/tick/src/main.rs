//! `tick`: the Lambda function for "Scheduled Event" events. Everything it does is in the core and
//! the adapters; this names the function and starts it.

// The SDK's and the runtime's futures nest deeply; release builds (inlining) need more than
// the default query depth to lay out `main`.
#![recursion_limit = "256"]

use harbormaster_aws::handler;

// One event at a time (Lambda's model): no worker threads to start or keep in memory.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    handler::serve(handler::TICK).await
}
