//! `deploy --wait`: follows one release until it succeeds (0), fails or is rolled back (1), or
//! the time is up (4), advancing it as the tick would.

use anyhow::Result;
use harbormaster_aws::AwsPorts;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::follow;
use harbormaster_core::image::Digest;
use harbormaster_core::pipeline::{release_status, ReleaseStatus};
use harbormaster_core::ports::{ServiceTarget, Services, StateStore};
use harbormaster_core::{RunOptions, Target};

use crate::exit::Exit;
use crate::progress::{phase_of, Progress, Seen};

pub async fn until_done(
    ports: &AwsPorts,
    bundle: &Bundle,
    target: &Target,
    digest: &Digest,
    timeout_minutes: u64,
) -> Result<Exit> {
    let name = format!("{}/{}", target.environment, target.service);
    let ecs = bundle.service_target(&target.environment, &target.service);
    let started = std::time::Instant::now();
    let until = started + std::time::Duration::from_secs(timeout_minutes * 60);
    let mut progress = Progress::new();
    // Where it stands before the first move (a rollout that ends at once still shows its line).
    if let Some(state) = ports.load(&target.state_key()).await?.map(|(s, _)| s) {
        let phase = phase_of(Some(&state));
        look(&mut progress, ports, ecs.as_ref(), &name, &phase, started).await;
    }
    loop {
        follow(ports, bundle, target, RunOptions::default()).await;
        let state = ports.load(&target.state_key()).await?.map(|(s, _)| s);
        match release_status(state.as_ref(), digest) {
            ReleaseStatus::Succeeded {
                task_definition_arn,
                ..
            } => {
                progress.finish(&format!("{name}: succeeded on {task_definition_arn}"));
                return Ok(Exit::Done);
            }
            ReleaseStatus::Failed(why) => {
                progress.finish(&format!("{name}: FAILED: {why}"));
                return Ok(Exit::Failed);
            }
            ReleaseStatus::Running => {
                let phase = phase_of(state.as_ref());
                look(&mut progress, ports, ecs.as_ref(), &name, &phase, started).await;
                if std::time::Instant::now() >= until {
                    progress.finish(&format!("{name}: still {phase} after {timeout_minutes} min; giving up waiting (the deployment goes on)"));
                    return Ok(Exit::TimedOut);
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

/// Shows the agent's `phase` beside ECS's own view of the service (tasks, its last event); a
/// read of ECS that fails only hides that part.
async fn look(
    progress: &mut Progress,
    ports: &AwsPorts,
    ecs: Option<&ServiceTarget>,
    name: &str,
    phase: &str,
    started: std::time::Instant,
) {
    let snapshot = match ecs {
        Some(t) => ports.describe(&t.cluster, &t.service).await.ok(),
        None => None,
    };
    progress.show(&Seen {
        target: name,
        phase,
        ecs: snapshot.as_ref(),
        elapsed: started.elapsed(),
    });
}
