//! `harbormaster invoke`: an event file through exactly the dispatch the Lambda functions use.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use harbormaster_aws::handler;
use harbormaster_core::machine::HookStatus;
use harbormaster_core::pipeline::job::JobResult;
use serde_json::Value;

use super::DryRun;
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// A JSON event file, or - for standard input.
    #[arg(long)]
    event: PathBuf,
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let value = self.read()?;
        let function = handler::route(&value).with_context(|| self.unrouted(&value))?;
        let agent = cx.agent().await?;
        let opts = self.plan.options();
        if function.runs == handler::Runs::PipelineJob {
            let report = harbormaster_aws::pipeline::handle_job(agent, &value, None, opts)
                .await
                .map_err(anyhow::Error::msg)?;
            self.plan.print(&report, cx.json);
            let failed = matches!(report.result, JobResult::Failed { .. });
            return Ok(if failed { Exit::Failed } else { Exit::Done });
        }
        let report = handler::dispatch(agent, function, &value, opts)
            .await
            .with_context(|| format!("{} ({})", self.event.display(), function.name))?;
        self.plan.print(&report, cx.json);
        // A hook that fails a deployment is a failure here too.
        let hook = report.hook.as_ref();
        if hook.is_some_and(|h| h.hook_status == HookStatus::Failed) {
            return Ok(Exit::Failed);
        }
        Ok(Exit::of_targets(&report.targets))
    }

    fn read(&self) -> Result<Value> {
        let text = if self.event.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())?
        } else {
            std::fs::read_to_string(&self.event)
                .with_context(|| format!("reading {}", self.event.display()))?
        };
        serde_json::from_str(&text)
            .with_context(|| format!("{}: not a JSON event", self.event.display()))
    }

    /// Names the event's detail-type and every one a function handles.
    fn unrouted(&self, value: &Value) -> String {
        let detail_type = value
            .get("detail-type")
            .map(|v| v.to_string())
            .unwrap_or_else(|| "(none)".into());
        let handled: Vec<String> = handler::FUNCTIONS
            .iter()
            .map(|f| format!("{} ({})", f.accepts.join(", "), f.name))
            .collect();
        format!(
            "{}: no Harbormaster function handles detail-type {detail_type}; handled: {}",
            self.event.display(),
            handled.join("; ")
        )
    }
}
