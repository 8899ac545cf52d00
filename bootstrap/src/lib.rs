//! `harbormaster-bootstrap`: an environment's base as CloudFormation, rendered from
//! `harbormaster.toml` — the project's stack (what every environment shares: repositories,
//! the state bucket, the topic) and one stack per environment — and driven with change sets.
//!
//! Pure: [`spec`] (the config's bootstrap table, checked; in the core), [`stacks`] (the templates), [`changes`] (a change set
//! in the bootstrap's words). AWS calls: [`cloud`]. The verbs: [`apply`] (plan and apply) and
//! [`destroy`].

pub mod apply;
pub mod changes;
pub mod cloud;
pub mod destroy;
/// The bootstrap table of the config, checked: the core's, which `harbormaster validate` uses too.
pub use harbormaster_core::config::bootstrap as spec;
pub mod stacks;
