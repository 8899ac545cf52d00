//! A real `redis-server` on a free loopback port, for the Redis backlog source. Installed from
//! Debian's packages when missing (CI runs as root on a fresh machine); stopped on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    /// With TLS: the test CA's certificate (PEM file) a client must trust, and its folder.
    tls: Option<(PathBuf, PathBuf)>,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer> {
        Self::spawn(None)
    }

    /// A server that speaks TLS only, as ElastiCache with transit encryption does, with a
    /// certificate for 127.0.0.1 signed by a CA made for this server ([`Self::ca_file`]).
    pub fn start_tls() -> Result<RedisServer> {
        Self::spawn(Some(crate::tls::TestCa::write("redis")?))
    }

    fn spawn(tls: Option<crate::tls::TestCa>) -> Result<RedisServer> {
        ensure_installed()?;
        let port = crate::free_port()?;
        let listen: Vec<String> = match &tls {
            None => vec!["--port".into(), port.to_string()],
            Some(ca) => vec![
                "--port".into(),
                "0".into(),
                "--tls-port".into(),
                port.to_string(),
                "--tls-cert-file".into(),
                ca.server_cert.display().to_string(),
                "--tls-key-file".into(),
                ca.server_key.display().to_string(),
                "--tls-ca-cert-file".into(),
                ca.ca_cert.display().to_string(),
                "--tls-auth-clients".into(),
                "no".into(),
            ],
        };
        let child = Command::new("redis-server")
            .args(&listen)
            .args(["--bind", "127.0.0.1"])
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
        let tls = tls.map(|ca| (ca.ca_cert, ca.dir));
        Ok(RedisServer { child, port, tls })
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/0", self.port)
    }

    /// The CA a client must trust to talk to a TLS server (for `SSL_CERT_FILE`, which
    /// rustls-native-certs reads in place of the system's roots).
    pub fn ca_file(&self) -> Option<&Path> {
        self.tls.as_ref().map(|(ca, _)| ca.as_path())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((_, dir)) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn ensure_installed() -> Result<()> {
    crate::ensure_debian_package("redis-server", "redis-server")
}
