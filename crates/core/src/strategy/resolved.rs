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

/// What a native deployment lacks before it can start: the pieces neither the config nor the
/// outputs name, each by the config field that would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} deployment of `{service}` cannot start; missing: {}", strategy_word(*.strategy), words(.missing))]
pub struct Unresolved {
    pub strategy: Strategy,
    pub service: String,
    pub missing: Vec<Missing>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// `load_balancer.<key>`, and the bootstrap's output that would name it.
    LoadBalancer { key: &'static str, output: String },
    /// `agent.<key>`, and the agent's output that would name it.
    Agent {
        key: &'static str,
        output: &'static str,
    },
    /// A gate runs at a stage only test traffic has, and no test listener rule is known.
    TestListenerFor(Stage),
    /// Both target groups are the same one.
    SecondTargetGroup,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::LoadBalancer { key, output } => write!(
                f,
                "`load_balancer.{key}` (not in the config, and no output `{output}`)"
            ),
            Missing::Agent { key, output } => write!(
                f,
                "`agent.{key}` (not in the config, and no agent output `{output}`: install the agent first)"
            ),
            Missing::TestListenerFor(stage) => write!(
                f,
                "`load_balancer.test_listener_rule`: a gate runs at {stage}, which only happens with test traffic"
            ),
            Missing::SecondTargetGroup => f.write_str(
                "a second target group: `target_group` and `alternate_target_group` are the same",
            ),
        }
    }
}

fn words(missing: &[Missing]) -> String {
    let words: Vec<String> = missing.iter().map(ToString::to_string).collect();
    words.join("; ")
}

/// The value given in the config, else the output's (an empty output is none).
fn given_or_output(
    given: Option<&str>,
    outputs: &BTreeMap<String, String>,
    output: &str,
) -> Option<String> {
    (given.map(str::to_owned)).or_else(|| outputs.get(output).filter(|v| !v.is_empty()).cloned())
}

/// The ARNs a native deployment needs, each the config's or an output's; what neither names is
/// recorded in `missing`.
struct Found {
    target_group: Option<String>,
    alternate_target_group: Option<String>,
    production_listener_rule: Option<String>,
    test_listener_rule: Option<String>,
    role: Option<String>,
    hook_function: Option<String>,
    hook_role: Option<String>,
}

impl Found {
    fn look_up(
        service: &str,
        native: &NativeSettings,
        hook: (Option<&str>, Option<&str>),
        outputs: &BTreeMap<String, String>,
        missing: &mut Vec<Missing>,
    ) -> Found {
        let lb = &native.load_balancer;
        let names = output_names(service);
        let mut pick = |given: &Option<String>, i: usize, required: bool| {
            let (key, output) = &names[i];
            let found = given_or_output(given.as_deref(), outputs, output);
            if found.is_none() && required {
                let output = output.clone();
                missing.push(Missing::LoadBalancer { key, output });
            }
            found
        };
        let target_group = pick(&lb.target_group, 0, true);
        let alternate_target_group = pick(&lb.alternate_target_group, 1, true);
        let production_listener_rule = pick(&lb.production_listener_rule, 2, true);
        let test_listener_rule = pick(&lb.test_listener_rule, 3, false);
        let role = pick(&lb.role, 4, true);
        let mut agent = |given: Option<&str>, output: &'static str, key: &'static str| {
            let found = given_or_output(given, outputs, output);
            if found.is_none() {
                missing.push(Missing::Agent { key, output });
            }
            found
        };
        Found {
            target_group,
            alternate_target_group,
            production_listener_rule,
            test_listener_rule,
            role,
            hook_function: agent(hook.0, HOOK_FUNCTION_OUTPUT, "hook_function_arn"),
            hook_role: agent(hook.1, HOOK_ROLE_OUTPUT, "hook_role_arn"),
        }
    }
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
    ) -> Result<NativeDeployment, Unresolved> {
        let unresolved = |missing| Unresolved {
            strategy: native.strategy,
            service: service.to_owned(),
            missing,
        };
        let mut missing = Vec::new();
        let found = Found::look_up(service, native, hook, outputs, &mut missing);
        let hook_stages = gates.hook_stages();
        if found.test_listener_rule.is_none() {
            let untestable = hook_stages.iter().filter(|s| s.needs_test_listener());
            missing.extend(untestable.map(|s| Missing::TestListenerFor(*s)));
        }
        if found.target_group.is_some() && found.target_group == found.alternate_target_group {
            missing.push(Missing::SecondTargetGroup);
        }
        let Found {
            target_group: Some(target_group),
            alternate_target_group: Some(alternate_target_group),
            production_listener_rule: Some(production_listener_rule),
            test_listener_rule,
            role: Some(role),
            hook_function: Some(hook_function),
            hook_role: Some(hook_role),
        } = found
        else {
            return Err(unresolved(missing));
        };
        if !missing.is_empty() {
            return Err(unresolved(missing));
        }
        Ok(NativeDeployment {
            strategy: native.strategy,
            bake_time_minutes: native.bake_time_minutes,
            canary: native.canary.clone(),
            linear: native.linear.clone(),
            container: native.load_balancer.container.clone(),
            port: native.load_balancer.port,
            target_group,
            alternate_target_group,
            production_listener_rule,
            test_listener_rule,
            role,
            hook_function,
            hook_role,
            hook_stages,
            hook_timeout_minutes: (gates.hook_timeout_minutes(callback_seconds))
                .clamp(1, u64::from(super::ECS_HOOK_TIMEOUT_MAX_MINUTES))
                as u32,
        })
    }
}
