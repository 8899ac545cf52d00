//! `harbormaster-bootstrap template | plan | apply | drift | destroy (--env E | --project)`
//!
//! Exit codes: 0 done (or nothing to do); 1 an error, a refusal or a failed stack; 2 something
//! is pending — `plan --detailed-exitcode` found changes, `drift` found drift, `destroy`
//! without `--yes` only showed what it would delete.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use harbormaster_bootstrap::apply::{self, Progress};
use harbormaster_bootstrap::changes::StackPlan;
use harbormaster_bootstrap::cloud::{Cloud, Event};
use harbormaster_bootstrap::destroy::{self, Preview};
use harbormaster_bootstrap::spec::Spec;
use harbormaster_core::config::{Config, CONFIG_FILE};

#[derive(Parser)]
#[command(
    name = "harbormaster-bootstrap",
    version,
    about = "An environment's base as CloudFormation: the project's stack (repositories, state bucket, topic) and one stack per environment"
)]
struct Cli {
    /// The folder holding harbormaster.toml.
    #[arg(long, global = true, env = "HARBORMASTER_CONFIG", default_value = ".")]
    config: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

/// Which stack: an environment's (with the project's it imports from), or the project's.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct Which {
    /// The environment (`[environments.<env>]` of harbormaster.toml).
    #[arg(long)]
    env: Option<String>,
    /// The project's stack alone: what every environment shares.
    #[arg(long)]
    project: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print the CloudFormation template, rendered from the config with no AWS call.
    Template {
        #[command(flatten)]
        which: Which,
    },
    /// Show what apply would change, as CloudFormation's change sets say; changes nothing.
    Plan {
        #[command(flatten)]
        which: Which,
        /// The result as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Exit 2 when there are changes (0 none, 1 error).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Execute the change sets (the project's stack first), showing each and its events.
    Apply {
        #[command(flatten)]
        which: Which,
        /// The result as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
        /// Let a change replace the database, a repository or the state bucket (its data is
        /// lost: the database keeps a snapshot, a repository or bucket is retained).
        #[arg(long)]
        allow_replace: bool,
    },
    /// Compare the stack's resources with their template (DetectStackDrift); exit 2 on drift.
    Drift {
        #[command(flatten)]
        which: Which,
        /// The result as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
    },
    /// Delete the environment's stack (never the project's), or the project's stack.
    Destroy {
        #[command(flatten)]
        which: Which,
        /// Without it, destroy only shows what it would delete (and exits 2).
        #[arg(long)]
        yes: bool,
        /// Delete the database without a final snapshot, and its password parameter.
        #[arg(long, conflicts_with = "project")]
        skip_final_snapshot: bool,
        /// With --project: delete the retained repositories (with their images), the state
        /// bucket (with every version) and the topic too.
        #[arg(long, requires = "project")]
        delete_data: bool,
        /// The result as JSON on stdout (progress stays on stderr).
        #[arg(long)]
        json: bool,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn spec_for(dir: &std::path::Path, which: &Which) -> Result<Spec> {
    let file = dir.join(CONFIG_FILE);
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let shown = file.display().to_string();
    let config = Config::parse(&shown, &text)?;
    // The project's stack is the same from every environment's settings (see `Spec`).
    let env = match &which.env {
        Some(e) => e.clone(),
        None => {
            (config.environments.keys().next().cloned()).context("the config has no environment")?
        }
    };
    Ok(Spec::from_config(&shown, &config, &env)?)
}

/// A result for scripts: `{"stacks": …}` on stdout.
fn print_json(stacks: &impl serde::Serialize) -> Result<()> {
    let doc = serde_json::json!({ "stacks": stacks });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

async fn run(cli: Cli) -> Result<u8> {
    let (Cmd::Template { which }
    | Cmd::Plan { which, .. }
    | Cmd::Apply { which, .. }
    | Cmd::Drift { which, .. }
    | Cmd::Destroy { which, .. }) = &cli.command;
    // Everything is checked before the first call.
    let spec = spec_for(&cli.config, which)?;
    let project_only = which.project;
    if let Cmd::Template { .. } = cli.command {
        let (_, template) = apply::targets(&spec, project_only).pop().context("a stack")?;
        println!("{}", serde_json::to_string_pretty(&template)?);
        return Ok(0);
    }
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
    let cloud = Cloud::new(&sdk);
    match cli.command {
        Cmd::Template { .. } => unreachable!("printed above, before any AWS client"),
        Cmd::Plan { json, detailed_exitcode, .. } => {
            let plans = apply::plan(&cloud, &spec, project_only).await?;
            match json {
                true => print_json(&plans)?,
                false => plans.iter().for_each(|p| print!("{}", p.text())),
            }
            let changes = plans.iter().any(|p| !p.changes.is_empty());
            Ok(if changes && detailed_exitcode { 2 } else { 0 })
        }
        Cmd::Apply { json, allow_replace, .. } => {
            let mut out = Console { json };
            let applied =
                apply::apply(&cloud, &spec, project_only, allow_replace, &mut out).await?;
            if json {
                print_json(&applied)?;
            }
            for a in applied.iter().filter(|_| !json) {
                println!("{}: {}", a.plan.stack, a.status.as_deref().unwrap_or("unchanged"));
            }
            if !json && !project_only {
                println!("outputs: SSM parameters under {}/outputs/", spec.parameter_root());
            }
            Ok(0)
        }
        Cmd::Drift { json, .. } => drift(&cloud, &spec, project_only, json).await,
        Cmd::Destroy { yes, skip_final_snapshot, delete_data, json, .. } => {
            let preview = match project_only {
                true => destroy::preview_project(&cloud, &spec, delete_data).await?,
                false => destroy::preview_environment(&cloud, &spec, skip_final_snapshot).await?,
            };
            show(&preview, json, yes)?;
            if !preview.exists && preview.data.is_none() {
                return Ok(0);
            } else if !yes {
                return Ok(2);
            }
            let mut out = Console { json };
            match project_only {
                true => destroy::project(&cloud, &preview, &mut out).await?,
                false => destroy::environment(&cloud, &spec, skip_final_snapshot, &mut out).await?,
            }
            if !json {
                println!("destroyed: {}", preview.stack);
            }
            Ok(0)
        }
    }
}

async fn drift(cloud: &Cloud, spec: &Spec, project_only: bool, json: bool) -> Result<u8> {
    let (mut all, mut any, mut incomplete) = (Vec::new(), false, false);
    for (stack, _) in apply::targets(spec, project_only) {
        if cloud.stack_status(&stack).await?.is_none() {
            anyhow::bail!("stack {stack} does not exist: apply it first");
        }
        let drift = cloud.drift(&stack).await?;
        let resources = &drift.resources;
        all.push(serde_json::json!({"stack": stack, "resources": resources, "failed": drift.failed, "unchecked": drift.unchecked()}));
        for d in resources.iter().filter(|d| !json && d.status != "IN_SYNC") {
            let paths = d.properties.join(", ");
            println!(
                "{stack}: {:<12} {:<34} {:<40} {paths}",
                d.status, d.logical_id, d.resource_type
            );
        }
        let drifted = resources.iter().filter(|d| d.drifted()).count();
        any |= drifted > 0;
        incomplete |= drift.failed.is_some();
        if !json {
            println!("stack {stack}: {drifted} of {} resources drifted", resources.len());
            if let Some(why) = &drift.failed {
                let unchecked = drift.unchecked().join(", ");
                println!("stack {stack}: not checked: {unchecked} ({why})");
            }
        }
    }
    if json {
        print_json(&all)?;
    }
    // Drift found: 2; none found, but some resource could not be checked: 1; else 0.
    Ok(match (any, incomplete) {
        (true, _) => 2,
        (false, true) => 1,
        (false, false) => 0,
    })
}

fn show(p: &Preview, json: bool, yes: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(p)?);
        return Ok(());
    }
    let (stack, n) = (&p.stack, p.deletes.len());
    match (p.exists, yes) {
        (false, _) => println!("stack {stack}: does not exist, nothing to delete"),
        (true, true) => println!("destroy stack {stack}: deletes {n} resources"),
        (true, false) => {
            println!("destroy stack {stack} (not done: add --yes): deletes {n} resources")
        }
    }
    for (id, kind, physical) in &p.deletes {
        println!("  - {id:<34} {kind:<40} {physical}");
    }
    p.keeps.iter().for_each(|k| println!("  keeps {k}"));
    for s in p.data.iter().flat_map(|d| &d.stores) {
        println!("  then deletes {s}");
    }
    Ok(())
}

/// Progress for a person on stderr (the result goes to stdout, as JSON with `--json`).
struct Console {
    json: bool,
}

impl Progress for Console {
    fn planned(&mut self, plan: &StackPlan) {
        if !self.json {
            print!("{}", plan.text());
            let _ = std::io::stdout().flush();
        }
    }

    fn event(&mut self, stack: &str, e: &Event) {
        let reason = if e.reason.is_empty() { String::new() } else { format!("  {}", e.reason) };
        eprintln!("  {stack}  {:<20} {:<40} {}{reason}", e.status, e.resource_type, e.logical_id);
    }

    fn note(&mut self, line: &str) {
        eprintln!("{line}");
    }
}
