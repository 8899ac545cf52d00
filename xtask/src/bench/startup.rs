//! Lambda start-up and size: each binary started against a stand-in Runtime API until its first
//! request, one real invocation of `ecr-push`, and what each binary is made of beside the SDK
//! floor and the hello-world.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler;
use harbormaster_e2e::World;
use harbormaster_testkit::runtime_api::{self, Seen};
use serde_json::Value;

use super::floor::Floor;
use crate::bench::percentile;

pub(crate) struct StartUp {
    median_ms: f64,
    p90_ms: f64,
    rss_kib: u64,
    size_kib: u64,
}

/// Exec → first Runtime API request, `runs` times; peak RSS at that moment.
pub(crate) fn start_up(binary: &Path, env: &[(&str, String)], runs: usize) -> Result<StartUp> {
    let mut times = Vec::new();
    let mut rss = 0;
    for _ in 0..runs {
        let (port, seen) = runtime_api::serve(Vec::new())?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .envs(runtime_api::lambda_env(port, "bench"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let first = loop {
            match seen.recv_timeout(Duration::from_secs(10)) {
                Ok(Seen::FirstRequest(at)) => break at,
                Ok(_) => continue,
                Err(_) => {
                    let _ = child.kill();
                    bail!("{} never called the Runtime API", binary.display());
                }
            }
        };
        times.push((first - started).as_secs_f64() * 1000.0);
        rss = rss.max(runtime_api::peak_rss_kib(child.id()).unwrap_or(0));
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok(StartUp {
        median_ms: percentile(&times, 0.5),
        p90_ms: percentile(&times, 0.9),
        rss_kib: rss,
        size_kib: std::fs::metadata(binary)?.len() / 1024,
    })
}

/// Start-up runs of each binary.
pub(crate) const RUNS: usize = 20;

/// One real invocation of the release ecr-push binary against the emulator: how long from exec
/// to the push handled, and its peak RSS after (clients built, config read, deployments
/// started).
pub(crate) async fn one_invocation(
    w: &World,
    release: &Path,
    env: &[(&str, String)],
) -> Result<(Duration, u64)> {
    let digest = w.push_image("main-bec0000").await?;
    let event = w
        .push_event("bench-invocation", "main-bec0000", &digest)
        .to_string();
    let (handled, body, rss) = invoke_once(&release.join("ecr-push"), env, &event)?;
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let started = answer["targets"]
        .as_array()
        .map(|t| t.iter().filter(|t| t["outcome"] == "started").count())
        .unwrap_or(0);
    if started != 2 {
        bail!("the bench invocation did not start two deployments: {body}");
    }
    Ok((handled, rss))
}

/// A function binary started with one event: exec → its answer, the answer, and the peak RSS
/// once it has answered. An error answer is an error.
pub(crate) fn invoke_once(
    binary: &Path,
    env: &[(&str, String)],
    event: &str,
) -> Result<(Duration, String, u64)> {
    let name = binary.file_name().unwrap_or_default().to_string_lossy();
    let (port, seen) = runtime_api::serve(vec![event.to_owned()])?;
    let t0 = Instant::now();
    let mut child = Command::new(binary)
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .envs(runtime_api::lambda_env(port, &name))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut answered = None;
    while let Ok(s) = seen.recv_timeout(Duration::from_secs(30)) {
        if let Seen::Answer(path, body) = s {
            answered = Some((t0.elapsed(), path, body));
            break;
        }
    }
    let rss = runtime_api::peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();
    let (elapsed, path, body) = answered.with_context(|| format!("{name} never answered"))?;
    if !path.ends_with("/response") {
        bail!("{name} answered with an error: {body}");
    }
    Ok((elapsed, body, rss))
}

pub(crate) fn start_up_table(
    ours: &StartUp,
    hello: &StartUp,
    floor: &Floor,
    ours_after: (u64, Duration),
) -> String {
    let (invoked_rss, handled) = ours_after;
    let f = &floor.start;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let ratio = |a: f64, b: f64| a / b.max(f64::MIN_POSITIVE);
    format!(
        "| measure | ecr-push (Harbormaster) | the SDK floor (`sdk-floor`) | hello-world lambda_runtime | ecr-push / floor | ecr-push / hello-world |\n\
         | --- | --- | --- | --- | --- | --- |\n\
         | exec → first Runtime API request, median of {RUNS} | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× | {:.2}× |\n\
         | same, p90 | {:.1} ms | {:.1} ms | {:.1} ms | {:.2}× | {:.2}× |\n\
         | peak RSS at first request | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2}× | {:.2}× |\n\
         | binary size (release, stripped) | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2}× | {:.2}× |\n\
         | peak RSS after its first event (ecr-push: a push, 2 services; floor: one deploy's 7 calls) | {:.1} MiB | {:.1} MiB | – | {:.2}× | – |\n\
         | exec → that event handled (cold start included) | {:.0} ms | {:.0} ms | – | – | – |\n",
        ours.median_ms,
        f.median_ms,
        hello.median_ms,
        ratio(ours.median_ms, f.median_ms),
        ratio(ours.median_ms, hello.median_ms),
        ours.p90_ms,
        f.p90_ms,
        hello.p90_ms,
        ratio(ours.p90_ms, f.p90_ms),
        ratio(ours.p90_ms, hello.p90_ms),
        mib(ours.rss_kib),
        mib(f.rss_kib),
        mib(hello.rss_kib),
        ratio(mib(ours.rss_kib), mib(f.rss_kib)),
        ratio(mib(ours.rss_kib), mib(hello.rss_kib)),
        mib(ours.size_kib),
        mib(f.size_kib),
        mib(hello.size_kib),
        ratio(mib(ours.size_kib), mib(f.size_kib)),
        ratio(mib(ours.size_kib), mib(hello.size_kib)),
        mib(invoked_rss),
        mib(floor.deployed_rss_kib),
        ratio(mib(invoked_rss), mib(floor.deployed_rss_kib)),
        handled.as_secs_f64() * 1000.0,
        floor.deployed.as_secs_f64() * 1000.0,
    )
}

/// Each function's binary beside the floor's.
pub(crate) fn sizes_table(release: &Path) -> Result<String> {
    let size = |name: &str| std::fs::metadata(release.join(name)).map(|m| m.len());
    let floor = size("sdk-floor")?;
    let mut t = String::from("| function | size | size / floor |\n| --- | --- | --- |\n");
    for f in handler::FUNCTIONS {
        let s = size(f.name)?;
        let mib = s as f64 / (1024.0 * 1024.0);
        t += &format!(
            "| {} | {mib:.1} MiB | {:.2}× |\n",
            f.name,
            s as f64 / floor as f64
        );
    }
    Ok(t)
}
