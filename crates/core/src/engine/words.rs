//! The reports in words, for a person (`Display`); `--json` serialises the same values, so the
//! two never disagree. Every string that may quote an event or an AWS answer is shown with its
//! control characters escaped ([`crate::text::shown`]).

use std::fmt;

use super::TargetReport;
use crate::dispatch::DispatchReport;
use crate::machine::Outcome;
use crate::pipeline::job::{JobReport, JobResult};
use crate::text::shown;

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Started { deployment } => write!(f, "deployment {deployment} started"),
            Outcome::Finished {
                deployment,
                verdict,
            } => write!(f, "deployment {deployment} {verdict}"),
            Outcome::Queued => {
                f.write_str("queued (waits for the deployment in flight or the settle window)")
            }
            Outcome::Duplicate => f.write_str("already handled (a repeat of an event)"),
            Outcome::Ignored { reason } => write!(f, "nothing done: {}", shown(reason.words())),
            Outcome::Refused { reason } => write!(f, "REFUSED: {}", shown(&reason.to_string())),
            Outcome::Progressed => f.write_str("moved on"),
            Outcome::Busy => f.write_str("another invocation is working on it"),
            Outcome::Stale => f.write_str("about a deployment no longer in flight"),
            Outcome::Nothing => f.write_str("nothing to do"),
            Outcome::HookAnswered { status, reason } => {
                write!(f, "hook answered {}: {}", status.word(), shown(reason))
            }
        }
    }
}

/// `env/service: what happened`, then each transition, what a dry run would have done, the
/// scaling decision and the error, a line each.
impl fmt::Display for TargetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: {}", self.environment, self.service, self.outcome)?;
        for t in &self.journal {
            write!(f, "\n  {} → {}", t.from, t.to)?;
            if !t.note.is_empty() {
                write!(f, ": {}", shown(&t.note))?;
            }
        }
        for p in &self.planned {
            write!(f, "\n  would: {}", shown(p))?;
        }
        if let Some(s) = &self.scaling {
            let reason = shown(&s.reason);
            write!(
                f,
                "\n  scaling: {} → {} tasks ({reason})",
                s.current, s.desired
            )?;
        }
        if let Some(e) = &self.error {
            write!(f, "\n  error: {}", shown(e))?;
        }
        Ok(())
    }
}

/// Each target's report ("nothing to do" when the event concerned none), why the event was
/// ignored, and the answer a lifecycle hook got.
impl fmt::Display for DispatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut lines: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        if self.targets.is_empty() && self.ignored.is_none() {
            lines.push("nothing to do".to_owned());
        }
        if let Some(why) = &self.ignored {
            lines.push(format!("event ignored: {}", shown(why)));
        }
        if let Some(hook) = &self.hook {
            lines.push(format!(
                "lifecycle hook answer: {}",
                hook.hook_status.word()
            ));
        }
        f.write_str(&lines.join("\n"))
    }
}

impl fmt::Display for JobReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = self.result.word();
        let said = match &self.result {
            JobResult::Continue { summary, .. } | JobResult::Succeeded { summary, .. } => summary,
            JobResult::Failed { reason } => reason,
        };
        write!(f, "job {}: {word}: {}", self.job_id, shown(said))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{Point, Transition};
    use crate::state::{DeploymentId, PhaseKind};

    fn report(outcome: Outcome) -> TargetReport {
        TargetReport {
            outcome,
            ..TargetReport::new(&crate::Target::new("dev", "web"))
        }
    }

    #[test]
    fn a_refused_deploy_and_a_started_one_read_as_such() {
        let refused = report(Outcome::Refused {
            reason: crate::machine::Refusal::MarkedBad {
                label: "booking/web:main-2".into(),
                why: "alarm".into(),
            },
        });
        assert_eq!(
            refused.to_string(),
            "dev/web: REFUSED: booking/web:main-2 is marked bad (alarm); deploy it with --force to override"
        );
        let mut started = report(Outcome::Started {
            deployment: DeploymentId("d-1".into()),
        });
        started.journal.push(Transition {
            deployment: None,
            digest: None,
            from: Point::Received,
            to: Point::Phase(PhaseKind::Registering),
            note: "main-2".into(),
        });
        started
            .planned
            .push("RegisterTaskDefinition booking-dev-web".into());
        let run = DispatchReport {
            event: "e".into(),
            ignored: None,
            targets: vec![started],
            hook: None,
        };
        assert_eq!(
            run.to_string(),
            "dev/web: deployment d-1 started\n  received → registering: main-2\n  would: RegisterTaskDefinition booking-dev-web"
        );
        let escaped = report(Outcome::Ignored {
            reason: crate::machine::Skip::new(
                crate::machine::SkipKind::Older,
                "tag main-\u{1b}[31m",
            ),
        });
        assert!(!escaped.to_string().contains('\u{1b}'));
    }

    #[test]
    fn a_job_says_what_codepipeline_was_told() {
        let job = JobReport {
            job_id: "j-1".into(),
            result: JobResult::Failed {
                reason: "no image for web".into(),
            },
        };
        assert_eq!(job.to_string(), "job j-1: failed: no image for web");
    }
}
