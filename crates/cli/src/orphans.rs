//! Services ECS runs for the agent (tagged `harbormaster:service`) that git no longer names:
//! the agent never deletes one by itself, so `status` and `diff` show them.

use harbormaster_aws::AwsPorts;
use harbormaster_core::ports::{OwnedService, Services};
use harbormaster_core::Bundle;

/// By environment, for `env` (or all) and `service` (or all). Best effort: a listing that
/// fails is said on stderr and hides nothing else.
pub async fn orphaned(
    ports: &AwsPorts,
    bundle: &Bundle,
    env: Option<&str>,
    service: Option<&str>,
) -> Vec<(String, OwnedService)> {
    let mut out = Vec::new();
    for e in bundle.config.environments.values() {
        if env.is_some_and(|x| x != e.name) {
            continue;
        }
        match ports.owned(&e.cluster).await {
            Ok(owned) => out.extend(
                owned
                    .into_iter()
                    .filter(|o| bundle.config.target(&e.name, &o.service).is_none())
                    .filter(|o| service.is_none_or(|s| s == o.service))
                    .map(|o| (e.name.clone(), o)),
            ),
            Err(err) => eprintln!("warning: cannot list the services of {}: {err}", e.cluster),
        }
    }
    out
}

/// The line `status` and `diff` print for one.
pub fn line(env: &str, o: &OwnedService) -> String {
    format!(
        "{env}/{}: ORPHANED: ECS runs {} for the agent, and git no longer names it (never deleted by itself: harbormaster service delete --env {env} --service {})",
        o.service, o.name, o.name
    )
}
