//! The simulated ECS and S3 state store: revisions, services and their rollouts, documents
//! with compare-and-swap.

use super::{finish, yield_once, MemoryPorts, Revision, RolloutMode, SimService};
use crate::ports::*;
use crate::state::{DeploymentId, ServiceState};
use crate::template::{RenderedTaskDefinition, TAG_DEPLOYMENT};

impl StateStore for MemoryPorts {
    async fn remove(&self, key: &str) -> Result<(), PortError> {
        self.call("DeleteObject", |w| {
            w.states.remove(key);
            Ok(())
        })
        .await
    }

    async fn load(&self, key: &str) -> Result<Option<(ServiceState, Version)>, PortError> {
        self.call("GetObject", |w| match w.states.get(key) {
            None => Ok(None),
            Some((j, v)) => match ServiceState::decode(j.as_bytes()) {
                Ok(s) => Ok(Some((s, Version(v.to_string())))),
                Err(e) => Err(PortError::new(
                    ErrorKind::Invalid,
                    "GetObject",
                    format!("{key}: {e}"),
                )),
            },
        })
        .await
    }

    async fn save(
        &self,
        key: &str,
        state: &ServiceState,
        expected: Option<&Version>,
    ) -> Result<Version, SaveError> {
        yield_once().await;
        self.held().await;
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
                (String::from_utf8(state.encode()).expect("JSON is UTF-8"), v),
            );
            Ok(finish(g, "PutObject", Version(v.to_string()))?)
        })
    }
}

impl TaskDefinitions for MemoryPorts {
    async fn register(&self, td: &RenderedTaskDefinition) -> Result<String, PortError> {
        self.call("RegisterTaskDefinition", |w| {
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
            Ok(arn)
        })
        .await
    }

    async fn describe_body(&self, arn: &str) -> Result<serde_json::Value, PortError> {
        self.call("DescribeTaskDefinition", |w| {
            let r = (w.revisions.iter().find(|r| r.arn == arn)).ok_or_else(|| {
                PortError::new(ErrorKind::NotFound, "DescribeTaskDefinition", arn)
            })?;
            // As ECS answers: the input, plus read-only fields and defaults it fills in.
            let mut td = r.body.clone();
            let tags = td.as_object_mut().and_then(|o| o.remove("tags"));
            td["taskDefinitionArn"] = serde_json::json!(arn);
            td["status"] = serde_json::json!("ACTIVE");
            if let Some(cs) = td["containerDefinitions"].as_array_mut() {
                for c in cs {
                    c["cpu"] = c.get("cpu").cloned().unwrap_or(serde_json::json!(0));
                    c["mountPoints"] = serde_json::json!([]);
                }
            }
            Ok(serde_json::json!({"taskDefinition": td, "tags": tags.unwrap_or_default()}))
        })
        .await
    }

    async fn find_by_deployment(
        &self,
        family: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        self.call("ListTaskDefinitions", |w| {
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
            Ok(found)
        })
        .await
    }
}

impl Services for MemoryPorts {
    async fn create(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
        client_token: &str,
    ) -> Result<Option<String>, PortError> {
        self.call("CreateService", |w| {
            let key = (target.cluster.clone(), target.service.clone());
            if let Some(s) = w.services.get(&key) {
                // As ECS: the same token finds the service; an active one by the name is refused.
                match &s.created {
                    Some((_, token)) if token == client_token => {
                        return Ok(s.deployments.first().map(|d| d.id.clone()));
                    }
                    _ if s.status != ServiceStatus::Inactive => {
                        return Err(PortError::new(
                            ErrorKind::Invalid,
                            "CreateService",
                            "Creation of service was not idempotent.",
                        ));
                    }
                    _ => {}
                }
            }
            let id = format!("ecs-svc/{}", w.next_deployment);
            w.next_deployment += 1;
            w.updates.push((
                target.clone(),
                task_definition_arn.to_owned(),
                deployment.clone(),
            ));
            w.services.insert(
                key,
                SimService {
                    task_definition: task_definition_arn.into(),
                    desired: target.settings.initial_count,
                    deployments: vec![EcsDeployment {
                        id: id.clone(),
                        status: DeploymentStatus::Primary,
                        task_definition: task_definition_arn.into(),
                        rollout_state: Some(RolloutState::Completed),
                        ..Default::default()
                    }],
                    created: Some((target.clone(), client_token.to_owned())),
                    network: target.settings.network.clone(),
                    capacity: target.settings.capacity.clone(),
                    ..Default::default()
                },
            );
            Ok(Some(id))
        })
        .await
    }

    async fn owned(&self, cluster: &str) -> Result<Vec<OwnedService>, PortError> {
        self.call("ListServices", |w| {
            let owned = w
                .services
                .iter()
                .filter(|((c, _), s)| c == cluster && s.status == ServiceStatus::Active)
                .filter_map(|((_, name), s)| {
                    let (target, _) = s.created.as_ref()?;
                    let tag = |key: &str| {
                        let found = target.settings.tags.iter().find(|(k, _)| k == key);
                        found.map(|(_, v)| v.clone())
                    };
                    Some(OwnedService {
                        name: name.clone(),
                        service: target.name.clone(),
                        project: tag("harbormaster:project"),
                        environment: tag("harbormaster:environment"),
                    })
                })
                .collect();
            Ok(owned)
        })
        .await
    }

    async fn delete(&self, cluster: &str, service: &str) -> Result<(), PortError> {
        self.call("DeleteService", |w| {
            let s = w
                .services
                .get_mut(&(cluster.into(), service.into()))
                .ok_or_else(|| PortError::new(ErrorKind::NotFound, "DeleteService", service))?;
            s.status = ServiceStatus::Inactive;
            Ok(())
        })
        .await
    }

    async fn update(
        &self,
        target: &ServiceTarget,
        task_definition_arn: &str,
        deployment: &DeploymentId,
    ) -> Result<Option<String>, PortError> {
        self.call("UpdateService", |w| {
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
            if s.status != ServiceStatus::Active {
                // ServiceNotActiveException, which the adapter classifies as not found.
                return Err(PortError::new(
                    ErrorKind::NotFound,
                    "UpdateService",
                    "ServiceNotActiveException: Service was not ACTIVE.",
                ));
            }
            take_strategy(s, target)?;
            s.updates += 1;
            for d in &mut s.deployments {
                if d.is_primary() {
                    d.status = DeploymentStatus::Active;
                }
            }
            let ecs_id = format!("ecs-svc/{id}");
            s.deployments.insert(
                0,
                EcsDeployment {
                    id: ecs_id.clone(),
                    status: DeploymentStatus::Primary,
                    task_definition: task_definition_arn.into(),
                    rollout_state: Some(if instant {
                        RolloutState::Completed
                    } else {
                        RolloutState::InProgress
                    }),
                    ..Default::default()
                },
            );
            if instant {
                s.deployments.retain(|d| d.is_primary());
            }
            s.task_definition = task_definition_arn.into();
            // As ECS: the count UpdateService names, the service's own when it names none.
            if let Some(n) = target.settings.desired_count {
                s.desired = n;
            }
            Ok(Some(ecs_id))
        })
        .await
    }

    async fn describe(&self, cluster: &str, service: &str) -> Result<ServiceSnapshot, PortError> {
        self.call("DescribeServices", |w| {
            let s = w
                .services
                .get(&(cluster.into(), service.into()))
                .ok_or_else(|| {
                    PortError::new(ErrorKind::NotFound, "DescribeServices", "service not found")
                })?;
            // ECS keeps what the last CreateService or UpdateService set.
            let last = (w.updates.iter().rev())
                .map(|(t, _, _)| t)
                .find(|t| t.cluster == cluster && t.service == service)
                .or(s.created.as_ref().map(|(t, _)| t));
            let mut settings = last
                .map(crate::ports::LiveSettings::sent)
                .unwrap_or_default();
            if settings.network.is_none() {
                settings.network = s.network.clone();
            }
            let snap = ServiceSnapshot {
                status: s.status,
                network: s.network.clone(),
                task_definition: s.task_definition.clone(),
                desired_count: s.desired as i32,
                running_count: s.desired as i32,
                pending_count: 0,
                deployments: s.deployments.clone(),
                events: s.events.clone(),
                settings,
            };
            Ok(snap)
        })
        .await
    }

    async fn revision_task_definition(
        &self,
        revision_arn: &str,
    ) -> Result<Option<String>, PortError> {
        self.call("DescribeServiceRevisions", |w| {
            let td = w.service_revisions.get(revision_arn).cloned();
            Ok(td)
        })
        .await
    }

    async fn set_desired(
        &self,
        cluster: &str,
        service: &str,
        desired: u32,
    ) -> Result<(), PortError> {
        self.call("UpdateService", |w| {
            if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                s.desired = desired;
            }
            Ok(())
        })
        .await
    }

    async fn stop_rollout(
        &self,
        cluster: &str,
        service: &str,
        task_definition_arn: &str,
    ) -> Result<bool, PortError> {
        self.call("StopServiceDeployment", |w| {
            // Only the deployment rolling out that revision (the primary one, in progress).
            let rolling_out = (w.services.get(&(cluster.into(), service.into())))
                .and_then(|s| s.deployments.iter().find(|d| d.is_primary()))
                .is_some_and(|d| d.task_definition == task_definition_arn);
            let stopped = w.stoppable && rolling_out;
            if stopped {
                // ECS puts the service back on the revision before the one in progress.
                if let Some(s) = w.services.get_mut(&(cluster.into(), service.into())) {
                    let previous = s
                        .deployments
                        .iter()
                        .find(|d| d.status == DeploymentStatus::Active)
                        .map(|d| d.task_definition.clone());
                    if let Some(td) = previous {
                        s.deployments.retain(|d| d.task_definition == td);
                        for d in &mut s.deployments {
                            d.status = DeploymentStatus::Primary;
                            d.rollout_state = Some(RolloutState::Completed);
                        }
                        s.task_definition = td;
                    }
                }
            }
            Ok(stopped)
        })
        .await
    }

    async fn stopped_tasks(
        &self,
        _cluster: &str,
        _service: &str,
        _task_definition_arn: &str,
    ) -> Result<Vec<StoppedTask>, PortError> {
        self.call("ListTasks", |w| {
            let stopped = w.stopped.clone();
            Ok(stopped)
        })
        .await
    }
}

/// The strategy an UpdateService sends, taken as ECS takes it. UpdateService API reference,
/// capacityProviderStrategy: a service's strategy (or a move from its launch type to one)
/// changes only with a new deployment forced; ECS refuses the request otherwise.
fn take_strategy(s: &mut SimService, target: &ServiceTarget) -> Result<(), PortError> {
    let strategy = &target.settings.capacity;
    if strategy.is_empty() {
        return Ok(());
    }
    if *strategy != s.capacity && !target.settings.force_new_deployment {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "UpdateService",
            "InvalidParameterException: When switching the capacity provider strategy on a service, you must force a new deployment.",
        ));
    }
    s.capacity = strategy.clone();
    Ok(())
}
