//! `harbormaster`: the local tool and the CodeBuild step. `main` parses the flags, builds the
//! context once and dispatches to the verb's module (`cmd/<verb>.rs`).

mod cmd;
mod context;
mod exit;
mod orphans;
mod output;

use std::process::ExitCode;

use clap::Parser;
use harbormaster_aws::telemetry;

use context::Context;
use exit::Exit;

#[derive(Parser)]
#[command(
    name = "harbormaster",
    version,
    about = "GitOps deployments for Amazon ECS on Fargate"
)]
struct Cli {
    /// The GitOps source: a folder holding harbormaster.toml, or s3://bucket/prefix.
    #[arg(long, global = true, env = "HARBORMASTER_CONFIG", default_value = ".")]
    config: String,
    /// Log what happens (to stderr).
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Log as JSON lines, as the Lambda functions do.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: cmd::Cmd,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.log_json {
        telemetry::init_json();
    } else {
        telemetry::init_text(cli.verbose);
    }
    let cx = Context::new(cli.config);
    match cli.command.run(&cx).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {e:#}");
            Exit::Error.into()
        }
    }
}
