//! Rendering a template for one target: placeholders filled, the image pinned by digest into
//! the service's containers, variables and secrets merged by name, the agent's tags added.

use serde_json::{json, Map, Value};

use super::{
    Placement, RenderedTaskDefinition, Template, TemplateError, TAG_DEPLOYMENT, TAG_DIGEST,
    TAG_ENVIRONMENT, TAG_SERVICE,
};
use crate::config::{Config, Environment, Service, TargetSettings};
use crate::image::Digest;

/// Everything rendering needs besides the template.
#[derive(Clone, Copy)]
pub struct RenderInput<'a> {
    pub config: &'a Config,
    pub environment: &'a Environment,
    pub service: &'a Service,
    pub target: &'a TargetSettings,
    pub digest: &'a Digest,
    pub placement: &'a Placement,
    pub deployment_id: &'a str,
}

impl Template {
    pub fn render(&self, input: &RenderInput<'_>) -> Result<RenderedTaskDefinition, TemplateError> {
        let RenderInput {
            config,
            environment,
            service,
            digest,
            placement,
            ..
        } = *input;
        let targets = self.image_containers(service)?;
        let repo_uri = format!(
            "{}.dkr.ecr.{}.amazonaws.com/{}",
            placement.account, placement.region, service.repository
        );
        let image = format!("{repo_uri}@{digest}");
        let vars = [
            ("project", config.project.as_str()),
            ("env", environment.name.as_str()),
            ("service", service.name.as_str()),
            ("account", placement.account.as_str()),
            ("region", placement.region.as_str()),
        ];
        let mut body = substitute(Value::Object(self.body.clone()), &vars);
        let obj = body.as_object_mut().expect("template body is an object");
        let family = obj
            .get("family")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}-{}-{}", config.project, environment.name, service.name));
        obj.insert("family".into(), Value::String(family.clone()));
        self.within_reach(&config.project, obj)?;

        if let Some(Value::Array(containers)) = obj.get_mut("containerDefinitions") {
            let ours = (containers.iter_mut())
                .filter(|c| {
                    targets
                        .iter()
                        .any(|t| c.get("name").and_then(Value::as_str) == Some(t))
                })
                .filter_map(Value::as_object_mut);
            for c in ours {
                fill_container(c, &image, input);
            }
        }
        let tags = agent_tags(obj, input);
        obj.insert("tags".into(), Value::Array(tags));
        Ok(RenderedTaskDefinition {
            family,
            body,
            image,
            containers: targets,
        })
    }
}

/// A container that runs the service's image: the image pinned by digest, the target's
/// variables and secrets (by ARN) merged over the template's by name.
fn fill_container(c: &mut Map<String, Value>, image: &str, input: &RenderInput<'_>) {
    let RenderInput {
        config,
        environment,
        target,
        placement,
        ..
    } = *input;
    c.insert("image".into(), Value::String(image.to_owned()));
    let variables = (target.variables.iter()).map(|(k, v)| json!({"name": k, "value": v}));
    merge_named(c, "environment", variables);
    let secrets = target.secrets.iter().map(|(k, s)| {
        let arn = s.value_from(
            &config.project,
            &environment.name,
            &placement.region,
            &placement.account,
        );
        json!({"name": k, "valueFrom": arn})
    });
    merge_named(c, "secrets", secrets);
}

/// The template's tags without any `harbormaster:` one, then the agent's own: the deployment,
/// the digest, the environment and the service.
fn agent_tags(obj: &Map<String, Value>, input: &RenderInput<'_>) -> Vec<Value> {
    let ours = [
        (TAG_DEPLOYMENT, input.deployment_id.to_owned()),
        (TAG_DIGEST, input.digest.to_string()),
        (TAG_ENVIRONMENT, input.environment.name.clone()),
        (TAG_SERVICE, input.service.name.clone()),
    ];
    let given = obj.get("tags").and_then(Value::as_array).cloned();
    let mut tags: Vec<Value> = (given.unwrap_or_default().into_iter())
        .filter(|t| {
            !(t.get("key").and_then(Value::as_str)).is_some_and(|k| k.starts_with("harbormaster:"))
        })
        .collect();
    tags.extend(ours.iter().map(|(k, v)| json!({"key": k, "value": v})));
    tags
}

impl Template {
    /// What the installed agent's roles can reach (deploy/template.yaml): ecs:TagResource on
    /// `task-definition/<project>-*`, iam:PassRole on `role/<project>-*`. A family or role
    /// outside is refused here, naming the field, rather than denied by IAM on every attempt.
    fn within_reach(&self, project: &str, body: &Map<String, Value>) -> Result<(), TemplateError> {
        let prefix = format!("{project}-");
        let err = |field: &str, problem: String| TemplateError {
            file: self.file.clone(),
            field: field.into(),
            problem,
        };
        let family = body
            .get("family")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !family.starts_with(&prefix) {
            return Err(err(
                "family",
                format!(
                    "must start with `{prefix}`: the agent may tag only those task definitions"
                ),
            ));
        }
        for field in ["executionRoleArn", "taskRoleArn"] {
            let Some(arn) = body.get(field).and_then(Value::as_str) else {
                continue;
            };
            let name = arn.split_once(":role/").map(|(_, n)| n).unwrap_or_default();
            if !name.starts_with(&prefix) {
                return Err(err(
                    field,
                    format!(
                        "must name a role `{prefix}…` (no path): the agent may pass only those"
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Config entries replace template entries with the same name; the rest of the template's stay.
fn merge_named(c: &mut Map<String, Value>, key: &str, entries: impl Iterator<Item = Value>) {
    let entries: Vec<Value> = entries.collect();
    if entries.is_empty() {
        return;
    }
    let names: Vec<String> = entries
        .iter()
        .filter_map(|e| e.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let mut list: Vec<Value> = c
        .get(key)
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| {
            !e.get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| names.iter().any(|x| x == n))
        })
        .collect();
    list.extend(entries);
    c.insert(key.into(), Value::Array(list));
}

fn substitute(v: Value, vars: &[(&str, &str)]) -> Value {
    match v {
        Value::String(s) if s.contains('$') => {
            let fill = |name: &str| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| *v);
            // Every placeholder was checked at parse; an unknown one cannot reach here.
            Value::String(super::placeholder::expand(&s, fill).unwrap_or(s))
        }
        Value::Array(a) => Value::Array(a.into_iter().map(|x| substitute(x, vars)).collect()),
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, x)| (k, substitute(x, vars)))
                .collect(),
        ),
        other => other,
    }
}
