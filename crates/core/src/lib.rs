//! Harbormaster's pure domain: config and validation, events, release policy, the deployment
//! state machine, notifications, and the runner that drives the machine through ports.
//!
//! No AWS SDK, no I/O of its own, no clock: adapters implement [`ports`].

pub mod bundle;
pub mod config;
pub mod dispatch;
pub mod engine;
pub mod event;
pub mod image;
pub mod machine;
pub mod memory;
pub mod notify;
pub mod ports;
pub mod secrets;
pub mod state;
pub mod template;
pub mod testing;

pub use bundle::Bundle;
pub use engine::{run, RunOptions, TargetReport};
