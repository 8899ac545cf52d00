//! The state store: one JSON document per target in S3, written with compare-and-swap
//! (`If-None-Match: *` to create, `If-Match: <etag>` to update).

use harbormaster_core::ports::*;
use harbormaster_core::state::ServiceState;

use crate::errors::classify;

use super::*;

impl StateStore for AwsPorts {
    async fn remove(&self, key: &str) -> Result<(), PortError> {
        (self.clients.s3.delete_object())
            .bucket(&self.state_bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify("DeleteObject", &e))?;
        Ok(())
    }

    async fn load(&self, key: &str) -> Result<Option<(ServiceState, Version)>, PortError> {
        let out = match self
            .clients
            .s3
            .get_object()
            .bucket(&self.state_bucket)
            .key(key)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                let pe = classify("GetObject", &e);
                return match pe.kind {
                    ErrorKind::NotFound if pe.message.contains("NoSuchKey") => Ok(None),
                    // What S3 answers for a missing key to a caller without s3:ListBucket
                    // (GetObject reference, "Permissions"); the create that follows is
                    // conditional, so it can never overwrite a document it could not read.
                    ErrorKind::Denied => {
                        self.hidden(key, true);
                        Ok(None)
                    }
                    _ => Err(pe),
                };
            }
        };
        self.hidden(key, false);
        let etag = out.e_tag.clone().ok_or_else(|| {
            PortError::new(
                ErrorKind::Invalid,
                "GetObject",
                "no ETag on the state document",
            )
        })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|_| PortError::new(ErrorKind::Transient, "GetObject", "the body was cut off"))?
            .into_bytes();
        let state = ServiceState::decode(&bytes).map_err(|e| {
            let at = format!("s3://{}/{key}", self.state_bucket);
            PortError::new(ErrorKind::Invalid, "GetObject", format!("{at}: {e}"))
        })?;
        Ok(Some((state, Version(etag))))
    }

    async fn save(
        &self,
        key: &str,
        state: &ServiceState,
        expected: Option<&Version>,
    ) -> Result<Version, SaveError> {
        let body = state.encode();
        let req = self
            .clients
            .s3
            .put_object()
            .bucket(&self.state_bucket)
            .key(key)
            .content_type("application/json")
            .body(body.into());
        // The ETag is the fencing token: create only if absent, replace only the version read.
        let req = match expected {
            None => req.if_none_match("*"),
            Some(v) => req.if_match(&v.0),
        };
        match req.send().await {
            Ok(out) => Ok(Version(out.e_tag.unwrap_or_default())),
            Err(e) => {
                let pe = classify("PutObject", &e);
                match pe.kind {
                    ErrorKind::Conflict if expected.is_none() && self.was_hidden(key) => {
                        Err(SaveError::Port(self.unreadable(key)))
                    }
                    ErrorKind::Conflict => Err(SaveError::Conflict),
                    _ => Err(SaveError::Port(pe)),
                }
            }
        }
    }
}

impl AwsPorts {
    fn hidden(&self, key: &str, denied: bool) {
        let mut hidden = self.hidden.lock().unwrap_or_else(|p| p.into_inner());
        if denied {
            hidden.insert(key.to_owned());
        } else {
            hidden.remove(key);
        }
    }

    fn was_hidden(&self, key: &str) -> bool {
        let hidden = self.hidden.lock().unwrap_or_else(|p| p.into_inner());
        hidden.contains(key)
    }

    fn unreadable(&self, key: &str) -> PortError {
        let bucket = &self.state_bucket;
        PortError::new(
            ErrorKind::Denied,
            "GetObject",
            format!("s3://{bucket}/{key} exists but reading it is denied: grant s3:GetObject on it and s3:ListBucket on the bucket"),
        )
    }
}
