//! `harbormaster run --env E --service S -- COMMAND…`: the command once, as a task of the
//! revision the service runs (its network, on-demand Fargate), followed to its end: what a
//! `before_deploy` migration does, by hand (ecspresso's `run`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use harbormaster_core::ports::{Clock, Services, TaskDefinitions, Tasks};
use harbormaster_core::service::{log_stream, TaskProgress, TaskRun};
use serde_json::json;

use super::TargetArgs;
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// The container whose command is replaced; default: the first one running the service's
    /// image.
    #[arg(long)]
    container: Option<String>,
    /// Stop waiting after this long (the task goes on; exit 4).
    #[arg(long, default_value_t = 60)]
    timeout_minutes: u64,
    /// Show the task that would run; start nothing.
    #[arg(long)]
    dry_run: bool,
    /// The command and its arguments, after `--`.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let (env, service) = (&self.target.env, &self.target.service);
        let target = harbormaster_core::engine::target_for(&ports, &bundle, env, service)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let mut target = target;
        let snap = ports
            .describe(&target.cluster, &target.service)
            .await
            .with_context(|| format!("service {} in {}", target.service, target.cluster))?;
        if target.settings.network.is_none() {
            // Neither git nor the bootstrap says: where the service runs.
            target.settings.network = snap.network;
        }
        let running = snap.task_definition;
        let container = match &self.container {
            Some(c) => c.clone(),
            None => {
                let s = &bundle.config.services[service];
                let template = &bundle.templates[service];
                let names = template.image_containers(s)?;
                names
                    .first()
                    .cloned()
                    .context("the template has no container")?
            }
        };
        // Each run is its own: a token from this moment, not from a deployment.
        let token = format!(
            "run/{env}/{service}/{}",
            ports.now().timestamp_nanos_opt().unwrap_or_default()
        );
        let mut run = TaskRun::for_service(
            &target.settings,
            &running,
            &container,
            self.command.clone(),
            &token,
        )
        .with_context(|| {
            format!("no network for the task: give `services.{service}.network` or bootstrap the environment")
        })?;
        run.started_by = "harbormaster-run".into();
        if self.dry_run {
            eprintln!(
                "would RunTask {running} in {} with {container}'s command `{}`; nothing was started",
                target.cluster,
                self.command.join(" ")
            );
            return Ok(Exit::Done);
        }
        let task = ports.run_task(&run).await?;
        eprintln!("started {task}");
        let logs = ports
            .describe_body(&running)
            .await
            .ok()
            .and_then(|b| log_stream(&b["taskDefinition"], &container, &task));
        let deadline = Instant::now() + Duration::from_secs(self.timeout_minutes * 60);
        let progress = loop {
            let p = ports
                .task_progress(&target.cluster, &task, &container)
                .await?;
            if p != TaskProgress::Running || Instant::now() > deadline {
                break p;
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        let (exit, words) = match &progress {
            TaskProgress::Stopped {
                exit_code: Some(0),
                reason,
            } => (Exit::Done, format!("exited 0 ({reason})")),
            TaskProgress::Stopped { exit_code, reason } => (
                Exit::Failed,
                match exit_code {
                    Some(c) => format!("exited {c} ({reason})"),
                    None => format!("stopped without an exit code ({reason})"),
                },
            ),
            TaskProgress::Running => (
                Exit::TimedOut,
                format!("still running after {} minutes", self.timeout_minutes),
            ),
            TaskProgress::Unknown => (Exit::Error, "ECS no longer knows the task".into()),
        };
        if cx.json {
            let v = json!({"task": task, "progress": progress, "log_stream": logs});
            out!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            out!("{task}: {words}");
            if let Some(l) = &logs {
                out!("logs: {l}");
            }
        }
        Ok(exit)
    }
}
