//! The desired resources of an environment as a dependency graph, and the plan: what to do with
//! each, given what was found. Pure: the adapters find and change things, this decides.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::spec::{Database, Nat, Spec};

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
    LoadBalancer,
    TargetGroup,
    Listener,
    ListenerRule,
    Role,
    DbSubnetGroup,
    DbParameterGroup,
    Database,
    CacheSubnetGroup,
    Cache,
}

impl Kind {
    /// Load balancer, IAM, database and cache: handled by `cloud_app`.
    pub fn is_app_tier(self) -> bool {
        matches!(
            self,
            Kind::LoadBalancer
                | Kind::TargetGroup
                | Kind::Listener
                | Kind::ListenerRule
                | Kind::Role
                | Kind::DbSubnetGroup
                | Kind::DbParameterGroup
                | Kind::Database
                | Kind::CacheSubnetGroup
                | Kind::Cache
        )
    }
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
    LoadBalancer {
        subnets: Vec<String>,
        security_group: String,
    },
    TargetGroup {
        vpc: String,
        port: u16,
        health_check_path: String,
        deregistration_delay_seconds: u32,
    },
    Listener {
        load_balancer: String,
        port: u16,
        certificate_arn: Option<String>,
    },
    ListenerRule {
        listener: String,
        target_group: String,
        path: String,
        priority: u32,
    },
    /// `policy`: an inline policy document with `${account}` and `${region}` left to fill.
    Role {
        service: String,
        managed: Vec<String>,
        policy: Option<serde_json::Value>,
    },
    DbSubnetGroup {
        subnets: Vec<String>,
    },
    DbParameterGroup {
        family: String,
    },
    Database {
        spec: Database,
        subnet_group: String,
        parameter_group: String,
        security_group: String,
    },
    CacheSubnetGroup {
        subnets: Vec<String>,
    },
    Cache {
        node_type: String,
        subnet_group: String,
        security_group: String,
    },
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

    // Load balancer: two target groups per web service (blue and green, for the blue/green
    // strategy), listeners, and a production rule per service forwarding to blue.
    add(
        "load-balancer",
        Kind::LoadBalancer,
        p.clone(),
        vec![
            "subnet/public-a",
            "subnet/public-b",
            "security-group/alb",
            "internet-gateway",
        ],
        Props::LoadBalancer {
            subnets: vec!["subnet/public-a".into(), "subnet/public-b".into()],
            security_group: "security-group/alb".into(),
        },
    );
    for w in &spec.web {
        for colour in ["blue", "green"] {
            add(
                &format!("target-group/{}-{colour}", w.name),
                Kind::TargetGroup,
                format!("{p}-{}-{colour}", w.name),
                vec!["vpc"],
                Props::TargetGroup {
                    vpc: "vpc".into(),
                    port: w.port,
                    health_check_path: spec.health_check_path.clone(),
                    deregistration_delay_seconds: spec.deregistration_delay_seconds,
                },
            );
        }
    }
    let mut listeners = vec![("http", 80u16, None)];
    if let Some(cert) = &spec.certificate_arn {
        listeners.push(("https", 443, Some(cert.clone())));
    }
    for (proto, port, cert) in &listeners {
        let key = format!("listener/{proto}");
        add(
            &key,
            Kind::Listener,
            format!("{p}-{proto}"),
            vec!["load-balancer"],
            Props::Listener {
                load_balancer: "load-balancer".into(),
                port: *port,
                certificate_arn: cert.clone(),
            },
        );
        for (i, w) in spec.web.iter().enumerate() {
            let tg = format!("target-group/{}-blue", w.name);
            add(
                &format!("listener-rule/{proto}-{}", w.name),
                Kind::ListenerRule,
                format!("{p}-{proto}-{}", w.name),
                vec![key.as_str(), tg.as_str()],
                Props::ListenerRule {
                    listener: key.clone(),
                    target_group: tg.clone(),
                    path: w.path.clone(),
                    // More specific paths first: "/*" last.
                    priority: if w.path == "/*" {
                        1000
                    } else {
                        10 * (i as u32 + 1)
                    },
                },
            );
        }
    }

    // IAM: what the tasks' agent may do (pull, log, read this environment's secrets), the role
    // the application's code gets, and the one ECS uses to shift traffic for blue/green.
    let env_path = format!("{}/{}", spec.project, spec.environment);
    let repos: Vec<String> = spec
        .repositories
        .iter()
        .map(|r| format!("arn:aws:ecr:${{region}}:${{account}}:repository/{r}"))
        .collect();
    let execution_policy = serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "Registry", "Effect": "Allow", "Action": "ecr:GetAuthorizationToken", "Resource": "*"},
            {"Sid": "Images", "Effect": "Allow",
             "Action": ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"],
             "Resource": repos},
            {"Sid": "Logs", "Effect": "Allow", "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
             "Resource": format!("arn:aws:logs:${{region}}:${{account}}:log-group:/ecs/{p}/*")},
            {"Sid": "Parameters", "Effect": "Allow", "Action": "ssm:GetParameters",
             "Resource": format!("arn:aws:ssm:${{region}}:${{account}}:parameter/{env_path}/*")},
            {"Sid": "Secrets", "Effect": "Allow", "Action": "secretsmanager:GetSecretValue",
             "Resource": format!("arn:aws:secretsmanager:${{region}}:${{account}}:secret:{env_path}/*")}
        ]
    });
    add(
        "role/execution",
        Kind::Role,
        format!("{p}-execution"),
        vec![],
        Props::Role {
            service: "ecs-tasks.amazonaws.com".into(),
            managed: vec![],
            policy: Some(execution_policy),
        },
    );
    add(
        "role/task",
        Kind::Role,
        format!("{p}-task"),
        vec![],
        Props::Role {
            service: "ecs-tasks.amazonaws.com".into(),
            managed: vec![],
            policy: None,
        },
    );
    add(
        "role/ecs-infrastructure",
        Kind::Role,
        format!("{p}-ecs-infrastructure"),
        vec![],
        Props::Role {
            service: "ecs.amazonaws.com".into(),
            managed: vec!["arn:aws:iam::aws:policy/service-role/AmazonECSInfrastructureRolePolicyForLoadBalancers".into()],
            policy: None,
        },
    );

    if let Some(db) = &spec.database {
        let private = vec!["subnet/private-a".to_owned(), "subnet/private-b".to_owned()];
        add(
            "db-subnet-group",
            Kind::DbSubnetGroup,
            p.clone(),
            vec!["subnet/private-a", "subnet/private-b"],
            Props::DbSubnetGroup { subnets: private },
        );
        let family = format!("postgres{}", db.major);
        add(
            "db-parameter-group",
            Kind::DbParameterGroup,
            format!("{p}-{family}"),
            vec![],
            Props::DbParameterGroup { family },
        );
        add(
            "database",
            Kind::Database,
            p.clone(),
            vec![
                "db-subnet-group",
                "db-parameter-group",
                "security-group/database",
            ],
            Props::Database {
                spec: db.clone(),
                subnet_group: "db-subnet-group".into(),
                parameter_group: "db-parameter-group".into(),
                security_group: "security-group/database".into(),
            },
        );
    }
    if spec.redis {
        let private = vec!["subnet/private-a".to_owned(), "subnet/private-b".to_owned()];
        add(
            "cache-subnet-group",
            Kind::CacheSubnetGroup,
            p.clone(),
            vec!["subnet/private-a", "subnet/private-b"],
            Props::CacheSubnetGroup { subnets: private },
        );
        add(
            "cache",
            Kind::Cache,
            p.clone(),
            vec!["cache-subnet-group", "security-group/cache"],
            Props::Cache {
                node_type: spec.redis_node_type.clone(),
                subnet_group: "cache-subnet-group".into(),
                security_group: "security-group/cache".into(),
            },
        );
    }
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

/// What may start now: resources whose dependencies are all done. Also returns those blocked
/// for good by a dependency that is not usable (a conflict or a failure), and the rest.
pub fn ready<'a>(
    waiting: Vec<&'a Desired>,
    done: &dyn Fn(&str) -> bool,
    unusable: &dyn Fn(&str) -> bool,
) -> (
    Vec<&'a Desired>,
    Vec<(&'a Desired, String)>,
    Vec<&'a Desired>,
) {
    let (mut start, mut blocked, mut rest) = (Vec::new(), Vec::new(), Vec::new());
    for d in waiting {
        if let Some(dep) = d.deps.iter().find(|k| unusable(k)) {
            blocked.push((d, dep.clone()));
        } else if d.deps.iter().all(|k| done(k)) {
            start.push(d);
        } else {
            rest.push(d);
        }
    }
    (start, blocked, rest)
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

    fn spec(extra: &str) -> Spec {
        let cfg = crate::spec::tests::config(&format!("web_ports = {{ web = 8000 }}\n{extra}"));
        Spec::from_config("harbormaster.toml", &cfg, "dev").unwrap()
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
        // Dependents before what they depend on: the reverse of the graph's order.
        let order: Vec<&str> = d.iter().map(|r| r.key.as_str()).collect();
        let pos = |k: &str| order.iter().position(|x| *x == k).unwrap();
        assert!(down.windows(2).all(|w| pos(&w[0].key) > pos(&w[1].key)));
        assert!(
            down.iter()
                .all(|s| s.key != "cluster" && s.key != "subnet/private-b"),
            "only what is ours and exists"
        );
    }

    #[test]
    fn the_database_does_not_wait_for_the_nat_gateway() {
        let d = desired(&spec("nat = \"per_az\""));
        // Everything but the NAT gateways (and what needs them) is done.
        let done = |k: &str| {
            !k.starts_with("nat-gateway/")
                && !k.starts_with("route-table/private")
                && k != "database"
        };
        let waiting: Vec<&Desired> = d.iter().filter(|r| !done(&r.key)).collect();
        let (start, blocked, rest) = ready(waiting, &done, &|_| false);
        let keys: Vec<&str> = start.iter().map(|r| r.key.as_str()).collect();
        assert!(
            keys.contains(&"database") && keys.contains(&"nat-gateway/a"),
            "{keys:?}"
        );
        assert!(blocked.is_empty());
        assert!(
            rest.iter()
                .all(|r| r.key.starts_with("route-table/private")),
            "{rest:?}"
        );
        // A failed dependency blocks its dependents for good.
        let (_, blocked, _) = ready(rest, &done, &|k| k == "nat-gateway/a");
        assert_eq!(blocked.len(), 1);
        assert_eq!(blocked[0].0.key, "route-table/private-a");
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
