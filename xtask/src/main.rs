//! `cargo xtask demo | test | bench | emulator`: every set-up step a fresh machine needs is here.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler::{self, ECR_PUSH, TICK};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{fixture, World, CLUSTER};
use harbormaster_testkit::proxy::{is_mutating, CountingProxy};
use harbormaster_testkit::runtime_api::{self, Seen};
use harbormaster_testkit::{ensure_venv, Emulator, MINISTACK};
use serde_json::Value;

const USAGE: &str = "usage: cargo xtask <command>

  demo       push an image and watch it deploy, on the local emulator
  test       every test: unit, scenario and end-to-end (starts its own emulators)
  bench      start-up and push-to-update benchmarks (release build; writes BENCHMARKS.md)
  emulator   start the local emulator and print its endpoint (Ctrl-C stops it)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => tokio_run(demo()),
        Some("test") => test(&args[1..]),
        Some("bench") => tokio_run(bench()),
        Some("emulator") => emulator(),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_run(f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

fn root() -> PathBuf {
    harbormaster_e2e::workspace_root()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn emulator() -> Result<()> {
    let emu = Emulator::start()?;
    println!("{MINISTACK} listening on {}", emu.endpoint);
    println!("\nexport these to point the AWS CLI, the SDK and harbormaster at it:");
    for (k, v) in emu.env() {
        println!("export {k}={v}");
    }
    println!("\nCtrl-C stops it.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn test(extra: &[String]) -> Result<()> {
    // Set up the emulator's venv once, before tests race to it, and say so if it fails.
    let venv = ensure_venv().context("setting up the emulator venv")?;
    eprintln!("xtask: emulator venv ready at {}", venv.display());
    // The end-to-end tests run the real binaries (the CLI, the Lambda functions). `cargo test`
    // builds binaries only as test harnesses, so build them first: fresh, never stale.
    let status = cargo().args(["build", "--workspace", "--bins"]).status()?;
    if !status.success() {
        bail!("building the binaries failed");
    }
    let status = cargo().args(["test", "--workspace"]).args(extra).status()?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}

struct Timeline(Instant);
impl Timeline {
    fn say(&self, what: impl AsRef<str>) {
        println!(
            "[{:>6.2}s] {}",
            self.0.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }
}

async fn demo() -> Result<()> {
    let t = Timeline(Instant::now());
    t.say("starting the local AWS emulator (the first run also creates its venv)…");
    let w = World::start().await?;
    t.say(format!("emulator {MINISTACK} at {}", w.emulator.endpoint));
    let before = w.service_task_definition("web").await?;
    t.say(format!(
        "environment ready: cluster {CLUSTER} (services web, worker), ECR booking/web, SNS {} → SQS inbox, state bucket, SSM secrets",
        w.topic_arn
    ));
    t.say(format!("service web runs {before}"));

    let tag = format!("main-{:07x}", std::process::id());
    let digest = w.push_image(&tag).await?;
    t.say(format!(
        "pushed booking/web:{tag} with PutImage (no Docker) → {digest}"
    ));

    let event = w.push_event("demo-push-1", &tag, &digest);
    t.say("EventBridge \"ECR Image Action\" → ecr-push (the Lambda's dispatch)");
    let agent = w.agent();
    let report = handler::dispatch(&agent, ECR_PUSH, &event, RunOptions::default()).await?;
    print_journal(&t, &report);

    t.say("tick (every minute in AWS) follows the rollouts");
    let report = tick(&agent).await?;
    print_journal(&t, &report);

    let inbox = w.inbox().await?;
    t.say(format!("{} notifications in the SQS inbox:", inbox.len()));
    for (subject, message, attrs) in &inbox {
        println!(
            "           {subject}   [severity={}, kind={}]",
            attrs["severity"]["Value"].as_str().unwrap_or("?"),
            message["kind"].as_str().unwrap_or("?")
        );
    }
    let after = w.service_task_definition("web").await?;
    let td = w.task_definition(&after).await?;
    let image = td
        .container_definitions()
        .first()
        .and_then(|c| c.image())
        .unwrap_or_default()
        .to_owned();
    if after == before || !image.ends_with(&digest) {
        bail!("the service did not move to the new revision (still {after})");
    }
    let state = w
        .state_document("dev", "web")
        .await?
        .context("no state document")?;
    t.say(format!(
        "state s3://{}/state/dev/web.json: last known good {}",
        harbormaster_e2e::BUCKET,
        state["last_known_good"]["task_definition_arn"]
            .as_str()
            .unwrap_or("-")
    ));
    t.say(format!(
        "done: service web is on {after}\n           image {image}"
    ));
    Ok(())
}

/// What the `tick` function does every minute.
async fn tick(
    agent: &harbormaster_aws::Agent,
) -> Result<harbormaster_core::dispatch::DispatchReport> {
    Ok(handler::dispatch(
        agent,
        TICK,
        &fixture("scheduled.json"),
        RunOptions::default(),
    )
    .await?)
}

fn print_journal(t: &Timeline, report: &harbormaster_core::dispatch::DispatchReport) {
    for target in &report.targets {
        for j in &target.journal {
            let note = if j.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", j.note)
            };
            t.say(format!(
                "  {}/{}: {} → {}{note}",
                target.environment, target.service, j.from, j.to
            ));
        }
        if let Some(e) = &target.error {
            t.say(format!(
                "  {}/{}: error: {e}",
                target.environment, target.service
            ));
        }
    }
}

// ---------------------------------------------------------------- bench

struct StartUp {
    median_ms: f64,
    p90_ms: f64,
    rss_kib: u64,
    size_kib: u64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

/// Exec → first Runtime API request, `runs` times; peak RSS at that moment.
fn start_up(binary: &Path, env: &[(&str, String)], runs: usize) -> Result<StartUp> {
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

async fn bench() -> Result<()> {
    println!("building release binaries of ecr-push and hello-lambda (opt-level s, fat LTO)…");
    let status = cargo()
        .args(["build", "--release", "-p", "ecr-push", "-p", "hello-lambda"])
        .status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    let release = target.join("release");
    let w = World::start().await?;
    let mut env: Vec<(&str, String)> = w.emulator.env();
    env.push(("HARBORMASTER_CONFIG", w.config_dir.display().to_string()));

    const RUNS: usize = 20;
    println!("start-up: {RUNS} runs each, exec → first Runtime API request…");
    let ours = start_up(&release.join("ecr-push"), &env, RUNS)?;
    let hello = start_up(&release.join("hello-lambda"), &env, RUNS)?;

    // One real invocation of the release ecr-push binary against the emulator: its peak RSS
    // after handling a push (clients built, config read, a deployment started).
    let digest = w.push_image("main-bec0000").await?;
    let event = w
        .push_event("bench-invocation", "main-bec0000", &digest)
        .to_string();
    let (port, seen) = runtime_api::serve(vec![event])?;
    let t0 = Instant::now();
    let mut child = Command::new(release.join("ecr-push"))
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .envs(runtime_api::lambda_env(port, "ecr-push"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut handled = None;
    while let Ok(s) = seen.recv_timeout(Duration::from_secs(30)) {
        if let Seen::Answer(path, body) = s {
            if !path.ends_with("/response") {
                let _ = child.kill();
                bail!("ecr-push answered with an error: {body}");
            }
            handled = Some(t0.elapsed());
            let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            let started = answer["targets"]
                .as_array()
                .map(|t| t.iter().filter(|t| t["outcome"] == "started").count())
                .unwrap_or(0);
            if started != 2 {
                let _ = child.kill();
                bail!("the bench invocation did not start two deployments: {body}");
            }
            break;
        }
    }
    let handled = handled.context("ecr-push never answered the event")?;
    let invoked_rss = runtime_api::peak_rss_kib(child.id()).unwrap_or(0);
    let _ = child.kill();
    let _ = child.wait();

    println!("push → UpdateService through a counting proxy…");
    let proxy = CountingProxy::start(w.emulator.port)?;
    let sdk = harbormaster_e2e::sdk_at(&proxy.endpoint).await;
    let agent = harbormaster_aws::Agent {
        ports: harbormaster_aws::AwsPorts::new(&sdk, ""),
        source: harbormaster_aws::Source::Folder(w.config_dir.clone()),
    };
    // Settle what the invocation above started, so every round starts from a quiet service.
    tick(&agent).await?;
    let mut walls = Vec::new();
    let mut calls = Vec::new();
    for round in 0..5 {
        let tag = format!("main-b{round:06}");
        let digest = w.push_image(&tag).await?;
        let event: Value = w.push_event(&format!("bench-{round}"), &tag, &digest);
        proxy.reset();
        let t = Instant::now();
        let r = handler::dispatch(&agent, ECR_PUSH, &event, RunOptions::default()).await?;
        walls.push(t.elapsed().as_secs_f64() * 1000.0);
        if !r.errors().is_empty() {
            bail!("bench push failed: {:?}", r.errors());
        }
        calls = proxy.calls();
        tick(&agent).await?;
    }
    walls.sort_by(|a, b| a.total_cmp(b));
    let services = 2; // the push deploys dev/web and dev/worker
    let per_service = calls.len() as f64 / services as f64;
    let mutating = calls.iter().filter(|c| is_mutating(&c.operation)).count();
    let mut ops: Vec<String> = calls.iter().map(|c| c.operation.clone()).collect();
    ops.sort();
    ops.dedup_by(|a, b| a == b);
    let ops_count: Vec<String> = ops
        .iter()
        .map(|o| {
            format!(
                "{o} ×{}",
                calls.iter().filter(|c| &c.operation == o).count()
            )
        })
        .collect();

    let table = format!(
        "| measure | ecr-push (Harbormaster) | hello-world lambda_runtime | ratio |\n\
         | --- | --- | --- | --- |\n\
         | exec → first Runtime API request, median of {RUNS} | {:.1} ms | {:.1} ms | {:.2}× |\n\
         | same, p90 | {:.1} ms | {:.1} ms | {:.2}× |\n\
         | peak RSS at first request | {:.1} MiB | {:.1} MiB | {:.2}× |\n\
         | binary size (release, stripped) | {:.1} MiB | {:.1} MiB | {:.2}× |\n\
         | peak RSS after handling one push (2 services) | {:.1} MiB | – | – |\n\
         | exec → push handled (cold start + 2 deployments) | {:.0} ms | – | – |\n",
        ours.median_ms,
        hello.median_ms,
        ours.median_ms / hello.median_ms,
        ours.p90_ms,
        hello.p90_ms,
        ours.p90_ms / hello.p90_ms,
        ours.rss_kib as f64 / 1024.0,
        hello.rss_kib as f64 / 1024.0,
        ours.rss_kib as f64 / hello.rss_kib.max(1) as f64,
        ours.size_kib as f64 / 1024.0,
        hello.size_kib as f64 / 1024.0,
        ours.size_kib as f64 / hello.size_kib.max(1) as f64,
        invoked_rss as f64 / 1024.0,
        handled.as_secs_f64() * 1000.0,
    );
    let push_table = format!(
        "| measure | value |\n| --- | --- |\n\
         | push event → UpdateService answered, 2 services, median of 5 (min {:.0}, max {:.0}) | {:.0} ms |\n\
         | AWS calls per push | {} ({:.1} per service, {} mutating) |\n\
         | calls | {} |\n",
        walls[0],
        walls[walls.len() - 1],
        percentile(&walls, 0.5),
        calls.len(),
        per_service,
        mutating,
        ops_count.join(", "),
    );
    println!("\n{table}\n{push_table}");

    let machine = format!(
        "{} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        String::from_utf8_lossy(&Command::new("rustc").arg("--version").output()?.stdout).trim()
    );
    let doc = format!(
        "# Benchmarks\n\n\
         Measured by `cargo xtask bench` on {} ({machine}), against {MINISTACK} on loopback.\n\
         Re-run it to refresh this file; the numbers below are the last run's.\n\n\
         ## Lambda start-up\n\n\
         Release builds (`opt-level = \"s\"`, fat LTO, one codegen unit, stripped), x86_64. Each binary is\n\
         started against a stand-in Runtime API on loopback; the clock stops at its first request\n\
         (`GET /2018-06-01/runtime/invocation/next`), i.e. when it is ready for events. `ecr-push` builds\n\
         its SDK clients and reads its settings before that; the hello-world does nothing.\n\n{table}\n\
         ## Push to UpdateService\n\n\
         The ECR push event goes through the `ecr-push` dispatch (in process) with the SDK pointed at a\n\
         counting HTTP proxy in front of the emulator; the clock runs from the event to the answer of\n\
         the last UpdateService. The booking example deploys two services (web and worker) per push.\n\
         The emulator answers at once, so the wall time is the agent's own cost plus loopback HTTP.\n\n{push_table}\n\
         ## Reproduce\n\n```\ncargo xtask bench\n```\n",
        chrono::Utc::now().format("%Y-%m-%d"),
    );
    std::fs::write(root().join("BENCHMARKS.md"), doc)?;
    println!("wrote BENCHMARKS.md");
    Ok(())
}
