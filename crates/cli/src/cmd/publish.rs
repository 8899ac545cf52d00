//! `harbormaster publish`: the config folder, checked, as one immutable bundle in S3 and then
//! the pointer the functions read moved to it (see `harbormaster_aws::publish`). Republishing
//! an older commit is how config is rolled back.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use harbormaster_aws::publish::{pointer, Commit, Destination, Staged};
use harbormaster_aws::Source;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::config::CONFIG_FILE;

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// Where the functions read their config (their HARBORMASTER_CONFIG): s3://bucket/prefix.
    #[arg(long)]
    to: String,
    /// Check and say what would be published; upload nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upload the bundle but leave the pointer (and so the functions) where it is; prints the
    /// digest. `--activate DIGEST` later makes it current.
    #[arg(long, conflicts_with = "activate")]
    stage_only: bool,
    /// Make an already staged bundle current.
    #[arg(long)]
    activate: Option<String>,
    /// List the recent publishes instead.
    #[arg(long)]
    history: bool,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let folder = PathBuf::from(&cx.config);
        anyhow::ensure!(
            !cx.config.starts_with("s3://"),
            "publish reads a folder (the git checkout): set --config or HARBORMASTER_CONFIG to it"
        );
        if self.history {
            for p in destination(cx, &self.to).await?.history(10).await? {
                let field = |k: &str| p[k].as_str().unwrap_or("-").to_owned();
                let bundle = field("bundle");
                out!(
                    "{}  {}  {}  {}",
                    field("published_at"),
                    &bundle[..bundle.len().min(12)],
                    field("commit"),
                    p["message"].as_str().unwrap_or("")
                );
            }
            return Ok(Exit::Done);
        }
        // Checked whole first: nothing is uploaded when anything is wrong.
        let bundle = Bundle::load(&Source::Folder(folder.clone())).await?;
        let staged = Staged::new(files(&folder, &bundle)?);
        let commit = commit(&folder);
        if self.dry_run {
            out!(
                "would publish bundle {} ({} files) to {}",
                staged.digest,
                staged.files.len(),
                self.to
            );
            for path in staged.files.keys() {
                out!("  {path}");
            }
            return Ok(Exit::Done);
        }
        let dest = destination(cx, &self.to).await?;
        let current = dest.current().await?;
        if let Some(digest) = &self.activate {
            let staged_pointer = serde_json::json!({
                "bundle": digest,
                "published_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "activated": true,
            });
            dest.activate(&current, &staged_pointer)
                .await
                .map_err(conflict)?;
            out!("{digest} is current at {}", self.to);
            return Ok(Exit::Done);
        }
        dest.stage(&staged).await?;
        if self.stage_only {
            out!("staged {} at {} (not current)", staged.digest, self.to);
            return Ok(Exit::Done);
        }
        let p = pointer(&staged, chrono::Utc::now(), &commit);
        dest.activate(&current, &p).await.map_err(conflict)?;
        out!(
            "published {} ({} files{}) to {}",
            staged.digest,
            staged.files.len(),
            commit
                .id
                .as_deref()
                .map(|c| format!(", commit {c}"))
                .unwrap_or_default(),
            self.to
        );
        Ok(Exit::Done)
    }
}

async fn destination(cx: &Context, to: &str) -> Result<Destination> {
    let s3 = (*cx.agent().await?.ports.clients.s3).clone();
    Destination::parse(to, s3).context("--to must be s3://bucket/prefix")
}

fn conflict(e: harbormaster_core::ports::PortError) -> anyhow::Error {
    if e.kind == harbormaster_core::ports::ErrorKind::Conflict {
        anyhow::anyhow!("another publish moved the pointer first; nothing of this one is current: publish again")
    } else {
        e.into()
    }
}

/// The config and every template it names: what the functions read.
fn files(folder: &std::path::Path, bundle: &Bundle) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut paths = vec![CONFIG_FILE.to_owned()];
    paths.extend(
        bundle
            .config
            .services
            .values()
            .map(|s| s.task_definition.clone()),
    );
    for path in paths {
        let bytes = std::fs::read(folder.join(&path)).with_context(|| format!("reading {path}"))?;
        out.insert(path, bytes);
    }
    if out.is_empty() {
        bail!("nothing to publish");
    }
    Ok(out)
}

/// The commit being published: CodeBuild's variables, else `git` in the folder.
fn commit(folder: &std::path::Path) -> Commit {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .arg("-C")
            .arg(folder)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    Commit {
        id: std::env::var("CODEBUILD_RESOLVED_SOURCE_VERSION")
            .ok()
            .or_else(|| git(&["rev-parse", "--short=12", "HEAD"])),
        author: git(&["log", "-1", "--format=%an"]),
        message: git(&["log", "-1", "--format=%s"]),
    }
}
