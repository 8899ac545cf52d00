//! Every minute: reconcile pushes whose events were lost, then follow what is in flight, then
//! size the workers, then tag the images each service needs so ECR's lifecycle rules keep them.

use std::collections::BTreeMap;

use super::{run_reported, DispatchReport};
use crate::bundle::Bundle;
use crate::engine::RunOptions;
use crate::image::Image;
use crate::machine::{Observation, Promotion};
use crate::ports::{PortError, Ports};
use crate::target::Target;

pub async fn tick<P: Ports>(ports: &P, bundle: &Bundle, opts: RunOptions) -> DispatchReport {
    let (found, errors) = if bundle.config.agent.reconcile {
        listed(ports, bundle).await
    } else {
        Default::default()
    };
    let runs = bundle.config.targets().map(|(e, s, t)| {
        let target = Target::new(&e.name, &s.name);
        let images = found.get(&target).cloned();
        let error = errors.get(&target).cloned();
        let scaled = t.scaling.is_some();
        let source = e.promote_from.clone();
        async move {
            let promotion = match &source {
                Some(from) => Some(promotion(ports, bundle, from, &target.service).await),
                None => None,
            };
            // The reconcile, then the tick, on one reading of the state document.
            let mut observations: Vec<Observation> = images
                .map(|images| Observation::ImagesListed { images })
                .into_iter()
                .collect();
            observations.push(Observation::Tick);
            // Then git: a config changed for the image the service runs is a release.
            observations.push(Observation::ConfigCheck { promotion });
            // After the deployment's turn, so a release that just started holds the scaler.
            if scaled {
                observations.push(Observation::ScaleTick);
            }
            // Last: what runs now, after this tick's releases, is what needs keeping.
            observations.push(Observation::ProtectTick);
            let mut r = run_reported(ports, bundle, &target, observations, opts).await;
            if r.error.is_none() {
                r.error = error;
            }
            r
        }
    });
    DispatchReport::of("tick".into(), futures::future::join_all(runs).await)
}

/// Where `state` (of `service` in `env`) stands with the config `bundle` carries, at the
/// clock's now: the same admission the tick's config check passes (`status`, `diff`).
pub async fn config_standing<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    env: &str,
    service: &str,
    state: &crate::state::ServiceState,
) -> crate::machine::ConfigStanding {
    let Some(policy) = bundle.policy(env, service) else {
        return crate::machine::ConfigStanding::Unknown;
    };
    let promotion = match &policy.promote_from {
        Some(from) => Some(promotion(ports, bundle, from, service).await),
        None => None,
    };
    crate::machine::config_standing(state, ports.now(), &policy, promotion)
}

/// How the published bundle stands for `service` in `source`, read from its state document
/// there (unreadable: not yet).
pub async fn promotion<P: Ports>(
    ports: &P,
    bundle: &Bundle,
    source: &str,
    service: &str,
) -> Promotion {
    let key = crate::state::ServiceState::key(source, service);
    match ports.load(&key).await {
        Ok(state) => Promotion::of(
            source,
            state.map(|(s, _)| s).as_ref(),
            bundle.published.as_deref(),
        ),
        Err(e) => Promotion::NotYet(format!(
            "the state of {service} in `{source}` cannot be read: {e}"
        )),
    }
}

type Listed = (BTreeMap<Target, Vec<Image>>, BTreeMap<Target, String>);

/// Each auto-deploying target's followed images in ECR (each repository read once), or why
/// they could not be read.
async fn listed<P: Ports>(ports: &P, bundle: &Bundle) -> Listed {
    let (mut found, mut errors) = Listed::default();
    let mut by_repo: BTreeMap<String, Result<Vec<Image>, PortError>> = BTreeMap::new();
    for (e, s, t) in bundle.config.targets() {
        let Some(rule) = t.follow.as_ref().filter(|_| e.auto_deploy) else {
            continue;
        };
        if !by_repo.contains_key(&s.repository) {
            let images = ports.tagged(&s.repository).await;
            by_repo.insert(s.repository.clone(), images);
        }
        let target = Target::new(&e.name, &s.name);
        match &by_repo[&s.repository] {
            Ok(images) => {
                let followed: Vec<Image> = images
                    .iter()
                    .filter(|i| i.tag.as_deref().is_some_and(|tag| rule.matches(tag)))
                    // The agent's own tags, keeping what runs: never a release.
                    .filter(|i| {
                        !(i.tag.as_deref())
                            .is_some_and(|t| t.starts_with(crate::retention::PROTECTION_PREFIX))
                    })
                    .cloned()
                    .collect();
                if !followed.is_empty() {
                    found.insert(target, followed);
                }
            }
            Err(err) => {
                errors.insert(target, format!("reconcile: {err}"));
            }
        }
    }
    (found, errors)
}

/// Whether the tick at `now` is the one each hour that reports a lasting problem of `target`
/// (a corrupt state document) as an error: the tick runs every minute, and a person needs to
/// hear of it, not sixty times an hour. Each target has its own minute.
pub fn hourly_report(now: chrono::DateTime<chrono::Utc>, target: &str) -> bool {
    use chrono::Timelike;
    let hash = crate::text::fingerprint(target.as_bytes());
    let n = u64::from_str_radix(&hash[..8], 16).unwrap_or_default();
    u64::from(now.minute()) == n % 60
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_lasting_problem_is_reported_once_an_hour() {
        use chrono::TimeZone;
        let hour = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 10, 0, 0).unwrap();
        let minutes = (0..60)
            .filter(|m| super::hourly_report(hour + chrono::Duration::minutes(*m), "dev/web"))
            .count();
        assert_eq!(minutes, 1);
    }
}
