//! Fault injection end to end: microburst (a protocol-aware AWS fault proxy) sits between the
//! agent and the emulator, and the deployment scenarios run through the real `harbormaster`
//! binary, as CodeBuild or a Lambda would run them. Each scenario first runs with the proxy
//! passing everything through; under every fault kind it must end in the same final state:
//! the same images running, the same history and last known good, no task-definition revision
//! more, every notification delivered, nothing left in the outbox. A non-retryable error must
//! instead end the deployment at once, as failed, with a notification and no retry.
//!
//! `cargo xtask chaos` runs every scenario under every fault kind; `cargo xtask test` runs the
//! smaller [`Size::Small`] set (one scenario, lighter latency) as `tests/tests/chaos.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harbormaster_testkit::microburst::Microburst;
use serde_json::{json, Value};

use crate::{cli_binary, TempDir, World, FAMILY};

const SERVICES: [&str; 2] = ["web", "worker"];
const FAMILIES: [&str; 2] = [FAMILY, "booking-dev-worker"];
/// Ticks one scenario may take to settle after its faults (the tick runs every minute in AWS).
const MAX_TICKS: usize = 12;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Size {
    /// Inside `cargo xtask test`: the push-to-deploy scenario under each fault kind.
    Small,
    /// `cargo xtask chaos`: every scenario under each fault kind, latency on every call.
    Full,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    /// One push deploys web and worker.
    Deploy,
    /// Two releases, then a person rolls web back to the first.
    Rollback,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Deploy => "push → deploy (web, worker)",
            Scenario::Rollback => "two releases, then rollback web",
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expect {
    /// The final state equals the run without faults.
    SameAsWithout,
    /// Terminal at once: failed, notified, the refused call made once per service.
    FailsFast,
}

pub struct FaultKind {
    pub name: &'static str,
    pub rules: Value,
    pub expect: Expect,
}

/// The fault kinds the issue names, as microburst rules.
pub fn fault_kinds(size: Size) -> Vec<FaultKind> {
    let latency_p = if size == Size::Full { 1.0 } else { 0.3 };
    vec![
        FaultKind {
            name: "throttling 30% (ECS, S3)",
            rules: json!([
                {"service": "ecs", "probability": 0.3,
                 "error": {"code": "ThrottlingException", "status": 400, "message": "Rate exceeded"}},
                {"service": "s3", "probability": 0.3,
                 "error": {"code": "SlowDown", "status": 503, "message": "Please reduce your request rate."}}
            ]),
            expect: Expect::SameAsWithout,
        },
        FaultKind {
            name: "5xx bursts (3 fail, 5 pass)",
            rules: json!([
                {"service": "ecs", "sequence": {"fail": 3, "pass": 5},
                 "error": {"code": "ServerException", "status": 500, "message": "burst"}},
                {"service": "s3", "sequence": {"fail": 3, "pass": 5},
                 "error": {"code": "InternalError", "status": 500, "message": "burst"}},
                {"service": "sns", "sequence": {"fail": 3, "pass": 5},
                 "error": {"code": "InternalError", "status": 500, "message": "burst"}}
            ]),
            expect: Expect::SameAsWithout,
        },
        FaultKind {
            name: "latency 1–2 s",
            rules: json!([
                {"service": "*", "probability": latency_p, "latency": {"min": 1000, "max": 2000}}
            ]),
            expect: Expect::SameAsWithout,
        },
        FaultKind {
            name: "connection resets 20%",
            rules: json!([{"service": "*", "probability": 0.2, "reset": true}]),
            expect: Expect::SameAsWithout,
        },
        FaultKind {
            // Every answer to RegisterTaskDefinition is lost after ECS registered the revision.
            name: "lost response after RegisterTaskDefinition",
            rules: json!([
                {"service": "ecs", "operation": "RegisterTaskDefinition",
                 "response": {"abort_bytes": 0}}
            ]),
            expect: Expect::SameAsWithout,
        },
        FaultKind {
            name: "non-retryable (UpdateService AccessDenied)",
            rules: json!([
                {"service": "ecs", "operation": "UpdateService",
                 "error": {"code": "AccessDeniedException", "status": 400,
                           "message": "not authorized to perform: ecs:UpdateService"}}
            ]),
            expect: Expect::FailsFast,
        },
    ]
}

pub fn scenarios(size: Size) -> Vec<Scenario> {
    match size {
        Size::Small => vec![Scenario::Deploy],
        Size::Full => vec![Scenario::Deploy, Scenario::Rollback],
    }
}

/// What a scenario leaves behind, with image digests replaced by their push order (A, B…) so
/// that runs in different emulators compare.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FinalState {
    pub services: BTreeMap<String, ServiceEnd>,
    /// Task-definition revisions per family.
    pub revisions: BTreeMap<String, usize>,
    /// (service, kind, image) of every notification that reached the subscriber.
    pub notifications: BTreeSet<(String, String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceEnd {
    pub running: String,
    pub last_known_good: String,
    /// (image, verdict), newest first.
    pub history: Vec<(String, String)>,
    pub in_flight: bool,
    pub pending: bool,
    pub outbox: usize,
}

/// One scenario under one fault kind.
pub struct ChaosRun {
    pub fault: &'static str,
    pub scenario: Scenario,
    /// `None` when it held; else what did not.
    pub failure: Option<String>,
    /// Faults microburst fired, by action (e.g. `error:ThrottlingException`, `reset`).
    pub fired: BTreeMap<String, usize>,
    pub requests: u64,
    /// Harbormaster invocations (events, ticks, CLI commands) until settled.
    pub invocations: usize,
    pub elapsed: Duration,
    pub notifications_duplicated: usize,
    /// Each invocation's command line, exit code and log, to read when it did not hold.
    pub log: Vec<String>,
}

impl ChaosRun {
    pub fn outcome(&self) -> String {
        match &self.failure {
            None => "held".into(),
            Some(f) => format!("FAILED: {f}"),
        }
    }
}

/// Runs every scenario of `size` without faults, then under each fault kind, and reports each.
pub async fn run(size: Size, progress: impl Fn(&ChaosRun)) -> Result<Vec<ChaosRun>> {
    let mut runs = Vec::new();
    for scenario in scenarios(size) {
        let baseline = play(scenario, &json!([]))
            .await
            .with_context(|| format!("{} without faults", scenario.name()))?;
        if let Some(problem) = settled_problem(&baseline.state) {
            bail!(
                "{} without faults did not settle: {problem}",
                scenario.name()
            );
        }
        let only = std::env::var("HARBORMASTER_CHAOS_ONLY").unwrap_or_default();
        for kind in fault_kinds(size) {
            if !kind.name.contains(only.as_str()) {
                continue;
            }
            if kind.expect == Expect::FailsFast && scenario != Scenario::Deploy {
                continue;
            }
            let started = Instant::now();
            let run = match play(scenario, &kind.rules).await {
                Ok(played) => {
                    let failure = match kind.expect {
                        Expect::SameAsWithout => compare(&baseline.state, &played.state),
                        Expect::FailsFast => fails_fast(&played),
                    };
                    ChaosRun {
                        fault: kind.name,
                        scenario,
                        failure,
                        fired: played.fired,
                        requests: played.requests,
                        invocations: played.invocations,
                        elapsed: started.elapsed(),
                        notifications_duplicated: played.duplicates,
                        log: played.log,
                    }
                }
                Err(e) => ChaosRun {
                    fault: kind.name,
                    scenario,
                    failure: Some(format!("{e:#}")),
                    fired: BTreeMap::new(),
                    requests: 0,
                    invocations: 0,
                    elapsed: started.elapsed(),
                    notifications_duplicated: 0,
                    log: Vec::new(),
                },
            };
            progress(&run);
            runs.push(run);
        }
    }
    Ok(runs)
}

/// The table `cargo xtask chaos` prints: per fault kind, each scenario and its outcome.
pub fn table(runs: &[ChaosRun]) -> String {
    let mut out = String::from(
        "| fault kind | scenario | outcome | faults fired | requests | invocations | time |\n| --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for r in runs {
        let fired: Vec<String> = r.fired.iter().map(|(k, v)| format!("{k} ×{v}")).collect();
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {:.1} s |\n",
            r.fault,
            r.scenario.name(),
            r.outcome(),
            if fired.is_empty() {
                "none".into()
            } else {
                fired.join(", ")
            },
            r.requests,
            r.invocations,
            r.elapsed.as_secs_f64()
        ));
    }
    out
}

struct Played {
    state: FinalState,
    fired: BTreeMap<String, usize>,
    requests: u64,
    invocations: usize,
    duplicates: usize,
    /// The first delivery's exit code and report (for the fail-fast check).
    first: (i32, Value),
    /// How often each operation was sent, as microburst saw the faulted ones.
    fired_by_operation: BTreeMap<String, usize>,
    log: Vec<String>,
}

async fn play(scenario: Scenario, rules: &Value) -> Result<Played> {
    let w = World::start().await?;
    // A short lease so that a step cut off without recording it (the invocation died) is
    // taken over within seconds rather than the default five minutes: the agent here is the
    // CLI, each invocation a few seconds long, so a 10 s "function timeout" is honest.
    let path = w.config_dir.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path)?;
    let agent = "[agent]\nlease_seconds = 10\nfunction_timeout_seconds = 10\n";
    std::fs::write(&path, format!("{text}\n{agent}"))?;
    let proxy = Microburst::start(&w.emulator.endpoint)?;
    proxy.set_rules(rules)?;
    let mut agent = Agent {
        w: &w,
        endpoint: proxy.endpoint.clone(),
        invocations: 0,
        tmp: TempDir::new("chaos")?,
        log: Vec::new(),
    };
    let mut labels = BTreeMap::new();
    let first;
    match scenario {
        Scenario::Deploy => {
            let a = w.push_image("main-aaaa111").await?;
            labels.insert(a.clone(), "A".to_owned());
            first = agent.deliver(&w.push_event("push-a", "main-aaaa111", &a))?;
            agent.settle().await?;
        }
        Scenario::Rollback => {
            let a = w.push_image("main-aaaa111").await?;
            labels.insert(a.clone(), "A".to_owned());
            first = agent.deliver(&w.push_event("push-a", "main-aaaa111", &a))?;
            agent.settle().await?;
            let b = w.push_image("main-bbbb222").await?;
            labels.insert(b.clone(), "B".to_owned());
            agent.deliver(&w.push_event("push-b", "main-bbbb222", &b))?;
            agent.settle().await?;
            agent.command(&["rollback", "--env", "dev", "--service", "web"])?;
            agent.settle().await?;
        }
    }
    let fired_log = proxy.fired()?;
    let mut fired = BTreeMap::new();
    let mut fired_by_operation = BTreeMap::new();
    for f in &fired_log {
        // `latency:1225ms` → `latency`: one line per kind of fault, not per delay.
        let action = f["action"].as_str().unwrap_or("?");
        let action = match action.split_once(':') {
            Some(("latency", _)) => "latency",
            _ => action,
        };
        *fired.entry(action.to_owned()).or_insert(0) += 1;
        *fired_by_operation
            .entry(f["operation"].as_str().unwrap_or("?").to_owned())
            .or_insert(0) += 1;
    }
    let requests = proxy.stats()?["requests"]["total"].as_u64().unwrap_or(0);
    let (state, duplicates) = final_state(&w, &labels).await?;
    Ok(Played {
        state,
        fired,
        requests,
        invocations: agent.invocations,
        duplicates,
        first,
        fired_by_operation,
        log: agent.log,
    })
}

/// The agent as its callers drive it: EventBridge deliveries, the minute tick, a person's CLI.
struct Agent<'a> {
    w: &'a World,
    endpoint: String,
    invocations: usize,
    tmp: TempDir,
    log: Vec<String>,
}

impl Agent<'_> {
    fn cli(&mut self, args: &[&str]) -> Result<(i32, Value, String)> {
        self.invocations += 1;
        let env = self.w.cli_env_at(&self.endpoint);
        let out = std::process::Command::new(cli_binary()?)
            .args(args)
            .envs(env)
            .env_remove("AWS_MAX_ATTEMPTS")
            .env_remove("AWS_RETRY_MODE")
            .output()?;
        let code = out.status.code().unwrap_or(-1);
        self.log.push(format!(
            "harbormaster {} → exit {code}\n{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
        let report = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        Ok((
            code,
            report,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// An EventBridge delivery. The function returns an error when a target's run errored or
    /// was interrupted (`invoke` exits 2 or 3), and Lambda retries such an asynchronous
    /// invocation twice; handling is idempotent, so a retry only does what is left.
    fn deliver(&mut self, event: &Value) -> Result<(i32, Value)> {
        let file = self.tmp.0.join(format!("event-{}.json", self.invocations));
        std::fs::write(&file, event.to_string())?;
        let file = file.display().to_string();
        let mut first = None;
        for _ in 0..3 {
            let (code, report, _) = self.cli(&["--json", "invoke", "--event", &file])?;
            let first = first.get_or_insert((code, report)).clone();
            if code != 2 && code != 3 {
                return Ok(first);
            }
        }
        Ok(first.expect("delivered at least once"))
    }

    /// A person's command, repeated while it errors before doing anything (exit 2).
    fn command(&mut self, args: &[&str]) -> Result<()> {
        let mut last = String::new();
        for _ in 0..5 {
            let (code, _, stderr) = self.cli(args)?;
            if code != 2 {
                return Ok(());
            }
            last = stderr;
            std::thread::sleep(Duration::from_millis(500));
        }
        bail!("harbormaster {} kept failing: {last}", args.join(" "))
    }

    /// Ticks until nothing is in flight, pending or waiting in an outbox.
    async fn settle(&mut self) -> Result<()> {
        for _ in 0..MAX_TICKS {
            let mut busy = Vec::new();
            for service in SERVICES {
                let st = self.w.state_document("dev", service).await?;
                let st = st.unwrap_or(Value::Null);
                if !st["in_flight"].is_null()
                    || !st["pending"].is_null()
                    || st["outbox"].as_array().is_some_and(|o| !o.is_empty())
                {
                    busy.push(service);
                }
            }
            if busy.is_empty() {
                return Ok(());
            }
            let (code, _, _) = self.cli(&["tick"])?;
            if code == 3 || code == 2 {
                // Interrupted or could not start: the next minute's tick carries on; a lease
                // cut off without a record lapses in 10 s.
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        bail!("not settled after {MAX_TICKS} ticks")
    }
}

async fn final_state(w: &World, labels: &BTreeMap<String, String>) -> Result<(FinalState, usize)> {
    let label = |digest: &str| {
        labels
            .get(digest)
            .cloned()
            .unwrap_or_else(|| format!("other:{digest}"))
    };
    let mut end = FinalState::default();
    for service in SERVICES {
        let st = w
            .state_document("dev", service)
            .await?
            .unwrap_or(Value::Null);
        let image = w.running_image(service).await?;
        let running = match image.split_once('@') {
            Some((_, digest)) => label(digest),
            None => "original".into(),
        };
        let history = st["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .map(|e| {
                        (
                            label(e["image"]["digest"].as_str().unwrap_or("")),
                            e["verdict"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        end.services.insert(
            service.to_owned(),
            ServiceEnd {
                running,
                last_known_good: st["last_known_good"]["image"]["digest"]
                    .as_str()
                    .map(label)
                    .unwrap_or_else(|| "none".into()),
                history,
                in_flight: !st["in_flight"].is_null(),
                pending: !st["pending"].is_null(),
                outbox: st["outbox"].as_array().map(Vec::len).unwrap_or(0),
            },
        );
    }
    for family in FAMILIES {
        end.revisions
            .insert(family.to_owned(), w.revisions(family).await?.len());
    }
    let mut seen = 0;
    for (_, message, _) in w.inbox().await? {
        seen += 1;
        end.notifications.insert((
            message["service"].as_str().unwrap_or("").to_owned(),
            message["kind"].as_str().unwrap_or("").to_owned(),
            label(message["image"]["digest"].as_str().unwrap_or("")),
        ));
    }
    let duplicates = seen - end.notifications.len();
    Ok((end, duplicates))
}

fn settled_problem(s: &FinalState) -> Option<String> {
    s.services.iter().find_map(|(name, e)| {
        (e.in_flight || e.pending || e.outbox > 0).then(|| format!("{name}: {e:?}"))
    })
}

/// What differs from the run without faults, if anything.
fn compare(baseline: &FinalState, faulted: &FinalState) -> Option<String> {
    let mut diffs = Vec::new();
    for (name, want) in &baseline.services {
        match faulted.services.get(name) {
            Some(got) if got == want => {}
            got => diffs.push(format!("{name}: want {want:?}, got {got:?}")),
        }
    }
    if baseline.revisions != faulted.revisions {
        diffs.push(format!(
            "task-definition revisions: want {:?}, got {:?}",
            baseline.revisions, faulted.revisions
        ));
    }
    let missing: Vec<_> = baseline
        .notifications
        .difference(&faulted.notifications)
        .collect();
    let extra: Vec<_> = faulted
        .notifications
        .difference(&baseline.notifications)
        .collect();
    if !missing.is_empty() || !extra.is_empty() {
        diffs.push(format!(
            "notifications missing {missing:?}, unexpected {extra:?}"
        ));
    }
    (!diffs.is_empty()).then(|| diffs.join("; "))
}

/// A refused UpdateService: the first delivery already ends both deployments as failed, each
/// with a `failed` notification; the call was made once per service (no retry); nothing ran.
fn fails_fast(p: &Played) -> Option<String> {
    let mut problems = Vec::new();
    let (code, report) = &p.first;
    if *code != 1 {
        problems.push(format!("the push's invocation exited {code}, not 1"));
    }
    let targets = report["targets"].as_array().cloned().unwrap_or_default();
    let terminal = targets
        .iter()
        .filter(|t| t["outcome"] == "finished" && t["verdict"] == "failed")
        .count();
    if terminal != SERVICES.len() {
        problems.push(format!(
            "{terminal} of {} deployments failed in the first invocation: {report}",
            SERVICES.len()
        ));
    }
    let sent = p
        .fired_by_operation
        .get("UpdateService")
        .copied()
        .unwrap_or(0);
    if sent != SERVICES.len() {
        problems.push(format!(
            "UpdateService was sent {sent} times for {} services (a retry?)",
            SERVICES.len()
        ));
    }
    for (name, e) in &p.state.services {
        if e.running != "original"
            || e.in_flight
            || e.history.first().map(|h| h.1.as_str()) != Some("failed")
        {
            problems.push(format!("{name}: {e:?}"));
        }
        if !p
            .state
            .notifications
            .contains(&(name.clone(), "failed".into(), "A".into()))
        {
            problems.push(format!("{name}: no `failed` notification"));
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}
