//! The rest of the simulated account: backlogs, CloudWatch, ECR, SNS, SSM, placement, and
//! CodePipeline's job API.

use std::collections::BTreeMap;

use super::{finish, yield_once, MemoryPorts};
use crate::ports::*;
use chrono::{DateTime, Utc};

use crate::config::Environment;
use crate::image::{Digest, Image};
use crate::notify::Notification;
use crate::pipeline::job::JobResult;
use crate::secrets::Redacted;
use crate::template::Placement;

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
        self.call("DescribeAlarms", |w| {
            let firing = names
                .iter()
                .filter(|n| w.firing.contains(*n))
                .cloned()
                .collect();
            Ok(firing)
        })
        .await
    }

    async fn alarm_tags(&self, alarm_arn: &str) -> Result<BTreeMap<String, String>, PortError> {
        self.call("ListTagsForResource", |w| {
            let tags = w.alarm_tags.get(alarm_arn).cloned().unwrap_or_default();
            Ok(tags)
        })
        .await
    }

    async fn put_alarm(&self, spec: &crate::alarm::AlarmSpec) -> Result<(), PortError> {
        self.call("PutMetricAlarm", |w| {
            w.alarms_put.retain(|a| a.name != spec.name);
            w.alarms_put.push(spec.clone());
            Ok(())
        })
        .await
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
        self.call("GetMetricData", |w| {
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
            Ok(series)
        })
        .await
    }
}

impl Images for MemoryPorts {
    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Image>, PortError> {
        self.call("BatchGetImage", |w| {
            let found = w
                .images
                .iter()
                .find(|i| i.repository == repository && i.tag.as_deref() == Some(tag))
                .cloned();
            Ok(found)
        })
        .await
    }

    async fn by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Image>, PortError> {
        self.call("DescribeImages", |w| {
            let found = w
                .images
                .iter()
                .find(|i| i.repository == repository && &i.digest == digest)
                .cloned();
            Ok(found)
        })
        .await
    }

    async fn tagged(&self, repository: &str) -> Result<Vec<Image>, PortError> {
        self.call("DescribeImages", |w| {
            let found = w
                .images
                .iter()
                .filter(|i| i.repository == repository && i.tag.is_some())
                .cloned()
                .collect();
            Ok(found)
        })
        .await
    }

    async fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
        _resolved: bool,
    ) -> Result<Option<crate::image::Manifest>, PortError> {
        self.call("BatchGetImage", |w| {
            let found =
                (w.images.iter()).any(|i| i.repository == repository && &i.digest == digest);
            Ok(found.then(|| crate::image::Manifest {
                architectures: w.indexes.get(digest).cloned(),
            }))
        })
        .await
    }

    async fn protect(&self, image: &Image, tag: &str) -> Result<(), PortError> {
        let found = self.by_digest(&image.repository, &image.digest).await?;
        let Some(stored) = found else {
            let why = format!(
                "ImageNotFoundException: {} is not in the repository",
                image.digest
            );
            return Err(PortError::new(ErrorKind::NotFound, "BatchGetImage", why));
        };
        self.call("PutImage", |w| {
            let same =
                |i: &&Image| i.repository == image.repository && i.tag.as_deref() == Some(tag);
            match w.images.iter().find(same) {
                Some(i) if i.digest == image.digest => return Ok(()),
                Some(_) => {
                    let why =
                        format!("ImageTagAlreadyExistsException: tag {tag} names another image");
                    return Err(PortError::new(ErrorKind::Invalid, "PutImage", why));
                }
                None => {}
            }
            // The tag on the stored image: its push time is the image's, not this call's.
            w.images.push(Image {
                tag: Some(tag.to_owned()),
                ..stored
            });
            Ok(())
        })
        .await
    }

    async fn unprotect(&self, repository: &str, tag: &str) -> Result<(), PortError> {
        self.call("BatchDeleteImage", |w| {
            w.images
                .retain(|i| !(i.repository == repository && i.tag.as_deref() == Some(tag)));
            Ok(())
        })
        .await
    }
}

impl Notifier for MemoryPorts {
    async fn publish(&self, _topic: &str, n: &Notification) -> Result<(), PortError> {
        self.call("Publish", |w| {
            w.published.push(n.clone());
            Ok(())
        })
        .await
    }
}

impl Parameters for MemoryPorts {
    async fn missing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        self.call("DescribeParameters", |w| {
            let missing = match &w.parameters {
                None => Vec::new(),
                Some(known) => names
                    .iter()
                    .filter(|n| !known.contains(*n))
                    .cloned()
                    .collect(),
            };
            Ok(missing)
        })
        .await
    }

    async fn outputs(&self, names: &[String]) -> Result<BTreeMap<String, String>, PortError> {
        self.call("GetParameters", |w| {
            let found = names
                .iter()
                .filter_map(|n| w.outputs.get(n).map(|v| (n.clone(), v.clone())))
                .collect();
            Ok(found)
        })
        .await
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

impl Pipelines for MemoryPorts {
    async fn report_job(&self, job_id: &str, result: &JobResult) -> Result<(), PortError> {
        self.call("PutJobResult", |w| {
            w.job_results.push((job_id.to_owned(), result.clone()));
            Ok(())
        })
        .await
    }

    async fn artifact_files(
        &self,
        location: &ArtifactLocation,
        _credentials: &Redacted<ArtifactCredentials>,
    ) -> Result<BTreeMap<String, Vec<u8>>, PortError> {
        yield_once().await;
        let key = format!("{}/{}", location.bucket_name, location.object_key);
        self.with(|w| {
            let g = w.gate("GetObject")?;
            let files = w.artifacts.get(&key).cloned().ok_or_else(|| {
                PortError::new(
                    ErrorKind::NotFound,
                    "GetObject",
                    format!("{key}: no such key"),
                )
            })?;
            finish(g, "GetObject", files)
        })
    }

    async fn answer_approval(
        &self,
        pipeline: &str,
        stage: &str,
        action: &str,
        approved: bool,
        _summary: &str,
    ) -> Result<(), PortError> {
        self.call("PutApprovalResult", |w| {
            w.approvals
                .push((format!("{pipeline}/{stage}/{action}"), approved));
            Ok(())
        })
        .await
    }
}
