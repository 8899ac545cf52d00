//! In-memory ports for scenario tests: a small simulated ECS, ECR, S3 state store and SNS, with
//! virtual time, a journal of calls, and fault injection (errors, lost responses, crashes).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::config::Environment;
use crate::image::{Digest, Image};
use crate::notify::Notification;
use crate::ports::*;
use crate::state::{DeploymentId, ServiceState};
use crate::template::{Placement, RenderedTaskDefinition, TAG_DEPLOYMENT};

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
}

/// How the simulated ECS moves a rollout on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutMode {
    /// Completed by the time anyone looks (as ministack does).
    Instant,
    /// Stays IN_PROGRESS until the test calls `complete` or `fail_with_rollback`.
    Manual,
}

#[derive(Debug)]
pub struct World {
    pub now: DateTime<Utc>,
    pub states: BTreeMap<String, (String, u64)>,
    pub revisions: Vec<Revision>,
    pub services: BTreeMap<(String, String), SimService>,
    pub images: Vec<Image>,
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
                published: Vec::new(),
                calls: Vec::new(),
                rollout: RolloutMode::Instant,
                faults: VecDeque::new(),
                lose_response: Vec::new(),
                crash_at: None,
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
                next_version: 1,
                next_deployment: 1,
            }),
        }
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
                        status: "PRIMARY".into(),
                        task_definition: task_definition.into(),
                        rollout_state: Some("COMPLETED".into()),
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
                s.deployments.retain(|d| d.status == "PRIMARY");
                for d in &mut s.deployments {
                    d.rollout_state = Some("COMPLETED".into());
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
                let in_progress = s.deployments.iter().any(|d| {
                    d.status == "PRIMARY" && d.rollout_state.as_deref() == Some("IN_PROGRESS")
                });
                let Some(previous) = s
                    .deployments
                    .iter()
                    .find(|d| d.status == "ACTIVE")
                    .map(|d| d.task_definition.clone())
                    .filter(|_| in_progress)
                else {
                    return;
                };
                for d in &mut s.deployments {
                    if d.status == "PRIMARY" {
                        d.status = "ACTIVE".into();
                        d.rollout_state = Some("FAILED".into());
                        d.rollout_reason = Some(reason.into());
                    }
                }
                s.deployments
                    .retain(|d| d.rollout_state.as_deref() == Some("FAILED"));
                s.deployments.insert(
                    0,
                    EcsDeployment {
                        id: format!("ecs-svc/{id}"),
                        status: "PRIMARY".into(),
                        task_definition: previous.clone(),
                        rollout_state: Some("COMPLETED".into()),
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

enum Gate {
    Run,
    RunThenLose,
}

impl World {
    /// Decides what happens to a call: fault, crash, or run.
    fn gate(&mut self, op: &str) -> Result<Gate, PortError> {
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

fn finish<T>(gate: Gate, op: &str, v: T) -> Result<T, PortError> {
    match gate {
        Gate::Run => Ok(v),
        Gate::RunThenLose => Err(PortError::new(
            ErrorKind::Transient,
            op,
            "connection reset before the response arrived",
        )),
    }
}

impl StateStore for MemoryPorts {
    async fn load(&self, key: &str) -> Result<Option<(ServiceState, Version)>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("GetObject")?;
            let v = w.states.get(key).map(|(j, v)| {
                (
                    serde_json::from_str(j).expect("state parses"),
                    Version(v.to_string()),
                )
            });
            finish(g, "GetObject", v)
        })
    }

    async fn save(
        &self,
        key: &str,
        state: &ServiceState,
        expected: Option<&Version>,
    ) -> Result<Version, SaveError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("PutObject")?;
            let current = w.states.get(key).map(|(_, v)| v.to_string());
            if current.as_deref() != expected.map(|v| v.0.as_str()) {
                return Err(SaveError::Conflict);
            }
            let v = w.next_version;
            w.next_version += 1;
            w.states.insert(
                key.to_owned(),
                (serde_json::to_string(state).expect("serialises"), v),
            );
            Ok(finish(g, "PutObject", Version(v.to_string()))?)
        })
    }
}

impl TaskDefinitions for MemoryPorts {
    async fn register(&self, td: &RenderedTaskDefinition) -> Result<String, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("RegisterTaskDefinition")?;
            let n = w.revisions.iter().filter(|r| r.family == td.family).count() + 1;
            let arn = format!(
                "arn:aws:ecs:us-east-1:{}:task-definition/{}:{n}",
                w.account, td.family
            );
            w.revisions.push(Revision {
                arn: arn.clone(),
                family: td.family.clone(),
                body: td.body.clone(),
            });
            finish(g, "RegisterTaskDefinition", arn)
        })
    }

    async fn find_by_deployment(
        &self,
        family: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("ListTaskDefinitions")?;
            let found = w
                .revisions
                .iter()
                .rev()
                .find(|r| {
                    r.family == family
                        && r.body["tags"].as_array().is_some_and(|t| {
                            t.iter().any(|t| {
                                t["key"] == TAG_DEPLOYMENT && t["value"] == deployment.0.as_str()
                            })
                        })
                })
                .map(|r| r.arn.clone());
            finish(g, "ListTaskDefinitions", found)
        })
    }
}

impl Services for MemoryPorts {
    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("UpdateService")?;
            w.updates.push((
                target.clone(),
                task_definition_arn.to_owned(),
                deployment.clone(),
            ));
            let id = w.next_deployment;
            w.next_deployment += 1;
            let instant = w.rollout == RolloutMode::Instant;
            let s = w
                .services
                .get_mut(&(target.cluster.clone(), target.service.clone()))
                .ok_or_else(|| {
                    PortError::new(
                        ErrorKind::NotFound,
                        "UpdateService",
                        format!(
                            "service {} not found in cluster {}",
                            target.service, target.cluster
                        ),
                    )
                })?;
            s.updates += 1;
            for d in &mut s.deployments {
                if d.status == "PRIMARY" {
                    d.status = "ACTIVE".into();
                }
            }
            let ecs_id = format!("ecs-svc/{id}");
            s.deployments.insert(
                0,
                EcsDeployment {
                    id: ecs_id.clone(),
                    status: "PRIMARY".into(),
                    task_definition: task_definition_arn.into(),
                    rollout_state: Some(if instant { "COMPLETED" } else { "IN_PROGRESS" }.into()),
                    ..Default::default()
                },
            );
            if instant {
                s.deployments.retain(|d| d.status == "PRIMARY");
            }
            s.task_definition = task_definition_arn.into();
            finish(g, "UpdateService", Some(ecs_id))
        })
    }

    async fn describe(&self, cluster: &str, service: &str) -> Result<ServiceSnapshot, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeServices")?;
            let s = w
                .services
                .get(&(cluster.into(), service.into()))
                .ok_or_else(|| {
                    PortError::new(ErrorKind::NotFound, "DescribeServices", "service not found")
                })?;
            let snap = ServiceSnapshot {
                task_definition: s.task_definition.clone(),
                desired_count: s.desired as i32,
                running_count: s.desired as i32,
                deployments: s.deployments.clone(),
                events: s.events.clone(),
            };
            finish(g, "DescribeServices", snap)
        })
    }

    async fn revision_task_definition(
        &self,
        revision_arn: &str,
    ) -> Result<Option<String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeServiceRevisions")?;
            let td = w.service_revisions.get(revision_arn).cloned();
            finish(g, "DescribeServiceRevisions", td)
        })
    }

    async fn set_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("UpdateService")?;
            if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                s.desired = desired;
            }
            finish(g, "UpdateService", ())
        })
    }

    async fn stop_rollout(&self, cluster: &str, service: &str) -> Result<bool, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("StopServiceDeployment")?;
            let stopped = w.stoppable;
            if stopped {
                // ECS puts the service back on the revision before the one in progress.
                if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                    let previous = s
                        .deployments
                        .iter()
                        .find(|d| d.status == "ACTIVE")
                        .map(|d| d.task_definition.clone());
                    if let Some(td) = previous {
                        s.deployments.retain(|d| d.task_definition == td);
                        for d in &mut s.deployments {
                            d.status = "PRIMARY".into();
                            d.rollout_state = Some("COMPLETED".into());
                        }
                        s.task_definition = td;
                    }
                }
            }
            finish(g, "StopServiceDeployment", stopped)
        })
    }

    async fn stopped_tasks(
        &self,
        _cluster: &str,
        _service: &str,
        _task_definition_arn: &str,
    ) -> Result<Vec<StoppedTask>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("ListTasks")?;
            let stopped = w.stopped.clone();
            finish(g, "ListTasks", stopped)
        })
    }
}

impl Backlogs for MemoryPorts {
    async fn backlog(&self, source: &crate::scaling::BacklogSource) -> Result<u64, PortError> {
        use crate::scaling::BacklogSource;
        yield_once().await;
        let key = match source {
            BacklogSource::Sqs { queue, .. } => queue.clone(),
            BacklogSource::Metric { metric, .. } => metric.clone(),
            BacklogSource::Redis { keys, .. } => keys.join(","),
        };
        self.with(|w| {
            let g = w.gate("Backlog")?;
            let n = w.backlogs.get(&key).copied().ok_or_else(|| {
                PortError::new(ErrorKind::NotFound, "Backlog", format!("no queue {key}"))
            })?;
            finish(g, "Backlog", n)
        })
    }
}

impl Alarms for MemoryPorts {
    async fn firing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeAlarms")?;
            let firing = names
                .iter()
                .filter(|n| w.firing.contains(*n))
                .cloned()
                .collect();
            finish(g, "DescribeAlarms", firing)
        })
    }

    async fn alarm_tags(&self, alarm_arn: &str) -> Result<BTreeMap<String, String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("ListTagsForResource")?;
            let tags = w.alarm_tags.get(alarm_arn).cloned().unwrap_or_default();
            finish(g, "ListTagsForResource", tags)
        })
    }

    async fn put_alarm(&self, spec: &crate::alarm::AlarmSpec) -> Result<(), PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("PutMetricAlarm")?;
            w.alarms_put.retain(|a| a.name != spec.name);
            w.alarms_put.push(spec.clone());
            finish(g, "PutMetricAlarm", ())
        })
    }
}

impl Metrics for MemoryPorts {
    async fn measure(
        &self,
        queries: &[crate::strategy::MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Series>, PortError> {
        use crate::strategy::QueryKind;
        yield_once().await;
        self.with(|w| {
            let g = w.gate("GetMetricData")?;
            let series = queries
                .iter()
                .map(|q| match &q.kind {
                    QueryKind::Metric {
                        namespace, metric, ..
                    } => Series {
                        id: q.id.clone(),
                        values: w
                            .datapoints
                            .get(&format!("{namespace}/{metric}"))
                            .map(|pts| {
                                pts.iter()
                                    .filter(|(t, _)| *t >= start && *t < end)
                                    .map(|(_, v)| *v)
                                    .collect()
                            })
                            .unwrap_or_default(),
                        problem: None,
                    },
                    QueryKind::Expression { .. } => match w.expressions.get(&q.id) {
                        Some(v) => Series {
                            id: q.id.clone(),
                            values: v.clone(),
                            problem: None,
                        },
                        None => Series {
                            id: q.id.clone(),
                            values: Vec::new(),
                            problem: Some("InternalError: expression not evaluated".into()),
                        },
                    },
                })
                .collect();
            finish(g, "GetMetricData", series)
        })
    }
}

impl Images for MemoryPorts {
    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Image>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("BatchGetImage")?;
            let found = w
                .images
                .iter()
                .find(|i| i.repository == repository && i.tag.as_deref() == Some(tag))
                .cloned();
            finish(g, "BatchGetImage", found)
        })
    }

    async fn by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Image>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeImages")?;
            let found = w
                .images
                .iter()
                .find(|i| i.repository == repository && &i.digest == digest)
                .cloned();
            finish(g, "DescribeImages", found)
        })
    }

    async fn tagged(&self, repository: &str) -> Result<Vec<Image>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeImages")?;
            let found = w
                .images
                .iter()
                .filter(|i| i.repository == repository && i.tag.is_some())
                .cloned()
                .collect();
            finish(g, "DescribeImages", found)
        })
    }
}

impl Notifier for MemoryPorts {
    async fn publish(&self, _topic: &str, n: &Notification) -> Result<(), PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("Publish")?;
            w.published.push(n.clone());
            finish(g, "Publish", ())
        })
    }
}

impl Parameters for MemoryPorts {
    async fn missing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("DescribeParameters")?;
            let missing = match &w.parameters {
                None => Vec::new(),
                Some(known) => names
                    .iter()
                    .filter(|n| !known.contains(*n))
                    .cloned()
                    .collect(),
            };
            finish(g, "DescribeParameters", missing)
        })
    }

    async fn outputs(&self, names: &[String]) -> Result<BTreeMap<String, String>, PortError> {
        yield_once().await;
        self.with(|w| {
            let g = w.gate("GetParameters")?;
            let found = names
                .iter()
                .filter_map(|n| w.outputs.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            finish(g, "GetParameters", found)
        })
    }
}

impl Placements for MemoryPorts {
    async fn placement(&self, environment: &Environment) -> Result<Placement, PortError> {
        yield_once().await;
        self.with(|w| {
            Ok(Placement {
                account: environment
                    .account_id
                    .clone()
                    .unwrap_or_else(|| w.account.clone()),
                region: "us-east-1".into(),
            })
        })
    }
}

impl Clock for MemoryPorts {
    fn now(&self) -> DateTime<Utc> {
        self.with(|w| w.now)
    }
}

/// A [`ConfigSource`] over a map of file contents.
pub struct MemorySource(pub BTreeMap<String, String>);

impl ConfigSource for MemorySource {
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
async fn yield_once() {
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
