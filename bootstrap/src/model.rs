//! The desired resources of an environment as a dependency graph, and the plan: what to do with
//! each, given what was found. Pure: the adapters find and change things, this decides.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{Nat, Spec};

pub const TAG_PROJECT: &str = "harbormaster:project";
pub const TAG_ENVIRONMENT: &str = "harbormaster:environment";
/// The resource's key in the graph (`subnet/public-a`): how it is found again.
pub const TAG_ROLE: &str = "harbormaster:role";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Vpc,
    Subnet,
    InternetGateway,
    ElasticIp,
    NatGateway,
    RouteTable,
    SecurityGroup,
    Cluster,
    Repository,
    LogGroup,
    Topic,
    Bucket,
}

/// Where ingress comes from.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Cidr(String),
    /// Another security group of the graph, by key.
    Group(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Ingress {
    pub port: u16,
    pub from: Source,
}

/// Desired settings, per kind. References to other resources are graph keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Props {
    Vpc {
        cidr: String,
    },
    Subnet {
        vpc: String,
        cidr: String,
        zone: usize,
        public: bool,
    },
    InternetGateway {
        vpc: String,
    },
    ElasticIp,
    NatGateway {
        subnet: String,
        eip: String,
    },
    RouteTable {
        vpc: String,
        subnets: Vec<String>,
        default_route: Option<String>,
    },
    SecurityGroup {
        vpc: String,
        description: String,
        ingress: Vec<Ingress>,
    },
    Cluster {
        container_insights: bool,
    },
    Repository {
        immutable_tags: bool,
        keep_images: u32,
    },
    LogGroup {
        retention_days: u32,
    },
    Topic,
    Bucket,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// Unique in the environment; also the `harbormaster:role` tag.
    pub key: String,
    pub kind: Kind,
    /// The name in AWS (or the `Name` tag).
    pub name: String,
    pub deps: Vec<String>,
    pub props: Props,
}

/// What the adapters found for a desired resource.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Observed {
    pub id: String,
    /// Outputs worth keeping (ARN, DNS name...).
    pub attrs: BTreeMap<String, String>,
    /// Whether it carries this environment's tags. A resource found by name without them belongs
    /// to someone else: reported, never adopted or changed.
    pub tagged: bool,
    /// Settings that differ from the desired ones and can be changed in place.
    pub drift: Vec<String>,
    /// Settings that differ and cannot be changed in place (a VPC's CIDR, say).
    pub fixed_drift: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Create,
    Update {
        changes: Vec<String>,
    },
    Keep,
    /// Exists with the expected name but not our tags, or differs in ways AWS cannot change in
    /// place: nothing is done; a person decides.
    Conflict {
        reason: String,
    },
    Delete,
}

impl Action {
    pub fn is_change(&self) -> bool {
        matches!(
            self,
            Action::Create | Action::Update { .. } | Action::Delete
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub key: String,
    pub kind: Kind,
    pub name: String,
    #[serde(flatten)]
    pub action: Action,
}

fn tag_key(role: &str) -> String {
    role.to_owned()
}

/// Every resource the spec asks for, dependencies before dependents.
pub fn desired(spec: &Spec) -> Vec<Desired> {
    let p = spec.prefix();
    let mut out = Vec::new();
    let mut add = |key: &str, kind: Kind, name: String, deps: Vec<&str>, props: Props| {
        out.push(Desired {
            key: tag_key(key),
            kind,
            name,
            deps: deps.into_iter().map(str::to_owned).collect(),
            props,
        })
    };
    add(
        "vpc",
        Kind::Vpc,
        p.clone(),
        vec![],
        Props::Vpc {
            cidr: spec.vpc_cidr.to_string(),
        },
    );
    for (i, zone) in ["a", "b"].iter().enumerate() {
        add(
            &format!("subnet/public-{zone}"),
            Kind::Subnet,
            format!("{p}-public-{zone}"),
            vec!["vpc"],
            Props::Subnet {
                vpc: "vpc".into(),
                cidr: spec.public_subnets[i].to_string(),
                zone: i,
                public: true,
            },
        );
        add(
            &format!("subnet/private-{zone}"),
            Kind::Subnet,
            format!("{p}-private-{zone}"),
            vec!["vpc"],
            Props::Subnet {
                vpc: "vpc".into(),
                cidr: spec.private_subnets[i].to_string(),
                zone: i,
                public: false,
            },
        );
    }
    add(
        "internet-gateway",
        Kind::InternetGateway,
        p.clone(),
        vec!["vpc"],
        Props::InternetGateway { vpc: "vpc".into() },
    );
    let nat_zones: &[&str] = match spec.nat {
        Nat::None => &[],
        Nat::Single => &["a"],
        Nat::PerAz => &["a", "b"],
    };
    for zone in nat_zones {
        let eip = format!("elastic-ip/nat-{zone}");
        add(
            &eip,
            Kind::ElasticIp,
            format!("{p}-nat-{zone}"),
            vec![],
            Props::ElasticIp,
        );
        let subnet = format!("subnet/public-{zone}");
        add(
            &format!("nat-gateway/{zone}"),
            Kind::NatGateway,
            format!("{p}-nat-{zone}"),
            // The gateway needs the internet gateway attached to reach out.
            vec![subnet.as_str(), eip.as_str(), "internet-gateway"],
            Props::NatGateway {
                subnet: subnet.clone(),
                eip: eip.clone(),
            },
        );
    }
    add(
        "route-table/public",
        Kind::RouteTable,
        format!("{p}-public"),
        vec![
            "vpc",
            "internet-gateway",
            "subnet/public-a",
            "subnet/public-b",
        ],
        Props::RouteTable {
            vpc: "vpc".into(),
            subnets: vec!["subnet/public-a".into(), "subnet/public-b".into()],
            default_route: Some("internet-gateway".into()),
        },
    );
    for zone in ["a", "b"] {
        let nat = match spec.nat {
            Nat::None => None,
            Nat::Single => Some("nat-gateway/a".to_owned()),
            Nat::PerAz => Some(format!("nat-gateway/{zone}")),
        };
        let subnet = format!("subnet/private-{zone}");
        let mut deps = vec!["vpc", subnet.as_str()];
        if let Some(n) = &nat {
            deps.push(n.as_str());
        }
        add(
            &format!("route-table/private-{zone}"),
            Kind::RouteTable,
            format!("{p}-private-{zone}"),
            deps,
            Props::RouteTable {
                vpc: "vpc".into(),
                subnets: vec![subnet.clone()],
                default_route: nat.clone(),
            },
        );
    }
    let world = |port| Ingress {
        port,
        from: Source::Cidr("0.0.0.0/0".into()),
    };
    let mut alb_in = vec![world(80)];
    if spec.certificate_arn.is_some() {
        alb_in.push(world(443));
    }
    add(
        "security-group/alb",
        Kind::SecurityGroup,
        format!("{p}-alb"),
        vec!["vpc"],
        Props::SecurityGroup {
            vpc: "vpc".into(),
            description: format!("{p} load balancer: HTTP(S) from anywhere"),
            ingress: alb_in,
        },
    );
    let mut ports: Vec<u16> = spec.web.iter().map(|w| w.port).collect();
    ports.sort();
    ports.dedup();
    add(
        "security-group/services",
        Kind::SecurityGroup,
        format!("{p}-services"),
        vec!["vpc", "security-group/alb"],
        Props::SecurityGroup {
            vpc: "vpc".into(),
            description: format!("{p} services: container ports from the load balancer only"),
            ingress: ports
                .iter()
                .map(|port| Ingress {
                    port: *port,
                    from: Source::Group("security-group/alb".into()),
                })
                .collect(),
        },
    );
    let from_services = |port| Ingress {
        port,
        from: Source::Group("security-group/services".into()),
    };
    add(
        "security-group/database",
        Kind::SecurityGroup,
        format!("{p}-database"),
        vec!["vpc", "security-group/services"],
        Props::SecurityGroup {
            vpc: "vpc".into(),
            description: format!("{p} database: PostgreSQL from the services only"),
            ingress: vec![from_services(5432)],
        },
    );
    if spec.redis {
        add(
            "security-group/cache",
            Kind::SecurityGroup,
            format!("{p}-cache"),
            vec!["vpc", "security-group/services"],
            Props::SecurityGroup {
                vpc: "vpc".into(),
                description: format!("{p} cache: Redis from the services only"),
                ingress: vec![from_services(6379)],
            },
        );
    }
    add(
        "cluster",
        Kind::Cluster,
        spec.cluster.clone(),
        vec![],
        Props::Cluster {
            container_insights: spec.container_insights,
        },
    );
    for repo in &spec.repositories {
        add(
            &format!("repository/{repo}"),
            Kind::Repository,
            repo.clone(),
            vec![],
            Props::Repository {
                immutable_tags: spec.ecr_immutable_tags,
                keep_images: spec.ecr_keep_images,
            },
        );
    }
    for service in &spec.services {
        add(
            &format!("log-group/{service}"),
            Kind::LogGroup,
            format!("/ecs/{p}/{service}"),
            vec![],
            Props::LogGroup {
                retention_days: spec.log_retention_days,
            },
        );
    }
    add(
        "topic",
        Kind::Topic,
        spec.topic_name.clone(),
        vec![],
        Props::Topic,
    );
    add(
        "state-bucket",
        Kind::Bucket,
        spec.state_bucket.clone(),
        vec![],
        Props::Bucket,
    );
    out
}

/// What to do with each desired resource, given what was found (`None`: nothing found).
pub fn plan(desired: &[Desired], found: &BTreeMap<String, Option<Observed>>) -> Vec<Step> {
    desired
        .iter()
        .map(|d| {
            let action = match found.get(&d.key).cloned().flatten() {
                None => Action::Create,
                Some(o) if !o.tagged => Action::Conflict {
                    reason: format!(
                        "{} exists without this environment's tags: not adopted, not changed",
                        d.name
                    ),
                },
                Some(o) if !o.fixed_drift.is_empty() => Action::Conflict {
                    reason: format!(
                        "differs in ways AWS cannot change in place: {}",
                        o.fixed_drift.join("; ")
                    ),
                },
                Some(o) if !o.drift.is_empty() => Action::Update { changes: o.drift },
                Some(_) => Action::Keep,
            };
            Step {
                key: d.key.clone(),
                kind: d.kind,
                name: d.name.clone(),
                action,
            }
        })
        .collect()
}

/// The destroy plan: what exists (tagged), dependents first.
pub fn teardown(desired: &[Desired], found: &BTreeMap<String, Option<Observed>>) -> Vec<Step> {
    desired
        .iter()
        .rev()
        .filter(|d| {
            found
                .get(&d.key)
                .cloned()
                .flatten()
                .is_some_and(|o| o.tagged)
        })
        .map(|d| Step {
            key: d.key.clone(),
            kind: d.kind,
            name: d.name.clone(),
            action: Action::Delete,
        })
        .collect()
}

/// Groups keys into waves: each wave's resources depend only on earlier waves, so a wave's
/// members can be worked on at once.
pub fn waves(desired: &[Desired]) -> Vec<Vec<String>> {
    let mut level: BTreeMap<&str, usize> = BTreeMap::new();
    for d in desired {
        // `desired` lists dependencies first, so their levels are known here.
        let l = d
            .deps
            .iter()
            .map(|k| level.get(k.as_str()).map_or(0, |l| l + 1))
            .max()
            .unwrap_or(0);
        level.insert(&d.key, l);
    }
    let mut waves: Vec<Vec<String>> = Vec::new();
    for d in desired {
        let l = level[d.key.as_str()];
        if waves.len() <= l {
            waves.resize(l + 1, Vec::new());
        }
        waves[l].push(d.key.clone());
    }
    waves
}

#[cfg(test)]
mod tests {
    use super::*;
    use harbormaster_core::config::Config;

    fn spec(extra: &str) -> Spec {
        let text = format!(
            r#"
project = "booking"
state_bucket = "booking-harbormaster-state"
notification_topic = "arn:aws:sns:us-east-1:000000000000:booking-deployments"
[environments.dev]
cluster = "booking-dev"
[environments.dev.bootstrap]
web_ports = {{ web = 8000 }}
{extra}
[services.web]
repository = "booking/web"
task_definition = "web.json"
[services.worker]
repository = "booking/web"
task_definition = "worker.json"
"#
        );
        Spec::from_config(
            "harbormaster.toml",
            &Config::parse("harbormaster.toml", &text).unwrap(),
            "dev",
        )
        .unwrap()
    }

    #[test]
    fn the_graph_lists_dependencies_first_and_every_dependency_exists() {
        for nat in ["none", "single", "per_az"] {
            let d = desired(&spec(&format!("nat = \"{nat}\"")));
            let mut seen = std::collections::BTreeSet::new();
            for r in &d {
                for dep in &r.deps {
                    assert!(seen.contains(dep), "{nat}: {} needs {dep} first", r.key);
                }
                assert!(seen.insert(r.key.clone()), "{} twice", r.key);
            }
            let nats = d.iter().filter(|r| r.kind == Kind::NatGateway).count();
            assert_eq!(
                nats,
                match nat {
                    "none" => 0,
                    "single" => 1,
                    _ => 2,
                }
            );
        }
    }

    #[test]
    fn security_groups_are_least_privilege() {
        let d = desired(&spec(
            "certificate_arn = \"arn:aws:acm:us-east-1:0:certificate/x\"\nredis = true",
        ));
        let ingress = |key: &str| match &d.iter().find(|r| r.key == key).unwrap().props {
            Props::SecurityGroup { ingress, .. } => ingress.clone(),
            _ => unreachable!(),
        };
        assert_eq!(
            ingress("security-group/alb")
                .iter()
                .map(|i| i.port)
                .collect::<Vec<_>>(),
            [80, 443]
        );
        assert_eq!(
            ingress("security-group/services"),
            [Ingress {
                port: 8000,
                from: Source::Group("security-group/alb".into())
            }]
        );
        assert_eq!(
            ingress("security-group/database"),
            [Ingress {
                port: 5432,
                from: Source::Group("security-group/services".into())
            }]
        );
        assert_eq!(
            ingress("security-group/cache"),
            [Ingress {
                port: 6379,
                from: Source::Group("security-group/services".into())
            }]
        );
        let without = desired(&spec(""));
        assert!(without.iter().all(|r| r.key != "security-group/cache"));
    }

    #[test]
    fn plan_creates_what_is_missing_keeps_what_matches_and_never_takes_what_is_not_ours() {
        let d = desired(&spec(""));
        let mut found: BTreeMap<String, Option<Observed>> = d
            .iter()
            .map(|r| {
                (
                    r.key.clone(),
                    Some(Observed {
                        id: "x".into(),
                        tagged: true,
                        ..Default::default()
                    }),
                )
            })
            .collect();
        found.insert("subnet/private-b".into(), None);
        found.insert(
            "cluster".into(),
            Some(Observed {
                id: "c".into(),
                tagged: false,
                ..Default::default()
            }),
        );
        found.insert(
            "log-group/web".into(),
            Some(Observed {
                id: "l".into(),
                tagged: true,
                drift: vec!["retention 7 → 30 days".into()],
                ..Default::default()
            }),
        );
        found.insert(
            "vpc".into(),
            Some(Observed {
                id: "v".into(),
                tagged: true,
                fixed_drift: vec!["CIDR 10.9.0.0/16 ≠ 10.20.0.0/16".into()],
                ..Default::default()
            }),
        );
        let steps = plan(&d, &found);
        let by_key: BTreeMap<_, _> = steps.iter().map(|s| (s.key.as_str(), &s.action)).collect();
        assert_eq!(by_key["subnet/private-b"], &Action::Create);
        assert!(
            matches!(by_key["cluster"], Action::Conflict { reason } if reason.contains("without this environment's tags"))
        );
        assert!(matches!(by_key["log-group/web"], Action::Update { .. }));
        assert!(matches!(by_key["vpc"], Action::Conflict { .. }));
        assert_eq!(steps.iter().filter(|s| s.action.is_change()).count(), 2);
        let down = teardown(&d, &found);
        assert_eq!(down.first().map(|s| s.key.as_str()), Some("state-bucket"));
        assert!(
            down.iter()
                .all(|s| s.key != "cluster" && s.key != "subnet/private-b"),
            "only what is ours and exists"
        );
    }

    #[test]
    fn waves_respect_dependencies() {
        let d = desired(&spec("nat = \"per_az\""));
        let w = waves(&d);
        let wave_of = |k: &str| {
            w.iter()
                .position(|wave| wave.iter().any(|x| x == k))
                .unwrap()
        };
        for r in &d {
            for dep in &r.deps {
                assert!(wave_of(dep) < wave_of(&r.key), "{} before {dep}", r.key);
            }
        }
        assert!(w[0].contains(&"vpc".to_string()) && w[0].contains(&"cluster".to_string()));
    }
}
