//! `harbormaster publish`: the config folder as one immutable, content-addressed bundle in S3
//! (`<prefix>/bundles/<digest>/<path>`), then a small pointer (`<prefix>/current.json`) moved to
//! it with compare-and-swap. A reader (the functions, [`crate::Source`]) reads the pointer once
//! per load and then only that bundle, so it never sees half of a publish, and a publish
//! stopped between the two steps leaves everyone on the previous version.

use std::collections::BTreeMap;

use harbormaster_core::config::{BUNDLES_DIR, POINTER_FILE};
use harbormaster_core::ports::{ErrorKind, PortError};
use serde_json::{json, Value};

use crate::errors::classify;

/// Where bundles are published: `s3://bucket/prefix`.
pub struct Destination {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

/// A bundle's files (path → bytes) and its digest: the same files, the same digest.
pub struct Staged {
    pub digest: String,
    pub files: BTreeMap<String, Vec<u8>>,
}

impl Staged {
    pub fn new(files: BTreeMap<String, Vec<u8>>) -> Staged {
        let mut all = Vec::new();
        for (path, bytes) in &files {
            all.extend_from_slice(format!("{path}\0{}\0", bytes.len()).as_bytes());
            all.extend_from_slice(bytes);
        }
        Staged {
            digest: harbormaster_core::text::fingerprint(&all),
            files,
        }
    }
}

/// The pointer as read, with the ETag to replace it conditionally.
pub struct Current {
    pub pointer: Option<Value>,
    pub etag: Option<String>,
}

impl Destination {
    pub fn parse(location: &str, client: aws_sdk_s3::Client) -> Option<Destination> {
        let rest = location.strip_prefix("s3://")?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Some(Destination {
            client,
            bucket: bucket.to_owned(),
            prefix: prefix.trim_end_matches('/').to_owned(),
        })
    }

    fn key(&self, path: &str) -> String {
        match self.prefix.as_str() {
            "" => path.to_owned(),
            p => format!("{p}/{path}"),
        }
    }

    /// Uploads the bundle's files; each is written once (a second upload of the same digest
    /// finds them there).
    pub async fn stage(&self, staged: &Staged) -> Result<(), PortError> {
        for (path, bytes) in &staged.files {
            let key = self.key(&format!("{BUNDLES_DIR}/{}/{path}", staged.digest));
            let sent = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .if_none_match("*")
                .body(bytes.clone().into())
                .send()
                .await;
            match sent.map_err(|e| classify("PutObject", &e)) {
                Ok(_) => {}
                Err(e) if e.kind == ErrorKind::Conflict => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub async fn current(&self) -> Result<Current, PortError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(self.key(POINTER_FILE))
            .send()
            .await;
        match got {
            Ok(out) => {
                let etag = out.e_tag.clone();
                let bytes = out.body.collect().await.map_err(|_| {
                    PortError::new(ErrorKind::Transient, "GetObject", "the body was cut off")
                })?;
                let pointer = serde_json::from_slice(&bytes.into_bytes()).ok();
                Ok(Current { pointer, etag })
            }
            Err(e) => match classify("GetObject", &e) {
                p if p.kind == ErrorKind::NotFound => Ok(Current {
                    pointer: None,
                    etag: None,
                }),
                p => Err(p),
            },
        }
    }

    /// Moves the pointer to `pointer` if it is still what `current` read: of two publishes at
    /// once, one wins and the other is told (a Conflict), and nothing of it is live.
    pub async fn activate(&self, current: &Current, pointer: &Value) -> Result<(), PortError> {
        let body = serde_json::to_vec_pretty(pointer).expect("JSON serialises");
        let req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(self.key(POINTER_FILE))
            .content_type("application/json")
            .body(body.clone().into());
        let req = match &current.etag {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        req.send().await.map_err(|e| classify("PutObject", &e))?;
        // The history: one small object per publish, for `publish --history`.
        let at = pointer["published_at"]
            .as_str()
            .unwrap_or_default()
            .replace(':', "");
        let digest = pointer["bundle"].as_str().unwrap_or_default();
        let key = self.key(&format!(
            "history/{at}-{}.json",
            &digest[..digest.len().min(12)]
        ));
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .map_err(|e| classify("PutObject", &e))?;
        Ok(())
    }

    /// The newest `n` publishes, newest first.
    pub async fn history(&self, n: usize) -> Result<Vec<Value>, PortError> {
        let listed = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key("history/"))
            .send()
            .await
            .map_err(|e| classify("ListObjectsV2", &e))?;
        let mut keys: Vec<String> = listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        keys.sort();
        keys.reverse();
        let mut out = Vec::new();
        for key in keys.into_iter().take(n) {
            let got = self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| classify("GetObject", &e))?;
            let bytes = got.body.collect().await.map_err(|_| {
                PortError::new(ErrorKind::Transient, "GetObject", "the body was cut off")
            })?;
            out.push(serde_json::from_slice(&bytes.into_bytes()).unwrap_or(Value::Null));
        }
        Ok(out)
    }
}

/// The pointer for `staged`: its digest and files, when, and the commit it came from.
pub fn pointer(staged: &Staged, at: chrono::DateTime<chrono::Utc>, commit: &Commit) -> Value {
    json!({
        "bundle": staged.digest,
        "files": staged.files.keys().collect::<Vec<_>>(),
        "published_at": at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "commit": commit.id,
        "author": commit.author,
        "message": commit.message,
    })
}

/// Where a publish comes from in git (or CodeBuild), when it can be told.
#[derive(Debug, Default, Clone)]
pub struct Commit {
    pub id: Option<String>,
    pub author: Option<String>,
    pub message: Option<String>,
}
