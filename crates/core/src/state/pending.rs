//! The release waiting to deploy, and what it waits for: its turn (behind the deployment in
//! flight, or the guard alarms being read), the settle window, or a guard alarm in ALARM.
//!
//! Stored flat beside the other fields (`pending`, `settle_until`, `guard_wait`, as schema 1
//! always was): in memory a wait cannot exist without its release, nor a release wait for two
//! things at once.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{GuardWait, Release};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub release: Release,
    pub wait: Wait,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wait {
    /// Its turn: behind the deployment in flight, or while its guard alarms are read.
    Turn,
    /// The settle window (`agent.settle_seconds`): a newer push may take its place until then.
    Settling { until: DateTime<Utc> },
    /// A guard alarm is in ALARM: it deploys when they clear, or fails after the timeout.
    Held(GuardWait),
}

impl Pending {
    /// A release waiting its turn.
    pub fn new(release: Release) -> Self {
        Pending {
            release,
            wait: Wait::Turn,
        }
    }

    /// The end of its settle window, if it is settling.
    pub fn settling_until(&self) -> Option<DateTime<Utc>> {
        match self.wait {
            Wait::Settling { until } => Some(until),
            _ => None,
        }
    }

    pub fn held(&self) -> Option<&GuardWait> {
        match &self.wait {
            Wait::Held(g) => Some(g),
            _ => None,
        }
    }
}

/// The stored shape.
#[derive(Default, Serialize, Deserialize)]
struct Doc {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pending: Option<Release>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    guard_wait: Option<GuardWait>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settle_until: Option<DateTime<Utc>>,
}

/// `#[serde(flatten, with = "pending::flat")]` on `ServiceState::pending`.
pub(super) mod flat {
    use super::*;

    pub fn serialize<S: Serializer>(p: &Option<Pending>, s: S) -> Result<S::Ok, S::Error> {
        let doc = match p {
            None => Doc::default(),
            Some(p) => Doc {
                pending: Some(p.release.clone()),
                guard_wait: p.held().cloned(),
                settle_until: p.settling_until(),
            },
        };
        doc.serialize(s)
    }

    /// A wait without a release (a window whose release already started) is nothing to keep.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Pending>, D::Error> {
        let doc = Doc::deserialize(d)?;
        Ok(doc.pending.map(|release| {
            let wait = match (doc.guard_wait, doc.settle_until) {
                (Some(g), _) => Wait::Held(g),
                (None, Some(until)) => Wait::Settling { until },
                (None, None) => Wait::Turn,
            };
            Pending { release, wait }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::super::ServiceState;
    use super::*;

    const RELEASE: &str = r#"{"image": {"repository": "booking/web", "digest": "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "tag": "main-2", "pushed_at": "2026-11-23T11:00:00Z"}, "trigger": {"kind": "reconcile"}, "requested_at": "2026-11-23T12:00:00Z"}"#;

    fn doc(extra: &str) -> String {
        format!(
            r#"{{"schema": 1, "environment": "dev", "service": "web", "pending": {RELEASE}{extra}, "history": [], "processed_events": [], "deployments_started": 0}}"#
        )
    }

    #[test]
    fn waits_written_flat_before_read_as_what_the_release_waits_for_and_write_back_the_same() {
        let cases = [
            ("", "turn"),
            (r#", "settle_until": "2026-11-23T12:05:00Z""#, "settling"),
            (
                r#", "guard_wait": {"since": "2026-11-23T12:01:00Z", "alarms": ["db-cpu"]}"#,
                "held",
            ),
        ];
        for (extra, want) in cases {
            let text = doc(extra);
            let s: ServiceState = serde_json::from_str(&text).unwrap();
            let got = match s.pending.as_ref().unwrap().wait {
                Wait::Turn => "turn",
                Wait::Settling { .. } => "settling",
                Wait::Held(_) => "held",
            };
            assert_eq!(got, want);
            let before: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(serde_json::to_value(&s).unwrap(), before, "{want}");
        }
    }
}
