//! A deployment target: one service in one environment, the unit everything is decided for.

use std::fmt;

use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Target {
    pub environment: String,
    pub service: String,
}

impl Target {
    pub fn new(environment: impl Into<String>, service: impl Into<String>) -> Self {
        Target {
            environment: environment.into(),
            service: service.into(),
        }
    }

    /// The key of this target's state document in the state bucket.
    pub fn state_key(&self) -> String {
        crate::state::ServiceState::key(&self.environment, &self.service)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.environment, self.service)
    }
}
