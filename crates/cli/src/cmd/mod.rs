//! One module per verb, like cargo-lambda's command crates: each has its `Args` and a
//! `run(self, &Context) -> Result<Exit>`; `main` only dispatches.

pub mod alarms;
pub mod approve;
pub mod deploy;
pub mod diff;
pub mod init;
pub mod invoke;
pub mod publish;
pub mod render;
pub mod rollback;
pub mod run;
pub mod scale;
pub mod service;
pub mod status;
pub mod tick;
pub mod validate;
mod wait;

use anyhow::Result;
use clap::Subcommand;

use crate::context::Context;
use crate::exit::Exit;

#[derive(Subcommand)]
pub enum Cmd {
    /// Check harbormaster.toml and every task-definition template, without calling AWS.
    Validate(validate::Args),
    /// Print the task definition that would be registered.
    Render(render::Args),
    /// Compare what git says each service of an environment runs with what it runs, field by
    /// field; exit 1 when one differs.
    Diff(diff::Args),
    /// Write a task-definition template from a service that already runs, and print its
    /// `[services.…]` block, to start managing it from git.
    Init(init::Args),
    /// Publish the config folder: checked, uploaded as one immutable bundle, then made current
    /// for the functions with compare-and-swap.
    Publish(publish::Args),
    /// Deploy an image of a service to an environment.
    Deploy(deploy::Args),
    /// Put a service back on a known good revision: the one before the current release, or one
    /// from its history. The release taken off is marked bad.
    Rollback(rollback::Args),
    /// Size a worker service from its backlog now (what the tick does every minute); with
    /// --dry-run, print the decision and its inputs and change nothing.
    Scale(scale::Args),
    /// Create the standard rollback alarms of a service (CPU, memory; 5XX and response time
    /// behind a load balancer), tagged so the `alarm` function maps them to it.
    Alarms(alarms::Args),
    /// Show deployments in flight, pending releases, last known good and history.
    Status(status::Args),
    /// Approve the deployment in flight at its approval gate (blue/green, canary, linear).
    Approve(approve::ApproveArgs),
    /// Reject the deployment in flight at its approval gate (same as `approve --reject`).
    Reject(approve::RejectArgs),
    /// Run a command once as a task of the revision a service runs (its network), wait for it
    /// and exit with its result: `harbormaster run --env dev --service web -- python manage.py
    /// migrate`.
    Run(run::Args),
    /// Act on an ECS service the agent owns: `service delete`.
    #[command(subcommand)]
    Service(service::Cmd),
    /// Advance what is in flight and reconcile lost pushes (what the `tick` function does).
    Tick(tick::Args),
    /// Run an event file through exactly the dispatch the Lambda functions use.
    Invoke(invoke::Args),
    /// Print a shell completion script: `harbormaster completions bash >
    /// /etc/bash_completion.d/harbormaster` (zsh: a file named `_harbormaster` on `$fpath`).
    Completions(Completions),
}

#[derive(clap::Args)]
pub struct Completions {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

impl Cmd {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        match self {
            Cmd::Validate(a) => a.run(cx).await,
            Cmd::Render(a) => a.run(cx).await,
            Cmd::Diff(a) => a.run(cx).await,
            Cmd::Init(a) => a.run(cx).await,
            Cmd::Publish(a) => a.run(cx).await,
            Cmd::Deploy(a) => a.run(cx).await,
            Cmd::Rollback(a) => a.run(cx).await,
            Cmd::Scale(a) => a.run(cx).await,
            Cmd::Alarms(a) => a.run(cx).await,
            Cmd::Status(a) => a.run(cx).await,
            Cmd::Approve(a) => a.run(cx).await,
            Cmd::Reject(a) => a.run(cx).await,
            Cmd::Run(a) => a.run(cx).await,
            Cmd::Service(a) => a.run(cx).await,
            Cmd::Tick(a) => a.run(cx).await,
            Cmd::Invoke(a) => a.run(cx).await,
            // Printed by `main` before any set-up (it needs the whole command tree).
            Cmd::Completions(_) => Ok(Exit::Done),
        }
    }
}

/// `--dry-run`: every mutating command has it.
#[derive(clap::Args, Clone, Copy)]
pub struct DryRun {
    /// Decide and print what would happen; make no mutating call.
    #[arg(long)]
    pub dry_run: bool,
}

impl DryRun {
    /// The report on stdout: a summary for a person, or with `--json` the full report (for
    /// scripts and CodeBuild); on stderr, that nothing was changed when nothing was.
    pub fn print<R: serde::Serialize + std::fmt::Display>(self, report: &R, json: bool) {
        if json {
            let v = serde_json::to_string_pretty(report).expect("report serialises");
            out!("{v}");
        } else {
            out!("{report}");
        }
        if self.dry_run {
            eprintln!("dry run: nothing was written and no mutating call was made");
        }
    }

    pub fn options(self) -> harbormaster_core::RunOptions {
        harbormaster_core::RunOptions {
            dry_run: self.dry_run,
            ..Default::default()
        }
    }
}

/// `--env` and `--service`: the deployment target most commands act on.
#[derive(clap::Args, Clone)]
pub struct TargetArgs {
    /// The environment, as named in harbormaster.toml.
    #[arg(long)]
    pub env: String,
    /// The service, as named in harbormaster.toml.
    #[arg(long)]
    pub service: String,
}

impl TargetArgs {
    pub fn target(&self) -> harbormaster_core::Target {
        harbormaster_core::Target::new(&self.env, &self.service)
    }
}
