//! Dispatch: an event in, the affected (environment, service) pairs run, a report out. The Lambda
//! functions and `harbormaster invoke` both call exactly this.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use crate::bundle::Bundle;
use crate::engine::{run, RunOptions, TargetReport};
use crate::event::{EcrAction, Event, EventError};
use crate::image::{Digest, Image};
use crate::machine::{Observation, Outcome};
use crate::ports::{PortError, Ports};

#[derive(Debug, Clone, Serialize)]
pub struct DispatchReport {
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<String>,
    pub targets: Vec<TargetReport>,
}

impl DispatchReport {
    /// Targets whose run ended in an error (worth a retry of the whole event: it is idempotent).
    pub fn errors(&self) -> Vec<String> {
        self.targets
            .iter()
            .filter_map(|t| {
                t.error
                    .as_ref()
                    .map(|e| format!("{}/{}: {e}", t.environment, t.service))
            })
            .collect()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Port(#[from] PortError),
}

pub async fn handle_event<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    value: &Value,
    opts: RunOptions,
) -> Result<DispatchReport, DispatchError> {
    let event = Event::parse(value)?;
    let description = event.describe();
    match event {
        Event::EcrImageAction { id, action, .. } => match action {
            EcrAction::NothingToDeploy(why) => Ok(DispatchReport {
                event: description,
                ignored: Some(why),
                targets: Vec::new(),
            }),
            EcrAction::Pushed(image) => {
                let targets = push_targets(bundle, &image);
                if targets.is_empty() {
                    let tag = image.tag.clone().unwrap_or_default();
                    return Ok(DispatchReport {
                        event: description,
                        ignored: Some(format!(
                            "no environment auto-deploys {}:{tag}",
                            image.repository
                        )),
                        targets: Vec::new(),
                    });
                }
                let runs = targets.iter().map(|(env, svc)| {
                    let obs = Observation::ImagePushed {
                        event_id: id.clone(),
                        image: image.clone(),
                    };
                    run_reported(ports, bundle, env, svc, vec![obs], opts)
                });
                Ok(DispatchReport {
                    event: description,
                    ignored: None,
                    targets: futures::future::join_all(runs).await,
                })
            }
        },
        Event::Scheduled { .. } => {
            let mut r = tick(ports, bundle, opts).await;
            r.event = description;
            Ok(r)
        }
    }
}

/// (environment, service) pairs that deploy this push automatically.
pub fn push_targets(bundle: &Bundle, image: &Image) -> Vec<(String, String)> {
    let tag = image.tag.as_deref().unwrap_or("");
    bundle
        .config
        .targets()
        .filter(|(e, s, t)| {
            e.auto_deploy
                && s.repository == image.repository
                && t.follow.as_ref().is_some_and(|rule| rule.matches(tag))
        })
        .map(|(e, s, _)| (e.name.clone(), s.name.clone()))
        .collect()
}

async fn run_reported<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    observations: Vec<Observation>,
    opts: RunOptions,
) -> TargetReport {
    // Boxed: one target's run is a deep future; boxing here keeps the types of everything that
    // awaits several of them (dispatch, the tick, the Lambda handler) shallow.
    match Box::pin(run(ports, bundle, env, service, observations, opts)).await {
        Ok(r) => r,
        Err(e) => TargetReport {
            environment: env.into(),
            service: service.into(),
            outcome: Outcome::Nothing,
            journal: Vec::new(),
            planned: Vec::new(),
            error: Some(e.to_string()),
        },
    }
}

/// Every minute: reconcile pushes whose events were lost, then follow what is in flight.
pub async fn tick<P: Ports>(ports: &P, bundle: &Bundle, opts: RunOptions) -> DispatchReport {
    let mut found: BTreeMap<(String, String), Vec<Image>> = BTreeMap::new();
    let mut errors: BTreeMap<(String, String), String> = BTreeMap::new();
    if bundle.config.agent.reconcile {
        let mut by_repo: BTreeMap<String, Result<Vec<Image>, PortError>> = BTreeMap::new();
        for (e, s, t) in bundle.config.targets() {
            let Some(rule) = t.follow.as_ref().filter(|_| e.auto_deploy) else {
                continue;
            };
            if !by_repo.contains_key(&s.repository) {
                let images = ports.tagged(&s.repository).await;
                by_repo.insert(s.repository.clone(), images);
            }
            match &by_repo[&s.repository] {
                Ok(images) => {
                    let followed: Vec<Image> = images
                        .iter()
                        .filter(|i| i.tag.as_deref().is_some_and(|tag| rule.matches(tag)))
                        .cloned()
                        .collect();
                    if !followed.is_empty() {
                        found.insert((e.name.clone(), s.name.clone()), followed);
                    }
                }
                Err(err) => {
                    errors.insert(
                        (e.name.clone(), s.name.clone()),
                        format!("reconcile: {err}"),
                    );
                }
            }
        }
    }
    let runs = bundle.config.targets().map(|(e, s, _)| {
        let key = (e.name.clone(), s.name.clone());
        let images = found.get(&key).cloned();
        let error = errors.get(&key).cloned();
        async move {
            let (env, svc) = (&key.0, &key.1);
            // The reconcile, then the tick, on one reading of the state document.
            let mut observations: Vec<Observation> = images
                .map(|images| Observation::ImagesListed { images })
                .into_iter()
                .collect();
            observations.push(Observation::Tick);
            let mut r = run_reported(ports, bundle, env, svc, observations, opts).await;
            if r.error.is_none() {
                r.error = error;
            }
            r
        }
    });
    DispatchReport {
        event: "tick".into(),
        ignored: None,
        targets: futures::future::join_all(runs).await,
    }
}

/// A person's or a build's deploy request: `reference` is a tag, `sha256:…`, `repo:tag` or
/// `repo@sha256:…` (the repository must be the service's).
pub async fn request_deploy<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    reference: &str,
    by: &str,
    opts: RunOptions,
) -> Result<TargetReport, DispatchError> {
    let (_, svc, _) = bundle.config.target(env, service).ok_or_else(|| {
        DispatchError::Usage(format!(
            "service `{service}` is not deployed to environment `{env}` by the config"
        ))
    })?;
    let image = resolve_image(ports, &svc.repository, reference).await?;
    Ok(run_reported(
        ports,
        bundle,
        env,
        service,
        vec![Observation::DeployRequested {
            image,
            by: by.to_owned(),
        }],
        opts,
    )
    .await)
}

pub async fn resolve_image<P: Ports>(
    ports: &P,
    repository: &str,
    reference: &str,
) -> Result<Image, DispatchError> {
    // Strip a registry host and the repository, if given, keeping `:tag` or `@digest`.
    let mut rest = reference;
    if let Some(i) = rest.find(repository) {
        let after = &rest[i + repository.len()..];
        if after.starts_with(':') || after.starts_with('@') {
            rest = &after[1..];
        } else {
            return Err(DispatchError::Usage(format!(
                "`{reference}` is not an image of repository `{repository}`"
            )));
        }
    } else if rest.contains('/') {
        return Err(DispatchError::Usage(format!(
            "`{reference}` is not an image of repository `{repository}`"
        )));
    }
    let rest = rest.trim_start_matches('@');
    if rest.starts_with("sha256:") {
        let digest = Digest::parse(rest).map_err(|e| DispatchError::Usage(e.to_string()))?;
        ports
            .by_digest(repository, &digest)
            .await?
            .ok_or_else(|| DispatchError::Usage(format!("{repository}@{digest} is not in ECR")))
    } else {
        ports.resolve_tag(repository, rest).await?.ok_or_else(|| {
            DispatchError::Usage(format!(
                "tag `{rest}` is not in ECR repository `{repository}`"
            ))
        })
    }
}
