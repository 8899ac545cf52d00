//! The phase of the deployment in flight, and how a document stores it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The phase of the deployment in flight, with what that phase has learned. Pending releases
/// wait in `ServiceState::pending`; finished ones are in the history with their verdict.
///
/// Stored flat in the deployment (`phase`, `task_definition_arn`, `ecs_deployment_id` side by
/// side, as schema 1 always was), so documents written before phases carried their data read
/// the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PhaseDoc", into = "PhaseDoc")]
pub enum Phase {
    /// Intent recorded; RegisterTaskDefinition is being (or may have been) called.
    Registering,
    /// The revision's one-off task (`before_deploy`, a migration) is being started (`task`
    /// unknown: RunTask is being, or may have been, called) or runs; the service is untouched.
    Migrating {
        task_definition_arn: String,
        task: Option<OneOffRun>,
    },
    /// Revision known; UpdateService is being (or may have been) called.
    Updating { task_definition_arn: String },
    /// ECS is rolling the service onto the revision (its deployment id, when ECS said).
    Stabilizing {
        task_definition_arn: String,
        ecs_deployment_id: Option<String>,
    },
}

/// A deployment's one-off task once ECS started it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneOffRun {
    pub task_arn: String,
    pub started_at: DateTime<Utc>,
    /// The container whose command was replaced: its exit code decides.
    pub container: String,
    /// `group:stream` of its logs in CloudWatch Logs, when it logs there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_stream: Option<String>,
}

/// A phase without its data: what the journal and comparisons need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseKind {
    Registering,
    Migrating,
    Updating,
    Stabilizing,
}

impl Phase {
    pub fn kind(&self) -> PhaseKind {
        match self {
            Phase::Registering => PhaseKind::Registering,
            Phase::Migrating { .. } => PhaseKind::Migrating,
            Phase::Updating { .. } => PhaseKind::Updating,
            Phase::Stabilizing { .. } => PhaseKind::Stabilizing,
        }
    }

    /// The revision being rolled out, once registered.
    pub fn task_definition_arn(&self) -> Option<&str> {
        match self {
            Phase::Registering => None,
            Phase::Migrating {
                task_definition_arn,
                ..
            }
            | Phase::Updating {
                task_definition_arn,
            }
            | Phase::Stabilizing {
                task_definition_arn,
                ..
            } => Some(task_definition_arn),
        }
    }

    pub fn ecs_deployment_id(&self) -> Option<&str> {
        match self {
            Phase::Stabilizing {
                ecs_deployment_id, ..
            } => ecs_deployment_id.as_deref(),
            _ => None,
        }
    }
}

impl fmt::Display for PhaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhaseKind::Registering => "registering",
            PhaseKind::Migrating => "migrating",
            PhaseKind::Updating => "updating",
            PhaseKind::Stabilizing => "stabilizing",
        })
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.kind().fmt(f)
    }
}

/// The stored shape of [`Phase`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PhaseDoc {
    phase: PhaseKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_definition_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ecs_deployment_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one_off: Option<OneOffRun>,
}

impl TryFrom<PhaseDoc> for Phase {
    type Error = String;

    fn try_from(d: PhaseDoc) -> Result<Self, String> {
        let arn = || {
            (d.task_definition_arn.clone()).ok_or_else(|| {
                format!("in_flight: phase `{}` needs `task_definition_arn`", d.phase)
            })
        };
        Ok(match d.phase {
            PhaseKind::Registering => Phase::Registering,
            PhaseKind::Migrating => Phase::Migrating {
                task_definition_arn: arn()?,
                task: d.one_off.clone(),
            },
            PhaseKind::Updating => Phase::Updating {
                task_definition_arn: arn()?,
            },
            PhaseKind::Stabilizing => Phase::Stabilizing {
                task_definition_arn: arn()?,
                ecs_deployment_id: d.ecs_deployment_id.clone(),
            },
        })
    }
}

impl From<Phase> for PhaseDoc {
    fn from(p: Phase) -> Self {
        let one_off = match &p {
            Phase::Migrating { task, .. } => task.clone(),
            _ => None,
        };
        PhaseDoc {
            phase: p.kind(),
            task_definition_arn: p.task_definition_arn().map(str::to_owned),
            ecs_deployment_id: p.ecs_deployment_id().map(str::to_owned),
            one_off,
        }
    }
}
