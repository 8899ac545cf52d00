//! microburst, the protocol-aware AWS fault proxy (PyPI), between the agent and the emulator:
//! it answers with the error envelopes, statuses, resets and lost responses the SDK would meet
//! in AWS. Pinned and installed into its own venv on first use, like the emulator.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{cache_dir, ensure_python_tool, free_port};

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
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let log = std::env::temp_dir().join(format!("harbormaster-microburst-{port}.log"));
            let child = Command::new(venv.join("bin/microburst"))
                .args(["--upstream", upstream, "--port", &port.to_string()])
                .args(["--host", "127.0.0.1", "--no-resign"])
                .stdin(Stdio::null())
                .stdout(Stdio::from(std::fs::File::create(&log)?))
                .stderr(Stdio::from(std::fs::File::create(
                    log.with_extension("err"),
                )?))
                .spawn()
                .context("starting microburst")?;
            let mut proxy = Microburst {
                child,
                port,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            match proxy.wait_ready(Duration::from_secs(30)) {
                Ok(()) => return Ok(proxy),
                Err(e) => {
                    last = Some(e.context(format!("see {}", log.display())));
                    let _ = proxy.child.kill();
                }
            }
        }
        Err(last.expect("tried at least once"))
    }

    fn wait_ready(&mut self, limit: Duration) -> Result<()> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(status) = self.child.try_wait()? {
                bail!("microburst exited early: {status}");
            }
            if let Ok((200, _)) = self.control("GET", "/_microburst/health", "") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "microburst did not answer on port {} within {limit:?}",
            self.port
        )
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
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        let status = buf
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .context("no HTTP status")?;
        let body = buf
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }
}

impl Drop for Microburst {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
