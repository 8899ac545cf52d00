//! `harbormaster rollback`: a person puts the service back on a known good revision.

use anyhow::Result;
use harbormaster_core::dispatch::request_rollback;

use super::{DryRun, TargetArgs};
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// A task-definition ARN, `family:revision` or revision number from the service's
    /// history (see `status`); default: the good release before the current one.
    #[arg(long)]
    to: Option<String>,
    /// Return to `--to` even if that release is marked bad.
    #[arg(long, requires = "to")]
    force: bool,
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let target = self.target.target();
        let (ports, bundle) = cx.prepare().await?;
        let (to, by, opts) = (self.to, cx.actor().await?, self.plan.options());
        let report = request_rollback(&ports, &bundle, &target, to, self.force, &by, opts).await?;
        self.plan.print(&report, cx.json);
        Ok(Exit::of_request(&report))
    }
}
