//! `deploy --wait` at a real terminal: tmux runs the CLI in a pane, and the pane's screen is read
//! with `capture-pane` while the rollout goes on. The progress line (phase, ECS's task counts,
//! its last event, the clock) is drawn in place, and the command ends with the verdict.

use std::process::Command;
use std::time::{Duration, Instant};

use harbormaster_e2e::{cli_binary, World};

fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux runs (.ci/run installs it)")
}

/// Single-quoted for the shell tmux runs the command with.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_wait_at_a_terminal_draws_one_updating_progress_line() {
    let w = World::start().await.unwrap();
    w.push_image("main-7e57700").await.unwrap();
    let socket = format!("harbormaster-test-{}", std::process::id());
    let mut command = vec!["env".to_owned()];
    command.extend(w.cli_env().iter().map(|(k, v)| quoted(&format!("{k}={v}"))));
    command.push(quoted(&cli_binary().unwrap().display().to_string()));
    let args = [
        "deploy",
        "--env",
        "dev",
        "--service",
        "web",
        "--image",
        "main-7e57700",
        "--wait",
    ];
    command.extend(args.iter().map(|a| quoted(a)));
    let shell = format!("{}; echo EXIT=$?; sleep 60", command.join(" "));
    let started = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-x",
            "150",
            "-y",
            "12",
            "-s",
            "hm",
            &shell,
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );

    let mut progress = None;
    let mut last = String::new();
    let until = Instant::now() + Duration::from_secs(120);
    while Instant::now() < until && !last.contains("EXIT=") {
        let out = tmux(&socket, &["capture-pane", "-p", "-t", "hm"]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        let drawing = last
            .lines()
            .any(|l| l.contains("dev/web: ") && l.contains(" running"));
        if drawing && progress.is_none() {
            progress = Some(last.clone());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    tmux(&socket, &["kill-server"]);
    eprintln!(
        "--- the screen during the rollout ---\n{}",
        progress.clone().unwrap_or_default()
    );
    eprintln!("--- the screen at the end ---\n{last}");
    assert!(last.contains("EXIT=0"), "{last}");
    assert!(last.contains("dev/web: succeeded on"), "{last}");
    // The emulator completes a rollout at once: the line may be drawn only between two looks;
    // it stays on screen above the verdict either way.
    let progress = progress.unwrap_or_else(|| last.clone());
    let drawn: Vec<&str> = progress
        .lines()
        .filter(|l| l.contains(" running · "))
        .collect();
    // One line, updated in place (not a line per look), with the phase, ECS's tasks, its last
    // event and the clock.
    assert_eq!(drawn.len(), 1, "{progress}");
    let line = drawn[0];
    assert!(
        line.contains("dev/web: stabilizing · 1/1 running · (service web)"),
        "{line}"
    );
    assert!(line.contains(" · 0m0"), "{line}");
}
