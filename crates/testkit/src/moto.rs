//! moto's server on a free loopback port, in its own venv: it implements Application Auto
//! Scaling (which ministack does not) and checks a scalable target against its own ECS, and an
//! ECS service's subnets against its own EC2 — so a test that uses it makes the service there.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command};
use std::time::Duration;

use anyhow::{Context, Result};

/// Pinned: its behaviour is part of what the tests assert (DESIGN.md measured 5.2.5).
pub const MOTO: &str = "moto[server]==5.2.5";

pub struct Moto {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let venv = crate::ensure_python_tool(
            &crate::cache_dir("venv-moto-5.2.5"),
            &[MOTO],
            "moto_server",
        )?;
        let (child, port) = crate::spawn_on_free_port(
            "moto",
            |port| {
                let mut c = Command::new(venv.join("bin/moto_server"));
                c.args(["-H", "127.0.0.1", "-p", &port.to_string()]);
                c
            },
            |port| {
                matches!(
                    crate::http(port, "GET", "/moto-api/data.json", ""),
                    Ok((200, _))
                )
            },
        )?;
        Ok(Moto {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// A subnet of moto's default VPC (DescribeSubnets in EC2's query protocol: the tests
    /// carry no EC2 SDK, the heaviest crate to build).
    pub fn default_subnet(&self) -> Result<String> {
        let body = "Action=DescribeSubnets&Version=2016-11-15";
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/x-www-form-urlencoded\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        let start = out
            .find("<subnetId>")
            .context("no subnet in moto's answer")?
            + "<subnetId>".len();
        let end = out[start..].find('<').context("unterminated subnetId")?;
        Ok(out[start..start + end].to_owned())
    }

    pub fn env(&self) -> Vec<(&'static str, String)> {
        crate::env_for(&self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
