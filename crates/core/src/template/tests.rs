//! Templates as teams write them, and as they go wrong.

use super::*;
use crate::config::Config;
use crate::image::Digest;

/// The shared web template, with a log-router sidecar beside web and one more variable.
fn web() -> String {
    crate::testing::WEB_TEMPLATE
        .replace(
            r#""image": "booking/web","#,
            r#""image": "booking/web:latest","#,
        )
        .replace(
            r#"{"name": "DEBUG", "value": "false"}]}"#,
            r#"{"name": "DEBUG", "value": "false"}, {"name": "PORT", "value": "8000"}]},
    {"name": "log-router", "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"}"#,
        )
}

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
    let t = Template::parse("web.json", &web()).unwrap();
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
    let t = Template::parse("web.json", &web()).unwrap();
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
            web().replace("\"memory\": \"512\"", "\"memory\": \"4096\""),
            "memory",
        ),
        (web().replace("\"family\"", "\"famliy\""), "famliy"),
        (
            web().replace("\"family\"", "\"taskDefinitionArn\""),
            "taskDefinitionArn",
        ),
        (
            web().replace("\"value\": \"false\"", "\"value\": \"postgres://u:p@h/db\""),
            "containerDefinitions[0].environment[0]",
        ),
        (web().replace("${env}-web", "${stage}-web"), ""),
        (web().replace("\"cpu\": \"256\", ", ""), "cpu"),
        // Issue 21: a CPU Fargate does not offer is the cpu field's error, not memory's.
        (web().replace("\"cpu\": \"256\"", "\"cpu\": \"300\""), "cpu"),
    ];
    for (text, field) in cases {
        let e = Template::parse("taskdefs/web.json", &text).unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.to_string().starts_with("taskdefs/web.json"), "{e}");
    }
    let e = Template::parse("t.json", "{ nope").unwrap_err();
    assert!(e.problem.contains("line 1"), "{e}");
}

/// Issue 21: a template's problems come all at once, not one per run; a mistyped field says
/// which one was meant.
#[test]
fn every_problem_of_a_template_is_reported_in_one_run() {
    let text = web()
        .replace("\"family\"", "\"famliy\"")
        .replace("\"cpu\": \"256\"", "\"cpu\": \"300\"")
        .replace("\"value\": \"false\"", "\"value\": \"postgres://u:p@h/db\"")
        .replace("${env}-web", "${stage}-web");
    let all = Template::parse_all("taskdefs/web.json", &text).unwrap_err();
    let fields: Vec<&str> = all.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "famliy",
            "containerDefinitions[0].environment[0]",
            "cpu",
            ""
        ],
        "{all:?}"
    );
    assert!(
        all[0].problem.contains("did you mean `family`?"),
        "{}",
        all[0]
    );
    // The first of them is what `parse` says.
    assert_eq!(
        Template::parse("taskdefs/web.json", &text).unwrap_err(),
        all[0]
    );
}

#[test]
fn vcpu_and_gb_forms_are_normalised() {
    let t = Template::parse(
        "t.json",
        &web()
            .replace("\"256\"", "\"0.5 vCPU\"")
            .replace("\"512\"", "\"1 GB\""),
    )
    .unwrap();
    let r = render(&t, &cfg());
    assert_eq!(
        (r.body["cpu"].as_str(), r.body["memory"].as_str()),
        (Some("512"), Some("1024"))
    );
}

/// The installed agent tags `task-definition/<project>-*` and passes `role/<project>-*` only
/// (deploy/template.yaml, issue 15 point 7): a family or role outside is a template error
/// naming the field, not an AccessDenied on every attempt.
#[test]
fn a_family_or_role_the_agent_cannot_reach_is_named() {
    let cfg = cfg();
    let (e, s, tg) = cfg.target("dev", "web").unwrap();
    let d = Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap();
    let family = r#""family": "booking-${env}-web","#;
    for (from, to, field) in [
        (family, r#""family": "web-${env}","#, "family"),
        (
            "role/booking-${env}-execution",
            "role/ecsTaskExecutionRole",
            "executionRoleArn",
        ),
        (
            family,
            r#""family": "booking-${env}-web", "taskRoleArn": "arn:aws:iam::1:role/app/booking-web","#,
            "taskRoleArn",
        ),
    ] {
        let text = web().replacen(from, to, 1);
        assert_ne!(text, web(), "{from}");
        let t = Template::parse("web.json", &text).unwrap_or_else(|e| panic!("{to}: {e}"));
        let err = t
            .render(&RenderInput {
                config: &cfg,
                environment: e,
                service: s,
                target: tg,
                digest: &d,
                placement: &Placement {
                    account: "1".into(),
                    region: "eu-west-1".into(),
                },
                deployment_id: "d-1",
            })
            .unwrap_err();
        assert_eq!(
            (err.file.as_str(), err.field.as_str()),
            ("web.json", field),
            "{to}"
        );
        assert!(err.problem.contains("booking-"), "{err}");
    }
}

/// A shell's own `${VAR:-default}` is common in ECS commands; `$${…}` writes it (issue 16,
/// point 13): rendered as `${…}`, never taken for a placeholder, while `${env}` beside it is.
#[test]
fn a_doubled_dollar_escapes_a_placeholder() {
    let text = web().replacen(
        r#""name": "web","#,
        r#""name": "web", "command": ["sh", "-c", "gunicorn -w $${WEB_CONCURRENCY:-2} --name ${env}-$$HOME"],"#,
        1,
    );
    assert_ne!(text, web());
    let t = Template::parse("web.json", &text).unwrap_or_else(|e| panic!("{e}"));
    let r = render(&t, &cfg());
    assert_eq!(
        r.body["containerDefinitions"][0]["command"][2],
        "gunicorn -w ${WEB_CONCURRENCY:-2} --name dev-$$HOME"
    );
    // Unescaped, it is still an unknown placeholder.
    let err = Template::parse("web.json", &text.replace("$${WEB", "${WEB")).unwrap_err();
    assert!(
        err.problem
            .contains("unknown placeholder `${WEB_CONCURRENCY:-2}`"),
        "{err}"
    );
}

/// `aws ecs describe-task-definition` output pasted as a template (issue 17, point 6): read,
/// with one note saying what was dropped; the same rendering as the template it came from.
#[test]
fn describe_task_definition_output_is_read_as_a_template() {
    let plain = Template::parse("web.json", &web()).unwrap();
    let mut td: serde_json::Value = serde_json::from_str(&web()).unwrap();
    td["taskDefinitionArn"] = json!("arn:aws:ecs:eu-west-1:1:task-definition/booking-dev-web:7");
    td["revision"] = json!(7);
    td["status"] = json!("ACTIVE");
    td["registeredAt"] = json!("2026-11-23T12:00:00Z");
    let described = json!({"taskDefinition": td, "tags": []});
    let t = Template::parse("described.json", &described.to_string()).unwrap();
    assert_eq!(t.notes.len(), 1, "{:?}", t.notes);
    assert!(
        t.notes[0].contains("taskDefinitionArn, revision, status, registeredAt"),
        "{:?}",
        t.notes
    );
    assert!(plain.notes.is_empty());
    assert_eq!(render(&t, &cfg()).body, render(&plain, &cfg()).body);
}
