//! Services owned from git, end to end (issue 18): after `harbormaster-bootstrap apply`, the
//! first push creates both services with the bootstrap's network and target group, the
//! capacity strategy and the tags — no AWS call made by the test on the agent's behalf. The
//! same push delivered twice at once creates each once. Application Auto Scaling is a
//! recording server here (ministack lacks it); its adapter's round trip runs against moto below.

use aws_sdk_ecs::types::ServiceField;
use harbormaster_aws::handler::{self, ECR_PUSH};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{setup, World, CLUSTER};
use serde_json::Value;

async fn output(w: &World, name: &str) -> String {
    w.clients
        .ssm
        .get_parameter()
        .name(format!("/booking/dev/outputs/{name}"))
        .send()
        .await
        .unwrap()
        .parameter
        .and_then(|p| p.value)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_bootstrap_a_push_creates_both_services_wired_to_it_and_twice_at_once_creates_each_once() {
    let emulator = harbormaster_testkit::Emulator::start().unwrap();
    setup::bootstrap(&emulator).unwrap();
    let w = World::on(emulator, harbormaster_e2e::Base::Bootstrapped)
        .await
        .unwrap();
    let listed = w.clients.ecs.list_services().cluster(CLUSTER).send().await.unwrap();
    assert!(listed.service_arns().is_empty(), "no service before the push");

    let digest = w.push_image("main-5e7f001").await.unwrap();
    let event = w.push_event("push-1", "main-5e7f001", &digest);
    let (agent_a, agent_b) = (w.agent(), w.agent());
    let (a, b) = tokio::join!(
        handler::dispatch(&agent_a, ECR_PUSH, &event, RunOptions::default()),
        handler::dispatch(&agent_b, ECR_PUSH, &event, RunOptions::default()),
    );
    let reports = format!("{:?}\n{:?}", a.unwrap(), b.unwrap());

    let listed = w.clients.ecs.list_services().cluster(CLUSTER).send().await.unwrap();
    assert_eq!(listed.service_arns().len(), 2, "{reports}");
    let described = w
        .clients
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("web")
        .services("worker")
        .include(ServiceField::Tags)
        .send()
        .await
        .unwrap();
    let subnets: Vec<String> = output(&w, "private-subnet-ids")
        .await
        .split(',')
        .map(str::to_owned)
        .collect();
    let sg = output(&w, "security-groups/services").await;
    let blue = output(&w, "target-groups/web/blue").await;
    for svc in described.services() {
        let name = svc.service_name().unwrap();
        let vpc = svc
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .unwrap_or_else(|| panic!("{name}: no network"));
        assert_eq!(vpc.subnets(), subnets.as_slice(), "{name}");
        assert_eq!(vpc.security_groups(), [sg.clone()], "{name}");
        assert_eq!(
            vpc.assign_public_ip(),
            Some(&aws_sdk_ecs::types::AssignPublicIp::Disabled)
        );
        let tags: Vec<(String, String)> = svc
            .tags()
            .iter()
            .map(|t| (t.key().unwrap().to_owned(), t.value().unwrap().to_owned()))
            .collect();
        assert!(
            tags.contains(&("harbormaster:service".into(), name.into())),
            "{name}: {tags:?}"
        );
        let strategy: Vec<(String, i32, i32)> = svc
            .capacity_provider_strategy()
            .iter()
            .map(|c| (c.capacity_provider().to_owned(), c.weight(), c.base()))
            .collect();
        match name {
            "web" => {
                let lb = &svc.load_balancers()[0];
                assert_eq!(lb.target_group_arn(), Some(blue.as_str()));
                assert_eq!((lb.container_name(), lb.container_port()), (Some("web"), Some(8000)));
                assert_eq!(strategy, [("FARGATE".to_string(), 1, 0)]);
                assert_eq!(svc.desired_count(), 1, "dev's count, within autoscaling's 1..5");
            }
            "worker" => {
                assert!(svc.load_balancers().is_empty());
                assert_eq!(
                    strategy,
                    [("FARGATE".to_string(), 1, 1), ("FARGATE_SPOT".to_string(), 3, 0)],
                    "Spot in dev"
                );
            }
            other => panic!("unexpected service {other}"),
        }
    }
    // One deployment each, though the push arrived twice at once.
    for service in ["web", "worker"] {
        let st: Value = w.state_document("dev", service).await.unwrap().unwrap();
        assert_eq!(st["deployments_started"], 1, "{service}: {st}");
    }
    // Target tracking as the config says, for web only.
    let registered = w.autoscaling.calls.of("RegisterScalableTarget");
    assert_eq!(registered.len(), 1, "{:?}", w.autoscaling.calls.all());
    assert_eq!(registered[0]["ResourceId"], "service/booking-dev/web");
    assert_eq!(registered[0]["ScalableDimension"], "ecs:service:DesiredCount");
    assert_eq!((registered[0]["MinCapacity"].as_i64(), registered[0]["MaxCapacity"].as_i64()), (Some(1), Some(5)));
    let mut policies: Vec<(String, f64)> = w
        .autoscaling
        .calls
        .of("PutScalingPolicy")
        .iter()
        .map(|p| {
            let c = &p["TargetTrackingScalingPolicyConfiguration"];
            (
                c["PredefinedMetricSpecification"]["PredefinedMetricType"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                c["TargetValue"].as_f64().unwrap(),
            )
        })
        .collect();
    policies.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        policies,
        [
            ("ECSServiceAverageCPUUtilization".to_string(), 70.0),
            ("ECSServiceAverageMemoryUtilization".to_string(), 80.0)
        ]
    );
}
