//! Each kind of event: which targets it concerns and what they observe.

use serde_json::Value;

use super::hook::hook;
use super::{push_targets, run_reported, target_of, tick, DispatchError, DispatchReport};
use crate::alarm::{AlarmChange, TAG_ENVIRONMENT, TAG_SERVICE};
use crate::bundle::Bundle;
use crate::engine::RunOptions;
use crate::event::{EcrAction, EcsDeploymentDetail, EcsServiceActionDetail, Event, ServiceArn};
use crate::machine::Observation;
use crate::ports::{PortError, Ports};
use crate::target::Target;

pub async fn handle_event<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    value: &Value,
    opts: RunOptions,
) -> Result<DispatchReport, DispatchError> {
    let event = Event::parse(value)?;
    let description = event.describe();
    let cx = Dispatch {
        ports,
        bundle,
        opts,
        description,
    };
    Ok(match event {
        Event::EcrImageAction { id, action, .. } => cx.ecr(id, action).await,
        Event::Scheduled { .. } => cx.described(tick(ports, bundle, opts).await),
        Event::Hook { stage, payload } => {
            cx.described(hook(ports, bundle, stage, &payload, opts).await)
        }
        Event::EcsDeployment {
            id,
            service,
            detail,
        } => cx.ecs_deployment(id, &service, detail).await,
        Event::Alarms(changes) => cx.alarms(changes).await?,
        Event::EcsServiceAction {
            service, detail, ..
        } => cx.service_action(&service, &detail).await,
    })
}

struct Dispatch<'a, P> {
    ports: &'a P,
    bundle: &'a Bundle,
    opts: RunOptions,
    description: String,
}

impl<P: Ports> Dispatch<'_, P> {
    fn described(self, mut r: DispatchReport) -> DispatchReport {
        r.event = self.description;
        r
    }

    fn ignored(self, why: String) -> DispatchReport {
        DispatchReport::ignored(self.description, why)
    }

    async fn run_one(self, target: &Target, obs: Observation) -> DispatchReport {
        let r = run_reported(self.ports, self.bundle, target, vec![obs], self.opts).await;
        DispatchReport::of(self.description, vec![r])
    }

    /// The target of an ECS service, or why the event is not the agent's.
    fn known(&self, service: &ServiceArn) -> Result<Target, String> {
        target_of(self.bundle, service)
            .ok_or_else(|| format!("{service} is not a service the config deploys"))
    }

    async fn ecr(self, id: String, action: EcrAction) -> DispatchReport {
        let image = match action {
            EcrAction::NothingToDeploy(why) => return self.ignored(why),
            EcrAction::Pushed(image) => image,
        };
        let targets = push_targets(self.bundle, &image);
        if targets.is_empty() {
            let tag = image.tag.clone().unwrap_or_default();
            let repo = &image.repository;
            return self.ignored(format!("no environment auto-deploys {repo}:{tag}"));
        }
        let runs = targets.iter().map(|target| {
            let obs = Observation::ImagePushed {
                event_id: id.clone(),
                image: image.clone(),
            };
            run_reported(self.ports, self.bundle, target, vec![obs], self.opts)
        });
        let reports = futures::future::join_all(runs).await;
        DispatchReport::of(self.description, reports)
    }

    async fn ecs_deployment(
        self,
        id: String,
        service: &ServiceArn,
        detail: EcsDeploymentDetail,
    ) -> DispatchReport {
        let target = match self.known(service) {
            Ok(t) => t,
            Err(why) => return self.ignored(why),
        };
        let Some(change) = detail.change() else {
            let name = &detail.event_name;
            return self.ignored(format!("{name}: not a deployment state the agent acts on"));
        };
        let reason = (detail.reason).unwrap_or_else(|| detail.event_name.to_lowercase());
        let obs = Observation::EcsDeploymentChanged {
            event_id: id,
            ecs_deployment_id: detail.deployment_id,
            change,
            reason,
            updated_at: detail.updated_at,
        };
        self.run_one(&target, obs).await
    }

    async fn alarms(self, changes: Vec<AlarmChange>) -> Result<DispatchReport, DispatchError> {
        let mut targets = Vec::new();
        let mut unmapped = Vec::new();
        for change in changes {
            let mapped = match alarm_targets(self.ports, self.bundle, &change).await {
                Ok(mapped) => mapped,
                // A deleted alarm (its tags not found), a refusal: asking again gets the same
                // answer, so the event is answered, not failed into Lambda's retries and the
                // dead-letter queue. A passing fault is retried.
                Err(e) if !e.kind.is_retryable() => {
                    unmapped.push(format!(
                        "{} (its tags could not be read: {e})",
                        change.alarm
                    ));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            if mapped.is_empty() {
                unmapped.push(change.alarm.clone());
            }
            for target in mapped {
                let obs = Observation::AlarmChanged {
                    change: change.clone(),
                };
                let r = run_reported(self.ports, self.bundle, &target, vec![obs], self.opts);
                targets.push(r.await);
            }
        }
        let mut report = DispatchReport::of(self.description, targets);
        report.ignored = (!unmapped.is_empty()).then(|| {
            format!(
                "no service's `alarms` names {}, and no harbormaster:service/environment tags map it",
                unmapped.join(", ")
            )
        });
        Ok(report)
    }

    async fn service_action(
        self,
        service: &ServiceArn,
        detail: &EcsServiceActionDetail,
    ) -> DispatchReport {
        let target = match self.known(service) {
            Ok(t) => t,
            Err(why) => return self.ignored(why),
        };
        if !detail.is_steady_state() {
            let name = &detail.event_name;
            return self.ignored(format!(
                "{name}: the tick follows the rollout; nothing to decide now"
            ));
        }
        // Steady state is the moment to look: the rollout has settled one way or the other.
        self.run_one(&target, Observation::Tick).await
    }
}

/// An alarm speaks for the services whose config names it (or matches it with a pattern);
/// failing that, for the one its `harbormaster:environment` and `harbormaster:service` tags
/// name.
async fn alarm_targets<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    change: &AlarmChange,
) -> Result<Vec<Target>, PortError> {
    let named: Vec<Target> = bundle
        .config
        .targets()
        .filter(|(_, _, t)| t.alarms.speaks_for(&change.alarm))
        .map(|(e, s, _)| Target::new(&e.name, &s.name))
        .collect();
    if !named.is_empty() {
        return Ok(named);
    }
    let Some(arn) = &change.arn else {
        return Ok(Vec::new());
    };
    let tags = ports.alarm_tags(arn).await?;
    Ok(match (tags.get(TAG_ENVIRONMENT), tags.get(TAG_SERVICE)) {
        (Some(e), Some(s)) if bundle.config.target(e, s).is_some() => vec![Target::new(e, s)],
        _ => Vec::new(),
    })
}
