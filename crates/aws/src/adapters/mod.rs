//! The core's ports implemented with the AWS SDK.

mod autoscaling;
mod backlogs;
mod cloudwatch;
mod described;
mod ecr;
mod lazy;
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
pub use lazy::Lazy;

/// The SDK clients the adapters use, each built on its first call (see [`Lazy`]).
#[derive(Clone)]
pub struct Clients {
    pub ecs: Lazy<aws_sdk_ecs::Client>,
    pub ecr: Lazy<aws_sdk_ecr::Client>,
    pub s3: Lazy<aws_sdk_s3::Client>,
    pub sns: Lazy<aws_sdk_sns::Client>,
    pub sts: Lazy<aws_sdk_sts::Client>,
    pub ssm: Lazy<aws_sdk_ssm::Client>,
    pub cloudwatch: Lazy<aws_sdk_cloudwatch::Client>,
    /// Only the pipeline job and `approve --pipeline` call it.
    pub codepipeline: Lazy<aws_sdk_codepipeline::Client>,
    /// Worker backlogs.
    pub sqs: Lazy<aws_sdk_sqs::Client>,
    /// Target tracking of services.
    pub autoscaling: Lazy<aws_sdk_applicationautoscaling::Client>,
}

impl Clients {
    /// Every client of `sdk`, none built yet.
    pub fn of(sdk: &aws_config::SdkConfig) -> Clients {
        macro_rules! lazy {
            ($krate:ident) => {{
                let sdk = sdk.clone();
                Lazy::new(move || $krate::Client::new(&sdk))
            }};
        }
        let sdk_for_s3 = sdk.clone();
        Clients {
            ecs: lazy!(aws_sdk_ecs),
            ecr: lazy!(aws_sdk_ecr),
            // Path-style works with every endpoint, emulators included, and with bucket names
            // that contain dots.
            s3: Lazy::new(move || {
                let conf = aws_sdk_s3::config::Builder::from(&sdk_for_s3).force_path_style(true);
                aws_sdk_s3::Client::from_conf(conf.build())
            }),
            sns: lazy!(aws_sdk_sns),
            sts: lazy!(aws_sdk_sts),
            ssm: lazy!(aws_sdk_ssm),
            cloudwatch: lazy!(aws_sdk_cloudwatch),
            codepipeline: lazy!(aws_sdk_codepipeline),
            sqs: lazy!(aws_sdk_sqs),
            autoscaling: lazy!(aws_sdk_applicationautoscaling),
        }
    }

    /// The clients built so far, by name (what a function's start-up built).
    pub fn built(&self) -> Vec<&'static str> {
        [
            ("ecs", self.ecs.is_built()),
            ("ecr", self.ecr.is_built()),
            ("s3", self.s3.is_built()),
            ("sns", self.sns.is_built()),
            ("sts", self.sts.is_built()),
            ("ssm", self.ssm.is_built()),
            ("cloudwatch", self.cloudwatch.is_built()),
            ("codepipeline", self.codepipeline.is_built()),
            ("sqs", self.sqs.is_built()),
            ("autoscaling", self.autoscaling.is_built()),
        ]
        .into_iter()
        .filter_map(|(name, built)| built.then_some(name))
        .collect()
    }
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
    /// `repository@digest` of images DescribeImages said are single-platform: a digest's
    /// manifest never changes, so their platform check costs no second call (bounded).
    pub(crate) single_platform: Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

impl AwsPorts {
    pub fn new(sdk: &aws_config::SdkConfig, state_bucket: &str) -> Self {
        let region = sdk.region().map(|r| r.to_string()).unwrap_or_default();
        AwsPorts::from_clients(Clients::of(sdk), state_bucket, &region)
    }

    /// From clients built elsewhere (tests with mocked HTTP, say).
    pub fn from_clients(c: Clients, state_bucket: &str, region: &str) -> Self {
        AwsPorts {
            clients: c,
            state_bucket: state_bucket.to_owned(),
            region: region.to_owned(),
            account: Arc::new(OnceCell::new()),
            hidden: Default::default(),
            single_platform: Default::default(),
        }
    }

    pub fn with_state_bucket(&self, bucket: &str) -> Self {
        let mut p = self.clone();
        p.state_bucket = bucket.to_owned();
        p
    }

    /// The account, when the caller already knows it (a Lambda's own ARN names it), so that
    /// no GetCallerIdentity is needed. Anything but twelve digits is ignored.
    pub fn know_account(&self, account: &str) {
        if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
            let _ = self.account.set(account.to_owned());
        }
    }

    async fn account(&self) -> Result<String, PortError> {
        self.account
            .get_or_try_init(|| async {
                let out = self.identity().await?;
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

    async fn identity(
        &self,
    ) -> Result<aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput, PortError>
    {
        (self.clients.sts.get_caller_identity().send().await)
            .map_err(|e| classify("GetCallerIdentity", &e))
    }

    /// Who the credentials are, as AWS says (GetCallerIdentity's ARN: a role session names the
    /// person or the build); the same call tells the account. What approvals and rollbacks
    /// record: `$USER` alone is whatever the caller's machine says.
    pub async fn caller_arn(&self) -> Result<String, PortError> {
        let out = self.identity().await?;
        if let Some(account) = out.account() {
            self.know_account(account);
        }
        out.arn.ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                "GetCallerIdentity",
                "no ARN in the answer",
            )
        })
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
