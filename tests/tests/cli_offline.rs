//! The CLI commands that need no AWS: checking a config and rendering a task definition.

use std::process::Command;

use harbormaster_e2e::{cli_binary, workspace_root, TempDir};
use serde_json::Value;

fn harbormaster(config: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(cli_binary().unwrap())
        .arg("--config")
        .arg(config)
        .args(args)
        // No endpoint, no credentials: these commands must not need AWS.
        .env_remove("AWS_ENDPOINT_URL")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .output()
        .unwrap()
}

fn example_copy() -> TempDir {
    let dir = TempDir::new("cli").unwrap();
    let src = workspace_root().join("examples/booking");
    std::fs::create_dir_all(dir.0.join("taskdefs")).unwrap();
    for f in [
        "harbormaster.toml",
        "taskdefs/web.json",
        "taskdefs/worker.json",
    ] {
        std::fs::copy(src.join(f), dir.0.join(f)).unwrap();
    }
    dir
}

#[test]
fn validate_accepts_the_example_and_lists_what_deploys_where() {
    let out = harbormaster(&workspace_root().join("examples/booking"), &["validate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("valid (2 environments, 2 services, 4 deployment targets)"),
        "{text}"
    );
    assert!(
        text.contains("dev/web: tags matching /^main-[0-9a-f]{7,40}$/ from booking/web"),
        "{text}"
    );
    assert!(
        text.contains(
            "prod/web: semver tags >=1.0.0 from booking/web (auto-deploy off in this environment)"
        ),
        "{text}"
    ); // And what each service is created with and kept at.
    assert!(
        text.contains("capacity FARGATE:1 + FARGATE_SPOT:3 (base 1)"),
        "{text}"
    );
    assert!(
        text.contains("autoscaling 1–5 (cpu 70%, memory 80%)"),
        "{text}"
    );
}

/// Fargate Spot for web, whose template runs on ARM64: refused by `validate`, before any call,
/// naming the template's field and the setting (ECS Developer Guide, "AWS Fargate capacity
/// providers": Fargate Spot runs X86_64 Linux tasks only).
#[test]
fn validate_refuses_spot_for_an_arm64_task_definition() {
    let dir = example_copy();
    let path = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[services.web.environments.dev]\n",
        "[services.web.environments.dev]\ncapacity = { fargate_spot = 1 }\n",
    );
    std::fs::write(&path, text).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runtimePlatform.cpuArchitecture"), "{err}");
    assert!(
        err.contains("services.web.environments.dev.capacity"),
        "{err}"
    );
}

/// The bootstrap table is checked by `validate` too (the same check `harbormaster-bootstrap`
/// makes before any call), so a typo there is found in review, not at apply time.
#[test]
fn validate_checks_every_environment_s_bootstrap_table() {
    let dir = example_copy();
    let path = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("nat = \"per_az\"", "nat = \"per-az\"");
    std::fs::write(&path, text).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("`environments.prod.bootstrap.nat`"), "{err}");
}

#[test]
fn validate_names_the_file_and_field_of_every_error() {
    let dir = example_copy();
    let toml = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        text.replace("^main-[0-9a-f]{7,40}$", "([")
            .replace("database/password", "password"),
    )
    .unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("harbormaster.toml: `services.web.environments.dev.follow.regex`"),
        "{err}"
    );
    assert!(
        err.contains("`services.web.secrets.DATABASE_PASSWORD`"),
        "{err}"
    );

    let dir = example_copy();
    let web = dir.0.join("taskdefs/web.json");
    let text = std::fs::read_to_string(&web).unwrap();
    std::fs::write(
        &web,
        text.replace("\"memory\": \"1024\"", "\"memory\": \"512\""),
    )
    .unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("taskdefs/web.json: `memory`: 512 MiB is not allowed with cpu 512"),
        "{err}"
    );
}

#[test]
fn render_offline_pins_the_digest_and_references_secrets_by_arn() {
    let digest = format!("sha256:{}", "5e".repeat(32));
    let out = harbormaster(
        &workspace_root().join("examples/booking"),
        &[
            "render",
            "--env",
            "prod",
            "--service",
            "web",
            "--digest",
            &digest,
            "--account",
            "123456789012",
            "--region",
            "eu-west-1",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let td: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(td["family"], "booking-prod-web");
    let web = &td["containerDefinitions"][0];
    assert_eq!(
        web["image"],
        format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/booking/web@{digest}")
    );
    let secrets = web["secrets"].as_array().unwrap();
    assert!(secrets.iter().all(|s| s["valueFrom"]
        .as_str()
        .unwrap()
        .starts_with("arn:aws:ssm:eu-west-1:123456789012:parameter/booking/prod/")));
    assert_eq!(
        web["logConfiguration"]["options"]["awslogs-group"],
        "/ecs/booking-prod"
    );
}

/// Issue 21: an error is printed once, not as `X: Y: X: Y` (a message that already quotes its
/// cause does not get the cause appended again).
#[test]
fn an_error_is_printed_once() {
    let dir = example_copy();
    let toml = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text.replace("^main-[0-9a-f]{7,40}$", "([")).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    let field = "`services.web.environments.dev.follow.regex`";
    assert_eq!(err.matches(field).count(), 1, "{err}");
    // A template that is not there: named once, with the service that refers to it.
    let dir = example_copy();
    std::fs::remove_file(dir.0.join("taskdefs/worker.json")).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("taskdefs/worker.json").count(), 1, "{err}");
    assert!(err.contains("services.worker.task_definition"), "{err}");
}

/// `render … | head -1`: the reader goes away; the command ends quietly with 0, as `cat` does
/// under a shell that ignores SIGPIPE, instead of panicking with 101.
#[test]
fn render_into_a_closed_pipe_ends_quietly() {
    use std::process::Stdio;
    let digest = format!("sha256:{}", "5e".repeat(32));
    let mut child = Command::new(cli_binary().unwrap())
        .arg("--config")
        .arg(workspace_root().join("examples/booking"))
        .args([
            "render",
            "--env",
            "prod",
            "--service",
            "web",
            "--digest",
            &digest,
        ])
        .args(["--account", "123456789012", "--region", "eu-west-1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take()); // the reader is gone before the first line
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// Shell completions from the same clap definition as the commands.
#[test]
fn completions_cover_every_command() {
    for shell in ["bash", "zsh", "fish"] {
        let out = harbormaster(
            &workspace_root().join("examples/booking"),
            &["completions", shell],
        );
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        for verb in ["deploy", "rollback", "approve", "status", "validate"] {
            assert!(script.contains(verb), "{shell}: {verb}");
        }
    }
}

/// Every mistyped key at once, each with its path and, when one is close, the name meant.
#[test]
fn every_unknown_key_is_named_at_once_with_the_key_meant() {
    let dir = example_copy();
    let toml = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let text =
        text.replacen("desired_count", "desird_count", 1)
            .replacen("auto_deploy", "autodeploy", 1);
    std::fs::write(&toml, text).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("desird_count") && err.contains("did you mean `desired_count`?"),
        "{err}"
    );
    assert!(
        err.contains("autodeploy") && err.contains("did you mean `auto_deploy`?"),
        "{err}"
    );
    assert!(
        !err.contains("expected one of"),
        "no list of every allowed name: {err}"
    );
}

/// `region` in harbormaster.toml is used when the environment names none; without either, the
/// error says where to set one. (The endpoint refuses connections: no call gets anywhere.)
#[test]
fn the_config_s_region_is_used_when_the_environment_names_none() {
    let dir = example_copy();
    let status = |dir: &std::path::Path| {
        Command::new(cli_binary().unwrap())
            .arg("--config")
            .arg(dir)
            .args(["status", "--env", "dev", "--service", "web"])
            .env_remove("AWS_REGION")
            .env_remove("AWS_DEFAULT_REGION")
            .env("AWS_CONFIG_FILE", dir.join("no-such-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-such-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", "example")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let out = status(&dir.0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no AWS region") && err.contains("`region` in harbormaster.toml"),
        "{err}"
    );
    let toml = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("region = \"eu-west-1\"\n{text}")).unwrap();
    let out = status(&dir.0);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("no AWS region"), "{err}");
    assert_eq!(out.status.code(), Some(2), "{err}");
}

/// An error quoting a key or value with control characters cannot colour or rewrite the
/// terminal: they are printed as `\u{…}` escapes (line breaks between errors stay).
#[test]
fn control_characters_in_an_error_are_escaped() {
    let dir = example_copy();
    let toml = dir.0.join("harbormaster.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    let hostile = "[environments.dev]\n\"\\u001b[31mred\" = 1\nautodeploy = true\n";
    std::fs::write(&toml, text.replacen("[environments.dev]\n", hostile, 1)).unwrap();
    let out = harbormaster(&dir.0, &["validate"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains('\u{1b}'), "{err:?}");
    assert!(err.contains("\\u{1b}[31mred"), "{err}");
    assert_eq!(err.lines().count(), 2, "one line per error: {err}");
}

/// Issue 30, finding 11: a template that is a link to a file outside the config folder passed
/// `validate`, and `publish` uploaded the outside file (in CodeBuild, a committed link reads
/// the build host). Both refuse it, naming the file; `publish` before any call to AWS.
#[test]
fn finding_11_a_template_that_leads_outside_the_folder_is_refused() {
    let dir = example_copy();
    let outside = TempDir::new("outside").unwrap();
    let web = dir.0.join("taskdefs/web.json");
    std::fs::rename(&web, outside.0.join("web.json")).unwrap();
    std::os::unix::fs::symlink(outside.0.join("web.json"), &web).unwrap();
    for args in [&["validate"][..], &["publish", "--to", "s3://b/p"][..]] {
        let out = harbormaster(&dir.0, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("taskdefs/web.json") && err.contains("outside the config folder"),
            "{args:?}: {err}"
        );
    }
    // A link that stays inside the folder is a file of the folder.
    std::fs::remove_file(&web).unwrap();
    std::fs::rename(
        outside.0.join("web.json"),
        dir.0.join("taskdefs/web-real.json"),
    )
    .unwrap();
    std::os::unix::fs::symlink("web-real.json", &web).unwrap();
    assert!(harbormaster(&dir.0, &["validate"]).status.success());
}
