//! Where the GitOps source is read from: a folder (the CLI, in a checkout) or an S3 prefix that
//! `harbormaster publish` writes (the Lambda functions), cached across warm invocations by ETag.
//!
//! The S3 layout is declared, never guessed: a prefix is a published one (a pointer, then the
//! bundle it names, verified against its digest) unless `HARBORMASTER_CONFIG_LAYOUT=folder`
//! says it is a plain folder. A pointer that is missing or denied is an error naming the key and
//! the permissions, not a silent fall back to whatever else the prefix holds.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use harbormaster_core::config::{BUNDLES_DIR, POINTER_FILE};
use harbormaster_core::ports::{ConfigSource, ErrorKind, PortError};
use harbormaster_core::publish::{BundleDigest, Pointer};

use crate::errors::classify;

#[derive(Clone)]
pub enum Source {
    Folder(PathBuf),
    S3(S3Source),
}

impl Source {
    /// `s3://bucket/prefix` or a folder path.
    pub fn parse(location: &str, s3: &crate::Lazy<aws_sdk_s3::Client>) -> Source {
        match location.strip_prefix("s3://") {
            Some(rest) => {
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                Source::S3(S3Source {
                    client: s3.clone(),
                    bucket: bucket.to_owned(),
                    prefix: prefix.trim_end_matches('/').to_owned(),
                    cache: Arc::default(),
                    verified: Arc::default(),
                    origin: None,
                    bundle: None,
                    layout: Layout::Published,
                })
            }
            None => Source::Folder(PathBuf::from(location)),
        }
    }

    /// An S3 source read as a plain folder (`HARBORMASTER_CONFIG_LAYOUT=folder`): the prefix
    /// holds `harbormaster.toml` and the templates themselves, no pointer.
    pub fn as_plain_folder(self) -> Source {
        match self {
            Source::S3(s) => Source::S3(S3Source {
                layout: Layout::Folder,
                ..s
            }),
            folder => folder,
        }
    }
}

/// What an S3 prefix holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Layout {
    /// `harbormaster publish`'s pointer and bundles (the default).
    Published,
    /// The config files themselves, as a folder (declared with
    /// `HARBORMASTER_CONFIG_LAYOUT=folder`).
    Folder,
}

/// Names the S3 layout of the config (`published`, the default, or `folder`).
pub const LAYOUT_ENV: &str = "HARBORMASTER_CONFIG_LAYOUT";

/// A cached object: its ETag and bytes.
type Cached = (String, Vec<u8>);

#[derive(Clone)]
pub struct S3Source {
    /// Built at the first read, not when the source is made (a function's cold start).
    client: crate::Lazy<aws_sdk_s3::Client>,
    bucket: String,
    prefix: String,
    /// key → (ETag, bytes). Shared by clones, so a Lambda's warm invocations reuse it.
    cache: Arc<Mutex<HashMap<String, Cached>>>,
    /// Bundles whose files were checked against their digest (once per process).
    verified: Arc<Mutex<std::collections::HashSet<BundleDigest>>>,
    /// Set when pinned to a published bundle: its commit, author and message, in words.
    origin: Option<String>,
    /// Set when pinned to a published bundle: its digest.
    bundle: Option<String>,
    layout: Layout,
}

impl S3Source {
    fn key(&self, path: &str) -> String {
        if self.prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{}/{path}", self.prefix)
        }
    }
}

impl ConfigSource for Source {
    /// An S3 prefix with `harbormaster publish`'s pointer reads the bundle it points at
    /// (immutable, so cached for the life of the process); without one, the prefix itself.
    async fn pinned(&self) -> Result<Self, PortError> {
        let Source::S3(s) = self else {
            return Ok(self.clone());
        };
        if s.layout == Layout::Folder {
            return Ok(self.clone());
        }
        let at = format!("s3://{}/{}", s.bucket, s.key(POINTER_FILE));
        let pointer = self.read(POINTER_FILE).await.map_err(|e| match e.kind {
            ErrorKind::NotFound => PortError::new(
                ErrorKind::NotFound,
                "GetObject",
                format!("{at} does not exist: nothing was published there (`harbormaster publish --to s3://{}/{}`), or, for a prefix that holds the config files themselves, set {LAYOUT_ENV}=folder", s.bucket, s.prefix),
            ),
            ErrorKind::Denied => PortError::new(
                ErrorKind::Denied,
                "GetObject",
                format!("access denied to {at}: the role needs s3:GetObject on the config prefix, and s3:ListBucket on the bucket (without it S3 answers 403 for a key that does not exist) ({})", e.message),
            ),
            _ => e,
        })?;
        let pointer: Pointer = serde_json::from_slice(&pointer)
            .map_err(|e| PortError::new(ErrorKind::Invalid, "GetObject", format!("{at}: {e}")))?;
        let pinned = S3Source {
            prefix: s.key(&format!("{BUNDLES_DIR}/{}", pointer.bundle)),
            origin: pointer.origin(),
            bundle: Some(pointer.bundle.to_string()),
            ..s.clone()
        };
        pinned.verify(&pointer).await?;
        Ok(Source::S3(pinned))
    }

    fn origin(&self) -> Option<String> {
        match self {
            Source::S3(s) => s.origin.clone(),
            Source::Folder(_) => None,
        }
    }

    fn bundle(&self) -> Option<String> {
        match self {
            Source::S3(s) => s.bundle.clone(),
            Source::Folder(_) => None,
        }
    }

    async fn read(&self, path: &str) -> Result<Vec<u8>, PortError> {
        match self {
            Source::Folder(root) => read_inside(root, path),
            Source::S3(s) => {
                let key = s.key(path);
                let cached = s.cache.lock().expect("cache lock").get(&key).cloned();
                // A published bundle never changes (its name is its content): no need to ask.
                let immutable = s.prefix.split('/').any(|part| part == BUNDLES_DIR);
                if let (Some((_, bytes)), true) = (&cached, immutable) {
                    return Ok(bytes.clone());
                }
                let mut req = s.client.get_object().bucket(&s.bucket).key(&key);
                if let Some((etag, _)) = &cached {
                    req = req.if_none_match(etag);
                }
                match req.send().await {
                    Ok(out) => {
                        let etag = out.e_tag.clone().unwrap_or_default();
                        let bytes = out
                            .body
                            .collect()
                            .await
                            .map_err(|_| {
                                PortError::new(
                                    ErrorKind::Transient,
                                    "GetObject",
                                    "the body was cut off",
                                )
                            })?
                            .into_bytes()
                            .to_vec();
                        s.cache
                            .lock()
                            .expect("cache lock")
                            .insert(key, (etag, bytes.clone()));
                        Ok(bytes)
                    }
                    Err(e) => {
                        let not_modified =
                            e.raw_response().is_some_and(|r| r.status().as_u16() == 304);
                        match (not_modified, cached) {
                            (true, Some((_, bytes))) => Ok(bytes),
                            _ => Err(classify("GetObject", &e)),
                        }
                    }
                }
            }
        }
    }

    fn describe(&self, path: &str) -> String {
        match self {
            Source::Folder(root) => {
                if root.as_os_str().is_empty() || root == &PathBuf::from(".") {
                    path.to_owned()
                } else {
                    root.join(path).display().to_string()
                }
            }
            Source::S3(s) => format!("s3://{}/{}", s.bucket, s.key(path)),
        }
    }
}

impl S3Source {
    /// The bundle's files are what its name says (once per bundle and process): a changed
    /// object is refused, not deployed. Pointers of an older agent's `--activate` list no files
    /// and are taken as they are.
    async fn verify(&self, pointer: &Pointer) -> Result<(), PortError> {
        let digest = &pointer.bundle;
        if pointer.files.is_empty() || self.verified.lock().expect("lock").contains(digest) {
            return Ok(());
        }
        let source = Source::S3(self.clone());
        let mut files = std::collections::BTreeMap::new();
        for path in &pointer.files {
            files.insert(path.clone(), source.read(path).await?);
        }
        if !digest.verifies(&files) {
            let at = format!("s3://{}/{}", self.bucket, self.prefix);
            return Err(PortError::new(
                ErrorKind::Invalid,
                "GetObject",
                format!("the bundle at {at} does not match its name: its files were changed after it was published; publish again from the checkout"),
            ));
        }
        self.verified.lock().expect("lock").insert(digest.clone());
        Ok(())
    }
}

/// `path` under the folder `root`, read only if it stays inside it: a link that leads out of the
/// folder (`taskdefs/web.json -> /etc/…`) would publish or read a file git does not hold.
pub fn read_inside(root: &Path, path: &str) -> Result<Vec<u8>, PortError> {
    let io = |e: std::io::Error| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Invalid
        };
        PortError::new(kind, "read", e.to_string())
    };
    let file = root.join(path);
    let real = std::fs::canonicalize(&file).map_err(io)?;
    let base = std::fs::canonicalize(if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    })
    .map_err(io)?;
    if !real.starts_with(&base) {
        return Err(PortError::new(
            ErrorKind::Invalid,
            "read",
            format!(
                "{} leads outside the config folder (to {}): a bundle holds only the folder's own files",
                file.display(),
                real.display()
            ),
        ));
    }
    std::fs::read(&real).map_err(io)
}
