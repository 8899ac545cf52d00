//! `cargo xtask bench`: start-up, push-to-update side by side with ecs-deploy, and the load
//! run; writes BENCHMARKS.md.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::RunOptions;
use harbormaster_e2e::World;
use harbormaster_testkit::proxy::{is_mutating, CountingProxy};
use harbormaster_testkit::MINISTACK;
use serde_json::Value;

use crate::demo::tick;
use startup::{one_invocation, sizes_table, start_up, start_up_table, RUNS};

mod alarm;
mod floor;
mod load;
mod side_by_side;
mod startup;
use crate::{cargo, root};

/// The calls as a table cell: each operation once, with how often (`ecs:UpdateService ×1, …`).
pub(crate) fn counted(calls: &[harbormaster_testkit::proxy::Call]) -> String {
    counted_ops(calls.iter().map(|c| c.operation.as_str()))
}

/// The same for operations named any way (the in-memory ports' calls are plain names).
pub(crate) fn counted_ops<'a>(ops: impl Iterator<Item = &'a str>) -> String {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for op in ops {
        *counts.entry(op).or_default() += 1;
    }
    counts
        .iter()
        .map(|(o, n)| format!("{o} ×{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

pub(crate) async fn bench() -> Result<()> {
    let release = release_build()?;
    let w = World::start().await?;
    // What a function process sees: the emulator, and this world's stand-in for Application
    // Auto Scaling (which ministack lacks), as `cli_env_at` gives the CLI.
    let env = w.cli_env_at(&w.emulator.endpoint);
    let mut filled: Vec<(&str, String)> = Vec::new();

    println!("start-up: {RUNS} runs each, exec → first Runtime API request…");
    let ours = start_up(&release.join("ecr-push"), &env, RUNS)?;
    let hello = start_up(&release.join("hello-lambda"), &env, RUNS)?;
    let (handled, invoked_rss) = one_invocation(&w, &release, &env).await?;
    println!("the SDK floor: start-up, size, and one deploy's calls against the emulator…");
    let floor = floor::floor(&w, &release, &env).await?;
    let start = start_up_table(&ours, &hello, &floor, (invoked_rss, handled));
    filled.push(("start_up", start));
    filled.push(("sizes", sizes_table(&release)?));

    println!("push → UpdateService through a counting proxy…");
    let proxy = CountingProxy::start(w.emulator.port)?;
    filled.push(("push", push_rounds(&w, &proxy).await?));

    println!("alarm → rollback's UpdateService, warm and cold…");
    filled.push(("alarm", alarm::alarm_rounds(&w, &proxy).await?));

    println!(
        "side by side: `harbormaster deploy` vs `ecs deploy`, same service, same image change…"
    );
    let cli = release.join("harbormaster");
    let (ours_deploy, theirs) = side_by_side::side_by_side(&w, &cli, &proxy).await?;
    filled.push((
        "side_by_side",
        side_by_side::side_by_side_table(&ours_deploy, &theirs),
    ));
    filled.push(("calls", side_by_side::why_each_call(&ours_deploy.calls)));

    println!("load: 1,000 pushes over 50 services, concurrent, in process then in 64 processes…");
    filled.push(("load", load::load_runs(&release).await?));
    for (name, table) in &filled {
        println!("\n{name}:\n{table}");
    }
    let previous = std::fs::read_to_string(root().join("BENCHMARKS.md")).unwrap_or_default();
    std::fs::write(root().join("BENCHMARKS.md"), document(filled, &previous)?)?;
    println!("wrote BENCHMARKS.md");
    Ok(())
}

/// Release builds of what is measured: the functions, the SDK floor, the hello-world baseline
/// and the CLI, in one build (one feature set).
fn release_build() -> Result<PathBuf> {
    println!(
        "building release binaries of the six functions, sdk-floor, hello-lambda and the CLI (opt-level s, fat LTO)…"
    );
    let functions = handler::FUNCTIONS.iter().map(|f| f.name);
    let packages = functions.chain(["sdk-floor", "hello-lambda", "harbormaster"]);
    let args = packages.flat_map(|p| ["-p", p]);
    let status = cargo().args(["build", "--release"]).args(args).status()?;
    if !status.success() {
        bail!("release build failed");
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("target"));
    Ok(target.join("release"))
}

/// Push → UpdateService, in process, through the counting proxy: wall times and calls.
async fn push_rounds(w: &World, proxy: &CountingProxy) -> Result<String> {
    let sdk = harbormaster_e2e::sdk_at(&proxy.endpoint).await;
    let agent = harbormaster_aws::Agent::of(
        w.ports_via(&sdk, &w.autoscaling.endpoint),
        harbormaster_aws::Source::Folder(w.config_dir.clone()),
    );
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

    Ok(format!(
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
        counted(&calls),
    ))
}

/// The previous run's figures, to keep beside the new ones: its measured sections, without
/// its own previous run (the file never grows beyond two runs).
fn previous_run(previous: &str) -> String {
    const MARK: &str = "## The previous run";
    let own = previous.split(MARK).next().unwrap_or_default();
    let date = own
        .split("Measured by `cargo xtask bench` on ")
        .nth(1)
        .and_then(|t| t.split(' ').next());
    let Some(start) = own.find("## Lambda start-up") else {
        return String::new();
    };
    let body = own[start..]
        .split("## Reproduce")
        .next()
        .unwrap_or_default();
    let body = body.replace("\n## ", "\n### ").replacen("## ", "### ", 1);
    format!(
        "{MARK} ({}), for comparison\n\n{}",
        date.unwrap_or("unknown"),
        body.trim_end()
    )
}

/// The prose of BENCHMARKS.md, with a `{{name}}` for each measured table and fact.
const TEMPLATE: &str = include_str!("BENCHMARKS.md.in");

fn document(mut filled: Vec<(&str, String)>, previous: &str) -> Result<String> {
    let rustc = Command::new("rustc").arg("--version").output()?.stdout;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let machine = format!("{cores} cores, {}", String::from_utf8_lossy(&rustc).trim());
    filled.extend([
        ("date", chrono::Utc::now().format("%Y-%m-%d").to_string()),
        ("machine", machine),
        ("emulator", MINISTACK.to_owned()),
        ("ecs_deploy", side_by_side::ECS_DEPLOY.to_owned()),
        (
            "settle_seconds",
            harbormaster_e2e::load::SETTLE_SECONDS.to_string(),
        ),
        ("previous", previous_run(previous)),
    ]);
    let mut doc = TEMPLATE.to_owned();
    for (name, text) in &filled {
        doc = doc.replace(&format!("{{{{{name}}}}}"), text);
    }
    if let Some(at) = doc.find("{{") {
        bail!(
            "BENCHMARKS.md.in: `{}` is not filled",
            &doc[at..doc.len().min(at + 30)]
        );
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    /// Every table the bench measures has its place in the template, and nothing else is left
    /// unfilled (a renamed placeholder fails here, not after half an hour of measuring).
    #[test]
    fn the_template_takes_every_table_and_leaves_no_placeholder() {
        let names = ["start_up", "sizes", "push", "alarm", "side_by_side"];
        let mut filled: Vec<(&str, String)> =
            names.iter().map(|n| (*n, format!("<{n} table>"))).collect();
        filled.extend([
            ("calls", "<calls>".to_owned()),
            ("load", "<load>".to_owned()),
        ]);
        let doc = super::document(filled, "").unwrap();
        for n in names {
            assert!(doc.contains(&format!("<{n} table>")), "{n}");
        }
        assert!(doc.starts_with("# Benchmarks\n\nMeasured by `cargo xtask bench` on 20"));
        let missing = super::document(vec![("push", String::new())], "").unwrap_err();
        assert!(missing.to_string().contains("{{"), "{missing}");
    }
}
