//! The config's table tests: every field named, every problem at once.

use super::*;

/// The shared test config, following commits' tags in dev.
fn good() -> String {
    crate::testing::CONFIG.replace(r#"regex = "^main-""#, r#"regex = "^main-[0-9a-f]{7}$""#)
}

#[test]
fn a_good_config_merges_service_settings_into_each_target() {
    let cfg = Config::parse("harbormaster.toml", &good()).unwrap();
    let (env, svc, t) = cfg.target("dev", "web").unwrap();
    assert_eq!(env.cluster, "booking-dev");
    assert_eq!(svc.ecs_service, "web");
    assert_eq!(t.desired_count, Some(1));
    assert_eq!(t.variables.get("DEBUG").map(String::as_str), Some("true"));
    assert!(t.variables.contains_key("DJANGO_SETTINGS_MODULE"));
    assert_eq!(
        t.secrets["DATABASE_PASSWORD"].value_from("booking", "dev", "us-east-1", "123456789012"),
        "arn:aws:ssm:us-east-1:123456789012:parameter/booking/dev/database/password"
    );
    let (_, _, p) = cfg.target("prod", "web").unwrap();
    assert_eq!(p.desired_count, Some(2));
    assert_eq!(p.order(), ImageOrder::Semver);
    assert_eq!(cfg.targets().count(), 2);
}

#[test]
fn unknown_keys_are_errors_with_line_and_name() {
    let text = good().replace("desired_count = 2", "desired_cuont = 2");
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("harbormaster.toml: `services.web.desired_cuont`: unknown key at line "),
        "{err}"
    );
    assert!(err.ends_with("did you mean `desired_count`?"), "{err}");
}

#[test]
fn every_invalid_field_is_named_at_once() {
    let text = good()
        .replace("strategy", "x")
        .replace("^main-[0-9a-f]{7}$", "([")
        .replace(">=1.0.0", "not a version")
        .replace("database/password", "no-slash")
        .replace(
            "[services.web.environments.prod]",
            "[services.web.environments.qa]",
        );
    let errs = Config::parse("harbormaster.toml", &text).unwrap_err();
    let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert!(
        fields.contains(&"services.web.environments.dev.follow.regex"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"services.web.environments.qa.follow.semver"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"services.web.secrets.DATABASE_PASSWORD"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"services.web.environments.qa"),
        "{fields:?}"
    );
    assert!(errs.0.iter().all(|e| e.file == "harbormaster.toml"));
}

#[test]
fn unsupported_strategy_names_what_is_allowed() {
    let text = good().replace(
        "desired_count = 2",
        "desired_count = 2\nstrategy = \"yolo\"",
    );
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("`services.web.strategy`"), "{err}");
    assert!(
        err.contains("allowed: \"rolling\", \"blue_green\""),
        "{err}"
    );
}

#[test]
fn plaintext_secret_in_variables_is_rejected_without_echoing_it() {
    let text = good().replace("DEBUG = \"true\"", "DB_PASSWORD = \"hunter2-very-secret\"");
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.web.environments.dev.variables.DB_PASSWORD"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn a_variable_and_a_secret_may_not_share_a_name() {
    let text = good().replace("DEBUG = \"true\"", "DATABASE_PASSWORD = \"\"");
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(err.contains("both a variable and a secret"), "{err}");
}

#[test]
fn native_strategies_need_a_load_balancer_and_gates_need_a_native_strategy() {
    let text = good().replace(
        "desired_count = 2\n",
        "desired_count = 2\nstrategy = \"canary\"\n",
    );
    let errs = Config::parse("harbormaster.toml", &text).unwrap_err();
    let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
    assert!(fields.contains(&"services.web.load_balancer"), "{fields:?}");
    assert!(fields.contains(&"services.web.canary"), "{fields:?}");

    let text = good().replace(
        "[services.web.environments.dev]\n",
        "[services.web.environments.dev]\napproval = { stage = \"post_test_traffic_shift\" }\n",
    );
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.web.environments.dev") && err.contains("lifecycle hooks"),
        "{err}"
    );
}

#[test]
fn a_canary_with_gates_parses_and_bad_gates_are_named() {
    let native = r#"
strategy = "canary"
canary = { percent = 10, interval_minutes = 5 }
load_balancer = { container = "web", port = 8000 }
"#;
    let check = r#"
[services.web.checks.latency]
stages = ["post_production_traffic_shift"]
threshold = 2
queries = [
  { id = "p99", namespace = "AWS/ApplicationELB", metric = "TargetResponseTime", stat = "p99" },
]

[services.web.environments.dev]
"#;
    let text = good()
        .replace(
            "desired_count = 2\n",
            &format!("desired_count = 2\n{native}"),
        )
        .replace("[services.web.environments.dev]\n", check);
    let cfg = Config::parse("harbormaster.toml", &text).unwrap();
    let (_, s, t) = cfg.target("dev", "web").unwrap();
    assert_eq!(s.strategy, Strategy::Canary);
    assert_eq!(
        s.native.as_ref().unwrap().canary.as_ref().unwrap().percent,
        10.0
    );
    assert_eq!(t.gates.checks[0].value, "p99");

    let bad = text
        .replace("post_production_traffic_shift", "after_lunch")
        .replace("id = \"p99\"", "id = \"P99\"")
        // 100 is a canary ECS takes (API_CanaryConfiguration); 0.05 is below its 0.1.
        .replace("percent = 10", "percent = 0.05");
    let errs = Config::parse("harbormaster.toml", &bad).unwrap_err();
    let fields: Vec<_> = errs.0.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "services.web.checks.latency.stages",
        "services.web.checks.latency.queries[0].id",
        "services.web.canary.percent",
    ] {
        assert!(fields.contains(&f), "{f} not in {fields:?}");
    }
}

#[test]
fn worker_scaling_parses_and_bad_sources_are_named() {
    let scaled = good().replace(
        "[services.web.environments.prod]\n",
        "[services.web.environments.prod]\nscaling = { max = 10, latency_seconds = 600, processing_ms = 250, sqs = { queue = \"jobs\" } }\n",
    );
    let cfg = Config::parse("harbormaster.toml", &scaled).unwrap();
    let s = cfg
        .target("prod", "web")
        .unwrap()
        .2
        .scaling
        .clone()
        .unwrap();
    assert_eq!(s.per_task, 2400.0);
    assert_eq!((s.min, s.max), (0, 10));
    assert_eq!(s.scale_in_cooldown.num_seconds(), 300);
    assert!(cfg.target("prod", "web").unwrap().2.desired_count.is_some());

    for (bad, field, words) in [
        ("{ max = 3, per_task = 10 }", "scaling", "exactly one backlog source"),
        ("{ max = 3, per_task = 10, sqs = { queue = \"a\" }, metric = { namespace = \"n\", metric = \"m\" } }", "scaling", "exactly one"),
        ("{ max = 3, per_task = 10, redis = { url = \"redis://:hunter2-secret@cache:6379/0\" } }", "scaling.redis.url", "url_secret"),
        ("{ max = 3, per_task = 10, redis = { url_secret = \"database/password\" } }", "scaling.redis.url_secret", "redis/<name>"),
        ("{ max = 3, sqs = { queue = \"a\" } }", "scaling", "per_task"),
        ("{ min = 4, max = 3, per_task = 1, sqs = { queue = \"a\" } }", "scaling.max", "at least `min`"),
    ] {
        let text = good().replace(
            "[services.web.environments.prod]\n",
            &format!("[services.web.environments.prod]\nscaling = {bad}\n"),
        );
        let err = Config::parse("harbormaster.toml", &text).unwrap_err().to_string();
        assert!(
            err.contains(&format!("services.web.environments.prod.{field}")) && err.contains(words),
            "{bad}: {err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
    }
}

/// ECS's API reference: CanaryConfiguration `canaryPercent` takes "multiples of 0.1 from 0.1 to
/// 100.0", LinearConfiguration `stepPercent` "multiples of 0.1 from 3.0 to 100.0"
/// (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CanaryConfiguration.html,
/// .../API_LinearConfiguration.html). What ECS would refuse is refused here, naming the field.
#[test]
fn traffic_steps_are_checked_as_ecs_checks_them() {
    let native = |shift: &str| {
        good().replace(
            "desired_count = 2\n",
            &format!(
                "desired_count = 2\n{shift}\nload_balancer = {{ container = \"web\", port = 8000 }}\n"
            ),
        )
    };
    let cases = [
        (
            "strategy = \"canary\"\ncanary = { percent = 0.1, interval_minutes = 5 }",
            None,
        ),
        (
            "strategy = \"canary\"\ncanary = { percent = 100, interval_minutes = 5 }",
            None,
        ),
        (
            "strategy = \"canary\"\ncanary = { percent = 0.05, interval_minutes = 5 }",
            Some("canary.percent"),
        ),
        (
            "strategy = \"canary\"\ncanary = { percent = 12.34, interval_minutes = 5 }",
            Some("canary.percent"),
        ),
        (
            "strategy = \"linear\"\nlinear = { percent = 3, interval_minutes = 2 }",
            None,
        ),
        (
            "strategy = \"linear\"\nlinear = { percent = 2.9, interval_minutes = 2 }",
            Some("linear.percent"),
        ),
        (
            "strategy = \"linear\"\nlinear = { percent = 100.1, interval_minutes = 2 }",
            Some("linear.percent"),
        ),
    ];
    for (shift, bad) in cases {
        let result = Config::parse("harbormaster.toml", &native(shift));
        match bad {
            None => assert!(result.is_ok(), "{shift}: {result:?}"),
            Some(field) => {
                let errs = result.unwrap_err();
                let want = format!("services.web.{field}");
                assert!(errs.0.iter().any(|e| e.field == want), "{shift}: {errs}");
            }
        }
    }
}

/// The installed agent reads images in `repository/<project>/*` only (deploy/template.yaml,
/// issue 15 point 7): another repository is a config error naming the field.
#[test]
fn a_repository_outside_the_project_is_named() {
    for repo in ["web", "other/web", "booking/", "bookingx/web"] {
        let text = good().replacen(
            "repository = \"booking/web\"",
            &format!("repository = \"{repo}\""),
            1,
        );
        assert_ne!(text, good());
        let err = Config::parse("harbormaster.toml", &text)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("services.web.repository") && err.contains("booking/<name>"),
            "{repo}: {err}"
        );
    }
}

/// ECS holds a lifecycle hook at most 20,160 minutes (DeploymentLifecycleHookTimeoutConfiguration):
/// gates that may wait longer at one stage are refused, naming the target.
#[test]
fn gates_ecs_cannot_hold_are_refused() {
    let gated = |rounds: u32| {
        let check = format!(
            "[services.web.checks.errors]\nstages = [\"post_production_traffic_shift\"]\nthreshold = 1\n\
             max_inconclusive = {rounds}\nqueries = [{{ id = \"e\", namespace = \"AWS/ApplicationELB\", \
             metric = \"HTTPCode_Target_5XX_Count\", stat = \"Sum\" }}]\n\n\
             [services.web.environments.dev]\n\
             approval = {{ stage = \"post_production_traffic_shift\", timeout_minutes = 10080, on_timeout = \"approve\" }}\n"
        );
        good()
            .replace(
                "desired_count = 2\n",
                "desired_count = 2\nstrategy = \"blue_green\"\nload_balancer = { container = \"web\", port = 8000 }\n",
            )
            .replace("[services.web.environments.dev]\n", &check)
    };
    let ok = Config::parse("harbormaster.toml", &gated(3));
    assert!(ok.is_ok(), "{:?}", ok.err().map(|e| e.to_string()));
    // The ranges keep every accepted config within what ECS holds: the longest approval,
    // the most inconclusive rounds and the longest callback still fit.
    let longest = gated(100).replace(
        "lease_seconds = 60\n",
        "lease_seconds = 60\nhook_callback_seconds = 900\n",
    );
    let cfg = Config::parse("harbormaster.toml", &longest).unwrap();
    let (_, _, t) = cfg.target("dev", "web").unwrap();
    let minutes = t
        .gates
        .hook_timeout_minutes(cfg.agent.hook_callback_seconds);
    assert_eq!(minutes, 10_080 + 101 * 15 + 15);
    assert!(minutes <= u64::from(crate::strategy::ECS_HOOK_TIMEOUT_MAX_MINUTES));
    // Beyond the ranges, the config is refused before ECS could be asked to hold it.
    let err = Config::parse("harbormaster.toml", &gated(30_000))
        .unwrap_err()
        .to_string();
    assert!(err.contains("max_inconclusive"), "{err}");
}

/// Every number in the config has a range `validate` checks (issue 16, point 14): a zero
/// `stabilize_timeout_minutes` would fail every rollout, a huge count would be sent to ECS.
#[test]
fn every_numeric_setting_has_a_checked_range() {
    let agent = |line: &str| {
        good().replace(
            "lease_seconds = 60\n",
            &format!("lease_seconds = 60\n{line}\n"),
        )
    };
    let service = |line: &str| {
        good().replace(
            "desired_count = 2\n",
            &format!("desired_count = 2\n{line}\n"),
        )
    };
    let target = |line: &str| {
        good().replace(
            "[services.web.environments.dev]\n",
            &format!("[services.web.environments.dev]\n{line}\n"),
        )
    };
    let scaled = |extra: &str| {
        target(&format!(
            "scaling = {{ max = 3, per_task = 10, sqs = {{ queue = \"q\" }}, {extra} }}"
        ))
    };
    let cases = [
        (
            agent("stabilize_timeout_minutes = 0"),
            "agent.stabilize_timeout_minutes",
        ),
        (
            agent("stabilize_timeout_minutes = 100000"),
            "agent.stabilize_timeout_minutes",
        ),
        (agent("max_attempts = 1000000"), "agent.max_attempts"),
        (
            service("health_check_grace_period_seconds = 4000000"),
            "services.web.health_check_grace_period_seconds",
        ),
        (
            service("desired_count = 100000").replacen("desired_count = 2\n", "", 1),
            "services.web.desired_count",
        ),
        (
            target("desired_count = 100000").replacen("desired_count = 1\n", "", 1),
            "services.web.environments.dev.desired_count",
        ),
        (
            scaled("scale_in_cooldown_seconds = 1000000"),
            "services.web.environments.dev.scaling.scale_in_cooldown_seconds",
        ),
        (
            scaled("scale_out_cooldown_seconds = 1000000"),
            "services.web.environments.dev.scaling.scale_out_cooldown_seconds",
        ),
        (
            scaled("at_max_alert_minutes = 0"),
            "services.web.environments.dev.scaling.at_max_alert_minutes",
        ),
        (
            scaled("scale_out_step = 5000"),
            "services.web.environments.dev.scaling.scale_out_step",
        ),
        (
            good().replace(
                "[services.web.environments.dev]\n",
                "[services.web.checks.errors]\nstages = [\"post_production_traffic_shift\"]\nthreshold = 1\nmax_inconclusive = 5000\nqueries = [{ id = \"e\", namespace = \"N\", metric = \"M\" }]\n\n[services.web.environments.dev]\n",
            ),
            "services.web.checks.errors.max_inconclusive",
        ),
    ];
    for (text, field) in cases {
        let err = match Config::parse("harbormaster.toml", &text) {
            Ok(_) => panic!("{field}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains(&format!("`{field}`")) || err.contains(&format!("{field}:")),
            "{field}: {err}"
        );
        assert!(err.contains("allowed"), "{field}: {err}");
    }
}

/// A config bundle (a folder, or a prefix in S3) must never reach outside itself: a template
/// path that is absolute or climbs out is refused, naming the field (issue 16, point 12).
#[test]
fn a_template_path_outside_the_config_folder_is_refused() {
    for path in [
        "../outside/evil.json",
        "/etc/passwd",
        "taskdefs/../../x.json",
        "C:\\\\x.json",
        "taskdefs\\\\..\\\\x.json",
        "./taskdefs/web.json",
        "",
    ] {
        let text = good().replace("taskdefs/web.json", path);
        let err = match Config::parse("harbormaster.toml", &text) {
            Ok(_) => panic!("{path}: accepted"),
            Err(e) => e.to_string(),
        };
        assert!(
            err.contains("services.web.task_definition"),
            "{path}: {err}"
        );
    }
}

/// A lease shorter than the functions' timeout is refused (issue 16, point 3).
#[test]
fn a_lease_shorter_than_the_function_timeout_is_refused() {
    let text = good().replace("lease_seconds = 60", "lease_seconds = 30");
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("agent.lease_seconds") && err.contains("timeout"),
        "{err}"
    );
}

/// Rolling in dev, canary in prod (issue 17, point 7): the environment's table sets the
/// strategy and its settings, the rest comes from the service; a rolling environment of a
/// canary service drops the service's traffic settings rather than refusing them.
#[test]
fn each_environment_may_have_its_own_strategy() {
    let text = good().replace(
        "[services.web.environments.prod]\n",
        "[services.web.environments.prod]\nstrategy = \"canary\"\ncanary = { percent = 10, interval_minutes = 5 }\nload_balancer = { container = \"web\", port = 8000 }\n",
    );
    let cfg = Config::parse("harbormaster.toml", &text).unwrap();
    let (_, s, dev) = cfg.target("dev", "web").unwrap();
    assert_eq!(
        (s.strategy, dev.strategy),
        (Strategy::Rolling, Strategy::Rolling)
    );
    assert!(dev.native.is_none());
    let (_, _, prod) = cfg.target("prod", "web").unwrap();
    assert_eq!(prod.strategy, Strategy::Canary);
    let n = prod.native.as_ref().unwrap();
    assert_eq!(n.canary.as_ref().unwrap().percent, 10.0);

    // The other way round: a canary service, rolling in dev.
    let text = good()
        .replace(
            "desired_count = 2\n",
            "desired_count = 2\nstrategy = \"canary\"\ncanary = { percent = 10, interval_minutes = 5 }\nload_balancer = { container = \"web\", port = 8000 }\n",
        )
        .replace(
            "[services.web.environments.dev]\n",
            "[services.web.environments.dev]\nstrategy = \"rolling\"\n",
        );
    let cfg = Config::parse("harbormaster.toml", &text).unwrap();
    assert_eq!(
        cfg.target("dev", "web").unwrap().2.strategy,
        Strategy::Rolling
    );
    assert_eq!(
        cfg.target("prod", "web").unwrap().2.strategy,
        Strategy::Canary
    );
    // Traffic settings in a rolling environment are still refused, naming the field.
    let bad = text.replace(
        "[services.web.environments.dev]\nstrategy = \"rolling\"\n",
        "[services.web.environments.dev]\nstrategy = \"rolling\"\nbake_time_minutes = 3\n",
    );
    let err = Config::parse("harbormaster.toml", &bad)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.web.environments.dev.bake_time_minutes"),
        "{err}"
    );
}

/// Issue 21: `booking-${env}-web-*` names each environment's own alarms; a placeholder that is
/// not filled (`${stage}`) would match no alarm, so nothing would ever roll back: an error
/// naming the field, said once for a service-wide setting.
#[test]
fn alarm_names_have_their_placeholders_filled_and_an_unknown_one_is_an_error() {
    let text = good().replace(
        "[services.web]\n",
        "[services.web]\nalarms = [\"${project}-${env}-${service}-*\"]\nguard_alarms = [\"${project}-guard\"]\n",
    );
    let cfg = Config::parse("harbormaster.toml", &text).unwrap();
    let (_, _, dev) = cfg.target("dev", "web").unwrap();
    assert!(
        dev.alarms.alarms.contains(&"booking-dev-web-*".to_owned()),
        "{:?}",
        dev.alarms
    );
    assert_eq!(dev.alarms.guards, ["booking-guard"]);
    let (_, _, prod) = cfg.target("prod", "web").unwrap();
    assert!(prod
        .alarms
        .alarms
        .contains(&"booking-prod-web-*".to_owned()));

    let text = good().replace(
        "[services.web]\n",
        "[services.web]\nalarms = [\"web-${stage}-*\"]\n",
    );
    let err = Config::parse("harbormaster.toml", &text).unwrap_err();
    let said: Vec<String> = err.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        said,
        ["harbormaster.toml: `services.web.alarms`: only ${project}, ${env} and ${service} are filled in alarm names"]
    );
}

/// Issue 33 (found by the strict proxy's table): ECS refuses a health check grace period on a
/// service behind no load balancer (CreateService API reference, healthCheckGracePeriodSeconds);
/// `validate` names the field instead of every deployment failing.
#[test]
fn a_grace_period_without_a_load_balancer_is_refused_by_its_field() {
    let text = crate::testing::CONFIG.replace(
        "[services.web.environments.dev]\n",
        "health_check_grace_period_seconds = 60\n[services.web.environments.dev]\n",
    );
    let err = Config::parse("harbormaster.toml", &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services.web.health_check_grace_period_seconds"),
        "{err}"
    );
    let behind = crate::testing::CONFIG.replace(
        "[services.web.environments.dev]\n",
        "health_check_grace_period_seconds = 60\nload_balancer = { container = \"web\", port = 8000 }\n[services.web.environments.dev]\n",
    );
    Config::parse("harbormaster.toml", &behind).unwrap();
}
