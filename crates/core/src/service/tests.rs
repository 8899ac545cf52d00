use std::collections::BTreeMap;

use futures::executor::block_on;

use super::*;
use crate::config::Config;
use crate::memory::MemorySource;
use crate::testing::{CONFIG, WEB_TEMPLATE};

fn with_web(settings: &str) -> String {
    CONFIG.replace(
        "[services.web.environments.dev]\n",
        &format!("{settings}\n[services.web.environments.dev]\n"),
    )
}

/// The errors of a config, as `field: problem` lines.
fn errors(config: &str) -> Vec<String> {
    match Config::parse("harbormaster.toml", config) {
        Ok(_) => Vec::new(),
        Err(e) => {
            e.0.iter()
                .map(|e| format!("{}: {}", e.field, e.problem))
                .collect()
        }
    }
}

fn has(errors: &[String], field: &str) -> bool {
    errors.iter().any(|e| e.starts_with(&format!("{field}: ")))
}

#[test]
fn settings_are_read_per_service_and_replaced_whole_per_environment() {
    let config = with_web(
        r#"capacity = { fargate = 1, fargate_spot = 3, base = 1 }
load_balancer = { container = "web", port = 8000 }
autoscaling = { min = 1, max = 5, cpu = 70 }
enable_execute_command = true"#,
    )
    .replace(
        "[services.web.environments.prod]\n",
        "[services.web.environments.prod]\ncapacity = { fargate = 1 }\n",
    );
    let c = Config::parse("harbormaster.toml", &config).expect("valid");
    let dev = &c.services["web"].targets["dev"].service;
    let prod = &c.services["web"].targets["prod"].service;
    assert!(dev.capacity.uses_spot());
    assert!(!prod.capacity.uses_spot(), "prod replaces capacity whole");
    assert_eq!(
        prod.autoscaling, dev.autoscaling,
        "what prod leaves out is the service's"
    );
    assert!(dev.execute_command && prod.execute_command);
    assert_eq!(dev.load_balancer.as_ref().map(|l| l.port), Some(8000));
}

#[test]
fn the_issue_s_config_errors_each_name_their_field() {
    // Target tracking and queue-depth scaling together: both named.
    let both = errors(&with_web(
        r#"autoscaling = { min = 1, max = 5, cpu = 70 }
scaling = { sqs = { queue = "jobs" }, per_task = 10, max = 4 }"#,
    ));
    let line = both
        .iter()
        .find(|e| e.starts_with("services.web.autoscaling: "))
        .unwrap_or_else(|| panic!("{both:?}"));
    assert!(line.contains("services.web.scaling"), "{line}");

    let e = errors(&with_web("autoscaling = { min = 6, max = 5, cpu = 70 }"));
    assert!(has(&e, "services.web.autoscaling.min"), "{e:?}");

    let e = errors(&with_web("network = { subnets = [] }"));
    assert!(has(&e, "services.web.network.subnets"), "{e:?}");

    let e = errors(&with_web("autoscaling = { min = 1, max = 5 }"));
    assert!(has(&e, "services.web.autoscaling"), "no target: {e:?}");

    let e = errors(&with_web(
        "autoscaling = { min = 1, max = 5, requests_per_target = 100 }",
    ));
    assert!(
        has(&e, "services.web.autoscaling.requests_per_target"),
        "{e:?}"
    );

    let e = errors(&with_web("capacity = { fargate = 0, fargate_spot = 0 }"));
    assert!(has(&e, "services.web.capacity"), "{e:?}");

    let e = errors(&with_web("before_deploy = { command = [] }"));
    assert!(has(&e, "services.web.before_deploy.command"), "{e:?}");

    let e = errors(&with_web(
        r#"load_balancer = { container = "web", port = 8000, alternate_target_group = "arn:x" }"#,
    ));
    assert!(
        has(&e, "services.web.load_balancer.alternate_target_group"),
        "{e:?}"
    );

    // An environment's own setting is named by its own table.
    let e = errors(&CONFIG.replace(
        "[services.web.environments.prod]\n",
        "[services.web.environments.prod]\nnetwork = { subnets = [\"vpc-1\"] }\n",
    ));
    assert!(
        has(&e, "services.web.environments.prod.network.subnets"),
        "{e:?}"
    );
}

fn load(config: &str, template: &str) -> Result<crate::Bundle, crate::bundle::BundleError> {
    let files: BTreeMap<String, String> = [
        ("harbormaster.toml".to_string(), config.to_owned()),
        ("taskdefs/web.json".to_string(), template.to_owned()),
    ]
    .into_iter()
    .collect();
    block_on(crate::Bundle::load(&MemorySource(files)))
}

/// "Linux tasks with the ARM64 architecture don't support the Fargate Spot capacity provider";
/// "Windows containers on Fargate don't support the Fargate Spot capacity provider" —
/// https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-capacity-providers.html
#[test]
fn fargate_spot_with_a_task_definition_it_cannot_run_is_refused_before_any_call() {
    let spot = with_web("capacity = { fargate_spot = 1 }");
    let platform = |arch: &str, os: &str| {
        WEB_TEMPLATE.replacen(
            "\"cpu\": \"256\"",
            &format!(
                "\"runtimePlatform\": {{\"cpuArchitecture\": \"{arch}\", \"operatingSystemFamily\": \"{os}\"}}, \"cpu\": \"256\""
            ),
            1,
        )
    };
    let arm = load(&spot, &platform("ARM64", "LINUX"))
        .unwrap_err()
        .to_string();
    assert!(arm.contains("runtimePlatform.cpuArchitecture"), "{arm}");
    assert!(arm.contains("capacity"), "{arm}");
    let windows = load(&spot, &platform("X86_64", "WINDOWS_SERVER_2022_CORE"))
        .unwrap_err()
        .to_string();
    assert!(
        windows.contains("runtimePlatform.operatingSystemFamily"),
        "{windows}"
    );
    // X86_64 Linux (or no runtimePlatform: ECS's default) is fine; ARM64 on demand too.
    assert!(load(&spot, &platform("X86_64", "LINUX")).is_ok());
    assert!(load(&spot, WEB_TEMPLATE).is_ok());
    assert!(load(CONFIG, &platform("ARM64", "LINUX")).is_ok());
    let old = with_web("capacity = { fargate_spot = 1 }\nplatform_version = \"1.2.0\"");
    let err = load(&old, WEB_TEMPLATE).unwrap_err().to_string();
    assert!(err.contains("1.3.0"), "{err}");
}

#[test]
fn the_capacity_strategy_puts_base_on_the_first_provider_with_weight() {
    let c = Capacity {
        fargate: 0,
        fargate_spot: 2,
        base: 1,
    };
    let s: Vec<_> = c
        .strategy()
        .into_iter()
        .map(|i| (i.provider, i.weight, i.base))
        .collect();
    assert_eq!(s, [("FARGATE_SPOT".to_string(), 2, 1)]);
    assert_eq!(Capacity::default().strategy().len(), 1);
}

#[test]
fn scaling_plans_only_what_differs() {
    let policy = |name: &str, target: f64| TrackingPolicy {
        name: name.into(),
        metric: "ECSServiceAverageCPUUtilization".into(),
        resource_label: None,
        target,
        scale_in_cooldown_seconds: 300,
        scale_out_cooldown_seconds: 300,
    };
    let want = ScalingWant {
        min: 1,
        max: 5,
        policies: vec![policy("harbormaster-cpu", 70.0)],
    };
    assert_eq!(plan_scaling(Some(&want), Some(&want)), vec![]);
    assert_eq!(plan_scaling(None, None), vec![]);
    assert_eq!(
        plan_scaling(Some(&want), None),
        vec![ScalingStep::Deregister]
    );
    let mut now = want.clone();
    now.max = 4;
    now.policies.push(policy("harbormaster-memory", 80.0));
    now.policies.push(policy("someone-elses", 50.0));
    assert_eq!(
        plan_scaling(Some(&now), Some(&want)),
        vec![
            ScalingStep::Register { min: 1, max: 5 },
            ScalingStep::DeletePolicy("harbormaster-memory".into()),
        ],
        "a policy the agent did not name is left alone"
    );
}

#[test]
fn the_log_stream_of_an_awslogs_container_is_prefix_container_task() {
    let td = serde_json::json!({"containerDefinitions": [{"name": "web", "logConfiguration": {
        "logDriver": "awslogs",
        "options": {"awslogs-group": "/booking/dev/web", "awslogs-stream-prefix": "web"}}}]});
    assert_eq!(
        log_stream(
            &td,
            "web",
            "arn:aws:ecs:us-east-1:1:task/booking-dev/abc123"
        )
        .as_deref(),
        Some("/booking/dev/web:web/web/abc123")
    );
    assert_eq!(log_stream(&td, "worker", "arn:…/abc"), None);
}

#[test]
fn the_alb_resource_label_is_built_from_the_two_arns() {
    assert_eq!(
        resource_label(
            "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/my-alb/50dc6c495c0c9188",
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/my-tg/943f017f100becff"
        )
        .as_deref(),
        Some("app/my-alb/50dc6c495c0c9188/targetgroup/my-tg/943f017f100becff")
    );
}

#[test]
fn the_summary_says_what_the_service_is_created_with() {
    let c = Config::parse(
        "harbormaster.toml",
        &with_web(
            r#"capacity = { fargate = 1, fargate_spot = 3, base = 1 }
load_balancer = { container = "web", port = 8000 }
autoscaling = { min = 1, max = 5, cpu = 70, memory = 80 }
before_deploy = { command = ["python", "manage.py", "migrate"] }"#,
        ),
    )
    .unwrap();
    assert_eq!(
        c.services["web"].targets["dev"].service.summary(),
        "capacity FARGATE:1 + FARGATE_SPOT:3 (base 1); behind web:8000; autoscaling 1–5 (cpu 70%, memory 80%); before rollout: python manage.py migrate (15 min)"
    );
    assert_eq!(ServiceSettings::default().summary(), "capacity FARGATE:1");
}
