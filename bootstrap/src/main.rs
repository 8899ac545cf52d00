//! `harbormaster-bootstrap plan | apply | destroy --env E`, `template (--env E | --project)`

// The SDK's futures nest deeply; release builds need more than the default query depth.
#![recursion_limit = "256"]

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use harbormaster_bootstrap::cloud::Cloud;
use harbormaster_bootstrap::model::Action;
use harbormaster_bootstrap::run::{self, kind_word, Report};
use harbormaster_bootstrap::spec::Spec;
use harbormaster_bootstrap::stacks;
use harbormaster_core::config::{Config, CONFIG_FILE};

#[derive(Parser)]
#[command(
    name = "harbormaster-bootstrap",
    version,
    about = "Provision an environment for Harbormaster"
)]
struct Cli {
    /// The folder holding harbormaster.toml.
    #[arg(long, global = true, env = "HARBORMASTER_CONFIG", default_value = ".")]
    config: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Show what apply would do; makes no change.
    Plan {
        #[arg(long)]
        env: String,
        #[arg(long)]
        json: bool,
    },
    /// Create what is missing, fix what drifted, leave what matches.
    Apply {
        #[arg(long)]
        env: String,
        #[arg(long)]
        json: bool,
    },
    /// Print the CloudFormation template of an environment's stack (or, with --project, of
    /// the project's: repositories, state bucket, topic), rendered from the config with no AWS
    /// call, for any tool that deploys CloudFormation.
    Template {
        #[arg(long, required_unless_present = "project")]
        env: Option<String>,
        #[arg(long)]
        project: bool,
    },
    /// Delete everything the environment's bootstrap made (dependents first).
    Destroy {
        #[arg(long)]
        env: String,
        /// Without it, destroy only shows what it would delete.
        #[arg(long)]
        yes: bool,
        /// Delete the database without a final snapshot (and its password with it).
        #[arg(long)]
        skip_final_snapshot: bool,
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run_cli(Cli::parse()).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run_cli(cli: Cli) -> Result<ExitCode> {
    let file = cli.config.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let shown = file.display().to_string();
    let config = Config::parse(&shown, &text)?;
    let env = match &cli.command {
        Cmd::Plan { env, .. } | Cmd::Apply { env, .. } | Cmd::Destroy { env, .. } => env.clone(),
        Cmd::Template { env, project } => {
            // The project's stack is the same from any environment's settings.
            let env = match env {
                Some(e) => e.clone(),
                None => (config.environments.keys().next().cloned())
                    .context("the config has no environment")?,
            };
            let spec = Spec::from_config(&shown, &config, &env)?;
            let template = if *project {
                stacks::project(&spec)
            } else {
                stacks::environment(&spec)
            };
            println!("{}", serde_json::to_string_pretty(&template)?);
            return Ok(ExitCode::SUCCESS);
        }
    };
    // Everything is checked before the first call.
    let spec = Spec::from_config(&shown, &config, &env)?;
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await;
    let cloud = Cloud::new(&sdk);
    let (report, json, verb) = match cli.command {
        Cmd::Plan { json, .. } => (run::plan(&cloud, &spec).await?, json, "plan"),
        Cmd::Apply { json, .. } => {
            eprintln!(
                "applying environment {} of {}…",
                spec.environment, spec.project
            );
            (run::apply(&cloud, &spec, json).await?, json, "apply")
        }
        Cmd::Destroy {
            yes,
            skip_final_snapshot,
            json,
            ..
        } => {
            let r = run::destroy(&cloud, &spec, yes, !skip_final_snapshot, json).await?;
            if !yes {
                print(&r, json, "destroy (not done: add --yes)")?;
                return Ok(ExitCode::from(2));
            }
            (r, json, "destroy")
        }
        Cmd::Template { .. } => unreachable!("printed above, before any AWS client"),
    };
    print(&report, json, verb)?;
    Ok(if !report.errors.is_empty() || report.conflicts() > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn print(r: &Report, json: bool, verb: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(r)?);
        return Ok(());
    }
    println!("{verb} for environment {}:", r.environment);
    for s in &r.steps {
        let (mark, what) = match &s.action {
            Action::Create => ("+", "create".to_owned()),
            Action::Update { changes } => ("~", format!("update: {}", changes.join(", "))),
            Action::Keep => ("=", "no change".to_owned()),
            Action::Conflict { reason } => ("!", reason.clone()),
            Action::Delete => ("-", "delete".to_owned()),
        };
        println!("  {mark} {:<16} {:<40} {what}", kind_word(s.kind), s.name);
    }
    println!(
        "{} to change, {} unchanged, {} in conflict",
        r.changes(),
        r.steps.iter().filter(|s| s.action == Action::Keep).count(),
        r.conflicts()
    );
    for e in &r.errors {
        println!("error: {e}");
    }
    if !r.outputs.is_empty() {
        println!("outputs (also in SSM):");
        for (k, v) in &r.outputs {
            println!("  {k} = {v}");
        }
    }
    Ok(())
}
