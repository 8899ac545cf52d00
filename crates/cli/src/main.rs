//! `harbormaster`: the local tool and the CodeBuild step. `main` parses the flags, builds the
//! context once and dispatches to the verb's module (`cmd/<verb>.rs`).

/// `println!` for reports: ends the process quietly when the reader has gone (`render |
/// head -1`). Rust ignores SIGPIPE, so `println!` would panic there with exit code 101.
macro_rules! out {
    () => {
        $crate::output::line(format_args!(""))
    };
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}

mod cmd;
mod context;
mod exit;
mod orphans;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use harbormaster_aws::telemetry;

use context::Context;
use exit::Exit;

/// Global flags are listed under their own heading in every command's help.
const GLOBAL: &str = "Global options";

#[derive(Parser)]
#[command(
    name = "harbormaster",
    version,
    about = "GitOps deployments for Amazon ECS on Fargate"
)]
struct Cli {
    /// The GitOps source: a folder holding harbormaster.toml, or s3://bucket/prefix.
    #[arg(long, global = true, env = "HARBORMASTER_CONFIG", default_value = ".", help_heading = GLOBAL)]
    config: String,
    /// Log what happens (to stderr).
    #[arg(long, short, global = true, help_heading = GLOBAL)]
    verbose: bool,
    /// Log as JSON lines, as the Lambda functions do.
    #[arg(long, global = true, help_heading = GLOBAL)]
    log_json: bool,
    /// Print the full report as JSON on stdout, for scripts (every command); without it, a
    /// summary a person reads.
    #[arg(long, global = true, help_heading = GLOBAL)]
    json: bool,
    #[command(subcommand)]
    command: cmd::Cmd,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let cmd::Cmd::Completions(c) = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(
            c.shell,
            &mut command,
            "harbormaster",
            &mut std::io::stdout(),
        );
        return Exit::Done.into();
    }
    if cli.log_json {
        telemetry::init_json();
    } else {
        telemetry::init_text(cli.verbose);
    }
    let cx = Context::new(cli.config, cli.json);
    match cli.command.run(&cx).await {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("error: {}", output::escaped(&output::error_chain(&e)));
            Exit::Error.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every flag of every command says what it does (`--help` is the CLI reference).
    #[test]
    fn every_flag_has_help_text() {
        fn walk(c: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for a in c.get_arguments() {
                let builtin = matches!(a.get_id().as_str(), "help" | "version");
                if a.get_help().is_none() && a.get_long_help().is_none() && !builtin {
                    missing.push(format!("{path}: {}", a.get_id()));
                }
            }
            for s in c.get_subcommands() {
                walk(s, &format!("{path} {}", s.get_name()), missing);
            }
        }
        let cli = super::Cli::command();
        cli.clone().debug_assert();
        let mut missing = Vec::new();
        walk(&cli, "harbormaster", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }
}
