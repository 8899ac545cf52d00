//! `harbormaster tick`: what the `tick` function does every minute.

use anyhow::Result;
use harbormaster_core::dispatch::tick;
use harbormaster_core::RunOptions;

use crate::context::Context;
use crate::exit::Exit;
use crate::output::{print_json, print_metrics};

#[derive(clap::Args)]
pub struct Args {
    /// Decide and print what would happen; make no mutating call.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let opts = RunOptions {
            dry_run: self.dry_run,
        };
        let report = tick(&ports, &bundle, opts).await;
        print_metrics(&report.targets);
        print_json(&report, self.dry_run);
        Ok(Exit::of_targets(&report.targets))
    }
}
