//! `deploy --wait`'s and an interactive `tick`'s progress: one line per service, updated in place on a terminal
//! (indicatif), or printed again only when something but the clock changed when stderr is a
//! file or a pipe (a CI log gets each change once, not a line every five seconds).

use std::time::Duration;

use harbormaster_core::ports::ServiceSnapshot;
use harbormaster_core::state::ServiceState;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What one look at a rollout shows.
pub struct Seen<'a> {
    pub target: &'a str,
    /// The agent's phase (`registering`, `stabilizing at POST_TEST_TRAFFIC_SHIFT`…).
    pub phase: &'a str,
    /// ECS's view of the service, when it could be read.
    pub ecs: Option<&'a ServiceSnapshot>,
    pub elapsed: Duration,
}

/// The line for `seen`, without the clock: `dev/web: stabilizing · 1/2 running, 1 pending ·
/// (service web) has started 1 tasks`.
pub fn line(seen: &Seen<'_>) -> String {
    let mut parts = vec![format!("{}: {}", seen.target, seen.phase)];
    if let Some(s) = seen.ecs {
        let mut tasks = format!("{}/{} running", s.running_count, s.desired_count);
        if s.pending_count > 0 {
            tasks.push_str(&format!(", {} pending", s.pending_count));
        }
        parts.push(tasks);
        if let Some(event) = s.events.first() {
            // ECS's messages quote names from the account: shown escaped, kept short.
            let event = harbormaster_core::text::shown(event);
            let short: String = event.chars().take(100).collect();
            parts.push(short);
        }
    }
    parts.join(" · ")
}

/// The phase of the deployment in flight, with its lifecycle stage (empty when none is).
pub fn phase_of(state: Option<&ServiceState>) -> String {
    let Some(d) = state.and_then(|s| s.in_flight.as_ref()) else {
        return String::new();
    };
    let stage = d.stage.map(|s| format!(" at {s}")).unwrap_or_default();
    format!("{}{stage}", d.phase)
}

/// A spinner on stderr while something runs, when stderr is a terminal; nothing otherwise.
pub fn spinner(message: &str) -> Option<ProgressBar> {
    let bar = on_terminal("{spinner} {msg} {elapsed}")?;
    bar.set_message(message.to_owned());
    Some(bar)
}

/// A ticking bar drawn with `template` on stderr, when stderr is a terminal.
fn on_terminal(template: &str) -> Option<ProgressBar> {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(template)
                .expect("a valid template")
                .tick_chars("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏ "),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    })
}

/// The line for `seen` with the time so far: what `deploy --wait` draws and `tick` prints.
pub fn timed_line(seen: &Seen<'_>) -> String {
    format!("{} · {}", line(seen), clock(seen.elapsed))
}

fn clock(d: Duration) -> String {
    let s = d.as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

pub struct Progress {
    bar: Option<ProgressBar>,
    last: String,
}

impl Progress {
    /// An updating line when stderr is a terminal; plain lines otherwise.
    pub fn new() -> Self {
        Progress {
            bar: on_terminal("{spinner} {msg}"),
            last: String::new(),
        }
    }

    pub fn show(&mut self, seen: &Seen<'_>) {
        let line = line(seen);
        match &self.bar {
            Some(bar) => bar.set_message(timed_line(seen)),
            None if line != self.last => eprintln!("{}", timed_line(seen)),
            None => {}
        }
        self.last = line;
    }

    /// The last word under the last progress line (both stay on screen, as a log of the rollout).
    pub fn finish(&self, text: &str) {
        if let Some(bar) = &self.bar {
            bar.finish();
        }
        eprintln!("{text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_phase_tasks_and_the_last_ecs_event() {
        let ecs = ServiceSnapshot {
            desired_count: 2,
            running_count: 1,
            pending_count: 1,
            events: vec!["(service web) has started 1 tasks: (task 0a1b).".into()],
            ..Default::default()
        };
        let seen = Seen {
            target: "dev/web",
            phase: "stabilizing",
            ecs: Some(&ecs),
            elapsed: Duration::from_secs(65),
        };
        assert_eq!(
            line(&seen),
            "dev/web: stabilizing · 1/2 running, 1 pending · (service web) has started 1 tasks: (task 0a1b)."
        );
        assert_eq!(clock(seen.elapsed), "1m05s");
        let unread = Seen { ecs: None, ..seen };
        assert_eq!(line(&unread), "dev/web: stabilizing");
    }
}
