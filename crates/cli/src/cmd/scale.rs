//! `harbormaster scale`: size a worker service from its backlog now.

use anyhow::Result;
use harbormaster_core::RunOptions;

use super::TargetArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::output::{print_json, print_metrics};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Print the decision and its inputs; change nothing.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let opts = RunOptions {
            dry_run: self.dry_run,
        };
        let target = self.target.target();
        let report = harbormaster_core::dispatch::scale(&ports, &bundle, &target, opts).await?;
        let reports = std::slice::from_ref(&report);
        print_metrics(reports);
        print_json(&report, self.dry_run);
        Ok(Exit::of_targets(reports))
    }
}
