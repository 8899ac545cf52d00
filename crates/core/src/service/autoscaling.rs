//! Application Auto Scaling for a service, planned (pure): the scalable target and the
//! target-tracking policies git asks for, against what is registered now. The agent owns the
//! policies it names (`harbormaster-…`); others are left alone unless the target goes.

use serde::Serialize;

/// A target-tracking policy on one predefined ECS metric.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrackingPolicy {
    pub name: String,
    /// `ECSServiceAverageCPUUtilization`, `ECSServiceAverageMemoryUtilization` or
    /// `ALBRequestCountPerTarget`.
    pub metric: String,
    /// For `ALBRequestCountPerTarget`: `app/<lb>/<id>/targetgroup/<tg>/<id>`.
    pub resource_label: Option<String>,
    pub target: f64,
    pub scale_in_cooldown_seconds: u32,
    pub scale_out_cooldown_seconds: u32,
}

/// The scalable target and its policies: what git wants, or what is registered.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScalingWant {
    pub min: u32,
    pub max: u32,
    pub policies: Vec<TrackingPolicy>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ScalingStep {
    /// RegisterScalableTarget (an upsert of min and max).
    Register {
        min: u32,
        max: u32,
    },
    /// PutScalingPolicy (an upsert by name).
    PutPolicy(TrackingPolicy),
    DeletePolicy(String),
    /// DeregisterScalableTarget: its policies go with it.
    Deregister,
}

/// The name the agent gives the policy tracking `metric`.
pub fn policy_name(metric: &str) -> String {
    let short = match metric {
        "ECSServiceAverageCPUUtilization" => "cpu",
        "ECSServiceAverageMemoryUtilization" => "memory",
        "ALBRequestCountPerTarget" => "requests",
        other => other,
    };
    format!("harbormaster-{short}")
}

fn ours(name: &str) -> bool {
    name.starts_with("harbormaster-")
}

/// The calls that make `now` what `want` says; none when they agree.
pub fn plan_scaling(now: Option<&ScalingWant>, want: Option<&ScalingWant>) -> Vec<ScalingStep> {
    match (now, want) {
        (None, None) => Vec::new(),
        (Some(_), None) => vec![ScalingStep::Deregister],
        (now, Some(want)) => {
            let mut steps = Vec::new();
            if now.is_none_or(|n| (n.min, n.max) != (want.min, want.max)) {
                steps.push(ScalingStep::Register {
                    min: want.min,
                    max: want.max,
                });
            }
            let registered: &[TrackingPolicy] = now.map(|n| n.policies.as_slice()).unwrap_or(&[]);
            for p in &want.policies {
                if !registered.contains(p) {
                    steps.push(ScalingStep::PutPolicy(p.clone()));
                }
            }
            for p in registered {
                if ours(&p.name) && !want.policies.iter().any(|w| w.name == p.name) {
                    steps.push(ScalingStep::DeletePolicy(p.name.clone()));
                }
            }
            steps
        }
    }
}
