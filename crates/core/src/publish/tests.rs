//! Publish over an in-memory bucket (issue 30, part b): forward only in git, only staged
//! digests activated, content verified, the history's failure a warning.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use futures::executor::block_on;

use super::*;
use crate::memory::MemoryBundles;
use crate::testing::{CONFIG, WEB_TEMPLATE};

/// Git's history here: c1 ← c2 ← c3 (each descends from those before it).
fn git(ancestor: &str, commit: &str) -> Ancestry {
    let order = ["c1", "c2", "c3"];
    let at = |c: &str| order.iter().position(|x| *x == c);
    match (at(ancestor), at(commit)) {
        (Some(a), Some(c)) if a < c => Ancestry::Descendant,
        (Some(_), Some(_)) => Ancestry::NotDescendant,
        _ => Ancestry::Unknown(format!("git does not know {ancestor}")),
    }
}

fn folder(memory: &str) -> BTreeMap<String, Vec<u8>> {
    let template =
        WEB_TEMPLATE.replace("\"memory\": \"512\"", &format!("\"memory\": \"{memory}\""));
    BTreeMap::from([
        ("harbormaster.toml".to_owned(), CONFIG.as_bytes().to_vec()),
        ("taskdefs/web.json".to_owned(), template.into_bytes()),
    ])
}

fn commit(id: &str) -> Commit {
    Commit {
        id: Some(id.into()),
        author: Some("alice".into()),
        message: Some(format!("change {id}")),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 7, 12, 0, 0).unwrap()
}

fn publish_as(
    b: &MemoryBundles,
    id: &str,
    memory: &str,
    opts: Options,
) -> Result<Published, PublishError> {
    block_on(publish(b, folder(memory), commit(id), git, opts, now()))
}

fn current(b: &MemoryBundles) -> Option<String> {
    b.with(|p| {
        p.pointer
            .as_ref()
            .and_then(|(ptr, _)| ptr.commit.id.clone())
    })
}

/// Finding 3: publish v2, then v1 (a late or re-run build): v1 became current with exit 0.
#[test]
fn finding_3_an_older_commit_never_moves_the_pointer_back() {
    let b = MemoryBundles::default();
    publish_as(&b, "c1", "512", Options::default()).unwrap();
    publish_as(&b, "c3", "1024", Options::default()).unwrap();
    let objects = b.with(|p| p.objects.len());
    let late = publish_as(&b, "c2", "768", Options::default()).unwrap_err();
    assert!(matches!(late, PublishError::Older { .. }), "{late}");
    assert!(late.to_string().contains("git revert"), "{late}");
    assert_eq!(current(&b).as_deref(), Some("c3"));
    let after = b.with(|p| p.objects.len());
    assert_eq!(after, objects, "a refused publish uploads nothing");

    // The break-glass moves it, and says so in the pointer and the history.
    let opts = Options {
        allow_older: true,
        ..Options::default()
    };
    let back = publish_as(&b, "c2", "768", opts).unwrap();
    assert!(back.pointer.allowed_older);
    assert_eq!(current(&b).as_deref(), Some("c2"));
    assert!(b.with(|p| p.history[0].allowed_older));
}

/// Where git cannot tell the order (no `.git`, a shallow clone, a pointer without a commit),
/// the publish is refused, saying how to fix it.
#[test]
fn a_publish_whose_order_cannot_be_told_is_refused_with_the_fix() {
    let b = MemoryBundles::default();
    publish_as(&b, "c1", "512", Options::default()).unwrap();
    for (id, why) in [("c-shallow", "git does not know"), ("", "unknown")] {
        let c = Commit {
            id: (!id.is_empty()).then(|| id.to_owned()),
            ..Commit::default()
        };
        let e = block_on(publish(
            &b,
            folder("768"),
            c,
            git,
            Options::default(),
            now(),
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, PublishError::Unordered { .. }), "{text}");
        assert!(
            text.contains(why) && text.contains("git-clone-depth"),
            "{text}"
        );
    }
    assert_eq!(current(&b).as_deref(), Some("c1"));
}

/// Finding 4: `--activate` took any string. Only a digest staged here becomes current, read
/// back, verified and loaded whole, carrying its own commit.
#[test]
fn finding_4_activate_takes_only_a_staged_bundle_that_loads() {
    let b = MemoryBundles::default();
    publish_as(&b, "c1", "512", Options::default()).unwrap();
    let stage_only = Options {
        stage_only: true,
        ..Options::default()
    };
    let staged = publish_as(&b, "c2", "1024", stage_only).unwrap();
    assert_eq!(staged.moved, Move::Staged);
    assert_eq!(current(&b).as_deref(), Some("c1"), "staged is not current");

    let activate = |d: &BundleDigest| block_on(activate(&b, d, git, Options::default(), now()));
    let never: BundleDigest = format!("sha256-{}", "0".repeat(64)).parse().unwrap();
    assert!(matches!(
        activate(&never),
        Err(PublishError::NotStaged { .. })
    ));

    let done = activate(&staged.pointer.bundle).unwrap();
    assert!(done.pointer.activated);
    assert_eq!(
        current(&b).as_deref(),
        Some("c2"),
        "the bundle's own commit"
    );

    // A staged bundle whose file changed since is refused, and so is one that does not load.
    let third = publish_as(&b, "c3", "2048", stage_only)
        .unwrap()
        .pointer
        .bundle;
    b.with(|p| {
        let k = format!("bundles/{third}/taskdefs/web.json");
        p.objects.get_mut(&k).unwrap().push(b' ');
    });
    assert!(matches!(
        activate(&third),
        Err(PublishError::Tampered { .. })
    ));
    let broken = BTreeMap::from([("harbormaster.toml".to_owned(), b"project = 1".to_vec())]);
    let manifest = Manifest {
        bundle: BundleDigest::of(&broken),
        files: vec!["harbormaster.toml".into()],
        staged_at: now(),
        commit: commit("c3"),
    };
    block_on(b.stage(&broken, &manifest)).unwrap();
    assert!(matches!(
        activate(&manifest.bundle),
        Err(PublishError::Broken { .. })
    ));
    assert_eq!(current(&b).as_deref(), Some("c2"));
}

/// Finding 13: staging took an existing key as done without comparing.
#[test]
fn finding_13_staging_over_other_content_is_refused() {
    let b = MemoryBundles::default();
    let files = folder("512");
    let digest = BundleDigest::of(&files);
    b.with(|p| {
        let k = format!("bundles/{digest}/taskdefs/web.json");
        p.objects.insert(k, b"{}".to_vec())
    });
    let e = publish_as(&b, "c1", "512", Options::default()).unwrap_err();
    assert!(e.to_string().contains("other content"), "{e}");
    assert_eq!(current(&b), None);
}

/// Finding 14: the history entry was written after the pointer moved, and its failure failed a
/// publish that was live. It is a warning now.
#[test]
fn finding_14_a_history_entry_that_cannot_be_written_is_a_warning() {
    let b = MemoryBundles::default();
    b.with(|p| p.fail_record = true);
    let done = publish_as(&b, "c1", "512", Options::default()).unwrap();
    assert_eq!(done.moved, Move::Moved);
    let warning = done.warning.unwrap();
    assert!(warning.contains("is current"), "{warning}");
    assert_eq!(current(&b).as_deref(), Some("c1"));
}
