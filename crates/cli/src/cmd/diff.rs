//! `harbormaster diff`: what git says each service runs against what it runs, field by field
//! (`harbormaster_core::diff` says what counts as a difference). Exit 0 when every service is
//! as git says, 1 when one differs (or is not in ECS yet, or is orphaned: in ECS for the agent
//! but no longer in git), 2 on error: a CI step can gate on it.

use anyhow::{Context as _, Result};
use harbormaster_core::diff::Change;
use harbormaster_core::dispatch::config_standing;
use harbormaster_core::engine::{render_for, target_with, Outputs};
use harbormaster_core::image::Digest;
use harbormaster_core::machine::{short_version, ConfigStanding};
use harbormaster_core::ports::{ErrorKind, LiveSettings, ServiceStatus, Services, TaskDefinitions};
use serde_json::{json, Value};

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// The environment to compare, as named in harbormaster.toml.
    #[arg(long)]
    env: String,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let mut reports = Vec::new();
        // In git, not in ECS: the next deployment creates them.
        let mut absent = Vec::new();
        let mut differs = false;
        for (e, s, _) in bundle.config.targets() {
            if e.name != self.env || self.service.as_ref().is_some_and(|x| *x != s.name) {
                continue;
            }
            match compare(&ports, &bundle, &e.name, &s.name).await? {
                Some(r) => {
                    let (_, _, _, changes, config) = &r;
                    // Git's config not being what runs is a difference too (a setting outside
                    // the task definition, say).
                    let pending = matches!(config, ConfigStanding::Pending { .. });
                    differs |= !changes.is_empty() || pending;
                    reports.push(r);
                }
                None => {
                    differs = true;
                    absent.push((e.name.clone(), s.name.clone()));
                }
            }
        }
        anyhow::ensure!(
            !reports.is_empty() || !absent.is_empty(),
            "no service matches --env/--service in the config"
        );
        let orphaned =
            crate::orphans::orphaned(&ports, &bundle, Some(&self.env), self.service.as_deref())
                .await;
        differs |= !orphaned.is_empty();
        if cx.json {
            let mut v: Vec<Value> = reports
                .iter()
                .map(|(e, s, arn, c, config)| json!({"environment": e, "service": s, "running": arn, "changes": c, "config": config}))
                .collect();
            v.extend(
                absent
                    .iter()
                    .map(|(e, s)| json!({"environment": e, "service": s, "missing": true})),
            );
            v.extend(orphaned.iter().map(|(e, o)| {
                json!({"environment": e, "service": o.service, "ecs_service": o.name, "orphaned": true})
            }));
            out!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for (e, s, arn, changes, config) in &reports {
                match changes.as_slice() {
                    [] => out!("{e}/{s}: as git says ({arn})"),
                    c => {
                        out!("{e}/{s}: differs from git (running {arn})");
                        for change in c {
                            out!("  {change}");
                        }
                    }
                }
                // Whether the tick releases git's config here by itself, and if not, why.
                if let ConfigStanding::Pending { version, held, .. } = config {
                    let what = held.as_deref().unwrap_or("the next tick releases it");
                    out!("  config {}: {what}", short_version(version));
                }
            }
            for (e, s) in &absent {
                out!("{e}/{s}: not in ECS: its next deployment creates it");
            }
            for (e, o) in &orphaned {
                out!("{}", crate::orphans::line(e, o));
            }
        }
        Ok(if differs { Exit::Failed } else { Exit::Done })
    }
}

/// One service compared: (environment, service, the revision it runs, what differs, where it
/// stands with git's config).
type Compared = (String, String, String, Vec<Change>, ConfigStanding);

/// What git would change of `service` in `env`; `None`: it is not in ECS (or not active).
async fn compare(
    ports: &harbormaster_aws::AwsPorts,
    bundle: &harbormaster_core::Bundle,
    env: &str,
    service: &str,
) -> Result<Option<Compared>> {
    // What the next UpdateService would send (the bootstrap's outputs only where the config
    // needs them, as a deployment reads them).
    let t = target_with(ports, bundle, env, service, Outputs::IfNeeded).await?;
    let running = match ports.describe(&t.cluster, &t.service).await {
        Ok(r) if r.status == ServiceStatus::Active => r,
        Ok(_) => return Ok(None),
        Err(err) if err.kind == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let arn = running.task_definition;
    let body = ports.describe_body(&arn).await?;
    // The image it runs: what git's definition is rendered with, so the image is no
    // difference (a push is, and it has its own path).
    let digest =
        running_digest(&body).with_context(|| format!("{arn} runs no image pinned by digest"))?;
    let desired = render_for(ports, bundle, env, service, &digest, "diff").await?;
    let mut changes = harbormaster_core::diff::task_definition(&desired.body, &body);
    changes.extend(harbormaster_core::diff::service(
        &LiveSettings::sent(&t),
        t.settings.desired_count,
        &running.settings,
        running.desired_count,
    ));
    let standing = standing(ports, bundle, env, service).await;
    Ok(Some((
        env.to_owned(),
        service.to_owned(),
        arn,
        changes,
        standing,
    )))
}

/// Where the target stands with git's config (pending, and why it waits), from its state
/// document; unknown when it cannot be read.
async fn standing(
    ports: &harbormaster_aws::AwsPorts,
    bundle: &harbormaster_core::Bundle,
    env: &str,
    service: &str,
) -> ConfigStanding {
    use harbormaster_core::ports::StateStore;
    let key = harbormaster_core::state::ServiceState::key(env, service);
    match ports.load(&key).await {
        Ok(Some((state, _))) => config_standing(ports, bundle, env, service, &state).await,
        _ => ConfigStanding::Unknown,
    }
}

fn running_digest(described: &Value) -> Option<Digest> {
    let td = described.get("taskDefinition").unwrap_or(described);
    td["containerDefinitions"]
        .as_array()?
        .iter()
        .filter_map(|c| c["image"].as_str())
        .find_map(|image| {
            image
                .split_once('@')
                .and_then(|(_, d)| Digest::parse(d).ok())
        })
}
