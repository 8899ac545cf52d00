//! `harbormaster-bootstrap`: an environment's base as CloudFormation, rendered from
//! `harbormaster.toml` — the project's stack (what every environment shares: repositories,
//! the state bucket, the topic) and one stack per environment — and driven with change sets.
//!
//! Pure: [`spec`] (the config, checked), [`stacks`] (the templates), [`changes`] (a change set
//! in the bootstrap's words). AWS calls: [`cloud`]. The verbs: [`apply`] (plan and apply) and
//! [`destroy`].

pub mod apply;
pub mod changes;
pub mod cloud;
pub mod destroy;
pub mod spec;
pub mod stacks;
