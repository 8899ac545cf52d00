//! The strict proxy every `World` puts between the agent (and the CLI) and the emulator: a
//! request AWS refuses is refused there too, as AWS answers it, where ministack would have
//! taken it (`harbormaster_testkit::strict` holds the rules and their sources).

use harbormaster_e2e::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_aws_refuses_the_agents_endpoint_refuses() {
    let w = World::start().await.unwrap();
    let ecs = aws_sdk_ecs::Client::new(&w.agent_sdk);
    let err = ecs
        .create_service()
        .cluster("booking-dev")
        .service_name("strict")
        .task_definition("booking-dev-web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .health_check_grace_period_seconds(60)
        .send()
        .await
        .unwrap_err();
    let text = format!("{}", aws_sdk_ecs::error::DisplayErrorContext(&err));
    assert!(text.contains("InvalidParameterException"), "{text}");
    assert_eq!(
        w.strict.refused(),
        ["ecs:CreateService: a grace period needs a load balancer"]
    );
    // The harness's own clients reach the emulator directly, which takes it: the proxy is
    // what makes the difference.
    let direct = w
        .clients
        .ecs
        .create_service()
        .cluster("booking-dev")
        .service_name("strict")
        .task_definition("booking-dev-web")
        .launch_type(aws_sdk_ecs::types::LaunchType::Fargate)
        .health_check_grace_period_seconds(60)
        .send()
        .await;
    assert!(direct.is_ok(), "ministack accepts it: {direct:?}");
}

/// A strategy naming a provider the cluster lacks: the proxy asks the emulator which providers
/// the cluster has (DescribeClusters) and refuses as ECS does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_the_cluster_lacks_is_refused() {
    let w = World::start().await.unwrap();
    w.clients
        .ecs
        .create_cluster()
        .cluster_name("bare")
        .send()
        .await
        .unwrap();
    let ecs = aws_sdk_ecs::Client::new(&w.agent_sdk);
    let spot = aws_sdk_ecs::types::CapacityProviderStrategyItem::builder()
        .capacity_provider("FARGATE_SPOT")
        .weight(1)
        .build()
        .unwrap();
    let err = (ecs.create_service().cluster("bare").service_name("s"))
        .task_definition("booking-dev-web")
        .capacity_provider_strategy(spot)
        .send()
        .await
        .unwrap_err();
    let text = format!("{}", aws_sdk_ecs::error::DisplayErrorContext(&err));
    assert!(text.contains("not associated with the cluster"), "{text}");
}
