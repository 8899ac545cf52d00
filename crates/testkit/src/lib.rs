//! The local AWS emulator harness: ministack, pinned, in a venv the harness creates itself, on a
//! free 127.0.0.1 port. Used by `cargo xtask emulator|demo` and by the end-to-end tests, each of
//! which starts and stops its own.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

mod http;
pub mod microburst;
pub mod moto;
pub mod proxy;
pub mod recorder;
pub mod redis;
pub mod runtime_api;
pub mod strict;
pub mod tls;

/// Pinned: the emulator's behaviour is part of what the tests assert.
pub const MINISTACK: &str = "ministack==1.5.33";
/// ministack needs it for the CBOR protocol the Rust SDK speaks to CloudWatch.
pub const CBOR2: &str = "cbor2==6.3.0";

/// AWS's service models, as botocore ships them: what every recorded request is checked against.
pub const BOTOCORE: &str = "botocore==1.44.18";
/// The check itself (`strict.rs` records the requests).
pub const VALIDATE_REQUESTS: &str = include_str!("validate_requests.py");

/// botocore in a venv of its own (pinned; built once a machine).
pub fn ensure_botocore() -> Result<PathBuf> {
    let dir = cache_dir(&format!("venv-{}", BOTOCORE.replace("==", "-")));
    ensure_python_tool(&dir, &[BOTOCORE], "python")
}

/// Where the venv lives: `HARBORMASTER_EMULATOR_VENV`, else a cache folder keyed by the pins, so
/// a machine builds it once.
pub fn venv_dir() -> PathBuf {
    if let Ok(v) = std::env::var("HARBORMASTER_EMULATOR_VENV") {
        return PathBuf::from(v);
    }
    let pins = format!("{MINISTACK}-{CBOR2}").replace("==", "-");
    cache_dir(&format!("venv-{pins}"))
}

/// Creates the venv when missing. Safe when several tests race: each builds in its own temporary
/// folder and the first rename wins.
pub fn ensure_venv() -> Result<PathBuf> {
    ensure_python_tool(&venv_dir(), &[MINISTACK, CBOR2], "ministack")
}

/// A venv at `dir` with `packages` installed, built when `bin/<probe>` is missing. Tests in one
/// process wait for one build; separate processes race to the rename, and the first one wins.
pub fn ensure_python_tool(dir: &Path, packages: &[&str], probe: &str) -> Result<PathBuf> {
    static BUILD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILD.lock().unwrap_or_else(|p| p.into_inner());
    let dir = dir.to_path_buf();
    if dir.join("bin").join(probe).exists() {
        return Ok(dir);
    }
    let parent = dir.parent().context("venv folder has a parent")?;
    std::fs::create_dir_all(parent)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let tmp = parent.join(format!(".venv-build-{}-{nanos}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    eprintln!(
        "harbormaster-testkit: creating a venv at {} ({})",
        dir.display(),
        packages.join(", ")
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(Command::new(&python).args(["-m", "venv"]).arg(&tmp))
        .with_context(|| format!("{python} -m venv (is python3 with venv installed?)"))?;
    run(Command::new(tmp.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check"])
        .args(packages))
    .with_context(|| format!("pip install {}", packages.join(" ")))?;
    // A venv's scripts name their interpreter by absolute path; fix them after the move.
    match std::fs::rename(&tmp, &dir) {
        Ok(()) => rewrite_shebangs(&tmp, &dir)?,
        Err(_) if dir.join("bin").join(probe).exists() => {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        Err(e) => return Err(e).context("moving the venv into place"),
    }
    Ok(dir)
}

/// `~/.cache/harbormaster/<name>` (or under `XDG_CACHE_HOME`): where tools are built once.
pub fn cache_dir(name: &str) -> PathBuf {
    let base = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|_| std::env::var("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|_| std::env::temp_dir());
    base.join("harbormaster").join(name)
}

fn rewrite_shebangs(from: &Path, to: &Path) -> Result<()> {
    let (from, to) = (from.display().to_string(), to.display().to_string());
    for entry in std::fs::read_dir(Path::new(&to).join("bin"))? {
        let p = entry?.path();
        if let Ok(text) = std::fs::read_to_string(&p) {
            if text.contains(&from) {
                std::fs::write(&p, text.replace(&from, &to))?;
            }
        }
    }
    let cfg = Path::new(&to).join("pyvenv.cfg");
    if let Ok(text) = std::fs::read_to_string(&cfg) {
        std::fs::write(&cfg, text.replace(&from, &to))?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}{}",
            cmd,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Installs Debian's `package` when the command `probe` is not on `PATH`. Debian's package
/// registry is reachable from these machines; the internet is not.
pub fn ensure_debian_package(probe: &str, package: &str) -> Result<()> {
    let found = Command::new("sh")
        .args(["-c", "command -v \"$1\" >/dev/null", "sh", probe])
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Ok(());
    }
    let status = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .with_context(|| {
            format!("{probe} is missing and apt-get could not run: install {package}")
        })?;
    if !status.success() {
        bail!("{probe} is missing and `apt-get install {package}` failed (run it as root)");
    }
    Ok(())
}

pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The environment an SDK client or a child process needs to talk to an emulator at
/// `endpoint`, with dummy credentials.
pub fn env_for(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_owned()),
        ("AWS_REGION", "us-east-1".into()),
        // The AWS CLI v1 reads only this one.
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ("AWS_ACCESS_KEY_ID", "test".into()),
        ("AWS_SECRET_ACCESS_KEY", "test".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
    ]
}

/// Starts ministack after putting right where it answers otherwise than AWS.
const MINISTACK_AS_AWS: &str = include_str!("ministack_as_aws.py");

/// A running emulator; stopped when dropped.
pub struct Emulator {
    child: Child,
    pub port: u16,
    pub endpoint: String,
}

impl Emulator {
    pub fn start() -> Result<Emulator> {
        let venv = ensure_venv()?;
        let (child, port) = spawn_on_free_port(
            "ministack",
            |port| {
                // ministack as its own script starts it, with what it does otherwise than AWS
                // put right first (`ministack_as_aws.py` says what and cites AWS).
                let mut c = Command::new(venv.join("bin/python"));
                c.args(["-c", MINISTACK_AS_AWS])
                    .env("BIND_HOST", "127.0.0.1")
                    .env("GATEWAY_PORT", port.to_string())
                    .env("LOG_LEVEL", "WARNING");
                c
            },
            |port| matches!(http(port, "GET", "/_ministack/health", ""), Ok((200, _))),
        )?;
        Ok(Emulator {
            child,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// The environment an SDK client or a child process needs to talk to this emulator.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        env_for(&self.endpoint)
    }

    /// CPU time the emulator's process has used so far (all its threads).
    pub fn cpu_time(&self) -> Result<Duration> {
        cpu_time_of(&self.child.id().to_string())
    }
}

/// CPU time (user + system, all threads) a process has used, from `/proc/<pid>/stat`
/// (`utime` and `stime`, fields 14 and 15, in clock ticks; proc(5)). `pid` may be `self`.
pub fn cpu_time_of(pid: &str) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after it start past its ')'.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("no ')' in /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state): utime is field 14, stime 15.
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_secs_f64(ticks as f64 / clock_ticks() as f64))
}

/// `sysconf(_SC_CLK_TCK)`, through getconf (no libc binding needed); 100, the Linux value on
/// every architecture Rust targets, if getconf is missing.
fn clock_ticks() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a server on a free loopback port and waits until `ready(port)`; its output goes to
/// `harbormaster-<label>-<port>.log` / `.err` in the temp folder. The port can be taken between
/// choosing and binding, so it tries a few.
pub fn spawn_on_free_port(
    label: &str,
    command: impl Fn(u16) -> Command,
    ready: impl Fn(u16) -> bool,
) -> Result<(Child, u16)> {
    const LIMIT: Duration = Duration::from_secs(30);
    let mut last = None;
    for _ in 0..3 {
        let port = free_port()?;
        let log = std::env::temp_dir().join(format!("harbormaster-{label}-{port}.log"));
        let mut child = command(port)
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::create(
                log.with_extension("err"),
            )?))
            .spawn()
            .with_context(|| format!("starting {label}"))?;
        let start = Instant::now();
        let outcome = loop {
            if let Some(status) = child.try_wait()? {
                break Err(anyhow::anyhow!("{label} exited early: {status}"));
            }
            if ready(port) {
                break Ok(());
            }
            if start.elapsed() > LIMIT {
                break Err(anyhow::anyhow!(
                    "{label} did not answer on port {port} within {LIMIT:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        match outcome {
            Ok(()) => return Ok((child, port)),
            Err(e) => {
                last = Some(e.context(format!("see {}", log.display())));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    Err(last.expect("tried at least once"))
}

/// A minimal HTTP/1.1 request on loopback (a JSON body, or none); returns (status, body).
pub fn http(port: u16, method: &str, path: &str, body: &str) -> Result<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
