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
use serde_json::{json, Value};

const USAGE: &str = "usage: cargo xtask <command>

  demo       push an image and watch it deploy, on the local emulator
  test       every test: unit, scenario and end-to-end (starts its own emulators)
  chaos      the deployment scenarios through microburst under every fault kind
  bench      start-up and push-to-update benchmarks (release build; writes BENCHMARKS.md)
  package    build every Lambda function's zip with cargo-lambda (release) and print sizes
  emulator   start the local emulator and print its endpoint (Ctrl-C stops it)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("demo") => tokio_run(demo()),
        Some("test") => test(&args[1..]),
        Some("chaos") => chaos(),
        Some("bench") => tokio_run(bench()),
        Some("package") => package(),
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

fn tokio_run<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
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
    build_bins()?;
    let status = cargo().args(["test", "--workspace"]).args(extra).status()?;
    if !status.success() {
        bail!("tests failed");
    }
    Ok(())
}

/// Every scenario under every fault kind (the test suite runs the smaller set); prints, per fault
/// kind, the scenarios run and their outcomes. `HARBORMASTER_CHAOS_ONLY=<part of a name>` runs
/// one fault kind.
fn chaos() -> Result<()> {
    use harbormaster_e2e::chaos::{run, table, Size};
    ensure_venv().context("setting up the emulator venv")?;
    build_bins()?;
    println!("chaos: microburst between the agent and the emulator; each scenario first runs without faults");
    let started = Instant::now();
    let runs = tokio_run(run(Size::Full, |r| {
        println!(
            "  {:<45} {:<34} {} ({:.1} s, {} invocations)",
            r.fault,
            r.scenario.name(),
            r.outcome(),
            r.elapsed.as_secs_f64(),
            r.invocations
        )
    }))?;
    println!("\n{}", table(&runs));
    let failed: Vec<_> = runs.iter().filter(|r| r.failure.is_some()).collect();
    for r in &failed {
        println!(
            "--- {} / {}: invocations\n{}",
            r.fault,
            r.scenario.name(),
            r.log.join("\n")
        );
    }
    println!(
        "{} runs, {} held, {} failed, in {:.0} s",
        runs.len(),
        runs.len() - failed.len(),
        failed.len(),
        started.elapsed().as_secs_f64()
    );
    if !failed.is_empty() {
        bail!("{} chaos runs did not hold", failed.len());
    }
    Ok(())
}

/// The end-to-end tests and chaos run the real binaries (the CLI, the Lambda functions), found
/// beside the running test or xtask. `cargo test` builds binaries only as test harnesses, so
/// build them first: fresh, never stale.
fn build_bins() -> Result<()> {
    let status = cargo().args(["build", "--workspace", "--bins"]).status()?;
    if !status.success() {
        bail!("building the binaries failed");
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
    use harbormaster_aws::handler::ALARM;
    use harbormaster_bootstrap::{cloud::Cloud, run, spec::Spec};
    use harbormaster_core::config::Config;

    let t = Timeline(Instant::now());
    t.say("starting the local AWS emulator (the first run also creates its venv)…");
    let emulator = harbormaster_testkit::Emulator::start()?;
    t.say(format!("emulator {MINISTACK} at {}", emulator.endpoint));

    // 1. The environment, as `harbormaster-bootstrap apply --env dev` makes it.
    let file = root().join("examples/booking/harbormaster.toml");
    let shown = file.display().to_string();
    let config = Config::parse(&shown, &std::fs::read_to_string(&file)?)?;
    let spec = Spec::from_config(&shown, &config, "dev")?;
    let sdk = harbormaster_e2e::sdk_for(&emulator).await;
    let report = run::apply(&Cloud::new(&sdk), &spec, true).await?;
    if !report.errors.is_empty() {
        bail!("bootstrap failed: {}", report.errors.join("; "));
    }
    t.say(format!(
        "bootstrap: {} resources for booking/dev (VPC, ALB with blue/green target groups, cluster, ECR, IAM, RDS, ElastiCache, SNS, state bucket, SSM outputs)",
        report.changes()
    ));

    // 2. What the team adds: its services on a first revision, a secret, an inbox on the topic.
    let w = World::on(emulator, harbormaster_e2e::Base::Bootstrapped).await?;
    t.say(format!(
        "team: services web and worker in {CLUSTER}, the Django secret in SSM, an SQS inbox on {}",
        w.topic_arn
    ));
    let agent = w.agent();
    let (ports, bundle) = agent.prepare().await?;
    {
        use harbormaster_core::alarm::standard_alarms;
        use harbormaster_core::ports::Alarms;
        let (e, s, _) = bundle.config.target("dev", "web").context("dev/web")?;
        for a in standard_alarms(
            "booking",
            "dev",
            "web",
            &e.cluster,
            &s.ecs_service,
            None,
            &s.thresholds,
        ) {
            ports.put_alarm(&a).await?;
        }
        t.say("harbormaster alarms --env dev --service web --apply: CPU and memory alarms, tagged for web");
    }

    // The functions, as Lambda runs them: ministack runs a provided.al2023 zip's `bootstrap`.
    let lambda = EmulatorLambda::new(&w, &t)?;
    for f in [ECR_PUSH, TICK, ALARM] {
        lambda.create(f.name)?;
    }
    t.say("functions ecr-push, tick and alarm created in the emulator's Lambda (provided.al2023)");

    // 3. Two releases, each pushed and deployed by the functions.
    let mut revisions = Vec::new();
    for (n, suffix) in ["a11ce01", "b0b0b02"].iter().enumerate() {
        let tag = format!("main-{suffix}");
        let digest = w.push_image(&tag).await?;
        t.say(format!("push booking/web:{tag} → {}", &digest[..19]));
        let event = w.push_event(&format!("demo-push-{n}"), &tag, &digest);
        t.say("EventBridge \"ECR Image Action\" → Lambda ecr-push");
        print_answer(&t, &lambda.invoke("ecr-push", &event)?);
        t.say("EventBridge schedule → Lambda tick");
        print_answer(&t, &lambda.invoke("tick", &fixture("scheduled.json"))?);
        revisions.push(w.service_task_definition("web").await?);
    }
    let (v1, v2) = (&revisions[0], &revisions[1]);
    t.say(format!("web runs {v2}"));

    // 4. The second release makes an alarm fire: EventBridge's event goes to the alarm function.
    let alarm = "booking-dev-web-cpu";
    let event = w
        .fire_alarm(
            alarm,
            "Threshold Crossed: 3 datapoints [97.1, 98.4, 99.0] were greater than the threshold (80.0).",
        )
        .await?;
    t.say(format!(
        "CloudWatch: {alarm} → ALARM; \"CloudWatch Alarm State Change\" → Lambda alarm"
    ));
    print_answer(&t, &lambda.invoke("alarm", &event)?);
    t.say("EventBridge schedule → Lambda tick");
    print_answer(&t, &lambda.invoke("tick", &fixture("scheduled.json"))?);

    // 5. What the team was told, in order.
    let inbox = w.inbox().await?;
    t.say(format!("{} notifications in the SQS inbox:", inbox.len()));
    let mut rolled_back = false;
    for (subject, message, attrs) in &inbox {
        println!(
            "           {subject}   [severity={}, kind={}]",
            attrs["severity"]["Value"].as_str().unwrap_or("?"),
            message["kind"].as_str().unwrap_or("?")
        );
        if message["kind"] == "rolled_back" {
            rolled_back = true;
            println!(
                "             why: {}",
                message["reason"].as_str().unwrap_or("")
            );
        }
    }
    let now = w.service_task_definition("web").await?;
    if &now != v1 || !rolled_back {
        bail!(
            "the story did not end as it should: web runs {now}, rollback notified: {rolled_back}"
        );
    }
    t.say(format!("done: web is back on the first release, {v1}"));
    Ok(())
}

/// The emulator's Lambda API, spoken over plain HTTP (the demo's only Lambda calls; the agent
/// itself never calls Lambda, so it carries no Lambda SDK).
struct EmulatorLambda {
    port: u16,
    env: Value,
}

impl EmulatorLambda {
    fn new(w: &World, t: &Timeline) -> Result<EmulatorLambda> {
        t.say("building the functions (debug, as the tests use them)…");
        let mut build = cargo();
        build.args(["build", "--quiet"]);
        for f in [ECR_PUSH, TICK, handler::ALARM] {
            build.args(["-p", f.name]);
        }
        if !build.status()?.success() {
            bail!("building the functions failed");
        }
        let mut vars = serde_json::Map::new();
        for (k, v) in w.cli_env() {
            vars.insert(k.into(), v.into());
        }
        Ok(EmulatorLambda {
            port: w.emulator.port,
            env: json!({"Variables": vars}),
        })
    }

    fn request(&self, path: &str, body: &[u8]) -> Result<(u16, Vec<u8>, String)> {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port))?;
        write!(
            s,
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\nAuthorization: AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        )?;
        s.write_all(body)?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .context("no HTTP response")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let mut body = raw[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        Ok((status, body, head))
    }

    fn create(&self, name: &str) -> Result<()> {
        use std::io::Write;
        let binary = target_dir().join("debug").join(name);
        let mut zip = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut zip);
            z.start_file(
                "bootstrap",
                zip::write::SimpleFileOptions::default().unix_permissions(0o755),
            )?;
            z.write_all(&std::fs::read(&binary).with_context(|| binary.display().to_string())?)?;
            z.finish()?;
        }
        let body = json!({
            "FunctionName": name,
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Role": "arn:aws:iam::000000000000:role/booking-harbormaster",
            "Code": {"ZipFile": aws_smithy_types::base64::encode(zip.into_inner())},
            "Environment": self.env,
            "Timeout": 60,
        });
        let (status, body, _) =
            self.request("/2015-03-31/functions", body.to_string().as_bytes())?;
        if !(200..300).contains(&status) {
            bail!(
                "CreateFunction {name}: {status} {}",
                String::from_utf8_lossy(&body)
            );
        }
        Ok(())
    }

    /// Invokes a function with an event and returns what it answered.
    fn invoke(&self, name: &str, event: &Value) -> Result<Value> {
        let (status, body, head) = self.request(
            &format!("/2015-03-31/functions/{name}/invocations"),
            event.to_string().as_bytes(),
        )?;
        if status != 200 || head.to_ascii_lowercase().contains("x-amz-function-error") {
            bail!("{name} failed: {status} {}", String::from_utf8_lossy(&body));
        }
        Ok(serde_json::from_slice(&body)?)
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(i) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + size]);
        b = &b[i + 4 + size..];
    }
    out
}

/// A function's answer (a dispatch report), as the timeline's transitions.
fn print_answer(t: &Timeline, answer: &Value) {
    for target in answer["targets"].as_array().into_iter().flatten() {
        let who = format!(
            "{}/{}",
            target["environment"].as_str().unwrap_or("?"),
            target["service"].as_str().unwrap_or("?")
        );
        for j in target["journal"].as_array().into_iter().flatten() {
            let note = j["note"].as_str().filter(|n| !n.is_empty());
            t.say(format!(
                "  {who}: {} → {}{}",
                j["from"].as_str().unwrap_or(""),
                j["to"].as_str().unwrap_or(""),
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            ));
        }
        if let Some(e) = target["error"].as_str() {
            t.say(format!("  {who}: error: {e}"));
        }
    }
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

// ---------------------------------------------------------------- package

/// Every function's deployment zip, built with cargo-lambda (installed from PyPI into a venv of
/// its own when missing; it brings zig for linking). arm64 where the aarch64 standard library is
/// installed, x86_64 otherwise, and the output says which.
fn package() -> Result<()> {
    let venv = cache_dir().join("venv-cargo-lambda");
    let bin = venv.join("bin");
    if !bin.join("cargo-lambda").exists() {
        println!("installing cargo-lambda from PyPI into {}…", venv.display());
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()?
            .success()
            && Command::new(bin.join("pip"))
                .args(["install", "-q", "cargo-lambda"])
                .status()?
                .success();
        if !ok {
            bail!("could not install cargo-lambda (pip install cargo-lambda)");
        }
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let arm = installed
        .lines()
        .any(|l| l.trim() == "aarch64-unknown-linux-gnu");
    let arch = if arm {
        println!("building for arm64 (as deploy/template.yaml says)");
        "--arm64"
    } else {
        println!(
            "NOTE: the aarch64 standard library is not installed here (and rustup's server is out of reach), so these zips are x86_64. \
             Deploy them with `Architectures: [x86_64]`, or build where `rustup target add aarch64-unknown-linux-gnu` works."
        );
        "--x86-64"
    };
    let out_dir = target_dir().join("lambda");
    let mut cmd = cargo();
    cmd.env(
        "PATH",
        format!(
            "{}:{}",
            bin.display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    )
    .args([
        "lambda",
        "build",
        "--release",
        arch,
        "--output-format",
        "zip",
        "--lambda-dir",
    ])
    .arg(&out_dir);
    for f in handler::FUNCTIONS {
        cmd.args(["--bin", f.name]);
    }
    if !cmd.status()?.success() {
        bail!("cargo lambda build failed");
    }
    println!("\n{:<14} {:>10}", "function", "zip");
    for f in handler::FUNCTIONS {
        let zip = out_dir.join(f.name).join("bootstrap.zip");
        let size = std::fs::metadata(&zip)
            .with_context(|| format!("{} was not built", zip.display()))?
            .len();
        println!("{:<14} {:>7} KiB  {}", f.name, size / 1024, zip.display());
    }
    Ok(())
}

fn cache_dir() -> PathBuf {
    PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/tmp".into()))
        .join(".cache/harbormaster")
}

fn target_dir() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"))
}

// ---------------------------------------------------------------- bench

struct StartUp {
    median_ms: f64,
    p90_ms: f64,
    rss_kib: u64,
    size_kib: u64,
}

/// Pinned: the comparison is with this release.
const ECS_DEPLOY: &str = "ecs-deploy==1.17.0";
const ROUNDS: usize = 5;

struct ToolRuns {
    /// Process wall times, ms, sorted.
    walls: Vec<f64>,
    /// The calls of the last round.
    calls: Vec<harbormaster_testkit::proxy::Call>,
}

impl ToolRuns {
    fn mutating(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| is_mutating(&c.operation))
            .count()
    }

    fn ops(&self) -> String {
        let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
        for c in &self.calls {
            *counts.entry(c.operation.as_str()).or_default() += 1;
        }
        counts
            .iter()
            .map(|(o, n)| format!("{o} ×{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `harbormaster deploy` and `ecs deploy`, alternating, each on a freshly pushed image.
async fn side_by_side(
    w: &World,
    cli: &Path,
    proxy: &CountingProxy,
) -> Result<(ToolRuns, ToolRuns)> {
    let venv = harbormaster_testkit::ensure_python_tool(
        &harbormaster_testkit::cache_dir(&format!("venv-{}", ECS_DEPLOY.replace("==", "-"))),
        &[ECS_DEPLOY],
        "ecs",
    )?;
    let mut env = w.cli_env_at(&proxy.endpoint);
    env.push(("AWS_DEFAULT_REGION", harbormaster_e2e::REGION.into()));
    let run = |program: &Path, args: &[&str]| -> Result<f64> {
        let t = Instant::now();
        let out = Command::new(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (*k, v.clone())))
            .output()?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if !out.status.success() {
            bail!(
                "{} {}: {}{}",
                program.display(),
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(ms)
    };
    let mut ours = ToolRuns {
        walls: Vec::new(),
        calls: Vec::new(),
    };
    let mut theirs = ToolRuns {
        walls: Vec::new(),
        calls: Vec::new(),
    };
    for round in 0..ROUNDS {
        let digest = w.push_image(&format!("main-h{round:06}")).await?;
        proxy.reset();
        ours.walls.push(run(
            cli,
            &[
                "deploy",
                "--env",
                "dev",
                "--service",
                "web",
                "--image",
                &digest,
            ],
        )?);
        ours.calls = proxy.calls();
        // Let the emulator's finished rollout be recorded, outside the measurement.
        run(cli, &["tick"])?;

        let digest = w.push_image(&format!("main-e{round:06}")).await?;
        let image = format!(
            "{}.dkr.ecr.{}.amazonaws.com/{}@{digest}",
            harbormaster_e2e::ACCOUNT,
            harbormaster_e2e::REGION,
            harbormaster_e2e::REPOSITORY
        );
        proxy.reset();
        theirs.walls.push(run(
            &venv.join("bin/ecs"),
            &[
                "deploy",
                CLUSTER,
                "web",
                "--image",
                "web",
                &image,
                "--timeout",
                "-1",
            ],
        )?);
        theirs.calls = proxy.calls();
    }
    ours.walls.sort_by(|a, b| a.total_cmp(b));
    theirs.walls.sort_by(|a, b| a.total_cmp(b));
    Ok((ours, theirs))
}

fn side_by_side_table(ours: &ToolRuns, theirs: &ToolRuns) -> String {
    let (o, t) = (percentile(&ours.walls, 0.5), percentile(&theirs.walls, 0.5));
    format!(
        "| measure | Harbormaster (`harbormaster deploy`) | {ECS_DEPLOY} (`ecs deploy`) | ratio (Harbormaster / ecs-deploy) |\n\
         | --- | --- | --- | --- |\n\
         | wall time, process start → exit after UpdateService, median of {ROUNDS} | {o:.0} ms | {t:.0} ms | {:.2}× |\n\
         | same, min – max | {:.0} – {:.0} ms | {:.0} – {:.0} ms | – |\n\
         | AWS API calls | {} | {} | {:.2}× |\n\
         | of which mutating | {} | {} | {:.2}× |\n\
         | calls | {} | {} | – |\n",
        o / t,
        ours.walls[0],
        ours.walls[ours.walls.len() - 1],
        theirs.walls[0],
        theirs.walls[theirs.walls.len() - 1],
        ours.calls.len(),
        theirs.calls.len(),
        ours.calls.len() as f64 / theirs.calls.len().max(1) as f64,
        ours.mutating(),
        theirs.mutating(),
        ours.mutating() as f64 / theirs.mutating().max(1) as f64,
        ours.ops(),
        theirs.ops(),
    )
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
    println!(
        "building release binaries of ecr-push, hello-lambda and the CLI (opt-level s, fat LTO)…"
    );
    let status = cargo()
        .args([
            "build",
            "--release",
            "-p",
            "ecr-push",
            "-p",
            "hello-lambda",
            "-p",
            "harbormaster",
        ])
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

    println!(
        "side by side: `harbormaster deploy` vs `ecs deploy`, same service, same image change…"
    );
    let (ours_deploy, theirs) = side_by_side(&w, &release.join("harbormaster"), &proxy).await?;
    let side_table = side_by_side_table(&ours_deploy, &theirs);
    println!("\n{side_table}");

    println!("load: 1,000 pushes over 50 services, concurrent…");
    let load = harbormaster_e2e::load::run(&World::start().await?).await?;
    let wrong = load.deployments.values().filter(|(_, ok)| !ok).count();
    if wrong > 0 {
        bail!("load: {wrong} services without exactly one deployment of their newest image");
    }
    let load_table = format!(
        "| measure | value |\n| --- | --- |\n\
         | events (50 services × 10 images × 2 deliveries, shuffled) | {} |\n\
         | all decided (recorded, or ignored as older or repeated), {} in flight at once | {:.1} s ({:.0} events/s) |\n\
         | one delivery, median / worst | {:.0} ms / {:.0} ms |\n\
         | deliveries Lambda would have retried | {} |\n\
         | the tick after the {} s settle window starts all 50 deployments | {:.2} s |\n\
         | services with exactly one deployment, of the newest image | {} of {} |\n",
        load.events,
        harbormaster_e2e::load::CONCURRENCY,
        load.decide.as_secs_f64(),
        load.events as f64 / load.decide.as_secs_f64(),
        load.delivery_p50.as_secs_f64() * 1000.0,
        load.delivery_max.as_secs_f64() * 1000.0,
        load.redeliveries,
        harbormaster_e2e::load::SETTLE_SECONDS,
        load.start_all.as_secs_f64(),
        load.services - wrong,
        load.services,
    );
    println!("\n{load_table}");

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
         ## Side by side: Harbormaster vs ecs-deploy\n\n\
         The same emulator, the same service (`booking-dev/web`), the same kind of change: a new\n\
         image pushed to ECR, deployed by digest. Each round pushes one image for each tool and\n\
         runs the tool as a process with its endpoint at a counting proxy, so the wall time\n\
         includes each one's start-up (Rust binary vs Python interpreter). `harbormaster deploy`\n\
         renders the task definition from the GitOps template, checks the secrets' parameters, registers,\n\
         updates and records the deployment in S3 with a notification; `{ECS_DEPLOY}` copies\n\
         the running task definition with the new image, registers it, updates the service and\n\
         deregisters the old revision (its defaults, with `--timeout -1`: no waiting, like\n\
         `harbormaster deploy` without `--wait`). Both exit once UpdateService has answered.\n\n{side_table}\n\
         ## Load: a burst of pushes\n\n\
         1,000 ECR push events over 50 services go through the `ecr-push` dispatch in process (in\n\
         the xtask binary, a debug build; the functions are release builds), concurrently, against the emulator (state in its S3, compare-and-swap on every write). Each\n\
         image arrives twice and the order is shuffled, so older pushes arrive after newer ones. With\n\
         `agent.settle_seconds = {}`, each service must end with one deployment, of its newest image\n\
         (`tests/tests/load.rs` asserts the same).\n\n{load_table}\n\
         ## Reproduce\n\n```\ncargo xtask bench\n```\n",
        chrono::Utc::now().format("%Y-%m-%d"),
        harbormaster_e2e::load::SETTLE_SECONDS,
    );
    std::fs::write(root().join("BENCHMARKS.md"), doc)?;
    println!("wrote BENCHMARKS.md");
    Ok(())
}
