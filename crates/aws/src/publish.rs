//! The [`Bundles`] port on S3: `<prefix>/bundles/<digest>/<path>` (immutable), the manifest of
//! each staged bundle at `<prefix>/manifests/<digest>.json`, the pointer `<prefix>/current.json`
//! moved with a conditional PutObject, and one history object per move under
//! `<prefix>/history/0/`, named by inverted time so the first ListObjectsV2 page holds the
//! newest. What a publish may do is decided in `harbormaster_core::publish`.

use std::collections::BTreeMap;

use harbormaster_core::config::{BUNDLES_DIR, POINTER_FILE};
use harbormaster_core::ports::{ErrorKind, PortError};
use harbormaster_core::publish::{BundleDigest, Bundles, Manifest, Pointer};

use crate::errors::classify;

/// Where bundles are published: `s3://bucket/prefix`.
pub struct Destination {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub prefix: String,
}

/// History entries under this prefix sort newest first; the ones before it (`history/<time>-…`)
/// are read after them.
const HISTORY: &str = "history/0/";
const LEGACY_HISTORY: &str = "history/";

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

    /// The object at `key` and its ETag; `None`: there is none.
    async fn get(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, PortError> {
        let got = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await;
        match got {
            Ok(out) => {
                let etag = out.e_tag.clone().unwrap_or_default();
                let bytes = out.body.collect().await.map_err(|_| {
                    PortError::new(ErrorKind::Transient, "GetObject", "the body was cut off")
                })?;
                Ok(Some((bytes.into_bytes().to_vec(), etag)))
            }
            Err(e) => match classify("GetObject", &e) {
                p if p.kind == ErrorKind::NotFound => Ok(None),
                p => Err(p),
            },
        }
    }

    /// Writes `bytes` at `key` unless an object is there; `Ok(false)`: one was.
    async fn put_new(&self, key: &str, bytes: &[u8]) -> Result<bool, PortError> {
        let sent = (self.client.put_object())
            .bucket(&self.bucket)
            .key(key)
            .if_none_match("*")
            .body(bytes.to_vec().into())
            .send()
            .await;
        match sent.map_err(|e| classify("PutObject", &e)) {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::Conflict => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn parsed<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> Result<T, PortError> {
        serde_json::from_slice(bytes).map_err(|e| {
            let at = format!("s3://{}/{key}", self.bucket);
            PortError::new(ErrorKind::Invalid, "GetObject", format!("{at}: {e}"))
        })
    }

    async fn list(
        &self,
        prefix: &str,
        max: Option<i32>,
        token: Option<String>,
    ) -> Result<(Vec<String>, Option<String>), PortError> {
        let listed = (self.client.list_objects_v2())
            .bucket(&self.bucket)
            .prefix(self.key(prefix))
            .set_max_keys(max)
            .set_continuation_token(token)
            .send()
            .await
            .map_err(|e| classify("ListObjectsV2", &e))?;
        let keys = (listed.contents().iter())
            .filter_map(|o| o.key().map(str::to_owned))
            .collect();
        Ok((keys, listed.next_continuation_token().map(str::to_owned)))
    }

    /// Keys of the history written before it sorted newest first, newest first (every page).
    async fn legacy_history(&self) -> Result<Vec<String>, PortError> {
        let newer = self.key(HISTORY);
        let (mut keys, mut token) = (Vec::new(), None);
        loop {
            let (page, next) = self.list(LEGACY_HISTORY, None, token).await?;
            keys.extend(page.into_iter().filter(|k| !k.starts_with(&newer)));
            match next {
                Some(t) => token = Some(t),
                None => break,
            }
        }
        keys.sort();
        keys.reverse();
        Ok(keys)
    }
}

/// `9999999999999 - milliseconds`, 13 digits: later moves sort first.
fn inverted(at: chrono::DateTime<chrono::Utc>) -> String {
    format!("{:013}", 9_999_999_999_999i64 - at.timestamp_millis())
}

impl Bundles for Destination {
    /// The first publish finds no pointer. A publisher without `s3:ListBucket` is answered 403
    /// for a key that does not exist (GetObject API reference, "Permissions"): the publisher
    /// alone reads that as "none yet", because its write is conditional (`If-None-Match: *`) and
    /// cannot overwrite a pointer it was not allowed to see; the functions never do (their
    /// source names the missing permission instead).
    async fn current(&self) -> Result<Option<(Pointer, String)>, PortError> {
        let key = self.key(POINTER_FILE);
        let got = match self.get(&key).await {
            Err(e) if e.kind == ErrorKind::Denied => None,
            other => other?,
        };
        match got {
            Some((bytes, etag)) => Ok(Some((self.parsed(&key, &bytes)?, etag))),
            None => Ok(None),
        }
    }

    async fn stage(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        manifest: &Manifest,
    ) -> Result<(), PortError> {
        for (path, bytes) in files {
            let key = self.key(&format!("{BUNDLES_DIR}/{}/{path}", manifest.bundle));
            if self.put_new(&key, bytes).await? {
                continue;
            }
            // Already there (an earlier staging of the same content): it must be this content.
            let there = self.get(&key).await?.map(|(b, _)| b);
            if there.as_deref() != Some(bytes.as_slice()) {
                let at = format!("s3://{}/{key}", self.bucket);
                return Err(PortError::new(
                    ErrorKind::Invalid,
                    "PutObject",
                    format!("{at} exists with other content than its digest names: changed after it was staged; remove the bundle's objects and publish again"),
                ));
            }
        }
        let key = self.key(&format!("manifests/{}.json", manifest.bundle));
        let body = serde_json::to_vec_pretty(manifest).expect("JSON serialises");
        // A manifest already there is the first staging's (the same files): kept.
        self.put_new(&key, &body).await?;
        Ok(())
    }

    async fn manifest(&self, digest: &BundleDigest) -> Result<Option<Manifest>, PortError> {
        let key = self.key(&format!("manifests/{digest}.json"));
        match self.get(&key).await? {
            Some((bytes, _)) => Ok(Some(self.parsed(&key, &bytes)?)),
            None => Ok(None),
        }
    }

    async fn read(&self, digest: &BundleDigest, path: &str) -> Result<Vec<u8>, PortError> {
        let key = self.key(&format!("{BUNDLES_DIR}/{digest}/{path}"));
        let at = format!("s3://{}/{key}", self.bucket);
        (self.get(&key).await?).map(|(b, _)| b).ok_or_else(|| {
            PortError::new(
                ErrorKind::NotFound,
                "GetObject",
                format!("{at} does not exist"),
            )
        })
    }

    async fn point(&self, expected: Option<&str>, pointer: &Pointer) -> Result<(), PortError> {
        let body = serde_json::to_vec_pretty(pointer).expect("JSON serialises");
        let req = (self.client.put_object())
            .bucket(&self.bucket)
            .key(self.key(POINTER_FILE))
            .content_type("application/json")
            .body(body.into());
        let req = match expected {
            Some(etag) => req.if_match(etag),
            None => req.if_none_match("*"),
        };
        req.send().await.map_err(|e| {
            let e = classify("PutObject", &e);
            if e.kind != ErrorKind::Denied {
                return e;
            }
            let why = format!(
                "{}: the publisher (CodeBuild's role) needs s3:PutObject and s3:GetObject on s3://{}/{}*, and s3:ListBucket on the bucket",
                e.message,
                self.bucket,
                self.key("")
            );
            PortError::new(ErrorKind::Denied, "PutObject", why)
        })?;
        Ok(())
    }

    async fn record(&self, pointer: &Pointer) -> Result<(), PortError> {
        let name = format!(
            "{}-{}.json",
            inverted(pointer.published_at),
            pointer.bundle.short()
        );
        let body = serde_json::to_vec_pretty(pointer).expect("JSON serialises");
        (self.client.put_object())
            .bucket(&self.bucket)
            .key(self.key(&format!("{HISTORY}{name}")))
            .content_type("application/json")
            .body(body.into())
            .send()
            .await
            .map_err(|e| classify("PutObject", &e))?;
        Ok(())
    }

    async fn history(&self, n: usize) -> Result<Vec<Pointer>, PortError> {
        let max = i32::try_from(n.min(1000)).unwrap_or(1000);
        let (mut keys, _) = self.list(HISTORY, Some(max), None).await?;
        if keys.len() < n {
            keys.extend(self.legacy_history().await?);
        }
        let mut out = Vec::new();
        for key in keys.into_iter().take(n) {
            // An entry an older agent wrote for an `--activate` of anything at all does not
            // parse: the history shows what it can.
            if let Some((bytes, _)) = self.get(&key).await? {
                out.extend(serde_json::from_slice::<Pointer>(&bytes).ok());
            }
        }
        Ok(out)
    }

    fn describe(&self, what: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(what))
    }
}
