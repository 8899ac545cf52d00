//! The README, followed as a new user would: "Getting started" and "Local playground" run
//! command by command, as one shell session each, against the local emulator; and
//! `docs/cli.md` is what the binaries' help says.
//!
//! What stands in for what the emulator or this machine cannot do is said where it happens, and
//! only blocks the README marks `<!-- not run: … -->` are replaced:
//! - `cargo install` is the binaries the workspace built (on `PATH` under their names);
//! - `sam deploy` (the functions in AWS) is the CLI's `invoke`, the same dispatch;
//! - `docker push` is ECR's PutImage with a manifest (AWS CLI) and ECR's push event delivered
//!   through `harbormaster invoke`, reading the config the README published to S3.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use harbormaster_e2e::docs::{cli_reference, readme, shell_blocks};
use harbormaster_e2e::{binary, ecr_push_event, setup, shell_quoted, workspace_root, TempDir};
use harbormaster_testkit::{cache_dir, ensure_python_tool, venv_dir, Emulator};

/// The AWS CLI v1 from PyPI, which reads `AWS_DEFAULT_REGION` and `AWS_ENDPOINT_URL` as a user's
/// shell has them.
const AWSCLI: &str = "awscli==1.46.3";

#[test]
fn the_cli_reference_is_what_the_binaries_say() {
    let generated = cli_reference().unwrap();
    let page = std::fs::read_to_string(workspace_root().join("docs/cli.md")).unwrap();
    assert!(
        page == generated,
        "docs/cli.md differs from the binaries' --help: run `cargo xtask docs`"
    );
}

/// A folder of the commands the README names, as a user's `PATH` has them after "Install the
/// CLI": the workspace's binaries, `cargo xtask` as the xtask binary, the AWS CLI.
fn path_with_commands(dir: &Path) -> Result<String> {
    for name in ["harbormaster", "harbormaster-bootstrap"] {
        std::os::unix::fs::symlink(binary(name)?, dir.join(name))?;
    }
    let xtask = binary("xtask")?;
    let cargo = dir.join("cargo");
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh\n[ \"$1\" = xtask ] || {{ echo \"the README test runs only cargo xtask\" >&2; exit 2; }}\nshift\nexec '{}' \"$@\"\n",
            xtask.display()
        ),
    )?;
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    let awscli = ensure_python_tool(
        &cache_dir(&format!("venv-{}", AWSCLI.replace("==", "-"))),
        &[AWSCLI],
        "aws",
    )?;
    Ok(format!(
        "{}:{}:{}",
        dir.display(),
        awscli.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    ))
}

/// Runs `script` in bash (`set -euxo pipefail`) from the repository's root; its output with the
/// trace of each command, or an error carrying it.
fn run_session(script: &str, envs: &[(&str, String)]) -> Result<String> {
    let out = Command::new("bash")
        // One stream, in order: each command's trace line (`+ …`) before its output.
        .args(["-c", &format!("exec 2>&1\nset -euxo pipefail\n{script}")])
        .current_dir(workspace_root())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("the session failed ({}):\n{text}", out.status);
    }
    Ok(text)
}

#[test]
fn getting_started_reaches_a_deployed_service_with_the_emulator_standing_in_for_aws() {
    let emulator = Emulator::start().unwrap();
    let autoscaling = setup::autoscaling_recorder().unwrap();
    let tmp = TempDir::new("getting-started").unwrap();
    let (home, bin) = (tmp.0.join("home"), tmp.0.join("bin"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let mut envs: Vec<(&str, String)> = emulator.env().into_iter().collect();
    envs.push(("PATH", path_with_commands(&bin).unwrap()));
    envs.push(("HOME", home.display().to_string()));
    envs.push((
        "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
        autoscaling.endpoint.clone(),
    ));
    envs.push(("NO_COLOR", "1".into()));

    // The example as the emulator can run it: no NAT gateway (it has none) and no migration
    // task (it runs no containers); see `setup::for_the_emulator`.
    let example =
        std::fs::read_to_string(workspace_root().join("examples/booking/harbormaster.toml"))
            .unwrap();
    let for_emulator = tmp.0.join("harbormaster.toml");
    std::fs::write(
        &for_emulator,
        setup::emulator_config(&setup::without_nat(&example)),
    )
    .unwrap();
    // ECR's push event, its digest filled in by the session from PutImage's answer.
    let event = tmp.0.join("push.json");
    let sample = ecr_push_event(
        "getting-started-push",
        "booking/web",
        "main-abc1234",
        "DIGEST",
    );
    std::fs::write(&event, sample.to_string()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 7,
                   "digest": format!("sha256:{}", "ab".repeat(32))},
        "layers": []
    });

    let mut script = String::new();
    for block in shell_blocks(&readme().unwrap(), "Getting started").unwrap() {
        match block.not_run.as_deref() {
            None => {
                script.push_str(&block.commands);
                if block.commands.contains("cp -r examples/booking") {
                    script.push_str(&format!(
                        "cp {} ~/booking-gitops/harbormaster.toml  # the emulator's variant\n",
                        shell_quoted(&for_emulator.display().to_string())
                    ));
                }
            }
            Some(why) if why.contains("Docker") => script.push_str(&format!(
                "digest=$(aws ecr put-image --repository-name booking/web --image-tag main-abc1234 \
                 --image-manifest {} --query image.imageId.imageDigest --output text)\n\
                 sed \"s/DIGEST/$digest/\" {} > ~/push.json\n\
                 harbormaster --config s3://booking-harbormaster-state/config invoke --event ~/push.json\n",
                shell_quoted(&manifest.to_string()),
                shell_quoted(&event.display().to_string())
            )),
            Some(_) => {}
        }
    }
    assert!(
        script.contains("harbormaster-bootstrap apply --env dev"),
        "{script}"
    );
    let out = run_session(&script, &envs).unwrap();
    // The push went through the published config to a deployment, and the deploy by hand to
    // its end.
    assert!(out.contains("pending → registering"), "{out}");
    assert!(out.contains("booking/web:main-abc1234"), "{out}");
    assert!(out.contains("dev/web: succeeded on arn:aws:ecs:"), "{out}");
}

#[test]
fn the_local_playground_deploys_rolls_back_and_leaves_nothing_running() {
    let tmp = TempDir::new("playground").unwrap();
    let (home, bin) = (tmp.0.join("home"), tmp.0.join("bin"));
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&bin).unwrap();
    let envs: Vec<(&str, String)> = vec![
        ("PATH", path_with_commands(&bin).unwrap()),
        ("HOME", home.display().to_string()),
        // The venv the other tests use, instead of a new one under this HOME.
        (
            "HARBORMASTER_EMULATOR_VENV",
            venv_dir().display().to_string(),
        ),
        ("NO_COLOR", "1".into()),
    ];
    let blocks = shell_blocks(&readme().unwrap(), "Local playground").unwrap();
    let [first, second] = &blocks[..] else {
        panic!("two blocks: one terminal's, then the other's: {blocks:?}");
    };
    assert_eq!(first.commands.trim(), "cargo xtask emulator");

    // The first terminal: in its own process group, as a shell's foreground job is.
    let mut terminal = Command::new("bash")
        .args(["-c", &first.commands])
        .current_dir(workspace_root())
        .envs(envs.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()
        .unwrap();
    let group = terminal.id();
    let lines = BufReader::new(terminal.stdout.take().unwrap()).lines();
    let (ready, said) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = ready.send(line);
        }
    });
    wait_for(&said, "ready; Ctrl-C stops it.", Duration::from_secs(180)).unwrap();
    let env_file = home.join(".cache/harbormaster/emulator.env");
    assert!(env_file.exists());

    let run = run_session(&second.commands, &envs);
    // Ctrl-C, as a terminal sends it: SIGINT to the whole foreground group.
    let before = processes_in(group);
    let _ = Command::new("kill")
        .args(["-INT", "--", &format!("-{group}")])
        .status();
    let stopped = wait_for(&said, "stopped", Duration::from_secs(20));
    let _ = terminal.wait();
    let out = run.unwrap();
    stopped.unwrap();

    // Two pushes deployed, the rollback put the first back.
    assert!(out.contains("pushed booking/web:main-abc1234"), "{out}");
    assert!(out.contains("dev/web: stabilizing → succeeded"), "{out}");
    let last_status = out
        .rsplit("+ harbormaster status --env dev --service web")
        .next()
        .unwrap();
    assert!(
        last_status.contains("last known good: booking/web:main-abc1234"),
        "{last_status}"
    );
    assert!(last_status.contains(" rollback "), "{last_status}");
    assert!(last_status.contains("[marked bad]"), "{last_status}");
    assert!(
        before.len() >= 2,
        "the emulator ran beside xtask: {before:?}"
    );
    assert_eq!(processes_in(group), Vec::<String>::new(), "left running");
    assert!(!env_file.exists(), "the exports point at a closed port");
}

/// Lines until one equals `line`.
fn wait_for(said: &std::sync::mpsc::Receiver<String>, line: &str, limit: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        let left = limit.saturating_sub(start.elapsed());
        match said.recv_timeout(left) {
            Ok(l) if l.trim() == line => return Ok(()),
            Ok(_) => {}
            Err(e) => bail!("no `{line}` within {limit:?}: {e}"),
        }
    }
}

/// The process table's entries in process group `group` (pid and command).
fn processes_in(group: u32) -> Vec<String> {
    let out = Command::new("ps")
        .args(["-eo", "pgid=,pid=,args="])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.lines()
        .filter(|l| l.split_whitespace().next() == Some(&group.to_string()))
        .filter(|l| !l.contains("<defunct>"))
        .map(|l| l.trim().to_owned())
        .collect()
}
