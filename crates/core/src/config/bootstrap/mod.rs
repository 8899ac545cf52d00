//! What an environment's base should be: `[environments.<env>.bootstrap]` of
//! `harbormaster.toml`, parsed strictly and checked before any call. Errors name the file and
//! the field. `harbormaster-bootstrap` renders its stacks from it; `harbormaster validate`
//! checks it too, so a typo is found in review, not at apply time.

mod database;
mod names;
mod network;
mod registry;
mod web;

pub use super::cidr::Cidr;
use super::diagnostics::Collector;
use super::{Config, ConfigErrors};
use database::RawDatabase;
pub use database::{Database, POSTGRES_MAJORS};
use network::Network;
pub use registry::Registry;
use serde::Deserialize;
use web::Web;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawBootstrap {
    vpc_cidr: Option<String>,
    availability_zones: Option<Vec<String>>,
    public_subnets: Option<Vec<String>>,
    private_subnets: Option<Vec<String>>,
    nat: Option<String>,
    /// Container port of each web service, by service name; services without one are workers.
    #[serde(default)]
    web_ports: std::collections::BTreeMap<String, u16>,
    /// Path pattern of each web service's production rule, by service name (default `/*`).
    #[serde(default)]
    web_paths: std::collections::BTreeMap<String, String>,
    health_check_path: Option<String>,
    deregistration_delay_seconds: Option<u32>,
    certificate_arn: Option<String>,
    redis: Option<bool>,
    redis_node_type: Option<String>,
    #[serde(default)]
    database: RawDatabase,
    log_retention_days: Option<u32>,
    ecr_keep_images: Option<u32>,
    /// Prefixes of development tags, kept to the newest `ecr_keep_images` each.
    ecr_dev_tags: Option<Vec<String>>,
    /// Patterns of release tags, never expired.
    ecr_release_tags: Option<Vec<String>>,
    ecr_immutable_tags: Option<bool>,
    container_insights: Option<bool>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nat {
    /// Private subnets get no route out (only VPC endpoints, say).
    None,
    /// One NAT gateway in the first zone: cheap, one zone's outage cuts the others' egress.
    Single,
    /// One per zone: what production wants.
    PerAz,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebService {
    pub name: String,
    pub port: u16,
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub project: String,
    pub environment: String,
    pub cluster: String,
    pub vpc_cidr: Cidr,
    /// Exactly two zones; `None`: the region's first two (`Fn::GetAZs`).
    pub zones: Option<[String; 2]>,
    pub public_subnets: [Cidr; 2],
    pub private_subnets: [Cidr; 2],
    pub nat: Nat,
    pub web: Vec<WebService>,
    pub certificate_arn: Option<String>,
    pub health_check_path: String,
    pub deregistration_delay_seconds: u32,
    pub redis: bool,
    pub redis_node_type: String,
    pub database: Option<Database>,
    /// Distinct ECR repositories of the services.
    pub repositories: Vec<String>,
    pub log_retention_days: u32,
    /// What the project's repositories keep (their lifecycle policy).
    pub registry: Registry,
    /// A service of this environment enables ECS Exec: the task role may open its channels.
    pub execute_command: bool,
    pub container_insights: bool,
    pub state_bucket: String,
    /// The topic's name, from the configured ARN.
    pub topic_name: String,
    pub topic_arn: String,
}

/// The bootstrap tables of the environments other than `env` that parse (one that does not is
/// reported when its own environment is applied).
fn other_environments<'a>(
    config: &'a Config,
    env: &'a str,
) -> impl Iterator<Item = RawBootstrap> + 'a {
    (config.environments.iter())
        .filter(move |(name, _)| name.as_str() != env)
        .filter_map(|(_, e)| match &e.bootstrap {
            None => Some(RawBootstrap::default()),
            Some(t) => toml::Value::Table(t.clone()).try_into().ok(),
        })
}

/// `values` as a person reads a list: `1, 3, 5`.
fn listed(values: &[u32]) -> String {
    values
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The retention periods CloudWatch Logs accepts.
const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// How long the environment keeps its logs.
struct Retention {
    log_days: u32,
}

impl Retention {
    fn from_raw(c: &mut Collector<'_>, base: &str, raw: &RawBootstrap) -> Self {
        let log_days = raw.log_retention_days.unwrap_or(30);
        if !RETENTION_DAYS.contains(&log_days) {
            c.err(
                format!("{base}.log_retention_days"),
                format!("CloudWatch Logs allows: {}", listed(RETENTION_DAYS)),
            );
        }
        Retention { log_days }
    }
}

/// The services' distinct ECR repositories.
fn repositories(config: &Config) -> Vec<String> {
    let mut all: Vec<String> = (config.services.values())
        .map(|s| s.repository.clone())
        .collect();
    all.sort();
    all.dedup();
    all
}

impl Spec {
    pub fn from_config(file: &str, config: &Config, env: &str) -> Result<Spec, ConfigErrors> {
        let mut c = Collector::new(file);
        let Some(e) = config.environments.get(env) else {
            let defined: Vec<&str> = config.environments.keys().map(String::as_str).collect();
            let defined = defined.join(", ");
            c.err(
                "environments",
                format!("no environment `{env}`; defined: {defined}"),
            );
            return c.finish(None);
        };
        let base = format!("environments.{env}.bootstrap");
        let raw: RawBootstrap = match &e.bootstrap {
            None => RawBootstrap::default(),
            Some(t) => match toml::Value::Table(t.clone()).try_into() {
                Ok(raw) => raw,
                Err(x) => {
                    c.err(&base, toml::de::Error::message(&x));
                    return c.finish(None);
                }
            },
        };
        let network = Network::from_raw(&mut c, &base, &raw);
        let web = Web::from_raw(&mut c, &base, &raw, config, env);
        let database = Database::from_raw(
            &mut c,
            &format!("{base}.database"),
            &raw.database,
            &config.project,
        );
        let retention = Retention::from_raw(&mut c, &base, &raw);
        let others: Vec<RawBootstrap> = other_environments(config, env).collect();
        let registry = Registry::from_raw(&mut c, &base, &raw, &others);
        let prefix = format!("{}-{env}", config.project);
        names::check(
            &mut c,
            &base,
            &prefix,
            database.is_some(),
            raw.redis.unwrap_or(false),
        );
        let spec = network.map(|network| Spec {
            project: config.project.clone(),
            environment: env.to_owned(),
            cluster: e.cluster.clone(),
            vpc_cidr: network.vpc_cidr,
            zones: network.zones,
            public_subnets: network.public_subnets,
            private_subnets: network.private_subnets,
            nat: network.nat,
            web: web.services,
            certificate_arn: web.certificate_arn,
            health_check_path: web.health_check_path,
            deregistration_delay_seconds: web.deregistration_delay_seconds,
            redis: raw.redis.unwrap_or(false),
            redis_node_type: (raw.redis_node_type.clone())
                .unwrap_or_else(|| "cache.t4g.micro".into()),
            database,
            repositories: repositories(config),
            log_retention_days: retention.log_days,
            registry,
            execute_command: (config.targets())
                .any(|(e, _, t)| e.name == env && t.service.execute_command),
            container_insights: raw.container_insights.unwrap_or(true),
            state_bucket: config.state_bucket.clone(),
            topic_name: (config.notification_topic.rsplit(':').next())
                .unwrap_or_default()
                .to_owned(),
            topic_arn: config.notification_topic.clone(),
        });
        c.finish(spec)
    }

    /// `/<project>/<env>`: where the environment's SSM parameters live.
    pub fn parameter_root(&self) -> String {
        format!("/{}/{}", self.project, self.environment)
    }

    /// The database master password's SSM parameter (a SecureString).
    pub fn password_parameter(&self) -> String {
        format!("{}/database/password", self.parameter_root())
    }

    /// `<project>-<env>`: the prefix of every name.
    pub fn prefix(&self) -> String {
        format!("{}-{}", self.project, self.environment)
    }
}

#[cfg(test)]
pub(crate) mod tests;
