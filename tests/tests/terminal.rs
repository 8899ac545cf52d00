//! `deploy --wait` and `tick` at a real terminal: tmux runs the CLI in a pane, and the pane's screen is read
//! with `capture-pane` while the rollout goes on. The progress line (phase, ECS's task counts,
//! its last event, the clock) is drawn in place, and the command ends with the verdict.

use std::process::Command;
use std::time::{Duration, Instant};

use harbormaster_e2e::{cli_binary, shell_quoted, World};

fn tmux(socket: &str, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .args(["-L", socket])
        .args(args)
        .output()
        .expect("tmux runs (.ci/run installs it)")
}

/// Runs `args` of the CLI against `w` in a 150×12 tmux pane until it exits (or `limit`
/// passes), showing `look` every screen captured meanwhile; the last screen.
fn in_a_pane(w: &World, args: &[&str], limit: Duration, mut look: impl FnMut(&str)) -> String {
    let socket = format!("harbormaster-test-{}-{}", std::process::id(), args[0]);
    let mut command = vec!["env".to_owned()];
    command.extend(
        w.cli_env()
            .iter()
            .map(|(k, v)| shell_quoted(&format!("{k}={v}"))),
    );
    command.push(shell_quoted(&cli_binary().unwrap().display().to_string()));
    command.extend(args.iter().map(|a| shell_quoted(a)));
    let shell = format!("{}; echo EXIT=$?; sleep 60", command.join(" "));
    let new = [
        "new-session",
        "-d",
        "-x",
        "150",
        "-y",
        "12",
        "-s",
        "hm",
        &shell,
    ];
    let started = tmux(&socket, &new);
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let mut last = String::new();
    let until = Instant::now() + limit;
    while Instant::now() < until && !last.contains("EXIT=") {
        let out = tmux(&socket, &["capture-pane", "-p", "-t", "hm"]);
        last = String::from_utf8_lossy(&out.stdout).into_owned();
        look(&last);
        std::thread::sleep(Duration::from_millis(200));
    }
    tmux(&socket, &["kill-server"]);
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_wait_at_a_terminal_draws_one_updating_progress_line() {
    let w = World::start().await.unwrap();
    w.push_image("main-7e57700").await.unwrap();
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
    let mut progress = None;
    let last = in_a_pane(&w, &args, Duration::from_secs(120), |screen| {
        let drawing = screen
            .lines()
            .any(|l| l.contains("dev/web: ") && l.contains(" running"));
        if drawing && progress.is_none() {
            progress = Some(screen.to_owned());
        }
    });
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

/// Issue 21: an interactive `tick` ends with a line per service still rolling out, drawn as
/// `deploy --wait` draws it. `--dry-run` leaves the deployment the push started in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tick_at_a_terminal_shows_each_rollout_in_flight() {
    let w = World::start().await.unwrap();
    let file = w
        .push_event_file(&w.config_dir, "terminal-tick-push", "main-71c4000")
        .await
        .unwrap();
    let (code, _) = w.invoke(file.to_str().unwrap());
    assert_eq!(code, 0);

    let screen = in_a_pane(&w, &["tick", "--dry-run"], Duration::from_secs(60), |_| {});
    eprintln!("--- the screen ---\n{screen}");
    assert!(screen.contains("EXIT=0"), "{screen}");
    let lines: Vec<&str> = screen
        .lines()
        .filter(|l| l.contains(": stabilizing · ") && l.contains(" running"))
        .collect();
    assert_eq!(lines.len(), 2, "web and worker, once each: {screen}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("dev/web: stabilizing · 1/1 running")),
        "{screen}"
    );
    // Without a terminal, the report alone (no progress lines for a script to trip on).
    let piped = w.cli(&["tick", "--dry-run"]);
    let text = String::from_utf8_lossy(&piped.stderr);
    assert!(!text.contains(": stabilizing · "), "{text}");
}
