//! What an environment's base should be: `[environments.<env>.bootstrap]` of
//! `harbormaster.toml`, parsed strictly and checked before any call. Errors name the file and
//! the field. `harbormaster-bootstrap` renders its stacks from it; `harbormaster validate`
//! checks it too, so a typo is found in review, not at apply time.

pub use super::cidr::Cidr;
use super::{Config, ConfigError, ConfigErrors};
use serde::Deserialize;

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
    ecr_immutable_tags: Option<bool>,
    container_insights: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    enabled: Option<bool>,
    engine_version: Option<String>,
    instance_class: Option<String>,
    allocated_storage_gb: Option<u32>,
    name: Option<String>,
    username: Option<String>,
    deletion_protection: Option<bool>,
    backup_retention_days: Option<u32>,
}

/// PostgreSQL major versions this tool provisions (parameter group family `postgres<major>`).
pub const POSTGRES_MAJORS: &[u32] = &[14, 15, 16, 17];

/// The database's desired settings. The password is not among them: it is generated once and
/// kept only in SSM (see [`Spec::password_parameter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Database {
    pub engine_version: String,
    pub major: u32,
    pub instance_class: String,
    pub allocated_storage_gb: u32,
    pub name: String,
    pub username: String,
    pub deletion_protection: bool,
    pub backup_retention_days: u32,
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
    pub ecr_keep_images: u32,
    pub ecr_immutable_tags: bool,
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

impl Spec {
    pub fn from_config(file: &str, config: &Config, env: &str) -> Result<Spec, ConfigErrors> {
        let err = |field: String, problem: String| ConfigError {
            file: file.to_owned(),
            field,
            problem,
        };
        let Some(e) = config.environments.get(env) else {
            return Err(ConfigErrors(vec![err(
                "environments".into(),
                format!(
                    "no environment `{env}`; defined: {}",
                    config
                        .environments
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )]));
        };
        let base = format!("environments.{env}.bootstrap");
        let raw: RawBootstrap = match &e.bootstrap {
            None => RawBootstrap::default(),
            Some(t) => toml::Value::Table(t.clone())
                .try_into()
                .map_err(|x: toml::de::Error| {
                    ConfigErrors(vec![err(base.clone(), x.message().to_owned())])
                })?,
        };
        let mut errors = Vec::new();
        let cidr = |errors: &mut Vec<ConfigError>, field: &str, s: &str| match Cidr::parse(s) {
            Some(c) => Some(c),
            None => {
                errors.push(err(
                    format!("{base}.{field}"),
                    format!("`{s}` is not an IPv4 network in CIDR form (e.g. 10.20.0.0/16)"),
                ));
                None
            }
        };
        let vpc = cidr(
            &mut errors,
            "vpc_cidr",
            raw.vpc_cidr.as_deref().unwrap_or("10.20.0.0/16"),
        );
        let subnets = |errors: &mut Vec<ConfigError>,
                       field: &str,
                       given: &Option<Vec<String>>,
                       default_base: u32|
         -> Option<[Cidr; 2]> {
            match given {
                Some(list) if list.len() != 2 => {
                    errors.push(err(
                        format!("{base}.{field}"),
                        "give exactly two, one per zone".into(),
                    ));
                    None
                }
                Some(list) => {
                    let a = cidr(errors, field, &list[0]);
                    let b = cidr(errors, field, &list[1]);
                    Some([a?, b?])
                }
                // /20s at the start of the VPC: public 0 and 1, private 8 and 9.
                None => vpc.map(|v| {
                    [
                        v.subnet(v.prefix.max(16) + 4, default_base),
                        v.subnet(v.prefix.max(16) + 4, default_base + 1),
                    ]
                }),
            }
        };
        let public = subnets(&mut errors, "public_subnets", &raw.public_subnets, 0);
        let private = subnets(&mut errors, "private_subnets", &raw.private_subnets, 8);
        if let (Some(v), Some(p), Some(q)) = (vpc, public, private) {
            if !(16..=24).contains(&v.prefix) {
                errors.push(err(
                    format!("{base}.vpc_cidr"),
                    "a VPC is /16 to /24 here (AWS allows /16 to /28; subnets need room)".into(),
                ));
            }
            let all = [
                ("public_subnets", p[0]),
                ("public_subnets", p[1]),
                ("private_subnets", q[0]),
                ("private_subnets", q[1]),
            ];
            for (i, (field, c)) in all.iter().enumerate() {
                if !v.contains(*c) {
                    errors.push(err(
                        format!("{base}.{field}"),
                        format!("{c} is outside the VPC {v}"),
                    ));
                }
                if c.prefix > 28 {
                    errors.push(err(
                        format!("{base}.{field}"),
                        format!("{c}: a subnet is /28 or larger"),
                    ));
                }
                for (other_field, o) in &all[i + 1..] {
                    if c.overlaps(*o) {
                        errors.push(err(
                            format!("{base}.{field}"),
                            format!("{c} overlaps {o} in `{other_field}`"),
                        ));
                    }
                }
            }
        }
        let zones = match raw.availability_zones {
            None => None,
            Some(z) if z.len() == 2 && z[0] != z[1] => Some([z[0].clone(), z[1].clone()]),
            Some(_) => {
                errors.push(err(
                    format!("{base}.availability_zones"),
                    "give exactly two different zones".into(),
                ));
                None
            }
        };
        let nat = match raw.nat.as_deref().unwrap_or("single") {
            "none" => Nat::None,
            "single" => Nat::Single,
            "per_az" => Nat::PerAz,
            other => {
                errors.push(err(
                    format!("{base}.nat"),
                    format!("`{other}` is not allowed; allowed: \"none\", \"single\", \"per_az\""),
                ));
                Nat::Single
            }
        };
        let mut web = Vec::new();
        let prefix_len = config.project.len() + env.len() + 1;
        for (name, port) in &raw.web_ports {
            if !config.services.contains_key(name) {
                errors.push(err(
                    format!("{base}.web_ports.{name}"),
                    format!("no service `{name}` in the config"),
                ));
            }
            if *port == 0 {
                errors.push(err(
                    format!("{base}.web_ports.{name}"),
                    "a port is 1 to 65535".into(),
                ));
            }
            // Target group names: `<project>-<env>-<service>-green`, at most 32 characters.
            if prefix_len + name.len() + 7 > 32 {
                errors.push(err(
                    format!("{base}.web_ports.{name}"),
                    format!("target group names `{}-{env}-{name}-green` would exceed AWS's 32 characters; shorten the project, environment or service name", config.project),
                ));
            }
            let path = raw
                .web_paths
                .get(name)
                .cloned()
                .unwrap_or_else(|| "/*".into());
            if !path.starts_with('/') {
                errors.push(err(
                    format!("{base}.web_paths.{name}"),
                    "a path pattern starts with `/`".into(),
                ));
            }
            web.push(WebService {
                name: name.clone(),
                port: *port,
                path,
            });
        }
        for name in raw.web_paths.keys() {
            if !raw.web_ports.contains_key(name) {
                errors.push(err(
                    format!("{base}.web_paths.{name}"),
                    format!("`{name}` has no entry in web_ports"),
                ));
            }
        }
        let mut paths: Vec<&str> = web.iter().map(|w| w.path.as_str()).collect();
        paths.sort();
        if paths.windows(2).any(|w| w[0] == w[1]) {
            errors.push(err(
                format!("{base}.web_paths"),
                "two web services share a path pattern; give each its own".into(),
            ));
        }
        let health_check_path = raw.health_check_path.unwrap_or_else(|| "/health/".into());
        if !health_check_path.starts_with('/') {
            errors.push(err(
                format!("{base}.health_check_path"),
                "a path starts with `/`".into(),
            ));
        }
        let deregistration_delay_seconds = raw.deregistration_delay_seconds.unwrap_or(15);
        if deregistration_delay_seconds > 3600 {
            errors.push(err(
                format!("{base}.deregistration_delay_seconds"),
                "allowed: 0 to 3600".into(),
            ));
        }
        let db = &raw.database;
        let database = if db.enabled.unwrap_or(true) {
            let engine_version = db.engine_version.clone().unwrap_or_else(|| "16.9".into());
            let major = engine_version
                .split('.')
                .next()
                .and_then(|m| m.parse::<u32>().ok())
                .unwrap_or(0);
            if !POSTGRES_MAJORS.contains(&major) {
                errors.push(err(
                    format!("{base}.database.engine_version"),
                    format!(
                        "PostgreSQL `{engine_version}` is not allowed; allowed majors: {}",
                        listed(POSTGRES_MAJORS)
                    ),
                ));
            }
            let allocated_storage_gb = db.allocated_storage_gb.unwrap_or(20);
            if !(20..=65536).contains(&allocated_storage_gb) {
                errors.push(err(
                    format!("{base}.database.allocated_storage_gb"),
                    "allowed: 20 to 65536".into(),
                ));
            }
            let ident_ok = |s: &str| {
                !s.is_empty()
                    && s.len() <= 63
                    && s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            };
            let name = db
                .name
                .clone()
                .unwrap_or_else(|| config.project.replace('-', "_"));
            if !ident_ok(&name) {
                errors.push(err(
                    format!("{base}.database.name"),
                    "letters, digits and `_`, starting with a letter".into(),
                ));
            }
            let username = db
                .username
                .clone()
                .unwrap_or_else(|| config.project.replace('-', "_"));
            if !ident_ok(&username) || username == "postgres" || username == "rdsadmin" {
                errors.push(err(
                    format!("{base}.database.username"),
                    "letters, digits and `_`, starting with a letter; not a reserved name".into(),
                ));
            }
            let backup_retention_days = db.backup_retention_days.unwrap_or(7);
            if backup_retention_days > 35 {
                errors.push(err(
                    format!("{base}.database.backup_retention_days"),
                    "allowed: 0 to 35".into(),
                ));
            }
            Some(Database {
                engine_version,
                major,
                instance_class: db
                    .instance_class
                    .clone()
                    .unwrap_or_else(|| "db.t4g.micro".into()),
                allocated_storage_gb,
                name,
                username,
                deletion_protection: db.deletion_protection.unwrap_or(true),
                backup_retention_days,
            })
        } else {
            None
        };
        if let Some(c) = &raw.certificate_arn {
            if !c.starts_with("arn:aws:acm:") {
                errors.push(err(
                    format!("{base}.certificate_arn"),
                    "expected an ACM certificate ARN".into(),
                ));
            }
        }
        let log_retention_days = raw.log_retention_days.unwrap_or(30);
        if !RETENTION_DAYS.contains(&log_retention_days) {
            errors.push(err(
                format!("{base}.log_retention_days"),
                format!("CloudWatch Logs allows: {}", listed(RETENTION_DAYS)),
            ));
        }
        let ecr_keep_images = raw.ecr_keep_images.unwrap_or(30);
        if !(1..=1000).contains(&ecr_keep_images) {
            errors.push(err(
                format!("{base}.ecr_keep_images"),
                "allowed: 1 to 1000".into(),
            ));
        }
        let redis = raw.redis.unwrap_or(false);
        let topic_name = config
            .notification_topic
            .rsplit(':')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut repositories: Vec<String> = config
            .services
            .values()
            .map(|s| s.repository.clone())
            .collect();
        repositories.sort();
        repositories.dedup();
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        Ok(Spec {
            project: config.project.clone(),
            environment: env.to_owned(),
            cluster: e.cluster.clone(),
            vpc_cidr: vpc.expect("checked"),
            zones,
            public_subnets: public.expect("checked"),
            private_subnets: private.expect("checked"),
            nat,
            web,
            certificate_arn: raw.certificate_arn,
            health_check_path,
            deregistration_delay_seconds,
            redis,
            redis_node_type: raw
                .redis_node_type
                .unwrap_or_else(|| "cache.t4g.micro".into()),
            database,
            repositories,
            log_retention_days,
            // The repositories are the project's, one stack for every environment: they keep
            // as many images as the most demanding environment asks, and a tag is immutable
            // if any environment wants it so, whichever environment's apply renders them.
            ecr_keep_images: (other_environments(config, env).filter_map(|b| b.ecr_keep_images))
                .filter(|n| (1..=1000).contains(n))
                .fold(ecr_keep_images, u32::max),
            ecr_immutable_tags: raw.ecr_immutable_tags.unwrap_or(true)
                || other_environments(config, env).any(|b| b.ecr_immutable_tags.unwrap_or(true)),
            container_insights: raw.container_insights.unwrap_or(true),
            state_bucket: config.state_bucket.clone(),
            topic_name,
            topic_arn: config.notification_topic.clone(),
        })
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
