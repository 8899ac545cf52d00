//! `cargo xtask test`: every test, after the emulator venv and the binaries the end-to-end
//! tests run are ready.

use anyhow::{bail, Context, Result};
use harbormaster_testkit::ensure_venv;

use crate::cargo;

pub(crate) fn test(extra: &[String]) -> Result<()> {
    // Set up the emulator's venv once, before tests race to it, and say so if it fails.
    let venv = ensure_venv().context("setting up the emulator venv")?;
    eprintln!("xtask: emulator venv ready at {}", venv.display());
    // The terminal tests draw in a tmux pane; redis-server the harness installs itself.
    harbormaster_testkit::ensure_debian_package("tmux", "tmux")?;
    build_bins()?;
    let status = cargo().args(["test", "--workspace"]).args(extra).status()?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}

/// The end-to-end tests and chaos run the real binaries (the CLI, the Lambda functions), found
/// beside the running test or xtask. `cargo test` builds binaries only as test harnesses, so
/// build them first: fresh, never stale.
pub(crate) fn build_bins() -> Result<()> {
    let status = cargo().args(["build", "--workspace", "--bins"]).status()?;
    if !status.success() {
        bail!("building the binaries failed");
    }
    Ok(())
}
