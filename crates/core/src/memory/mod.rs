//! In-memory ports for scenario tests: a small simulated ECS, ECR, S3 state store and SNS, with
//! virtual time, a journal of calls, and fault injection (errors, lost responses, crashes).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::image::{Digest, Image};
use crate::notify::Notification;
use crate::ports::*;
use crate::state::{DeploymentId, ServiceState};

mod bundles;
mod cloud;
mod ecs;
mod owned;

pub use bundles::{Bucket, MemoryBundles};
pub use owned::SimTask;

#[derive(Debug, Clone)]
pub struct Revision {
    pub arn: String,
    pub family: String,
    pub body: Value,
}

#[derive(Debug, Clone, Default)]
pub struct SimService {
    pub task_definition: String,
    pub desired: u32,
    pub deployments: Vec<EcsDeployment>,
    pub events: Vec<String>,
    pub updates: u32,
    pub status: ServiceStatus,
    /// What CreateService was sent, when the agent created it (its client token too).
    pub created: Option<(ServiceTarget, String)>,
    /// Its awsvpc network, when the test gives it one.
    pub network: Option<crate::service::Network>,
    /// Its capacity provider strategy; empty: the FARGATE launch type.
    pub capacity: Vec<crate::service::CapacityItem>,
}

/// How the simulated ECS moves a rollout on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutMode {
    /// Completed by the time anyone looks (as ministack does).
    Instant,
    /// Stays IN_PROGRESS until the test calls `complete` or `fail_with_rollback`.
    Manual,
}

/// A held port call: the one `remaining` calls from when it was set.
#[derive(Debug)]
pub struct Hold {
    pub remaining: usize,
    pub holding: bool,
}

#[derive(Debug)]
pub struct World {
    pub now: DateTime<Utc>,
    pub states: BTreeMap<String, (String, u64)>,
    pub revisions: Vec<Revision>,
    pub services: BTreeMap<(String, String), SimService>,
    pub images: Vec<Image>,
    /// The platforms of the multi-platform images (by digest): an OCI index's `manifests`.
    pub indexes: BTreeMap<Digest, Vec<String>>,
    pub published: Vec<Notification>,
    /// Every port call, in order: `Operation` or `Operation(detail)`.
    pub calls: Vec<String>,
    pub rollout: RolloutMode,
    /// Next calls of an operation fail with this error, consumed in order.
    pub faults: VecDeque<(String, PortError)>,
    /// The operation's effect happens but its response is lost (a Transient error is returned).
    pub lose_response: Vec<String>,
    /// Crash at the n-th port call from now: `executed` says whether that call's effect happened.
    /// After it every call fails until `revive`.
    pub crash_at: Option<(usize, bool)>,
    /// Holds one port call until [`MemoryPorts::release`], so another invocation runs in
    /// between: how a slow call of one Lambda meets another's (see [`MemoryPorts::hold_call`]).
    pub hold: Option<Hold>,
    pub dead: bool,
    pub account: String,
    /// SSM parameter names that exist; `None`: every one does.
    pub parameters: Option<std::collections::BTreeSet<String>>,
    /// Plain SSM parameters (the bootstrap's and the agent's outputs), by name.
    pub outputs: BTreeMap<String, String>,
    /// CloudWatch datapoints by `namespace/metric`: (time, value).
    pub datapoints: BTreeMap<String, Vec<(DateTime<Utc>, f64)>>,
    /// Values a metric-math query returns, by query id (the simulation does not do the math).
    pub expressions: BTreeMap<String, Vec<f64>>,
    /// Service revision ARN → the task definition it runs.
    pub service_revisions: BTreeMap<String, String>,
    pub stopped: Vec<StoppedTask>,
    /// Every UpdateService request: the target (with native settings) and the deployment.
    pub updates: Vec<(ServiceTarget, String, DeploymentId)>,
    /// Alarms in ALARM now, by name.
    pub firing: std::collections::BTreeSet<String>,
    /// Alarm ARN → tags.
    pub alarm_tags: BTreeMap<String, BTreeMap<String, String>>,
    pub alarms_put: Vec<crate::alarm::AlarmSpec>,
    /// Whether StopServiceDeployment finds a deployment to stop (native strategies).
    pub stoppable: bool,
    /// Backlog by source: the SQS queue name, the metric name, or the Redis keys joined by `,`.
    pub backlogs: BTreeMap<String, u64>,
    /// Input artifacts by `bucket/key`: their files.
    pub artifacts: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// What CodePipeline was told, by job id, in order.
    pub job_results: Vec<(String, crate::pipeline::job::JobResult)>,
    /// Manual approval answers: `pipeline/stage/action` and whether approved.
    pub approvals: Vec<(String, bool)>,
    /// One-off tasks by ARN, and RunTask's client tokens → ARN.
    pub tasks: BTreeMap<String, SimTask>,
    pub task_tokens: BTreeMap<String, String>,
    /// Application Auto Scaling: registered targets and their policies, by (cluster, service).
    pub autoscaling: BTreeMap<(String, String), crate::service::ScalingWant>,
    next_version: u64,
    next_deployment: u64,
}

pub struct MemoryPorts {
    pub world: Mutex<World>,
}

impl MemoryPorts {
    pub fn new(now: DateTime<Utc>) -> Self {
        MemoryPorts {
            world: Mutex::new(World {
                now,
                states: BTreeMap::new(),
                revisions: Vec::new(),
                services: BTreeMap::new(),
                images: Vec::new(),
                indexes: BTreeMap::new(),
                published: Vec::new(),
                calls: Vec::new(),
                rollout: RolloutMode::Instant,
                faults: VecDeque::new(),
                lose_response: Vec::new(),
                crash_at: None,
                hold: None,
                dead: false,
                account: "123456789012".into(),
                parameters: None,
                outputs: BTreeMap::new(),
                datapoints: BTreeMap::new(),
                expressions: BTreeMap::new(),
                service_revisions: BTreeMap::new(),
                stopped: Vec::new(),
                updates: Vec::new(),
                firing: Default::default(),
                alarm_tags: BTreeMap::new(),
                alarms_put: Vec::new(),
                stoppable: false,
                backlogs: BTreeMap::new(),
                artifacts: BTreeMap::new(),
                job_results: Vec::new(),
                approvals: Vec::new(),
                tasks: BTreeMap::new(),
                task_tokens: BTreeMap::new(),
                autoscaling: BTreeMap::new(),
                next_version: 1,
                next_deployment: 1,
            }),
        }
    }

    /// One port call: other futures get a turn first (concurrent invocations interleave at
    /// every AWS call), then the call is recorded, faults and crashes applied.
    pub(super) async fn call<T>(
        &self,
        op: &str,
        f: impl FnOnce(&mut World) -> Result<T, PortError>,
    ) -> Result<T, PortError> {
        yield_once().await;
        self.held().await;
        self.with(|w| {
            let g = w.gate(op)?;
            let v = f(w)?;
            finish(g, op, v)
        })
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut World) -> R) -> R {
        f(&mut self.world.lock().expect("world lock"))
    }

    pub fn advance(&self, by: Duration) {
        self.with(|w| w.now += by);
    }

    pub fn add_service(&self, cluster: &str, service: &str, task_definition: &str) {
        self.with(|w| {
            w.services.insert(
                (cluster.into(), service.into()),
                SimService {
                    task_definition: task_definition.into(),
                    desired: 1,
                    deployments: vec![EcsDeployment {
                        id: "ecs-svc/initial".into(),
                        status: DeploymentStatus::Primary,
                        task_definition: task_definition.into(),
                        rollout_state: Some(RolloutState::Completed),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            );
        });
    }

    pub fn state(&self, env: &str, service: &str) -> Option<ServiceState> {
        self.with(|w| {
            w.states
                .get(&ServiceState::key(env, service))
                .map(|(j, _)| serde_json::from_str(j).expect("state parses"))
        })
    }

    /// Holds the `n`-th port call from now (counting from 0) before it happens, until
    /// [`Self::release`]; calls made meanwhile by others go through.
    pub fn hold_call(&self, n: usize) {
        self.with(|w| {
            w.hold = Some(Hold {
                remaining: n,
                holding: false,
            })
        });
    }

    /// Whether a call is being held now.
    pub fn holding(&self) -> bool {
        self.with(|w| w.hold.as_ref().is_some_and(|h| h.holding))
    }

    /// Waits until a call is held, or `done` says the invocation that would make it ended
    /// first: what another invocation, run meanwhile, waits for.
    pub async fn until_held_or(&self, done: impl Fn() -> bool) {
        std::future::poll_fn(|cx| {
            if self.holding() || done() {
                std::task::Poll::Ready(())
            } else {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            }
        })
        .await
    }

    pub fn release(&self) {
        self.with(|w| w.hold = None);
    }

    /// Waits while this call is the one held.
    pub(super) async fn held(&self) {
        let mut mine = false;
        std::future::poll_fn(|cx| {
            let wait = self.with(|w| {
                let Some(h) = w.hold.as_mut() else {
                    return false;
                };
                if mine {
                    return true;
                }
                if h.holding {
                    return false;
                }
                if h.remaining == 0 {
                    h.holding = true;
                    mine = true;
                    return true;
                }
                h.remaining -= 1;
                false
            });
            if wait {
                cx.waker().wake_by_ref();
                std::task::Poll::Pending
            } else {
                std::task::Poll::Ready(())
            }
        })
        .await
    }

    pub fn revive(&self) {
        self.with(|w| {
            w.dead = false;
            w.crash_at = None;
        });
    }

    /// ECS finishes the rollout in flight on this service.
    pub fn complete(&self, cluster: &str, service: &str) {
        self.with(|w| {
            if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                s.deployments.retain(|d| d.is_primary());
                for d in &mut s.deployments {
                    d.rollout_state = Some(RolloutState::Completed);
                }
            }
        });
    }

    /// The circuit breaker fails the rollout and puts the service back on its previous revision.
    pub fn fail_with_rollback(&self, cluster: &str, service: &str, reason: &str) {
        self.with(|w| {
            let id = w.next_deployment;
            w.next_deployment += 1;
            if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                // The circuit breaker acts only on a rollout in progress, and returns to the
                // revision that was running before it.
                let in_progress = s
                    .deployments
                    .iter()
                    .any(|d| d.is_primary() && d.rollout_state == Some(RolloutState::InProgress));
                let Some(previous) = s
                    .deployments
                    .iter()
                    .find(|d| d.status == DeploymentStatus::Active)
                    .map(|d| d.task_definition.clone())
                    .filter(|_| in_progress)
                else {
                    return;
                };
                for d in &mut s.deployments {
                    if d.is_primary() {
                        d.status = DeploymentStatus::Active;
                        d.rollout_state = Some(RolloutState::Failed);
                        d.rollout_reason = Some(reason.into());
                    }
                }
                s.deployments
                    .retain(|d| d.rollout_state == Some(RolloutState::Failed));
                s.deployments.insert(
                    0,
                    EcsDeployment {
                        id: format!("ecs-svc/{id}"),
                        status: DeploymentStatus::Primary,
                        task_definition: previous.clone(),
                        rollout_state: Some(RolloutState::Completed),
                        ..Default::default()
                    },
                );
                s.task_definition = previous;
                s.events.insert(
                    0,
                    "(service web) deployment failed: tasks failed to start.".into(),
                );
            }
        });
    }

    pub fn push_image(
        &self,
        repository: &str,
        tag: &str,
        digest_fill: char,
        pushed_at: DateTime<Utc>,
    ) -> Image {
        let img = Image {
            repository: repository.into(),
            digest: digest(digest_fill),
            tag: Some(tag.into()),
            pushed_at,
        };
        self.with(|w| {
            // A tag moves to the new image, as in a mutable ECR repository.
            for i in &mut w.images {
                if i.repository == repository && i.tag.as_deref() == Some(tag) {
                    i.tag = None;
                }
            }
            w.images.push(img.clone())
        });
        img
    }

    pub fn count(&self, operation: &str) -> usize {
        self.with(|w| {
            w.calls
                .iter()
                .filter(|c| c.split('(').next() == Some(operation))
                .count()
        })
    }
}

pub fn digest(fill: char) -> Digest {
    Digest::parse(&format!("sha256:{}", fill.to_string().repeat(64))).expect("hex fill")
}

pub(super) enum Gate {
    Run,
    RunThenLose,
}

impl World {
    /// Decides what happens to a call: fault, crash, or run.
    pub(super) fn gate(&mut self, op: &str) -> Result<Gate, PortError> {
        self.calls.push(op.to_owned());
        let dead = |op: &str| PortError::new(ErrorKind::Transient, op, "the invocation crashed");
        if self.dead {
            return Err(dead(op));
        }
        if let Some((n, executed)) = self.crash_at {
            if n == 0 {
                self.dead = true;
                return if executed {
                    Ok(Gate::RunThenLose)
                } else {
                    Err(dead(op))
                };
            }
            self.crash_at = Some((n - 1, executed));
        }
        if let Some(i) = self.faults.iter().position(|(o, _)| o == op) {
            let (_, e) = self.faults.remove(i).expect("present");
            return Err(e);
        }
        if let Some(i) = self.lose_response.iter().position(|o| o == op) {
            self.lose_response.remove(i);
            return Ok(Gate::RunThenLose);
        }
        Ok(Gate::Run)
    }
}

pub(super) fn finish<T>(gate: Gate, op: &str, v: T) -> Result<T, PortError> {
    match gate {
        Gate::Run => Ok(v),
        Gate::RunThenLose => Err(PortError::new(
            ErrorKind::Transient,
            op,
            "connection reset before the response arrived",
        )),
    }
}

impl Clock for MemoryPorts {
    fn now(&self) -> DateTime<Utc> {
        self.with(|w| w.now)
    }

    /// Virtual time stands still: a pause lets the other futures of the test run, one turn
    /// per millisecond asked (a longer backoff lets more of them go first).
    async fn pause(&self, d: std::time::Duration) {
        for _ in 0..d.as_millis().max(1) {
            yield_once().await;
        }
    }
}

/// A [`ConfigSource`] over a map of file contents.
pub struct MemorySource(pub BTreeMap<String, String>);

impl ConfigSource for MemorySource {
    async fn pinned(&self) -> Result<Self, PortError> {
        Ok(MemorySource(self.0.clone()))
    }

    async fn read(&self, path: &str) -> Result<Vec<u8>, PortError> {
        self.0
            .get(path)
            .map(|s| s.as_bytes().to_vec())
            .ok_or_else(|| {
                PortError::new(
                    ErrorKind::NotFound,
                    "read",
                    format!("{path} does not exist"),
                )
            })
    }
    fn describe(&self, path: &str) -> String {
        path.to_owned()
    }
}

/// Gives other futures a turn, so that concurrent runs interleave at every port call the way
/// concurrent invocations interleave at every AWS call.
pub(super) async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}
