//! `harbormaster publish`: the config folder, checked, as one immutable bundle in S3 and then
//! the pointer the functions read moved to it, forward in git only (the rules are the core's,
//! `harbormaster_core::publish`; S3 is `harbormaster_aws::publish`). Config is rolled back with
//! `git revert` and a publish; `--allow-older` is the break-glass.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use harbormaster_aws::publish::Destination;
use harbormaster_aws::source::read_inside;
use harbormaster_aws::Source;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::config::CONFIG_FILE;
use harbormaster_core::publish::{
    activate, publish, Ancestry, BundleDigest, Bundles, Commit, Move, Options, PublishError,
    Published,
};

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// Where the functions read their config (their HARBORMASTER_CONFIG): s3://bucket/prefix.
    #[arg(long)]
    to: String,
    /// Check, read the pointer and say what would be published; upload nothing, move nothing.
    #[arg(long)]
    dry_run: bool,
    /// Upload the bundle but leave the pointer (and so the functions) where it is; prints the
    /// digest. `--activate DIGEST` later makes it current.
    #[arg(long, conflicts_with = "activate")]
    stage_only: bool,
    /// Make an already staged bundle current (a digest `--stage-only` printed).
    #[arg(long)]
    activate: Option<String>,
    /// Break-glass: move the pointer even to a commit that does not descend from the current
    /// one (recorded in the pointer and the history). Roll config back with `git revert`.
    #[arg(long)]
    allow_older: bool,
    /// List the recent publishes instead, newest first.
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
            return history(&destination(cx, &self.to).await?, cx.json).await;
        }
        // Checked whole first, before any call: nothing is uploaded when anything is wrong.
        let local = match &self.activate {
            Some(_) => None,
            None => {
                let bundle = Bundle::load(&Source::Folder(folder.clone())).await?;
                Some(files(&folder, &bundle)?)
            }
        };
        let dest = destination(cx, &self.to).await?;
        let opts = Options {
            stage_only: self.stage_only,
            allow_older: self.allow_older,
            dry_run: self.dry_run,
        };
        let ancestry = |ancestor: &str, commit: &str| ancestry(&folder, ancestor, commit);
        let now = chrono::Utc::now();
        let done = match (&self.activate, local) {
            (Some(d), _) => {
                let digest: BundleDigest = d.parse().context("--activate")?;
                activate(&dest, &digest, ancestry, opts, now).await
            }
            (None, files) => {
                let files = files.unwrap_or_default();
                publish(&dest, files, commit(&folder), ancestry, opts, now).await
            }
        };
        match done {
            Ok(p) => Ok(report(&p, &self.to, cx.json)),
            Err(e) => refused(e),
        }
    }
}

async fn destination(cx: &Context, to: &str) -> Result<Destination> {
    let s3 = (*cx.agent().await?.ports.clients.s3).clone();
    Destination::parse(to, s3).context("--to must be s3://bucket/prefix")
}

/// A publish the rules refused exits 1 (the request was refused); what a retry may get past,
/// 3; anything else is an error (2).
fn refused(e: PublishError) -> Result<Exit> {
    let exit = match &e {
        PublishError::Older { .. } | PublishError::Unordered { .. } => Exit::Failed,
        PublishError::Raced => Exit::Retryable,
        PublishError::Port(p) if p.kind.is_retryable() => Exit::Retryable,
        _ => return Err(e.into()),
    };
    let e = anyhow::Error::from(e);
    eprintln!(
        "error: {}",
        crate::output::escaped(&crate::output::error_chain(&e))
    );
    Ok(exit)
}

fn report(p: &Published, to: &str, json: bool) -> Exit {
    if let Some(w) = &p.warning {
        eprintln!("warning: {w}");
    }
    if json {
        let v = serde_json::json!({"pointer": p.pointer, "pointer_is": p.moved, "warning": p.warning, "to": to});
        out!("{}", serde_json::to_string_pretty(&v).expect("JSON"));
        return Exit::Done;
    }
    let ptr = &p.pointer;
    let commit = (ptr.commit.id.as_deref())
        .map(|c| format!(", commit {}", &c[..c.len().min(12)]))
        .unwrap_or_default();
    let what = format!("{} ({} files{commit})", ptr.bundle, ptr.files.len());
    let older = if ptr.allowed_older {
        " (--allow-older: recorded in the history)"
    } else {
        ""
    };
    match (p.moved, ptr.activated) {
        (Move::Moved, true) => out!("{what} is current at {to}{older}"),
        (Move::Moved, false) => out!("published {what} to {to}{older}"),
        (Move::Staged, _) => out!("staged {what} at {to} (not current)"),
        (Move::Planned, true) => out!("would make {what} current at {to}{older}"),
        (Move::Planned, false) => {
            out!("would publish {what} to {to}{older}");
            for path in &ptr.files {
                out!("  {path}");
            }
        }
    }
    Exit::Done
}

async fn history(dest: &Destination, json: bool) -> Result<Exit> {
    let entries = dest.history(10).await?;
    if json {
        out!("{}", serde_json::to_string_pretty(&entries)?);
        return Ok(Exit::Done);
    }
    for p in entries {
        let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        let how = match (p.activated, p.allowed_older) {
            (_, true) => "  [--allow-older]",
            (true, _) => "  [--activate]",
            _ => "",
        };
        out!(
            "{}  {}  {}  {}{how}",
            p.published_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            p.bundle.short(),
            field(&p.commit.id),
            p.commit.message.as_deref().unwrap_or("")
        );
    }
    Ok(Exit::Done)
}

/// The config and every template it names, each read only if it stays inside the folder.
fn files(folder: &Path, bundle: &Bundle) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut paths = vec![CONFIG_FILE.to_owned()];
    paths.extend(
        bundle
            .config
            .services
            .values()
            .map(|s| s.task_definition.clone()),
    );
    let mut out = BTreeMap::new();
    for path in paths {
        let bytes = read_inside(folder, &path).with_context(|| format!("reading {path}"))?;
        out.insert(path, bytes);
    }
    Ok(out)
}

fn git(folder: &Path, args: &[&str]) -> Option<std::process::Output> {
    std::process::Command::new("git")
        .arg("-C")
        .arg(folder)
        .args(args)
        .output()
        .ok()
}

fn git_text(folder: &Path, args: &[&str]) -> Option<String> {
    git(folder, args)
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

/// The commit being published: `git`'s HEAD in the folder (the full id, which the next
/// publish's ancestry check needs), else CodeBuild's source version.
fn commit(folder: &Path) -> Commit {
    Commit {
        id: git_text(folder, &["rev-parse", "HEAD"])
            .or_else(|| std::env::var("CODEBUILD_RESOLVED_SOURCE_VERSION").ok()),
        author: git_text(folder, &["log", "-1", "--format=%an"]),
        message: git_text(folder, &["log", "-1", "--format=%s"]),
    }
}

/// Whether `commit` descends from `ancestor`, as git in the folder says.
fn ancestry(folder: &Path, ancestor: &str, commit: &str) -> Ancestry {
    if git_text(folder, &["rev-parse", "--is-inside-work-tree"]).is_none() {
        return Ancestry::Unknown(format!(
            "{} is not a git checkout (no `.git`)",
            folder.display()
        ));
    }
    if git_text(folder, &["rev-parse", "--is-shallow-repository"]).as_deref() == Some("true") {
        return Ancestry::Unknown(format!("{} is a shallow clone", folder.display()));
    }
    match git(folder, &["merge-base", "--is-ancestor", ancestor, commit]).map(|o| o.status.code()) {
        Some(Some(0)) => Ancestry::Descendant,
        Some(Some(1)) => Ancestry::NotDescendant,
        _ => Ancestry::Unknown(format!(
            "git in {} does not know commit {ancestor} (the current pointer's) or {commit}",
            folder.display()
        )),
    }
}
