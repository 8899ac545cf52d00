//! Notification text: a subject and body a person reads in an inbox or chat, a JSON body for
//! machines, and message attributes for SNS subscription filters.
//!
//! Only identifiers go in: image references, revision ARNs, deployment ids and reasons. Nothing
//! here ever holds a variable's or a secret's value.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::image::Image;

mod chat;
mod subject;

pub use subject::Subject;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeKind {
    Started,
    Succeeded,
    Failed,
    RolledBack,
    /// A deployment waits at an approval gate.
    ApprovalNeeded,
    /// A push of a release marked bad was not deployed.
    Ignored,
    /// An alarm the agent did not roll back for, and why.
    Alarm,
    /// Putting the service back on its last known good failed: urgent.
    RollbackFailed,
    /// A worker sits at its maximum task count with the backlog still growing.
    AtMax,
    /// The service runs another revision than the agent deployed (a change outside git).
    Drift,
    /// An image the service needs could not be protected from ECR's lifecycle rules.
    Unprotected,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    /// `<deployment id>/<kind>`: delivery is at least once, so subscribers can drop a repeat.
    pub id: String,
    pub kind: NoticeKind,
    pub project: String,
    pub environment: String,
    pub service: String,
    /// What it is about (a deployment, mostly): the thread it belongs to.
    #[serde(rename = "deployment_id")]
    pub subject: Subject,
    pub image: Image,
    pub task_definition_arn: Option<String>,
    /// The release this one replaces (last known good), as a label.
    pub previous: Option<String>,
    pub reason: Option<String>,
    pub at: DateTime<Utc>,
    /// An invocation is publishing it until then; others leave it alone (`engine/outbox.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claimed_until: Option<DateTime<Utc>>,
    /// Publish attempts so far.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl NoticeKind {
    /// The notice that closes a deployment with `verdict`.
    pub fn of_verdict(verdict: crate::state::Verdict) -> Self {
        use crate::state::Verdict;
        match verdict {
            Verdict::Succeeded => NoticeKind::Succeeded,
            Verdict::RolledBack => NoticeKind::RolledBack,
            Verdict::RollbackFailed => NoticeKind::RollbackFailed,
            Verdict::Failed | Verdict::Superseded => NoticeKind::Failed,
        }
    }

    pub fn word(self) -> &'static str {
        match self {
            NoticeKind::Started => "started",
            NoticeKind::Succeeded => "succeeded",
            NoticeKind::Failed => "failed",
            NoticeKind::RolledBack => "rolled_back",
            NoticeKind::ApprovalNeeded => "approval_needed",
            NoticeKind::Ignored => "ignored",
            NoticeKind::Alarm => "alarm",
            NoticeKind::RollbackFailed => "rollback_failed",
            NoticeKind::AtMax => "at_max",
            NoticeKind::Drift => "drift",
            NoticeKind::Unprotected => "unprotected",
        }
    }
}

impl Notification {
    pub fn severity(&self) -> Severity {
        match self.kind {
            NoticeKind::Started | NoticeKind::Succeeded => Severity::Info,
            NoticeKind::ApprovalNeeded
            | NoticeKind::Ignored
            | NoticeKind::Alarm
            | NoticeKind::AtMax
            | NoticeKind::Drift
            | NoticeKind::Unprotected => Severity::Warning,
            NoticeKind::Failed | NoticeKind::RolledBack | NoticeKind::RollbackFailed => {
                Severity::Critical
            }
        }
    }

    fn what(&self) -> String {
        self.image
            .tag
            .clone()
            .unwrap_or_else(|| self.image.digest.short().to_owned())
    }

    /// SNS subjects are ASCII, at most 100 characters, with no line breaks.
    pub fn subject(&self) -> String {
        let verb = match self.kind {
            NoticeKind::Started => "deploying",
            NoticeKind::Succeeded => "deployed",
            NoticeKind::Failed => "FAILED to deploy",
            NoticeKind::RolledBack => "ROLLED BACK",
            NoticeKind::ApprovalNeeded => "APPROVAL NEEDED for",
            NoticeKind::Ignored => "ignored a push of",
            NoticeKind::Alarm => "ALARM while running",
            NoticeKind::RollbackFailed => "ROLLBACK FAILED from",
            NoticeKind::AtMax => "AT MAX TASKS while running",
            NoticeKind::Drift => "DRIFT from",
            NoticeKind::Unprotected => "NOT PROTECTED from expiry:",
        };
        let s = format!(
            "[{} {}] {}: {} {}",
            self.project,
            self.environment,
            self.service,
            verb,
            self.what()
        );
        let mut s: String = s
            .chars()
            .map(|c| {
                if c.is_ascii() && !c.is_ascii_control() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        s.truncate(100);
        s
    }

    /// What happened, in one sentence.
    fn headline(&self) -> String {
        match self.kind {
            NoticeKind::Started => format!(
                "Deployment of {} to {} started.",
                self.image.label(),
                self.environment
            ),
            NoticeKind::Succeeded => format!(
                "{} is now running {} in {}.",
                self.service,
                self.image.label(),
                self.environment
            ),
            NoticeKind::Failed => format!(
                "Deployment of {} to {} failed.",
                self.image.label(),
                self.environment
            ),
            NoticeKind::RolledBack => format!(
                "Deployment of {} to {} was rolled back.",
                self.image.label(),
                self.environment
            ),
            NoticeKind::ApprovalNeeded => format!(
                "Deployment of {} to {} is waiting for approval.",
                self.image.label(),
                self.environment
            ),
            NoticeKind::Ignored => format!(
                "A push of {} was not deployed to {}: it is marked bad.",
                self.image.label(),
                self.environment
            ),
            NoticeKind::Alarm => format!(
                "An alarm fired for {} in {} (running {}); no rollback.",
                self.service,
                self.environment,
                self.image.label()
            ),
            NoticeKind::RollbackFailed => format!(
                "URGENT: rolling {} in {} back from {} FAILED; a person must act.",
                self.service,
                self.environment,
                self.image.label()
            ),
            NoticeKind::AtMax => format!(
                "{} in {} is at its maximum task count and its backlog keeps growing.",
                self.service, self.environment
            ),
            NoticeKind::Drift => format!(
                "{} in {} runs another revision than the one the agent deployed ({}): it was changed outside git.",
                self.service,
                self.environment,
                self.image.label()
            ),
            NoticeKind::Unprotected => format!(
                "{} in {} needs {}, which the agent could not protect from ECR's lifecycle rules.",
                self.service,
                self.environment,
                self.image.label()
            ),
        }
    }

    pub fn text(&self) -> String {
        let mut lines = vec![self.headline()];
        if let Some(r) = &self.reason {
            // Reasons quote events (alarm reasons, ECS messages): shown escaped.
            lines.push(format!("Why: {}", crate::text::shown(r)));
        }
        lines.push(String::new());
        lines.push(format!(
            "Service:     {} ({})",
            self.service, self.environment
        ));
        lines.push(format!(
            "Image:       {}@{}",
            self.image.repository, self.image.digest
        ));
        if let Some(arn) = &self.task_definition_arn {
            lines.push(format!("Revision:    {arn}"));
        }
        if let Some(p) = &self.previous {
            lines.push(format!("Replaces:    {p}"));
        }
        lines.push(format!("Deployment:  {}", self.subject));
        lines.push(format!("At:          {}", self.at.to_rfc3339()));
        if self.severity() == Severity::Critical {
            lines.push(String::new());
            lines.push(format!(
                "See `harbormaster status --env {} --service {}` for the history.",
                self.environment, self.service
            ));
        }
        lines.join("\n")
    }

    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity(),
            "project": self.project,
            "environment": self.environment,
            "service": self.service,
            "deployment_id": self.subject,
            "image": {
                "repository": self.image.repository,
                "digest": self.image.digest,
                "tag": self.image.tag,
            },
            "task_definition_arn": self.task_definition_arn,
            "previous": self.previous,
            "reason": self.reason,
            "at": self.at,
            "summary": self.subject(),
            "text": self.text(),
        })
    }

    /// SNS message attributes, for subscription filter policies.
    pub fn attributes(&self) -> Vec<(&'static str, String)> {
        vec![
            ("project", self.project.clone()),
            ("environment", self.environment.clone()),
            ("service", self.service.clone()),
            ("kind", as_word(&self.kind)),
            ("severity", as_word(&self.severity())),
            ("notification_id", self.id.clone()),
        ]
    }
}

fn as_word(v: &impl Serialize) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}
