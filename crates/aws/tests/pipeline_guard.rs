//! The pipeline job's guard: a panic in a job's step is one failure CodePipeline hears, and the
//! profiles that build the functions unwind so that the guard can catch it.

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_aws::adapters::Clients;
use mocked::*;
use serde_json::json;

/// The release profile unwinds (pinned by the test below),
/// so a panic inside a job's step is caught here and CodePipeline hears exactly one failure
/// rather than waiting for its own timeout. The step is made to panic directly: no input of
/// ours is known to, which is the point of the guard.
#[tokio::test]
async fn a_panicking_job_step_is_reported_once_as_a_failure() {
    use harbormaster_aws::pipeline::guarded;
    use harbormaster_core::pipeline::job::{self, JobResult};
    use harbormaster_core::pipeline::JobInputError;

    let failure = mock!(aws_sdk_codepipeline::Client::put_job_failure_result)
        .match_requests(|r| {
            r.job_id() == Some("job-1")
                && r.failure_details()
                    .is_some_and(|d| d.message().contains("internal error in the agent: boom"))
        })
        .then_output(|| {
            aws_sdk_codepipeline::operation::put_job_failure_result::PutJobFailureResultOutput::builder().build()
        });
    let success = mock!(aws_sdk_codepipeline::Client::put_job_success_result).then_output(|| {
        aws_sdk_codepipeline::operation::put_job_success_result::PutJobSuccessResultOutput::builder(
        )
        .build()
    });
    let agent = from(Clients {
        codepipeline: client!(aws_sdk_codepipeline, [&failure, &success]).into(),
        ..silent()
    });
    let event = json!({"CodePipeline.job": {"id": "job-1"}});
    let step = async {
        if event.is_object() {
            panic!("boom");
        }
        Err::<JobResult, _>(JobInputError("unreachable".into()))
    };
    let result = guarded(step, &event, None).await;
    let report = job::report(&agent, "job-1".into(), result, Default::default())
        .await
        .expect("the failure is reported");
    assert!(matches!(report.result, JobResult::Failed { .. }));
    assert_eq!(failure.num_calls(), 1);
    assert_eq!(success.num_calls(), 0);
}

/// `catch_unwind` only works when panics unwind: the profiles that build the functions
/// (`release`, which SAM's rust-cargolambda and `cargo xtask package` use, and `dev`) must not
/// abort.
#[test]
fn the_profiles_that_build_the_functions_unwind() {
    let manifest: toml::Table = include_str!("../../../Cargo.toml").parse().unwrap();
    let profiles = manifest["profile"].as_table().unwrap();
    for name in ["release", "dev"] {
        let panic = profiles
            .get(name)
            .and_then(|p| p.get("panic"))
            .and_then(|p| p.as_str())
            .unwrap_or("unwind");
        assert_eq!(panic, "unwind", "[profile.{name}] panic");
    }
}
