//! A real `redis-server` on a free loopback port, for the Redis backlog source. Installed from
//! Debian's packages when missing (CI runs as root on a fresh machine); stopped on drop.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct RedisServer {
    child: Child,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer> {
        ensure_installed()?;
        let port = crate::free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server")?;
        let until = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > until {
                bail!("redis-server did not listen on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(RedisServer { child, port })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ensure_installed() -> Result<()> {
    if Command::new("redis-server")
        .arg("--version")
        .output()
        .is_ok()
    {
        return Ok(());
    }
    // Debian's package registry is reachable from these machines; the internet is not.
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "redis-server"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("redis-server is missing and apt-get could not run: install redis-server")?;
    if !status.success() {
        bail!("redis-server is missing and `apt-get install redis-server` failed");
    }
    Ok(())
}
