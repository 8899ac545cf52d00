//! Issue 32, finding 1: an image an environment runs, or can roll back to, is never expired.
//! The engine over in-memory ports with virtual time; ECR's lifecycle evaluation is
//! `retention::expired` (no emulator evaluates lifecycle policies), applied to the in-memory
//! registry as ECR would apply it: the expired images deleted.

use std::collections::BTreeMap;

use chrono::Duration;
use futures::executor::block_on;

use harbormaster_core::dispatch::{request_deploy, request_rollback, tick};
use harbormaster_core::image::{Digest, Image};
use harbormaster_core::machine::Outcome;
use harbormaster_core::memory::MemoryPorts;
use harbormaster_core::notify::NoticeKind;
use harbormaster_core::ports::{ErrorKind, PortError};
use harbormaster_core::retention::{expired, protection_tag, LifecyclePolicy, StoredImage};
use harbormaster_core::state::{ProtectionStatus, Verdict};
use harbormaster_core::testing::scenario::{self, now, protection_notes, send, CLUSTER};
use harbormaster_core::testing::{bundle, push_event};
use harbormaster_core::{Bundle, RunOptions, Target};

const PROD: &str = "booking-prod";

fn digest(n: u32) -> Digest {
    Digest::parse(&format!("sha256:{n:064x}")).unwrap()
}

fn world() -> (MemoryPorts, Bundle) {
    let ports = scenario::ports();
    ports.add_service(
        PROD,
        "web",
        "arn:aws:ecs:us-east-1:123456789012:task-definition/booking-prod-web:0",
    );
    (ports, bundle())
}

/// CI pushes `main-<n>`: the image is in ECR, then its push event arrives.
fn push(ports: &MemoryPorts, n: u32) -> Image {
    let image = Image {
        repository: "booking/web".into(),
        digest: digest(n),
        tag: Some(format!("main-{n:04}")),
        pushed_at: now(ports),
    };
    ports.with(|w| w.images.push(image.clone()));
    image
}

fn tick_once(ports: &MemoryPorts, b: &Bundle) -> Vec<String> {
    let r = block_on(tick(ports, b, RunOptions::default()));
    protection_notes(&r)
}

/// A person deploys `image` to prod by digest (it was promoted from dev) and ECS finishes it.
fn deploy_prod(ports: &MemoryPorts, b: &Bundle, image: &Image) {
    let reference = format!("booking/web@{}", image.digest);
    let prod = Target::new("prod", "web");
    let r = block_on(request_deploy(
        ports,
        b,
        &prod,
        &reference,
        "alice",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
    ports.complete(PROD, "web");
    tick_once(ports, b);
    let st = ports.state("prod", "web").unwrap();
    assert_eq!(st.history[0].verdict, Verdict::Succeeded);
}

/// A push to dev through the real dispatch, deployed and finished, an hour later each time.
fn push_to_dev(ports: &MemoryPorts, b: &Bundle, n: u32) {
    ports.advance(Duration::hours(1));
    let image = push(ports, n);
    let mut e = push_event(&format!("p{n}"), image.tag.as_deref().unwrap(), 'a', 0);
    e["detail"]["image-digest"] = serde_json::json!(image.digest.as_str());
    e["time"] = serde_json::json!(image.pushed_at.to_rfc3339());
    send(ports, b, &e);
    ports.complete(CLUSTER, "web");
    tick_once(ports, b);
}

/// The registry as ECR stores it: one image per digest with all its tags.
fn stored(ports: &MemoryPorts) -> Vec<StoredImage> {
    let mut by_digest: BTreeMap<Digest, StoredImage> = BTreeMap::new();
    for i in ports.with(|w| w.images.clone()) {
        let s = by_digest.entry(i.digest.clone()).or_insert(StoredImage {
            digest: i.digest.clone(),
            tags: Vec::new(),
            pushed_at: i.pushed_at,
            children: Vec::new(),
        });
        s.tags.extend(i.tag);
    }
    by_digest.into_values().collect()
}

/// The project's policy with the bootstrap's defaults, run as ECR runs it; what it expires is
/// deleted from the registry. Returns the expired digests.
fn lifecycle_runs(ports: &MemoryPorts) -> Vec<Digest> {
    let policy = LifecyclePolicy::project(&["*.*.*".into()], &["main-".into(), "pr-".into()], 30);
    let gone = expired(&policy, &stored(ports), now(ports));
    ports.with(|w| w.images.retain(|i| !gone.contains(&i.digest)));
    gone.into_iter().collect()
}

/// Prod runs `main-0002` and can roll back to `main-0001`, both promoted by digest (no release
/// tag keeps them); then forty pushes to main are deployed in dev.
fn forty_pushes_after_prod_released(ports: &MemoryPorts, b: &Bundle) -> (Image, Image) {
    let (p1, p2) = (push(ports, 1), push(ports, 2));
    deploy_prod(ports, b, &p1);
    ports.advance(Duration::minutes(10));
    deploy_prod(ports, b, &p2);
    for n in 100..140 {
        push_to_dev(ports, b, n);
    }
    (p1, p2)
}

/// A person's `harbormaster rollback --env prod --service web`.
fn roll_back_prod(ports: &MemoryPorts, b: &Bundle) -> harbormaster_core::TargetReport {
    let prod = Target::new("prod", "web");
    let opts = RunOptions::default();
    block_on(request_rollback(
        ports, b, &prod, None, false, "alice", opts,
    ))
    .unwrap()
}

fn has_tag(ports: &MemoryPorts, tag: &str) -> bool {
    ports.with(|w| w.images.iter().any(|i| i.tag.as_deref() == Some(tag)))
}

#[test]
fn finding_1_forty_pushes_to_dev_keep_prods_release_and_rollback_target_and_the_rollback_succeeds()
{
    let (ports, b) = world();
    let (p1, p2) = forty_pushes_after_prod_released(&ports, &b);
    for p in [&p1, &p2] {
        assert!(
            has_tag(&ports, &protection_tag("prod", "web", &p.digest)),
            "{} not protected",
            p.label()
        );
    }
    let gone = lifecycle_runs(&ports);
    assert!(
        !gone.contains(&p1.digest) && !gone.contains(&p2.digest),
        "{gone:?}"
    );
    // Old dev builds do go: the rules are not a no-op.
    assert!(gone.contains(&digest(100)), "{gone:?}");
    // Dev's own running build and rollback targets are protected the same way.
    assert!(
        !gone.contains(&digest(139)) && !gone.contains(&digest(136)),
        "{gone:?}"
    );

    let r = roll_back_prod(&ports, &b);
    assert!(matches!(r.outcome, Outcome::Started { .. }), "{r:?}");
    ports.complete(PROD, "web");
    tick_once(&ports, &b);
    let st = ports.state("prod", "web").unwrap();
    assert_eq!(
        st.history[0].verdict,
        Verdict::Succeeded,
        "{:?}",
        st.history[0]
    );
    assert_eq!(st.last_known_good.unwrap().image.digest, p1.digest);
}

#[test]
fn finding_1_without_protection_the_rollback_refuses_an_expired_image_and_says_why() {
    let (ports, b) = world();
    let (p1, _) = forty_pushes_after_prod_released(&ports, &b);
    // What the old rules did, or a person deleting images: p1's tags gone with the image.
    ports.with(|w| w.images.retain(|i| i.digest != p1.digest));
    let before = ports.with(|w| {
        w.services[&(PROD.to_string(), "web".to_string())]
            .task_definition
            .clone()
    });
    let r = roll_back_prod(&ports, &b);
    let st = ports.state("prod", "web").unwrap();
    let last = &st.history[0];
    assert_eq!(last.verdict, Verdict::RollbackFailed, "{r:?}");
    let reason = last.reason.clone().unwrap_or_default();
    assert!(reason.contains("no longer in ECR"), "{reason}");
    let after = ports.with(|w| {
        w.services[&(PROD.to_string(), "web".to_string())]
            .task_definition
            .clone()
    });
    assert_eq!(
        before, after,
        "the service was changed to an image that cannot be pulled"
    );
    assert!(ports.with(|w| w
        .published
        .iter()
        .any(|n| n.kind == NoticeKind::RollbackFailed)));
}

#[test]
fn finding_1_a_tag_that_always_fails_is_tried_three_times_one_a_tick_and_said_once() {
    let (ports, b) = world();
    let refused = PortError::new(
        ErrorKind::Denied,
        "PutImage",
        "AccessDeniedException: not authorized",
    );
    ports.with(|w| {
        for _ in 0..50 {
            w.faults.push_back(("PutImage".into(), refused.clone()));
        }
    });
    let p1 = push(&ports, 1);
    deploy_prod(&ports, &b, &p1);
    for _ in 0..8 {
        ports.advance(Duration::minutes(1));
        tick_once(&ports, &b);
    }
    // deploy_prod's own tick tried once; then one a tick until the third.
    assert_eq!(ports.count("PutImage"), 3);
    let unprotected = ports.with(|w| {
        w.published
            .iter()
            .filter(|n| n.kind == NoticeKind::Unprotected)
            .count()
    });
    assert_eq!(unprotected, 1);
    let st = ports.state("prod", "web").unwrap();
    assert!(
        matches!(st.protections[0].status, ProtectionStatus::GaveUp { .. }),
        "{:?}",
        st.protections
    );
}

#[test]
fn finding_1_a_protection_no_longer_needed_is_taken_off_and_a_repeat_is_harmless() {
    let (ports, b) = world();
    let p1 = push(&ports, 1);
    deploy_prod(&ports, &b, &p1);
    let tag1 = protection_tag("prod", "web", &p1.digest);
    assert!(has_tag(&ports, &tag1));
    // Four newer releases: p1 is no longer running nor among the three rollback targets.
    for n in 2..6 {
        ports.advance(Duration::minutes(10));
        let p = push(&ports, n);
        deploy_prod(&ports, &b, &p);
    }
    let notes = tick_once(&ports, &b);
    assert!(!has_tag(&ports, &tag1), "{notes:?}");
    // The image keeps its own tag: only the protection came off.
    assert!(has_tag(&ports, "main-0001"));
    let st = ports.state("prod", "web").unwrap();
    assert_eq!(st.protections.len(), 4, "{:?}", st.protections);
    // A tick with nothing to change makes no ECR call.
    let before = ports.with(|w| w.calls.len());
    tick_once(&ports, &b);
    let calls: Vec<String> = ports.with(|w| w.calls[before..].to_vec());
    assert!(
        !calls
            .iter()
            .any(|c| c.starts_with("PutImage") || c.starts_with("BatchDeleteImage")),
        "{calls:?}"
    );
}

/// Issue 33, item 5: one repository, two architectures (the example's web is ARM64, its worker
/// X86_64 for Fargate Spot). Before registering, the image's manifest must offer the task
/// definition's `cpuArchitecture`: an index built for amd64 only is refused for an ARM64
/// template, naming both, the service untouched; an index offering both deploys, and a
/// single-platform image (its platform is in its config blob, not read) is not refused.
#[test]
fn item_5_an_image_without_the_task_definitions_architecture_is_refused_before_registering() {
    let arm = harbormaster_core::testing::WEB_TEMPLATE.replacen(
        "\"cpu\"",
        "\"runtimePlatform\": {\"cpuArchitecture\": \"ARM64\", \"operatingSystemFamily\": \"LINUX\"}, \"cpu\"",
        1,
    );
    let source = harbormaster_core::memory::MemorySource(
        [
            (
                "harbormaster.toml".to_string(),
                harbormaster_core::testing::CONFIG.to_string(),
            ),
            ("taskdefs/web.json".to_string(), arm),
        ]
        .into_iter()
        .collect(),
    );
    let b = block_on(Bundle::load(&source)).unwrap();
    let ports = scenario::ports();
    let amd = push(&ports, 7);
    ports.with(|w| w.indexes.insert(amd.digest.clone(), vec!["amd64".into()]));
    let dev = Target::new("dev", "web");
    let reference = format!("booking/web@{}", amd.digest);
    block_on(request_deploy(
        &ports,
        &b,
        &dev,
        &reference,
        "alice",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    let st = ports.state("dev", "web").unwrap();
    let why = st.history[0].reason.clone().unwrap_or_default();
    assert_eq!(st.history[0].verdict, Verdict::Failed, "{why}");
    assert!(why.contains("amd64") && why.contains("ARM64"), "{why}");
    assert_eq!(ports.count("RegisterTaskDefinition"), 0);

    let both = push(&ports, 8);
    ports.with(|w| {
        w.indexes
            .insert(both.digest.clone(), vec!["amd64".into(), "arm64".into()])
    });
    let reference = format!("booking/web@{}", both.digest);
    block_on(request_deploy(
        &ports,
        &b,
        &dev,
        &reference,
        "alice",
        false,
        RunOptions::default(),
    ))
    .unwrap();
    assert_eq!(ports.count("RegisterTaskDefinition"), 1);
}
