//! Harbormaster's pure domain: config and validation, events, release policy, the deployment
//! state machine, notifications, and the runner that drives the machine through ports.
//!
//! No AWS SDK, no I/O of its own, no clock: adapters implement [`ports`].

pub mod alarm;
pub mod bundle;
pub mod config;
pub mod diff;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod image;
pub mod json;
pub mod machine;
#[cfg(any(test, feature = "testing"))]
pub mod memory;
pub mod notify;
pub mod pipeline;
pub mod ports;
pub mod publish;
pub mod retention;
pub mod scaling;
pub mod secrets;
pub mod service;
pub mod state;
pub mod strategy;
pub mod target;
pub mod template;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod text;

pub use bundle::Bundle;
pub use engine::{run, RunOptions, TargetReport};
pub use target::Target;

#[cfg(test)]
mod purity {
    /// The core stays pure: the SDK lives in the adapters. A dependency slipping in fails here.
    #[test]
    fn no_aws_sdk_crate_is_a_dependency_of_the_core() {
        let manifest = include_str!("../Cargo.toml");
        for line in manifest.lines() {
            let name = line.split(['=', '.']).next().unwrap_or("").trim();
            assert!(
                !name.starts_with("aws-sdk-")
                    && !name.starts_with("aws-config")
                    && !name.starts_with("aws-smithy"),
                "crates/core must not depend on {name}"
            );
        }
    }
}
