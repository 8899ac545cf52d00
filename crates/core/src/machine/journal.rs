//! The journal: one typed line per state transition. `Display` keeps the words the logs and
//! tests have always read (`pending->registering`), and a typo no longer compiles.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::image::Digest;
use crate::state::{DeploymentId, PhaseKind, Verdict};
use crate::strategy::Stage;

/// Where a release or a deployment stands, as the journal names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    /// A release has just come in.
    Received,
    /// Waiting for the deployment in flight to finish, or for its guard alarms to be read.
    Pending,
    /// Waiting for the settle window (`agent.settle_seconds`) to pass.
    Settling,
    /// Held while a guard alarm is in ALARM.
    Held,
    /// A rollback deployment begins.
    Rollback,
    /// Worker scaling.
    Scaling,
    /// An image's protection from ECR's lifecycle rules.
    Protection,
    Phase(PhaseKind),
    Verdict(Verdict),
    /// ECS called the lifecycle hook at this stage.
    Stage(Stage),
    /// Every gate at this stage passed.
    Passed(Stage),
    AwaitingApproval,
    Approved,
    Rejected,
    GateFailed,
    /// A worker's task count.
    Tasks(u32),
    /// Running what the agent deployed.
    InSync,
    /// Running another revision: changed outside git.
    Drifted,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Point::Received => f.write_str("received"),
            Point::Pending => f.write_str("pending"),
            Point::Settling => f.write_str("settling"),
            Point::Held => f.write_str("held"),
            Point::Rollback => f.write_str("rollback"),
            Point::Scaling => f.write_str("scaling"),
            Point::Protection => f.write_str("protection"),
            Point::InSync => f.write_str("in sync"),
            Point::Drifted => f.write_str("drifted"),
            Point::Phase(p) => p.fmt(f),
            Point::Verdict(v) => v.fmt(f),
            Point::Stage(s) => s.fmt(f),
            Point::Passed(s) => write!(f, "{s} passed"),
            Point::AwaitingApproval => f.write_str("awaiting approval"),
            Point::Approved => f.write_str("approved"),
            Point::Rejected => f.write_str("rejected"),
            Point::GateFailed => f.write_str("gate failed"),
            Point::Tasks(n) => write!(f, "{n} tasks"),
        }
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl From<PhaseKind> for Point {
    fn from(p: PhaseKind) -> Self {
        Point::Phase(p)
    }
}

impl From<Verdict> for Point {
    fn from(v: Verdict) -> Self {
        Point::Verdict(v)
    }
}

/// One line of the journal: a state transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub from: Point,
    pub to: Point,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

impl fmt::Display for Transition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.from, self.to)?;
        if !self.note.is_empty() {
            write!(f, " ({})", self.note)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_read_as_the_journal_always_did() {
        let cases = [
            (Point::Received, "received"),
            (Point::Phase(PhaseKind::Registering), "registering"),
            (Point::Verdict(Verdict::RollbackFailed), "rollback failed"),
            (
                Point::Passed(Stage::PostTestTrafficShift),
                "POST_TEST_TRAFFIC_SHIFT passed",
            ),
            (Point::AwaitingApproval, "awaiting approval"),
            (Point::Tasks(3), "3 tasks"),
        ];
        for (point, words) in cases {
            assert_eq!(point.to_string(), words);
            assert_eq!(serde_json::to_value(point).unwrap(), words);
        }
    }
}
