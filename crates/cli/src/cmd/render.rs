//! `harbormaster render`: the task definition a deployment would register.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use harbormaster_aws::Source;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::engine::render_for;
use harbormaster_core::image::resolve_image;
use harbormaster_core::image::Digest;
use harbormaster_core::template::{Placement, RenderInput, RenderedTaskDefinition};

use super::TargetArgs;
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Image to pin: a tag or digest in the service's repository (looked up in ECR).
    #[arg(long, conflicts_with = "digest")]
    image: Option<String>,
    /// Pin this digest without asking ECR (sha256:…); a placeholder digest when omitted.
    #[arg(long)]
    digest: Option<String>,
    /// Account to render for, without asking STS.
    #[arg(long)]
    account: Option<String>,
    /// Region to render for (default: the config's, else the SDK's).
    #[arg(long)]
    region: Option<String>,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let rendered = if self.image.is_none() && self.account.is_some() {
            self.offline(cx).await?
        } else {
            self.with_aws(cx).await?
        };
        out!("{}", serde_json::to_string_pretty(&rendered.body)?);
        Ok(Exit::Done)
    }

    /// Everything given on the command line: no AWS call.
    async fn offline(&self, cx: &Context) -> Result<RenderedTaskDefinition> {
        let TargetArgs { env, service } = &self.target;
        let bundle = Bundle::load(&Source::Folder(PathBuf::from(&cx.config))).await?;
        let (e, s, t) = bundle.config.target(env, service).with_context(|| {
            format!("service `{service}` is not deployed to `{env}` by the config")
        })?;
        let digest = parse_digest(self.digest.as_deref())?;
        for note in &bundle.templates[service].notes {
            eprintln!("{}: note: {note}", bundle.templates[service].file);
        }
        let placement = Placement {
            account: self.account.clone().unwrap_or_default(),
            region: self
                .region
                .clone()
                .or(bundle.config.region.clone())
                .unwrap_or_else(|| "us-east-1".into()),
        };
        Ok(bundle.templates[service].render(&RenderInput {
            config: &bundle.config,
            environment: e,
            service: s,
            target: t,
            digest: &digest,
            placement: &placement,
            deployment_id: "render",
        })?)
    }

    /// The image looked up in ECR, the account and the bootstrap's outputs from AWS.
    async fn with_aws(&self, cx: &Context) -> Result<RenderedTaskDefinition> {
        let TargetArgs { env, service } = &self.target;
        let (ports, bundle) = cx.prepare().await?;
        let (_, s, _) = bundle.config.target(env, service).with_context(|| {
            format!("service `{service}` is not deployed to `{env}` by the config")
        })?;
        let digest = match &self.image {
            Some(reference) => {
                resolve_image(&ports, &s.repository, reference)
                    .await?
                    .digest
            }
            None => parse_digest(self.digest.as_deref())?,
        };
        Ok(render_for(&ports, &bundle, env, service, &digest, "render").await?)
    }
}

fn parse_digest(d: Option<&str>) -> Result<Digest> {
    match d {
        Some(d) => Ok(Digest::parse(d)?),
        None => Ok(Digest::parse(&format!("sha256:{}", "0".repeat(64)))?),
    }
}
