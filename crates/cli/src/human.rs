//! Reports for a person: one line per deployment target saying what happened, then the state
//! transitions it made and, for a dry run, what it would have done. `--json` prints the full
//! report instead (for scripts); both come from the same serialised report, so they never
//! disagree.

use serde_json::Value;

/// The lines a person reads for `report` (a target's report, a run's, or an invocation's).
pub fn lines(report: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(targets) = report["targets"].as_array() {
        if targets.is_empty() {
            out.push("nothing to do".to_owned());
        }
        for t in targets {
            target(t, &mut out);
        }
    } else if report.get("outcome").is_some() {
        target(report, &mut out);
    }
    if let Some(why) = report["ignored"].as_str() {
        out.push(format!("event ignored: {}", shown(why)));
    }
    if let Some(hook) = report.get("hook").filter(|h| !h.is_null()) {
        out.push(format!(
            "lifecycle hook answer: {}",
            text(&hook["hookStatus"])
        ));
    }
    if let Some(errors) = report["errors"].as_array() {
        for e in errors.iter().filter_map(Value::as_str) {
            out.push(format!("error: {}", shown(e)));
        }
    }
    out
}

fn target(t: &Value, out: &mut Vec<String>) {
    let name = format!("{}/{}", text(&t["environment"]), text(&t["service"]));
    out.push(format!("{name}: {}", outcome(t)));
    for j in t["journal"].as_array().into_iter().flatten() {
        let note = text(&j["note"]);
        let step = format!("{} → {}", text(&j["from"]), text(&j["to"]));
        match note.is_empty() {
            true => out.push(format!("  {step}")),
            false => out.push(format!("  {step}: {note}")),
        }
    }
    for p in t["planned"].as_array().into_iter().flatten() {
        out.push(format!("  would: {}", text(p)));
    }
    if let Some(s) = t.get("scaling").filter(|s| !s.is_null()) {
        out.push(format!(
            "  scaling: {} → {} tasks ({})",
            s["current"],
            s["desired"],
            text(&s["reason"])
        ));
    }
    if let Some(e) = t["error"].as_str() {
        out.push(format!("  error: {}", shown(e)));
    }
}

fn outcome(t: &Value) -> String {
    let word = text(&t["outcome"]);
    let reason = text(&t["reason"]);
    match word.as_str() {
        "started" => format!("deployment {} started", text(&t["deployment"])),
        "finished" => format!(
            "deployment {} {}",
            text(&t["deployment"]),
            text(&t["verdict"])
        ),
        "queued" => "queued (waits for the deployment in flight or the settle window)".into(),
        "duplicate" => "already handled (a repeat of an event)".into(),
        "ignored" => format!("nothing done: {reason}"),
        "refused" => format!("REFUSED: {reason}"),
        "progressed" => "moved on".into(),
        "busy" => "another invocation is working on it".into(),
        "stale" => "about a deployment no longer in flight".into(),
        "nothing" => "nothing to do".into(),
        "hook_answered" => format!("hook answered {}: {reason}", text(&t["status"])),
        other => other.to_owned(),
    }
}

/// A string field as a person reads it: control characters escaped (values quote events).
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => shown(s),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn shown(s: &str) -> String {
    harbormaster_core::text::shown(s).into_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn a_refused_deploy_and_a_started_one_read_as_such() {
        let refused = json!({"environment": "dev", "service": "web", "outcome": "refused",
            "reason": "booking/web:main-2 is marked bad (alarm); deploy it with --force to override",
            "journal": []});
        assert_eq!(
            super::lines(&refused),
            ["dev/web: REFUSED: booking/web:main-2 is marked bad (alarm); deploy it with --force to override"]
        );
        let run = json!({"targets": [{"environment": "dev", "service": "web", "outcome": "started",
            "deployment": "d-1", "journal": [{"from": "idle", "to": "registering", "note": "main-2"}],
            "planned": ["RegisterTaskDefinition booking-dev-web"]}]});
        assert_eq!(
            super::lines(&run),
            [
                "dev/web: deployment d-1 started",
                "  idle → registering: main-2",
                "  would: RegisterTaskDefinition booking-dev-web",
            ]
        );
        let escaped = json!({"environment": "dev", "service": "web", "outcome": "ignored",
            "reason": "tag main-\u{1b}[31m", "journal": []});
        assert!(!super::lines(&escaped)[0].contains('\u{1b}'));
    }
}
