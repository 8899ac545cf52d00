//! `harbormaster approve` / `reject`: a person's decision at an approval gate, or at a
//! pipeline's manual approval action.

use anyhow::{bail, Result};
use harbormaster_core::dispatch::record_approval;
use harbormaster_core::ports::Pipelines;

use super::DryRun;
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Decision {
    /// With --service: the deployment in flight at its approval gate.
    #[arg(long, requires = "service", required_unless_present = "pipeline")]
    env: Option<String>,
    /// The service whose deployment waits at its approval gate.
    #[arg(long, requires = "env")]
    service: Option<String>,
    /// With --stage and --action: a pipeline's manual approval action instead.
    #[arg(long, requires_all = ["stage", "action"], conflicts_with = "env")]
    pipeline: Option<String>,
    /// The pipeline stage holding the approval action.
    #[arg(long)]
    stage: Option<String>,
    /// The manual approval action's name.
    #[arg(long)]
    action: Option<String>,
    /// Why, in a few words: kept with the decision and shown in `status`.
    #[arg(long)]
    summary: Option<String>,
    #[command(flatten)]
    plan: DryRun,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    #[command(flatten)]
    decision: Decision,
    /// Reject instead of approving: the hook fails and ECS rolls the deployment back.
    #[arg(long)]
    reject: bool,
}

#[derive(clap::Args)]
pub struct RejectArgs {
    #[command(flatten)]
    decision: Decision,
}

impl ApproveArgs {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        self.decision.answer(cx, !self.reject).await
    }
}

impl RejectArgs {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        self.decision.answer(cx, false).await
    }
}

impl Decision {
    async fn answer(self, cx: &Context, approved: bool) -> Result<Exit> {
        if let (Some(p), Some(st), Some(ac)) = (&self.pipeline, &self.stage, &self.action) {
            return self.answer_pipeline(cx, (p, st, ac), approved).await;
        }
        let (Some(env), Some(service)) = (&self.env, &self.service) else {
            bail!("give --env and --service, or --pipeline, --stage and --action");
        };
        let (ports, bundle) = cx.prepare().await?;
        let opts = self.plan.options();
        let target = harbormaster_core::Target::new(env, service);
        let (by, summary) = (cx.actor().await?, self.summary);
        let report =
            record_approval(&ports, &bundle, &target, approved, &by, summary, opts).await?;
        self.plan.print(&report, cx.json);
        Ok(Exit::of_request(&report))
    }

    async fn answer_pipeline(
        &self,
        cx: &Context,
        (pipeline, stage, action): (&str, &str, &str),
        approved: bool,
    ) -> Result<Exit> {
        if self.plan.dry_run {
            eprintln!("dry run: would answer {pipeline} / {stage} / {action}; nothing was sent");
            return Ok(Exit::Done);
        }
        let summary = match self.summary.clone() {
            Some(s) => s,
            None => format!("by {}", cx.actor().await?),
        };
        let agent = cx.agent().await?;
        let ports = &agent.ports;
        ports
            .answer_approval(pipeline, stage, action, approved, &summary)
            .await?;
        let word = if approved { "approved" } else { "rejected" };
        out!("{word} {pipeline} / {stage} / {action}");
        Ok(Exit::Done)
    }
}
