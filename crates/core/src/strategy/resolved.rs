//! A native strategy resolved for UpdateService: every ARN known, from the config or the
//! bootstrap's and the agent's outputs in SSM.

use std::collections::BTreeMap;

use super::{strategy_word, Gates, NativeSettings, Shift, Stage, Strategy};

/// Names of the bootstrap's outputs (under `/<project>/<env>/outputs/`) a native deployment
/// reads when the config does not name the resource.
pub fn output_names(service: &str) -> [(&'static str, String); 5] {
    [
        (
            "target_group",
            crate::service::ServiceOutputs::target_group(service),
        ),
        (
            "alternate_target_group",
            format!("target-groups/{service}/green"),
        ),
        (
            "production_listener_rule",
            format!("production-rules/{service}"),
        ),
        ("test_listener_rule", format!("test-rules/{service}")),
        ("role", "roles/ecs-infrastructure".to_owned()),
    ]
}

/// Where the installed agent records its `ecs-hook` function and the role ECS invokes it with
/// (under `/<project>/agent/`), unless `[agent]` names them.
pub const HOOK_FUNCTION_OUTPUT: &str = "hook-function-arn";
pub const HOOK_ROLE_OUTPUT: &str = "hook-role-arn";

/// Everything `UpdateService` needs for a native deployment, with every ARN known.
#[derive(Debug, Clone, PartialEq)]
pub struct NativeDeployment {
    pub strategy: Strategy,
    pub bake_time_minutes: u32,
    pub canary: Option<Shift>,
    pub linear: Option<Shift>,
    pub container: String,
    pub port: u16,
    pub target_group: String,
    pub alternate_target_group: String,
    pub production_listener_rule: String,
    pub test_listener_rule: Option<String>,
    pub role: String,
    pub hook_function: String,
    pub hook_role: String,
    pub hook_stages: Vec<Stage>,
    /// [`Gates::hook_timeout_minutes`], within ECS's range (the config is refused otherwise).
    pub hook_timeout_minutes: u32,
}

impl NativeDeployment {
    /// `outputs` holds the bootstrap's and the agent's outputs by their short names (see
    /// [`output_names`], [`HOOK_FUNCTION_OUTPUT`]). Errors name every missing piece at once.
    pub fn resolve(
        service: &str,
        native: &NativeSettings,
        gates: &Gates,
        hook: (Option<&str>, Option<&str>),
        callback_seconds: u32,
        outputs: &BTreeMap<String, String>,
    ) -> Result<NativeDeployment, String> {
        let lb = &native.load_balancer;
        let names = output_names(service);
        let mut missing = Vec::new();
        let mut pick = |given: &Option<String>, i: usize, required: bool| -> Option<String> {
            let (key, output) = &names[i];
            given
                .clone()
                .or_else(|| outputs.get(output).filter(|v| !v.is_empty()).cloned())
                .or_else(|| {
                    if required {
                        missing.push(format!(
                            "`load_balancer.{key}` (not in the config, and no output `{output}`)"
                        ));
                    }
                    None
                })
        };
        let target_group = pick(&lb.target_group, 0, true);
        let alternate_target_group = pick(&lb.alternate_target_group, 1, true);
        let production_listener_rule = pick(&lb.production_listener_rule, 2, true);
        let test_listener_rule = pick(&lb.test_listener_rule, 3, false);
        let role = pick(&lb.role, 4, true);
        let mut agent = |given: Option<&str>, output: &str, key: &str| {
            given
                .map(str::to_owned)
                .or_else(|| outputs.get(output).filter(|v| !v.is_empty()).cloned())
                .or_else(|| {
                    missing.push(format!(
                        "`agent.{key}` (not in the config, and no agent output `{output}`: install the agent first)"
                    ));
                    None
                })
        };
        let hook_function = agent(hook.0, HOOK_FUNCTION_OUTPUT, "hook_function_arn");
        let hook_role = agent(hook.1, HOOK_ROLE_OUTPUT, "hook_role_arn");
        let hook_stages = gates.hook_stages();
        if test_listener_rule.is_none() {
            for s in hook_stages.iter().filter(|s| s.needs_test_listener()) {
                missing.push(format!(
                    "`load_balancer.test_listener_rule`: a gate runs at {s}, which only happens with test traffic"
                ));
            }
        }
        if let (Some(a), Some(b)) = (&target_group, &alternate_target_group) {
            if a == b {
                missing.push("a second target group: `target_group` and `alternate_target_group` are the same".into());
            }
        }
        if !missing.is_empty() {
            return Err(format!(
                "{} deployment of `{service}` cannot start; missing: {}",
                strategy_word(native.strategy),
                missing.join("; ")
            ));
        }
        Ok(NativeDeployment {
            strategy: native.strategy,
            bake_time_minutes: native.bake_time_minutes,
            canary: native.canary.clone(),
            linear: native.linear.clone(),
            container: lb.container.clone(),
            port: lb.port,
            target_group: target_group.expect("checked"),
            alternate_target_group: alternate_target_group.expect("checked"),
            production_listener_rule: production_listener_rule.expect("checked"),
            test_listener_rule,
            role: role.expect("checked"),
            hook_function: hook_function.expect("checked"),
            hook_role: hook_role.expect("checked"),
            hook_stages,
            hook_timeout_minutes: gates
                .hook_timeout_minutes(callback_seconds)
                .clamp(1, u64::from(super::ECS_HOOK_TIMEOUT_MAX_MINUTES))
                as u32,
        })
    }
}
