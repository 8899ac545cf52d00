//! The runner: feeds observations to the state machine, persists each step with
//! compare-and-swap, then executes the step's command and feeds its result back, until nothing
//! is left to do.
//!
//! Order matters for crash safety: a step's state (the intent) is saved *before* its command
//! runs, so a crash between the two is seen by the next invocation, which adopts what the first
//! attempt did instead of doing it again.

use tracing::{error, info, warn};

use super::execute::{Executor, Failure};
use super::outbox::{Delivery, MAX_ATTEMPTS};
use super::{RunError, TargetReport, MAX_CONFLICTS};
use crate::machine::{decide, Observation, Outcome, Policy, Step};
use crate::ports::{PortError, Ports, SaveError, Version};
use crate::state::{DeploymentId, ServiceState};

/// Steps one invocation takes at most; a deployment needs four, plus one to start what is pending.
const MAX_STEPS: usize = 12;

pub(super) struct Runner<'a, P> {
    pub exec: Executor<'a, P>,
    pub policy: Policy,
    pub key: String,
    pub topic: &'a str,
    /// The state as last read or written, and its version (the fencing token).
    pub current: (ServiceState, Option<Version>),
    /// What this run learnt about the outbox (sent, claimed, set aside).
    pub delivery: Delivery,
    /// Whether the stored outbox still lists notifications that were sent.
    pub unsaved_outbox: bool,
    pub conflicts: usize,
    /// This run's random state for backoff jitter ([`jitter_seed`]).
    pub jitter: u64,
    pub report: TargetReport,
}

impl<P: Ports> Runner<'_, P> {
    fn ports(&self) -> &P {
        self.exec.ports
    }

    /// Decides and reports each observation on the state the previous one would leave; nothing
    /// is saved or executed.
    pub fn plan(
        mut self,
        mut obs: Observation,
        queue: impl Iterator<Item = Observation>,
    ) -> TargetReport {
        let mut queue = queue;
        loop {
            let step = decide(&self.current.0, &obs, self.ports().now(), &self.policy);
            self.report.outcome = step.outcome.clone();
            self.report.journal.extend(step.journal.iter().cloned());
            self.report
                .planned
                .extend(step.command.iter().map(|c| c.to_string()));
            let published = step
                .notices
                .iter()
                .map(|n| format!("Publish \"{}\"", n.subject()));
            self.report.planned.extend(published);
            match queue.next() {
                Some(next) => {
                    self.current.0 = step.state;
                    obs = next;
                }
                None => return self.report,
            }
        }
    }

    /// Runs `obs`, then each of `queue` once the previous one has settled.
    pub async fn drive(
        mut self,
        mut obs: Observation,
        mut queue: impl Iterator<Item = Observation>,
    ) -> Result<TargetReport, RunError> {
        let mut first_outcome = true;
        let mut steps = 0;
        while steps < MAX_STEPS {
            let mut step = decide(&self.current.0, &obs, self.ports().now(), &self.policy);
            // The step's notices (and any left unsent) are claimed in the same write as its
            // intent: one compare-and-swap makes this invocation the owner of both.
            let claimed = self.delivery.claim(&mut step.state, self.ports().now());
            if step.save_with_next && claimed.is_empty() && step.command.is_some() {
                // Saved with the next step's state (the machine says a crash after this
                // command is recovered from what is saved now); the version stays the
                // fencing token of the next write.
                self.current.0 = step.state.clone();
            } else if !self.persist(&step.state).await? {
                continue;
            }
            steps += 1;
            self.record(&step, first_outcome);
            first_outcome = false;
            self.publish(claimed).await;
            let Some(command) = step.command else {
                match queue.next() {
                    Some(next) => (obs, first_outcome) = (next, true),
                    None => break,
                }
                continue;
            };
            if let Some((deployment, e)) = self.too_late(&command) {
                self.interrupted(deployment, e).await;
                return Ok(self.report);
            }
            obs = match self.exec.execute(&self.current.0, &command).await {
                Ok(next) => next,
                Err(Failure::Permanent(deployment, error)) => {
                    Observation::StepFailed { deployment, error }
                }
                Err(Failure::Retryable(deployment, e)) => {
                    self.interrupted(deployment, e).await;
                    // What else was asked still gets its turn (the tick after its reconcile).
                    match queue.next() {
                        Some(next) => {
                            first_outcome = true;
                            next
                        }
                        None => return Ok(self.report),
                    }
                }
            };
        }
        if self.unsaved_outbox {
            self.persist_sent().await;
        }
        Ok(self.report)
    }

    /// Saves `state` with compare-and-swap, unless nothing changed. `Ok(false)`: someone moved
    /// first; `current` is now what they wrote, to decide again on.
    async fn persist(&mut self, state: &ServiceState) -> Result<bool, RunError> {
        if *state == self.current.0 && !self.unsaved_outbox {
            return Ok(true);
        }
        match self
            .ports()
            .save(&self.key, state, self.current.1.as_ref())
            .await
        {
            Ok(v) => {
                self.current = (state.clone(), Some(v));
                self.unsaved_outbox = false;
                Ok(true)
            }
            Err(SaveError::Conflict) => {
                self.conflicts += 1;
                if self.conflicts > MAX_CONFLICTS {
                    return Err(RunError::Contention {
                        key: self.key.clone(),
                    });
                }
                // Jittered: invocations that collided do not collide again in step.
                let wait = backoff(self.conflicts, &mut self.jitter);
                self.ports().pause(wait).await;
                self.current = self.load().await?;
                self.unsaved_outbox = self.delivery.apply(&mut self.current.0);
                Ok(false)
            }
            Err(SaveError::Port(e)) => Err(e.into()),
        }
    }

    pub async fn load(&self) -> Result<(ServiceState, Option<Version>), PortError> {
        load(
            self.ports(),
            &self.key,
            &self.report.environment,
            &self.report.service,
        )
        .await
    }

    /// Puts a saved step into the report and the log. The first step says what the observation
    /// did (queued, progressed…), unless it did nothing; a later step that starts or ends a
    /// deployment, or answers a hook, says more and is what a caller acts on.
    fn record(&mut self, step: &Step, first_outcome: bool) {
        let decisive = matches!(
            step.outcome,
            Outcome::HookAnswered { .. } | Outcome::Finished { .. } | Outcome::Started { .. }
        );
        // A later observation that changed nothing (the config check after the tick) does not
        // hide what an earlier one did.
        let said = first_outcome && step.outcome != Outcome::Nothing;
        if said || decisive {
            self.report.outcome = step.outcome.clone();
        }
        self.log(step);
        if let Some(problem) = &step.problem {
            let (env, service) = (&self.report.environment, &self.report.service);
            warn!(environment = %env, service = %service, problem = %problem, "cannot act");
            self.report.error = Some(problem.clone());
        }
        self.report.journal.extend(step.journal.iter().cloned());
        if let Some(d) = &step.scaled {
            let (env, service) = (&self.report.environment, &self.report.service);
            let line = crate::scaling::emf_line(env, service, d, self.ports().now());
            self.report.metrics.push(line);
            self.report.scaling = Some(d.clone());
        }
    }

    /// A call that changes something is sent only while the lease has [`super::CALL_TIMEOUT`]
    /// left by the wall clock (half the lease, if that is shorter): a call sent later could land
    /// after another invocation took the step over. Not sent, the step is interrupted.
    fn too_late(&self, command: &crate::machine::Command) -> Option<(DeploymentId, PortError)> {
        let deployment = command.mutates()?;
        let d = (self.current.0.in_flight.as_ref()).filter(|d| &d.id == deployment)?;
        let until = d.lease_until?;
        let call = chrono::Duration::from_std(super::CALL_TIMEOUT).unwrap_or_default();
        let margin = call.min(self.policy.lease / 2);
        let left = until - self.ports().now();
        (left < margin).then(|| {
            let e = PortError::new(
                crate::ports::ErrorKind::Transient,
                "lease",
                format!(
                    "{}s of the lease left, under the {}s a call may take: `{command}` not sent (the next tick takes the step over)",
                    left.num_seconds().max(0),
                    margin.num_seconds()
                ),
            );
            (deployment.clone(), e)
        })
    }

    /// A retryable failure: the lease is released so the next tick takes over at once.
    async fn interrupted(&mut self, deployment: DeploymentId, e: PortError) {
        let (env, service) = (&self.report.environment, &self.report.service);
        warn!(environment = %env, service = %service, deployment_id = %deployment, error = %e, "step interrupted; the next tick retries it");
        self.report.error = Some(e.to_string());
        self.report.retry = true;
        let interrupted = Observation::StepInterrupted {
            deployment,
            error: e.to_string(),
        };
        let step = decide(
            &self.current.0,
            &interrupted,
            self.ports().now(),
            &self.policy,
        );
        if step.state == self.current.0 && !self.unsaved_outbox {
            return;
        }
        // Best effort: if this write fails too, the lease lapses by itself.
        let saved = self
            .ports()
            .save(&self.key, &step.state, self.current.1.as_ref())
            .await;
        if let Ok(v) = saved {
            self.log(&step);
            self.report.journal.extend(step.journal);
            self.current = (step.state, Some(v));
            self.unsaved_outbox = false;
        }
    }

    /// Publishes the notices this invocation claimed (see `outbox.rs`): what SNS did not take
    /// stays for the next invocation, what it refused for good is set aside. What was sent
    /// leaves the stored outbox with the next write (or the last, [`Self::persist_sent`]).
    async fn publish(&mut self, ids: Vec<String>) {
        if ids.is_empty() {
            return;
        }
        let now = self.ports().now();
        self.delivery.mine.extend(ids.iter().cloned());
        for id in ids {
            let Some(n) = self.current.0.outbox.iter().find(|n| n.id == id).cloned() else {
                continue;
            };
            let (env, service) = (&self.report.environment, &self.report.service);
            match self.exec.ports.publish(self.topic, &n).await {
                Ok(()) => {
                    self.delivery.sent.insert(id);
                }
                Err(e) if !e.kind.is_retryable() || n.attempts >= MAX_ATTEMPTS => {
                    error!(environment = %env, service = %service, deployment_id = %n.subject, error = %e, attempts = n.attempts, notification = %n.id, "notification set aside undelivered: SNS refused it; see `harbormaster status`");
                    self.delivery.set_aside(&n, e.to_string(), now);
                }
                Err(e) => {
                    warn!(environment = %env, service = %service, deployment_id = %n.subject, error = %e, "notification not sent yet; kept for the next invocation");
                    self.delivery.released.insert(id);
                }
            }
        }
        self.unsaved_outbox |= self.delivery.apply(&mut self.current.0);
    }

    /// Removes sent notifications from the stored outbox; if this fails, the next invocation
    /// sends them again (at least once, never lost).
    async fn persist_sent(&mut self) {
        for _ in 0..MAX_CONFLICTS {
            let saved = self
                .ports()
                .save(&self.key, &self.current.0, self.current.1.as_ref());
            match saved.await {
                Ok(_) => return,
                Err(SaveError::Conflict) => match self.load().await {
                    Ok(mut fresh) => {
                        if !self.delivery.apply(&mut fresh.0) {
                            return;
                        }
                        self.current = fresh;
                    }
                    Err(_) => return,
                },
                Err(SaveError::Port(e)) => {
                    let (env, service) = (&self.report.environment, &self.report.service);
                    warn!(environment = %env, service = %service, error = %e, "sent notifications stay in the outbox; they may be sent twice");
                    return;
                }
            }
        }
    }

    /// One log line per state transition, with the fields a person filters on.
    fn log(&self, step: &Step) {
        for t in &step.journal {
            info!(
                environment = %self.report.environment,
                service = %self.report.service,
                deployment_id = t.deployment.as_ref().map(|d| d.0.as_str()).unwrap_or(""),
                digest = t.digest.as_ref().map(|d| d.as_str()).unwrap_or(""),
                from = %t.from,
                to = %t.to,
                note = %t.note,
                "transition"
            );
        }
    }
}

/// "Full jitter" backoff after the `attempt`-th conflict: a random wait below
/// min(1 s, 10 ms × 2^attempt). A burst of invocations on one document spreads out instead of
/// colliding again in step until one gives up.
fn backoff(attempt: usize, state: &mut u64) -> std::time::Duration {
    // xorshift64: enough randomness to spread retries, no dependency.
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    let cap = (10u64 << attempt.min(7)).min(1000);
    std::time::Duration::from_millis(*state % cap + 1)
}

/// A seed that differs between runs, also within one process and one instant (the clock of
/// the in-memory ports stands still).
pub(super) fn jitter_seed(now: chrono::DateTime<chrono::Utc>) -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let run = RUNS.fetch_add(1, Ordering::Relaxed);
    let nanos = now.timestamp_nanos_opt().unwrap_or_default() as u64;
    (nanos ^ run.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1
}

pub(super) async fn load<P: Ports>(
    ports: &P,
    key: &str,
    env: &str,
    service: &str,
) -> Result<(ServiceState, Option<Version>), PortError> {
    Ok(match ports.load(key).await? {
        Some((s, v)) => (s, Some(v)),
        None => (ServiceState::new(env, service), None),
    })
}
