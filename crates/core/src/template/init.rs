//! A template from a running service (`harbormaster init`): its task definition as ECS describes
//! it, made into what a team keeps in git.

use serde_json::{Map, Value};

use super::INPUT_FIELDS;

/// Where the revision runs, to turn back into placeholders.
pub struct Origin<'a> {
    pub environment: &'a str,
    pub account: &'a str,
    pub region: &'a str,
}

/// DescribeTaskDefinition's answer as a template: only RegisterTaskDefinition's input fields,
/// no defaults ECS filled in (empty lists, a container `cpu` of 0), no agent tags, each ECR
/// image as its repository (the image the agent pins), and the environment's name, the account
/// and the region as `${env}`, `${account}`, `${region}` wherever they appear as whole words.
/// Secrets stay as written: `valueFrom` ARNs; a plaintext `environment` value that looks like a
/// secret (by its name or its shape) is left out, and only its name is returned, for the team
/// to move into SSM: git never gets it.
pub struct Initial {
    pub template: Value,
    /// The ECR repositories of the containers' images.
    pub repositories: Vec<String>,
    /// Plaintext variables left out because they look like secrets, by name.
    pub secrets: Vec<String>,
}

pub fn template_from(described: &Value, origin: &Origin<'_>) -> Initial {
    let td = described.get("taskDefinition").unwrap_or(described);
    let mut out = Map::new();
    let mut repositories = Vec::new();
    let mut secrets = Vec::new();
    for (k, v) in td.as_object().into_iter().flatten() {
        if !INPUT_FIELDS.contains(&k.as_str()) || empty(v) {
            continue;
        }
        let v = match k.as_str() {
            "containerDefinitions" => containers(v, &mut repositories, &mut secrets),
            "tags" => Value::Array(
                (v.as_array().into_iter().flatten())
                    .filter(|t| {
                        !t["key"]
                            .as_str()
                            .is_some_and(|k| k.starts_with("harbormaster:"))
                    })
                    .cloned()
                    .collect(),
            ),
            _ => v.clone(),
        };
        if !empty(&v) {
            out.insert(k.clone(), v);
        }
    }
    Initial {
        template: placeholders(Value::Object(out), origin),
        repositories,
        secrets,
    }
}

fn empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn containers(v: &Value, repositories: &mut Vec<String>, secrets: &mut Vec<String>) -> Value {
    let items = v.as_array().into_iter().flatten().map(|c| {
        let mut c: Map<String, Value> = c.as_object().cloned().unwrap_or_default();
        if let Some(Value::Array(vars)) = c.get_mut("environment") {
            vars.retain(|var| {
                let name = var["name"].as_str().unwrap_or_default();
                let value = var["value"].as_str().unwrap_or_default();
                let secret = crate::secrets::looks_like_secret(name, value).is_some();
                if secret {
                    secrets.push(name.to_owned());
                }
                !secret
            });
        }
        // ECS's defaults: empty lists, a container `cpu` of 0.
        let default = |k: &str, v: &Value| empty(v) || (k == "cpu" && v == &Value::from(0));
        c.retain(|k, v| !default(k, v));
        if let Some(repo) = c
            .get("image")
            .and_then(Value::as_str)
            .and_then(ecr_repository)
        {
            repositories.push(repo.clone());
            c.insert("image".into(), Value::String(repo));
        }
        Value::Object(c)
    });
    Value::Array(items.collect())
}

/// `<account>.dkr.ecr.<region>.amazonaws.com/<repo>[:tag|@digest]` → `<repo>`.
fn ecr_repository(image: &str) -> Option<String> {
    let (host, rest) = image.split_once('/')?;
    if !host.contains(".dkr.ecr.") {
        return None;
    }
    let repo = rest.split('@').next()?;
    let repo = match repo.rsplit_once(':') {
        Some((r, _)) => r,
        None => repo,
    };
    Some(repo.to_owned())
}

fn placeholders(v: Value, o: &Origin<'_>) -> Value {
    match v {
        Value::String(s) => Value::String(
            [
                (o.account, "${account}"),
                (o.region, "${region}"),
                (o.environment, "${env}"),
            ]
            .iter()
            .fold(s, |s, (word, with)| replace_word(&s, word, with)),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| placeholders(x, o)).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| (k, placeholders(x, o)))
                .collect(),
        ),
        other => other,
    }
}

/// `word` replaced where it stands alone (not inside a longer name: `dev` in `booking-dev-web`,
/// not in `devops`).
fn replace_word(s: &str, word: &str, with: &str) -> String {
    if word.is_empty() {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(word) {
        let before = rest[..i].chars().next_back();
        let after = rest[i + word.len()..].chars().next();
        let alone = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric());
        out.push_str(&rest[..i]);
        out.push_str(if alone(before) && alone(after) {
            with
        } else {
            word
        });
        rest = &rest[i + word.len()..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_described_revision_becomes_a_template_with_placeholders() {
        let described = json!({"taskDefinition": {
            "taskDefinitionArn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/booking-dev-web:4",
            "revision": 4, "status": "ACTIVE", "family": "booking-dev-web",
            "executionRoleArn": "arn:aws:iam::123456789012:role/booking-dev-execution",
            "cpu": "256", "memory": "512", "volumes": [],
            "containerDefinitions": [{"name": "web", "cpu": 0, "mountPoints": [],
                "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/booking/web@sha256:ab",
                "secrets": [{"name": "DB", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/booking/dev/database/password"}],
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/devops-dev"}}}]
        }, "tags": []});
        let origin = Origin {
            environment: "dev",
            account: "123456789012",
            region: "eu-west-1",
        };
        let Initial {
            template: t,
            repositories: repos,
            secrets,
        } = template_from(&described, &origin);
        assert!(secrets.is_empty());
        assert_eq!(repos, ["booking/web"]);
        assert_eq!(t["family"], "booking-${env}-web");
        assert!(t.get("taskDefinitionArn").is_none() && t.get("volumes").is_none());
        let c = &t["containerDefinitions"][0];
        assert_eq!(c["image"], "booking/web");
        assert!(c.get("cpu").is_none() && c.get("mountPoints").is_none());
        assert_eq!(
            c["secrets"][0]["valueFrom"],
            "arn:aws:ssm:${region}:${account}:parameter/booking/${env}/database/password"
        );
        assert_eq!(
            c["logConfiguration"]["options"]["awslogs-group"],
            "/ecs/devops-${env}"
        );
        assert!(crate::template::Template::parse("t.json", &t.to_string()).is_ok());
    }

    /// Issue 32, finding 5: `init` copied the running revision's plaintext `environment` into
    /// git, secrets included. A value that looks like a secret is left out, by name.
    #[test]
    fn finding_5_a_plaintext_secret_of_the_running_revision_never_reaches_the_template() {
        let described = json!({"taskDefinition": {"family": "booking-dev-web",
        "containerDefinitions": [{"name": "web", "image": "booking/web:1",
            "environment": [
                {"name": "DEBUG", "value": "false"},
                {"name": "DATABASE_PASSWORD", "value": "hunter2-s3cret"},
                {"name": "STRIPE_API_KEY", "value": "sk_live_0123456789abcdef"}
            ]}]}});
        let origin = Origin {
            environment: "dev",
            account: "123456789012",
            region: "eu-west-1",
        };
        let initial = template_from(&described, &origin);
        assert_eq!(initial.secrets, ["DATABASE_PASSWORD", "STRIPE_API_KEY"]);
        let text = initial.template.to_string();
        assert!(
            !text.contains("hunter2") && !text.contains("sk_live"),
            "{text}"
        );
        let env = &initial.template["containerDefinitions"][0]["environment"];
        assert_eq!(env, &json!([{"name": "DEBUG", "value": "false"}]));
    }
}
