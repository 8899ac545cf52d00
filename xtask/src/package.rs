//! `cargo xtask package`: every function's deployment zip, built with cargo-lambda, and the
//! CLIs' archive for the machines that run them (people's, CodeBuild's).

use std::process::Command;

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler::{self};

use crate::{cache_dir, cargo, target_dir};

/// The cargo-lambda release the zips are built with: pinned, so a new release never changes a
/// build by itself.
const CARGO_LAMBDA: &str = "cargo-lambda==1.9.2";

/// Every function's deployment zip, built with cargo-lambda (installed from PyPI into a venv of
/// its own when missing; it brings zig for linking). arm64 where the aarch64 standard library is
/// installed, x86_64 otherwise, and the output says which.
pub(crate) fn package() -> Result<()> {
    let venv = cache_dir().join("venv-cargo-lambda");
    let bin = venv.join("bin");
    if !bin.join("cargo-lambda").exists() {
        println!("installing cargo-lambda from PyPI into {}…", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(bin.join("pip"))
                .args(["install", "-q", CARGO_LAMBDA])
                .status()?
                .success();
        if !ok {
            bail!("could not install cargo-lambda (pip install {CARGO_LAMBDA})");
        }
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let arm = installed
        .lines()
        .any(|l| l.trim() == "aarch64-unknown-linux-gnu");
    let arch = if arm {
        println!("building for arm64 (as deploy/template.yaml says)");
        "--arm64"
    } else {
        println!(
            "NOTE: the aarch64 standard library is not installed here (and rustup's server is out of reach), so these zips are x86_64. \
             Deploy them with `Architectures: [x86_64]`, or build where `rustup target add aarch64-unknown-linux-gnu` works."
        );
        "--x86-64"
    };
    let out_dir = target_dir().join("lambda");
    let mut cmd = cargo();
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .args([
        "lambda",
        "build",
        "--release",
        arch,
        "--output-format",
        "zip",
        "--lambda-dir",
    ])
    .arg(&out_dir);
    for f in handler::FUNCTIONS {
        cmd.args(["--bin", f.name]);
    }
    if !cmd.status()?.success() {
        bail!("cargo lambda build failed");
    }
    println!("\n{:<14} {:>10}", "function", "zip");
    for f in handler::FUNCTIONS {
        let zip = out_dir.join(f.name).join("bootstrap.zip");
        let size = std::fs::metadata(&zip)
            .with_context(|| format!("{} was not built", zip.display()))?
            .len();
        println!("{:<14} {:>7} KiB  {}", f.name, size / 1024, zip.display());
    }
    cli_archive()
}

/// `harbormaster` and `harbormaster-bootstrap`, release, for this machine's platform, in one
/// `.tar.gz` (what the README's "Install the CLI" and `buildspec/deploy.yml` take).
fn cli_archive() -> Result<()> {
    const BINS: [&str; 2] = ["harbormaster", "harbormaster-bootstrap"];
    let mut build = cargo();
    build.args(["build", "--release", "--locked"]);
    // Each is its package's binary (the bootstrap is not a default member).
    for b in BINS {
        build.args(["-p", b]);
    }
    if !build.status()?.success() {
        bail!("building the CLIs failed");
    }
    let platform = format!("{}-linux", std::env::consts::ARCH);
    let dist = target_dir().join("dist");
    std::fs::create_dir_all(&dist)?;
    let archive = dist.join(format!(
        "harbormaster-{}-{platform}.tar.gz",
        env!("CARGO_PKG_VERSION")
    ));
    let ok = Command::new("tar")
        .arg("-czf")
        .arg(&archive)
        .arg("-C")
        .arg(target_dir().join("release"))
        .args(BINS)
        .status()?
        .success();
    if !ok {
        bail!("tar failed writing {}", archive.display());
    }
    // Its digest, for the buildspecs to verify what they download (HARBORMASTER_SHA256).
    let sum = Command::new("sha256sum").arg(&archive).output()?;
    if !sum.status.success() {
        bail!("sha256sum failed on {}", archive.display());
    }
    let hex = String::from_utf8_lossy(&sum.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned();
    let name = archive.file_name().unwrap_or_default().to_string_lossy();
    std::fs::write(
        archive.with_extension("gz.sha256"),
        format!("{hex}  {name}\n"),
    )?;
    let size = std::fs::metadata(&archive)?.len();
    println!(
        "\n{:<14} {:>7} KiB  {}",
        "CLIs",
        size / 1024,
        archive.display()
    );
    println!("install: tar -xzf {} -C ~/.local/bin", archive.display());
    Ok(())
}
