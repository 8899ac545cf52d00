//! The bootstrap's AWS calls: CloudFormation does the provisioning ([`stacks`]); the rest
//! ([`account`]) are the few checks and clean-ups CloudFormation cannot do for us — the
//! database password written before the stack, the services still running in a cluster, and
//! the data a `destroy --project --delete-data` empties.

mod account;
mod stacks;

use aws_sdk_cloudformation::error::ProvideErrorMetadata;

pub use account::{Data, Store};
pub use stacks::{Drift, Event, Outcome, Pending};

/// One client per service the bootstrap calls.
pub struct Cloud {
    cf: aws_sdk_cloudformation::Client,
    ssm: aws_sdk_ssm::Client,
    ecs: aws_sdk_ecs::Client,
    ecr: aws_sdk_ecr::Client,
    s3: aws_sdk_s3::Client,
    sns: aws_sdk_sns::Client,
}

impl Cloud {
    pub fn new(sdk: &aws_config::SdkConfig) -> Cloud {
        Cloud {
            cf: aws_sdk_cloudformation::Client::new(sdk),
            ssm: aws_sdk_ssm::Client::new(sdk),
            ecs: aws_sdk_ecs::Client::new(sdk),
            ecr: aws_sdk_ecr::Client::new(sdk),
            s3: aws_sdk_s3::Client::new(sdk),
            sns: aws_sdk_sns::Client::new(sdk),
        }
    }
}

type SdkError<E> =
    aws_sdk_cloudformation::error::SdkError<E, aws_smithy_runtime_api::http::Response>;

/// An SDK error as one line: the service's code and message, or the transport's error.
fn describe<E: ProvideErrorMetadata + std::error::Error + 'static>(e: &SdkError<E>) -> String {
    match e.as_service_error() {
        Some(s) => format!("{}: {}", s.code().unwrap_or("error"), s.message().unwrap_or_default()),
        None => format!("{}", aws_smithy_types::error::display::DisplayErrorContext(e)),
    }
}

/// An SDK result as the bootstrap reports it: the operation, what it was about, the error.
trait Call<T> {
    fn call(self, operation: &str, on: &str) -> anyhow::Result<T>;
}

impl<T, E: ProvideErrorMetadata + std::error::Error + 'static> Call<T> for Result<T, SdkError<E>> {
    fn call(self, operation: &str, on: &str) -> anyhow::Result<T> {
        self.map_err(|e| anyhow::anyhow!("{operation} {on}: {}", describe(&e)))
    }
}

/// Whether the service answered that the thing asked about does not exist.
fn missing<E: ProvideErrorMetadata>(e: &SdkError<E>, words: &[&str]) -> bool {
    e.as_service_error().is_some_and(|s| {
        let text = format!("{} {}", s.code().unwrap_or(""), s.message().unwrap_or(""));
        words.iter().any(|w| text.contains(w))
    })
}
