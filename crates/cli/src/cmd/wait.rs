//! `deploy --wait`: follows one release until it succeeds (0), fails or is rolled back (1), or
//! the time is up (4), advancing it as the tick would.

use anyhow::Result;
use harbormaster_aws::AwsPorts;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::follow;
use harbormaster_core::image::Digest;
use harbormaster_core::pipeline::{release_status, ReleaseStatus};
use harbormaster_core::ports::StateStore;
use harbormaster_core::state::ServiceState;
use harbormaster_core::{RunOptions, Target};

use crate::exit::Exit;

pub async fn until_done(
    ports: &AwsPorts,
    bundle: &Bundle,
    target: &Target,
    digest: &Digest,
    timeout_minutes: u64,
) -> Result<Exit> {
    let Target {
        environment: env,
        service,
    } = target;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(timeout_minutes * 60);
    let mut last = String::new();
    loop {
        follow(ports, bundle, target, RunOptions::default()).await;
        let state = ports.load(&target.state_key()).await?.map(|(s, _)| s);
        match release_status(state.as_ref(), digest) {
            ReleaseStatus::Succeeded {
                task_definition_arn,
                ..
            } => {
                eprintln!("{env}/{service}: succeeded on {task_definition_arn}");
                return Ok(Exit::Done);
            }
            ReleaseStatus::Failed(why) => {
                eprintln!("{env}/{service}: FAILED: {why}");
                return Ok(Exit::Failed);
            }
            ReleaseStatus::Running => {
                let phase = phase_of(state.as_ref());
                if phase != last {
                    eprintln!("{env}/{service}: {phase}");
                    last = phase;
                }
            }
        }
        if std::time::Instant::now() >= until {
            eprintln!("{env}/{service}: still {last} after {timeout_minutes} min; giving up waiting (the deployment goes on)");
            return Ok(Exit::TimedOut);
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

/// The phase of the deployment in flight, with its lifecycle stage.
fn phase_of(state: Option<&ServiceState>) -> String {
    let Some(d) = state.and_then(|s| s.in_flight.as_ref()) else {
        return String::new();
    };
    let stage = d.stage.map(|s| format!(" at {s}")).unwrap_or_default();
    format!("{}{stage}", d.phase)
}
