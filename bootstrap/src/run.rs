//! Plan, apply and destroy: the model's decisions carried out through the adapters, wave by
//! wave (a wave's members at once), with progress on stderr.

use std::collections::{BTreeMap, BTreeSet};

use futures::stream::{FuturesUnordered, StreamExt};

use anyhow::Result;
use serde::Serialize;

use crate::cloud::{Cloud, Resolved};
use crate::model::{self, Action, Desired, Kind, Observed, Step};
use crate::spec::Spec;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub environment: String,
    pub steps: Vec<Step>,
    /// Failures, each naming the resource and the AWS error.
    pub errors: Vec<String>,
    /// `/<project>/<env>/outputs/<name>` → value (after apply).
    pub outputs: BTreeMap<String, String>,
}

impl Report {
    pub fn changes(&self) -> usize {
        self.steps.iter().filter(|s| s.action.is_change()).count()
    }
    pub fn conflicts(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Conflict { .. }))
            .count()
    }
}

fn say(quiet: bool, line: String) {
    if !quiet {
        eprintln!("{line}");
    }
}

/// What exists now, by key (read-only calls).
async fn observe(
    cloud: &Cloud,
    spec: &Spec,
    desired: &[Desired],
    zones: &[String; 2],
) -> Result<BTreeMap<String, Option<Observed>>> {
    let mut found: BTreeMap<String, Option<Observed>> = BTreeMap::new();
    let mut resolved = Resolved::new();
    for wave in model::waves(desired) {
        let looks = wave.iter().map(|k| {
            let d = desired
                .iter()
                .find(|d| &d.key == k)
                .expect("key of the graph");
            let resolved = &resolved;
            async move { (k.clone(), cloud.find(spec, d, resolved, zones).await) }
        });
        for (k, r) in futures::future::join_all(looks).await {
            let o = r.map_err(|e| e.context(format!("looking for {k}")))?;
            if let Some(o) = o.as_ref().filter(|o| o.tagged) {
                resolved.insert(k.clone(), o.clone());
            }
            found.insert(k, o);
        }
    }
    Ok(found)
}

pub async fn plan(cloud: &Cloud, spec: &Spec) -> Result<Report> {
    let zones = cloud.zones(spec).await?;
    let desired = model::desired(spec);
    let found = observe(cloud, spec, &desired, &zones).await?;
    Ok(Report {
        environment: spec.environment.clone(),
        steps: model::plan(&desired, &found),
        errors: Vec::new(),
        outputs: BTreeMap::new(),
    })
}

pub async fn apply(cloud: &Cloud, spec: &Spec, quiet: bool) -> Result<Report> {
    let zones = cloud.zones(spec).await?;
    let desired = model::desired(spec);
    let mut resolved = Resolved::new();
    let mut steps = Vec::new();
    let mut errors = Vec::new();
    // Each resource starts as soon as its own dependencies are there (the database does not wait
    // for a NAT gateway); independent ones run at once.
    let mut waiting: Vec<&Desired> = desired.iter().collect();
    let mut unusable: BTreeSet<String> = BTreeSet::new();
    let mut running = FuturesUnordered::new();
    loop {
        let (start, blocked, still) = model::ready(waiting, &|k| resolved.contains_key(k), &|k| {
            unusable.contains(k)
        });
        for (d, dep) in blocked {
            let reason = format!("waits for {dep}, which is not usable");
            say(
                quiet,
                format!("  ! {} {}: {reason}", kind_word(d.kind), d.name),
            );
            unusable.insert(d.key.clone());
            steps.push(Step {
                key: d.key.clone(),
                kind: d.kind,
                name: d.name.clone(),
                action: Action::Conflict { reason },
            });
        }
        // After a failure nothing new starts; what runs finishes.
        if errors.is_empty() {
            for d in start {
                running.push(converge(cloud, spec, d, resolved.clone(), &zones, quiet));
            }
        }
        waiting = still;
        let Some((d, action, result)) = running.next().await else {
            break;
        };
        match result {
            Ok(Some(o)) => {
                resolved.insert(d.key.clone(), o);
            }
            Ok(None) => {
                if let Action::Conflict { reason } = &action {
                    say(
                        quiet,
                        format!("  ! {} {}: {reason}", kind_word(d.kind), d.name),
                    );
                }
                unusable.insert(d.key.clone());
            }
            Err(e) => {
                // What was made is tagged: the next apply finds it and carries on from there.
                errors.push(format!("{} {}: {e:#}", kind_word(d.kind), d.name));
                unusable.insert(d.key.clone());
            }
        }
        steps.push(Step {
            key: d.key.clone(),
            kind: d.kind,
            name: d.name.clone(),
            action,
        });
    }
    // Report in the graph's order, whatever order things finished in.
    steps.sort_by_key(|s| desired.iter().position(|d| d.key == s.key));
    let outputs = if errors.is_empty() {
        match write_outputs(cloud, spec, &resolved, quiet).await {
            Ok(o) => o,
            Err(e) => {
                errors.push(format!("outputs: {e:#}"));
                BTreeMap::new()
            }
        }
    } else {
        BTreeMap::new()
    };
    Ok(Report {
        environment: spec.environment.clone(),
        steps,
        errors,
        outputs,
    })
}

/// `final_snapshot`: snapshot the database before deleting it (and keep its password, which
/// the snapshot needs).
/// Finds one resource, decides, and creates or updates it.
async fn converge<'a>(
    cloud: &Cloud,
    spec: &Spec,
    d: &'a Desired,
    resolved: Resolved,
    zones: &[String; 2],
    quiet: bool,
) -> (&'a Desired, Action, Result<Option<Observed>>) {
    let found = match cloud.find(spec, d, &resolved, zones).await {
        Ok(f) => f,
        Err(e) => return (d, Action::Keep, Err(e)),
    };
    let action = model::plan(
        std::slice::from_ref(d),
        &BTreeMap::from([(d.key.clone(), found.clone())]),
    )
    .remove(0)
    .action;
    let result = match (&action, found) {
        (Action::Create, _) => {
            say(
                quiet,
                format!("  + creating {} {} …", kind_word(d.kind), d.name),
            );
            cloud.create(spec, d, &resolved, zones).await.map(Some)
        }
        (Action::Update { changes }, Some(o)) => {
            say(
                quiet,
                format!(
                    "  ~ updating {} {}: {}",
                    kind_word(d.kind),
                    d.name,
                    changes.join(", ")
                ),
            );
            cloud
                .update(d, &o, &resolved, changes)
                .await
                .map(|()| Some(o))
        }
        (Action::Keep, Some(o)) => Ok(Some(o)),
        _ => Ok(None),
    };
    (d, action, result)
}

pub async fn destroy(
    cloud: &Cloud,
    spec: &Spec,
    execute: bool,
    final_snapshot: bool,
    quiet: bool,
) -> Result<Report> {
    let zones = cloud.zones(spec).await?;
    let desired = model::desired(spec);
    let found = observe(cloud, spec, &desired, &zones).await?;
    let steps = model::teardown(&desired, &found);
    let mut errors = Vec::new();
    // A protected database stops the whole destroy before anything is deleted.
    let protected = found.get("database").cloned().flatten().is_some_and(|o| {
        o.tagged && o.attrs.get("deletion_protection").map(String::as_str) == Some("true")
    });
    if protected {
        errors.push(format!(
            "RDS database {} has deletion protection: set `database.deletion_protection = false` in [environments.{}.bootstrap], apply, then destroy",
            spec.prefix(),
            spec.environment
        ));
    }
    if execute && !protected {
        delete_outputs(cloud, spec).await?;
        // Dependents first: the waves, last to first.
        for wave in model::waves(&desired).into_iter().rev() {
            let work = wave
                .iter()
                .filter(|k| steps.iter().any(|s| &s.key == *k))
                .map(|k| {
                    let d = desired
                        .iter()
                        .find(|d| &d.key == k)
                        .expect("key of the graph");
                    let o = found[k].clone().expect("found");
                    async move {
                        say(
                            quiet,
                            format!("  - deleting {} {} …", kind_word(d.kind), d.name),
                        );
                        (d, cloud.delete(spec, d, &o, final_snapshot).await)
                    }
                });
            for (d, r) in futures::future::join_all(work).await {
                if let Err(e) = r {
                    errors.push(format!("{} {}: {e:#}", kind_word(d.kind), d.name));
                }
            }
            if !errors.is_empty() {
                break;
            }
        }
    }
    Ok(Report {
        environment: spec.environment.clone(),
        steps,
        errors,
        outputs: BTreeMap::new(),
    })
}

pub fn kind_word(k: Kind) -> &'static str {
    match k {
        Kind::Vpc => "VPC",
        Kind::Subnet => "subnet",
        Kind::InternetGateway => "internet gateway",
        Kind::ElasticIp => "Elastic IP",
        Kind::NatGateway => "NAT gateway",
        Kind::RouteTable => "route table",
        Kind::SecurityGroup => "security group",
        Kind::Cluster => "ECS cluster",
        Kind::Repository => "ECR repository",
        Kind::LogGroup => "log group",
        Kind::Topic => "SNS topic",
        Kind::Bucket => "S3 bucket",
        Kind::LoadBalancer => "load balancer",
        Kind::TargetGroup => "target group",
        Kind::Listener => "listener",
        Kind::ListenerRule => "listener rule",
        Kind::Role => "IAM role",
        Kind::DbSubnetGroup => "DB subnet group",
        Kind::DbParameterGroup => "DB parameter group",
        Kind::Database => "RDS database",
        Kind::CacheSubnetGroup => "cache subnet group",
        Kind::Cache => "Redis",
    }
}

fn outputs_path(spec: &Spec) -> String {
    format!("{}/outputs", spec.parameter_root())
}

/// The values other tools (the agent, the blue/green set-up) read: ids, ARNs, names.
fn outputs(spec: &Spec, resolved: &Resolved) -> BTreeMap<String, String> {
    let id = |k: &str| resolved.get(k).map(|o| o.id.clone()).unwrap_or_default();
    let attr = |k: &str, a: &str| {
        resolved
            .get(k)
            .and_then(|o| o.attrs.get(a))
            .cloned()
            .unwrap_or_default()
    };
    let mut out = BTreeMap::from([
        ("vpc-id".to_owned(), id("vpc")),
        (
            "public-subnet-ids".to_owned(),
            format!("{},{}", id("subnet/public-a"), id("subnet/public-b")),
        ),
        (
            "private-subnet-ids".to_owned(),
            format!("{},{}", id("subnet/private-a"), id("subnet/private-b")),
        ),
        ("security-groups/alb".to_owned(), id("security-group/alb")),
        (
            "security-groups/services".to_owned(),
            id("security-group/services"),
        ),
        (
            "security-groups/database".to_owned(),
            id("security-group/database"),
        ),
        ("cluster-arn".to_owned(), id("cluster")),
        ("cluster-name".to_owned(), spec.cluster.clone()),
        ("topic-arn".to_owned(), id("topic")),
        ("state-bucket".to_owned(), spec.state_bucket.clone()),
        ("alb-arn".to_owned(), id("load-balancer")),
        ("alb-dns-name".to_owned(), attr("load-balancer", "dns_name")),
        ("listeners/http".to_owned(), id("listener/http")),
        ("roles/execution".to_owned(), id("role/execution")),
        ("roles/task".to_owned(), id("role/task")),
        (
            "roles/ecs-infrastructure".to_owned(),
            id("role/ecs-infrastructure"),
        ),
    ]);
    if spec.certificate_arn.is_some() {
        out.insert("listeners/https".into(), id("listener/https"));
    }
    for w in &spec.web {
        for colour in ["blue", "green"] {
            out.insert(
                format!("target-groups/{}/{colour}", w.name),
                id(&format!("target-group/{}-{colour}", w.name)),
            );
        }
        out.insert(
            format!("production-rules/{}", w.name),
            id(&format!("listener-rule/http-{}", w.name)),
        );
        if spec.certificate_arn.is_some() {
            out.insert(
                format!("production-rules/{}-https", w.name),
                id(&format!("listener-rule/https-{}", w.name)),
            );
        }
    }
    if spec.database.is_some() {
        out.insert(
            "database-endpoint".into(),
            format!("{}:{}", attr("database", "host"), attr("database", "port")),
        );
    }
    if spec.redis {
        out.insert("security-groups/cache".into(), id("security-group/cache"));
        out.insert(
            "redis-endpoint".into(),
            format!("{}:{}", attr("cache", "host"), attr("cache", "port")),
        );
    }
    for repo in &spec.repositories {
        if let Some(uri) = resolved
            .get(&format!("repository/{repo}"))
            .and_then(|o| o.attrs.get("uri"))
        {
            out.insert(format!("repositories/{repo}"), uri.clone());
        }
    }
    let base = outputs_path(spec);
    let mut all: BTreeMap<String, String> = out
        .into_iter()
        .map(|(k, v)| (format!("{base}/{k}"), v))
        .collect();
    // What the services read, at the convention's paths (`secrets = { X = "database/host" }`).
    let app = spec.parameter_root();
    if let Some(db) = &spec.database {
        all.insert(format!("{app}/database/host"), attr("database", "host"));
        all.insert(format!("{app}/database/port"), attr("database", "port"));
        all.insert(format!("{app}/database/name"), db.name.clone());
        all.insert(format!("{app}/database/user"), db.username.clone());
    }
    if spec.redis {
        // No password in it: the cache is reachable from the services' group only, over TLS.
        all.insert(
            format!("{app}/redis/url"),
            format!(
                "rediss://{}:{}/0",
                attr("cache", "host"),
                attr("cache", "port")
            ),
        );
    }
    all
}

/// Parameter paths bootstrap writes, besides the database password (written with the database).
fn parameter_paths(spec: &Spec) -> Vec<String> {
    let app = spec.parameter_root();
    vec![
        outputs_path(spec),
        format!("{app}/database"),
        format!("{app}/redis"),
    ]
}

/// Parameters under `path` (values of SecureStrings stay encrypted: they are never compared).
async fn existing(cloud: &Cloud, path: &str) -> Result<BTreeMap<String, String>> {
    let mut have = BTreeMap::new();
    let mut token = None;
    loop {
        let out = cloud
            .ssm
            .get_parameters_by_path()
            .path(path)
            .recursive(true)
            .set_next_token(token)
            .send()
            .await?;
        for p in out.parameters() {
            have.insert(
                p.name().unwrap_or_default().to_owned(),
                p.value().unwrap_or_default().to_owned(),
            );
        }
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(have);
        }
    }
}

/// Writes only what changed, so a second apply makes no call that changes anything.
async fn write_outputs(
    cloud: &Cloud,
    spec: &Spec,
    resolved: &Resolved,
    quiet: bool,
) -> Result<BTreeMap<String, String>> {
    let want = outputs(spec, resolved);
    let mut have = BTreeMap::new();
    for path in parameter_paths(spec) {
        have.extend(existing(cloud, &path).await?);
    }
    for (name, value) in &want {
        match have.get(name) {
            Some(v) if v == value => {}
            Some(_) => {
                say(quiet, format!("  ~ parameter {name}"));
                cloud
                    .ssm
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .overwrite(true)
                    .send()
                    .await?;
            }
            None => {
                say(quiet, format!("  + parameter {name}"));
                cloud
                    .ssm
                    .put_parameter()
                    .name(name)
                    .value(value)
                    .r#type(aws_sdk_ssm::types::ParameterType::String)
                    .tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key(crate::model::TAG_PROJECT)
                            .value(&spec.project)
                            .build()?,
                    )
                    .tags(
                        aws_sdk_ssm::types::Tag::builder()
                            .key(crate::model::TAG_ENVIRONMENT)
                            .value(&spec.environment)
                            .build()?,
                    )
                    .send()
                    .await?;
            }
        }
    }
    // Outputs no longer produced (a service removed, say) go; the database password stays.
    let stale: Vec<String> = have
        .keys()
        .filter(|k| !want.contains_key(*k) && k.starts_with(&outputs_path(spec)))
        .cloned()
        .collect();
    delete_parameters(cloud, &stale).await?;
    Ok(want
        .into_iter()
        .filter(|(k, _)| k.starts_with(&outputs_path(spec)))
        .collect())
}

async fn delete_outputs(cloud: &Cloud, spec: &Spec) -> Result<()> {
    let password = spec.password_parameter();
    let mut names = Vec::new();
    for path in parameter_paths(spec) {
        names.extend(
            existing(cloud, &path)
                .await?
                .into_keys()
                .filter(|k| k != &password),
        );
    }
    delete_parameters(cloud, &names).await?;
    Ok(())
}

/// DeleteParameters takes at most ten names a call.
async fn delete_parameters(cloud: &Cloud, names: &[String]) -> Result<()> {
    for chunk in names.chunks(10) {
        cloud
            .ssm
            .delete_parameters()
            .set_names(Some(chunk.to_vec()))
            .send()
            .await?;
    }
    Ok(())
}
