//! The deployment state machine: `decide(state, observation, now, policy) -> step`.
//!
//! Pure: no I/O, no clock, no randomness. Handlers turn events and AWS answers into
//! observations; the runner executes the commands through ports and feeds the results back.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::alarm::{AlarmChange, AlarmPolicy, AlarmState};
use crate::image::{Digest, Image, ImageOrder};
use crate::notify::{NoticeKind, Notification};
use crate::scaling::{Measured, ScaleDecision, ScalingPolicy};
use crate::state::{
    ApprovalDecision, Deployment, DeploymentId, GateRecord, GateStatus, HistoryEntry, KnownGood,
    Phase, Release, ServiceState, Trigger, Verdict,
};
use crate::state::{BadRelease, GuardWait, RollbackOf};
use crate::strategy::{Gates, OnTimeout, Stage};

/// The settings of one (environment, service) that the machine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub project: String,
    pub order: ImageOrder,
    pub lease: Duration,
    /// How long a pushed release waits for newer pushes before it starts (0: at once).
    pub settle: Duration,
    pub stabilize_timeout: Duration,
    pub max_attempts: u32,
    pub history_limit: usize,
    /// Checks and approval at the lifecycle hooks (native strategies), checks localised.
    pub gates: Gates,
    pub alarms: AlarmPolicy,
    /// Blue/green, canary or linear: a deployment in flight is stopped through ECS.
    pub native: bool,
    /// Worker services: desired count from the backlog.
    pub scaling: Option<ScalingPolicy>,
}

/// The answer to an ECS lifecycle hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum HookStatus {
    Succeeded,
    Failed,
    /// Ask again after the callback delay.
    InProgress,
}

/// One check's measurement: the deciding value, or why there is none (inconclusive).
#[derive(Debug, Clone, PartialEq)]
pub struct Measurement {
    pub check: String,
    pub value: Result<f64, String>,
}

/// What an "ECS Deployment State Change" event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcsChange {
    InProgress,
    Completed,
    Failed,
}

/// What ECS says of our deployment, reduced to what the machine decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Rollout {
    InProgress,
    Completed,
    Failed {
        reason: String,
    },
    /// The circuit breaker put the service back on an earlier revision.
    RolledBack {
        reason: String,
        to: String,
    },
    /// Someone else moved the service to another revision meanwhile.
    Replaced {
        by: String,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    /// An ECR push event for this service's repository whose tag this environment follows.
    ImagePushed {
        event_id: String,
        image: Image,
    },
    /// A person or build asked for this image (ordering does not apply: they chose it).
    DeployRequested {
        image: Image,
        by: String,
        /// Deploy even if the image is marked bad or a guard alarm is in ALARM.
        force: bool,
    },
    /// The tick listed the repository's images that this environment follows (their push events
    /// may have been lost). All times in it come from ECR's one clock.
    ImagesListed {
        images: Vec<Image>,
    },
    Tick,
    RevisionRegistered {
        deployment: DeploymentId,
        task_definition_arn: String,
    },
    /// Result of looking for a revision an earlier attempt may have registered.
    RevisionSearched {
        deployment: DeploymentId,
        found: Option<String>,
    },
    ServiceUpdated {
        deployment: DeploymentId,
        ecs_deployment_id: Option<String>,
    },
    RolloutObserved {
        deployment: DeploymentId,
        rollout: Rollout,
    },
    /// A step failed in a way retrying will not fix (invalid request, missing resource).
    StepFailed {
        deployment: DeploymentId,
        error: String,
    },
    /// A step failed in a way a later retry may fix (throttling, 5xx, a lost connection): the
    /// lease is released so the next tick takes over at once.
    StepInterrupted {
        deployment: DeploymentId,
        error: String,
    },
    /// ECS called the lifecycle hook. `deployment` comes from the hook details the agent set
    /// with UpdateService; `revision_task_definition` is what the target revision runs, when
    /// ECS could say.
    HookInvoked {
        stage: Stage,
        deployment: Option<DeploymentId>,
        revision_task_definition: Option<String>,
    },
    ChecksMeasured {
        deployment: DeploymentId,
        stage: Stage,
        measurements: Vec<Measurement>,
    },
    /// A person approved or rejected the deployment in flight.
    ApprovalRecorded {
        approved: bool,
        by: String,
        summary: Option<String>,
    },
    /// An "ECS Deployment State Change" event.
    EcsDeploymentChanged {
        event_id: String,
        ecs_deployment_id: String,
        change: EcsChange,
        reason: String,
        updated_at: DateTime<Utc>,
    },
    /// One of the service's alarms changed state.
    AlarmChanged {
        change: AlarmChange,
    },
    /// A person asks for the service back on a known good revision (`to`: an ARN or its
    /// `family:revision` / revision suffix, from the history; default: the one before).
    RollbackRequested {
        to: Option<String>,
        by: String,
    },
    /// Which of the service's guard alarms are in ALARM now.
    GuardsChecked {
        firing: Vec<String>,
    },
    /// Whether ECS stopped the native deployment in flight (and rolls it back itself).
    RolloutStopped {
        deployment: DeploymentId,
        stopped: bool,
    },
    /// Time to size a worker service from its backlog.
    ScaleTick,
    /// The backlog and the service's counts, or why they could not be read.
    BacklogMeasured {
        measured: Result<Measured, String>,
    },
    /// UpdateService set the desired count (or failed to).
    DesiredSet {
        desired: u32,
        error: Option<String>,
    },
    /// Why a deployment ECS reported failed did fail, and where the service is now.
    FailureExplained {
        deployment: DeploymentId,
        rolled_back_to: Option<String>,
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Look in the family for a revision tagged with this deployment (adopt, don't re-register).
    FindRevision {
        deployment: DeploymentId,
        image: Image,
    },
    RegisterRevision {
        deployment: DeploymentId,
        image: Image,
    },
    /// `adopt`: first check whether the service already runs the revision (a takeover).
    UpdateService {
        deployment: DeploymentId,
        task_definition_arn: String,
        adopt: bool,
    },
    ObserveRollout {
        deployment: DeploymentId,
        task_definition_arn: String,
        ecs_deployment_id: Option<String>,
    },
    /// Measure the checks gating `stage` (CloudWatch GetMetricData).
    MeasureChecks {
        deployment: DeploymentId,
        stage: Stage,
    },
    /// Ask CloudWatch which guard alarms are in ALARM.
    CheckGuards,
    /// Read the worker's backlog and its desired and running counts.
    MeasureBacklog,
    /// UpdateService with only the desired count.
    SetDesired { desired: u32 },
    /// StopServiceDeployment with rollback, for the native deployment in flight.
    StopRollout { deployment: DeploymentId },
    /// Gather what explains a failed rollout: stopped tasks, service events, where it is now.
    ExplainFailure {
        deployment: DeploymentId,
        task_definition_arn: String,
        reason: String,
    },
}

/// What happened to the observation, for the caller's report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Started {
        deployment: DeploymentId,
    },
    Queued,
    Duplicate,
    Ignored {
        reason: String,
    },
    Progressed,
    Finished {
        deployment: DeploymentId,
        verdict: Verdict,
    },
    /// Another invocation holds the lease on the deployment in flight.
    Busy,
    /// The observation is about a deployment that is no longer in flight.
    Stale,
    Nothing,
    /// The lifecycle hook's answer.
    HookAnswered {
        status: HookStatus,
        reason: String,
    },
}

/// One line of the journal: a state transition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transition {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub note: String,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub state: ServiceState,
    /// At most one: the command that moves the deployment on.
    pub commands: Vec<Command>,
    /// Notifications this step put in the state's outbox.
    pub notices: Vec<Notification>,
    pub journal: Vec<Transition>,
    pub outcome: Outcome,
    /// A worker scaling decision this step made.
    pub scaled: Option<ScaleDecision>,
}

impl Step {
    /// The one command that moves the deployment on (at most one per step), if any.
    pub fn effect(&self) -> Option<&Command> {
        self.commands.first()
    }
}

/// CloudWatch's clock against the agent's, and alarm times given in whole seconds: a change
/// this close to a deployment's start is not taken as older than it.
const CLOCK_SLACK: Duration = Duration::seconds(5);

/// How a release came in decides which checks it passes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    /// A push event: must not be older than what was accepted, nor what runs already.
    Pushed,
    /// Found by reconciling (already compared on ECR's clock): must not be what runs already.
    Reconciled,
    /// Asked for by a person: deployed as asked (a redeploy of the same image included).
    Requested,
}

/// The image a lost push event would have announced: the newest of the listing, if it is newer
/// than the accepted one *by the listing's own clock*. Event times and ECR's push times come from
/// different clocks and are never compared with each other here.
fn lost_push(s: &ServiceState, images: &[Image], order: ImageOrder) -> Option<Image> {
    // Without a reference point the agent would deploy whatever is newest in the repository on
    // its first tick, which nobody asked for.
    let accepted = s.newest_accepted.as_ref()?;
    let reference = images
        .iter()
        .find(|i| i.digest == accepted.digest)
        .unwrap_or(accepted);
    let newest = images.iter().max_by(|a, b| order.compare(a, b))?;
    let tied = images.iter().any(|i| {
        i.digest != newest.digest && order.compare(i, newest) == std::cmp::Ordering::Equal
    });
    // A tie means two images were pushed in the same second: which one is newer is unknown, so
    // the tick leaves it to the push events rather than guess.
    (!tied && newest.digest != accepted.digest && order.is_newer(newest, reference))
        .then(|| newest.clone())
}

struct Ctx<'a> {
    s: ServiceState,
    scaled: Option<ScaleDecision>,
    commands: Vec<Command>,
    notices: Vec<Notification>,
    journal: Vec<Transition>,
    now: DateTime<Utc>,
    policy: &'a Policy,
}

pub fn decide(
    state: &ServiceState,
    obs: &Observation,
    now: DateTime<Utc>,
    policy: &Policy,
) -> Step {
    let mut cx = Ctx {
        s: state.clone(),
        scaled: None,
        commands: Vec::new(),
        notices: Vec::new(),
        journal: Vec::new(),
        now,
        policy,
    };
    let outcome = match obs {
        Observation::ImagePushed { event_id, image } => {
            if cx.s.has_processed(event_id) {
                Outcome::Duplicate
            } else {
                cx.s.remember_event(event_id);
                let release = Release {
                    image: image.clone(),
                    trigger: Trigger::Push {
                        event_id: event_id.clone(),
                    },
                    requested_at: now,
                    force: false,
                };
                cx.accept(release, Admission::Pushed)
            }
        }
        Observation::DeployRequested { image, by, force } => {
            let release = Release {
                image: image.clone(),
                trigger: Trigger::Request { by: by.clone() },
                requested_at: now,
                force: *force,
            };
            cx.accept(release, Admission::Requested)
        }
        Observation::ImagesListed { images } => match lost_push(&cx.s, images, policy.order) {
            Some(image) => {
                let release = Release {
                    image,
                    trigger: Trigger::Reconcile,
                    requested_at: now,
                    force: false,
                };
                cx.accept(release, Admission::Reconciled)
            }
            None => Outcome::Nothing,
        },
        Observation::Tick => cx.tick(),
        Observation::RevisionRegistered {
            deployment,
            task_definition_arn,
        } => cx.registered(deployment, task_definition_arn, "registered"),
        Observation::RevisionSearched { deployment, found } => {
            match cx.current(deployment, Phase::Registering) {
                None => Outcome::Stale,
                Some(d) => match found {
                    Some(arn) => cx.registered(
                        deployment,
                        arn,
                        "adopted the revision an earlier attempt registered",
                    ),
                    None => {
                        let image = d.release.image.clone();
                        cx.renew_lease();
                        cx.commands.push(Command::RegisterRevision {
                            deployment: deployment.clone(),
                            image,
                        });
                        Outcome::Progressed
                    }
                },
            }
        }
        Observation::ServiceUpdated {
            deployment,
            ecs_deployment_id,
        } => match cx.current(deployment, Phase::Updating) {
            None => Outcome::Stale,
            Some(_) => {
                let d = cx.s.in_flight.as_mut().expect("checked");
                d.phase = Phase::Stabilizing;
                d.ecs_deployment_id = ecs_deployment_id.clone();
                d.updated_at = now;
                // ECS owns the rollout now; nobody needs exclusive access to follow it.
                d.lease_until = None;
                cx.transition(
                    Phase::Updating.to_string(),
                    Phase::Stabilizing.to_string(),
                    String::new(),
                );
                Outcome::Progressed
            }
        },
        Observation::RolloutObserved {
            deployment,
            rollout,
        } => match cx.current(deployment, Phase::Stabilizing) {
            None => Outcome::Stale,
            Some(d) => {
                let started = d.started_at;
                match rollout {
                    Rollout::InProgress => {
                        if now - started > policy.stabilize_timeout {
                            let minutes = policy.stabilize_timeout.num_minutes();
                            cx.finish(
                                Verdict::Failed,
                                Some(format!("did not stabilize within {minutes} minutes")),
                            )
                        } else {
                            Outcome::Nothing
                        }
                    }
                    Rollout::Completed => cx.finish(Verdict::Succeeded, None),
                    Rollout::Failed { reason } => cx.finish(Verdict::Failed, Some(reason.clone())),
                    Rollout::RolledBack { reason, to } => cx.finish(
                        Verdict::RolledBack,
                        Some(format!("{reason}; the service is back on {to}")),
                    ),
                    Rollout::Replaced { by } => cx.finish(
                        Verdict::Failed,
                        Some(format!(
                            "the service was moved to {by} by someone else during the rollout"
                        )),
                    ),
                }
            }
        },
        Observation::StepInterrupted { deployment, error } => {
            match cx
                .s
                .in_flight
                .as_ref()
                .filter(|d| &d.id == deployment && d.phase != Phase::Stabilizing)
            {
                None => Outcome::Stale,
                Some(d) => {
                    let phase = d.phase.to_string();
                    let dm = cx.s.in_flight.as_mut().expect("checked");
                    dm.lease_until = Some(now);
                    dm.updated_at = now;
                    cx.transition(
                        phase.clone(),
                        phase,
                        format!("interrupted, will retry: {error}"),
                    );
                    Outcome::Progressed
                }
            }
        }
        Observation::StepFailed { deployment, error } => {
            match cx.s.in_flight.as_ref().filter(|d| &d.id == deployment) {
                None => Outcome::Stale,
                Some(_) => cx.finish(Verdict::Failed, Some(error.clone())),
            }
        }
        Observation::HookInvoked {
            stage,
            deployment,
            revision_task_definition,
        } => cx.hook(
            *stage,
            deployment.as_ref(),
            revision_task_definition.as_deref(),
        ),
        Observation::ChecksMeasured {
            deployment,
            stage,
            measurements,
        } => cx.checks_measured(deployment, *stage, measurements),
        Observation::ApprovalRecorded {
            approved,
            by,
            summary,
        } => cx.record_approval(*approved, by, summary.clone()),
        Observation::EcsDeploymentChanged {
            event_id,
            ecs_deployment_id,
            change,
            reason,
            updated_at,
        } => {
            if cx.s.has_processed(event_id) {
                Outcome::Duplicate
            } else {
                cx.s.remember_event(event_id);
                cx.ecs_changed(ecs_deployment_id, *change, reason, *updated_at)
            }
        }
        Observation::AlarmChanged { change } => {
            if cx.s.has_processed(&change.id) {
                Outcome::Duplicate
            } else {
                cx.s.remember_event(&change.id);
                cx.alarm(change)
            }
        }
        Observation::RollbackRequested { to, by } => cx.rollback_requested(to.as_deref(), by),
        Observation::GuardsChecked { firing } => cx.guards_checked(firing),
        Observation::RolloutStopped {
            deployment,
            stopped,
        } => match cx.current(deployment, Phase::Updating).cloned() {
            None => Outcome::Stale,
            Some(d) if *stopped => {
                let dm = cx.s.in_flight.as_mut().expect("checked");
                dm.phase = Phase::Stabilizing;
                dm.updated_at = now;
                dm.lease_until = None;
                cx.transition(
                    Phase::Updating.to_string(),
                    Phase::Stabilizing.to_string(),
                    "ECS stopped the deployment and rolls it back itself".into(),
                );
                let _ = d;
                Outcome::Progressed
            }
            Some(d) => {
                cx.renew_lease();
                cx.commands.push(Command::UpdateService {
                    deployment: d.id.clone(),
                    task_definition_arn: d.task_definition_arn.clone().unwrap_or_default(),
                    adopt: false,
                });
                Outcome::Progressed
            }
        },
        Observation::ScaleTick => match &policy.scaling {
            None => Outcome::Nothing,
            Some(_) => {
                cx.commands.push(Command::MeasureBacklog);
                Outcome::Progressed
            }
        },
        Observation::BacklogMeasured { measured } => cx.scale(measured),
        Observation::DesiredSet { desired, error } => match error {
            None => Outcome::Nothing,
            Some(e) => {
                cx.journal.push(Transition {
                    deployment: None,
                    digest: None,
                    from: "scaling".into(),
                    to: "scaling".into(),
                    note: format!("setting the desired count to {desired} failed: {e}; the next tick tries again"),
                });
                Outcome::Ignored {
                    reason: format!("UpdateService (desired count {desired}) failed: {e}"),
                }
            }
        },
        Observation::FailureExplained {
            deployment,
            rolled_back_to,
            reason,
        } => match cx
            .s
            .in_flight
            .as_ref()
            .filter(|d| &d.id == deployment && d.phase != Phase::Registering)
        {
            None => Outcome::Stale,
            Some(_) => match rolled_back_to {
                Some(to) => cx.finish(
                    Verdict::RolledBack,
                    Some(format!("{reason}; the service is back on {to}")),
                ),
                None => cx.finish(Verdict::Failed, Some(reason.clone())),
            },
        },
    };
    Step {
        state: cx.s,
        commands: cx.commands,
        notices: cx.notices,
        journal: cx.journal,
        outcome,
        scaled: cx.scaled,
    }
}

impl Ctx<'_> {
    fn current(&self, id: &DeploymentId, phase: Phase) -> Option<&Deployment> {
        self.s
            .in_flight
            .as_ref()
            .filter(|d| &d.id == id && d.phase == phase)
    }

    fn transition(&mut self, from: String, to: String, note: String) {
        let d = self.s.in_flight.as_ref();
        self.journal.push(Transition {
            deployment: d.map(|d| d.id.clone()),
            digest: d.map(|d| d.release.image.digest.clone()),
            from,
            to,
            note,
        });
    }

    fn renew_lease(&mut self) {
        let until = self.now + self.policy.lease;
        if let Some(d) = self.s.in_flight.as_mut() {
            d.lease_until = Some(until);
            d.updated_at = self.now;
        }
    }

    /// A release arrives: deploy it now, queue it, or ignore it.
    fn accept(&mut self, release: Release, admission: Admission) -> Outcome {
        if let Some(bad) = self.s.bad(&release.image.digest).cloned() {
            if !release.force {
                let label = release.image.label();
                let reason = if admission == Admission::Requested {
                    format!(
                        "{label} is marked bad ({}); deploy it with --force to override",
                        bad.why
                    )
                } else {
                    format!("{label} is marked bad ({}); it is not deployed again by itself (a person can, with --force)", bad.why)
                };
                if admission == Admission::Pushed {
                    let about = self.deployment_of(&release.image.digest);
                    self.notice_now(NoticeKind::Ignored, about, release.image.clone(), &reason);
                }
                return Outcome::Ignored { reason };
            }
        }
        let digest = &release.image.digest;
        if let Some(d) = &self.s.in_flight {
            if &d.release.image.digest == digest {
                return Outcome::Ignored {
                    reason: format!("{} is already being deployed ({})", digest.short(), d.id),
                };
            }
        }
        if let Some(p) = &self.s.pending {
            if &p.image.digest == digest {
                return Outcome::Ignored {
                    reason: format!("{} is already pending", digest.short()),
                };
            }
        }
        if admission != Admission::Requested
            && self.s.in_flight.is_none()
            && self.s.pending.is_none()
        {
            if let Some(good) = &self.s.last_known_good {
                if &good.image.digest == digest {
                    return Outcome::Ignored {
                        reason: format!("{} is already deployed", digest.short()),
                    };
                }
            }
        }
        if admission == Admission::Pushed {
            if let Some(newest) = self
                .s
                .newest_accepted
                .as_ref()
                .filter(|n| &n.digest == digest)
            {
                // The image was accepted before (pushed again under another tag, or re-pushed
                // after its deployment failed): not a new release. A person can still deploy it.
                let verdict = self
                    .s
                    .history
                    .iter()
                    .find(|h| &h.image.digest == digest && h.deployment_id.is_some())
                    .map(|h| format!("; its last deployment {}", h.verdict))
                    .unwrap_or_default();
                return Outcome::Ignored {
                    reason: format!("{} was already accepted{verdict}", newest.label()),
                };
            }
            if let Some(newest) = &self.s.newest_accepted {
                // Same second, other digest: both are "the latest"; the later processed wins.
                if self.policy.order.compare(&release.image, newest) == std::cmp::Ordering::Less {
                    let reason =
                        format!("older than {}, which was already accepted", newest.label());
                    self.supersede(&release.image, "received", &reason);
                    return Outcome::Ignored { reason };
                }
            }
        }
        let raise_watermark = match &self.s.newest_accepted {
            // Found by reconciling: already known to be newer, on ECR's clock.
            _ if admission == Admission::Reconciled => true,
            Some(n) => self.policy.order.compare(&release.image, n) != std::cmp::Ordering::Less,
            None => true,
        };
        if raise_watermark {
            self.s.newest_accepted = Some(release.image.clone());
        }
        let settling = self.s.settle_until.filter(|until| *until > self.now);
        if admission == Admission::Pushed
            && self.s.in_flight.is_none()
            && (settling.is_some() || self.policy.settle > Duration::zero())
        {
            // The window runs from the burst's first push, so a steady stream of pushes cannot
            // hold deployments off for ever.
            let until = settling.unwrap_or(self.now + self.policy.settle);
            self.s.settle_until = Some(until);
            let note = format!(
                "deploys at {} unless a newer push arrives first",
                until.format("%H:%M:%S UTC")
            );
            return self.queue(release, "settling", note);
        }
        if self.s.in_flight.is_some() {
            let note = "a deployment is in flight; this release follows it".into();
            self.queue(release, "pending", note)
        } else {
            self.begin(release)
        }
    }

    /// Puts `release` in `pending`, replacing (as superseded) what waited there.
    fn queue(&mut self, release: Release, to: &str, note: String) -> Outcome {
        if let Some(old) = self.s.pending.take() {
            let reason = format!("replaced by {} before it started", release.image.label());
            self.supersede(&old.image, "pending", &reason);
        }
        self.journal.push(Transition {
            deployment: None,
            digest: Some(release.image.digest.clone()),
            from: "received".into(),
            to: to.into(),
            note,
        });
        self.s.pending = Some(release);
        Outcome::Queued
    }

    /// Starts a release unless a guard alarm may be firing: then it waits as pending while
    /// CloudWatch is asked.
    fn begin(&mut self, release: Release) -> Outcome {
        if self.policy.alarms.guards.is_empty() || release.force {
            self.s.guard_wait = None;
            return self.start(release);
        }
        self.s.pending = Some(release);
        self.commands.push(Command::CheckGuards);
        Outcome::Queued
    }

    fn guards_checked(&mut self, firing: &[String]) -> Outcome {
        if self.s.in_flight.is_some() {
            return Outcome::Stale;
        }
        let Some(p) = self.s.pending.clone() else {
            return Outcome::Nothing;
        };
        if firing.is_empty() {
            self.s.guard_wait = None;
            self.s.pending = None;
            return self.start(p);
        }
        let since = self
            .s
            .guard_wait
            .as_ref()
            .map(|g| g.since)
            .unwrap_or(self.now);
        let minutes = self.policy.alarms.guard_timeout_minutes;
        let alarms = firing.join(", ");
        if self.now - since >= Duration::minutes(minutes.into()) {
            let reason = format!(
                "guard alarms still in ALARM after {minutes} min: {alarms}; not deployed (deploy it again when they clear, or with --force)"
            );
            self.s.pending = None;
            self.s.guard_wait = None;
            self.s.record(
                HistoryEntry {
                    deployment_id: None,
                    image: p.image.clone(),
                    verdict: Verdict::Failed,
                    task_definition_arn: None,
                    reason: Some(reason.clone()),
                    at: self.now,
                    gates: Vec::new(),
                },
                self.policy.history_limit,
            );
            self.journal.push(Transition {
                deployment: None,
                digest: Some(p.image.digest.clone()),
                from: "held".into(),
                to: "failed".into(),
                note: reason.clone(),
            });
            let about = DeploymentId(format!("held-{}", &p.image.digest.short()[..8]));
            self.notice_now(NoticeKind::Failed, about, p.image.clone(), &reason);
            return Outcome::Ignored { reason };
        }
        if self.s.guard_wait.is_none() {
            self.journal.push(Transition {
                deployment: None,
                digest: Some(p.image.digest.clone()),
                from: "pending".into(),
                to: "held".into(),
                note: format!("guard alarms in ALARM: {alarms}; it deploys when they clear (gives up after {minutes} min)"),
            });
        }
        self.s.guard_wait = Some(GuardWait {
            since,
            alarms: firing.to_vec(),
        });
        Outcome::Queued
    }

    /// A release that will never be deployed: in the history, with why.
    fn supersede(&mut self, image: &Image, from: &str, reason: &str) {
        self.s.record(
            HistoryEntry {
                deployment_id: None,
                image: image.clone(),
                verdict: Verdict::Superseded,
                task_definition_arn: None,
                reason: Some(reason.to_owned()),
                at: self.now,
                gates: Vec::new(),
            },
            self.policy.history_limit,
        );
        self.journal.push(Transition {
            deployment: None,
            digest: Some(image.digest.clone()),
            from: from.to_owned(),
            to: "superseded".into(),
            note: reason.to_owned(),
        });
    }

    fn start(&mut self, release: Release) -> Outcome {
        // Readable and sortable; the serial makes it unique even for the same image in the same
        // millisecond.
        self.s.deployments_started += 1;
        let id = DeploymentId(format!(
            "{}-{}-{}",
            self.now.format("%Y%m%dT%H%M%S%3fZ"),
            &release.image.digest.short()[..8],
            self.s.deployments_started
        ));
        let image = release.image.clone();
        self.s.in_flight = Some(Deployment {
            id: id.clone(),
            release,
            phase: Phase::Registering,
            started_at: self.now,
            updated_at: self.now,
            lease_until: Some(self.now + self.policy.lease),
            attempts: 0,
            task_definition_arn: None,
            ecs_deployment_id: None,
            stage: None,
            gates: Vec::new(),
            approval: None,
            gate_failure: None,
            ecs_event_at: None,
            rollback: None,
        });
        self.transition(
            "pending".into(),
            Phase::Registering.to_string(),
            String::new(),
        );
        self.notify(NoticeKind::Started, None);
        self.commands.push(Command::RegisterRevision {
            deployment: id.clone(),
            image,
        });
        Outcome::Started { deployment: id }
    }

    fn registered(&mut self, id: &DeploymentId, arn: &str, note: &str) -> Outcome {
        if self.current(id, Phase::Registering).is_none() {
            return Outcome::Stale;
        }
        let until = self.now + self.policy.lease;
        let d = self.s.in_flight.as_mut().expect("checked");
        d.phase = Phase::Updating;
        d.task_definition_arn = Some(arn.to_owned());
        d.lease_until = Some(until);
        d.updated_at = self.now;
        self.transition(
            Phase::Registering.to_string(),
            Phase::Updating.to_string(),
            format!("{note} {arn}"),
        );
        self.commands.push(Command::UpdateService {
            deployment: id.clone(),
            task_definition_arn: arn.to_owned(),
            adopt: false,
        });
        Outcome::Progressed
    }

    fn tick(&mut self) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            if self.s.settle_until.is_some_and(|until| until > self.now) {
                return Outcome::Nothing;
            }
            self.s.settle_until = None;
            return match self.s.pending.take() {
                Some(p) => self.begin(p),
                None => Outcome::Nothing,
            };
        };
        match d.phase {
            Phase::Stabilizing => {
                self.commands.push(Command::ObserveRollout {
                    deployment: d.id.clone(),
                    task_definition_arn: d.task_definition_arn.clone().unwrap_or_default(),
                    ecs_deployment_id: d.ecs_deployment_id.clone(),
                });
                Outcome::Progressed
            }
            Phase::Registering | Phase::Updating => {
                if d.lease_until.is_some_and(|until| until > self.now) {
                    return Outcome::Busy;
                }
                if d.attempts + 1 > self.policy.max_attempts {
                    return self.finish(
                        Verdict::Failed,
                        Some(format!(
                            "gave up after {} attempts while {}",
                            d.attempts + 1,
                            d.phase
                        )),
                    );
                }
                let dm = self.s.in_flight.as_mut().expect("present");
                dm.attempts += 1;
                self.renew_lease();
                self.transition(
                    d.phase.to_string(),
                    d.phase.to_string(),
                    format!("lease lapsed; taking over (attempt {})", d.attempts + 1),
                );
                self.commands.push(match d.phase {
                    Phase::Registering => Command::FindRevision {
                        deployment: d.id.clone(),
                        image: d.release.image.clone(),
                    },
                    _ => Command::UpdateService {
                        deployment: d.id.clone(),
                        task_definition_arn: d.task_definition_arn.clone().unwrap_or_default(),
                        adopt: true,
                    },
                });
                Outcome::Progressed
            }
        }
    }

    /// Close the deployment in flight with a verdict, then start what is pending.
    fn finish(&mut self, verdict: Verdict, reason: Option<String>) -> Outcome {
        let d = self
            .s
            .in_flight
            .clone()
            .expect("finish needs a deployment in flight");
        // A rollback that fails is not retried: the service is in a state a person must judge.
        let verdict = if d.rollback.is_some() && verdict.is_failure() {
            Verdict::RollbackFailed
        } else {
            verdict
        };
        // The gate that failed it is the first thing a person needs to read.
        let reason = match (&d.gate_failure, reason) {
            (Some(g), Some(r)) if verdict.is_failure() && !r.contains(g.as_str()) => {
                Some(format!("{g}; {r}"))
            }
            (Some(g), None) if verdict.is_failure() => Some(g.clone()),
            (_, r) => r,
        };
        self.transition(
            d.phase.to_string(),
            verdict.to_string(),
            reason.clone().unwrap_or_default(),
        );
        self.notify(
            match verdict {
                Verdict::Succeeded => NoticeKind::Succeeded,
                Verdict::RolledBack => NoticeKind::RolledBack,
                Verdict::RollbackFailed => NoticeKind::RollbackFailed,
                _ => NoticeKind::Failed,
            },
            reason.clone(),
        );
        if verdict == Verdict::Succeeded {
            if let Some(arn) = &d.task_definition_arn {
                self.s.last_known_good = Some(KnownGood {
                    task_definition_arn: arn.clone(),
                    image: d.release.image.clone(),
                    deployment_id: d.id.clone(),
                    at: self.now,
                    started_at: Some(d.started_at),
                    restored: d.rollback.is_some(),
                });
            }
        }
        self.s.record(
            HistoryEntry {
                deployment_id: Some(d.id.clone()),
                image: d.release.image.clone(),
                verdict,
                task_definition_arn: d.task_definition_arn.clone(),
                reason,
                at: self.now,
                gates: d.gates.clone(),
            },
            self.policy.history_limit,
        );
        self.s.in_flight = None;
        if let Some(p) = self.s.pending.take() {
            self.begin(p);
        }
        Outcome::Finished {
            deployment: d.id,
            verdict,
        }
    }

    // ---------- lifecycle hooks (native strategies) ----------

    fn answer(&self, status: HookStatus, reason: impl Into<String>) -> Outcome {
        Outcome::HookAnswered {
            status,
            reason: reason.into(),
        }
    }

    /// ECS asks whether the deployment may go on at `stage`.
    fn hook(
        &mut self,
        stage: Stage,
        deployment: Option<&DeploymentId>,
        revision_task_definition: Option<&str>,
    ) -> Outcome {
        let service = self.s.service.clone();
        let Some(d) = self.s.in_flight.clone() else {
            return self.answer(
                HookStatus::Succeeded,
                format!("no deployment of {service} is in flight; nothing to gate"),
            );
        };
        if let Some(id) = deployment.filter(|id| **id != d.id) {
            // Its deployment finished already: this is ECS rolling it back, or a late call.
            return self.answer(
                HookStatus::Succeeded,
                format!("the hook is for {id}, which is no longer in flight; not gating it"),
            );
        }
        if d.phase == Phase::Registering {
            return self.answer(
                HookStatus::Succeeded,
                format!(
                    "{} has not updated the service yet; this ECS deployment is not the agent's",
                    d.id
                ),
            );
        }
        if let (Some(rev), Some(ours)) =
            (revision_task_definition, d.task_definition_arn.as_deref())
        {
            if rev != ours {
                // A rollback runs hooks too: never stand in its way.
                return self.answer(
                    HookStatus::Succeeded,
                    format!("the target revision runs {rev}, not {ours} of {}: a rollback or a change from elsewhere; not gating it", d.id),
                );
            }
        }
        if d.rollback.is_some() {
            return self.answer(
                HookStatus::Succeeded,
                format!(
                    "{} is a rollback to the last known good; rollbacks are not gated",
                    d.id
                ),
            );
        }
        if let Some(failure) = &d.gate_failure {
            return self.answer(HookStatus::Failed, failure.clone());
        }
        if d.stage != Some(stage) {
            let from = d
                .stage
                .map(|s| s.to_string())
                .unwrap_or_else(|| d.phase.to_string());
            let dm = self.s.in_flight.as_mut().expect("present");
            dm.stage = Some(stage);
            dm.updated_at = self.now;
            self.transition(from, stage.to_string(), "lifecycle hook".into());
        }
        if let Some(p) = self.s.pending.clone() {
            return self.fail_gate(
                stage,
                "supersession",
                format!(
                    "{} is waiting to deploy; this release gives way (ECS rolls it back) and the newer one follows",
                    p.image.label()
                ),
            );
        }
        if self.policy.gates.checks_at(stage).next().is_some() {
            self.commands.push(Command::MeasureChecks {
                deployment: d.id.clone(),
                stage,
            });
            return Outcome::Progressed;
        }
        self.approval_gate(stage)
    }

    fn checks_measured(
        &mut self,
        deployment: &DeploymentId,
        stage: Stage,
        measurements: &[Measurement],
    ) -> Outcome {
        let Some(d) = self.s.in_flight.clone().filter(|d| &d.id == deployment) else {
            return self.answer(
                HookStatus::Succeeded,
                format!("{deployment} is no longer in flight; not gating it"),
            );
        };
        if let Some(failure) = &d.gate_failure {
            return self.answer(HookStatus::Failed, failure.clone());
        }
        let checks: Vec<_> = self.policy.gates.checks_at(stage).cloned().collect();
        let mut failed = Vec::new();
        let mut waiting = Vec::new();
        for check in &checks {
            let gate = format!("metric:{}", check.name);
            let previous = self
                .gate_record(stage, &gate)
                .map(|g| g.inconclusive)
                .unwrap_or(0);
            let measured = measurements
                .iter()
                .find(|m| m.check == check.name)
                .map(|m| m.value.clone())
                .unwrap_or_else(|| Err("not measured".into()));
            let window = check.window_minutes;
            match measured {
                Ok(v) if check.breached(v) => {
                    let detail = format!(
                        "`{}` measured {v} over the last {window} min; allowed {}",
                        check.name,
                        check.describe_limit()
                    );
                    self.put_gate(stage, &gate, GateStatus::Failed, detail.clone(), Some(v), 0);
                    failed.push(detail);
                }
                Ok(v) => {
                    let detail = format!(
                        "`{}` measured {v} over the last {window} min; allowed {}",
                        check.name,
                        check.describe_limit()
                    );
                    self.put_gate(stage, &gate, GateStatus::Passed, detail, Some(v), 0);
                }
                Err(problem) => {
                    let rounds = previous + 1;
                    let detail = format!(
                        "`{}` could not be measured ({problem}); round {rounds} of {}",
                        check.name,
                        check.max_inconclusive + 1
                    );
                    if rounds > check.max_inconclusive {
                        self.put_gate(stage, &gate, GateStatus::Failed, detail, None, rounds);
                        failed.push(format!(
                            "`{}` could not be measured in {rounds} rounds in a row ({problem}); an unmeasured check never passes",
                            check.name
                        ));
                    } else {
                        self.put_gate(
                            stage,
                            &gate,
                            GateStatus::Inconclusive,
                            detail.clone(),
                            None,
                            rounds,
                        );
                        waiting.push(detail);
                    }
                }
            }
        }
        if !failed.is_empty() {
            let reason = failed.join("; ");
            return self.fail_gate(stage, "metric", reason);
        }
        if !waiting.is_empty() {
            return self.answer(HookStatus::InProgress, waiting.join("; "));
        }
        self.approval_gate(stage)
    }

    fn approval_gate(&mut self, stage: Stage) -> Outcome {
        let d = self.s.in_flight.clone().expect("checked by the caller");
        let Some(gate) = self
            .policy
            .gates
            .approval
            .clone()
            .filter(|a| a.stage == stage)
        else {
            return self.pass(stage);
        };
        let since = self
            .gate_record(stage, "approval")
            .map(|g| g.since)
            .unwrap_or(self.now);
        match &d.approval {
            Some(a) if a.approved => {
                let detail = format!("approved by {}", a.by);
                self.put_gate(stage, "approval", GateStatus::Passed, detail, None, 0);
                self.pass(stage)
            }
            Some(a) => {
                let summary = a
                    .summary
                    .as_deref()
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default();
                let reason = format!("rejected by {}{summary}", a.by);
                self.fail_gate(stage, "approval", reason)
            }
            None => {
                let waited = self.now - since;
                if waited >= Duration::minutes(gate.timeout_minutes.into()) {
                    let minutes = gate.timeout_minutes;
                    match gate.on_timeout {
                        OnTimeout::Reject => self.fail_gate(
                            stage,
                            "approval",
                            format!("no decision within {minutes} min; rejected, as configured"),
                        ),
                        OnTimeout::Approve => {
                            let detail = format!(
                                "no decision within {minutes} min; approved, as configured"
                            );
                            self.put_gate(stage, "approval", GateStatus::Passed, detail, None, 0);
                            self.pass(stage)
                        }
                    }
                } else {
                    let first = self.gate_record(stage, "approval").is_none();
                    let ask = format!(
                        "waiting for approval: harbormaster approve --env {} --service {} (or reject); {} min left",
                        self.s.environment,
                        self.s.service,
                        (Duration::minutes(gate.timeout_minutes.into()) - waited).num_minutes()
                    );
                    self.put_gate(stage, "approval", GateStatus::Waiting, ask.clone(), None, 0);
                    if first {
                        self.transition(stage.to_string(), "awaiting approval".into(), ask.clone());
                        self.notify(NoticeKind::ApprovalNeeded, Some(ask.clone()));
                    }
                    self.answer(HookStatus::InProgress, ask)
                }
            }
        }
    }

    fn pass(&mut self, stage: Stage) -> Outcome {
        self.transition(stage.to_string(), format!("{stage} passed"), String::new());
        self.answer(
            HookStatus::Succeeded,
            format!("every gate at {stage} passed"),
        )
    }

    /// Fails the hook: ECS rolls the deployment back and reports it, and the agent's failure
    /// notification then names this gate.
    fn fail_gate(&mut self, stage: Stage, gate: &str, reason: String) -> Outcome {
        let failure = format!("{gate} gate failed at {stage}: {reason}");
        let now = self.now;
        if gate != "metric" {
            // Metric gates are recorded one check at a time by the caller.
            self.put_gate(stage, gate, GateStatus::Failed, reason, None, 0);
        }
        let dm = self.s.in_flight.as_mut().expect("present");
        dm.gate_failure = Some(failure.clone());
        dm.updated_at = now;
        self.transition(stage.to_string(), "gate failed".into(), failure.clone());
        self.answer(HookStatus::Failed, failure)
    }

    fn gate_record(&self, stage: Stage, gate: &str) -> Option<&GateRecord> {
        self.s
            .in_flight
            .as_ref()?
            .gates
            .iter()
            .find(|g| g.stage == stage && g.gate == gate)
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
        let since = self
            .gate_record(stage, gate)
            .map(|g| g.since)
            .unwrap_or(self.now);
        let record = GateRecord {
            stage,
            gate: gate.to_owned(),
            status,
            detail,
            value,
            inconclusive,
            since,
            at: self.now,
        };
        let d = self.s.in_flight.as_mut().expect("present");
        match d
            .gates
            .iter_mut()
            .find(|g| g.stage == stage && g.gate == gate)
        {
            Some(g) => *g = record,
            None => d.gates.push(record),
        }
    }

    fn record_approval(&mut self, approved: bool, by: &str, summary: Option<String>) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            return Outcome::Ignored {
                reason: format!("no deployment of {} is in flight", self.s.service),
            };
        };
        if self.policy.gates.approval.is_none() {
            return Outcome::Ignored {
                reason: format!(
                    "{} in {} has no approval gate",
                    self.s.service, self.s.environment
                ),
            };
        }
        if let Some(a) = &d.approval {
            return Outcome::Ignored {
                reason: format!(
                    "{} was already {} by {}",
                    d.id,
                    if a.approved { "approved" } else { "rejected" },
                    a.by
                ),
            };
        }
        let dm = self.s.in_flight.as_mut().expect("present");
        dm.approval = Some(ApprovalDecision {
            approved,
            by: by.to_owned(),
            summary: summary.clone(),
            at: self.now,
        });
        dm.updated_at = self.now;
        let word = if approved { "approved" } else { "rejected" };
        self.transition(
            "awaiting approval".into(),
            word.into(),
            format!(
                "{word} by {by}{}",
                summary.map(|s| format!(": {s}")).unwrap_or_default()
            ),
        );
        Outcome::Progressed
    }

    fn ecs_changed(
        &mut self,
        ecs_id: &str,
        change: EcsChange,
        reason: &str,
        updated_at: DateTime<Utc>,
    ) -> Outcome {
        let Some(d) = self.s.in_flight.clone() else {
            return Outcome::Ignored {
                reason: format!("no deployment of {} is in flight; {ecs_id} is not the agent's, or already recorded", self.s.service),
            };
        };
        if d.ecs_deployment_id.as_deref() != Some(ecs_id) {
            return Outcome::Ignored {
                reason: format!(
                    "the event is about ECS deployment {ecs_id}; {} is {}",
                    d.id,
                    d.ecs_deployment_id
                        .as_deref()
                        .unwrap_or("not started in ECS yet")
                ),
            };
        }
        if d.ecs_event_at.is_some_and(|at| updated_at < at) {
            return Outcome::Ignored {
                reason: "older than an event already applied (delivered out of order)".into(),
            };
        }
        let dm = self.s.in_flight.as_mut().expect("present");
        dm.ecs_event_at = Some(updated_at);
        match change {
            EcsChange::InProgress => Outcome::Nothing,
            EcsChange::Completed => self.finish(Verdict::Succeeded, None),
            EcsChange::Failed => {
                self.commands.push(Command::ExplainFailure {
                    deployment: d.id.clone(),
                    task_definition_arn: d.task_definition_arn.clone().unwrap_or_default(),
                    reason: reason.to_owned(),
                });
                Outcome::Progressed
            }
        }
    }

    fn notify(&mut self, kind: NoticeKind, reason: Option<String>) {
        let d = self
            .s
            .in_flight
            .clone()
            .expect("notices are about a deployment");
        let previous = self
            .s
            .last_known_good
            .as_ref()
            .filter(|g| g.deployment_id != d.id)
            .map(|g| g.image.label());
        self.notice_about(
            kind,
            format!("{}/{}", d.id, kind.word()),
            d.id.clone(),
            d.release.image.clone(),
            d.task_definition_arn.clone(),
            reason,
        );
        if let Some(n) = self.notices.last_mut() {
            n.previous = previous.clone();
        }
        if let Some(n) = self.s.outbox.last_mut() {
            n.previous = previous;
        }
    }

    /// A notification about any release, in flight or not; `id` must be unique per event.
    fn notice_about(
        &mut self,
        kind: NoticeKind,
        id: String,
        deployment: DeploymentId,
        image: Image,
        task_definition_arn: Option<String>,
        reason: Option<String>,
    ) {
        let notice = Notification {
            id,
            kind,
            project: self.policy.project.clone(),
            environment: self.s.environment.clone(),
            service: self.s.service.clone(),
            deployment_id: deployment,
            image,
            task_definition_arn,
            previous: None,
            reason,
            at: self.now,
        };
        self.notices.push(notice.clone());
        self.s.outbox.push(notice);
    }

    /// A notice about a release that is not in flight, unique to this moment (the event that
    /// caused it is de-duplicated before it gets here).
    fn notice_now(&mut self, kind: NoticeKind, about: DeploymentId, image: Image, reason: &str) {
        let id = format!("{about}/{}/{}", kind.word(), self.now.timestamp_millis());
        self.notice_about(kind, id, about, image, None, Some(reason.to_owned()));
    }

    /// The deployment that last deployed `digest`, for notices about it.
    fn deployment_of(&self, digest: &crate::image::Digest) -> DeploymentId {
        self.s
            .history
            .iter()
            .find(|h| &h.image.digest == digest && h.deployment_id.is_some())
            .and_then(|h| h.deployment_id.clone())
            .unwrap_or_else(|| DeploymentId(format!("release-{}", &digest.short()[..8])))
    }

    // ---------- worker scaling ----------

    fn scale(&mut self, measured: &Result<Measured, String>) -> Outcome {
        let Some(policy) = self.policy.scaling.clone() else {
            return Outcome::Nothing;
        };
        let m = match measured {
            Ok(m) => *m,
            Err(e) => {
                return Outcome::Ignored {
                    reason: format!("backlog not measured ({e}); the desired count stays"),
                }
            }
        };
        let deploying = self.s.in_flight.is_some();
        let (d, state) = crate::scaling::decide(&policy, &self.s.scaling, m, deploying, self.now);
        self.s.scaling = state;
        if let Some(alert) = &d.alert {
            if let Some(good) = self.s.last_known_good.clone() {
                let about = DeploymentId(format!("scaling-{}", self.s.service));
                self.notice_now(NoticeKind::AtMax, about, good.image, alert);
            }
        }
        let outcome = if d.changes() {
            self.journal.push(Transition {
                deployment: None,
                digest: None,
                from: format!("{} tasks", d.current),
                to: format!("{} tasks", d.desired),
                note: d.reason.clone(),
            });
            self.commands
                .push(Command::SetDesired { desired: d.desired });
            Outcome::Progressed
        } else {
            Outcome::Nothing
        };
        self.scaled = Some(d);
        outcome
    }

    // ---------- alarms and rollbacks ----------

    fn alarm(&mut self, c: &AlarmChange) -> Outcome {
        if c.state != AlarmState::Alarm {
            return Outcome::Ignored {
                reason: format!("{} is {:?}: nothing to roll back", c.alarm, c.state),
            };
        }
        if c.previous == Some(AlarmState::Alarm) {
            return Outcome::Ignored {
                reason: format!("{} was already in ALARM: a repeat", c.alarm),
            };
        }
        let why = format!(
            "alarm {} went to ALARM at {}: {}",
            c.alarm,
            c.at.format("%Y-%m-%d %H:%M:%S UTC"),
            c.reason
        );
        if let Some(d) = self.s.in_flight.clone() {
            if d.rollback.is_some() {
                return Outcome::Ignored {
                    reason: format!("{}: a rollback is already under way", c.alarm),
                };
            }
            if c.at + CLOCK_SLACK < d.started_at {
                return Outcome::Ignored {
                    reason: format!("{} changed state before {} began", c.alarm, d.id),
                };
            }
            return self.roll_back_in_flight(why);
        }
        let Some(good) = self.s.last_known_good.clone() else {
            return self.alarm_noted(c, &why, "the agent has deployed nothing here yet");
        };
        if good.restored {
            return self.alarm_noted(
                c,
                &why,
                "the service is already back on its last known good; a rollback would not help",
            );
        }
        if self
            .s
            .history
            .iter()
            .find(|h| h.deployment_id.is_some())
            .is_some_and(|h| h.verdict == Verdict::RollbackFailed)
        {
            return self.alarm_noted(c, &why, "the last rollback failed; a person must act");
        }
        if c.at + CLOCK_SLACK < good.started_at.unwrap_or(good.at) {
            return Outcome::Ignored {
                reason: format!(
                    "{} changed state before {} was deployed",
                    c.alarm,
                    good.image.label()
                ),
            };
        }
        let window = self.policy.alarms.window_minutes;
        if c.at - good.at > Duration::minutes(window.into()) {
            let note = format!(
                "{} completed at {}, more than {window} min before; not rolling back",
                good.image.label(),
                good.at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            return self.alarm_noted(c, &why, &note);
        }
        self.roll_back_release(good, why)
    }

    /// Tells the team about an alarm the agent does not act on, and why.
    fn alarm_noted(&mut self, c: &AlarmChange, why: &str, note: &str) -> Outcome {
        let (deployment, image, td) = match &self.s.last_known_good {
            Some(g) => (
                g.deployment_id.clone(),
                g.image.clone(),
                Some(g.task_definition_arn.clone()),
            ),
            None => {
                return Outcome::Ignored {
                    reason: format!("{why}; {note}"),
                }
            }
        };
        let reason = format!("{why}; {note}");
        self.notice_about(
            NoticeKind::Alarm,
            format!("{deployment}/alarm/{}", c.id),
            deployment,
            image,
            td,
            Some(reason.clone()),
        );
        Outcome::Ignored { reason }
    }

    fn mark_bad(&mut self, image: &Image, why: &str) {
        if self.s.bad(&image.digest).is_none() {
            self.s.bad_releases.insert(
                0,
                BadRelease {
                    image: image.clone(),
                    why: why.to_owned(),
                    at: self.now,
                },
            );
            self.s.bad_releases.truncate(self.policy.history_limit);
        }
    }

    /// The deployment in flight caused it: stop it and go back to the last known good.
    fn roll_back_in_flight(&mut self, why: String) -> Outcome {
        let d = self.s.in_flight.clone().expect("checked by the caller");
        self.mark_bad(&d.release.image, &why);
        // The rollback goes first; what is pending follows it.
        let pending = self.s.pending.take();
        let stop_first = self.policy.native && d.phase != Phase::Registering;
        let outcome = match self.s.last_known_good.clone() {
            Some(good) => {
                self.finish(
                    Verdict::RolledBack,
                    Some(format!("{why}; returning to {}", good.image.label())),
                );
                self.start_rollback(good, d.release.image.label(), why, stop_first)
            }
            None => self.finish(
                Verdict::RollbackFailed,
                Some(format!("{why}; there is no last known good to return to")),
            ),
        };
        self.s.pending = pending;
        outcome
    }

    /// A release that completed caused it: back to the good one before it.
    fn roll_back_release(&mut self, good: KnownGood, why: String) -> Outcome {
        self.mark_bad(&good.image, &why);
        let Some(target) = self.s.good_before(&good) else {
            let reason = format!(
                "{why}; no earlier good release of {} is recorded to return to",
                self.s.service
            );
            self.notice_about(
                NoticeKind::RollbackFailed,
                format!("{}/rollback_failed", good.deployment_id),
                good.deployment_id.clone(),
                good.image.clone(),
                Some(good.task_definition_arn.clone()),
                Some(reason.clone()),
            );
            self.s.record(
                HistoryEntry {
                    deployment_id: Some(good.deployment_id.clone()),
                    image: good.image.clone(),
                    verdict: Verdict::RollbackFailed,
                    task_definition_arn: Some(good.task_definition_arn.clone()),
                    reason: Some(reason.clone()),
                    at: self.now,
                    gates: Vec::new(),
                },
                self.policy.history_limit,
            );
            self.journal.push(Transition {
                deployment: Some(good.deployment_id.clone()),
                digest: Some(good.image.digest.clone()),
                from: "succeeded".into(),
                to: Verdict::RollbackFailed.to_string(),
                note: reason,
            });
            return Outcome::Finished {
                deployment: good.deployment_id,
                verdict: Verdict::RollbackFailed,
            };
        };
        self.notice_about(
            NoticeKind::RolledBack,
            format!("{}/rolled_back", good.deployment_id),
            good.deployment_id.clone(),
            good.image.clone(),
            Some(good.task_definition_arn.clone()),
            Some(format!(
                "{why}; rolling back to {} ({})",
                target.image.label(),
                target.task_definition_arn
            )),
        );
        if let Some(n) = self.notices.last_mut() {
            n.previous = Some(target.image.label());
        }
        if let Some(n) = self.s.outbox.last_mut() {
            n.previous = Some(target.image.label());
        }
        self.start_rollback(target, good.image.label(), why, false)
    }

    /// A deployment of a known revision: nothing to register; UpdateService (or, for a native
    /// deployment in flight, StopServiceDeployment first).
    fn start_rollback(
        &mut self,
        target: KnownGood,
        from: String,
        why: String,
        stop_first: bool,
    ) -> Outcome {
        self.s.deployments_started += 1;
        let id = DeploymentId(format!(
            "{}-{}-{}",
            self.now.format("%Y%m%dT%H%M%S%3fZ"),
            &target.image.digest.short()[..8],
            self.s.deployments_started
        ));
        self.s.in_flight = Some(Deployment {
            id: id.clone(),
            release: Release {
                image: target.image.clone(),
                trigger: Trigger::Rollback { why: why.clone() },
                requested_at: self.now,
                force: true,
            },
            phase: Phase::Updating,
            started_at: self.now,
            updated_at: self.now,
            lease_until: Some(self.now + self.policy.lease),
            attempts: 0,
            task_definition_arn: Some(target.task_definition_arn.clone()),
            ecs_deployment_id: None,
            stage: None,
            gates: Vec::new(),
            approval: None,
            gate_failure: None,
            ecs_event_at: None,
            rollback: Some(RollbackOf {
                release: from.clone(),
                why,
            }),
        });
        self.transition(
            "rollback".into(),
            Phase::Updating.to_string(),
            format!(
                "from {from} back to {} ({})",
                target.image.label(),
                target.task_definition_arn
            ),
        );
        self.commands.push(if stop_first {
            Command::StopRollout {
                deployment: id.clone(),
            }
        } else {
            Command::UpdateService {
                deployment: id.clone(),
                task_definition_arn: target.task_definition_arn,
                adopt: false,
            }
        });
        Outcome::Started { deployment: id }
    }

    fn rollback_requested(&mut self, to: Option<&str>, by: &str) -> Outcome {
        let why = format!("rollback requested by {by}");
        if let Some(d) = self.s.in_flight.clone() {
            if d.rollback.is_some() {
                return Outcome::Ignored {
                    reason: format!("{} is already a rollback", d.id),
                };
            }
            if to.is_some() {
                return Outcome::Ignored {
                    reason: format!(
                        "{} is in flight: roll back without --to to return to the last known good first",
                        d.id
                    ),
                };
            }
            return self.roll_back_in_flight(why);
        }
        let Some(good) = self.s.last_known_good.clone() else {
            return Outcome::Ignored {
                reason: "no release of this service is recorded: nothing to roll back".into(),
            };
        };
        let target = match to {
            None => self.s.good_before(&good),
            Some(r) => self
                .s
                .history
                .iter()
                .filter(|h| h.verdict == Verdict::Succeeded)
                .find(|h| {
                    h.task_definition_arn.as_deref().is_some_and(|arn| {
                        arn == r
                            || arn.ends_with(&format!("/{r}"))
                            || arn.ends_with(&format!(":{r}"))
                    })
                })
                .and_then(HistoryEntry::known_good),
        };
        let Some(target) = target else {
            return Outcome::Ignored {
                reason: match to {
                    Some(r) => format!("`{r}` is not a revision this service ran successfully (see `harbormaster status`)"),
                    None => "no earlier good release is recorded (see `harbormaster status`)".into(),
                },
            };
        };
        if target.task_definition_arn == good.task_definition_arn {
            return Outcome::Ignored {
                reason: format!("the service is already on {}", target.task_definition_arn),
            };
        }
        self.mark_bad(&good.image, &why);
        self.start_rollback(target, good.image.label(), why, false)
    }
}
