//! CloudWatch: guard and rollback alarms (state and tags), metric checks (GetMetricData).

use chrono::{DateTime, Utc};
use harbormaster_core::ports::*;
use harbormaster_core::strategy::{MetricQuery, QueryKind};

use crate::errors::classify;

use super::*;

impl Alarms for AwsPorts {
    async fn firing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        let mut firing = Vec::new();
        for chunk in names.chunks(100) {
            let out = self
                .clients
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(chunk.to_vec()))
                .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
                .send()
                .await
                .map_err(|e| classify("DescribeAlarms", &e))?;
            firing.extend(
                out.metric_alarms()
                    .iter()
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
            firing.extend(
                out.composite_alarms()
                    .iter()
                    .filter_map(|a| a.alarm_name().map(str::to_owned)),
            );
        }
        Ok(firing)
    }

    async fn alarm_tags(
        &self,
        alarm_arn: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, PortError> {
        let out = self
            .clients
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(alarm_arn)
            .send()
            .await
            .map_err(|e| classify("ListTagsForResource", &e))?;
        Ok(out
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?.to_owned(), t.value()?.to_owned())))
            .collect())
    }

    async fn put_alarm(&self, spec: &harbormaster_core::alarm::AlarmSpec) -> Result<(), PortError> {
        use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
        let mut req = self
            .clients
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&spec.name)
            .alarm_description(&spec.description)
            .namespace(&spec.namespace)
            .metric_name(&spec.metric)
            .statistic(Statistic::from(spec.statistic.as_str()))
            .period(spec.period_seconds as i32)
            .evaluation_periods(spec.evaluation_periods as i32)
            .threshold(spec.threshold)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            // No traffic is not an error: a quiet service must not roll back.
            .treat_missing_data("notBreaching");
        for (k, v) in &spec.dimensions {
            req = req.dimensions(Dimension::builder().name(k).value(v).build());
        }
        for (k, v) in &spec.tags {
            req = req.tags(Tag::builder().key(k).value(v).build());
        }
        req.send()
            .await
            .map_err(|e| classify("PutMetricAlarm", &e))?;
        Ok(())
    }
}

impl Metrics for AwsPorts {
    async fn measure(
        &self,
        queries: &[MetricQuery],
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Series>, PortError> {
        use aws_sdk_cloudwatch::types::{
            Dimension, Metric, MetricDataQuery, MetricStat, StatusCode,
        };
        let mut req = self
            .clients
            .cloudwatch
            .get_metric_data()
            .start_time(aws_smithy_types::DateTime::from_secs(start.timestamp()))
            .end_time(aws_smithy_types::DateTime::from_secs(end.timestamp()));
        for q in queries {
            let mut b = MetricDataQuery::builder().id(&q.id);
            b = match &q.kind {
                QueryKind::Metric {
                    namespace,
                    metric,
                    dimensions,
                    stat,
                    period_seconds,
                } => b.metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(namespace)
                                .metric_name(metric)
                                .set_dimensions(Some(
                                    dimensions
                                        .iter()
                                        .map(|(k, v)| Dimension::builder().name(k).value(v).build())
                                        .collect(),
                                ))
                                .build(),
                        )
                        .period(*period_seconds as i32)
                        .stat(stat)
                        .build(),
                ),
                QueryKind::Expression {
                    expression,
                    period_seconds,
                } => b.expression(expression).period(*period_seconds as i32),
            };
            // Every query returns data: a check may compare any of them.
            req = req.metric_data_queries(b.return_data(true).build());
        }
        let mut series: Vec<Series> = Vec::new();
        let mut pages = req.into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("GetMetricData", &e))?;
            for r in page.metric_data_results() {
                let id = r.id().unwrap_or_default().to_owned();
                let problem = match r.status_code() {
                    Some(StatusCode::InternalError) | Some(StatusCode::Forbidden) => Some(format!(
                        "CloudWatch: {}",
                        r.messages()
                            .iter()
                            .filter_map(|m| m.value())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                    _ => None,
                };
                match series.iter_mut().find(|s| s.id == id) {
                    Some(s) => s.values.extend_from_slice(r.values()),
                    None => series.push(Series {
                        id,
                        values: r.values().to_vec(),
                        problem,
                    }),
                }
            }
        }
        Ok(series)
    }
}
