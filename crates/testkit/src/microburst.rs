//! microburst, the protocol-aware AWS fault proxy (PyPI), between the agent and the emulator:
//! it answers with the error envelopes, statuses, resets and lost responses the SDK would meet
//! in AWS. Pinned and installed into its own venv on first use, like the emulator.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{cache_dir, ensure_python_tool, http, spawn_on_free_port};

/// Pinned: which faults exist and how they look on the wire is part of what chaos asserts.
pub const MICROBURST: &str = "microburst==0.10.0";

pub fn venv_dir() -> PathBuf {
    cache_dir(&format!("venv-{}", MICROBURST.replace("==", "-")))
}

/// A running fault proxy in front of `upstream`; stopped when dropped.
pub struct Microburst {
    child: Child,
    pub port: u16,
    /// Where the agent's SDK should point (`AWS_ENDPOINT_URL`).
    pub endpoint: String,
}

impl Microburst {
    pub fn start(upstream: &str) -> Result<Microburst> {
        let venv = ensure_python_tool(&venv_dir(), &[MICROBURST], "microburst")?;
        let (child, port) = spawn_on_free_port(
            "microburst",
            |port| {
                let mut c = Command::new(venv.join("bin/microburst"));
                c.args(["--upstream", upstream, "--port", &port.to_string()])
                    .args(["--host", "127.0.0.1", "--no-resign"]);
                c
            },
            |port| matches!(http(port, "GET", "/_microburst/health", ""), Ok((200, _))),
        )?;
        Ok(Microburst {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Replaces the whole rule set (an empty array passes everything through).
    pub fn set_rules(&self, rules: &Value) -> Result<()> {
        let (status, body) = self.control("POST", "/_microburst/rules", &rules.to_string())?;
        if !(200..300).contains(&status) {
            bail!("microburst refused the rules ({status}): {body}");
        }
        Ok(())
    }

    /// Every fault fired since the last [`Microburst::clear_fired`]: rule id, service,
    /// operation, action.
    pub fn fired(&self) -> Result<Vec<Value>> {
        let (_, body) = self.control("GET", "/_microburst/fired?limit=100000", "")?;
        serde_json::from_str(&body).context("microburst's fired log is JSON")
    }

    pub fn clear_fired(&self) -> Result<()> {
        self.control("DELETE", "/_microburst/fired", "")?;
        Ok(())
    }

    /// Requests seen so far, faulted and forwarded.
    pub fn stats(&self) -> Result<Value> {
        let (_, body) = self.control("GET", "/_microburst/stats", "")?;
        Ok(serde_json::from_str(&body)?)
    }

    fn control(&self, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
        http(self.port, method, path, body)
    }
}

impl Drop for Microburst {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
