//! Why a person's request (deploy, rollback, approve) was not carried out: a type, so a caller
//! or a test asks which refusal it was, and a person reads the same words as always. Serialised
//! as those words (`reason` in `--json`).

use std::fmt;

use serde::{Serialize, Serializer};

use crate::state::DeploymentId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Approve or reject: nothing of the service is in flight.
    NothingInFlight { service: String },
    /// Approve or reject: the environment gates the service with no approval.
    NoApprovalGate {
        service: String,
        environment: String,
    },
    /// Approve or reject: the deployment was decided already.
    AlreadyDecided {
        deployment: DeploymentId,
        approved: bool,
        by: String,
    },
    /// Roll back: the deployment in flight is itself a rollback.
    AlreadyARollback { deployment: DeploymentId },
    /// Roll back `--to`: a deployment is in flight; back to the last known good first.
    InFlight { deployment: DeploymentId },
    /// Roll back: no release of the service is recorded.
    NothingRecorded,
    /// Roll back `--to`: not a revision the service ran successfully.
    NotARevisionThatRan { revision: String },
    /// Roll back: no earlier good release is recorded.
    NoEarlierGood,
    /// Roll back: the service already runs that revision.
    AlreadyOn { arn: String },
    /// Roll back to a release marked bad, without `--force`.
    RollbackToBad { label: String, why: String },
    /// Deploy a release marked bad, without `--force`.
    MarkedBad { label: String, why: String },
    /// Deploy while git's config (`version`, short) is marked bad: the release would carry it.
    ConfigRolledBack {
        version: String,
        why: String,
        label: String,
    },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NothingInFlight { service } => {
                write!(f, "no deployment of {service} is in flight")
            }
            Refusal::NoApprovalGate {
                service,
                environment,
            } => write!(f, "{service} in {environment} has no approval gate"),
            Refusal::AlreadyDecided {
                deployment,
                approved,
                by,
            } => {
                let word = if *approved { "approved" } else { "rejected" };
                write!(f, "{deployment} was already {word} by {by}")
            }
            Refusal::AlreadyARollback { deployment } => {
                write!(f, "{deployment} is already a rollback")
            }
            Refusal::InFlight { deployment } => write!(
                f,
                "{deployment} is in flight: roll back without --to to return to the last known good first"
            ),
            Refusal::NothingRecorded => {
                f.write_str("no release of this service is recorded: nothing to roll back")
            }
            Refusal::NotARevisionThatRan { revision } => write!(
                f,
                "`{revision}` is not a revision this service ran successfully (see `harbormaster status`)"
            ),
            Refusal::NoEarlierGood => {
                f.write_str("no earlier good release is recorded (see `harbormaster status`)")
            }
            Refusal::AlreadyOn { arn } => write!(f, "the service is already on {arn}"),
            Refusal::RollbackToBad { label, why } => write!(
                f,
                "{label} is marked bad ({why}); roll back to it with --force if you mean it"
            ),
            Refusal::MarkedBad { label, why } => write!(
                f,
                "{label} is marked bad ({why}); deploy it with --force to override"
            ),
            Refusal::ConfigRolledBack {
                version,
                why,
                label,
            } => write!(
                f,
                "held: git's config {version} was rolled back ({why}); {label} deploys when git changes, or with --force"
            ),
        }
    }
}

impl Serialize for Refusal {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
