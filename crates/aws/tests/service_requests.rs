//! CreateService and UpdateService carry the same settings (issue 31, point 2): both requests are
//! filled from the target's one `settings` struct, so a setting added for one cannot be missed
//! by the other. Captured with aws-smithy-mocks: the requests as the SDK serialises them.
//! Field names as the ECS API reference gives them
//! (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_CreateService.html,
//! https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_UpdateService.html).

mod mocked;

use std::sync::{Arc, Mutex};

use aws_smithy_mocks::mock;
use harbormaster_core::ports::{ServiceTarget, Services};
use harbormaster_core::service::{CapacityItem, Network, PropagateTags, ResolvedAttachment};
use harbormaster_core::state::DeploymentId;
use mocked::*;

/// Every shared setting of one request (CreateService's or UpdateService's input: the same
/// getters), in words: the SDK's own `Debug` of each value.
macro_rules! shared {
    ($r:expr) => {
        vec![
            format!(
                "deploymentConfiguration {:?}",
                $r.deployment_configuration()
            ),
            format!("loadBalancers {:?}", $r.load_balancers()),
            format!(
                "capacityProviderStrategy {:?}",
                $r.capacity_provider_strategy()
            ),
            format!("networkConfiguration {:?}", $r.network_configuration()),
            format!("platformVersion {:?}", $r.platform_version()),
            format!("enableExecuteCommand {:?}", $r.enable_execute_command()),
            format!("enableECSManagedTags {:?}", $r.enable_ecs_managed_tags()),
            format!("propagateTags {:?}", $r.propagate_tags()),
            format!(
                "healthCheckGracePeriodSeconds {:?}",
                $r.health_check_grace_period_seconds()
            ),
        ]
    };
}

/// A target with every setting away from its default.
fn target() -> ServiceTarget {
    let mut t = ServiceTarget {
        environment: "dev".into(),
        name: "web".into(),
        cluster: "booking-dev".into(),
        service: "web".into(),
        native: None,
        settings: Default::default(),
    };
    let s = &mut t.settings;
    s.network = Some(Network {
        subnets: vec!["subnet-1".into(), "subnet-2".into()],
        security_groups: vec!["sg-1".into()],
        assign_public_ip: false,
    });
    s.capacity = vec![CapacityItem {
        provider: "FARGATE_SPOT".into(),
        weight: 3,
        base: 1,
    }];
    s.load_balancer = Some(ResolvedAttachment {
        container: "web".into(),
        port: 8000,
        target_group: "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/web/1".into(),
    });
    s.platform_version = Some("1.4.0".into());
    s.execute_command = true;
    s.propagate_tags = PropagateTags::TaskDefinition;
    s.rolling.min_healthy_percent = 50;
    s.rolling.max_percent = 150;
    s.rolling.health_check_grace_period_seconds = Some(90);
    s.alarms = vec!["booking-dev-web-5xx".into()];
    s.initial_count = 2;
    s.desired_count = Some(3);
    t
}

#[tokio::test]
async fn create_and_update_send_the_same_settings() {
    const SERVICE: &str = r#"{"service":{"serviceName":"web","status":"ACTIVE","deployments":[]}}"#;
    let created: Arc<Mutex<Vec<String>>> = Arc::default();
    let updated: Arc<Mutex<Vec<String>>> = Arc::default();
    let (c, u) = (created.clone(), updated.clone());
    let create = mock!(aws_sdk_ecs::Client::create_service)
        .match_requests(move |r| {
            *c.lock().unwrap() = shared!(r);
            r.desired_count() == Some(2)
        })
        .then_http_response(|| http_json(SERVICE));
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| {
            *u.lock().unwrap() = shared!(r);
            r.desired_count() == Some(3)
        })
        .then_http_response(|| http_json(SERVICE));
    let p = ports(client!(aws_sdk_ecs, [&create, &update]), no_s3());
    let (t, d) = (target(), DeploymentId("d-1".into()));
    p.create(&t, "arn:td:1", &d, "token").await.unwrap();
    p.update(&t, "arn:td:1", &d).await.unwrap();
    let (created, updated) = (created.lock().unwrap(), updated.lock().unwrap());
    assert_eq!(*created, *updated);
    // Each one was sent (not left out of both alike).
    for said in created.iter() {
        assert!(!said.ends_with(" None") && !said.ends_with(" []"), "{said}");
    }
    assert!(created[0].contains("booking-dev-web-5xx"), "{}", created[0]);
}

/// Issue 33, item 2: an UpdateService that sends a capacity provider strategy forces a new
/// deployment (UpdateService API reference: a strategy change without `forceNewDeployment` is
/// refused, "you must force a new deployment"); the engine sets it, the request carries it.
#[tokio::test]
async fn item_2_an_update_with_a_strategy_forces_a_new_deployment() {
    const SERVICE: &str = r#"{"service":{"serviceName":"web","status":"ACTIVE","deployments":[]}}"#;
    let forced: Arc<Mutex<Option<bool>>> = Arc::default();
    let f = forced.clone();
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(move |r| {
            *f.lock().unwrap() = r.force_new_deployment();
            true
        })
        .then_http_response(|| http_json(SERVICE));
    let p = ports(client!(aws_sdk_ecs, [&update]), no_s3());
    let mut t = target();
    t.settings.force_new_deployment = true;
    p.update(&t, "arn:td:1", &DeploymentId("d-1".into()))
        .await
        .unwrap();
    assert_eq!(*forced.lock().unwrap(), Some(true));
}

/// Issue 33, item 10: a service git gives no capacity strategy is created on the FARGATE launch
/// type, not the FARGATE provider: a cluster made without capacity providers refuses a strategy
/// naming one ("The specified capacity provider strategy cannot contain a capacity provider
/// that is not associated with the cluster", CreateService API reference); with a strategy,
/// no launch type (ECS refuses both at once).
#[tokio::test]
async fn item_10_a_service_without_a_strategy_is_created_on_the_fargate_launch_type() {
    const SERVICE: &str = r#"{"service":{"serviceName":"web","status":"ACTIVE","deployments":[]}}"#;
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let rule = || {
        let s = seen.clone();
        mock!(aws_sdk_ecs::Client::create_service)
            .match_requests(move |r| {
                s.lock().unwrap().push(format!(
                    "{:?} {:?}",
                    r.launch_type(),
                    r.capacity_provider_strategy()
                ));
                true
            })
            .then_http_response(|| http_json(SERVICE))
    };
    let (first, second) = (rule(), rule());
    let p = ports(client!(aws_sdk_ecs, [&first, &second]), no_s3());
    let d = DeploymentId("d-1".into());
    let mut plain = target();
    plain.settings.capacity.clear();
    p.create(&plain, "arn:td:1", &d, "token").await.unwrap();
    p.create(&target(), "arn:td:1", &d, "token").await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0], "Some(Fargate) []", "{seen:?}");
    assert!(
        seen[1].starts_with("None [CapacityProviderStrategyItem"),
        "{seen:?}"
    );
}
