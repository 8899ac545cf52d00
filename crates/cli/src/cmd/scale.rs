//! `harbormaster scale`: size a worker service from its backlog now.

use anyhow::Result;

use super::{DryRun, TargetArgs};
use crate::context::Context;
use crate::exit::Exit;
use crate::output::print_metrics;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let target = self.target.target();
        let scaled =
            harbormaster_core::dispatch::scale(&ports, &bundle, &target, self.plan.options());
        let report = scaled.await?;
        let reports = std::slice::from_ref(&report);
        print_metrics(reports);
        self.plan.print(&report, cx.json);
        Ok(Exit::of_targets(reports))
    }
}
