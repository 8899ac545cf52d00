//! CodePipeline: the Lambda invoke action's parameters, the build's image artifacts, the
//! continuation token, and how a job stands given the state documents; the job's flow is in
//! `job.rs`, over the ports. The job API calls and the artifact download are the adapters'
//! (the [`crate::ports::Pipelines`] port).

pub mod job;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::image::Digest;
use crate::state::{ServiceState, Verdict};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JobInputError(pub String);

/// The action's `UserParameters`, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobParams {
    pub environment: String,
    #[serde(default)]
    pub service: Option<String>,
    #[serde(default)]
    pub services: Vec<String>,
    /// Only a digest whose release succeeded in this environment may be deployed.
    #[serde(default)]
    pub promote_from: Option<String>,
}

impl JobParams {
    pub fn parse(text: Option<&str>) -> Result<JobParams, JobInputError> {
        const SHAPE: &str = r#"expected JSON like {"environment": "staging", "services": ["web"], "promote_from": "dev"}"#;
        let text = text
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| JobInputError(format!("UserParameters is empty: {SHAPE}")))?;
        let mut p: JobParams = serde_json::from_str(text)
            .map_err(|e| JobInputError(format!("UserParameters: {e}; {SHAPE}")))?;
        if let Some(s) = p.service.take() {
            p.services.insert(0, s);
        }
        if p.services.is_empty() {
            return Err(JobInputError(format!(
                "UserParameters names no service: {SHAPE}"
            )));
        }
        p.services.dedup();
        Ok(p)
    }
}

/// `imageDetail.json`, the ECS blue/green action's format: one image for every service.
#[derive(Debug, Deserialize)]
struct ImageDetail {
    #[serde(rename = "ImageURI")]
    image_uri: String,
}

/// One entry of `imagedefinitions.json`, the ECS standard action's format.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageDefinition {
    pub name: String,
    pub image_uri: String,
}

pub const IMAGE_DETAIL: &str = "imageDetail.json";
pub const IMAGE_DEFINITIONS: &str = "imagedefinitions.json";

/// The images the build produced, from whichever of the two files the artifact holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuiltImages {
    One(String),
    ByContainer(Vec<ImageDefinition>),
}

impl BuiltImages {
    /// `files`: the artifact's file names and contents (only the two known files are read).
    pub fn from_artifact(
        artifact: &str,
        files: &BTreeMap<String, Vec<u8>>,
    ) -> Result<BuiltImages, JobInputError> {
        let find = |name: &str| {
            files
                .iter()
                .find(|(k, _)| k.rsplit('/').next() == Some(name))
                .map(|(_, v)| v)
        };
        if let Some(bytes) = find(IMAGE_DETAIL) {
            let d: ImageDetail = serde_json::from_slice(bytes).map_err(|e| {
                JobInputError(format!(
                    "{artifact}/{IMAGE_DETAIL}: {e}; expected {{\"ImageURI\": \"<account>.dkr.ecr.<region>.amazonaws.com/<repository>@sha256:…\"}}"
                ))
            })?;
            return Ok(BuiltImages::One(d.image_uri));
        }
        if let Some(bytes) = find(IMAGE_DEFINITIONS) {
            let d: Vec<ImageDefinition> = serde_json::from_slice(bytes).map_err(|e| {
                JobInputError(format!(
                    "{artifact}/{IMAGE_DEFINITIONS}: {e}; expected [{{\"name\": \"<container>\", \"imageUri\": \"<repository>@sha256:… or :tag\"}}]"
                ))
            })?;
            if d.is_empty() {
                return Err(JobInputError(format!(
                    "{artifact}/{IMAGE_DEFINITIONS}: the list is empty"
                )));
            }
            return Ok(BuiltImages::ByContainer(d));
        }
        Err(JobInputError(format!(
            "the input artifact {artifact} holds neither {IMAGE_DETAIL} nor {IMAGE_DEFINITIONS} (files: {})",
            files.keys().cloned().collect::<Vec<_>>().join(", ")
        )))
    }

    /// The image reference for a service, matched by the service's name or one of its
    /// containers.
    pub fn for_service(
        &self,
        service: &str,
        containers: &[String],
    ) -> Result<String, JobInputError> {
        match self {
            BuiltImages::One(uri) => Ok(uri.clone()),
            BuiltImages::ByContainer(defs) => defs
                .iter()
                .find(|d| d.name == service || containers.contains(&d.name))
                .map(|d| d.image_uri.clone())
                .ok_or_else(|| {
                    JobInputError(format!(
                        "{IMAGE_DEFINITIONS} has no entry for service `{service}` (names: {})",
                        defs.iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                }),
        }
    }
}

/// What a continuation invocation needs: the digest each service is being deployed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobToken {
    pub environment: String,
    pub digests: BTreeMap<String, Digest>,
}

/// PutJobSuccessResult's `continuationToken` is at most 2,048 characters (CodePipeline API
/// Reference, PutJobSuccessResult).
pub const MAX_TOKEN: usize = 2048;

/// The token as sent: each distinct digest once (services built from one image share it), each
/// service by the index of its digest. A service costs its name and a few characters; only
/// distinct images cost 67 each.
#[derive(Serialize, Deserialize)]
struct TokenDoc {
    v: u32,
    e: String,
    i: Vec<String>,
    s: BTreeMap<String, usize>,
}

/// The first form: every service with its whole digest (about 90 characters a service).
#[derive(Deserialize)]
struct LegacyToken {
    environment: String,
    digests: BTreeMap<String, Digest>,
}

impl JobToken {
    /// The token CodePipeline carries; an error when even the compact form would pass its
    /// limit, found before anything is deployed.
    pub fn encode(&self) -> Result<String, JobInputError> {
        let mut images: Vec<String> = Vec::new();
        let mut services = BTreeMap::new();
        for (s, d) in &self.digests {
            let hex = d.as_str().trim_start_matches("sha256:").to_owned();
            let i = match images.iter().position(|x| *x == hex) {
                Some(i) => i,
                None => {
                    images.push(hex);
                    images.len() - 1
                }
            };
            services.insert(s.clone(), i);
        }
        let doc = TokenDoc {
            v: 2,
            e: self.environment.clone(),
            i: images,
            s: services,
        };
        let text = serde_json::to_string(&doc).expect("token serialises");
        if text.len() > MAX_TOKEN {
            return Err(JobInputError(format!(
                "this job deploys {} services from {} distinct images: more than CodePipeline's continuation token ({MAX_TOKEN} characters) can follow; split the action",
                doc.s.len(),
                doc.i.len()
            )));
        }
        Ok(text)
    }

    pub fn decode(text: &str) -> Result<JobToken, JobInputError> {
        let bad = |e: String| JobInputError(format!("continuation token not understood: {e}"));
        // A job started by an agent before this form carries the first one.
        if let Ok(legacy) = serde_json::from_str::<LegacyToken>(text) {
            return Ok(JobToken {
                environment: legacy.environment,
                digests: legacy.digests,
            });
        }
        let doc: TokenDoc = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let mut digests = BTreeMap::new();
        for (s, i) in doc.s {
            let hex = doc
                .i
                .get(i)
                .ok_or_else(|| bad(format!("service `{s}` names no image")))?;
            let d = Digest::parse(&format!("sha256:{hex}")).map_err(|e| bad(e.to_string()))?;
            digests.insert(s, d);
        }
        Ok(JobToken {
            environment: doc.e,
            digests,
        })
    }
}

/// Where one service's release stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReleaseStatus {
    Running,
    Succeeded {
        task_definition_arn: String,
        deployment_id: String,
    },
    Failed(String),
}

/// Reads a service's state document for the release of `digest`.
pub fn release_status(state: Option<&ServiceState>, digest: &Digest) -> ReleaseStatus {
    let Some(s) = state else {
        return ReleaseStatus::Failed(format!(
            "no state is recorded for {}: the deployment never started",
            digest.short()
        ));
    };
    if s.in_flight
        .as_ref()
        .is_some_and(|d| &d.release.image.digest == digest && d.rollback.is_none())
        || s.pending
            .as_ref()
            .is_some_and(|p| &p.release.image.digest == digest)
    {
        return ReleaseStatus::Running;
    }
    if let Some(h) = s
        .history
        .iter()
        .find(|h| &h.image.digest == digest && h.deployment_id.is_some())
    {
        let why = h.reason.clone().unwrap_or_default();
        return match h.verdict {
            Verdict::Succeeded if s.bad(digest).is_none() => ReleaseStatus::Succeeded {
                task_definition_arn: h.task_definition_arn.clone().unwrap_or_default(),
                deployment_id: h.deployment_id.clone().map(|d| d.0).unwrap_or_default(),
            },
            Verdict::Succeeded => ReleaseStatus::Failed(format!(
                "it succeeded, then was marked bad: {}",
                s.bad(digest).map(|b| b.why.as_str()).unwrap_or_default()
            )),
            v => ReleaseStatus::Failed(format!("{v}: {why}")),
        };
    }
    if let Some(g) = s
        .last_known_good
        .as_ref()
        .filter(|g| &g.image.digest == digest)
    {
        return ReleaseStatus::Succeeded {
            task_definition_arn: g.task_definition_arn.clone(),
            deployment_id: g.deployment_id.0.clone(),
        };
    }
    if let Some(h) = s.history.iter().find(|h| &h.image.digest == digest) {
        return ReleaseStatus::Failed(format!(
            "{}: {}",
            h.verdict,
            h.reason.clone().unwrap_or_default()
        ));
    }
    ReleaseStatus::Failed(format!(
        "{} is not in flight, pending or in the history",
        digest.short()
    ))
}

/// Whether production may take `digest`: its release must have succeeded in `source` (and
/// not have been marked bad there since).
pub fn promotion_allowed(
    source_env: &str,
    state: Option<&ServiceState>,
    digest: &Digest,
) -> Result<(), String> {
    match release_status(state, digest) {
        ReleaseStatus::Succeeded { .. } => Ok(()),
        ReleaseStatus::Running => Err(format!(
            "{} is still being deployed in {source_env}; promote it once it succeeded there",
            digest.short()
        )),
        ReleaseStatus::Failed(why) => Err(format!(
            "{} did not succeed in {source_env} ({why}); it is not promoted",
            digest.short()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_name_the_environment_and_services() {
        let p = JobParams::parse(Some(
            r#"{"environment": "prod", "service": "web", "promote_from": "staging"}"#,
        ))
        .unwrap();
        assert_eq!(p.services, ["web"]);
        assert_eq!(p.promote_from.as_deref(), Some("staging"));
        for bad in [
            None,
            Some(""),
            Some("{}"),
            Some(r#"{"environment": "x"}"#),
            Some(r#"{"environment": "x", "services": ["a"], "colour": 1}"#),
        ] {
            let e = JobParams::parse(bad).unwrap_err().to_string();
            assert!(e.contains("UserParameters"), "{e}");
        }
    }

    #[test]
    fn artifacts_in_either_format_give_each_service_its_image() {
        let files = BTreeMap::from([(
            "imagedefinitions.json".to_owned(),
            br#"[{"name":"web","imageUri":"1.dkr.ecr.us-east-1.amazonaws.com/booking/web@sha256:aa"},{"name":"worker","imageUri":"booking/web:main-1"}]"#.to_vec(),
        )]);
        let b = BuiltImages::from_artifact("BuildOutput", &files).unwrap();
        assert!(b.for_service("web", &[]).unwrap().ends_with("@sha256:aa"));
        assert_eq!(
            b.for_service("jobs", &["worker".into()]).unwrap(),
            "booking/web:main-1"
        );
        let err = b.for_service("cron", &[]).unwrap_err().to_string();
        assert!(
            err.contains("no entry for service `cron`") && err.contains("web, worker"),
            "{err}"
        );

        let detail = BTreeMap::from([(
            "imageDetail.json".to_owned(),
            br#"{"ImageURI":"x@sha256:bb"}"#.to_vec(),
        )]);
        assert_eq!(
            BuiltImages::from_artifact("A", &detail).unwrap(),
            BuiltImages::One("x@sha256:bb".into())
        );

        let broken = BTreeMap::from([("imageDetail.json".to_owned(), b"{\"Image\": 1}".to_vec())]);
        let err = BuiltImages::from_artifact("A", &broken)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("A/imageDetail.json: ") && err.contains("ImageURI"),
            "{err}"
        );
        let none = BTreeMap::from([("README".to_owned(), Vec::new())]);
        let err = BuiltImages::from_artifact("A", &none)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("neither imageDetail.json nor imagedefinitions.json")
                && err.contains("README"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod token_tests {
    use super::*;

    fn token(services: usize, images: usize) -> JobToken {
        let digests = (0..services)
            .map(|n| {
                let d = Digest::parse(&format!("sha256:{:064x}", n % images + 1)).unwrap();
                (format!("service-{n:02}"), d)
            })
            .collect();
        JobToken {
            environment: "production".into(),
            digests,
        }
    }

    /// Issue 33, item 12: the first form grew about 90 characters a service, so a job of 20 or
    /// more services passed PutJobSuccessResult's 2,048-character `continuationToken` and
    /// failed. Services built from one image share its digest now; too many distinct images is
    /// refused before anything is deployed, saying why.
    #[test]
    fn item_12_the_continuation_token_fits_codepipelines_limit_or_the_job_is_refused_first() {
        let monorepo = token(60, 1);
        let old = serde_json::json!({"v": 1, "environment": monorepo.environment, "digests": monorepo.digests});
        assert!(
            old.to_string().len() > MAX_TOKEN,
            "the old form of 60 services"
        );
        let text = monorepo.encode().unwrap();
        assert!(text.len() <= MAX_TOKEN, "{} characters", text.len());
        assert_eq!(JobToken::decode(&text).unwrap(), monorepo);
        let mixed = token(20, 20);
        assert_eq!(JobToken::decode(&mixed.encode().unwrap()).unwrap(), mixed);
        let err = token(40, 40).encode().unwrap_err().to_string();
        assert!(
            err.contains("2048") && err.contains("split the action"),
            "{err}"
        );
        // A token an older agent gave CodePipeline still reads.
        assert_eq!(JobToken::decode(&old.to_string()).unwrap(), monorepo);
    }
}
