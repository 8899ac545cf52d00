//! Application Auto Scaling for ECS services: the scalable target (`service/<cluster>/<name>`,
//! `ecs:service:DesiredCount`) and its target-tracking policies, read and changed one step at
//! a time as the core plans them.

use aws_sdk_applicationautoscaling::types::{
    MetricType, PolicyType, PredefinedMetricSpecification, ScalableDimension, ServiceNamespace,
    TargetTrackingScalingPolicyConfiguration,
};
use harbormaster_core::ports::*;
use harbormaster_core::service::{ScalingStep, ScalingWant, TrackingPolicy};

use crate::errors::classify;

use super::*;

fn resource_id(cluster: &str, service: &str) -> String {
    format!("service/{cluster}/{service}")
}

const DIMENSION: ScalableDimension = ScalableDimension::EcsServiceDesiredCount;

impl Autoscaler for AwsPorts {
    async fn scaling(
        &self,
        cluster: &str,
        service: &str,
    ) -> Result<Option<ScalingWant>, PortError> {
        let id = resource_id(cluster, service);
        let c = &self.clients.autoscaling;
        let targets = c
            .describe_scalable_targets()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_ids(&id)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(|e| classify("DescribeScalableTargets", &e))?;
        let Some(t) = targets.scalable_targets().first() else {
            return Ok(None);
        };
        let policies = c
            .describe_scaling_policies()
            .service_namespace(ServiceNamespace::Ecs)
            .resource_id(&id)
            .scalable_dimension(DIMENSION)
            .send()
            .await
            .map_err(|e| classify("DescribeScalingPolicies", &e))?;
        let policies = policies
            .scaling_policies()
            .iter()
            .filter_map(|p| {
                let config = p.target_tracking_scaling_policy_configuration()?;
                let metric = config.predefined_metric_specification()?;
                Some(TrackingPolicy {
                    name: p.policy_name().to_owned(),
                    metric: metric.predefined_metric_type().as_str().to_owned(),
                    resource_label: metric.resource_label().map(str::to_owned),
                    target: config.target_value(),
                    scale_in_cooldown_seconds: config.scale_in_cooldown().unwrap_or(300).max(0)
                        as u32,
                    scale_out_cooldown_seconds: config.scale_out_cooldown().unwrap_or(300).max(0)
                        as u32,
                })
            })
            .collect();
        Ok(Some(ScalingWant {
            min: t.min_capacity().max(0) as u32,
            max: t.max_capacity().max(0) as u32,
            policies,
        }))
    }

    async fn apply_scaling(
        &self,
        cluster: &str,
        service: &str,
        step: &ScalingStep,
    ) -> Result<(), PortError> {
        let id = resource_id(cluster, service);
        let c = &self.clients.autoscaling;
        match step {
            ScalingStep::Register { min, max } => {
                c.register_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(&id)
                    .scalable_dimension(DIMENSION)
                    .min_capacity(*min as i32)
                    .max_capacity(*max as i32)
                    .send()
                    .await
                    .map_err(|e| classify("RegisterScalableTarget", &e))?;
            }
            ScalingStep::PutPolicy(p) => {
                let invalid = |e: &dyn std::fmt::Display| {
                    PortError::new(ErrorKind::Invalid, "PutScalingPolicy", e.to_string())
                };
                let metric = PredefinedMetricSpecification::builder()
                    .predefined_metric_type(MetricType::from(p.metric.as_str()))
                    .set_resource_label(p.resource_label.clone())
                    .build()
                    .map_err(|e| invalid(&e))?;
                let config = TargetTrackingScalingPolicyConfiguration::builder()
                    .target_value(p.target)
                    .predefined_metric_specification(metric)
                    .scale_in_cooldown(p.scale_in_cooldown_seconds as i32)
                    .scale_out_cooldown(p.scale_out_cooldown_seconds as i32)
                    .build()
                    .map_err(|e| invalid(&e))?;
                c.put_scaling_policy()
                    .policy_name(&p.name)
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(&id)
                    .scalable_dimension(DIMENSION)
                    .policy_type(PolicyType::TargetTrackingScaling)
                    .target_tracking_scaling_policy_configuration(config)
                    .send()
                    .await
                    .map_err(|e| classify("PutScalingPolicy", &e))?;
            }
            ScalingStep::DeletePolicy(name) => {
                c.delete_scaling_policy()
                    .policy_name(name)
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(&id)
                    .scalable_dimension(DIMENSION)
                    .send()
                    .await
                    .map_err(|e| classify("DeleteScalingPolicy", &e))?;
            }
            ScalingStep::Deregister => {
                c.deregister_scalable_target()
                    .service_namespace(ServiceNamespace::Ecs)
                    .resource_id(&id)
                    .scalable_dimension(DIMENSION)
                    .send()
                    .await
                    .map_err(|e| classify("DeregisterScalableTarget", &e))?;
            }
        }
        Ok(())
    }
}
