//! What a notification is about, and so the thread a chat client groups it under: a
//! deployment, or a release that never became one, or a service's worker scaling. Written as
//! agents before it wrote the `deployment_id` field (the id itself, `held-<digest>`,
//! `release-<digest>`, `scaling-<service>`), so outboxes saved by them read the same.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::image::Digest;
use crate::state::DeploymentId;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Deployment(DeploymentId),
    /// A release held back by its guard alarms, never deployed: its digest's first 8.
    Held(String),
    /// A release known only by its image (no deployment of it on record): its digest's first 8.
    Release(String),
    /// The worker scaling of a service.
    Scaling(String),
}

impl Subject {
    pub fn held(digest: &Digest) -> Self {
        Subject::Held(first_eight(digest))
    }

    pub fn release(digest: &Digest) -> Self {
        Subject::Release(first_eight(digest))
    }
}

fn first_eight(digest: &Digest) -> String {
    digest.short().chars().take(8).collect()
}

impl From<DeploymentId> for Subject {
    fn from(id: DeploymentId) -> Self {
        Subject::Deployment(id)
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Deployment(id) => write!(f, "{id}"),
            Subject::Held(d) => write!(f, "held-{d}"),
            Subject::Release(d) => write!(f, "release-{d}"),
            Subject::Scaling(service) => write!(f, "scaling-{service}"),
        }
    }
}

impl Serialize for Subject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A deployment id starts with its time (`20261207T…`), never with one of these words.
impl<'de> Deserialize<'de> for Subject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if let Some(rest) = s.strip_prefix("held-") {
            Subject::Held(rest.to_owned())
        } else if let Some(rest) = s.strip_prefix("release-") {
            Subject::Release(rest.to_owned())
        } else if let Some(rest) = s.strip_prefix("scaling-") {
            Subject::Scaling(rest.to_owned())
        } else {
            Subject::Deployment(DeploymentId(s))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_subject_reads_back_as_written_and_as_agents_before_it_wrote_it() {
        for written in [
            "20261207T214005110Z-2411e88b-1",
            "held-2411e88b",
            "release-2411e88b",
            "scaling-worker",
        ] {
            let json = serde_json::Value::String(written.into());
            let subject: Subject = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(serde_json::to_value(&subject).unwrap(), json);
        }
        let held: Subject = serde_json::from_value("held-2411e88b".into()).unwrap();
        assert_eq!(held, Subject::Held("2411e88b".into()));
    }
}
