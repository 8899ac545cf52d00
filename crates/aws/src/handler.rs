//! The body of every Lambda function: load the (cached) config, dispatch the event, report.

use harbormaster_core::dispatch::{handle_event, DispatchReport};
use harbormaster_core::RunOptions;
use serde_json::Value;
use tracing::{error, info};

use crate::Agent;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("{function} handles {expected}; this event has detail-type `{got}`")]
    WrongEvent {
        function: &'static str,
        expected: &'static str,
        got: String,
    },
    #[error("config: {0}")]
    Config(String),
    #[error("{0}")]
    Event(String),
    /// Some targets failed in a way a retry may fix; the event is safe to redeliver.
    #[error("{0}")]
    Retry(String),
}

/// The functions and the one kind of event each accepts (each one's IAM policy is cut to it).
pub const FUNCTIONS: &[(&str, &str)] = &[(ECR_PUSH.0, ECR_PUSH.1), (TICK.0, TICK.1)];
pub const ECR_PUSH: (&str, &str) = ("ecr-push", "ECR Image Action");
pub const TICK: (&str, &str) = ("tick", "Scheduled Event");

/// The function that handles this event, by its detail-type.
pub fn route(event: &Value) -> Option<(&'static str, &'static str)> {
    let dt = event.get("detail-type").and_then(Value::as_str)?;
    FUNCTIONS.iter().copied().find(|(_, d)| *d == dt)
}

/// What a Lambda function returns: the report, or an error that makes Lambda retry.
pub async fn handle(
    agent: &Agent,
    function: (&'static str, &'static str),
    event: Value,
) -> Result<Value, HandlerError> {
    let report = dispatch(agent, function, &event, RunOptions::default()).await?;
    let errors = report.errors();
    if errors.is_empty() {
        Ok(serde_json::to_value(&report).expect("report serialises"))
    } else {
        // Returning an error makes Lambda retry an async event: handling is idempotent.
        Err(HandlerError::Retry(errors.join("; ")))
    }
}

/// The dispatch every function runs, and `harbormaster invoke` with it.
pub async fn dispatch(
    agent: &Agent,
    (function, detail_type): (&'static str, &'static str),
    event: &Value,
    opts: RunOptions,
) -> Result<DispatchReport, HandlerError> {
    let got = event
        .get("detail-type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if got != detail_type {
        return Err(HandlerError::WrongEvent {
            function,
            expected: detail_type,
            got,
        });
    }
    let (ports, bundle) = agent.prepare().await.map_err(|e| {
        error!(error = %e, "config not loaded; nothing done");
        HandlerError::Config(e.to_string())
    })?;
    let report: DispatchReport = Box::pin(handle_event(&ports, &bundle, event, opts))
        .await
        .map_err(|e| {
            error!(error = %e, "event rejected; nothing done");
            HandlerError::Event(e.to_string())
        })?;
    info!(function, event = %report.event, targets = report.targets.len(), ignored = report.ignored.as_deref().unwrap_or(""), "handled");
    Ok(report)
}

/// A Lambda function's whole life: JSON logs; clients and the config cache built once at cold
/// start (a missing setting fails here, naming it) and reused by warm invocations; then events.
pub async fn serve(function: (&'static str, &'static str)) -> Result<(), lambda_runtime::Error> {
    crate::telemetry::init_json();
    let agent = Agent::from_env().await?;
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<Value>| {
            let agent = agent.clone();
            async move {
                handle(&agent, function, event.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
