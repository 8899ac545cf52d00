//! Where the GitOps source is read from: a folder (the CLI, in a checkout) or an S3 prefix that
//! the pipeline syncs from git (the Lambda functions), cached across warm invocations by ETag.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use harbormaster_core::config::{BUNDLES_DIR, POINTER_FILE};
use harbormaster_core::ports::{ConfigSource, ErrorKind, PortError};

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
                    origin: None,
                })
            }
            None => Source::Folder(PathBuf::from(location)),
        }
    }
}

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
    /// Set when pinned to a published bundle: its commit, author and message, in words.
    origin: Option<String>,
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
        let pointer = match self.read(POINTER_FILE).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind == ErrorKind::NotFound || e.kind == ErrorKind::Denied => {
                return Ok(self.clone());
            }
            Err(e) => return Err(e),
        };
        let pointer: serde_json::Value = serde_json::from_slice(&pointer).unwrap_or_default();
        let bundle = (pointer["bundle"].as_str().map(str::to_owned))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                let at = s.key(POINTER_FILE);
                PortError::new(
                    ErrorKind::Invalid,
                    "GetObject",
                    format!("{at} names no bundle"),
                )
            })?;
        Ok(Source::S3(S3Source {
            prefix: s.key(&format!("{BUNDLES_DIR}/{bundle}")),
            origin: origin(&pointer),
            ..s.clone()
        }))
    }

    fn origin(&self) -> Option<String> {
        match self {
            Source::S3(s) => s.origin.clone(),
            Source::Folder(_) => None,
        }
    }

    async fn read(&self, path: &str) -> Result<Vec<u8>, PortError> {
        match self {
            Source::Folder(root) => {
                let p = root.join(path);
                tokio::fs::read(&p).await.map_err(|e| {
                    let kind = if e.kind() == std::io::ErrorKind::NotFound {
                        ErrorKind::NotFound
                    } else {
                        ErrorKind::Invalid
                    };
                    PortError::new(kind, "read", e.to_string())
                })
            }
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

/// `commit 3f2c1ab04e1d by alice: raise web's memory`, from a publish pointer (any part may be
/// missing; text from git is shown escaped).
fn origin(pointer: &serde_json::Value) -> Option<String> {
    let field = |k: &str| {
        pointer[k]
            .as_str()
            .map(|v| harbormaster_core::text::shown(v).into_owned())
    };
    let commit = field("commit")?;
    let by = field("author")
        .map(|a| format!(" by {a}"))
        .unwrap_or_default();
    let what = field("message")
        .map(|m| format!(": {m}"))
        .unwrap_or_default();
    Some(harbormaster_core::text::clipped(
        &format!("commit {commit}{by}{what}"),
        200,
    ))
}
