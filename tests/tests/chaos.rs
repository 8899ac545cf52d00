//! The smaller chaos run (`cargo xtask chaos` is the full one): the push-to-deploy scenario
//! through microburst under each fault kind must end as it does without faults, and a
//! non-retryable error must fail the deployment at once, with a notification.

use harbormaster_e2e::chaos::{run, table, Size};

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_kind_ends_where_the_run_without_faults_does() {
    let runs = run(Size::Small, |r| {
        eprintln!("{}: {} — {}", r.fault, r.scenario.name(), r.outcome())
    })
    .await
    .expect("the chaos scenarios run");
    let report = table(&runs);
    eprintln!("{report}");
    if std::env::var_os("HARBORMASTER_CHAOS_ONLY").is_none() {
        assert_eq!(runs.len(), 6, "one run per fault kind");
    }
    for r in &runs {
        if r.failure.is_some() {
            eprintln!("{}: invocations\n{}", r.fault, r.log.join("\n"));
        }
        assert!(
            r.failure.is_none(),
            "{}: {}\n{report}",
            r.fault,
            r.outcome()
        );
        // A fault kind that never fired proved nothing.
        assert!(
            !r.fired.is_empty(),
            "{}: microburst fired no fault\n{report}",
            r.fault
        );
    }
}
