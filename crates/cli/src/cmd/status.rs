//! `harbormaster status`: deployments in flight, pending releases, last known good, history.

use anyhow::{bail, Result};
use harbormaster_aws::AwsPorts;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::config_standing;
use harbormaster_core::machine::{short_version, ConfigStanding};
use harbormaster_core::ports::{PortError, ServiceSnapshot, Services, StateStore};
use harbormaster_core::state::{GateRecord, ServiceState, Verdict, Wait};
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

/// One service as status shows it: the agent's document, git's config against it, ECS's view.
struct Row {
    env: String,
    service: String,
    /// One unreadable document (corrupt, a newer schema) hides no other service.
    state: Result<Option<ServiceState>, PortError>,
    config: ConfigStanding,
    /// `None`: ECS does not know the service.
    ecs: Option<ServiceSnapshot>,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let rows = self.rows(&ports, &bundle).await;
        if rows.is_empty() {
            bail!("no service matches --env/--service in the config");
        }
        let (env, service) = (self.env.as_deref(), self.service.as_deref());
        let orphaned = crate::orphans::orphaned(&ports, &bundle, env, service).await;
        if cx.json {
            let mut v: Vec<Value> = rows.iter().map(row_json).collect();
            v.extend(orphaned.iter().map(|(e, o)| {
                json!({"environment": e, "service": o.service, "ecs_service": o.name, "orphaned": true})
            }));
            out!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            for row in &rows {
                match &row.state {
                    Ok(st) => {
                        print_status(row, st.as_ref(), self.history);
                        print_config(&row.config);
                        out!();
                    }
                    Err(err) => out!("{}/{}\n  STATE UNREADABLE: {err}\n", row.env, row.service),
                }
            }
            for (e, o) in &orphaned {
                out!("{}\n", crate::orphans::line(e, o));
            }
        }
        Ok(exit_of(&rows))
    }

    async fn rows(&self, ports: &AwsPorts, bundle: &Bundle) -> Vec<Row> {
        let mut rows = Vec::new();
        for (e, s, _) in bundle.config.targets() {
            if self.env.as_ref().is_some_and(|x| x != &e.name)
                || self.service.as_ref().is_some_and(|x| x != &s.name)
            {
                continue;
            }
            let key = ServiceState::key(&e.name, &s.name);
            let state = ports.load(&key).await.map(|d| d.map(|(s, _)| s));
            let config = match &state {
                Ok(Some(st)) => config_standing(ports, bundle, &e.name, &s.name, st).await,
                _ => ConfigStanding::Unknown,
            };
            // ECS's own view beside the agent's; a service ECS does not know shows none.
            let ecs = match bundle.service_target(&e.name, &s.name) {
                Some(t) => ports.describe(&t.cluster, &t.service).await.ok(),
                None => None,
            };
            let (env, service) = (e.name.clone(), s.name.clone());
            rows.push(Row {
                env,
                service,
                state,
                config,
                ecs,
            });
        }
        rows
    }
}

fn row_json(row: &Row) -> Value {
    let (e, s) = (&row.env, &row.service);
    match &row.state {
        Ok(st) => json!({"environment": e, "service": s, "state": st, "config": row.config,
            "ecs": row.ecs.as_ref().map(ecs_json)}),
        Err(err) => json!({"environment": e, "service": s, "error": err.to_string()}),
    }
}

/// An unreadable document is an error; a service whose latest release failed or was rolled
/// back is a failure.
fn exit_of(rows: &[Row]) -> Exit {
    if rows.iter().any(|r| r.state.is_err()) {
        return Exit::Error;
    }
    let failing = rows.iter().any(|r| {
        (r.state.as_ref().ok().and_then(Option::as_ref))
            .and_then(|s| s.history.iter().find(|h| h.deployment_id.is_some()))
            .is_some_and(|h| h.verdict.is_failure())
    });
    if failing {
        Exit::Failed
    } else {
        Exit::Done
    }
}

fn print_status(row: &Row, st: Option<&ServiceState>, history: usize) {
    out!("{}/{}", row.env, row.service);
    print_ecs(row.ecs.as_ref());
    let Some(st) = st else {
        out!("  no deployments recorded yet");
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
    print_last_known_good(st);
    print_backlog(st);
    print_marks(st);
    if let Some(last) = st.history.iter().find(|h| h.deployment_id.is_some()) {
        if st.in_flight.is_none() && !last.gates.is_empty() {
            out!("  gates of the last deployment:");
            print_gates(&last.gates);
        }
    }
    print_history(st, history);
}

/// What the agent remembers against the service: drift, bad configs and releases, the last
/// failed release, a stopped self-heal, notifications not delivered.
fn print_marks(st: &ServiceState) {
    if let Some(d) = &st.drift {
        let since = d.since.format("%Y-%m-%d %H:%M");
        out!(
            "  DRIFT:           runs {} since {since}: changed outside git",
            d.task_definition_arn
        );
    }
    for b in &st.bad_configs {
        let at = b.at.format("%Y-%m-%d %H:%M");
        let version = short_version(&b.version);
        out!("  config marked bad: {version} ({}, {at})", b.why);
    }
    if let Some(f) = st.failed_releases.first() {
        let at = f.at.format("%Y-%m-%d %H:%M");
        let version = short_version(&f.config);
        let image = f.digest.short();
        out!(
            "  last failed:     config {version} with {image} ({at}); not released again by itself"
        );
    }
    if let Some(stop) = st.healing.as_ref().and_then(|h| h.stopped.as_ref()) {
        out!("  SELF-HEAL STOPPED: {}", stop.why);
    }
    for u in &st.undelivered {
        let at = u.at.format("%Y-%m-%d %H:%M");
        out!("  UNDELIVERED:     {} ({at}): {}", u.subject, u.error);
    }
    for b in &st.bad_releases {
        let at = b.at.format("%Y-%m-%d %H:%M");
        out!("  marked bad:      {} ({}, {at})", b.image.label(), b.why);
    }
}

fn print_history(st: &ServiceState, n: usize) {
    if st.history.is_empty() {
        return;
    }
    out!("  history:");
    for h in st.history.iter().take(n) {
        let reason = h.reason.as_ref().map(|r| format!(": {r}"));
        // A rollback's own deployment put an earlier release back: said so.
        let verdict = match (h.rollback, h.verdict) {
            (true, Verdict::Succeeded) => "rollback".to_owned(),
            (_, v) => v.to_string(),
        };
        let bad = if st.bad(&h.image.digest).is_some() {
            " [marked bad]"
        } else {
            ""
        };
        out!(
            "    {}  {:<15} {}{}{bad}{}",
            h.at.format("%Y-%m-%d %H:%M:%S"),
            verdict,
            h.image.label(),
            revision_of(h.task_definition_arn.as_deref()),
            reason.unwrap_or_default()
        );
    }
}

/// Git's config against what runs: in sync, or pending and why it waits.
fn print_config(c: &ConfigStanding) {
    match c {
        ConfigStanding::Unknown => {}
        ConfigStanding::InSync { version } => {
            out!(
                "  config:          as git says ({})",
                short_version(version)
            );
        }
        ConfigStanding::Pending {
            version,
            running,
            held,
        } => {
            let from = running.as_deref().map(short_version).unwrap_or("-");
            let what = match held {
                None => "the next tick releases it".to_owned(),
                Some(why) => why.clone(),
            };
            out!(
                "  config:          PENDING {} (runs {from}): {what}",
                short_version(version)
            );
        }
    }
}

/// ` rev family:N`: what `rollback --to` takes.
fn revision_of(arn: Option<&str>) -> String {
    arn.and_then(|a| a.rsplit('/').next())
        .map(|r| format!(" rev {r}"))
        .unwrap_or_default()
}

/// The release to go back to, unless it has since been marked bad (an alarm just blamed it):
/// then there is none until the rollback in flight ends, and the line says so.
fn print_last_known_good(st: &ServiceState) {
    let Some(g) = &st.last_known_good else {
        out!("  last known good: -");
        return;
    };
    let arn = Some(g.task_definition_arn.as_str());
    if st.bad(&g.image.digest).is_none() {
        let restored = if g.restored {
            " (put back by a rollback)"
        } else {
            ""
        };
        out!(
            "  last known good: {}{}{restored}",
            g.image.label(),
            revision_of(arn)
        );
        return;
    }
    let back_to = (st.in_flight.as_ref())
        .filter(|d| d.rollback.is_some())
        .map(|d| {
            format!(
                "; the rollback in flight puts back {}",
                d.release.image.label()
            )
        });
    out!(
        "  last known good: none now: {}{} is marked bad{}",
        g.image.label(),
        revision_of(arn),
        back_to.unwrap_or_default()
    );
}

/// ECS's view: tasks, the revision of its primary deployment and how it goes, its last event.
fn print_ecs(ecs: Option<&ServiceSnapshot>) {
    let Some(s) = ecs else {
        out!("  ECS:             not found");
        return;
    };
    let primary = s.primary().map(|d| {
        let state = d
            .rollout_state
            .map(|r| format!(", {r:?}"))
            .unwrap_or_default();
        format!("; primary{}{state}", revision_of(Some(&d.task_definition)))
    });
    out!(
        "  ECS:             {}/{} running, {} pending{}",
        s.running_count,
        s.desired_count,
        s.pending_count,
        primary.unwrap_or_default()
    );
    if let Some(e) = s.events.first() {
        out!("  last ECS event:  {}", harbormaster_core::text::shown(e));
    }
}

fn ecs_json(s: &ServiceSnapshot) -> Value {
    json!({
        "running": s.running_count,
        "desired": s.desired_count,
        "pending": s.pending_count,
        "task_definition": s.task_definition,
        "primary_rollout": s.primary().and_then(|d| d.rollout_state).map(|r| format!("{r:?}")),
        "last_event": s.events.first(),
    })
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
