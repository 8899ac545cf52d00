//! Task definitions from native ECS task-definition JSON (what
//! `aws ecs register-task-definition --cli-input-json` takes), rendered per environment with the
//! image pinned by digest, variables merged, and secrets as `valueFrom` ARNs.

use std::fmt;

use serde_json::{json, Map, Value};

use crate::config::{Config, Environment, Service, TargetSettings};
use crate::image::Digest;

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

impl Template {
    pub fn parse(file: &str, text: &str) -> Result<Template, TemplateError> {
        let err = |field: &str, problem: String| TemplateError {
            file: file.to_owned(),
            field: field.to_owned(),
            problem,
        };
        let v: Value = serde_json::from_str(text).map_err(|e| {
            err(
                "",
                format!(
                    "not valid JSON (line {}, column {}): {e}",
                    e.line(),
                    e.column()
                ),
            )
        })?;
        let Value::Object(body) = v else {
            return Err(err("", "expected a JSON object (a task definition)".into()));
        };
        for k in body.keys() {
            if OUTPUT_FIELDS.contains(&k.as_str()) {
                return Err(err(
                    k,
                    "is part of DescribeTaskDefinition's output, not RegisterTaskDefinition's input: remove it".into(),
                ));
            }
            if !INPUT_FIELDS.contains(&k.as_str()) {
                return Err(err(
                    k,
                    format!("unknown field; allowed: {}", INPUT_FIELDS.join(", ")),
                ));
            }
        }
        let Some(Value::Array(containers)) = body.get("containerDefinitions") else {
            return Err(err(
                "containerDefinitions",
                "required: a list of container definitions".into(),
            ));
        };
        if containers.is_empty() {
            return Err(err(
                "containerDefinitions",
                "must hold at least one container".into(),
            ));
        }
        let mut names = Vec::new();
        for (i, c) in containers.iter().enumerate() {
            let at = format!("containerDefinitions[{i}]");
            let Value::Object(c) = c else {
                return Err(err(&at, "expected an object".into()));
            };
            let Some(Value::String(name)) = c.get("name") else {
                return Err(err(&format!("{at}.name"), "required: a string".into()));
            };
            if names.contains(name) {
                return Err(err(
                    &format!("{at}.name"),
                    format!("`{name}` is used twice"),
                ));
            }
            names.push(name.clone());
            if !matches!(c.get("image"), Some(Value::String(_))) {
                return Err(err(&format!("{at}.image"), "required: a string".into()));
            }
            if let Some(env) = c.get("environment") {
                let Value::Array(env) = env else {
                    return Err(err(&format!("{at}.environment"), "expected a list".into()));
                };
                for (j, kv) in env.iter().enumerate() {
                    let (Some(Value::String(n)), Some(Value::String(v))) =
                        (kv.get("name"), kv.get("value"))
                    else {
                        return Err(err(
                            &format!("{at}.environment[{j}]"),
                            "expected {\"name\": …, \"value\": …} with string values".into(),
                        ));
                    };
                    if let Some(why) = crate::secrets::looks_like_secret(n, v) {
                        return Err(err(
                            &format!("{at}.environment[{j}]"),
                            format!("`{n}`: {why}; put it in `secrets` as an SSM or Secrets Manager ARN"),
                        ));
                    }
                }
            }
        }
        if let Some(m) = body.get("networkMode") {
            if m != "awsvpc" {
                return Err(err("networkMode", "Fargate requires \"awsvpc\"".into()));
            }
        }
        if let Some(rc) = body.get("requiresCompatibilities") {
            let ok = rc
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == "FARGATE"));
            if !ok {
                return Err(err(
                    "requiresCompatibilities",
                    "must include \"FARGATE\"".into(),
                ));
            }
        }
        let cpu = body.get("cpu").ok_or_else(|| {
            err(
                "cpu",
                "required at task level for Fargate (e.g. \"256\" or \"0.25 vCPU\")".into(),
            )
        })?;
        let memory = body.get("memory").ok_or_else(|| {
            err(
                "memory",
                "required at task level for Fargate (e.g. \"512\" or \"1 GB\")".into(),
            )
        })?;
        let cpu = parse_cpu(cpu).ok_or_else(|| {
            err(
                "cpu",
                "expected CPU units (\"256\") or vCPU (\"0.25 vCPU\")".into(),
            )
        })?;
        let memory = parse_memory(memory)
            .ok_or_else(|| err("memory", "expected MiB (\"512\") or GB (\"1 GB\")".into()))?;
        check_fargate_size(cpu, memory).map_err(|p| err("memory", p))?;
        let text = Value::Object(body.clone()).to_string();
        for p in placeholders_in(&text) {
            if !PLACEHOLDERS.contains(&p.as_str()) {
                return Err(err(
                    "",
                    format!(
                        "unknown placeholder `${{{p}}}`; allowed: {}",
                        PLACEHOLDERS
                            .iter()
                            .map(|p| format!("${{{p}}}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        let mut body = body;
        body.insert("cpu".into(), Value::String(cpu.to_string()));
        body.insert("memory".into(), Value::String(memory.to_string()));
        body.entry("networkMode").or_insert_with(|| json!("awsvpc"));
        body.entry("requiresCompatibilities")
            .or_insert_with(|| json!(["FARGATE"]));
        Ok(Template {
            file: file.to_owned(),
            body,
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

    pub fn render(&self, input: &RenderInput<'_>) -> Result<RenderedTaskDefinition, TemplateError> {
        let RenderInput {
            config,
            environment,
            service,
            target,
            digest,
            placement,
            deployment_id,
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

        if let Some(Value::Array(containers)) = obj.get_mut("containerDefinitions") {
            for c in containers.iter_mut() {
                let name = c
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if !targets.contains(&name) {
                    continue;
                }
                let c = c.as_object_mut().expect("checked at parse");
                c.insert("image".into(), Value::String(image.clone()));
                merge_named(
                    c,
                    "environment",
                    target
                        .variables
                        .iter()
                        .map(|(k, v)| json!({"name": k, "value": v})),
                );
                merge_named(
                    c,
                    "secrets",
                    target.secrets.iter().map(|(k, s)| {
                        json!({
                            "name": k,
                            "valueFrom": s.value_from(&config.project, &environment.name, &placement.region, &placement.account)
                        })
                    }),
                );
            }
        }
        let ours = [
            (TAG_DEPLOYMENT, deployment_id.to_owned()),
            (TAG_DIGEST, digest.to_string()),
            (TAG_ENVIRONMENT, environment.name.clone()),
            (TAG_SERVICE, service.name.clone()),
        ];
        let mut tags: Vec<Value> = obj
            .get("tags")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| {
                !t.get("key")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.starts_with("harbormaster:"))
            })
            .collect();
        tags.extend(ours.iter().map(|(k, v)| json!({"key": k, "value": v})));
        obj.insert("tags".into(), Value::Array(tags));
        Ok(RenderedTaskDefinition {
            family,
            body,
            image,
            containers: targets,
        })
    }
}

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

fn image_names_repository(image: &str, repository: &str) -> bool {
    // `acct.dkr.ecr.region.amazonaws.com/booking/web:tag`, `booking/web`, `booking/web@sha…`
    let path = image.split(['@']).next().unwrap_or(image);
    let path = match path.rsplit_once(':') {
        Some((p, tag)) if !tag.contains('/') => p,
        _ => path,
    };
    path == repository || path.ends_with(&format!("/{repository}"))
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

fn placeholders_in(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let after = &rest[i + 2..];
        match after.find('}') {
            Some(j) => {
                out.push(after[..j].to_owned());
                rest = &after[j + 1..];
            }
            None => break,
        }
    }
    out
}

fn substitute(v: Value, vars: &[(&str, &str)]) -> Value {
    match v {
        Value::String(s) if s.contains("${") => {
            let mut s = s;
            for (k, val) in vars {
                s = s.replace(&format!("${{{k}}}"), val);
            }
            Value::String(s)
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

fn parse_cpu(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let s = s.trim();
            if let Some(v) = s.strip_suffix("vCPU").or_else(|| s.strip_suffix("vcpu")) {
                let f: f64 = v.trim().parse().ok()?;
                Some((f * 1024.0).round() as u32)
            } else {
                s.parse().ok()
            }
        }
        _ => None,
    }
}

fn parse_memory(v: &Value) -> Option<u32> {
    match v {
        Value::Number(n) => n.as_u64().and_then(|n| u32::try_from(n).ok()),
        Value::String(s) => {
            let s = s.trim();
            if let Some(v) = s.strip_suffix("GB").or_else(|| s.strip_suffix("gb")) {
                let f: f64 = v.trim().parse().ok()?;
                Some((f * 1024.0).round() as u32)
            } else {
                s.parse().ok()
            }
        }
        _ => None,
    }
}

/// AWS's table of Fargate task sizes (CPU units → allowed memory in MiB).
pub fn check_fargate_size(cpu: u32, memory: u32) -> Result<(), String> {
    let (lo, hi, step): (u32, u32, u32) = match cpu {
        256 => {
            return if [512, 1024, 2048].contains(&memory) {
                Ok(())
            } else {
                Err(format!(
                    "{memory} MiB is not allowed with cpu 256; allowed: 512, 1024, 2048"
                ))
            }
        }
        512 => (1024, 4096, 1024),
        1024 => (2048, 8192, 1024),
        2048 => (4096, 16384, 1024),
        4096 => (8192, 30720, 1024),
        8192 => (16384, 61440, 4096),
        16384 => (32768, 122880, 8192),
        other => {
            return Err(format!(
            "cpu {other} is not a Fargate size; allowed: 256, 512, 1024, 2048, 4096, 8192, 16384"
        ))
        }
    };
    if memory >= lo && memory <= hi && (memory - lo) % step == 0 {
        Ok(())
    } else {
        Err(format!(
            "{memory} MiB is not allowed with cpu {cpu}; allowed: {lo} to {hi} in steps of {step}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const WEB: &str = r#"{
      "family": "booking-${env}-web",
      "executionRoleArn": "arn:aws:iam::${account}:role/booking-${env}-execution",
      "cpu": "256", "memory": "512",
      "containerDefinitions": [
        {"name": "web", "image": "booking/web:latest", "essential": true,
         "portMappings": [{"containerPort": 8000}],
         "environment": [{"name": "DEBUG", "value": "false"}, {"name": "PORT", "value": "8000"}]},
        {"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"}
      ]
    }"#;

    fn cfg() -> Config {
        Config::parse("harbormaster.toml", crate::testing::CONFIG).unwrap()
    }

    fn render(t: &Template, cfg: &Config) -> RenderedTaskDefinition {
        let (e, s, tg) = cfg.target("dev", "web").unwrap();
        let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
        t.render(&RenderInput {
            config: cfg,
            environment: e,
            service: s,
            target: tg,
            digest: &d,
            placement: &Placement {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
            },
            deployment_id: "d-1",
        })
        .unwrap()
    }

    #[test]
    fn renders_the_image_by_digest_only_into_the_service_containers() {
        let t = Template::parse("web.json", WEB).unwrap();
        let r = render(&t, &cfg());
        let c = &r.body["containerDefinitions"];
        assert_eq!(
            c[0]["image"],
            format!(
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/booking/web@sha256:{}",
                "ab".repeat(32)
            )
        );
        assert_eq!(
            c[1]["image"],
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
        );
        assert_eq!(r.family, "booking-dev-web");
        assert_eq!(
            r.body["executionRoleArn"],
            "arn:aws:iam::123456789012:role/booking-dev-execution"
        );
        assert_eq!(r.body["networkMode"], "awsvpc");
        assert_eq!(r.body["requiresCompatibilities"], json!(["FARGATE"]));
    }

    #[test]
    fn variables_override_by_name_and_secrets_are_arns() {
        let t = Template::parse("web.json", WEB).unwrap();
        let r = render(&t, &cfg());
        let c = &r.body["containerDefinitions"][0];
        let env = c["environment"].as_array().unwrap();
        let debug: Vec<_> = env.iter().filter(|e| e["name"] == "DEBUG").collect();
        assert_eq!(debug.len(), 1);
        assert_eq!(debug[0]["value"], "true");
        assert!(env.iter().any(|e| e["name"] == "PORT"));
        assert_eq!(
            c["secrets"],
            json!([{"name": "DATABASE_PASSWORD", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/booking/dev/database/password"}])
        );
        assert!(r.body["containerDefinitions"][1].get("secrets").is_none());
        let tags = r.body["tags"].as_array().unwrap();
        assert!(tags.contains(&json!({"key": TAG_DEPLOYMENT, "value": "d-1"})));
    }

    #[test]
    fn fargate_sizes_follow_the_aws_table() {
        let ok = [
            (256, 512),
            (256, 2048),
            (512, 4096),
            (1024, 8192),
            (2048, 4096),
            (4096, 30720),
            (8192, 16384 + 4096 * 3),
            (16384, 122880),
        ];
        for (c, m) in ok {
            assert!(check_fargate_size(c, m).is_ok(), "{c}/{m}");
        }
        let bad = [
            (256, 4096),
            (512, 512),
            (1024, 9216),
            (8192, 17408),
            (300, 1024),
            (16384, 32768 + 4096),
        ];
        for (c, m) in bad {
            assert!(check_fargate_size(c, m).is_err(), "{c}/{m}");
        }
    }

    #[test]
    fn template_errors_name_file_and_field() {
        let cases = [
            (
                WEB.replace("\"memory\": \"512\"", "\"memory\": \"4096\""),
                "memory",
            ),
            (WEB.replace("\"family\"", "\"famliy\""), "famliy"),
            (
                WEB.replace("\"family\"", "\"taskDefinitionArn\""),
                "taskDefinitionArn",
            ),
            (
                WEB.replace("\"value\": \"false\"", "\"value\": \"postgres://u:p@h/db\""),
                "containerDefinitions[0].environment[0]",
            ),
            (WEB.replace("${env}-web", "${stage}-web"), ""),
            (WEB.replace("\"cpu\": \"256\", ", ""), "cpu"),
        ];
        for (text, field) in cases {
            let e = Template::parse("taskdefs/web.json", &text).unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().starts_with("taskdefs/web.json"), "{e}");
        }
        let e = Template::parse("t.json", "{ nope").unwrap_err();
        assert!(e.problem.contains("line 1"), "{e}");
    }

    #[test]
    fn vcpu_and_gb_forms_are_normalised() {
        let t = Template::parse(
            "t.json",
            &WEB.replace("\"256\"", "\"0.5 vCPU\"")
                .replace("\"512\"", "\"1 GB\""),
        )
        .unwrap();
        let r = render(&t, &cfg());
        assert_eq!(
            (r.body["cpu"].as_str(), r.body["memory"].as_str()),
            (Some("512"), Some("1024"))
        );
    }
}
