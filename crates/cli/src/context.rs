//! What every command shares, built once: the config location, the caller's name, and the
//! agent (AWS clients and config source), made only when a command first needs it.

use anyhow::Result;
use harbormaster_aws::{Agent, AwsPorts};
use harbormaster_core::bundle::Bundle;
use tokio::sync::OnceCell;

pub struct Context {
    /// `s3://bucket/prefix` or a folder.
    pub config: String,
    /// Who asks, as the machine says (`$USER`): only a label beside [`Context::actor`].
    pub caller: String,
    /// `--json`: reports for scripts instead of people.
    pub json: bool,
    agent: OnceCell<Agent>,
}

impl Context {
    pub fn new(config: String, json: bool) -> Self {
        Context {
            config,
            json,
            caller: std::env::var("USER").unwrap_or_else(|_| "cli".into()),
            agent: OnceCell::new(),
        }
    }

    /// The AWS clients and config source; built on first use (`validate` of a folder never
    /// needs them).
    pub async fn agent(&self) -> Result<&Agent> {
        let agent = self
            .agent
            .get_or_try_init(|| Agent::new(&self.config))
            .await?;
        Ok(agent)
    }

    /// Who asks, as AWS says: the caller's ARN (STS GetCallerIdentity), `$USER` beside it as a
    /// label. Recorded by deploys, approvals and rollbacks, where who decided is the record. Whoever can
    /// write the state bucket can still write any name there; the audit of who called what is
    /// CloudTrail.
    pub async fn actor(&self) -> Result<String> {
        let arn = self.agent().await?.ports.caller_arn().await?;
        Ok(format!("{arn} ({})", self.caller))
    }

    /// The checked config, and ports pointed at its state bucket.
    pub async fn prepare(&self) -> Result<(AwsPorts, Bundle)> {
        Ok(self.agent().await?.prepare().await?)
    }
}
