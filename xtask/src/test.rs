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
    // Every JSON request the end-to-end tests send through the strict proxy is recorded, then
    // checked against AWS's service models (botocore's), naming operation and member.
    let log = std::env::temp_dir().join(format!("harbormaster-requests-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&log);
    std::fs::create_dir_all(&log)?;
    let status = (cargo().args(["test", "--workspace"]).args(extra))
        .env("HARBORMASTER_REQUEST_LOG", &log)
        .status()?;
    if !status.success() {
        bail!("tests failed");
    }
    let checked = validate_requests(&log);
    let _ = std::fs::remove_dir_all(&log);
    checked
}

/// The recorded requests against botocore's models; the check's self-test first.
fn validate_requests(log: &std::path::Path) -> Result<()> {
    let venv = harbormaster_testkit::ensure_botocore().context("setting up botocore's venv")?;
    let python = venv.join("bin/python");
    let script = harbormaster_testkit::VALIDATE_REQUESTS;
    for args in [
        vec!["--self-test".to_owned()],
        vec![log.display().to_string()],
    ] {
        let status = std::process::Command::new(&python)
            .args(["-c", script])
            .args(&args)
            .status()?;
        if !status.success() {
            bail!(
                "requests AWS would refuse (validate_requests.py {})",
                args.join(" ")
            );
        }
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
