//! ECS's view of a service (DescribeServices, reduced to a snapshot by the adapter) read as
//! what it means for the agent's deployment.

use crate::machine::Rollout;
use crate::ports::{RolloutState, ServiceSnapshot, StoppedTask};

/// A failed rollout's reason with what explains it: stopped tasks' reasons and exit codes.
pub(super) fn with_stopped_tasks(reason: String, stopped: &[StoppedTask]) -> String {
    if stopped.is_empty() {
        return reason;
    }
    let tasks: Vec<String> = stopped.iter().take(3).map(StoppedTask::describe).collect();
    format!("{reason} (stopped tasks: {})", tasks.join(" | "))
}

/// What ECS's view of the service means for our deployment.
pub fn rollout_of(
    snap: &ServiceSnapshot,
    arn: &str,
    ecs_id: Option<&str>,
    previous: Option<&str>,
) -> Rollout {
    let ours = snap
        .deployments
        .iter()
        .find(|d| Some(d.id.as_str()) == ecs_id)
        .or_else(|| snap.deployments.iter().find(|d| d.task_definition == arn));
    let recent_events = || {
        let ev: Vec<&str> = snap.events.iter().take(3).map(String::as_str).collect();
        if ev.is_empty() {
            String::new()
        } else {
            format!(" (service events: {})", ev.join(" | "))
        }
    };
    match ours {
        Some(d) => match d.rollout_state {
            Some(RolloutState::Failed) => {
                let reason = format!(
                    "{}{}",
                    d.rollout_reason
                        .clone()
                        .unwrap_or_else(|| "ECS reported the rollout FAILED".into()),
                    recent_events()
                );
                match snap.primary().filter(|p| p.task_definition != arn) {
                    Some(p) => Rollout::RolledBack {
                        reason,
                        to: p.task_definition.clone(),
                    },
                    None => Rollout::Failed { reason },
                }
            }
            Some(RolloutState::Completed) if d.is_primary() => Rollout::Completed,
            // No longer primary and not failed: a newer deployment from elsewhere took over.
            _ if !d.is_primary() => Rollout::Replaced {
                by: snap
                    .primary()
                    .map(|p| p.task_definition.clone())
                    .unwrap_or_else(|| snap.task_definition.clone()),
            },
            // Without rollout state (older ECS answers): done when alone and at strength.
            None if snap.deployments.len() == 1 && d.running >= d.desired => Rollout::Completed,
            _ => Rollout::InProgress,
        },
        None if snap.task_definition == arn => Rollout::Completed,
        None if previous == Some(snap.task_definition.as_str()) => Rollout::RolledBack {
            reason: format!("ECS no longer lists the deployment{}", recent_events()),
            to: snap.task_definition.clone(),
        },
        None => Rollout::Replaced {
            by: snap.task_definition.clone(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::{DeploymentStatus, EcsDeployment};

    /// ECS's words, as the adapter translates them.
    fn dep(id: &str, status: &str, td: &str, state: &str) -> EcsDeployment {
        EcsDeployment {
            id: id.into(),
            status: match status {
                "PRIMARY" => DeploymentStatus::Primary,
                "ACTIVE" => DeploymentStatus::Active,
                _ => DeploymentStatus::Inactive,
            },
            task_definition: td.into(),
            rollout_state: Some(match state {
                "COMPLETED" => RolloutState::Completed,
                "FAILED" => RolloutState::Failed,
                _ => RolloutState::InProgress,
            }),
            ..Default::default()
        }
    }

    fn snap(deployments: Vec<EcsDeployment>) -> ServiceSnapshot {
        ServiceSnapshot {
            status: Default::default(),
            network: None,
            task_definition: deployments[0].task_definition.clone(),
            desired_count: 1,
            running_count: 1,
            pending_count: 0,
            deployments,
            events: vec!["(service web) has started 1 tasks".into()],
            settings: Default::default(),
        }
    }

    #[test]
    fn rollout_states_map_to_outcomes() {
        let ours = "td:2";
        let cases = [
            (
                snap(vec![dep("d2", "PRIMARY", ours, "COMPLETED")]),
                "completed",
            ),
            (
                snap(vec![
                    dep("d2", "PRIMARY", ours, "IN_PROGRESS"),
                    dep("d1", "ACTIVE", "td:1", "COMPLETED"),
                ]),
                "in_progress",
            ),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:1", "COMPLETED"),
                    dep("d2", "ACTIVE", ours, "FAILED"),
                ]),
                "rolled_back",
            ),
            (snap(vec![dep("d2", "PRIMARY", ours, "FAILED")]), "failed"),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:9", "IN_PROGRESS"),
                    dep("d2", "ACTIVE", ours, "IN_PROGRESS"),
                ]),
                "replaced",
            ),
            (
                snap(vec![
                    dep("d3", "PRIMARY", "td:9", "IN_PROGRESS"),
                    dep("d2", "ACTIVE", ours, "COMPLETED"),
                ]),
                "replaced",
            ),
            (
                snap(vec![dep("d1", "PRIMARY", "td:1", "COMPLETED")]),
                "rolled_back",
            ),
            (
                snap(vec![dep("d9", "PRIMARY", "td:9", "COMPLETED")]),
                "replaced",
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            let got = rollout_of(s, ours, Some("d2"), Some("td:1"));
            let word = serde_json::to_value(&got).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_owned();
            assert_eq!(&word, want, "case {i}: {got:?}");
        }
        let failed = rollout_of(
            &snap(vec![dep("d2", "PRIMARY", ours, "FAILED")]),
            ours,
            Some("d2"),
            None,
        );
        assert!(
            matches!(failed, Rollout::Failed { reason } if reason.contains("has started 1 tasks"))
        );
    }
}
