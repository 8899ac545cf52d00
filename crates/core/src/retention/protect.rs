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
/// unprotects the other, and with immutable tags the tag is never moved (ECR tags are at most
/// 128 characters of `[A-Za-z0-9_.-]`; names are validated to fit).
pub fn protection_tag(environment: &str, service: &str, digest: &Digest) -> String {
    format!(
        "{PROTECTION_PREFIX}{environment}-{service}-{}",
        digest.short()
    )
}

/// The images `state` needs kept, newest need first, one per digest: the release in flight,
/// the release waiting (an approval may take days), what runs (the last known good) and the
/// newest [`ROLLBACK_TARGETS_KEPT`] releases that succeeded and are not marked bad.
pub fn kept_images(state: &ServiceState) -> Vec<Image> {
    let mut kept: Vec<Image> = Vec::new();
    let mut keep = |image: &Image| {
        if !kept.iter().any(|k| k.digest == image.digest) {
            kept.push(image.clone());
        }
    };
    if let Some(d) = &state.in_flight {
        keep(&d.release.image);
    }
    if let Some(p) = &state.pending {
        keep(&p.release.image);
    }
    if let Some(good) = &state.last_known_good {
        keep(&good.image);
    }
    let mut targets = 0;
    for h in &state.history {
        if targets == ROLLBACK_TARGETS_KEPT {
            break;
        }
        if h.verdict == Verdict::Succeeded
            && h.deployment_id.is_some()
            && state.bad(&h.image.digest).is_none()
        {
            keep(&h.image);
            targets += 1;
        }
    }
    kept
}
