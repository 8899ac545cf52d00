//! The functions' config source on S3 (issue 30, finding 5): a published prefix whose pointer
//! is denied or missing is an error naming the key and the permissions, never a silent read of
//! whatever else the prefix holds. The emulator answers 404 where S3 answers 403 (a missing key
//! without `s3:ListBucket`, or a bucket policy that denies it), so the 403 is a recorded
//! answer here: S3's GetObject reference, "Permissions"
//! (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_aws::Source;
use harbormaster_core::bundle::{Bundle, BundleError};
use harbormaster_core::ports::ErrorKind;

const CONFIG: &str = r#"project = "booking"
state_bucket = "booking-state"
notification_topic = "arn:aws:sns:us-east-1:123456789012:booking-deployments"

[environments.dev]
cluster = "booking-dev"

[services.web]
repository = "booking/web"
task_definition = "taskdefs/web.json"
"#;

const TEMPLATE: &str = r#"{"family": "booking-${env}-web", "cpu": "256", "memory": "512",
  "containerDefinitions": [{"name": "web", "image": "booking/web", "essential": true}]}"#;

const DENIED: &str = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
const NO_SUCH_KEY: &str =
    "<Error><Code>NoSuchKey</Code><Message>The specified key does not exist.</Message></Error>";

fn error_of(e: BundleError) -> harbormaster_core::ports::PortError {
    match e {
        BundleError::Read { source, .. } => source,
        other => panic!("not a read error: {other}"),
    }
}

#[tokio::test]
async fn finding_5_a_denied_pointer_is_an_error_naming_it_not_a_fall_back() {
    let pointer = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("config/current.json"))
        .sequence()
        .http_status(403, Some(DENIED.into()))
        .build();
    // An older sync left a plain config at the prefix: it must never be read.
    let stale = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|r| r.key() == Some("config/harbormaster.toml"))
        .then_output(|| {
            aws_sdk_s3::operation::get_object::GetObjectOutput::builder()
                .body(CONFIG.as_bytes().to_vec().into())
                .build()
        });
    let s3 = client!(aws_sdk_s3, [&pointer, &stale]);
    let source = Source::parse("s3://booking-state/config", &s3.into());
    let e = error_of(Bundle::load(&source).await.unwrap_err());
    assert_eq!(e.kind, ErrorKind::Denied, "{e}");
    for named in [
        "s3://booking-state/config/current.json",
        "s3:GetObject",
        "s3:ListBucket",
    ] {
        assert!(e.message.contains(named), "{named}: {e}");
    }
    assert_eq!(stale.num_calls(), 0, "the stale plain config was not read");
}

#[tokio::test]
async fn finding_5_a_missing_pointer_says_what_to_publish_or_declare() {
    let pointer = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(404, Some(NO_SUCH_KEY.into()))
        .build();
    let s3 = client!(aws_sdk_s3, [&pointer]);
    let source = Source::parse("s3://booking-state/config", &s3.into());
    let e = error_of(Bundle::load(&source).await.unwrap_err());
    assert_eq!(e.kind, ErrorKind::NotFound, "{e}");
    assert!(
        e.message
            .contains("harbormaster publish --to s3://booking-state/config")
            && e.message.contains("HARBORMASTER_CONFIG_LAYOUT=folder"),
        "{e}"
    );
}

/// Declared, a plain folder in S3 reads as before (no pointer asked for).
#[tokio::test]
async fn a_prefix_declared_a_folder_reads_its_files() {
    let file = |key: &'static str, text: &'static str| {
        mock!(aws_sdk_s3::Client::get_object)
            .match_requests(move |r| r.key() == Some(key))
            .then_output(move || {
                aws_sdk_s3::operation::get_object::GetObjectOutput::builder()
                    .body(text.as_bytes().to_vec().into())
                    .build()
            })
    };
    let config = file("config/harbormaster.toml", CONFIG);
    let web = file("config/taskdefs/web.json", TEMPLATE);
    let s3 = client!(aws_sdk_s3, [&config, &web]);
    let source = Source::parse("s3://booking-state/config", &s3.into()).as_plain_folder();
    let b = Bundle::load(&source).await.unwrap();
    assert_eq!(b.config.project, "booking");
}

/// Issue 33, item 9: the first `publish` by a CodeBuild role without `s3:ListBucket` was
/// refused: S3 answers 403 for the pointer that does not exist yet. The publisher alone reads
/// that as "none yet" (its pointer write is conditional, so it cannot overwrite one it was not
/// allowed to see); a denied write names what the role needs.
#[tokio::test]
async fn item_9_a_first_publish_without_list_bucket_reads_the_denied_pointer_as_none() {
    use harbormaster_aws::publish::Destination;
    use harbormaster_core::publish::Bundles;
    let pointer = mock!(aws_sdk_s3::Client::get_object)
        .sequence()
        .http_status(403, Some(DENIED.into()))
        .build();
    let s3 = client!(aws_sdk_s3, [&pointer]);
    let dest = Destination::parse("s3://booking-gitops/harbormaster", s3).unwrap();
    assert_eq!(dest.current().await.unwrap(), None);
}
