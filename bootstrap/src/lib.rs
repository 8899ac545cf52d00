//! `harbormaster-bootstrap`: provisions the base an environment's services run on, found again
//! by its tags, so that `apply` is idempotent, `plan` says what `apply` would do, and `destroy`
//! removes it.
//!
//! Pure decisions in [`spec`] and [`model`]; AWS calls in [`cloud`]; sequencing in [`run`].
//! [`stacks`] renders the same base as CloudFormation (the project's stack and one per
//! environment), printed by `harbormaster-bootstrap template`: where the bootstrap is going
//! (issue 19).

pub mod cloud;
mod cloud_app;
pub mod model;
pub mod run;
pub mod spec;
pub mod stacks;
