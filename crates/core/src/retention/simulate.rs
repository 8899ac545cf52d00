//! ECR's evaluation of a lifecycle policy, as the Amazon ECR User Guide documents it
//! ("Lifecycle policy evaluation rules"), so a policy can be checked against a realistic push
//! history before a real registry applies it (no emulator evaluates lifecycle policies):
//!
//! - rules are applied lowest `rulePriority` first; an image is expired by one rule or none;
//! - an image that matches the tagging requirements of a higher-priority rule cannot be
//!   expired by a lower-priority one, though lower rules still count it ("identify them as if
//!   they haven't been expired");
//! - `imageCountMoreThan`: the selected images, youngest first by push time, beyond the count
//!   expire; `sinceImagePushed`: those pushed more than the count of days ago;
//! - a prefix or pattern matches if any of the image's tags matches it.
//!
//! A multi-arch image is an index (tagged) and one manifest per platform (untagged, referenced
//! by the index). ECR ties the children to their index: they are not ranked or expired on
//! their own, and go when every index referencing them goes (aws/containers-roadmap #1466; the
//! preview measured in DefangLabs/pulumi-defang #466; BatchDeleteImage refuses them alone with
//! `ImageReferencedByManifestList`).

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};

use super::policy::{LifecyclePolicy, Rule, Selection};
use crate::image::Digest;

/// An image as the registry stores it: one digest, all its tags, and for an index the
/// manifests it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredImage {
    pub digest: Digest,
    pub tags: Vec<String>,
    pub pushed_at: DateTime<Utc>,
    /// The platform manifests an image index references (empty for a plain image).
    pub children: Vec<Digest>,
}

/// The digests the policy expires from `images` at `now`.
pub fn expired(
    policy: &LifecyclePolicy,
    images: &[StoredImage],
    now: DateTime<Utc>,
) -> BTreeSet<Digest> {
    let children: BTreeSet<&Digest> = images.iter().flat_map(|i| &i.children).collect();
    // Only images that stand on their own are ranked and expired by the rules.
    let ranked: Vec<&StoredImage> = (images.iter())
        .filter(|i| !children.contains(&i.digest))
        .collect();
    let mut expired: BTreeSet<Digest> = BTreeSet::new();
    for (i, rule) in policy.rules.iter().enumerate() {
        let mut selected: Vec<&StoredImage> = (ranked.iter().copied())
            .filter(|img| selects(rule.selection(), img))
            .collect();
        selected.sort_by_key(|img| std::cmp::Reverse(img.pushed_at));
        let doomed: Vec<&StoredImage> = match rule {
            Rule::KeepNewest { keep, .. } => selected.into_iter().skip(*keep as usize).collect(),
            Rule::OlderThan { days, .. } => (selected.into_iter())
                .filter(|img| now - img.pushed_at > Duration::days((*days).into()))
                .collect(),
        };
        for img in doomed {
            let protected =
                (policy.rules[..i].iter()).any(|higher| selects(higher.selection(), img));
            if !protected {
                expired.insert(img.digest.clone());
            }
        }
    }
    // A child goes when no index that references it is left.
    for child in children {
        let held =
            (images.iter()).any(|i| i.children.contains(child) && !expired.contains(&i.digest));
        if !held {
            expired.insert(child.clone());
        }
    }
    expired
}

fn selects(selection: &Selection, image: &StoredImage) -> bool {
    match selection {
        Selection::Untagged => image.tags.is_empty(),
        Selection::Any => true,
        Selection::Prefix(p) => image.tags.iter().any(|t| t.starts_with(p.as_str())),
        Selection::Pattern(p) => image.tags.iter().any(|t| glob(p, t)),
    }
}

/// ECR's tag patterns: `*` matches any run of characters, everything else itself.
pub(crate) fn glob(pattern: &str, tag: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if parts.len() == 1 {
        return pattern == tag;
    }
    if !tag.starts_with(first) || tag.len() < first.len() + last.len() || !tag.ends_with(last) {
        return false;
    }
    let mut rest = &tag[first.len()..tag.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
