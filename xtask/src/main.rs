//! `cargo xtask demo | test | chaos | bench | package | emulator | push | docs`: every set-up step a fresh
//! machine needs is here, a module per command.

mod bench;
mod chaos;
mod demo;
mod emulator;
mod package;
mod test;

use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Result;

const USAGE: &str = "usage: cargo xtask <command>

  demo       push an image and watch it deploy, on the local emulator
  test       every test: unit, scenario and end-to-end (starts its own emulators)
  chaos      the deployment scenarios through microburst under every fault kind
  bench      start-up and push-to-update benchmarks (release build; writes BENCHMARKS.md)
  package    build every Lambda function's zip with cargo-lambda (release) and print sizes
  emulator   the local playground: the emulator with dev bootstrapped, and the exports that
             point the AWS CLI, the SDK and harbormaster at it (Ctrl-C stops it)
  docs       write docs/cli.md from the binaries' --help (a test checks it)
  push S T   push a fake image tagged T to service S's repository on the playground and
             deliver ECR's event, as `docker push` and EventBridge would";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => tokio_run(demo::demo()),
        Some("test") => test::test(&args[1..]),
        Some("chaos") => chaos::chaos(),
        Some("bench") => tokio_run(bench::bench()),
        Some("package") => package::package(),
        Some("emulator") => tokio_run(emulator::emulator()),
        Some("push") => tokio_run(emulator::push(&args[1..])),
        Some("docs") => docs(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `docs/cli.md`, from the binaries as built now.
fn docs() -> Result<()> {
    test::build_bins()?;
    let page = harbormaster_e2e::docs::cli_reference()?;
    std::fs::write(root().join("docs/cli.md"), page)?;
    println!("wrote docs/cli.md");
    Ok(())
}

fn tokio_run<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn root() -> PathBuf {
    harbormaster_e2e::workspace_root()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
        .join(".cache/harbormaster")
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}
