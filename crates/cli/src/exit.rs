//! The CLI's exit codes, one table (the README's "Exit codes" lists the same):
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | done: everything asked went through |
//! | 1 | a deployment failed or was rolled back, a hook failed it, the request was refused (a release marked bad, nothing to approve, nothing to roll back to), `run`'s task exited non-zero, or `diff` found a difference |
//! | 2 | usage or config error, an AWS error that stopped the command, or a problem no retry fixes (a state document that cannot be read, a backlog that cannot be measured) |
//! | 3 | a step was interrupted by a retryable AWS error: the tick carries it on |
//! | 4 | `deploy --wait` or `run` gave up waiting (the deployment or the task goes on) |

use std::process::ExitCode;

use harbormaster_core::engine::TargetReport;
use harbormaster_core::machine::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Done,
    Failed,
    Error,
    Retryable,
    TimedOut,
}

impl Exit {
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::Failed => 1,
            Exit::Error => 2,
            Exit::Retryable => 3,
            Exit::TimedOut => 4,
        }
    }

    /// 1 when a deployment failed or was rolled back; 3 when a step was interrupted; else 0.
    pub fn of_targets(targets: &[TargetReport]) -> Exit {
        let failed = targets.iter().any(|t| match &t.outcome {
            Outcome::Finished { verdict, .. } => verdict.is_failure(),
            // A release marked bad: a CI step that asked for it must not pass.
            Outcome::Refused { .. } => true,
            _ => false,
        });
        if failed {
            Exit::Failed
        } else if targets.iter().any(|t| t.error.is_some() && t.retry) {
            Exit::Retryable
        } else if targets.iter().any(|t| t.error.is_some()) {
            // A corrupt state document, an unreadable backlog: no retry fixes it.
            Exit::Error
        } else {
            Exit::Done
        }
    }

    /// A person's request (approve, reject, rollback): 3 when a step was interrupted; 1 when
    /// it was refused (nothing waiting for the decision, nothing to roll back: scripts see
    /// it), or as [`Exit::of_targets`].
    pub fn of_request(report: &TargetReport) -> Exit {
        if report.error.is_some() {
            Exit::Retryable
        } else {
            Exit::of_targets(std::slice::from_ref(report))
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}
