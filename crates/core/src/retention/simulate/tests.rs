//! ECR's evaluation against push histories like the example's: `booking/web` holds dev's
//! `main-<sha>` builds, prod's semver releases and the worker's image, all in one repository.

use chrono::{Duration, TimeZone, Utc};

use super::*;
use crate::retention::{protection_tag, NEVER_REACHED};

fn digest(n: u32) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 8, 12, 0, 0).unwrap()
}

fn image(n: u32, tags: &[&str], hours_ago: i64) -> StoredImage {
    StoredImage {
        digest: digest(n),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        pushed_at: now() - Duration::hours(hours_ago),
        children: Vec::new(),
    }
}

/// Prod's release `1.4.0` (its rollback target `1.3.0` before it), then 40 pushes to main, an
/// hour apart; prod also runs a build it was promoted to by digest (`main-…` only).
fn history() -> Vec<StoredImage> {
    let mut images = vec![
        image(1, &["1.3.0"], 24 * 10),
        image(2, &["1.4.0"], 24 * 9),
        image(3, &["main-promoted"], 24 * 8),
    ];
    for n in 0..40 {
        images.push(image(
            100 + n,
            &[&format!("main-{n:07x}")],
            i64::from(40 - n),
        ));
    }
    images
}

fn project() -> LifecyclePolicy {
    LifecyclePolicy::project(&["*.*.*".into()], &["main-".into(), "pr-".into()], 30)
}

#[test]
fn finding_1_the_old_rule_expires_the_release_prod_runs_after_thirty_pushes_to_main() {
    // What `bootstrap/src/stacks/project.rs` rendered before: the newest 30 of any tag.
    let old = LifecyclePolicy {
        rules: vec![Rule::KeepNewest {
            selection: Selection::Any,
            keep: 30,
            why: "keep the last 30 images".into(),
        }],
    };
    let gone = expired(&old, &history(), now());
    assert!(gone.contains(&digest(2)), "prod's 1.4.0");
    assert!(gone.contains(&digest(1)), "prod's rollback target 1.3.0");
}

#[test]
fn finding_1_release_tags_and_protected_digests_survive_forty_pushes_to_main() {
    let mut images = history();
    // The agent's tag on what prod runs by digest.
    images[2]
        .tags
        .push(protection_tag("prod", "web", &digest(3)));
    let gone = expired(&project(), &images, now());
    for kept in [1, 2, 3] {
        assert!(!gone.contains(&digest(kept)), "image {kept} expired");
    }
    // The ten oldest of the forty dev builds go, the newest thirty stay.
    let dev_gone: Vec<u32> = (100..140).filter(|n| gone.contains(&digest(*n))).collect();
    assert_eq!(dev_gone, (100..110).collect::<Vec<_>>());
    // Without the agent's tag, the promoted build is just an old dev build.
    let unprotected = expired(&project(), &history(), now());
    assert!(unprotected.contains(&digest(3)));
}

#[test]
fn finding_1_a_release_also_tagged_as_a_dev_build_is_kept() {
    // CI tags `main-<sha>`; the release later adds `1.5.0` to the same digest.
    let mut images = history();
    images.push(image(7, &["main-0000old", "1.5.0"], 24 * 30));
    let gone = expired(&project(), &images, now());
    assert!(!gone.contains(&digest(7)));
}

#[test]
fn finding_1_untagged_images_go_after_a_day_but_never_a_kept_indexs_platforms() {
    let mut images = history();
    images.push(image(50, &[], 30)); // a tag moved away 30 hours ago
    images.push(image(51, &[], 2)); // a tag moved away 2 hours ago
                                    // A multi-arch release: the index tagged, its two platform manifests untagged.
    let mut index = image(60, &["2.0.0"], 24 * 20);
    index.children = vec![digest(61), digest(62)];
    images.extend([index, image(61, &[], 24 * 20), image(62, &[], 24 * 20)]);
    // A multi-arch dev build old enough to go: its platforms go with it.
    let mut old_dev = image(70, &["main-multiarch"], 24 * 20);
    old_dev.children = vec![digest(71)];
    images.extend([old_dev, image(71, &[], 24 * 20)]);
    let gone = expired(&project(), &images, now());
    assert!(gone.contains(&digest(50)));
    assert!(!gone.contains(&digest(51)));
    for kept in [60, 61, 62] {
        assert!(
            !gone.contains(&digest(kept)),
            "image {kept} of a kept index expired"
        );
    }
    assert!(gone.contains(&digest(70)) && gone.contains(&digest(71)));
}

#[test]
fn a_lower_rule_counts_what_a_higher_one_selected() {
    // "Rules can never mark images that are marked by higher priority rules, but can still
    // identify them as if they haven't been expired": 31 dev builds of which the newest is
    // protected leave 30 unprotected, of which only the oldest is beyond the 30 counted.
    let mut images: Vec<StoredImage> = (0..31)
        .map(|n| image(200 + n, &[&format!("main-{n}")], i64::from(31 - n)))
        .collect();
    images[30]
        .tags
        .push(protection_tag("prod", "web", &digest(230)));
    let gone = expired(&project(), &images, now());
    assert_eq!(gone.into_iter().collect::<Vec<_>>(), vec![digest(200)]);
}

#[test]
fn the_rendered_policy_is_what_ecr_reads() {
    let json = project().to_json();
    let rules = json["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0]["selection"]["tagPrefixList"][0], "hm-keep-");
    assert_eq!(rules[0]["selection"]["countNumber"], NEVER_REACHED);
    assert_eq!(rules[1]["selection"]["tagPatternList"][0], "*.*.*");
    assert_eq!(rules[2]["selection"]["tagPrefixList"][0], "main-");
    assert_eq!(rules[2]["selection"]["countNumber"], 30);
    assert_eq!(rules[4]["selection"]["tagStatus"], "untagged");
    assert_eq!(rules[4]["selection"]["countType"], "sinceImagePushed");
    assert_eq!(rules[4]["selection"]["countUnit"], "days");
    let priorities: Vec<u64> = rules
        .iter()
        .map(|r| r["rulePriority"].as_u64().unwrap())
        .collect();
    assert_eq!(priorities, vec![1, 2, 3, 4, 5]);
}

#[test]
fn patterns_match_as_ecr_documents() {
    assert!(glob("*.*.*", "1.4.0"));
    assert!(glob("*.*.*", "v1.4.0"));
    assert!(!glob("*.*.*", "main-abc"));
    assert!(glob("prod*", "prod"));
    assert!(glob("prod*", "prod-1"));
    assert!(!glob("prod*", "preprod"));
    assert!(glob("latest", "latest"));
    assert!(!glob("latest", "latest2"));
    assert!(glob("*-rc*", "1.0-rc2"));
}
