//! Load: 1,000 ECR push events over 50 services, delivered concurrently through the `ecr-push`
//! dispatch against the emulator, with every image pushed twice (a redelivery) and the order
//! shuffled (older pushes arrive after newer ones). With `agent.settle_seconds`, each service
//! must end with exactly one deployment, of its newest image. The test suite asserts it
//! (`tests/tests/load.rs`); `cargo xtask bench` reports the times.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::RunOptions;
use serde_json::{json, Value};

use crate::{create_service, World, ACCOUNT, BUCKET, CLUSTER, REGION};

pub const SERVICES: usize = 50;
/// Distinct images per service; each is delivered twice.
pub const IMAGES: usize = 10;
pub const EVENTS: usize = SERVICES * IMAGES * 2;
/// Deliveries in flight at once (Lambda's concurrency for the function).
pub const CONCURRENCY: usize = 64;
pub const SETTLE_SECONDS: u64 = 5;

#[derive(Debug)]
pub struct LoadReport {
    pub events: usize,
    pub services: usize,
    /// All events handled (each release recorded, or ignored as older or a duplicate).
    pub decide: Duration,
    /// Median and worst single delivery.
    pub delivery_p50: Duration,
    pub delivery_max: Duration,
    /// Deliveries Lambda would have retried (a target errored, e.g. too much contention).
    pub redeliveries: usize,
    /// CPU time while deciding: the agent's (this process) and the emulator's. On two cores
    /// the wall time cannot fall below the larger one.
    pub agent_cpu: Duration,
    pub emulator_cpu: Duration,
    /// The tick after the settle window: every service's deployment started.
    pub start_all: Duration,
    /// Deployments per service, and whether each deployed its newest image.
    pub deployments: BTreeMap<String, (usize, bool)>,
}

fn service(i: usize) -> String {
    format!("svc-{i:02}")
}

fn digest(service: usize, image: usize) -> String {
    format!(
        "sha256:{:064x}",
        (service as u128) << 64 | image as u128 | 1 << 100
    )
}

/// The agent's config for 50 services following `main-*` tags in dev.
fn config(topic_arn: &str) -> String {
    let mut c = format!(
        "project = \"booking\"\nstate_bucket = \"{BUCKET}\"\nnotification_topic = \"{topic_arn}\"\n\n[agent]\nsettle_seconds = {SETTLE_SECONDS}\n\n[environments.dev]\ncluster = \"{CLUSTER}\"\nauto_deploy = true\n"
    );
    for i in 0..SERVICES {
        let s = service(i);
        c.push_str(&format!(
            "\n[services.{s}]\nrepository = \"booking/{s}\"\ntask_definition = \"taskdefs/load.json\"\ndesired_count = 1\n\n[services.{s}.environments.dev]\nfollow = {{ regex = \"^main-\" }}\n"
        ));
    }
    c
}

const TEMPLATE: &str = r#"{
  "family": "booking-${env}-${service}",
  "executionRoleArn": "arn:aws:iam::${account}:role/booking-load-execution",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "256",
  "memory": "512",
  "containerDefinitions": [{"name": "app", "image": "app", "essential": true}]
}"#;

/// Sets up 50 services in the world's cluster and points its GitOps folder at them.
pub async fn prepare(w: &World) -> Result<()> {
    std::fs::write(w.config_dir.join("harbormaster.toml"), config(&w.topic_arn))?;
    std::fs::write(w.config_dir.join("taskdefs/load.json"), TEMPLATE)?;
    for i in 0..SERVICES {
        let s = service(i);
        w.clients
            .ecr
            .create_repository()
            .repository_name(format!("booking/{s}"))
            .send()
            .await?;
        create_service(&w.clients, &format!("booking-dev-{s}"), &s, "app").await?;
        // ECR sends a push event once the image is stored: each image is in the repository
        // before its events are delivered (the agent checks it before registering).
        for image in 0..IMAGES {
            let manifest = json!({"schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
                           "digest": digest(i, image)},
                "layers": []});
            w.clients
                .ecr
                .put_image()
                .repository_name(format!("booking/{s}"))
                .image_manifest(manifest.to_string())
                .image_digest(digest(i, image))
                .image_tag(format!("main-{image:04}"))
                .send()
                .await?;
        }
    }
    Ok(())
}

/// 1,000 events: every image of every service twice, shuffled (seeded, so a failure repeats).
pub fn events() -> Vec<Value> {
    let t0 = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut events = Vec::with_capacity(EVENTS);
    for s in 0..SERVICES {
        for i in 0..IMAGES {
            for copy in 0..2 {
                let at = t0 + chrono::Duration::seconds(i as i64);
                events.push(json!({
                    "version": "0",
                    // A redelivery keeps its event id; a re-push under another tag would not.
                    "id": format!("load-{s}-{i}-{}", if copy == 0 { "a" } else { "b" }),
                    "detail-type": "ECR Image Action", "source": "aws.ecr",
                    "account": ACCOUNT, "time": at.to_rfc3339(), "region": REGION, "resources": [],
                    "detail": {"result": "SUCCESS", "repository-name": format!("booking/{}", service(s)),
                      "image-digest": digest(s, i), "action-type": "PUSH",
                      "image-tag": format!("main-{i:04}")}
                }));
            }
        }
    }
    // xorshift: no dependency for a shuffle.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..events.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        events.swap(i, (x % (i as u64 + 1)) as usize);
    }
    events
}

/// Delivers every event concurrently, waits out the settle window, ticks, and reports.
pub async fn run(w: &World) -> Result<LoadReport> {
    prepare(w).await?;
    let agent = Arc::new(w.agent());
    let events = events();
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let cpu = || -> Result<(Duration, Duration)> {
        let ours = harbormaster_testkit::cpu_time_of("self")?;
        Ok((ours, w.emulator.cpu_time()?))
    };
    let cpu_before = cpu()?;
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(events.len());
    for e in events {
        let agent = agent.clone();
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            let _slot = gate.acquire_owned().await.expect("open");
            let t = Instant::now();
            let mut retries = 0;
            // Lambda retries an async invocation that errored, twice.
            loop {
                let r = handler::dispatch(&agent, ECR_PUSH, &e, RunOptions::default()).await;
                let failed = match &r {
                    Ok(report) => !report.errors().is_empty(),
                    Err(_) => true,
                };
                if !failed || retries == 2 {
                    return (t.elapsed(), retries, r.map_err(|e| e.to_string()));
                }
                retries += 1;
            }
        }));
    }
    let mut times = Vec::with_capacity(tasks.len());
    let mut redeliveries = 0;
    for t in tasks {
        let (took, retries, r) = t.await?;
        let report = r.map_err(anyhow::Error::msg)?;
        ensure!(
            report.errors().is_empty(),
            "a push failed three deliveries: {:?}",
            report.errors()
        );
        times.push(took);
        redeliveries += retries;
    }
    let decide = started.elapsed();
    let cpu_after = cpu()?;
    times.sort();
    let (start_all, deployments) = settle_and_check(w).await?;
    Ok(LoadReport {
        events: EVENTS,
        services: SERVICES,
        decide,
        delivery_p50: times[times.len() / 2],
        delivery_max: *times.last().expect("events"),
        redeliveries,
        agent_cpu: cpu_after.0.saturating_sub(cpu_before.0),
        emulator_cpu: cpu_after.1.saturating_sub(cpu_before.1),
        start_all,
        deployments,
    })
}

/// After the deliveries: waits out the settle window, ticks (every deployment starts), ticks
/// again (ECS, the emulator, completes at once) and reads each service's result: how long the
/// first tick took, and per service its deployments and whether it runs its newest image.
pub async fn settle_and_check(w: &World) -> Result<(Duration, BTreeMap<String, (usize, bool)>)> {
    // The last service to see its first push settles a window after it, at the latest.
    tokio::time::sleep(Duration::from_secs(SETTLE_SECONDS) + Duration::from_millis(500)).await;
    let t = Instant::now();
    let tick = w.tick().await;
    let start_all = t.elapsed();
    ensure!(
        tick.errors().is_empty(),
        "the tick errored: {:?}",
        tick.errors()
    );
    // ECS (the emulator) completes at once; the next tick records it.
    w.tick().await;

    let mut deployments = BTreeMap::new();
    for s in 0..SERVICES {
        let name = service(s);
        let st = w
            .state_document("dev", &name)
            .await?
            .with_context(|| format!("{name}: no state"))?;
        let ours: Vec<&Value> = st["history"]
            .as_array()
            .map(|h| h.iter().filter(|e| !e["deployment_id"].is_null()).collect())
            .unwrap_or_default();
        let newest = digest(s, IMAGES - 1);
        let image = w.running_image(&name).await?;
        let ok = ours.len() == 1
            && ours[0]["image"]["digest"] == json!(newest)
            && ours[0]["verdict"] == "succeeded"
            && image.ends_with(&newest)
            && st["deployments_started"] == 1
            && w.revisions(&format!("booking-dev-{name}")).await?.len() == 2;
        deployments.insert(name, (ours.len(), ok));
    }
    Ok((start_all, deployments))
}
