//! The state document as stored: the schema gate and the codec every store uses.
//!
//! Versions: an agent reads documents of its [`SCHEMA`] or older, and refuses a newer one
//! without writing (SAM updates the functions one by one, so for a while two agents share the
//! documents). A field added at the top level is not a schema change: an agent that does not
//! know it keeps it across its read-modify-write ([`ServiceState::unknown`]). A change an older
//! agent would get wrong (a field moved, a meaning changed, anything nested) bumps [`SCHEMA`].

use serde_json::Value;

use super::{ServiceState, SCHEMA};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error(
        "written by a newer agent (schema {found}; this one reads up to {SCHEMA}): \
         update this function; nothing was written"
    )]
    Newer { found: u64 },
    #[error("not a state document: {0}")]
    Malformed(String),
}

impl ServiceState {
    /// Reads a stored document: a newer schema is an error, unknown fields are kept.
    pub fn decode(bytes: &[u8]) -> Result<ServiceState, DocumentError> {
        let value: Value = serde_json::from_slice(bytes)
            .map_err(|e| DocumentError::Malformed(format!("not JSON (line {})", e.line())))?;
        match value.get("schema").and_then(Value::as_u64) {
            Some(found) if found > u64::from(SCHEMA) => Err(DocumentError::Newer { found }),
            _ => {
                let mut state: ServiceState = crate::json::typed(&value)
                    .map_err(|e| DocumentError::Malformed(e.to_string()))?;
                // Written back in this agent's schema: what it adds, older agents refuse.
                state.schema = SCHEMA;
                Ok(state)
            }
        }
    }

    /// The document as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a state document serialises")
    }
}
