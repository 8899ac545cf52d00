//! The images an environment needs kept, and the tag the agent protects each with.

use crate::image::{Digest, Image};
use crate::state::{ServiceState, Verdict};

/// What every protection tag starts with; the project's lifecycle policy keeps what carries
/// it, and `ecr-push` ignores a push of such a tag (the agent's own PutImage).
pub const PROTECTION_PREFIX: &str = "hm-keep-";

/// Releases that ran well kept besides the one running: what `rollback` and an alarm return
/// to (the history holds more, but a release this far back is re-pushed, not rolled back to).
pub const ROLLBACK_TARGETS_KEPT: usize = 3;

/// The tag protecting `digest` for `service` in `environment`: one per (environment, service,
/// digest), so two services running one image each hold their own, dropping one never
/// unprotects the other, and with immutable tags the tag is never moved. The whole digest, so
/// two images never share one. ECR tags are at most 128 characters ("PutImage", `imageTag`):
/// names too long to fit are replaced by their fingerprint.
pub fn protection_tag(environment: &str, service: &str, digest: &Digest) -> String {
    let hex = digest.as_str().trim_start_matches("sha256:");
    let tag = format!("{PROTECTION_PREFIX}{environment}-{service}-{hex}");
    if tag.len() <= 128 {
        return tag;
    }
    let names = crate::text::fingerprint(format!("{environment}/{service}").as_bytes());
    format!("{PROTECTION_PREFIX}{}-{hex}", &names[..16])
}

/// The images `state` needs kept, newest need first, one per digest: the release in flight,
/// the release waiting (an approval may take days), what runs (the last known good) and the
/// newest [`ROLLBACK_TARGETS_KEPT`] other releases that succeeded and are not marked bad.
pub fn kept_images(state: &ServiceState) -> Vec<Image> {
    let mut kept: Vec<Image> = Vec::new();
    let keep = |kept: &mut Vec<Image>, image: &Image| {
        if !kept.iter().any(|k| k.digest == image.digest) {
            kept.push(image.clone());
        }
    };
    if let Some(d) = &state.in_flight {
        keep(&mut kept, &d.release.image);
    }
    if let Some(p) = &state.pending {
        keep(&mut kept, &p.release.image);
    }
    if let Some(good) = &state.last_known_good {
        keep(&mut kept, &good.image);
    }
    let mut targets = 0;
    for h in &state.history {
        if targets == ROLLBACK_TARGETS_KEPT {
            break;
        }
        let good = h.verdict == Verdict::Succeeded && h.deployment_id.is_some();
        let new = !kept.iter().any(|k| k.digest == h.image.digest);
        if good && new && state.bad(&h.image.digest).is_none() {
            kept.push(h.image.clone());
            targets += 1;
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_protection_tag_is_an_ecr_tag_whatever_the_names() {
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        let short = protection_tag("prod", "web", &d);
        assert_eq!(short, format!("hm-keep-prod-web-{}", "ab".repeat(32)));
        let long = protection_tag(&"e".repeat(40), &"s".repeat(60), &d);
        assert!(
            long.len() <= 128 && long.starts_with(PROTECTION_PREFIX),
            "{long}"
        );
        assert_ne!(long, protection_tag(&"e".repeat(40), &"t".repeat(60), &d));
    }
}
