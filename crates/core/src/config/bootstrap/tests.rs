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
