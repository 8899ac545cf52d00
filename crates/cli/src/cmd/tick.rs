//! `harbormaster tick`: what the `tick` function does every minute. On a terminal, a spinner
//! while it runs, then one line per service still rolling out (phase, ECS's tasks and last
//! event, time since it started), as `deploy --wait` draws it.

use anyhow::Result;
use harbormaster_aws::AwsPorts;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::tick;
use harbormaster_core::engine::TargetReport;
use harbormaster_core::ports::{Services, StateStore};
use harbormaster_core::state::ServiceState;

use super::DryRun;
use crate::context::Context;
use crate::exit::Exit;
use crate::output::print_metrics;
use crate::progress::{phase_of, spinner, timed_line, Seen};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let interactive = if cx.json { None } else { spinner("tick") };
        let report = tick(&ports, &bundle, self.plan.options()).await;
        if let Some(bar) = &interactive {
            bar.finish_and_clear();
        }
        print_metrics(&report.targets);
        self.plan.print(&report, cx.json);
        if interactive.is_some() {
            rolling_out(&ports, &bundle, &report.targets).await;
        }
        Ok(Exit::of_targets(&report.targets))
    }
}

/// One line per service with a deployment in flight after the tick.
async fn rolling_out(ports: &AwsPorts, bundle: &Bundle, targets: &[TargetReport]) {
    for t in targets {
        let key = ServiceState::key(&t.environment, &t.service);
        let Ok(Some((state, _))) = ports.load(&key).await else {
            continue;
        };
        let Some(d) = &state.in_flight else {
            continue;
        };
        let ecs = match bundle.service_target(&t.environment, &t.service) {
            Some(s) => ports.describe(&s.cluster, &s.service).await.ok(),
            None => None,
        };
        let elapsed = (chrono::Utc::now() - d.started_at)
            .to_std()
            .unwrap_or_default();
        let name = format!("{}/{}", t.environment, t.service);
        let phase = phase_of(Some(&state));
        eprintln!(
            "{}",
            timed_line(&Seen {
                target: &name,
                phase: &phase,
                ecs: ecs.as_ref(),
                elapsed,
            })
        );
    }
}
