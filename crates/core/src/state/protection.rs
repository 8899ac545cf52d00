//! The tags the agent put on images so that ECR's lifecycle rules keep them
//! ([`crate::retention`]), and how each stands: what the agent did, so it never repeats a
//! failure without bound and always takes off what it put.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::image::Image;

/// Tries at putting or taking off one tag, one a tick, before the agent stops and says so.
pub const PROTECTION_ATTEMPTS: u32 = 3;

/// One protection tag on one image of this service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Protection {
    /// `hm-keep-<environment>-<service>-<digest's first 12>`.
    pub tag: String,
    /// The image it keeps (repository and digest).
    pub image: Image,
    #[serde(flatten)]
    pub status: ProtectionStatus,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum ProtectionStatus {
    /// ECR carries the tag.
    Held { since: DateTime<Utc> },
    /// Putting the tag failed `attempts` times (the last at `at`); tried again next tick.
    Putting {
        attempts: u32,
        error: String,
        at: DateTime<Utc>,
    },
    /// Putting it failed [`PROTECTION_ATTEMPTS`] times: said once, not tried again while the
    /// image stays needed (the lifecycle rules may expire it; a rollback to it checks first).
    GaveUp { error: String, at: DateTime<Utc> },
    /// No longer needed, and taking the tag off failed `attempts` times; tried again next tick.
    Dropping {
        attempts: u32,
        error: String,
        at: DateTime<Utc>,
    },
}

impl Protection {
    /// ECR may carry the tag: it must be taken off once the image is no longer needed.
    pub fn on_image(&self) -> bool {
        matches!(
            self.status,
            ProtectionStatus::Held { .. } | ProtectionStatus::Dropping { .. }
        )
    }
}
