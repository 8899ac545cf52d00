//! Typed reads of JSON from outside (events, job payloads) whose errors name the path of the
//! bad field and what was expected, never the value found: serde's own message quotes it
//! ("invalid type: string \"AKIA…\""), and a field may hold a credential.

use serde::de::DeserializeOwned;
use serde_json::Value;

/// Where the JSON was wrong, and how, in words that carry no value from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonError {
    /// `detail.image-tag`, `CodePipeline.job.data.artifactCredentials`; empty for the root.
    pub path: String,
    pub problem: String,
}

impl std::fmt::Display for JsonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.path.as_str() {
            "" => write!(f, "the document {}", self.problem),
            p => write!(f, "`{p}` {}", self.problem),
        }
    }
}

pub fn typed<T: DeserializeOwned>(value: &Value) -> Result<T, JsonError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = e.inner().to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        if let Some(rest) = message.strip_prefix("missing field `") {
            // The name is the schema's, not the input's.
            let field = rest.trim_end_matches('`');
            let path = match path.as_str() {
                "" => field.to_owned(),
                p => format!("{p}.{field}"),
            };
            return JsonError {
                path,
                problem: "is missing".into(),
            };
        }
        let problem = match message.split_once(", expected ") {
            Some((_, expected)) => format!("has the wrong type or value; expected {expected}"),
            None => "is invalid".into(),
        };
        JsonError { path, problem }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Outer {
        inner: Inner,
        list: Vec<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        key: String,
    }

    #[test]
    fn the_path_and_the_expectation_are_named_never_the_value() {
        let e = typed::<Outer>(&serde_json::json!({"inner": {"key": 7}, "list": []})).unwrap_err();
        assert_eq!(e.path, "inner.key");
        assert_eq!(e.problem, "has the wrong type or value; expected a string");
        let e =
            typed::<Outer>(&serde_json::json!({"inner": {"key": "k"}, "list": [{}]})).unwrap_err();
        assert_eq!(
            (e.path.as_str(), e.problem.as_str()),
            ("list[0].key", "is missing")
        );
        let e = typed::<Outer>(&serde_json::json!({"inner": "SECRET"})).unwrap_err();
        assert_eq!(e.path, "inner");
        assert!(!e.to_string().contains("SECRET"), "{e}");
    }
}
