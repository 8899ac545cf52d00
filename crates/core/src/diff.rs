//! What git says a service runs against what it runs, field by field, in a person's words:
//! `memory: 1024 → 2048`, `containerDefinitions[web].environment[FEATURE_X].value: added on`.
//!
//! Normalised so that what ECS does to a definition is no difference: only the fields git
//! sets are compared (ECS fills defaults and read-only fields in; they are not git's),
//! lists of named things (containers, variables, secrets) are matched by name whatever their
//! order, a number and its string are equal ("512" and 512), and the agent's own tags are left
//! out. A named thing ECS runs and git does not have is a difference (a variable removed).

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    pub path: String,
    /// What runs; `None`: not there.
    pub running: Option<String>,
    /// What git says; `None`: not there.
    pub desired: Option<String>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.running, &self.desired) {
            (None, Some(d)) => write!(f, "{}: added {d}", self.path),
            (Some(r), None) => write!(f, "{}: removed (was {r})", self.path),
            (Some(r), Some(d)) => write!(f, "{}: {r} → {d}", self.path),
            (None, None) => write!(f, "{}", self.path),
        }
    }
}

/// `desired`: a rendered task definition (RegisterTaskDefinition's input); `running`:
/// DescribeTaskDefinition's answer, with or without its `taskDefinition` wrapper.
pub fn task_definition(desired: &Value, running: &Value) -> Vec<Change> {
    let running = running.get("taskDefinition").unwrap_or(running);
    let mut out = Vec::new();
    if let (Value::Object(d), Value::Object(_)) = (desired, running) {
        let mut keys: Vec<&String> = d.keys().filter(|k| *k != "tags").collect();
        keys.sort();
        for k in keys {
            compare(k, &d[k.as_str()], running.get(k.as_str()), &mut out);
        }
    }
    out
}

fn shown(v: &Value) -> String {
    match v {
        Value::String(s) => crate::text::shown(s).into_owned(),
        other => other.to_string(),
    }
}

fn scalar_eq(a: &Value, b: &Value) -> bool {
    a == b || shown(a) == shown(b)
}

fn named(v: &Value) -> Option<Vec<(String, &Value)>> {
    let items = v.as_array()?;
    if items.is_empty() {
        return None;
    }
    items
        .iter()
        .map(|i| {
            i.get("name")
                .and_then(Value::as_str)
                .map(|n| (n.to_owned(), i))
        })
        .collect()
}

fn compare(path: &str, desired: &Value, running: Option<&Value>, out: &mut Vec<Change>) {
    let change = |r: Option<&Value>, d: Option<&Value>| Change {
        path: path.to_owned(),
        running: r.map(shown),
        desired: d.map(shown),
    };
    let running = running.filter(|r| !r.is_null());
    match (desired, running) {
        (Value::Null, _) => {}
        (_, None) => out.push(change(None, Some(desired))),
        (Value::Object(d), Some(Value::Object(r))) => {
            let mut keys: Vec<&String> = d.keys().collect();
            keys.sort();
            for k in keys {
                compare(
                    &format!("{path}.{k}"),
                    &d[k.as_str()],
                    r.get(k.as_str()),
                    out,
                );
            }
        }
        (Value::Array(_), Some(r)) => match (named(desired), named(r)) {
            (Some(d), Some(r)) => {
                for (name, item) in &d {
                    let there = r.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
                    compare(&format!("{path}[{name}]"), item, there, out);
                }
                for (name, item) in r.iter().filter(|(n, _)| !d.iter().any(|(m, _)| m == n)) {
                    out.push(Change {
                        path: format!("{path}[{name}]"),
                        running: Some(shown(item)),
                        desired: None,
                    });
                }
            }
            _ if desired != r => out.push(change(Some(r), Some(desired))),
            _ => {}
        },
        (d, Some(r)) if !scalar_eq(d, r) => out.push(change(Some(r), Some(d))),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn what_ecs_adds_or_reorders_is_no_difference_and_a_change_reads_well() {
        let desired = json!({
            "family": "booking-dev-web", "cpu": "512", "memory": "2048",
            "tags": [{"key": "harbormaster:deployment", "value": "d-2"}],
            "containerDefinitions": [{"name": "web", "image": "r@sha256:1", "essential": true,
                "environment": [{"name": "B", "value": "2"}, {"name": "FEATURE_X", "value": "on"}],
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/p"}]}]
        });
        let running = json!({"taskDefinition": {
            "taskDefinitionArn": "arn:td:3", "revision": 3, "status": "ACTIVE",
            "family": "booking-dev-web", "cpu": "512", "memory": "1024",
            "containerDefinitions": [{"name": "web", "image": "r@sha256:1", "essential": true,
                "cpu": 0, "mountPoints": [], "volumesFrom": [],
                "environment": [{"name": "OLD", "value": "x"}, {"name": "B", "value": "2"}],
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:1:parameter/p"}]}]
        }, "tags": [{"key": "harbormaster:deployment", "value": "d-1"}]});
        let changes: Vec<String> = task_definition(&desired, &running)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "containerDefinitions[web].environment[FEATURE_X]: added {\"name\":\"FEATURE_X\",\"value\":\"on\"}",
                "containerDefinitions[web].environment[OLD]: removed (was {\"name\":\"OLD\",\"value\":\"x\"})",
                "memory: 1024 → 2048",
            ]
        );
        let same = json!({"taskDefinition": desired.clone()});
        assert!(task_definition(&desired, &same).is_empty());
        // A number and its string are the same value.
        assert!(task_definition(&json!({"cpu": "512"}), &json!({"cpu": 512})).is_empty());
    }
}
