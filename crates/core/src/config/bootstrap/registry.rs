//! The project's repositories, shared by every environment: which tags are development builds
//! (kept to the newest `ecr_keep_images` per prefix), which are releases (never expired), and
//! whether tags are immutable. Each environment's table may say; the repositories take the
//! union of the tags and the largest count, whichever environment's apply renders them.

use super::{Collector, RawBootstrap};
use crate::retention::{LifecyclePolicy, PROTECTION_PREFIX};

const DEV_TAGS: &[&str] = &["main-", "pr-"];
/// Semantic versions, with or without a leading `v` (`1.4.0`, `v1.4.0`).
const RELEASE_TAGS: &[&str] = &["*.*.*"];

/// What the project's repositories keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    pub keep_dev_images: u32,
    pub dev_tags: Vec<String>,
    pub release_tags: Vec<String>,
    pub immutable_tags: bool,
}

impl Registry {
    /// This environment's keys checked (errors under `base`), merged with the others'.
    pub(super) fn from_raw(
        c: &mut Collector<'_>,
        base: &str,
        raw: &RawBootstrap,
        others: &[RawBootstrap],
    ) -> Self {
        let keep = raw.ecr_keep_images.unwrap_or(30);
        if !(1..=1000).contains(&keep) {
            c.err(format!("{base}.ecr_keep_images"), "allowed: 1 to 1000");
        }
        for (i, p) in raw.ecr_dev_tags.iter().flatten().enumerate() {
            if let Some(why) = bad_prefix(p) {
                c.err(format!("{base}.ecr_dev_tags[{i}]"), why);
            }
        }
        for (i, p) in raw.ecr_release_tags.iter().flatten().enumerate() {
            if let Some(why) = bad_pattern(p) {
                c.err(format!("{base}.ecr_release_tags[{i}]"), why);
            }
        }
        let all = || std::iter::once(raw).chain(others);
        let union = |pick: fn(&RawBootstrap) -> Option<&Vec<String>>, default: &[&str]| {
            let mut out: Vec<String> = Vec::new();
            for r in all() {
                let tags = match pick(r) {
                    Some(tags) => tags.clone(),
                    None => default.iter().map(|t| t.to_string()).collect(),
                };
                out.extend(
                    tags.into_iter()
                        .filter(|t| !out.contains(t))
                        .collect::<Vec<_>>(),
                );
            }
            out
        };
        Registry {
            keep_dev_images: (others.iter().filter_map(|b| b.ecr_keep_images))
                .filter(|n| (1..=1000).contains(n))
                .fold(keep, u32::max),
            dev_tags: union(|r| r.ecr_dev_tags.as_ref(), DEV_TAGS)
                .into_iter()
                .filter(|p| bad_prefix(p).is_none())
                .collect(),
            release_tags: union(|r| r.ecr_release_tags.as_ref(), RELEASE_TAGS)
                .into_iter()
                .filter(|p| bad_pattern(p).is_none())
                .collect(),
            immutable_tags: all().any(|b| b.ecr_immutable_tags.unwrap_or(true)),
        }
    }

    pub fn lifecycle_policy(&self) -> LifecyclePolicy {
        LifecyclePolicy::project(&self.release_tags, &self.dev_tags, self.keep_dev_images)
    }
}

/// ECR's tag characters ("PutImage": `imageTag`, at most 128 of `[A-Za-z0-9_.-]`).
fn tag_chars(s: &str, also: &[char]) -> bool {
    s.chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch) || also.contains(&ch))
}

fn bad_prefix(p: &str) -> Option<String> {
    if p.is_empty() || p.len() > 128 || !tag_chars(p, &[]) {
        return Some("a tag prefix: 1 to 128 of A-Z a-z 0-9 _ . -".into());
    }
    if p.starts_with(PROTECTION_PREFIX) || PROTECTION_PREFIX.starts_with(p) {
        return Some(format!(
            "`{PROTECTION_PREFIX}` tags are harbormaster's protection of what environments run"
        ));
    }
    None
}

fn bad_pattern(p: &str) -> Option<String> {
    if p.is_empty() || p.len() > 128 || !tag_chars(p, &['*']) {
        return Some("a tag pattern: 1 to 128 of A-Z a-z 0-9 _ . - and `*`".into());
    }
    if p.matches('*').count() > 4 {
        return Some("ECR allows at most four `*` in a pattern".into());
    }
    None
}
