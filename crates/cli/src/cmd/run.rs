//! `harbormaster run --env E --service S -- COMMAND…`: the command once, as a task of the
//! revision the service runs (its network, on-demand Fargate), followed to its end: what a
//! `before_deploy` migration does, by hand (ecspresso's `run`).

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use harbormaster_core::engine::{start_one_off, OneOffError, OneOffStart};
use harbormaster_core::ports::{Clock, Services, TaskDefinitions, Tasks};
use harbormaster_core::service::TaskProgress;
use harbormaster_core::state::OneOffRun;
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
        let mut target = harbormaster_core::engine::target_for(&ports, &bundle, env, service)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let snap = (ports.describe(&target.cluster, &target.service).await)
            .with_context(|| format!("service {} in {}", target.service, target.cluster))?;
        if target.settings.network.is_none() {
            // Neither git nor the bootstrap says: where the service runs.
            target.settings.network = snap.network;
        }
        let running = snap.task_definition;
        let container = match &self.container {
            Some(c) => c.clone(),
            None => {
                let names =
                    bundle.templates[service].image_containers(&bundle.config.services[service])?;
                names
                    .first()
                    .cloned()
                    .context("the template has no container")?
            }
        };
        if self.dry_run {
            eprintln!(
                "would RunTask {running} in {} with {container}'s command `{}`; nothing was started",
                target.cluster,
                self.command.join(" ")
            );
            return Ok(Exit::Done);
        }
        let body = ports.describe_body(&running).await.ok();
        // Each run is its own: a token from this moment, not from a deployment.
        let now = ports.now().timestamp_nanos_opt().unwrap_or_default();
        let token = format!("run/{env}/{service}/{now}");
        let start = OneOffStart {
            revision: &running,
            definition: body.as_ref().map(|b| &b["taskDefinition"]),
            container,
            command: self.command.clone(),
            token: &token,
            started_by: "harbormaster-run",
        };
        let run = start_one_off(&ports, &target, start).await.map_err(|e| match e {
            OneOffError::NoNetwork => anyhow!("no network for the task: give `services.{service}.network` or bootstrap the environment"),
            OneOffError::Port(e) => e.into(),
        })?;
        eprintln!("started {}", run.task_arn);
        let progress = follow(&ports, &target.cluster, &run, self.timeout_minutes).await?;
        report(cx, &run, &progress, self.timeout_minutes)
    }
}

/// DescribeTasks until the task stops or `minutes` have passed: after 1 s, then doubling up to
/// every 5 s. ECS may not know a task just started (RunTask API reference: eventually
/// consistent, "use exponential backoff"): MISSING within `VISIBLE_WITHIN` of the start is
/// "not yet", asked again.
async fn follow(
    ports: &impl Tasks,
    cluster: &str,
    run: &OneOffRun,
    minutes: u64,
) -> Result<TaskProgress> {
    let deadline = Instant::now() + Duration::from_secs(minutes * 60);
    let mut wait = Duration::from_secs(1);
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
        let p = ports
            .task_progress(cluster, &run.task_arn, &run.container)
            .await?;
        let not_yet = p == TaskProgress::Unknown
            && harbormaster_core::service::not_visible_yet(run.started_at, chrono::Utc::now());
        if (p != TaskProgress::Running && !not_yet) || Instant::now() > deadline {
            return Ok(p);
        }
    }
}

/// How the task ended, for a person or (`--json`) a script; its exit code by the one table.
fn report(cx: &Context, run: &OneOffRun, progress: &TaskProgress, minutes: u64) -> Result<Exit> {
    let (exit, words) = match progress {
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
            format!("still running after {minutes} minutes"),
        ),
        TaskProgress::Unknown => (Exit::Error, "ECS no longer knows the task".into()),
    };
    let task = &run.task_arn;
    if cx.json {
        let v = json!({"task": task, "progress": progress, "log_stream": run.log_stream});
        out!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        out!("{task}: {words}");
        if let Some(l) = &run.log_stream {
            out!("logs: {l}");
        }
    }
    Ok(exit)
}
