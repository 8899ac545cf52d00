//! Images and the rules that decide which tags an environment follows.

use std::cmp::Ordering;
use std::fmt;

use chrono::{DateTime, Utc};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A content digest as ECR reports it: `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an image digest (expected sha256: followed by 64 hex digits)")]
pub struct InvalidDigest(pub String);

impl Digest {
    pub fn parse(s: &str) -> Result<Self, InvalidDigest> {
        let hex = s
            .strip_prefix("sha256:")
            .ok_or_else(|| InvalidDigest(s.to_owned()))?;
        if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Digest(s.to_ascii_lowercase()))
        } else {
            Err(InvalidDigest(s.to_owned()))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The first 12 hex digits, as people quote digests.
    pub fn short(&self) -> &str {
        &self.0[7..19]
    }
}

impl TryFrom<String> for Digest {
    type Error = InvalidDigest;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Digest::parse(&s)
    }
}
impl From<Digest> for String {
    fn from(d: Digest) -> String {
        d.0
    }
}
impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an image's manifest says of the platforms it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The CPU architectures (`amd64`, `arm64`, as OCI names them) of a multi-platform image
    /// (an OCI index, a Docker manifest list); `None` for a single-platform image, whose
    /// platform is in its config blob, not read (it would take a second call).
    pub architectures: Option<Vec<String>>,
}

impl Manifest {
    /// Whether the image offers ECS's `cpuArchitecture` (`X86_64`, `ARM64`; ECS's default is
    /// X86_64): an index must list it; a single-platform image is not known not to.
    pub fn offers(&self, cpu_architecture: &str) -> bool {
        let wanted = match cpu_architecture {
            "ARM64" => "arm64",
            _ => "amd64",
        };
        (self.architectures.as_ref()).is_none_or(|a| a.iter().any(|x| x == wanted))
    }
}

/// One image in one repository, identified by digest; the tag is how it was named when pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub repository: String,
    pub digest: Digest,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub pushed_at: DateTime<Utc>,
}

impl Image {
    /// `repo@sha256:…`, or `repo:tag` style label for people.
    pub fn label(&self) -> String {
        // Tags and names come from events: shown escaped (crate::text).
        let repository = crate::text::shown(&self.repository);
        match &self.tag {
            Some(t) => format!(
                "{repository}:{} ({})",
                crate::text::shown(t),
                self.digest.short()
            ),
            None => format!("{repository}@{}", self.digest.short()),
        }
    }
}

/// Which tags of a repository an environment follows.
#[derive(Debug, Clone)]
pub enum TagRule {
    /// Any tag matching the regular expression (anchored by the user where wanted).
    Regex(Regex),
    /// Tags that parse as semantic versions (an optional leading `v`) within the requirement.
    Semver(semver::VersionReq),
}

impl TagRule {
    pub fn matches(&self, tag: &str) -> bool {
        match self {
            TagRule::Regex(r) => r.is_match(tag),
            TagRule::Semver(req) => parse_version(tag).is_some_and(|v| req.matches(&v)),
        }
    }

    /// How releases under this rule are ordered when deciding "newer".
    pub fn order(&self) -> ImageOrder {
        match self {
            TagRule::Regex(_) => ImageOrder::PushTime,
            TagRule::Semver(_) => ImageOrder::Semver,
        }
    }

    pub fn describe(&self) -> String {
        match self {
            TagRule::Regex(r) => format!("tags matching /{}/", r.as_str()),
            TagRule::Semver(req) => format!("semver tags {req}"),
        }
    }
}

pub fn parse_version(tag: &str) -> Option<semver::Version> {
    semver::Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok()
}

/// Ordering of releases. Under a semver rule a hotfix `1.2.1` pushed after `1.3.0` is older:
/// following a version line must never step backwards by itself. Otherwise push time decides.
/// Two images pushed in the same second compare equal: EventBridge times have whole seconds, so
/// nothing finer is known, and callers decide what a tie means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ImageOrder {
    #[default]
    PushTime,
    Semver,
}

impl ImageOrder {
    pub fn compare(self, a: &Image, b: &Image) -> Ordering {
        let by_time = || a.pushed_at.cmp(&b.pushed_at);
        match self {
            ImageOrder::PushTime => by_time(),
            ImageOrder::Semver => {
                let va = a.tag.as_deref().and_then(parse_version);
                let vb = b.tag.as_deref().and_then(parse_version);
                match (va, vb) {
                    (Some(va), Some(vb)) => va.cmp(&vb).then_with(by_time),
                    _ => by_time(),
                }
            }
        }
    }
    pub fn is_newer(self, candidate: &Image, than: &Image) -> bool {
        self.compare(candidate, than) == Ordering::Greater
    }
}

/// Why an image reference could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Not an image of the repository, or not in ECR: a person's or a build's mistake.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Port(#[from] crate::ports::PortError),
}

/// The image `reference` names in `repository`: a tag, `sha256:…`, `repo:tag` or
/// `repo@sha256:…` (a registry host before the repository is allowed).
pub async fn resolve_image<P: crate::ports::Images>(
    ports: &P,
    repository: &str,
    reference: &str,
) -> Result<Image, ResolveError> {
    let not_ours = || {
        ResolveError::Invalid(format!(
            "`{reference}` is not an image of repository `{repository}`"
        ))
    };
    // Strip a registry host and the repository, if given, keeping `:tag` or `@digest`.
    let mut rest = reference;
    if let Some(i) = rest.find(repository) {
        let after = &rest[i + repository.len()..];
        if !(after.starts_with(':') || after.starts_with('@')) {
            return Err(not_ours());
        }
        rest = &after[1..];
    } else if rest.contains('/') {
        return Err(not_ours());
    }
    let rest = rest.trim_start_matches('@');
    if rest.starts_with("sha256:") {
        let digest = Digest::parse(rest).map_err(|e| ResolveError::Invalid(e.to_string()))?;
        let found = ports.by_digest(repository, &digest).await?;
        found.ok_or_else(|| ResolveError::Invalid(format!("{repository}@{digest} is not in ECR")))
    } else {
        let found = ports.resolve_tag(repository, rest).await?;
        found.ok_or_else(|| {
            ResolveError::Invalid(format!(
                "tag `{rest}` is not in ECR repository `{repository}`"
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn img(tag: &str, secs: i64, d: char) -> Image {
        Image {
            repository: "r".into(),
            digest: Digest::parse(&format!("sha256:{}", d.to_string().repeat(64))).unwrap(),
            tag: Some(tag.into()),
            pushed_at: Utc.timestamp_opt(secs, 0).unwrap(),
        }
    }

    #[test]
    fn digest_parsing_rejects_short_and_foreign_digests() {
        assert!(Digest::parse(&format!("sha256:{}", "a".repeat(64))).is_ok());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse(&format!("md5:{}", "a".repeat(64))).is_err());
        assert!(Digest::parse(&format!("sha256:{}", "g".repeat(64))).is_err());
    }

    #[test]
    fn semver_rule_matches_versions_with_optional_v() {
        let rule = TagRule::Semver(semver::VersionReq::parse(">=1.0.0, <2").unwrap());
        assert!(rule.matches("v1.2.3"));
        assert!(rule.matches("1.0.0"));
        assert!(!rule.matches("2.0.0"));
        assert!(!rule.matches("latest"));
    }

    #[test]
    fn semver_order_never_steps_back_for_a_late_hotfix() {
        let newer_version = img("1.3.0", 100, 'a');
        let late_hotfix = img("1.2.1", 200, 'b');
        assert!(!ImageOrder::Semver.is_newer(&late_hotfix, &newer_version));
        assert!(ImageOrder::PushTime.is_newer(&late_hotfix, &newer_version));
    }

    #[test]
    fn pushes_in_the_same_second_are_neither_newer_nor_older() {
        let a = img("x", 100, 'a');
        let b = img("y", 100, 'b');
        assert_eq!(ImageOrder::PushTime.compare(&a, &b), Ordering::Equal);
        assert!(!ImageOrder::PushTime.is_newer(&b, &a));
        assert!(ImageOrder::PushTime.is_newer(&img("z", 101, 'c'), &a));
    }
}
