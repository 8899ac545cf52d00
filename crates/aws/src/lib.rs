//! Adapters: the core's ports implemented with the AWS SDK (ECS, ECR, S3, SNS, STS), the S3
//! state store with compare-and-swap, the config sources, and error classification.

pub mod adapters;
pub mod errors;
pub mod source;

use aws_config::BehaviorVersion;
use harbormaster_core::bundle::{Bundle, BundleError};

pub use adapters::{AwsPorts, Lazy};
pub use source::Source;

/// The environment variable naming the GitOps source: `s3://bucket/prefix` or a folder.
pub const CONFIG_ENV: &str = "HARBORMASTER_CONFIG";

/// Attempts per AWS call unless `AWS_MAX_ATTEMPTS` says otherwise. The SDK's default of 3 gives
/// up on one call in 37 when a third of calls are throttled (a busy account's ECS control plane);
/// 5 makes it one in 400, and a deployment that still meets it is retried by the next tick.
pub const MAX_ATTEMPTS: u32 = 5;

/// SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`,
/// `AWS_MAX_ATTEMPTS`, `AWS_RETRY_MODE`).
pub async fn sdk_config() -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(shared_https());
    // Lambda hands a function its role's credentials in the environment ("Defined runtime
    // environment variables", Lambda Developer Guide). Reading them there spares the cold start
    // the default chain, whose web-identity provider builds an STS client at load, and with it
    // an HTTPS connector and the trusted roots, before any event has arrived.
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some();
    if in_lambda && std::env::var_os("AWS_ACCESS_KEY_ID").is_some() {
        loader = loader.credentials_provider(
            aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
        );
    }
    // Every call ends within CALL_TIMEOUT, retries included: a mutating call is sent only while
    // the lease has that long left, so it cannot land after another invocation took over.
    loader = loader.timeout_config(
        aws_config::timeout::TimeoutConfig::builder()
            .operation_timeout(harbormaster_core::engine::CALL_TIMEOUT)
            .build(),
    );
    if std::env::var_os("AWS_MAX_ATTEMPTS").is_none()
        && std::env::var_os("AWS_RETRY_MODE").is_none()
    {
        loader = loader.retry_config(
            aws_config::retry::RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS),
        );
    }
    loader.load().await
}

/// The SDK's default HTTPS client (rustls with aws-lc, proxies from the environment), built
/// once and shared by every service client. Left to themselves, each service client makes its
/// own client, with its own connectors and connection pool (the trusted roots are loaded once
/// per process either way: the SDK keeps them in a static).
fn shared_https() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::proxy::ProxyConfig;
    use aws_smithy_http_client::{tls, Builder, ConnectorBuilder};
    // The same connector `aws-smithy-runtime` builds by default (`default_https_client`);
    // connectors are made per timeout settings and cached inside this one client.
    Builder::new().build_with_connector_fn(move |settings, components| {
        let aws_lc = tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc);
        let mut connector = ConnectorBuilder::default().tls_provider(aws_lc);
        connector.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            connector.set_sleep_impl(components.sleep_impl());
        }
        connector.set_proxy_config(Some(ProxyConfig::from_env()));
        connector.build()
    })
}

/// What a Lambda function builds once at cold start and reuses while warm.
#[derive(Clone)]
pub struct Agent {
    pub ports: AwsPorts,
    pub source: Source,
    /// The config as last checked, reused while its texts are unchanged (warm invocations).
    bundles: std::sync::Arc<harbormaster_core::bundle::BundleCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("missing setting {0}: set it to s3://<bucket>/<prefix> (the synced GitOps source) or a folder")]
    Missing(&'static str),
    #[error("no AWS region: set AWS_REGION, or `region` in harbormaster.toml")]
    NoRegion,
    #[error("HARBORMASTER_CONFIG_LAYOUT: expected `published` (the default: what `harbormaster publish` writes) or `folder` (the prefix holds the config files themselves)")]
    Layout,
}

impl Agent {
    /// Builds clients and the config source from the environment; fails at once, naming what is
    /// missing, rather than at the first event.
    pub async fn from_env() -> Result<Agent, SetupError> {
        let location = std::env::var(CONFIG_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .ok_or(SetupError::Missing(CONFIG_ENV))?;
        Agent::new(&location).await
    }

    pub async fn new(location: &str) -> Result<Agent, SetupError> {
        let mut sdk = sdk_config().await;
        if sdk.region().is_none() {
            // The project's own region, when the environment names none (a laptop without a
            // profile region): read from a local config folder before any call.
            let region = region_in_folder(location).ok_or(SetupError::NoRegion)?;
            sdk = sdk
                .into_builder()
                .region(aws_config::Region::new(region))
                .build();
        }
        let agent = Agent::at(&sdk, location);
        match std::env::var(source::LAYOUT_ENV).ok().as_deref() {
            None | Some("" | "published") => Ok(agent),
            Some("folder") => Ok(Agent::of(agent.ports, agent.source.as_plain_folder())),
            Some(_) => Err(SetupError::Layout),
        }
    }

    /// The agent of `sdk` reading the config at `location`. Builds no client: each is built
    /// when a call first needs it, so a function is ready for its first event before any
    /// HTTPS connector or trusted root is made (the S3 source's client included).
    pub fn at(sdk: &aws_config::SdkConfig, location: &str) -> Agent {
        let ports = AwsPorts::new(sdk, "");
        let source = Source::parse(location, &ports.clients.s3);
        Agent::of(ports, source)
    }

    /// An agent of these ports and this source, with nothing cached yet.
    pub fn of(ports: AwsPorts, source: Source) -> Agent {
        Agent {
            ports,
            source,
            bundles: Default::default(),
        }
    }

    /// The checked config and templates, and ports pointed at the config's state bucket.
    pub async fn prepare(&self) -> Result<(AwsPorts, Bundle), BundleError> {
        let bundle = Bundle::load_cached(&self.source, &self.bundles).await?;
        let ports = self.ports.with_state_bucket(&bundle.config.state_bucket);
        Ok((ports, bundle))
    }
}

/// `region` in `<folder>/harbormaster.toml`, if the location is a folder and sets one. The
/// file is checked fully later; here a file that does not parse just has no region.
fn region_in_folder(location: &str) -> Option<String> {
    if location.starts_with("s3://") {
        return None;
    }
    let path = std::path::Path::new(location).join(harbormaster_core::config::CONFIG_FILE);
    let text = std::fs::read_to_string(path).ok()?;
    let table: toml::Table = toml::from_str(&text).ok()?;
    table.get("region")?.as_str().map(str::to_owned)
}

pub mod handler;
pub mod pipeline;
pub mod publish;
pub mod telemetry;
