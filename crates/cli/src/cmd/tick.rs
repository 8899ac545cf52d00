//! `harbormaster tick`: what the `tick` function does every minute.

use anyhow::Result;
use harbormaster_core::dispatch::tick;

use super::DryRun;
use crate::context::Context;
use crate::exit::Exit;
use crate::output::print_metrics;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let report = tick(&ports, &bundle, self.plan.options()).await;
        print_metrics(&report.targets);
        self.plan.print(&report, cx.json);
        Ok(Exit::of_targets(&report.targets))
    }
}
