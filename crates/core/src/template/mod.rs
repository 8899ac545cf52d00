//! Task definitions from native ECS task-definition JSON (what
//! `aws ecs register-task-definition --cli-input-json` takes), rendered per environment with the
//! image pinned by digest, variables merged, and secrets as `valueFrom` ARNs.

use std::fmt;

use serde_json::{json, Map, Value};

mod checks;
mod fargate;
pub mod init;
mod placeholder;
mod render;

pub use fargate::check_fargate_size;
pub use render::RenderInput;

use crate::config::Service;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct TemplateError {
    pub file: String,
    /// Where in the JSON, e.g. `containerDefinitions[1].image`.
    pub field: String,
    pub problem: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file, self.problem)
        } else {
            write!(f, "{}: `{}`: {}", self.file, self.field, self.problem)
        }
    }
}

/// The input fields of RegisterTaskDefinition. Anything else in a template is a mistake that
/// AWS would reject, or worse ignore.
const INPUT_FIELDS: &[&str] = &[
    "family",
    "taskRoleArn",
    "executionRoleArn",
    "networkMode",
    "containerDefinitions",
    "volumes",
    "placementConstraints",
    "requiresCompatibilities",
    "cpu",
    "memory",
    "tags",
    "pidMode",
    "ipcMode",
    "proxyConfiguration",
    "inferenceAccelerators",
    "ephemeralStorage",
    "runtimePlatform",
    "enableFaultInjection",
];

/// Fields of DescribeTaskDefinition's output that people paste into templates.
const OUTPUT_FIELDS: &[&str] = &[
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

const PLACEHOLDERS: &[&str] = &["project", "env", "service", "account", "region"];

/// A parsed, checked template. Checking happens when the config is loaded, so that a bad template
/// fails before any deployment starts.
#[derive(Debug, Clone)]
pub struct Template {
    pub file: String,
    body: Map<String, Value>,
    /// What was changed in reading it (a DescribeTaskDefinition output unwrapped), for
    /// `validate` and `render` to say once.
    pub notes: Vec<String>,
}

/// Where the rendered definition will run: filled from config, STS or the event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub account: String,
    pub region: String,
}

/// What RegisterTaskDefinition will be sent.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderedTaskDefinition {
    pub family: String,
    /// The request body, in the wire format of RegisterTaskDefinition.
    pub body: Value,
    /// `repo-uri@sha256:…`
    pub image: String,
    pub containers: Vec<String>,
}

pub const TAG_DEPLOYMENT: &str = "harbormaster:deployment";
pub const TAG_DIGEST: &str = "harbormaster:digest";
pub const TAG_ENVIRONMENT: &str = "harbormaster:environment";
pub const TAG_SERVICE: &str = "harbormaster:service";

/// The AWS CLI's `describe-task-definition` output (`{"taskDefinition": …, "tags": …}`) as a
/// template: the wrapper and the read-only fields go, the tags come in; said in one note.
/// Anything else is returned as it is.
fn described(mut body: Map<String, Value>) -> (Map<String, Value>, Vec<String>) {
    let Some(Value::Object(mut td)) = body.remove("taskDefinition") else {
        return (body, Vec::new());
    };
    let dropped: Vec<&str> = OUTPUT_FIELDS
        .iter()
        .copied()
        .filter(|f| td.remove(*f).is_some())
        .collect();
    if let Some(tags) = body
        .remove("tags")
        .filter(|t| t.as_array().is_some_and(|t| !t.is_empty()))
    {
        td.insert("tags".into(), tags);
    }
    let fields = match dropped.as_slice() {
        [] => String::new(),
        d => format!(" and the read-only fields {}", d.join(", ")),
    };
    let note = format!(
        "read as DescribeTaskDefinition output: dropped the `taskDefinition` wrapper{fields}"
    );
    (td, vec![note])
}

impl Template {
    /// Reads a template, checking what AWS would refuse before anything is registered: the
    /// first problem (see [`Template::parse_all`] for every one).
    pub fn parse(file: &str, text: &str) -> Result<Template, TemplateError> {
        Template::parse_all(file, text).map_err(|mut problems| problems.remove(0))
    }

    /// The same, with every problem of the template at once (never an empty list), so one run
    /// of `validate` finds them all.
    pub fn parse_all(file: &str, text: &str) -> Result<Template, Vec<TemplateError>> {
        let at = checks::At(file);
        let v: Value = serde_json::from_str(text).map_err(|e| {
            let (line, column) = (e.line(), e.column());
            vec![at.err(
                "",
                format!("not valid JSON (line {line}, column {column}): {e}"),
            )]
        })?;
        let Value::Object(body) = v else {
            return Err(vec![
                at.err("", "expected a JSON object (a task definition)".into())
            ]);
        };
        let (mut body, notes) = described(body);
        let mut problems = Vec::new();
        checks::fields(&at, &body, &mut problems);
        checks::containers(&at, &body, &mut problems);
        checks::fargate_mode(&at, &body, &mut problems);
        let size = fargate::size(&at, &body, &mut problems);
        checks::placeholders(&at, &body, &mut problems);
        let Some((cpu, memory)) = size.filter(|_| problems.is_empty()) else {
            return Err(problems);
        };
        body.insert("cpu".into(), Value::String(cpu.to_string()));
        body.insert("memory".into(), Value::String(memory.to_string()));
        body.entry("networkMode").or_insert_with(|| json!("awsvpc"));
        body.entry("requiresCompatibilities")
            .or_insert_with(|| json!(["FARGATE"]));
        Ok(Template {
            file: file.to_owned(),
            body,
            notes,
        })
    }

    fn container_names(&self) -> Vec<String> {
        self.containers()
            .iter()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    }

    fn containers(&self) -> &[Value] {
        self.body
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }

    /// `runtimePlatform`'s CPU architecture and operating system family, where the template
    /// gives them (ECS's defaults are X86_64 and LINUX).
    pub fn runtime_platform(&self) -> (Option<&str>, Option<&str>) {
        let platform = self.body.get("runtimePlatform");
        let field = |k: &str| platform.and_then(|p| p.get(k)).and_then(Value::as_str);
        (field("cpuArchitecture"), field("operatingSystemFamily"))
    }

    /// Whether the template names a task role (`taskRoleArn`).
    pub fn has_task_role(&self) -> bool {
        self.body
            .get("taskRoleArn")
            .and_then(Value::as_str)
            .is_some_and(|r| !r.is_empty())
    }

    /// The containers that run the service's image: those named in config, else those whose
    /// template image names the repository, else the only container.
    pub fn image_containers(&self, service: &Service) -> Result<Vec<String>, TemplateError> {
        let names = self.container_names();
        let err = |field: String, problem: String| TemplateError {
            file: self.file.clone(),
            field,
            problem,
        };
        if let Some(wanted) = &service.containers {
            for w in wanted {
                if !names.contains(w) {
                    return Err(err(
                        format!("services.{}.containers", service.name),
                        format!(
                            "no container `{w}` in the template; it has: {}",
                            names.join(", ")
                        ),
                    ));
                }
            }
            return Ok(wanted.clone());
        }
        let by_repo: Vec<String> = self
            .containers()
            .iter()
            .filter(|c| {
                c.get("image")
                    .and_then(Value::as_str)
                    .is_some_and(|i| image_names_repository(i, &service.repository))
            })
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect();
        match (by_repo.is_empty(), names.len()) {
            (false, _) => Ok(by_repo),
            (true, 1) => Ok(names),
            _ => Err(err(
                "containerDefinitions".into(),
                format!(
                    "no container's image names repository `{}`; set `services.{}.containers`",
                    service.repository, service.name
                ),
            )),
        }
    }
}

pub(crate) fn image_names_repository(image: &str, repository: &str) -> bool {
    // `acct.dkr.ecr.region.amazonaws.com/booking/web:tag`, `booking/web`, `booking/web@sha…`
    let path = image.split(['@']).next().unwrap_or(image);
    let path = match path.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => p,
        _ => path,
    };
    path == repository || path.ends_with(&format!("/{repository}"))
}

#[cfg(test)]
mod tests;
