//! Publish: the config folder as one immutable, content-addressed bundle, then the pointer the
//! functions read moved to it with compare-and-swap. A reader reads the pointer once per load
//! and then only that bundle: it never sees half of a publish, and a publish stopped between the
//! two steps leaves everyone on the previous version.
//!
//! What this module decides, whatever stores the bundles ([`Bundles`]):
//! - the pointer only moves forward in git: a commit that does not descend from the current
//!   pointer's is refused unless `allow_older` (break-glass, recorded in the pointer and the
//!   history); where the order cannot be established, refused with how to fix it;
//! - a bundle is named by the SHA-256 of its content; staging compares what a key already
//!   holds; activating reads the staged bundle back, verifies it and loads it whole;
//! - the history entry is written after the move: its failure is a warning, the publish is live.

mod digest;
mod pointer;

use std::collections::BTreeMap;
use std::future::Future;

use chrono::{DateTime, Utc};

pub use digest::{BundleDigest, NotADigest};
pub use pointer::{Commit, Manifest, Pointer};

use crate::bundle::Bundle;
use crate::ports::{ConfigSource, ErrorKind, PortError};

/// Where bundles, their manifests, the pointer and its history are kept (an S3 prefix).
pub trait Bundles {
    /// The pointer and its ETag (what the next move is conditional on); `None`: nothing was
    /// published here yet.
    fn current(&self) -> impl Future<Output = Result<Option<(Pointer, String)>, PortError>> + Send;
    /// Writes each file and then the manifest, each once: an object already there must hold
    /// the same bytes (else an `Invalid` error naming it: tampered, or a broken upload).
    fn stage(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        manifest: &Manifest,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The manifest of a staged bundle; `None`: not staged here.
    fn manifest(
        &self,
        digest: &BundleDigest,
    ) -> impl Future<Output = Result<Option<Manifest>, PortError>> + Send;
    fn read(
        &self,
        digest: &BundleDigest,
        path: &str,
    ) -> impl Future<Output = Result<Vec<u8>, PortError>> + Send;
    /// Moves the pointer if it is still at `expected` (its ETag; `None`: there is none yet).
    /// Someone else moved first: a `Conflict`.
    fn point(
        &self,
        expected: Option<&str>,
        pointer: &Pointer,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// One history entry per move of the pointer.
    fn record(&self, pointer: &Pointer) -> impl Future<Output = Result<(), PortError>> + Send;
    /// The newest `n` moves, newest first.
    fn history(&self, n: usize) -> impl Future<Output = Result<Vec<Pointer>, PortError>> + Send;
    /// Where `what` is, for messages (`s3://bucket/prefix/current.json`).
    fn describe(&self, what: &str) -> String;
}

/// Where a commit stands against the current pointer's, as git says (`git merge-base
/// --is-ancestor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ancestry {
    Descendant,
    NotDescendant,
    /// Git cannot tell (no `.git`, a shallow clone, a commit it does not have): why.
    Unknown(String),
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("commit {commit} does not descend from {current}, which is current at {at}: publishing it would move the config back in time. Roll config back with `git revert` and publish; `--allow-older` is the break-glass (recorded in the history)")]
    Older {
        commit: String,
        current: String,
        at: String,
    },
    #[error("{why}; so whether this publish moves the config forward cannot be told, and it is refused. {fix}")]
    Unordered { why: String, fix: &'static str },
    #[error(
        "another publish moved the pointer first; nothing of this one is current: publish again"
    )]
    Raced,
    #[error("{digest} is not staged at {at}: stage it with `publish --stage-only` (from the checkout), then `--activate` the digest it prints")]
    NotStaged { digest: BundleDigest, at: String },
    #[error("the bundle at {at} does not match its name {digest}: its files were changed after staging; publish again from the checkout")]
    Tampered { digest: BundleDigest, at: String },
    #[error("the bundle {digest} does not load: {why}")]
    Broken { digest: BundleDigest, why: String },
}

const FIX_ORDER: &str = "Publish from a full clone of the repository (CodeBuild: `git-clone-depth: 0`, or `git fetch --unshallow`), or with `--allow-older` once if you mean to";

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Upload the bundle, leave the pointer.
    pub stage_only: bool,
    /// Move the pointer even to a commit that is not newer in git (break-glass).
    pub allow_older: bool,
    /// Read and decide; upload nothing, move nothing.
    pub dry_run: bool,
}

/// What became of the pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Move {
    /// It points at the bundle now.
    Moved,
    /// The bundle is uploaded; the pointer stayed.
    Staged,
    /// A dry run: this is what would happen, and nothing did.
    Planned,
}

/// What a publish did: the pointer now current (or, staged only, what it would be), and a
/// warning that did not stop it (the history entry that could not be written).
#[derive(Debug, Clone)]
pub struct Published {
    pub pointer: Pointer,
    pub moved: Move,
    pub warning: Option<String>,
}

impl Published {
    fn planned(pointer: Pointer) -> Published {
        Published {
            pointer,
            moved: Move::Planned,
            warning: None,
        }
    }
}

/// Stages `files` (checked by the caller) and moves the pointer to them, forward only.
/// `ancestry(ancestor, commit)` asks git whether `commit` descends from `ancestor`.
pub async fn publish<B: Bundles>(
    bundles: &B,
    files: BTreeMap<String, Vec<u8>>,
    commit: Commit,
    ancestry: impl Fn(&str, &str) -> Ancestry,
    opts: Options,
    now: DateTime<Utc>,
) -> Result<Published, PublishError> {
    let manifest = Manifest {
        bundle: BundleDigest::of(&files),
        files: files.keys().cloned().collect(),
        staged_at: now,
        commit,
    };
    let current = bundles.current().await?;
    if !opts.stage_only {
        // Before anything is uploaded: a refused publish leaves no trace.
        in_order(bundles, current.as_ref(), &manifest.commit, &ancestry, opts)?;
    }
    let mut pointer = Pointer::of(&manifest, now);
    pointer.allowed_older = opts.allow_older && current.is_some() && !opts.stage_only;
    if opts.dry_run {
        return Ok(Published::planned(pointer));
    }
    bundles.stage(&files, &manifest).await?;
    if opts.stage_only {
        return Ok(Published {
            pointer,
            moved: Move::Staged,
            warning: None,
        });
    }
    let warning = point(bundles, current.as_ref(), &pointer).await?;
    Ok(Published {
        pointer,
        moved: Move::Moved,
        warning,
    })
}

/// Makes a staged bundle current: only a digest staged here, read back, verified against its
/// name and loaded whole; the pointer carries the bundle's own commit, forward only.
pub async fn activate<B: Bundles>(
    bundles: &B,
    digest: &BundleDigest,
    ancestry: impl Fn(&str, &str) -> Ancestry,
    opts: Options,
    now: DateTime<Utc>,
) -> Result<Published, PublishError> {
    let at = bundles.describe(&format!("{}/{digest}", crate::config::BUNDLES_DIR));
    let manifest = (bundles.manifest(digest).await?).ok_or_else(|| PublishError::NotStaged {
        digest: digest.clone(),
        at: at.clone(),
    })?;
    let mut files = BTreeMap::new();
    for path in &manifest.files {
        files.insert(path.clone(), bundles.read(digest, path).await?);
    }
    if manifest.bundle != *digest || !digest.verifies(&files) {
        return Err(PublishError::Tampered {
            digest: digest.clone(),
            at,
        });
    }
    Bundle::load(&Files(files))
        .await
        .map_err(|e| PublishError::Broken {
            digest: digest.clone(),
            why: e.to_string(),
        })?;
    let current = bundles.current().await?;
    in_order(bundles, current.as_ref(), &manifest.commit, &ancestry, opts)?;
    let mut pointer = Pointer::of(&manifest, now);
    pointer.activated = true;
    pointer.allowed_older = opts.allow_older && current.is_some();
    if opts.dry_run {
        return Ok(Published::planned(pointer));
    }
    let warning = point(bundles, current.as_ref(), &pointer).await?;
    Ok(Published {
        pointer,
        moved: Move::Moved,
        warning,
    })
}

/// Whether moving the pointer from `current` to `commit` goes forward in git.
fn in_order<B: Bundles>(
    bundles: &B,
    current: Option<&(Pointer, String)>,
    commit: &Commit,
    ancestry: &impl Fn(&str, &str) -> Ancestry,
    opts: Options,
) -> Result<(), PublishError> {
    let Some((current, _)) = current else {
        return Ok(());
    };
    if opts.allow_older {
        return Ok(());
    }
    let unordered = |why: String| PublishError::Unordered {
        why,
        fix: FIX_ORDER,
    };
    let at = bundles.describe(crate::config::POINTER_FILE);
    let Some(ancestor) = &current.commit.id else {
        return Err(unordered(format!(
            "{at} names no commit (it was made current by an older agent's `--activate`, or published without git)"
        )));
    };
    let Some(id) = &commit.id else {
        return Err(unordered(
            "the commit being published is unknown (no `.git` in the folder, and no CODEBUILD_RESOLVED_SOURCE_VERSION)".into(),
        ));
    };
    if ancestor == id {
        return Ok(());
    }
    match ancestry(ancestor, id) {
        Ancestry::Descendant => Ok(()),
        Ancestry::NotDescendant => Err(PublishError::Older {
            commit: id.clone(),
            current: ancestor.clone(),
            at,
        }),
        Ancestry::Unknown(why) => Err(unordered(why)),
    }
}

/// Moves the pointer from `current` to `pointer`, then records it; a history entry that cannot
/// be written is a warning (the publish is live).
async fn point<B: Bundles>(
    bundles: &B,
    current: Option<&(Pointer, String)>,
    pointer: &Pointer,
) -> Result<Option<String>, PublishError> {
    let expected = current.map(|(_, etag)| etag.as_str());
    match bundles.point(expected, pointer).await {
        Ok(()) => {}
        Err(e) if e.kind == ErrorKind::Conflict => return Err(PublishError::Raced),
        Err(e) => return Err(e.into()),
    }
    Ok(bundles.record(pointer).await.err().map(|e| {
        format!(
            "{} is current, but its history entry could not be written ({e}): `publish --history` will not list it",
            pointer.bundle
        )
    }))
}

/// A bundle's files as a config source (what `--activate` loads before it moves anything).
pub struct Files(pub BTreeMap<String, Vec<u8>>);

impl ConfigSource for Files {
    async fn pinned(&self) -> Result<Self, PortError> {
        Ok(Files(self.0.clone()))
    }

    async fn read(&self, path: &str) -> Result<Vec<u8>, PortError> {
        (self.0.get(path).cloned()).ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                "read",
                format!("{path} is not in the bundle"),
            )
        })
    }

    fn describe(&self, path: &str) -> String {
        path.to_owned()
    }
}

#[cfg(test)]
mod tests;
