//! Worker scaling: the desired count from the backlog (the math is in `crate::scaling`; this
//! file turns its decision into a command, a journal line and, at the ceiling, a notice).

use super::context::Ctx;
use super::{Command, Outcome, Point, SkipKind};
use crate::notify::NoticeKind;
use crate::scaling::Measured;

impl Ctx<'_> {
    pub(super) fn scale_tick(&mut self) -> Outcome {
        if self.policy.scaling.is_none() {
            return Outcome::Nothing;
        }
        self.run(Command::MeasureBacklog);
        Outcome::Progressed
    }

    pub(super) fn scale(&mut self, measured: &Result<Measured, String>) -> Outcome {
        let Some(policy) = self.policy.scaling.clone() else {
            return Outcome::Nothing;
        };
        let m = match measured {
            Ok(m) => *m,
            Err(e) => return self.unreadable(e),
        };
        if let Some(u) = self.s.scaling.unreadable.take() {
            let note = format!("the backlog is read again (unreadable since {})", u.since);
            self.journal_line(None, None, (Point::Scaling, Point::Scaling), note);
        }
        let deploying = self.s.in_flight.is_some();
        let (d, state) = crate::scaling::decide(&policy, &self.s.scaling, m, deploying, self.now);
        self.s.scaling = state;
        if let (Some(alert), Some(good)) = (&d.alert, self.s.last_known_good.clone()) {
            let about = crate::notify::Subject::Scaling(self.s.service.clone());
            self.notice_now(NoticeKind::AtMax, about, good.image, alert);
        }
        let outcome = if d.changes() {
            let points = (Point::Tasks(d.current), Point::Tasks(d.desired));
            self.journal_line(None, None, points, d.reason.clone());
            self.run(Command::SetDesired { desired: d.desired });
            Outcome::Progressed
        } else {
            Outcome::Nothing
        };
        self.scaled = Some(d);
        outcome
    }

    /// The count stays; the problem is reported every time, kept in the state with its
    /// start, and journaled once when it starts.
    fn unreadable(&mut self, reason: &str) -> Outcome {
        let since = match &self.s.scaling.unreadable {
            Some(u) => u.since,
            None => {
                let note = format!("the backlog cannot be read: {reason}");
                self.journal_line(None, None, (Point::Scaling, Point::Scaling), note);
                self.now
            }
        };
        self.s.scaling.unreadable = Some(crate::scaling::Unreadable {
            since,
            reason: reason.to_owned(),
        });
        let problem = format!("backlog not measured ({reason}); the desired count stays");
        self.problem = Some(problem.clone());
        Outcome::ignored(SkipKind::ScalingFailed, problem)
    }

    pub(super) fn desired_set(&mut self, desired: u32, error: Option<&str>) -> Outcome {
        let Some(e) = error else {
            return Outcome::Nothing;
        };
        let note = format!(
            "setting the desired count to {desired} failed: {e}; the next tick tries again"
        );
        self.journal_line(None, None, (Point::Scaling, Point::Scaling), note);
        let words = format!("UpdateService (desired count {desired}) failed: {e}");
        Outcome::ignored(SkipKind::ScalingFailed, words)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{decide, Observation, Policy};
    use crate::scaling::Measured;

    fn worker() -> Policy {
        let mut p = policy();
        p.scaling = Some(crate::scaling::tests::policy());
        p
    }

    fn backlog(backlog: u64, desired: u32) -> Observation {
        Observation::BacklogMeasured {
            measured: Ok(Measured {
                backlog,
                desired,
                running: desired,
            }),
        }
    }

    /// A backlog the agent cannot read (Redis over TLS refused, a queue gone) is visible: the
    /// step names the problem (the report's error and a warning in the log), the state keeps
    /// it with its start (`status`), one journal line marks its start and one its end.
    #[test]
    fn an_unreadable_backlog_is_a_problem_kept_until_it_is_read_again() {
        use chrono::Duration;
        let unreadable = Observation::BacklogMeasured {
            measured: Err("InvalidClientConfig: TLS refused".into()),
        };
        let step = decide(&deployed(), &unreadable, t0(), &worker());
        let problem = step.problem.clone().expect("a problem");
        assert!(problem.contains("TLS refused"), "{problem}");
        let kept = step
            .state
            .scaling
            .unreadable
            .clone()
            .expect("kept in the state");
        assert_eq!(
            (kept.since, kept.reason.as_str()),
            (t0(), "InvalidClientConfig: TLS refused")
        );
        assert_eq!(step.journal.len(), 1);

        let again = decide(
            &step.state,
            &unreadable,
            t0() + Duration::minutes(1),
            &worker(),
        );
        assert!(again.problem.is_some());
        assert_eq!(again.state.scaling.unreadable.map(|u| u.since), Some(t0()));
        assert!(again.journal.is_empty(), "no line a minute while it lasts");

        let read = decide(
            &step.state,
            &backlog(100, 1),
            t0() + Duration::minutes(2),
            &worker(),
        );
        assert_eq!((read.problem, read.state.scaling.unreadable), (None, None));
        assert_eq!(read.journal.len(), 1, "its end is journaled");
    }

    #[test]
    fn a_worker_is_sized_from_its_backlog() {
        let rows = vec![
            Row {
                case: "the tick measures the backlog",
                state: deployed(),
                obs: Observation::ScaleTick,
                outcome: "progressed",
                journal: &[],
                command: "MeasureBacklog",
            },
            Row {
                case: "300 waiting at 100 per task: 3 tasks",
                state: deployed(),
                obs: backlog(300, 1),
                outcome: "progressed",
                journal: &["1 tasks->3 tasks"],
                command: "SetDesired",
            },
            Row {
                case: "enough tasks already",
                state: deployed(),
                obs: backlog(200, 2),
                outcome: "nothing",
                journal: &[],
                command: "-",
            },
            Row {
                case: "an unreadable backlog leaves the count alone",
                state: deployed(),
                obs: Observation::BacklogMeasured {
                    measured: Err("queue gone".into()),
                },
                outcome: "ignored",
                journal: &["scaling->scaling"],
                command: "-",
            },
            Row {
                case: "a failed UpdateService is journaled; the next tick tries again",
                state: deployed(),
                obs: Observation::DesiredSet {
                    desired: 3,
                    error: Some("throttled".into()),
                },
                outcome: "ignored",
                journal: &["scaling->scaling"],
                command: "-",
            },
        ];
        check(&worker(), rows);
        check(
            &policy(),
            vec![Row {
                case: "a service without scaling is never sized",
                state: deployed(),
                obs: Observation::ScaleTick,
                outcome: "nothing",
                journal: &[],
                command: "-",
            }],
        );
    }
}
