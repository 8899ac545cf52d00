//! A bundle's name is its content: `sha256-<64 hex>` of every file, path and length included.
//! Bundles published before SHA-256 are named by the 32-hex FNV fingerprint of the same bytes:
//! they still load, and are verified the same way.

use std::collections::BTreeMap;
use std::fmt;

use sha2::{Digest as _, Sha256};

#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct BundleDigest(String);

const SHA256: &str = "sha256-";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a bundle digest: expected `sha256-` and 64 lowercase hex digits (what `publish --stage-only` printed)")]
pub struct NotADigest;

impl BundleDigest {
    /// The digest of `files` (path → bytes), as `publish` names the bundle.
    pub fn of(files: &BTreeMap<String, Vec<u8>>) -> BundleDigest {
        BundleDigest(format!("{SHA256}{}", hex(&Sha256::digest(encoded(files)))))
    }

    /// Whether `files` are what this digest names (either scheme).
    pub fn verifies(&self, files: &BTreeMap<String, Vec<u8>>) -> bool {
        if self.0.starts_with(SHA256) {
            *self == BundleDigest::of(files)
        } else {
            self.0 == crate::text::fingerprint(&encoded(files))
        }
    }

    /// The first 12 characters of the hash, for people.
    pub fn short(&self) -> &str {
        let hash = self.0.strip_prefix(SHA256).unwrap_or(&self.0);
        &hash[..12.min(hash.len())]
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Every file as `path NUL length NUL bytes`, in path order: two bundles share a digest only if
/// they hold the same files with the same bytes.
fn encoded(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let mut all = Vec::new();
    for (path, bytes) in files {
        all.extend_from_slice(format!("{path}\0{}\0", bytes.len()).as_bytes());
        all.extend_from_slice(bytes);
    }
    all
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TryFrom<String> for BundleDigest {
    type Error = NotADigest;

    /// Only what `publish` names bundles: nothing else can reach a key (`../../state/dev`).
    fn try_from(s: String) -> Result<Self, NotADigest> {
        let lower_hex = |h: &str, n: usize| {
            h.len() == n
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let ok = match s.strip_prefix(SHA256) {
            Some(h) => lower_hex(h, 64),
            None => lower_hex(&s, 32),
        };
        ok.then_some(BundleDigest(s)).ok_or(NotADigest)
    }
}

impl std::str::FromStr for BundleDigest {
    type Err = NotADigest;
    fn from_str(s: &str) -> Result<Self, NotADigest> {
        BundleDigest::try_from(s.to_owned())
    }
}

impl From<BundleDigest> for String {
    fn from(d: BundleDigest) -> String {
        d.0
    }
}

impl fmt::Display for BundleDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        (pairs.iter())
            .map(|(p, t)| (p.to_string(), t.as_bytes().to_vec()))
            .collect()
    }

    /// Finding 13: the digest is SHA-256 of the content, checked against a value computed
    /// outside Rust: `python3 -c 'import hashlib; print(hashlib.sha256(
    /// b"harbormaster.toml\x005\x00a = 1taskdefs/web.json\x002\x00{}").hexdigest())'`.
    #[test]
    fn finding_13_a_bundle_is_named_by_the_sha256_of_its_content() {
        let f = files(&[("harbormaster.toml", "a = 1"), ("taskdefs/web.json", "{}")]);
        let d = BundleDigest::of(&f);
        let sha256 = "1033a59c6a339139e2660858187505d7803378eae67a7896c8d175e7631225c6";
        assert_eq!(d.as_str(), format!("sha256-{sha256}"));
        assert!(d.verifies(&f));
        let mut tampered = f.clone();
        tampered.insert("taskdefs/web.json".into(), b"{ }".to_vec());
        assert!(!d.verifies(&tampered), "a tampered file is refused");
    }

    #[test]
    fn finding_4_only_a_digest_names_a_bundle() {
        for bad in ["../../state/dev", "", "sha256-xyz", "SHA256-00", "abc/def"] {
            assert_eq!(bad.parse::<BundleDigest>(), Err(NotADigest), "{bad}");
        }
        // Bundles published before SHA-256 keep their names, and are verified by them.
        let f = files(&[("harbormaster.toml", "a = 1")]);
        let legacy: BundleDigest = crate::text::fingerprint(&encoded(&f)).parse().unwrap();
        assert!(legacy.verifies(&f));
    }
}
