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

/// The service's own settings git owns (`desired` as an UpdateService would set them, `running`
/// as ECS describes them), named by their keys in `harbormaster.toml`: `desired_count: 1 → 3`.
/// What git leaves as it is (no count, no capacity, no alarms, no network) is not compared.
pub fn service(
    desired: &crate::ports::LiveSettings,
    desired_count: Option<u32>,
    running: &crate::ports::LiveSettings,
    running_count: i32,
) -> Vec<Change> {
    let count = (
        "desired_count",
        (
            Some(running_count.to_string()),
            desired_count.map(|c| c.to_string()),
        ),
    );
    let settings = (desired.fields().into_iter())
        .zip(running.fields())
        .map(|((path, want), (_, have))| (path, (have, want)));
    std::iter::once(count)
        .chain(settings)
        .filter(|(_, (running, desired))| desired.is_some() && running != desired)
        .map(|(path, (running, desired))| Change {
            path: format!("service.{path}"),
            running,
            desired,
        })
        .collect()
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

#[cfg(test)]
mod service_tests {
    use crate::ports::LiveSettings;
    use crate::service::{CapacityItem, Network};

    /// Every setting git owns is compared by its name in `harbormaster.toml`; what git leaves as
    /// it is (no count, no capacity, no alarms, no network) is not.
    #[test]
    fn service_settings_differ_field_by_field_by_their_names_in_git() {
        let item = |p: &str, w, b| CapacityItem {
            provider: p.into(),
            weight: w,
            base: b,
        };
        let git = LiveSettings {
            min_healthy_percent: Some(100),
            max_percent: Some(200),
            health_check_grace_period_seconds: Some(60),
            capacity: vec![item("FARGATE", 1, 1), item("FARGATE_SPOT", 3, 0)],
            platform_version: None,
            execute_command: true,
            propagate_tags: Some("SERVICE".into()),
            load_balancers: vec![("web".into(), 8000, "tg/blue".into())],
            alarms: vec!["b".into(), "a".into()],
            network: Some(Network {
                subnets: vec!["s2".into(), "s1".into()],
                security_groups: vec![],
                assign_public_ip: false,
            }),
        };
        let mut ecs = git.clone();
        ecs.alarms = vec!["a".into(), "b".into()];
        ecs.network.as_mut().unwrap().subnets = vec!["s1".into(), "s2".into()];
        ecs.network.as_mut().unwrap().security_groups = vec!["sg-from-the-bootstrap".into()];
        ecs.platform_version = Some("LATEST".into());
        assert_eq!(
            super::service(&git, Some(2), &ecs, 2),
            vec![],
            "as git says"
        );

        ecs.capacity = vec![item("FARGATE", 1, 0)];
        ecs.execute_command = false;
        ecs.min_healthy_percent = Some(50);
        ecs.alarms.clear();
        let changes: Vec<String> = super::service(&git, Some(3), &ecs, 2)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            changes,
            [
                "service.desired_count: 2 → 3",
                "service.min_healthy_percent: 50 → 100",
                "service.capacity: FARGATE weight 1 base 0 → FARGATE weight 1 base 1, FARGATE_SPOT weight 3 base 0",
                "service.enable_execute_command: false → true",
                "service.rollback_alarms: added a, b",
            ]
        );
        // A count that belongs to the scaler is not git's.
        assert!(super::service(&git, None, &ecs, 7)
            .iter()
            .all(|c| c.path != "service.desired_count"));
    }
}
