//! `cargo xtask chaos`: the deployment scenarios through microburst under every fault kind.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use harbormaster_testkit::ensure_venv;

use crate::test::build_bins;
use crate::tokio_run;

/// Every scenario under every fault kind (the test suite runs the smaller set); prints, per fault
/// kind, the scenarios run and their outcomes. `HARBORMASTER_CHAOS_ONLY=<part of a name>` runs
/// one fault kind.
pub(crate) fn chaos() -> Result<()> {
    use harbormaster_e2e::chaos::{run, table, Size};
    ensure_venv().context("setting up the emulator venv")?;
    build_bins()?;
    println!("chaos: microburst between the agent and the emulator; each scenario first runs without faults");
    let started = Instant::now();
    let runs = tokio_run(run(Size::Full, |r| {
        println!(
            "  {:<45} {:<34} {} ({:.1} s, {} invocations)",
            r.fault,
            r.scenario.name(),
            r.outcome(),
            r.elapsed.as_secs_f64(),
            r.invocations
        )
    }))?;
    println!("\n{}", table(&runs));
    let failed: Vec<_> = runs.iter().filter(|r| r.failure.is_some()).collect();
    for r in &failed {
        println!(
            "--- {} / {}: invocations\n{}",
            r.fault,
            r.scenario.name(),
            r.log.join("\n")
        );
    }
    println!(
        "{} runs, {} held, {} failed, in {:.0} s",
        runs.len(),
        runs.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("{} chaos runs did not hold", failed.len());
    }
    Ok(())
}
