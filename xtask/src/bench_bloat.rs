//! What dominates the code of `ecr-push` and of the SDK floor, by crate: cargo-bloat (pinned,
//! installed on first use) over an unstripped link of each. Run last in the bench: it relinks
//! those two binaries unstripped, and the next release build strips them again.

use std::collections::BTreeMap;
use std::process::Stdio;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::cargo;

const CARGO_BLOAT: &str = "0.12.1";
/// Rows of the table: the crates largest in either binary.
const ROWS: usize = 14;

/// Bytes of `.text` by crate.
fn crates_of(package: &str) -> Result<(u64, BTreeMap<String, u64>)> {
    let out = cargo()
        .args([
            "bloat",
            "--release",
            "--crates",
            "-n",
            "0",
            "--message-format",
            "json",
        ])
        .args(["-p", package])
        // cargo-bloat reads symbols: this link keeps them (the profile strips).
        .env("CARGO_PROFILE_RELEASE_STRIP", "false")
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        bail!("cargo bloat -p {package} failed");
    }
    let report: Value = serde_json::from_slice(&out.stdout).context("cargo bloat's JSON")?;
    let text = report["text-section-size"].as_u64().unwrap_or(0);
    let crates = report["crates"]
        .as_array()
        .context("cargo bloat's crates")?
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?.to_owned(), c["size"].as_u64()?)))
        .collect();
    Ok((text, crates))
}

fn ensure_cargo_bloat() -> Result<()> {
    let installed = cargo()
        .args(["bloat", "--version"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(CARGO_BLOAT));
    if installed {
        return Ok(());
    }
    println!("installing cargo-bloat {CARGO_BLOAT} (crates.io)…");
    let status = cargo()
        .args([
            "install",
            "--locked",
            "cargo-bloat",
            "--version",
            CARGO_BLOAT,
        ])
        .status()?;
    if !status.success() {
        bail!("cargo install cargo-bloat failed");
    }
    Ok(())
}

/// The table: each large crate's code in ecr-push and in the floor, the rest, the total.
pub(crate) fn crate_table() -> Result<String> {
    ensure_cargo_bloat()?;
    println!("code by crate (cargo-bloat over unstripped links of ecr-push and sdk-floor)…");
    let (ours_text, ours) = crates_of("ecr-push")?;
    let (floor_text, floor) = crates_of("sdk-floor")?;
    let size = |m: &BTreeMap<String, u64>, k: &str| m.get(k).copied().unwrap_or(0);
    let names: std::collections::BTreeSet<&String> = ours.keys().chain(floor.keys()).collect();
    let mut names: Vec<&String> = names.into_iter().collect();
    names.sort_by_key(|k| std::cmp::Reverse(size(&ours, k).max(size(&floor, k))));
    let kib = |b: u64| b as f64 / 1024.0;
    let mut rows = String::from(
        "\nCode by crate (`cargo bloat --crates`, cargo-bloat's attribution of `.text`):\n\n\
         | crate | ecr-push | sdk-floor | ecr-push − floor |\n| --- | --- | --- | --- |\n",
    );
    let (mut shown_ours, mut shown_floor) = (0, 0);
    for name in names.iter().take(ROWS) {
        let (o, f) = (size(&ours, name), size(&floor, name));
        shown_ours += o;
        shown_floor += f;
        rows += &format!(
            "| {name} | {:.0} KiB | {:.0} KiB | {:+.0} KiB |\n",
            kib(o),
            kib(f),
            kib(o) - kib(f)
        );
    }
    let rest_o = ours_text.saturating_sub(shown_ours);
    let rest_f = floor_text.saturating_sub(shown_floor);
    rows += &format!(
        "| the other {} crates | {:.0} KiB | {:.0} KiB | {:+.0} KiB |\n\
         | all of `.text` | {:.0} KiB | {:.0} KiB | {:+.0} KiB |\n",
        names.len().saturating_sub(ROWS),
        kib(rest_o),
        kib(rest_f),
        kib(rest_o) - kib(rest_f),
        kib(ours_text),
        kib(floor_text),
        kib(ours_text) - kib(floor_text),
    );
    Ok(rows)
}
