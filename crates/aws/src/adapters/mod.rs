//! The core's ports implemented with the AWS SDK.

mod autoscaling;
mod backlogs;
mod cloudwatch;
mod ecr;
mod notify;
mod parameters;
mod services;
mod state;
mod task_definitions;
mod tasks;

use std::sync::Arc;

use chrono::{DateTime, Utc};
use harbormaster_core::config::Environment;
use harbormaster_core::ports::*;
use harbormaster_core::template::Placement;
use tokio::sync::OnceCell;

use crate::errors::classify;

/// The SDK clients the adapters use.
#[derive(Clone)]
pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sts: aws_sdk_sts::Client,
    pub ssm: aws_sdk_ssm::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// Only the pipeline job and `approve --pipeline` call it.
    pub codepipeline: aws_sdk_codepipeline::Client,
    /// Worker backlogs.
    pub sqs: aws_sdk_sqs::Client,
    /// Target tracking of services.
    pub autoscaling: aws_sdk_applicationautoscaling::Client,
}

/// One set of clients, built once per process (a Lambda's cold start) and shared.
#[derive(Clone)]
pub struct AwsPorts {
    pub clients: Clients,
    pub state_bucket: String,
    pub region: String,
    account: Arc<OnceCell<String>>,
    /// State documents whose GetObject was denied: S3 hides a missing key that way from a
    /// caller without `s3:ListBucket`, so a create may follow; if that create finds one, it
    /// exists and cannot be read, which is said plainly instead of retried as a conflict.
    hidden: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl AwsPorts {
    pub fn new(sdk: &aws_config::SdkConfig, state_bucket: &str) -> Self {
        let s3 = aws_sdk_s3::Client::from_conf(
            aws_sdk_s3::config::Builder::from(sdk)
                // Path-style works with every endpoint, emulators included, and with bucket
                // names that contain dots.
                .force_path_style(true)
                .build(),
        );
        AwsPorts {
            clients: Clients {
                ecs: aws_sdk_ecs::Client::new(sdk),
                ecr: aws_sdk_ecr::Client::new(sdk),
                s3,
                sns: aws_sdk_sns::Client::new(sdk),
                sts: aws_sdk_sts::Client::new(sdk),
                ssm: aws_sdk_ssm::Client::new(sdk),
                cloudwatch: aws_sdk_cloudwatch::Client::new(sdk),
                codepipeline: aws_sdk_codepipeline::Client::new(sdk),
                sqs: aws_sdk_sqs::Client::new(sdk),
                autoscaling: aws_sdk_applicationautoscaling::Client::new(sdk),
            },
            state_bucket: state_bucket.to_owned(),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_default(),
            account: Arc::new(OnceCell::new()),
            hidden: Default::default(),
        }
    }

    /// From clients built elsewhere (tests with mocked HTTP, say).
    pub fn from_clients(c: Clients, state_bucket: &str, region: &str) -> Self {
        AwsPorts {
            clients: c,
            state_bucket: state_bucket.to_owned(),
            region: region.to_owned(),
            account: Arc::new(OnceCell::new()),
            hidden: Default::default(),
        }
    }

    pub fn with_state_bucket(&self, bucket: &str) -> Self {
        let mut p = self.clone();
        p.state_bucket = bucket.to_owned();
        p
    }

    async fn account(&self) -> Result<String, PortError> {
        self.account
            .get_or_try_init(|| async {
                let out = self
                    .clients
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| classify("GetCallerIdentity", &e))?;
                out.account.ok_or_else(|| {
                    PortError::new(
                        ErrorKind::Invalid,
                        "GetCallerIdentity",
                        "no account in the answer",
                    )
                })
            })
            .await
            .cloned()
    }
}

pub(crate) fn to_utc(t: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or(DateTime::UNIX_EPOCH)
}

impl Placements for AwsPorts {
    async fn placement(&self, environment: &Environment) -> Result<Placement, PortError> {
        let account = match &environment.account_id {
            Some(a) => a.clone(),
            None => self.account().await?,
        };
        Ok(Placement {
            account,
            region: self.region.clone(),
        })
    }
}

impl Clock for AwsPorts {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    async fn pause(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await
    }
}
