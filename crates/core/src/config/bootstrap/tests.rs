use super::*;

/// A small config with the given `[environments.dev.bootstrap]` lines (shared by the model's tests).
pub(crate) fn config(bootstrap: &str) -> Config {
    let text = format!(
        r#"
project = "booking"
state_bucket = "booking-harbormaster-state"
notification_topic = "arn:aws:sns:us-east-1:000000000000:booking-deployments"
[environments.dev]
cluster = "booking-dev"
[environments.dev.bootstrap]
{bootstrap}
[services.web]
repository = "booking/web"
task_definition = "web.json"
[services.worker]
repository = "booking/web"
task_definition = "worker.json"
"#
    );
    Config::parse("harbormaster.toml", &text).unwrap()
}

#[test]
fn defaults_carve_two_public_and_two_private_subnets_out_of_the_vpc() {
    let s = Spec::from_config(
        "harbormaster.toml",
        &config("web_ports = { web = 8000 }"),
        "dev",
    )
    .unwrap();
    assert_eq!(s.vpc_cidr.to_string(), "10.20.0.0/16");
    assert_eq!(
        s.public_subnets.map(|c| c.to_string()),
        ["10.20.0.0/20", "10.20.16.0/20"]
    );
    assert_eq!(
        s.private_subnets.map(|c| c.to_string()),
        ["10.20.128.0/20", "10.20.144.0/20"]
    );
    assert_eq!(s.nat, Nat::Single);
    assert_eq!(s.repositories, ["booking/web"]);
    assert_eq!(
        s.web,
        [WebService {
            name: "web".into(),
            port: 8000,
            path: "/*".into()
        }]
    );
    let db = s.database.clone().unwrap();
    assert_eq!(
        (db.major, db.deletion_protection, db.name.as_str()),
        (16, true, "booking")
    );
    assert_eq!(s.topic_name, "booking-deployments");
}

#[test]
fn bad_networks_are_named_errors() {
    let cases = [
        (
            "vpc_cidr = \"10.20.0.1/16\"",
            "vpc_cidr",
            "not an IPv4 network",
        ),
        (
            "public_subnets = [\"10.30.0.0/24\", \"10.20.1.0/24\"]",
            "public_subnets",
            "outside the VPC",
        ),
        (
            "private_subnets = [\"10.20.0.0/24\", \"10.20.9.0/24\"]",
            "public_subnets",
            "overlaps",
        ),
        (
            "nat = \"some\"",
            "nat",
            "allowed: \"none\", \"single\", \"per_az\"",
        ),
        ("log_retention_days = 31", "log_retention_days", "allows"),
        (
            "web_ports = { api = 80 }",
            "web_ports.api",
            "no service `api`",
        ),
        ("colour = \"blue\"", "", "unknown field `colour`"),
        (
            "database = { engine_version = \"9.6.1\" }",
            "database.engine_version",
            "not allowed; allowed majors: 14, 15, 16, 17",
        ),
        (
            "web_paths = { worker = \"/w/*\" }",
            "web_paths.worker",
            "no entry in web_ports",
        ),
    ];
    for (line, field, words) in cases {
        let e = Spec::from_config("harbormaster.toml", &config(line), "dev").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!(
                "environments.dev.bootstrap{}",
                if field.is_empty() {
                    String::new()
                } else {
                    format!(".{field}")
                }
            )),
            "{line}: {text}"
        );
        assert!(text.contains(words), "{line}: {text}");
    }
}

/// Issue 32, finding 8: `<project>-<env>` names the database instance, the Redis replication
/// group and the load balancer; names AWS refuses were accepted, and `apply` failed half way.
/// The limits: RDS DBInstanceIdentifier (1–63, a letter first, no `--`, no `-` last),
/// ElastiCache ReplicationGroupId (1–40, the same rules), an ALB's Name (≤ 32, no `-` first or
/// last, not `internal-…`).
#[test]
fn finding_8_names_aws_refuses_are_refused_by_validate() {
    let with = |project: &str, env: &str, bootstrap: &str| {
        let text = format!(
            r#"
project = "{project}"
state_bucket = "some-harbormaster-state"
notification_topic = "arn:aws:sns:us-east-1:000000000000:deployments"
[environments.{env}]
cluster = "c"
[environments.{env}.bootstrap]
{bootstrap}
[services.web]
repository = "{project}/web"
task_definition = "web.json"
"#
        );
        let config = Config::parse("harbormaster.toml", &text).unwrap();
        match Spec::from_config("harbormaster.toml", &config, env) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    };
    // A digit first: no database identifier, no replication group id.
    let err = with("9booking", "dev", "redis = true");
    assert!(
        err.contains("`environments.dev.bootstrap.database`"),
        "{err}"
    );
    assert!(err.contains("`environments.dev.bootstrap.redis`"), "{err}");
    // Too long for an ALB and for a replication group (41 characters), fine for RDS.
    let long = "booking-platform-services-x";
    let err = with(long, "prod-eu-west1", "redis = true");
    assert!(err.contains("load balancer"), "{err}");
    assert!(
        err.contains("`environments.prod-eu-west1.bootstrap.redis`"),
        "{err}"
    );
    assert!(!err.contains("bootstrap.database`"), "{err}");
    // `internal-` is the ALB's own prefix; the database is left out here.
    let err = with("internal", "dev", "database = { enabled = false }");
    assert!(
        err.contains("load balancer") && err.contains("internal-"),
        "{err}"
    );
    assert_eq!(with("booking", "dev", "redis = true"), "");
}

#[test]
fn finding_1_development_and_release_tags_are_checked_and_default_to_main_pr_and_semver() {
    let s = Spec::from_config("harbormaster.toml", &config(""), "dev").unwrap();
    assert_eq!(s.registry.dev_tags, ["main-", "pr-"]);
    assert_eq!(s.registry.release_tags, ["*.*.*"]);
    assert_eq!(s.registry.keep_dev_images, 30);
    let lines = "ecr_dev_tags = [\"main-\", \"hm-keep-x\", \"bad tag\"]\necr_release_tags = [\"*a*b*c*d*e\"]";
    let err = Spec::from_config("harbormaster.toml", &config(lines), "dev")
        .unwrap_err()
        .to_string();
    for path in [
        "environments.dev.bootstrap.ecr_dev_tags[1]",
        "environments.dev.bootstrap.ecr_dev_tags[2]",
        "environments.dev.bootstrap.ecr_release_tags[0]",
    ] {
        assert!(err.contains(path), "{path} not named: {err}");
    }
    assert!(err.contains("harbormaster.toml"));
    let custom = "ecr_dev_tags = [\"build-\"]\necr_release_tags = [\"release-*\"]";
    let s = Spec::from_config("harbormaster.toml", &config(custom), "dev").unwrap();
    assert_eq!(s.registry.dev_tags, ["build-"]);
    assert_eq!(s.registry.release_tags, ["release-*"]);
}
