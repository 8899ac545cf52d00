//! Running the workspace's binaries against a world: the `harbormaster` CLI with the world's
//! environment, and where the binaries are.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::World;

impl World {
    /// Runs the `harbormaster` binary against this world.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        std::process::Command::new(cli_binary().expect("the CLI is built"))
            .args(args)
            .envs(self.cli_env())
            .output()
            .expect("harbormaster runs")
    }

    /// The same, with more environment (a CA to trust: `SSL_CERT_FILE`).
    pub fn cli_with(&self, args: &[&str], extra: &[(&str, &str)]) -> std::process::Output {
        std::process::Command::new(cli_binary().expect("the CLI is built"))
            .args(args)
            .envs(self.cli_env())
            .envs(extra.iter().copied())
            .output()
            .expect("harbormaster runs")
    }

    /// Commits the config folder as it is now (a git repository from the first call, as a team's
    /// checkout is): the full commit id, which `publish` records and orders by.
    pub fn commit(&self, message: &str) -> String {
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("-C")
                .arg(&self.config_dir)
                .args([
                    "-c",
                    "user.name=alice",
                    "-c",
                    "user.email=alice@example.com",
                ])
                .args(args)
                .output()
                .expect("git runs");
            assert!(
                out.status.success(),
                "git {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        if !self.config_dir.join(".git").exists() {
            git(&["init", "-q"]);
        }
        git(&["add", "-A"]);
        git(&["commit", "-q", "--allow-empty", "-m", message]);
        git(&["rev-parse", "HEAD"])
    }

    /// Checks out an earlier commit of the config folder (a late build of an older commit).
    pub fn checkout(&self, commit: &str) {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(&self.config_dir)
            .args(["checkout", "-q", commit])
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `harbormaster invoke --event FILE`: its exit code and the report it printed.
    pub fn invoke(&self, file: &str) -> (i32, Value) {
        let out = self.cli(&["--json", "invoke", "--event", file]);
        let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
            panic!(
                "invoke printed no report: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code().unwrap_or(-1), report)
    }

    /// Runs the `harbormaster` binary and insists it succeeded, showing its stderr if not.
    pub fn cli_ok(&self, args: &[&str]) -> std::process::Output {
        self.cli_via(&self.strict.endpoint, args)
    }

    /// `harbormaster args…` with its AWS endpoint at `endpoint` (a counting proxy in front of
    /// the emulator); panics with its stderr unless it exits 0.
    pub fn cli_via(&self, endpoint: &str, args: &[&str]) -> std::process::Output {
        let out = std::process::Command::new(cli_binary().expect("the CLI is built"))
            .args(args)
            .envs(self.cli_env_at(endpoint))
            .output()
            .expect("harbormaster runs");
        assert!(
            out.status.success(),
            "harbormaster {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The environment for a `harbormaster` child process talking to this world.
    pub fn cli_env(&self) -> Vec<(&'static str, String)> {
        self.cli_env_at(&self.strict.endpoint)
    }

    /// The same, with the AWS endpoint at `endpoint` (a proxy in front of the emulator).
    pub fn cli_env_at(&self, endpoint: &str) -> Vec<(&'static str, String)> {
        let mut env = self.emulator.env();
        for (k, v) in &mut env {
            if *k == "AWS_ENDPOINT_URL" {
                *v = endpoint.to_owned();
            }
        }
        env.push(("HARBORMASTER_CONFIG", self.config_dir.display().to_string()));
        env.push((
            "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
            self.autoscaling.endpoint.clone(),
        ));
        env
    }
}

/// The `harbormaster` binary built beside the running test or xtask.
pub fn cli_binary() -> Result<PathBuf> {
    binary("harbormaster")
}

/// `text` as one word for a POSIX shell: single-quoted, its own single quotes escaped.
pub fn shell_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// A binary of the workspace built beside the running test or xtask (same profile).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let mut dir = exe.parent().context("exe dir")?.to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join(name);
    anyhow::ensure!(
        bin.exists(),
        "{} is missing: build the workspace first (`cargo xtask test` does)",
        bin.display()
    );
    Ok(bin)
}
