//! `harbormaster deploy`: a person's or a build's release of an image, optionally followed to
//! its end.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::{request_deploy, running_image};
use harbormaster_core::image::resolve_image;

use super::{wait, DryRun, TargetArgs};
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// A tag, sha256:…, repo:tag or repo@sha256:… of the service's repository.
    #[arg(
        long,
        required_unless_present_any = ["image_detail", "config_only"],
        conflicts_with_all = ["image_detail", "config_only"]
    )]
    image: Option<String>,
    /// The build's imageDetail.json or imagedefinitions.json, instead of --image.
    #[arg(long, conflicts_with = "config_only")]
    image_detail: Option<PathBuf>,
    /// The image the service runs, with the config git has now: carries a pending config
    /// release where `config_releases = "manual"` (see `harbormaster status`).
    #[arg(long)]
    config_only: bool,
    /// Deploy even if the release is marked bad, or while a guard alarm is in ALARM.
    #[arg(long)]
    force: bool,
    /// Follow the deployment until it ends: exit 0 only if it succeeded.
    #[arg(long)]
    wait: bool,
    /// With --wait: give up after this many minutes (exit 4).
    #[arg(long, default_value_t = 30)]
    timeout_minutes: u64,
    #[command(flatten)]
    plan: DryRun,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let TargetArgs { env, service } = &self.target;
        let (ports, bundle) = cx.prepare().await?;
        let target = self.target.target();
        let image = match (self.image, &self.image_detail) {
            (Some(i), _) => i,
            (None, Some(path)) => image_from_file(&bundle, service, path)?,
            (None, None) if self.config_only => running_image(&ports, &target).await?.to_string(),
            (None, None) => bail!("give --image, --image-detail or --config-only"),
        };
        let opts = self.plan.options();
        let by = cx.actor().await?;
        let report =
            request_deploy(&ports, &bundle, &target, &image, &by, self.force, opts).await?;
        self.plan.print(&report, cx.json);
        if self.wait && !self.plan.dry_run {
            let Some((_, svc, _)) = bundle.config.target(env, service) else {
                bail!("service `{service}` is not deployed to `{env}` by the config");
            };
            let digest = resolve_image(&ports, &svc.repository, &image).await?.digest;
            let minutes = self.timeout_minutes;
            return wait::until_done(&ports, &bundle, &target, &digest, minutes).await;
        }
        Ok(Exit::of_targets(std::slice::from_ref(&report)))
    }
}

/// The image reference for `service` in a build's imageDetail.json or imagedefinitions.json.
fn image_from_file(bundle: &Bundle, service: &str, path: &Path) -> Result<String> {
    use harbormaster_core::pipeline::BuiltImages;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = std::collections::BTreeMap::from([(name, bytes)]);
    let built = BuiltImages::from_artifact(&path.display().to_string(), &files)?;
    let containers = bundle
        .config
        .services
        .get(service)
        .and_then(|s| s.containers.clone())
        .unwrap_or_default();
    Ok(built.for_service(service, &containers)?)
}
