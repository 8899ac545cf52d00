//! 1,000 ECR push events over 50 services, concurrent, duplicated and out of order: exactly one
//! deployment per service, of its newest image. `cargo xtask bench` reports the same run's times.

use harbormaster_e2e::load::{run, EVENTS, SERVICES};
use harbormaster_e2e::World;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_pushes_makes_one_deployment_per_service_of_its_newest_image() {
    let w = World::start().await.unwrap();
    let r = run(&w).await.unwrap();
    eprintln!("{r:#?}");
    assert_eq!(r.events, EVENTS);
    assert_eq!(r.deployments.len(), SERVICES);
    let wrong: Vec<_> = r.deployments.iter().filter(|(_, (_, ok))| !ok).collect();
    assert!(
        wrong.is_empty(),
        "services without exactly one deployment of their newest image: {wrong:?}"
    );
}
