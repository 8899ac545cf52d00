//! The gates a lifecycle hook runs: CloudWatch metric checks (a value over its limit fails;
//! a value that cannot be measured is inconclusive, never a pass) and a person's approval.

use chrono::Duration;

use super::context::Ctx;
use super::{HookStatus, Measurement, Outcome, Point};
use crate::state::{DeploymentId, GateRecord, GateStatus};
use crate::strategy::{MetricCheck, OnTimeout, Stage};

/// One check's verdict this round.
enum Judged {
    Passed,
    Failed(String),
    Waiting(String),
}

impl Ctx<'_> {
    pub(super) fn checks_measured(
        &mut self,
        deployment: &DeploymentId,
        stage: Stage,
        measurements: &[Measurement],
    ) -> Outcome {
        let Some(d) = self.ours(deployment) else {
            let why = format!("{deployment} is no longer in flight; not gating it");
            return Outcome::hook(HookStatus::Succeeded, why);
        };
        if let Some(failure) = &d.gate_failure {
            return Outcome::hook(HookStatus::Failed, failure.clone());
        }
        let checks: Vec<MetricCheck> = self.policy.gates.checks_at(stage).cloned().collect();
        let (mut failed, mut waiting) = (Vec::new(), Vec::new());
        for check in &checks {
            let measured = measurements
                .iter()
                .find(|m| m.check == check.name)
                .map(|m| m.value.clone())
                .unwrap_or_else(|| Err("not measured".into()));
            match self.judge(stage, check, measured) {
                Judged::Passed => {}
                Judged::Failed(why) => failed.push(why),
                Judged::Waiting(why) => waiting.push(why),
            }
        }
        if !failed.is_empty() {
            return self.fail_gate(stage, "metric", failed.join("; "));
        }
        if !waiting.is_empty() {
            return Outcome::hook(HookStatus::InProgress, waiting.join("; "));
        }
        self.approval_gate(stage)
    }

    /// Records one check's measurement at `stage` and says what it means.
    fn judge(
        &mut self,
        stage: Stage,
        check: &MetricCheck,
        measured: Result<f64, String>,
    ) -> Judged {
        let gate = format!("metric:{}", check.name);
        let window = check.window_minutes;
        match measured {
            Ok(v) => {
                let detail = format!(
                    "`{}` measured {v} over the last {window} min; allowed {}",
                    check.name,
                    check.describe_limit()
                );
                let breached = check.breached(v);
                let status = if breached {
                    GateStatus::Failed
                } else {
                    GateStatus::Passed
                };
                self.put_gate(stage, &gate, status, detail.clone(), Some(v), 0);
                if breached {
                    Judged::Failed(detail)
                } else {
                    Judged::Passed
                }
            }
            Err(problem) => {
                let previous = self.gate_record(stage, &gate).map(|g| g.inconclusive);
                let rounds = previous.unwrap_or(0) + 1;
                let detail = format!(
                    "`{}` could not be measured ({problem}); round {rounds} of {}",
                    check.name,
                    check.max_inconclusive + 1
                );
                if rounds > check.max_inconclusive {
                    self.put_gate(stage, &gate, GateStatus::Failed, detail, None, rounds);
                    Judged::Failed(format!(
                        "`{}` could not be measured in {rounds} rounds in a row ({problem}); an unmeasured check never passes",
                        check.name
                    ))
                } else {
                    let status = GateStatus::Inconclusive;
                    self.put_gate(stage, &gate, status, detail.clone(), None, rounds);
                    Judged::Waiting(detail)
                }
            }
        }
    }

    pub(super) fn approval_gate(&mut self, stage: Stage) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            return Outcome::Stale;
        };
        let Some(gate) = self
            .policy
            .gates
            .approval
            .clone()
            .filter(|a| a.stage == stage)
        else {
            return self.pass(stage);
        };
        let since = self.gate_record(stage, "approval").map(|g| g.since);
        let waited = self.now - since.unwrap_or(self.now);
        let minutes = gate.timeout_minutes;
        let timeout = Duration::minutes(minutes.into());
        match &d.approval {
            Some(a) if a.approved => {
                let detail = format!("approved by {}", a.by);
                self.put_gate(stage, "approval", GateStatus::Passed, detail, None, 0);
                self.pass(stage)
            }
            Some(a) => {
                let summary = a.summary.as_deref().map(|s| format!(": {s}"));
                let reason = format!("rejected by {}{}", a.by, summary.unwrap_or_default());
                self.fail_gate(stage, "approval", reason)
            }
            None if waited >= timeout => match gate.on_timeout {
                OnTimeout::Reject => {
                    let why = format!("no decision within {minutes} min; rejected, as configured");
                    self.fail_gate(stage, "approval", why)
                }
                OnTimeout::Approve => {
                    let detail =
                        format!("no decision within {minutes} min; approved, as configured");
                    self.put_gate(stage, "approval", GateStatus::Passed, detail, None, 0);
                    self.pass(stage)
                }
            },
            None => {
                let ask = format!(
                    "waiting for approval: harbormaster approve --env {} --service {} (or reject); {} min left",
                    self.s.environment,
                    self.s.service,
                    (timeout - waited).num_minutes()
                );
                self.put_gate(stage, "approval", GateStatus::Waiting, ask.clone(), None, 0);
                if since.is_none() {
                    self.transition(Point::Stage(stage), Point::AwaitingApproval, ask.clone());
                    self.notify(crate::notify::NoticeKind::ApprovalNeeded, Some(ask.clone()));
                }
                Outcome::hook(HookStatus::InProgress, ask)
            }
        }
    }

    fn pass(&mut self, stage: Stage) -> Outcome {
        self.transition(Point::Stage(stage), Point::Passed(stage), "");
        Outcome::hook(
            HookStatus::Succeeded,
            format!("every gate at {stage} passed"),
        )
    }

    /// Fails the hook: ECS rolls the deployment back and reports it, and the agent's failure
    /// notification then names this gate.
    pub(super) fn fail_gate(&mut self, stage: Stage, gate: &str, reason: String) -> Outcome {
        let failure = format!("{gate} gate failed at {stage}: {reason}");
        if gate != "metric" {
            // Metric gates are recorded one check at a time by the caller.
            self.put_gate(stage, gate, GateStatus::Failed, reason, None, 0);
        }
        let recorded = failure.clone();
        self.edit(|d| d.gate_failure = Some(recorded));
        self.transition(Point::Stage(stage), Point::GateFailed, failure.clone());
        Outcome::hook(HookStatus::Failed, failure)
    }

    fn gate_record(&self, stage: Stage, gate: &str) -> Option<&GateRecord> {
        let d = self.s.in_flight.as_ref()?;
        d.gates.iter().find(|g| g.stage == stage && g.gate == gate)
    }

    fn put_gate(
        &mut self,
        stage: Stage,
        gate: &str,
        status: GateStatus,
        detail: String,
        value: Option<f64>,
        inconclusive: u32,
    ) {
        // Timeouts count from the first evaluation at this stage.
        let since = self.gate_record(stage, gate).map(|g| g.since);
        let record = GateRecord {
            stage,
            gate: gate.to_owned(),
            status,
            detail,
            value,
            inconclusive,
            since: since.unwrap_or(self.now),
            at: self.now,
        };
        // A gate record is part of the deployment, not a change of it: `updated_at` stays.
        if let Some(d) = self.s.in_flight.as_mut() {
            match d
                .gates
                .iter_mut()
                .find(|g| g.stage == stage && g.gate == gate)
            {
                Some(g) => *g = record,
                None => d.gates.push(record),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::super::{Measurement, Observation, Policy};
    use crate::state::DeploymentId;
    use crate::strategy::{ApprovalGate, Direction, MetricCheck, OnTimeout, Stage};

    const STAGE: Stage = Stage::PostTestTrafficShift;

    fn gated() -> Policy {
        let mut p = policy();
        p.native = true;
        p.gates.checks = vec![MetricCheck {
            name: "errors".into(),
            stages: vec![STAGE],
            fail_when: Direction::Above,
            threshold: 5.0,
            window_minutes: 5,
            max_inconclusive: 1,
            value: "m".into(),
            queries: Vec::new(),
        }];
        p
    }

    fn measured(value: Result<f64, String>) -> Observation {
        Observation::ChecksMeasured {
            deployment: d_b(),
            stage: STAGE,
            measurements: vec![Measurement {
                check: "errors".into(),
                value,
            }],
        }
    }

    fn at_stage() -> crate::state::ServiceState {
        let mut s = stabilizing();
        if let Some(d) = s.in_flight.as_mut() {
            d.stage = Some(STAGE);
        }
        s
    }

    #[test]
    fn metric_checks_pass_fail_or_wait_and_never_pass_unmeasured() {
        let rows = vec![
            Row {
                case: "a hook at a checked stage measures first",
                state: stabilizing(),
                obs: Observation::HookInvoked {
                    stage: STAGE,
                    deployment: Some(DeploymentId("d-b".into())),
                    revision_task_definition: None,
                    shifted_back: false,
                },
                outcome: "progressed",
                journal: &["stabilizing->POST_TEST_TRAFFIC_SHIFT"],
                command: "MeasureChecks",
            },
            Row {
                case: "within the threshold: the stage passes",
                state: at_stage(),
                obs: measured(Ok(1.0)),
                outcome: "hook_answered",
                journal: &["POST_TEST_TRAFFIC_SHIFT->POST_TEST_TRAFFIC_SHIFT passed"],
                command: "-",
            },
            Row {
                case: "over the threshold: the gate fails",
                state: at_stage(),
                obs: measured(Ok(9.0)),
                outcome: "hook_answered",
                journal: &["POST_TEST_TRAFFIC_SHIFT->gate failed"],
                command: "-",
            },
            Row {
                case: "unmeasured once: ask again",
                state: at_stage(),
                obs: measured(Err("no datapoints".into())),
                outcome: "hook_answered",
                journal: &[],
                command: "-",
            },
        ];
        check(&gated(), rows);
    }

    #[test]
    fn an_approval_gate_waits_for_a_person_then_passes_or_fails() {
        let mut p = policy();
        p.native = true;
        p.gates.approval = Some(ApprovalGate {
            stage: STAGE,
            timeout_minutes: 30,
            on_timeout: OnTimeout::Reject,
        });
        let hook = Observation::HookInvoked {
            stage: STAGE,
            deployment: Some(DeploymentId("d-b".into())),
            revision_task_definition: None,
            shifted_back: false,
        };
        let decided = |approved: bool| {
            let mut s = at_stage();
            if let Some(d) = s.in_flight.as_mut() {
                d.approval = Some(crate::state::ApprovalDecision {
                    approved,
                    by: "alice".into(),
                    summary: None,
                    at: t0(),
                });
            }
            s
        };
        let rows = vec![
            Row {
                case: "no decision yet: the team is asked once",
                state: stabilizing(),
                obs: hook.clone(),
                outcome: "hook_answered",
                journal: &[
                    "stabilizing->POST_TEST_TRAFFIC_SHIFT",
                    "POST_TEST_TRAFFIC_SHIFT->awaiting approval",
                ],
                command: "-",
            },
            Row {
                case: "approved: the stage passes",
                state: decided(true),
                obs: hook.clone(),
                outcome: "hook_answered",
                journal: &["POST_TEST_TRAFFIC_SHIFT->POST_TEST_TRAFFIC_SHIFT passed"],
                command: "-",
            },
            Row {
                case: "rejected: the gate fails",
                state: decided(false),
                obs: hook,
                outcome: "hook_answered",
                journal: &["POST_TEST_TRAFFIC_SHIFT->gate failed"],
                command: "-",
            },
            Row {
                case: "a person's decision is recorded",
                state: at_stage(),
                obs: Observation::ApprovalRecorded {
                    approved: true,
                    by: "alice".into(),
                    summary: Some("looks good".into()),
                },
                outcome: "progressed",
                journal: &["awaiting approval->approved"],
                command: "-",
            },
        ];
        check(&p, rows);
    }
}
