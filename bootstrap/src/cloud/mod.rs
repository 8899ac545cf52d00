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

/// An SDK error as one line: the service's code and message, or the transport's error.
fn describe<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(s) => format!(
            "{}: {}",
            s.code().unwrap_or("error"),
            s.message().unwrap_or_default()
        ),
        None => format!(
            "{}",
            aws_smithy_types::error::display::DisplayErrorContext(e)
        ),
    }
}

/// Whether the service answered that the thing asked about does not exist.
fn missing<E, R>(e: &aws_sdk_cloudformation::error::SdkError<E, R>, words: &[&str]) -> bool
where
    E: ProvideErrorMetadata,
{
    e.as_service_error().is_some_and(|s| {
        let text = format!("{} {}", s.code().unwrap_or(""), s.message().unwrap_or(""));
        words.iter().any(|w| text.contains(w))
    })
}
