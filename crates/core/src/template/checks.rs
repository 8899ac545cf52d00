//! What a template must be before anything is rendered from it: RegisterTaskDefinition's input
//! fields only, named containers with images, no plaintext secrets, Fargate's network mode, and
//! only the placeholders the agent fills.

use serde_json::{Map, Value};

use super::{TemplateError, INPUT_FIELDS, OUTPUT_FIELDS, PLACEHOLDERS};

/// The template file errors point at.
pub(super) struct At<'a>(pub &'a str);

impl At<'_> {
    pub(super) fn err(&self, field: &str, problem: String) -> TemplateError {
        TemplateError {
            file: self.0.to_owned(),
            field: field.to_owned(),
            problem,
        }
    }
}

/// Every problem a template has, in the order a reader meets them.
pub(super) type Problems = Vec<TemplateError>;

pub(super) fn fields(at: &At<'_>, body: &Map<String, Value>, problems: &mut Problems) {
    for k in body.keys() {
        if OUTPUT_FIELDS.contains(&k.as_str()) {
            problems.push(at.err(
                k,
                "is part of DescribeTaskDefinition's output, not RegisterTaskDefinition's input: remove it".into(),
            ));
        } else if !INPUT_FIELDS.contains(&k.as_str()) {
            let why = match crate::config::closest(k, INPUT_FIELDS.iter().copied()) {
                Some(meant) => format!("unknown field; did you mean `{meant}`?"),
                None => format!("unknown field; allowed: {}", INPUT_FIELDS.join(", ")),
            };
            problems.push(at.err(k, why));
        }
    }
}

pub(super) fn containers(at: &At<'_>, body: &Map<String, Value>, problems: &mut Problems) {
    let Some(Value::Array(containers)) = body.get("containerDefinitions") else {
        let why = "required: a list of container definitions".into();
        return problems.push(at.err("containerDefinitions", why));
    };
    if containers.is_empty() {
        let why = "must hold at least one container".into();
        return problems.push(at.err("containerDefinitions", why));
    }
    let mut names = Vec::new();
    for (i, c) in containers.iter().enumerate() {
        let field = format!("containerDefinitions[{i}]");
        let Value::Object(c) = c else {
            problems.push(at.err(&field, "expected an object".into()));
            continue;
        };
        match c.get("name") {
            Some(Value::String(name)) if names.contains(name) => {
                let why = format!("`{name}` is used twice");
                problems.push(at.err(&format!("{field}.name"), why));
            }
            Some(Value::String(name)) => names.push(name.clone()),
            _ => problems.push(at.err(&format!("{field}.name"), "required: a string".into())),
        }
        if !matches!(c.get("image"), Some(Value::String(_))) {
            problems.push(at.err(&format!("{field}.image"), "required: a string".into()));
        }
        if let Some(env) = c.get("environment") {
            environment(at, &field, env, problems);
        }
    }
}

/// A container's plain variables: `{"name", "value"}` pairs, none of them a secret.
fn environment(at: &At<'_>, field: &str, env: &Value, problems: &mut Problems) {
    let Value::Array(env) = env else {
        return problems.push(at.err(&format!("{field}.environment"), "expected a list".into()));
    };
    for (j, kv) in env.iter().enumerate() {
        let entry = format!("{field}.environment[{j}]");
        let (Some(Value::String(n)), Some(Value::String(v))) = (kv.get("name"), kv.get("value"))
        else {
            let why = "expected {\"name\": …, \"value\": …} with string values".into();
            problems.push(at.err(&entry, why));
            continue;
        };
        if let Some(why) = crate::secrets::looks_like_secret(n, v) {
            let why = format!("`{n}`: {why}; put it in `secrets` as an SSM or Secrets Manager ARN");
            problems.push(at.err(&entry, why));
        }
    }
}

pub(super) fn fargate_mode(at: &At<'_>, body: &Map<String, Value>, problems: &mut Problems) {
    if body.get("networkMode").is_some_and(|m| m != "awsvpc") {
        problems.push(at.err("networkMode", "Fargate requires \"awsvpc\"".into()));
    }
    if let Some(rc) = body.get("requiresCompatibilities") {
        let ok = rc
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x == "FARGATE"));
        if !ok {
            let why = "must include \"FARGATE\"".into();
            problems.push(at.err("requiresCompatibilities", why));
        }
    }
}

pub(super) fn placeholders(at: &At<'_>, body: &Map<String, Value>, problems: &mut Problems) {
    let text = Value::Object(body.clone()).to_string();
    let known = |p: &str| PLACEHOLDERS.contains(&p).then_some("");
    if let Err(p) = super::placeholder::expand(&text, known) {
        let allowed: Vec<String> = PLACEHOLDERS.iter().map(|p| format!("${{{p}}}")).collect();
        let why = format!(
            "unknown placeholder `${{{p}}}`; allowed: {} (write `$${{…}}` for a literal `${{…}}`)",
            allowed.join(", ")
        );
        problems.push(at.err("", why));
    }
}
