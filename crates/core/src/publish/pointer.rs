//! What a publish writes beside the bundle's files: the pointer every function reads first
//! (`current.json`), the manifest of each staged bundle (its files and commit, so `--activate`
//! can carry them), and one history entry per move of the pointer.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::BundleDigest;

/// Where a publish comes from in git: the full commit id when `git` can tell, else CodeBuild's
/// `CODEBUILD_RESOLVED_SOURCE_VERSION`; its author and subject for people.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    #[serde(rename = "commit", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A staged bundle's own record: written with its files, read by `--activate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub bundle: BundleDigest,
    pub files: Vec<String>,
    pub staged_at: DateTime<Utc>,
    #[serde(flatten)]
    pub commit: Commit,
}

/// The pointer: which bundle is current, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub bundle: BundleDigest,
    /// The bundle's files (absent in pointers from before they were listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    pub published_at: DateTime<Utc>,
    #[serde(flatten)]
    pub commit: Commit,
    /// Made current by `--activate` (a bundle staged earlier).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub activated: bool,
    /// Made current with `--allow-older`: the break-glass that skips the order in git, and why
    /// the history shows it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allowed_older: bool,
}

impl Pointer {
    pub fn of(manifest: &Manifest, at: DateTime<Utc>) -> Pointer {
        Pointer {
            bundle: manifest.bundle.clone(),
            files: manifest.files.clone(),
            published_at: at,
            commit: manifest.commit.clone(),
            activated: false,
            allowed_older: false,
        }
    }

    /// `commit 3f2c1ab04e1d by alice: raise web's memory`, for notifications (any part may be
    /// missing; text from git is shown escaped and clipped).
    pub fn origin(&self) -> Option<String> {
        let shown = |v: &Option<String>| v.as_deref().map(|v| crate::text::shown(v).into_owned());
        let id = shown(&self.commit.id)?;
        let commit: String = id.chars().take(12).collect();
        let by = shown(&self.commit.author)
            .map(|a| format!(" by {a}"))
            .unwrap_or_default();
        let what = shown(&self.commit.message)
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        Some(crate::text::clipped(
            &format!("commit {commit}{by}{what}"),
            200,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pointers written before the typed pointer (`publish` of stop 28 and earlier) still read.
    #[test]
    fn a_pointer_written_by_an_older_agent_reads() {
        let old = r#"{"bundle": "0123456789abcdef0123456789abcdef", "files": ["harbormaster.toml"],
            "published_at": "2026-12-01T10:00:00Z", "commit": "3f2c1ab04e1d", "author": "alice",
            "message": "raise web's memory"}"#;
        let p: Pointer = serde_json::from_str(old).unwrap();
        assert_eq!(p.commit.id.as_deref(), Some("3f2c1ab04e1d"));
        assert_eq!(
            p.origin().as_deref(),
            Some("commit 3f2c1ab04e1d by alice: raise web's memory")
        );
        let activated = r#"{"bundle": "0123456789abcdef0123456789abcdef",
            "published_at": "2026-12-01T10:00:00Z", "activated": true}"#;
        let p: Pointer = serde_json::from_str(activated).unwrap();
        assert!(p.activated && p.commit.id.is_none());
    }
}
