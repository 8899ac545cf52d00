//! The load run twice: in process (the xtask's own debug build, as `tests/tests/load.rs` runs
//! it), and as Lambda runs it: 64 processes of the release `ecr-push` binary, each taking
//! events from a stand-in Runtime API, one at a time. Both report where the CPU went (the
//! agent, the emulator), which says what bounds the wall time on two cores.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use harbormaster_e2e::load::{self, LoadReport, CONCURRENCY, EVENTS, SERVICES};
use harbormaster_e2e::World;
use harbormaster_testkit::runtime_api;

/// The in-process run, then the release-process run; one table.
pub(crate) async fn load_runs(release: &Path) -> Result<String> {
    let in_process = load::run(&World::start().await?).await?;
    check(&in_process)?;
    let processes = in_release_processes(release).await?;
    check(&processes)?;
    Ok(table(&in_process, &processes))
}

fn check(r: &LoadReport) -> Result<()> {
    let wrong = r.deployments.values().filter(|(_, ok)| !ok).count();
    if wrong > 0 {
        bail!("load: {wrong} services without exactly one deployment of their newest image");
    }
    Ok(())
}

/// 64 release `ecr-push` processes against the emulator, fed the 1,000 events.
async fn in_release_processes(release: &Path) -> Result<LoadReport> {
    let w = World::start().await?;
    load::prepare(&w).await?;
    let events: Vec<String> = load::events().iter().map(|e| e.to_string()).collect();
    let (port, deliveries) = runtime_api::serve_many(events, 2)?;
    let env = w.cli_env_at(&w.emulator.endpoint);
    let emulator_before = w.emulator.cpu_time()?;
    let started = Instant::now();
    let mut functions: Vec<Child> = Vec::with_capacity(CONCURRENCY);
    for _ in 0..CONCURRENCY {
        let child = Command::new(release.join("ecr-push"))
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .envs(runtime_api::lambda_env(port, "ecr-push"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        functions.push(child);
    }
    let waiting = deliveries.clone();
    let answered =
        tokio::task::spawn_blocking(move || waiting.wait_all(Duration::from_secs(600))).await?;
    let decide = started.elapsed();
    // CPU of each process, read before it is killed (its /proc entry goes with it).
    let mut agent_cpu = Duration::ZERO;
    for f in &functions {
        agent_cpu += harbormaster_testkit::cpu_time_of(&f.id().to_string()).unwrap_or_default();
    }
    let emulator_cpu = w.emulator.cpu_time()?.saturating_sub(emulator_before);
    for mut f in functions {
        let _ = f.kill();
        let _ = f.wait();
    }
    let answered = answered?;
    let failed: Vec<&str> = answered
        .iter()
        .filter(|d| !d.ok)
        .map(|d| d.answer.as_str())
        .collect();
    if !failed.is_empty() {
        bail!(
            "{} pushes failed three deliveries; first: {}",
            failed.len(),
            failed[0]
        );
    }
    let mut times: Vec<Duration> = answered.iter().map(|d| d.took).collect();
    times.sort();
    let (start_all, deployments) = load::settle_and_check(&w).await?;
    Ok(LoadReport {
        events: answered.len(),
        services: SERVICES,
        decide,
        delivery_p50: times[times.len() / 2],
        delivery_max: *times.last().unwrap_or(&Duration::ZERO),
        redeliveries: answered.iter().map(|d| d.retries as usize).sum(),
        agent_cpu,
        emulator_cpu,
        start_all,
        deployments,
    })
}

fn table(a: &LoadReport, b: &LoadReport) -> String {
    let row = |what: &str, f: &dyn Fn(&LoadReport) -> String| {
        format!("| {what} | {} | {} |\n", f(a), f(b))
    };
    let mut t = String::from(
        "| measure | in process (xtask, debug build) | 64 `ecr-push` processes (release), as Lambda runs them |\n| --- | --- | --- |\n",
    );
    t += &row(
        "events (50 services × 10 images × 2 deliveries, shuffled)",
        &|r| r.events.to_string(),
    );
    t += &row(
        &format!("all decided (recorded, or ignored as older or repeated), {CONCURRENCY} at once"),
        &|r| {
            let s = r.decide.as_secs_f64();
            format!("{s:.1} s ({:.0} events/s)", r.events as f64 / s)
        },
    );
    t += &row("one delivery, median / worst", &|r| {
        format!(
            "{:.0} ms / {:.0} ms",
            r.delivery_p50.as_secs_f64() * 1000.0,
            r.delivery_max.as_secs_f64() * 1000.0
        )
    });
    t += &row("CPU while deciding: the agent / the emulator", &|r| {
        format!(
            "{:.1} s / {:.1} s",
            r.agent_cpu.as_secs_f64(),
            r.emulator_cpu.as_secs_f64()
        )
    });
    t += &row("deliveries Lambda would have retried", &|r| {
        r.redeliveries.to_string()
    });
    t += &row(
        &format!(
            "the tick after the {} s settle window starts all 50 deployments",
            load::SETTLE_SECONDS
        ),
        &|r| format!("{:.2} s", r.start_all.as_secs_f64()),
    );
    t += &row(
        "services with exactly one deployment, of the newest image",
        &|r| {
            let ok = r.deployments.values().filter(|(_, ok)| *ok).count();
            format!("{ok} of {}", r.services)
        },
    );
    debug_assert_eq!(a.events, EVENTS);
    t
}
