//! An S3 prefix of published bundles, in memory: objects by key, the pointer with an ETag that
//! changes on every write, the history, and a fault for its writes.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::ports::{ErrorKind, PortError};
use crate::publish::{BundleDigest, Bundles, Manifest, Pointer};

#[derive(Default)]
pub struct MemoryBundles(pub Mutex<Bucket>);

#[derive(Default)]
pub struct Bucket {
    /// `bundles/<digest>/<path>` and `manifests/<digest>.json` → bytes.
    pub objects: BTreeMap<String, Vec<u8>>,
    pub pointer: Option<(Pointer, u64)>,
    pub history: Vec<Pointer>,
    /// The next history write fails (S3 refused it after the pointer moved).
    pub fail_record: bool,
    writes: u64,
}

impl MemoryBundles {
    pub fn with<R>(&self, f: impl FnOnce(&mut Bucket) -> R) -> R {
        f(&mut self.0.lock().expect("bundles lock"))
    }
}

fn key(digest: &BundleDigest, path: &str) -> String {
    format!("bundles/{digest}/{path}")
}

fn put_once(p: &mut Bucket, key: String, bytes: &[u8]) -> Result<(), PortError> {
    match p.objects.get(&key) {
        Some(there) if there != bytes => Err(PortError::new(
            ErrorKind::Invalid,
            "PutObject",
            format!("{key} exists with other content"),
        )),
        Some(_) => Ok(()),
        None => {
            p.objects.insert(key, bytes.to_vec());
            Ok(())
        }
    }
}

impl Bundles for MemoryBundles {
    async fn current(&self) -> Result<Option<(Pointer, String)>, PortError> {
        Ok(self.with(|p| p.pointer.clone().map(|(ptr, etag)| (ptr, etag.to_string()))))
    }

    async fn stage(
        &self,
        files: &BTreeMap<String, Vec<u8>>,
        manifest: &Manifest,
    ) -> Result<(), PortError> {
        self.with(|p| {
            for (path, bytes) in files {
                put_once(p, key(&manifest.bundle, path), bytes)?;
            }
            let m = serde_json::to_vec(manifest).expect("JSON");
            let at = format!("manifests/{}.json", manifest.bundle);
            // The manifest's time differs between two stagings of the same bundle: the first
            // is kept.
            p.objects.entry(at).or_insert(m);
            Ok(())
        })
    }

    async fn manifest(&self, digest: &BundleDigest) -> Result<Option<Manifest>, PortError> {
        let at = format!("manifests/{digest}.json");
        Ok(self
            .with(|p| p.objects.get(&at).cloned())
            .map(|b| serde_json::from_slice(&b).expect("a manifest")))
    }

    async fn read(&self, digest: &BundleDigest, path: &str) -> Result<Vec<u8>, PortError> {
        let k = key(digest, path);
        self.with(|p| p.objects.get(&k).cloned())
            .ok_or_else(|| PortError::new(ErrorKind::NotFound, "GetObject", k))
    }

    async fn point(&self, expected: Option<&str>, pointer: &Pointer) -> Result<(), PortError> {
        self.with(|p| {
            let now = p.pointer.as_ref().map(|(_, etag)| etag.to_string());
            if now.as_deref() != expected {
                return Err(PortError::new(ErrorKind::Conflict, "PutObject", "412"));
            }
            p.writes += 1;
            p.pointer = Some((pointer.clone(), p.writes));
            Ok(())
        })
    }

    async fn record(&self, pointer: &Pointer) -> Result<(), PortError> {
        self.with(|p| {
            if std::mem::take(&mut p.fail_record) {
                return Err(PortError::new(
                    ErrorKind::Transient,
                    "PutObject",
                    "503 SlowDown",
                ));
            }
            p.history.insert(0, pointer.clone());
            Ok(())
        })
    }

    async fn history(&self, n: usize) -> Result<Vec<Pointer>, PortError> {
        Ok(self.with(|p| p.history.iter().take(n).cloned().collect()))
    }

    fn describe(&self, what: &str) -> String {
        format!("s3://bundles/{what}")
    }
}
