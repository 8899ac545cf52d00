//! What ECR keeps: the lifecycle rules the project's repositories carry, ECR's evaluation of
//! them (to check a policy against a push history before a real registry runs it), and the
//! images each environment needs kept, which the agent protects with a tag of its own.
//!
//! ECR's rules cannot exclude ("Lifecycle policy evaluation rules", Amazon ECR User Guide): an
//! image matched by a higher-priority rule's tag selection is never expired by a lower one.
//! So protection is a rule placed first that selects the protected tags and whose count is
//! never reached; development tags beyond a count and untagged images after a day are expired
//! after it; nothing else is selected, so nothing else ever expires.

mod policy;
mod protect;
mod simulate;

pub use policy::{LifecyclePolicy, Rule, Selection, NEVER_REACHED};
pub use protect::{kept_images, protection_tag, PROTECTION_PREFIX, ROLLBACK_TARGETS_KEPT};
pub use simulate::{expired, StoredImage};
