//! A proxy in front of the emulator that refuses what AWS refuses and the emulator accepts:
//! every end-to-end `World` sends the agent's and the CLI's calls through it, so a feature that
//! would break in a real account breaks in the tests first. Each rule is a table entry citing
//! its source, with a request that breaks it; `the_table_is_pinned` fails when one goes.
//!
//! Rules that need what the service remembers (a service's strategy, a revision's task role)
//! learn it from the requests the proxy let through and the answers to them. What the emulator
//! itself gets wrong the other way (answers more than AWS) is put right in
//! `ministack_as_aws.py`; what only a scenario can play (a task unknown right after RunTask) is
//! a rule of the in-memory ECS.

use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::proxy::{connect, operation_of, read_message, Message, Pair};

/// What the rules remember of the account, learned through the proxy.
#[derive(Debug, Default)]
pub struct Seen {
    /// `cluster/service` → its capacity provider strategy as last accepted (empty: launch type).
    pub strategies: BTreeMap<String, Vec<Value>>,
    /// Task definition ARN → whether it names a task role.
    pub task_roles: BTreeMap<String, bool>,
    /// Cluster name → its capacity providers, as DescribeClusters answered just before.
    pub cluster_providers: BTreeMap<String, Vec<String>>,
}

/// One of AWS's rules: the operation it applies to, where AWS says so, and the refusal.
pub struct Rule {
    pub name: &'static str,
    pub operation: &'static str,
    pub source: &'static str,
    /// The refusal's message when `request` breaks the rule.
    pub check: fn(&Value, &Seen) -> Option<String>,
    /// A request that breaks it, and what the proxy must have seen before (for the pin test).
    pub sample: fn() -> (Value, Seen),
}

fn service_key(r: &Value) -> String {
    let cluster = r["cluster"].as_str().unwrap_or("default");
    let cluster = cluster.rsplit('/').next().unwrap_or(cluster);
    let service = r["service"]
        .as_str()
        .or(r["serviceName"].as_str())
        .unwrap_or("");
    let service = service.rsplit('/').next().unwrap_or(service);
    format!("{cluster}/{service}")
}

fn cluster_of(r: &Value) -> String {
    let cluster = r["cluster"].as_str().unwrap_or("default");
    cluster.rsplit('/').next().unwrap_or(cluster).to_owned()
}

/// A strategy naming a provider the cluster does not have.
fn foreign_provider(r: &Value, seen: &Seen) -> Option<String> {
    let providers = seen.cluster_providers.get(&cluster_of(r))?;
    let foreign = (strategy(r)?.iter())
        .filter_map(|i| i["capacityProvider"].as_str())
        .find(|p| !providers.iter().any(|x| x == p))?
        .to_owned();
    Some(format!(
        "The specified capacity provider strategy cannot contain a capacity provider that is not associated with the cluster. Associate the capacity provider with the cluster or specify a valid capacity provider and try again. ({foreign})"
    ))
}

fn foreign_sample() -> (Value, Seen) {
    let mut seen = Seen::default();
    seen.cluster_providers
        .insert("c".into(), vec!["FARGATE".into()]);
    let r = serde_json::json!({"cluster": "c", "service": "web", "serviceName": "web", "taskDefinition": "td:1",
        "forceNewDeployment": true,
        "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]});
    (r, seen)
}

fn strategy(r: &Value) -> Option<Vec<Value>> {
    r["capacityProviderStrategy"].as_array().cloned()
}

pub const RULES: &[Rule] = &[
    Rule {
        name: "a strategy change needs a forced deployment",
        operation: "ecs:UpdateService",
        source: "UpdateService API reference, capacityProviderStrategy: to change a service's strategy, or to move a launch type to one, you must force a new deployment",
        check: |r, seen| {
            let new = strategy(r).filter(|s| !s.is_empty())?;
            let old = seen.strategies.get(&service_key(r))?;
            let forced = r["forceNewDeployment"].as_bool() == Some(true);
            (*old != new && !forced).then(|| {
                "When switching the capacity provider strategy on a service, you must force a new deployment.".into()
            })
        },
        sample: || {
            let mut seen = Seen::default();
            seen.strategies.insert("c/web".into(), vec![serde_json::json!({"capacityProvider": "FARGATE", "weight": 1})]);
            let r = serde_json::json!({"cluster": "c", "service": "web",
                "capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]});
            (r, seen)
        },
    },
    Rule {
        name: "a launch type and a strategy are exclusive",
        operation: "ecs:CreateService",
        source: "CreateService API reference, launchType: if a capacityProviderStrategy is specified, the launchType parameter must be omitted",
        check: |r, _| {
            (r.get("launchType").is_some() && strategy(r).is_some_and(|s| !s.is_empty()))
                .then(|| "Specifying both a launch type and capacity provider strategy is not supported.".into())
        },
        sample: || {
            let r = serde_json::json!({"serviceName": "web", "launchType": "FARGATE",
                "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]});
            (r, Seen::default())
        },
    },
    Rule {
        name: "a launch type and a strategy are exclusive (RunTask)",
        operation: "ecs:RunTask",
        source: "RunTask API reference, launchType: when you use a capacity provider strategy, omit launchType",
        check: |r, _| {
            (r.get("launchType").is_some() && strategy(r).is_some_and(|s| !s.is_empty()))
                .then(|| "Specifying both a launch type and capacity provider strategy is not supported.".into())
        },
        sample: || {
            let r = serde_json::json!({"taskDefinition": "td:1", "launchType": "FARGATE",
                "capacityProviderStrategy": [{"capacityProvider": "FARGATE", "weight": 1}]});
            (r, Seen::default())
        },
    },
    Rule {
        name: "a grace period needs a load balancer",
        operation: "ecs:CreateService",
        source: "CreateService API reference, healthCheckGracePeriodSeconds: only used when your service is configured to use a load balancer",
        check: |r, _| {
            let lbs = r["loadBalancers"].as_array().is_some_and(|l| !l.is_empty());
            (r.get("healthCheckGracePeriodSeconds").is_some() && !lbs).then(|| {
                "Health check grace period is only valid for services configured to use load balancers".into()
            })
        },
        sample: || {
            (serde_json::json!({"serviceName": "web", "healthCheckGracePeriodSeconds": 60}), Seen::default())
        },
    },
    Rule {
        name: "Exec needs a task role",
        operation: "ecs:CreateService",
        source: "Using Amazon ECS Exec (ECS Developer Guide): the task role carries the SSM channels; ECS refuses enableExecuteCommand when the task definition names none",
        check: exec_without_role,
        sample: exec_sample,
    },
    Rule {
        name: "Exec needs a task role (UpdateService)",
        operation: "ecs:UpdateService",
        source: "Using Amazon ECS Exec (ECS Developer Guide), as for CreateService",
        check: exec_without_role,
        sample: exec_sample,
    },
    Rule {
        name: "a strategy names the cluster's providers",
        operation: "ecs:CreateService",
        source: "CreateService API reference, capacityProviderStrategy: the capacity providers must be associated with the cluster (PutClusterCapacityProviders)",
        check: foreign_provider,
        sample: foreign_sample,
    },
    Rule {
        name: "a strategy names the cluster's providers (UpdateService)",
        operation: "ecs:UpdateService",
        source: "UpdateService API reference, capacityProviderStrategy, as for CreateService",
        check: foreign_provider,
        sample: foreign_sample,
    },
    Rule {
        name: "a strategy names the cluster's providers (RunTask)",
        operation: "ecs:RunTask",
        source: "RunTask API reference, capacityProviderStrategy, as for CreateService",
        check: foreign_provider,
        sample: foreign_sample,
    },
    Rule {
        name: "a task definition is at most 64 KiB",
        operation: "ecs:RegisterTaskDefinition",
        source: "Amazon ECS service quotas: task definition size, 64 KiB",
        check: |r, _| {
            (r.to_string().len() > 64 * 1024).then(|| "Task definition size exceeds the 65536 bytes limit.".into())
        },
        sample: || {
            let big = "x".repeat(70 * 1024);
            (serde_json::json!({"family": "f", "containerDefinitions": [{"name": "web", "command": [big]}]}), Seen::default())
        },
    },
];

fn exec_without_role(r: &Value, seen: &Seen) -> Option<String> {
    if r["enableExecuteCommand"].as_bool() != Some(true) {
        return None;
    }
    let td = r["taskDefinition"].as_str()?;
    (seen.task_roles.get(td) == Some(&false)).then(|| {
        "The service couldn't be updated because a valid taskRoleArn is not being used. Specify a valid task role in your task definition and try again.".into()
    })
}

fn exec_sample() -> (Value, Seen) {
    let mut seen = Seen::default();
    seen.task_roles.insert("arn:td:1".into(), false);
    let r = serde_json::json!({"serviceName": "web", "service": "web", "taskDefinition": "arn:td:1", "enableExecuteCommand": true});
    (r, seen)
}

/// The refusal of the first rule `request` to `operation` breaks.
pub fn refusal(operation: &str, request: &Value, seen: &Seen) -> Option<(&'static Rule, String)> {
    RULES
        .iter()
        .filter(|r| r.operation == operation)
        .find_map(|r| (r.check)(request, seen).map(|m| (r, m)))
}

/// What an accepted call teaches the rules.
fn learn(operation: &str, request: &Value, answer: &Value, seen: &mut Seen) {
    match operation {
        "ecs:CreateService" | "ecs:UpdateService" => {
            if let Some(s) = strategy(request) {
                seen.strategies.insert(service_key(request), s);
            } else if operation == "ecs:CreateService" {
                seen.strategies.insert(service_key(request), Vec::new());
            }
        }
        "ecs:RegisterTaskDefinition" => {
            if let Some(arn) = answer["taskDefinition"]["taskDefinitionArn"].as_str() {
                let role = request["taskRoleArn"]
                    .as_str()
                    .is_some_and(|r| !r.is_empty());
                seen.task_roles.insert(arn.to_owned(), role);
            }
        }
        _ => {}
    }
}

/// The proxy; refusals it made are kept for the test that wants to see one.
pub struct StrictProxy {
    pub port: u16,
    pub endpoint: String,
    refused: Arc<Mutex<Vec<String>>>,
}

impl StrictProxy {
    pub fn start(upstream_port: u16) -> Result<StrictProxy> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let seen: Arc<Mutex<Seen>> = Arc::default();
        let refused: Arc<Mutex<Vec<String>>> = Arc::default();
        let log = refused.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (seen, log) = (seen.clone(), log.clone());
                std::thread::spawn(move || {
                    let _ = relay(client, upstream_port, &seen, &log);
                });
            }
        });
        Ok(StrictProxy {
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            refused,
        })
    }

    /// The refusals so far: `operation: rule`.
    pub fn refused(&self) -> Vec<String> {
        self.refused.lock().expect("refused lock").clone()
    }
}

/// With `HARBORMASTER_REQUEST_LOG` set (a folder; `cargo xtask test` sets it), every JSON-protocol
/// request is appended to `<folder>/requests-<pid>.jsonl`, for the check of every request
/// against AWS's service models (`validate_requests.py`, botocore's models) after the tests.
fn record(req: &Message, operation: &str, request: &Value) {
    static LOG: Mutex<()> = Mutex::new(());
    let Some(dir) = std::env::var_os("HARBORMASTER_REQUEST_LOG") else {
        return;
    };
    if !request.is_object() || !req.head.to_ascii_lowercase().contains("x-amz-target:") {
        return;
    }
    let line = serde_json::json!({"operation": operation, "request": request}).to_string() + "\n";
    let _one = LOG.lock().unwrap_or_else(|p| p.into_inner());
    let path = std::path::Path::new(&dir).join(format!("requests-{}.jsonl", std::process::id()));
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
    {
        let _ = f.write_all(line.as_bytes());
    }
}

/// DescribeClusters at the emulator (which checks no signature): the cluster's providers.
fn cluster_providers(upstream: u16, cluster: &str) -> Option<Vec<String>> {
    let body = serde_json::json!({"clusters": [cluster]}).to_string();
    let request = format!(
        "POST / HTTP/1.1\r\nhost: 127.0.0.1:{upstream}\r\ncontent-type: application/x-amz-json-1.1\r\nx-amz-target: AmazonEC2ContainerServiceV20141113.DescribeClusters\r\nauthorization: AWS4-HMAC-SHA256 Credential=test/20261208/us-east-1/ecs/aws4_request, SignedHeaders=host, Signature=0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(("127.0.0.1", upstream)).ok()?;
    s.write_all(request.as_bytes()).ok()?;
    let answer = read_message(&mut BufReader::new(s), false).ok()??;
    let v = self::body(&answer);
    let providers = v["clusters"][0]["capacityProviders"].as_array()?;
    Some(
        providers
            .iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
    )
}

fn body(m: &Message) -> Value {
    serde_json::from_slice(&m.raw[m.head.len()..]).unwrap_or(Value::Null)
}

fn relay(
    client: TcpStream,
    upstream: u16,
    seen: &Mutex<Seen>,
    log: &Mutex<Vec<String>>,
) -> Result<()> {
    let Pair {
        mut from_client,
        mut from_server,
        mut client,
        mut server,
    } = connect(client, upstream)?;
    loop {
        let Some(req) = read_message(&mut from_client, false)? else {
            return Ok(());
        };
        let operation = operation_of(&req);
        let request = body(&req);
        record(&req, &operation, &request);
        if strategy(&request).is_some_and(|s| !s.is_empty()) {
            // Which providers the cluster has now (ministack learns them from CloudFormation or
            // the harness, neither of which goes through here).
            let cluster = cluster_of(&request);
            if let Some(p) = cluster_providers(upstream, &cluster) {
                seen.lock()
                    .expect("seen lock")
                    .cluster_providers
                    .insert(cluster, p);
            }
        }
        let refused = refusal(&operation, &request, &seen.lock().expect("seen lock"));
        if let Some((rule, message)) = refused {
            log.lock()
                .expect("refused lock")
                .push(format!("{operation}: {}", rule.name));
            let answer =
                serde_json::json!({"__type": "InvalidParameterException", "message": message})
                    .to_string();
            let resp = format!(
                "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.1\r\nx-amzn-requestid: strict-proxy\r\ncontent-length: {}\r\n\r\n{answer}",
                answer.len()
            );
            client.write_all(resp.as_bytes())?;
            continue;
        }
        server.write_all(&req.raw)?;
        let head_request = req.head.starts_with("HEAD ");
        let resp = read_message(&mut from_server, head_request)?.context("upstream closed")?;
        if resp.head.split_whitespace().nth(1) == Some("200") {
            learn(
                &operation,
                &request,
                &body(&resp),
                &mut seen.lock().expect("seen lock"),
            );
        }
        client.write_all(&resp.raw)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule refuses its own sample, and the table holds exactly these: removing a rule, or
    /// weakening one so that its sample passes, fails here.
    #[test]
    fn the_table_is_pinned() {
        let names: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            [
                "a strategy change needs a forced deployment",
                "a launch type and a strategy are exclusive",
                "a launch type and a strategy are exclusive (RunTask)",
                "a grace period needs a load balancer",
                "Exec needs a task role",
                "Exec needs a task role (UpdateService)",
                "a strategy names the cluster's providers",
                "a strategy names the cluster's providers (UpdateService)",
                "a strategy names the cluster's providers (RunTask)",
                "a task definition is at most 64 KiB",
            ]
        );
        for rule in RULES {
            let (request, seen) = (rule.sample)();
            let found = refusal(rule.operation, &request, &seen);
            assert!(
                found.is_some_and(|(r, _)| r.name == rule.name),
                "{} lets its sample through",
                rule.name
            );
            assert!(!rule.source.is_empty());
        }
    }

    /// The same requests made right pass: a forced strategy change, a strategy alone, a grace
    /// period with a load balancer, Exec with a task role.
    #[test]
    fn requests_made_right_pass() {
        let (mut r, seen) = (RULES[0].sample)();
        r["forceNewDeployment"] = Value::Bool(true);
        assert!(refusal("ecs:UpdateService", &r, &seen).is_none());
        let (mut r, seen) = (RULES[1].sample)();
        r.as_object_mut().unwrap().remove("launchType");
        assert!(refusal("ecs:CreateService", &r, &seen).is_none());
        let (mut r, seen) = (RULES[3].sample)();
        r["loadBalancers"] = serde_json::json!([{"targetGroupArn": "tg"}]);
        assert!(refusal("ecs:CreateService", &r, &seen).is_none());
        let (r, mut seen) = exec_sample();
        seen.task_roles.insert("arn:td:1".into(), true);
        assert!(refusal("ecs:CreateService", &r, &seen).is_none());
    }
}
