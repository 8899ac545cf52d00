//! The local playground. `cargo xtask emulator`: the emulator in the foreground, with dev
//! bootstrapped from `examples/booking` as `harbormaster-bootstrap apply --env dev` makes it,
//! and a file of `export` lines that point the AWS CLI, the SDK and harbormaster at it.
//! `cargo xtask push <service> <tag>`: what a `docker push` and EventBridge would do there.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler::{self, ECR_PUSH, TICK};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{fixture, Base, World};
use harbormaster_testkit::{Emulator, MINISTACK};

use crate::demo::{print_answer, Timeline};

/// Where the running playground's exports are: `. ~/.cache/harbormaster/emulator.env`.
pub(crate) fn env_file() -> PathBuf {
    crate::cache_dir().join("emulator.env")
}

pub(crate) async fn emulator() -> Result<()> {
    let t = Timeline(Instant::now());
    t.say("starting the local AWS emulator (the first run also creates its venv)…");
    let emulator = Emulator::start()?;
    t.say(format!("{MINISTACK} listening on {}", emulator.endpoint));
    crate::demo::bootstrap(&t, &emulator).await?;
    // The team's part: the Django secret, an SQS inbox on the topic. The services are not
    // created: the first push does it.
    let world = World::on(emulator, Base::Bootstrapped).await?;
    let exports: String = world
        .cli_env()
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .collect();
    let file = env_file();
    std::fs::create_dir_all(file.parent().context("cache dir")?)?;
    std::fs::write(&file, &exports)?;
    println!(
        "\nThese point the AWS CLI, the SDK and harbormaster at it (saved in {}):\n\n{exports}",
        file.display()
    );
    println!("In another shell: . {}", file.display());
    println!("then: cargo xtask push web main-abc1234   and   harbormaster status --env dev");
    println!("\nready; Ctrl-C stops it.");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for signal in [
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ] {
        signal_hook::flag::register(signal, stop.clone())?;
    }
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Stopped by a signal: the emulator and the stand-ins go with the world, the exports with
    // the file, so nothing of the playground is left running or pointing at a closed port.
    drop(world);
    let _ = std::fs::remove_file(&file);
    println!("stopped");
    Ok(())
}

/// Pushes a fake image (PutImage, no Docker) to the service's repository, delivers ECR's push
/// event through the `ecr-push` dispatch, then stands in for the every-minute tick until the
/// deployment ends.
pub(crate) async fn push(args: &[String]) -> Result<()> {
    let [service, tag] = args else {
        bail!("usage: cargo xtask push <service> <tag>   (e.g. cargo xtask push web main-abc1234)");
    };
    load_playground_env()?;
    let t = Timeline(Instant::now());
    let agent = harbormaster_aws::Agent::from_env().await?;
    let (_, bundle) = agent.prepare().await?;
    let Some(s) = bundle.config.services.get(service.as_str()) else {
        let known: Vec<&str> = bundle.config.services.keys().map(String::as_str).collect();
        bail!(
            "no service `{service}` in the config (it has: {})",
            known.join(", ")
        );
    };
    let repository = s.repository.clone();
    let sdk = harbormaster_aws::sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let digest = harbormaster_e2e::push_fake_image(&ecr, &repository, tag)
        .await
        .context("PutImage (is `cargo xtask emulator` running?)")?;
    t.say(format!("pushed {repository}:{tag} → {digest}"));
    let id = format!("playground-{}", uuid_like());
    let event = harbormaster_e2e::ecr_push_event(&id, &repository, tag, &digest);
    t.say("EventBridge \"ECR Image Action\" → ecr-push");
    let report = handler::dispatch(&agent, ECR_PUSH, &event, RunOptions::default()).await?;
    if let Some(why) = &report.ignored {
        t.say(format!("ignored: {why}"));
        return Ok(());
    }
    if report.targets.is_empty() {
        t.say(format!(
            "no environment follows {tag} for {service}: nothing deployed (see its `follow` rules)"
        ));
        return Ok(());
    }
    print_answer(&t, &serde_json::to_value(&report)?);
    for _ in 0..10 {
        if !in_flight(&agent, service).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        t.say("tick (EventBridge's schedule, every minute in AWS)");
        let tick = handler::dispatch(
            &agent,
            TICK,
            &fixture("scheduled.json"),
            RunOptions::default(),
        )
        .await?;
        print_answer(&t, &serde_json::to_value(&tick)?);
    }
    bail!("{service}'s deployment had not ended after 10 ticks: see `harbormaster status`")
}

/// Whether any environment's deployment of `service` is still in flight or pending.
async fn in_flight(agent: &harbormaster_aws::Agent, service: &str) -> Result<bool> {
    use harbormaster_core::ports::StateStore;
    let (ports, bundle) = agent.prepare().await?;
    for env in bundle.config.environments.keys() {
        if bundle.config.target(env, service).is_none() {
            continue;
        }
        let key = harbormaster_core::state::ServiceState::key(env, service);
        if let Some((doc, _)) = ports.load(&key).await? {
            if doc.in_flight.is_some() || doc.pending.is_some() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The running playground's exports, unless the environment already points somewhere.
fn load_playground_env() -> Result<()> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        return Ok(());
    }
    let file = env_file();
    let text = std::fs::read_to_string(&file).with_context(|| {
        format!(
            "{} is missing: start the playground first (`cargo xtask emulator`)",
            file.display()
        )
    })?;
    for line in text.lines() {
        if let Some((k, v)) = line
            .strip_prefix("export ")
            .and_then(|kv| kv.split_once('='))
        {
            std::env::set_var(k, v.trim_matches('\''));
        }
    }
    Ok(())
}

/// An event id no other push of this machine has (EventBridge's are UUIDs).
fn uuid_like() -> String {
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default();
    format!("{nanos:x}-{:x}", std::process::id())
}
