//! `harbormaster rollback`: a person puts the service back on a known good revision.

use anyhow::Result;
use harbormaster_core::dispatch::request_rollback;
use harbormaster_core::RunOptions;

use super::TargetArgs;
use crate::context::Context;
use crate::exit::Exit;
use crate::output::print_json;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// A task-definition ARN, `family:revision` or revision number from the service's
    /// history (see `status`); default: the good release before the current one.
    #[arg(long)]
    to: Option<String>,
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
        let target = self.target.target();
        let report = request_rollback(&ports, &bundle, &target, self.to, &cx.caller, opts).await?;
        print_json(&report, self.dry_run);
        Ok(Exit::of_request(&report))
    }
}
