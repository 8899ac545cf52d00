//! A worker's backlog: an SQS queue's depth, a CloudWatch metric, or Dramatiq's Redis lists.

use chrono::Utc;
use harbormaster_core::ports::*;
use harbormaster_core::scaling::{BacklogSource, RedisUrl};
use harbormaster_core::secrets::Redacted;
use harbormaster_core::strategy::{MetricQuery, QueryKind};

use crate::errors::classify;

use super::*;

impl Backlogs for AwsPorts {
    async fn backlog(&self, source: &BacklogSource) -> Result<u64, PortError> {
        match source {
            BacklogSource::Sqs { queue, in_flight } => self.sqs_backlog(queue, *in_flight).await,
            BacklogSource::Metric {
                namespace,
                metric,
                dimensions,
                stat,
            } => {
                let query = MetricQuery {
                    id: "backlog".into(),
                    kind: QueryKind::Metric {
                        namespace: namespace.clone(),
                        metric: metric.clone(),
                        dimensions: dimensions.clone(),
                        stat: stat.clone(),
                        period_seconds: 60,
                    },
                };
                let now = Utc::now();
                let series = self
                    .measure(&[query], now - chrono::Duration::minutes(5), now)
                    .await?;
                // GetMetricData answers newest first: the latest datapoint is the backlog now.
                let s = series.into_iter().next().unwrap_or_default();
                match (s.problem, s.values.first()) {
                    (Some(p), _) => Err(PortError::new(ErrorKind::Transient, "GetMetricData", p)),
                    (None, Some(v)) => Ok(v.max(0.0).round() as u64),
                    (None, None) => Err(PortError::new(
                        ErrorKind::NotFound,
                        "GetMetricData",
                        format!("no datapoint of {namespace}/{metric} in the last 5 minutes"),
                    )),
                }
            }
            BacklogSource::Redis { url, keys } => {
                let url = match url {
                    RedisUrl::Plain(u) => Redacted::new(u.clone()),
                    RedisUrl::Parameter(name) => self.secret(name).await?,
                };
                redis_backlog(&url, keys).await
            }
        }
    }
}

impl AwsPorts {
    async fn sqs_backlog(&self, queue: &str, in_flight: bool) -> Result<u64, PortError> {
        use aws_sdk_sqs::types::QueueAttributeName as A;
        let url = if queue.starts_with("https://") || queue.starts_with("http://") {
            queue.to_owned()
        } else {
            self.clients
                .sqs
                .get_queue_url()
                .queue_name(queue)
                .send()
                .await
                .map_err(|e| classify("GetQueueUrl", &e))?
                .queue_url
                .unwrap_or_default()
        };
        let out = self
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(A::ApproximateNumberOfMessages)
            .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .map_err(|e| classify("GetQueueAttributes", &e))?;
        let attrs = out.attributes.unwrap_or_default();
        let n = |a: A| {
            attrs
                .get(&a)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(n(A::ApproximateNumberOfMessages)
            + if in_flight {
                n(A::ApproximateNumberOfMessagesNotVisible)
            } else {
                0
            })
    }

    /// A SecureString's value, decrypted, held redacted: only the Redis connection reads it.
    async fn secret(&self, name: &str) -> Result<Redacted<String>, PortError> {
        let out = self
            .clients
            .ssm
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
            .map_err(|e| classify("GetParameter", &e))?;
        out.parameter
            .and_then(|p| p.value)
            .map(Redacted::new)
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "GetParameter", name.to_owned()))
    }
}

/// LLEN of each list, summed. Errors never carry the URL (it may hold a password).
async fn redis_backlog(url: &Redacted<String>, keys: &[String]) -> Result<u64, PortError> {
    let fail = |e: redis::RedisError| {
        let kind = if e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
            ErrorKind::Transient
        } else {
            ErrorKind::Invalid
        };
        // redis's Display names the kind, its description and the detail; the URL is
        // scrubbed in case a detail ever quotes it.
        let words = e.to_string().replace(url.expose().as_str(), "<redis url>");
        PortError::new(kind, "Redis LLEN", words)
    };
    let client = redis::Client::open(url.expose().as_str()).map_err(fail)?;
    let mut con = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        client.get_multiplexed_async_connection(),
    )
    .await
    .map_err(|_| PortError::new(ErrorKind::Transient, "Redis LLEN", "connecting timed out"))?
    .map_err(fail)?;
    let mut total = 0u64;
    for k in keys {
        let n: u64 = redis::cmd("LLEN")
            .arg(k)
            .query_async(&mut con)
            .await
            .map_err(fail)?;
        total += n;
    }
    Ok(total)
}
