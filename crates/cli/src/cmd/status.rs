//! `harbormaster status`: deployments in flight, pending releases, last known good, history.

use anyhow::{bail, Result};
use harbormaster_core::ports::StateStore;
use harbormaster_core::state::{GateRecord, ServiceState, Wait};
use serde_json::{json, Value};

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// Only this environment.
    #[arg(long)]
    env: Option<String>,
    /// Only this service.
    #[arg(long)]
    service: Option<String>,
    /// History entries to show per service.
    #[arg(long, default_value_t = 5)]
    history: usize,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let mut docs = Vec::new();
        for (e, s, _) in bundle.config.targets() {
            if self.env.as_ref().is_some_and(|x| x != &e.name)
                || self.service.as_ref().is_some_and(|x| x != &s.name)
            {
                continue;
            }
            let key = ServiceState::key(&e.name, &s.name);
            // One unreadable document (corrupt, a newer schema) hides no other service.
            let state = ports.load(&key).await.map(|d| d.map(|(s, _)| s));
            docs.push((e.name.clone(), s.name.clone(), state));
        }
        if docs.is_empty() {
            bail!("no service matches --env/--service in the config");
        }
        let orphaned = crate::orphans::orphaned(
            &ports,
            &bundle,
            self.env.as_deref(),
            self.service.as_deref(),
        )
        .await;
        if cx.json {
            let mut v: Vec<Value> = docs
                .iter()
                .map(|(e, s, st)| match st {
                    Ok(st) => json!({"environment": e, "service": s, "state": st}),
                    Err(err) => json!({"environment": e, "service": s, "error": err.to_string()}),
                })
                .collect();
            v.extend(orphaned.iter().map(|(e, o)| {
                json!({"environment": e, "service": o.service, "ecs_service": o.name, "orphaned": true})
            }));
            out!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for (e, s, st) in &docs {
                match st {
                    Ok(st) => print_status(e, s, st.as_ref(), self.history),
                    Err(err) => out!("{e}/{s}\n  STATE UNREADABLE: {err}\n"),
                }
            }
            for (e, o) in &orphaned {
                out!(
                    "{}
",
                    crate::orphans::line(e, o)
                );
            }
        }
        if docs.iter().any(|(_, _, st)| st.is_err()) {
            return Ok(Exit::Error);
        }
        // A service whose latest release failed or was rolled back is a failure here too.
        let failing = docs.iter().any(|(_, _, st)| {
            (st.as_ref().ok().and_then(Option::as_ref))
                .and_then(|s| s.history.iter().find(|h| h.deployment_id.is_some()))
                .is_some_and(|h| h.verdict.is_failure())
        });
        Ok(if failing { Exit::Failed } else { Exit::Done })
    }
}

fn print_status(env: &str, service: &str, st: Option<&ServiceState>, history: usize) {
    out!("{env}/{service}");
    let Some(st) = st else {
        out!("  no deployments recorded yet\n");
        return;
    };
    print_in_flight(st);
    match &st.pending {
        Some(p) => out!(
            "  pending:         {}{}",
            p.release.image.label(),
            waiting(&p.wait)
        ),
        None => out!("  pending:         -"),
    }
    match &st.last_known_good {
        Some(g) => out!(
            "  last known good: {} {}",
            g.image.label(),
            g.task_definition_arn
        ),
        None => out!("  last known good: -"),
    }
    print_backlog(st);
    if let Some(d) = &st.drift {
        let since = d.since.format("%Y-%m-%d %H:%M");
        out!(
            "  DRIFT:           runs {} since {since}: changed outside git",
            d.task_definition_arn
        );
    }
    for b in &st.bad_configs {
        let at = b.at.format("%Y-%m-%d %H:%M");
        let version = &b.version[..b.version.len().min(12)];
        out!("  config marked bad: {version} ({}, {at})", b.why);
    }
    for u in &st.undelivered {
        let at = u.at.format("%Y-%m-%d %H:%M");
        out!("  UNDELIVERED:     {} ({at}): {}", u.subject, u.error);
    }
    for b in &st.bad_releases {
        let at = b.at.format("%Y-%m-%d %H:%M");
        out!("  marked bad:      {} ({}, {at})", b.image.label(), b.why);
    }
    if let Some(last) = st.history.iter().find(|h| h.deployment_id.is_some()) {
        if st.in_flight.is_none() && !last.gates.is_empty() {
            out!("  gates of the last deployment:");
            print_gates(&last.gates);
        }
    }
    if !st.history.is_empty() {
        out!("  history:");
        for h in st.history.iter().take(history) {
            let reason = h.reason.as_ref().map(|r| format!(": {r}"));
            out!(
                "    {}  {:<11} {}{}",
                h.at.format("%Y-%m-%d %H:%M:%S"),
                h.verdict.to_string(),
                h.image.label(),
                reason.unwrap_or_default()
            );
        }
    }
    out!();
}

/// What a pending release waits for, in words.
fn waiting(wait: &Wait) -> String {
    match wait {
        Wait::Turn => String::new(),
        Wait::Settling { until } => {
            format!(
                " (settling: deploys at {} unless a newer push arrives)",
                until.format("%H:%M:%S")
            )
        }
        Wait::Held(g) => format!(
            " (held since {}: guard alarms in ALARM: {})",
            g.since.format("%H:%M:%S"),
            g.alarms.join(", ")
        ),
    }
}

/// A worker's backlog as the last tick read it, or why it could not.
fn print_backlog(st: &ServiceState) {
    match (&st.scaling.unreadable, st.scaling.last_backlog) {
        (Some(u), _) => out!(
            "  backlog:         UNREADABLE since {}: {}",
            u.since.format("%Y-%m-%d %H:%M"),
            u.reason
        ),
        (None, Some(n)) => out!("  backlog:         {n}"),
        (None, None) => {}
    }
}

fn print_in_flight(st: &ServiceState) {
    let Some(d) = &st.in_flight else {
        out!("  in flight:       -");
        return;
    };
    let stage = d.stage.map(|s| format!(", at {s}")).unwrap_or_default();
    out!(
        "  in flight:       {} {} ({}{stage}, since {})",
        d.id,
        d.release.image.label(),
        d.phase,
        d.started_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    if let Some(a) = &d.approval {
        let word = if a.approved { "approved" } else { "rejected" };
        let summary = a.summary.as_ref().map(|s| format!(": {s}"));
        out!(
            "  approval:        {word} by {}{}",
            a.by,
            summary.unwrap_or_default()
        );
    }
    if let harbormaster_core::state::Phase::Migrating { task: Some(t), .. } = &d.phase {
        let logs = t.log_stream.as_deref().map(|l| format!("; logs: {l}"));
        out!(
            "  before rollout:  task {} ({}, since {}){}",
            t.task_arn,
            t.container,
            t.started_at.format("%Y-%m-%d %H:%M:%S UTC"),
            logs.unwrap_or_default()
        );
    }
    print_gates(&d.gates);
}

fn print_gates(gates: &[GateRecord]) {
    for g in gates {
        out!(
            "    {:<30} {:<18} {:<12} {} (at {})",
            g.stage.to_string(),
            g.gate,
            g.status.to_string(),
            g.detail,
            g.at.format("%H:%M:%S")
        );
    }
}
