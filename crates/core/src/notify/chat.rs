//! The chat form of a notification: Amazon Q Developer in chat applications (formerly AWS
//! Chatbot) posts to Slack, Teams or Chime only AWS service events and messages in its custom
//! notification schema; anything else on the topic is dropped without a word.
//!
//! The schema (<https://docs.aws.amazon.com/chatbot/latest/adminguide/custom-notifs.html>,
//! "Event schema" and "Parameter details"): `version` must be `"1.0"`, `source` must be
//! `"custom"`; `content` holds `textType` (only `"client-markdown"` is supported), `title`,
//! `description`, `nextSteps` and `keywords`; `metadata` holds `threadId` (updates with the same
//! id are threaded), `summary`, `eventType`, `relatedResources` and `additionalContext`, a map of
//! strings. Chatbot subscribes to the topic over HTTPS, so this is the topic's `https` form.

use serde_json::{json, Map, Value};

use super::{NoticeKind, Notification, Severity};

/// Titles and descriptions are cut here: a chat message stays readable, and a reason quoted
/// from an event cannot make it huge.
const TITLE_MAX: usize = 250;
const DESCRIPTION_MAX: usize = 4000;

impl Notification {
    /// The message in Amazon Q Developer's custom notification schema (see the module's doc).
    pub fn chat(&self) -> Value {
        let mut context = Map::new();
        let mut put = |k: &str, v: &str| {
            context.insert(k.to_owned(), Value::String(v.to_owned()));
        };
        put("project", &self.project);
        put("environment", &self.environment);
        put("service", &self.service);
        put("kind", self.kind.word());
        put("severity", self.severity().word());
        put("deployment_id", &self.subject.to_string());
        put("release", &self.image.label());
        put("digest", self.image.digest.as_str());
        if let Some(r) = &self.reason {
            put("reason", &crate::text::shown(r));
        }
        let related: Vec<String> = self
            .task_definition_arn
            .iter()
            .cloned()
            .chain([format!("{}@{}", self.image.repository, self.image.digest)])
            .collect();
        json!({
            "version": "1.0",
            "source": "custom",
            "id": self.id,
            "content": {
                "textType": "client-markdown",
                "title": cut(&format!("{} {}", self.severity().emoji(), self.subject()), TITLE_MAX),
                "description": cut(&self.markdown(), DESCRIPTION_MAX),
                "nextSteps": self.next_steps(),
                "keywords": [self.environment, self.service, self.kind.word(), self.severity().word()],
            },
            "metadata": {
                // One thread per deployment: its start, gate and end read as one conversation.
                "threadId": self.subject.to_string(),
                "summary": self.subject(),
                "eventType": self.kind.word(),
                "relatedResources": related,
                "additionalContext": context,
            },
        })
    }

    /// The body in chat markdown: what happened, then the fields a person acts on. Text that
    /// came from events (tags, reasons) goes in code spans so it cannot format the message.
    fn markdown(&self) -> String {
        let mut lines = vec![self.headline()];
        if let Some(r) = &self.reason {
            lines.push(format!("*Why:* {}", code(&crate::text::shown(r))));
        }
        lines.push(format!(
            "*Severity:* {}  *Service:* {} in {}",
            self.severity().word(),
            code(&self.service),
            code(&self.environment)
        ));
        lines.push(format!("*Release:* {}", code(&self.image.label())));
        if let Some(p) = &self.previous {
            lines.push(format!("*Replaces:* {}", code(p)));
        }
        lines.push(format!("*Deployment:* {}", code(&self.subject.to_string())));
        lines.join("\n")
    }

    fn next_steps(&self) -> Vec<String> {
        let (env, service) = (&self.environment, &self.service);
        match self.kind {
            NoticeKind::ApprovalNeeded => vec![
                format!("Approve: `harbormaster approve --env {env} --service {service}`"),
                format!("Reject: `harbormaster approve --reject --env {env} --service {service}`"),
            ],
            _ if self.severity() == Severity::Critical => {
                vec![format!(
                    "History: `harbormaster status --env {env} --service {service}`"
                )]
            }
            NoticeKind::Drift | NoticeKind::Alarm => {
                vec![format!(
                    "State: `harbormaster status --env {env} --service {service}`"
                )]
            }
            _ => Vec::new(),
        }
    }
}

impl Severity {
    pub fn word(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// Slack and Teams render these short codes as emoji (the schema allows them in titles).
    fn emoji(self) -> &'static str {
        match self {
            Severity::Info => ":white_check_mark:",
            Severity::Warning => ":warning:",
            Severity::Critical => ":rotating_light:",
        }
    }
}

/// A code span whose content cannot close it.
fn code(s: &str) -> String {
    format!("`{}`", s.replace('`', "'"))
}

/// At most `max` characters, with an ellipsis when cut.
fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests;
