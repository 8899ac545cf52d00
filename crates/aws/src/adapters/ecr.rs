//! ECR: tags and digests resolved to images with their push times.

use harbormaster_core::image::{Digest, Image};
use harbormaster_core::ports::*;

use crate::errors::classify;

use super::*;

impl AwsPorts {
    async fn describe_images(
        &self,
        repository: &str,
        id: Option<aws_sdk_ecr::types::ImageIdentifier>,
    ) -> Result<Vec<aws_sdk_ecr::types::ImageDetail>, PortError> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut req = self
                .clients
                .ecr
                .describe_images()
                .repository_name(repository)
                .set_next_token(token.clone());
            match &id {
                Some(id) => req = req.image_ids(id.clone()),
                None => {
                    req = req.filter(
                        aws_sdk_ecr::types::DescribeImagesFilter::builder()
                            .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                            .build(),
                    )
                }
            }
            match req.send().await {
                Ok(page) => {
                    // No registry id was sent, so ECR answered from the caller's default
                    // registry, whose id is the caller's account: GetCallerIdentity would say
                    // the same, one call later.
                    let registry = page.image_details().first().and_then(|d| d.registry_id());
                    if let Some(account) = registry {
                        self.know_account(account);
                    }
                    self.remember_platforms(repository, page.image_details());
                    out.extend(page.image_details().iter().cloned());
                    token = page.next_token().map(str::to_owned);
                    if token.is_none() || id.is_some() {
                        return Ok(out);
                    }
                }
                Err(e) => {
                    let pe = classify("DescribeImages", &e);
                    return if pe.kind == ErrorKind::NotFound
                        && id.is_some()
                        && pe.message.contains("ImageNotFound")
                    {
                        Ok(Vec::new())
                    } else {
                        Err(pe)
                    };
                }
            }
        }
    }
}

/// The manifests BatchGetImage may answer with, as pushed: Docker's and OCI's, single-platform
/// and multi-platform (an index keeps its children).
const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
];

/// An image index or manifest list: a multi-platform image.
fn is_index(media_type: &str) -> bool {
    media_type.contains("manifest.list") || media_type.contains("image.index")
}

/// At most this many single-platform digests are remembered.
const SINGLE_PLATFORM_KEPT: usize = 1024;

impl AwsPorts {
    fn remember_platforms(&self, repository: &str, details: &[aws_sdk_ecr::types::ImageDetail]) {
        for d in details {
            let (Some(digest), Some(t)) = (d.image_digest(), d.image_manifest_media_type()) else {
                continue;
            };
            if !is_index(t) {
                self.remember_single_platform(format!("{repository}@{digest}"));
            }
        }
    }

    /// BatchGetImage of one digest: the manifest as pushed (its media type kept, so an index
    /// stays an index), or `None` when ECR has no such image ("BatchGetImage", Amazon ECR API
    /// Reference: a missing image is a `failures` entry, ImageNotFound).
    async fn batch_get(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<aws_sdk_ecr::types::Image>, PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest.as_str())
            .build();
        let types = MANIFEST_TYPES.iter().map(|t| t.to_string()).collect();
        let got = (self.clients.ecr.batch_get_image())
            .repository_name(repository)
            .image_ids(id)
            .set_accepted_media_types(Some(types))
            .send()
            .await
            .map_err(|e| classify("BatchGetImage", &e))?;
        if let Some(image) = got.images().first() {
            return Ok(Some(image.clone()));
        }
        match got.failures().first().and_then(|f| f.failure_code()) {
            None | Some(aws_sdk_ecr::types::ImageFailureCode::ImageNotFound) => Ok(None),
            Some(other) => Err(PortError::new(
                ErrorKind::Invalid,
                "BatchGetImage",
                format!("{}: {repository}@{digest}", other.as_str()),
            )),
        }
    }

    fn remember_single_platform(&self, key: String) {
        let mut kept = self.single_platform.lock().expect("platforms lock");
        if kept.len() >= SINGLE_PLATFORM_KEPT {
            kept.clear();
        }
        kept.insert(key);
    }
}

/// The CPU architectures an index lists (attestations, platform `unknown`, left out).
fn architectures(manifest: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(manifest).unwrap_or_default();
    let mut out: Vec<String> = (v["manifests"].as_array().into_iter().flatten())
        .filter_map(|m| m["platform"]["architecture"].as_str())
        .filter(|a| *a != "unknown")
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

fn images_of(
    repository: &str,
    detail: &aws_sdk_ecr::types::ImageDetail,
    only_tag: Option<&str>,
) -> Vec<Image> {
    let Some(digest) = detail.image_digest().and_then(|d| Digest::parse(d).ok()) else {
        return Vec::new();
    };
    let pushed_at = to_utc(detail.image_pushed_at());
    let tags: Vec<Option<String>> = match only_tag {
        Some(t) => vec![Some(t.to_owned())],
        None if detail.image_tags().is_empty() => vec![None],
        None => detail
            .image_tags()
            .iter()
            .map(|t| Some(t.clone()))
            .collect(),
    };
    tags.into_iter()
        .map(|tag| Image {
            repository: repository.to_owned(),
            digest: digest.clone(),
            tag,
            pushed_at,
        })
        .collect()
}

impl Images for AwsPorts {
    async fn resolve_tag(&self, repository: &str, tag: &str) -> Result<Option<Image>, PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(tag)
            .build();
        let found = self.describe_images(repository, Some(id)).await?;
        Ok(found
            .first()
            .and_then(|d| images_of(repository, d, Some(tag)).into_iter().next()))
    }

    async fn by_digest(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<Option<Image>, PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_digest(digest.as_str())
            .build();
        let found = self.describe_images(repository, Some(id)).await?;
        Ok(found.first().and_then(|d| {
            let tag = d.image_tags().first().map(String::as_str);
            images_of(repository, d, tag).into_iter().next()
        }))
    }

    async fn tagged(&self, repository: &str) -> Result<Vec<Image>, PortError> {
        let found = self.describe_images(repository, None).await?;
        Ok(found
            .iter()
            .flat_map(|d| images_of(repository, d, None))
            .collect())
    }

    /// BatchGetImage: the image's manifest, or `None` when ECR has no such image ("BatchGetImage",
    /// Amazon ECR API Reference: a missing image is a `failures` entry, ImageNotFound). One a
    /// DescribeImages of this process called single-platform needs no call when just resolved.
    async fn manifest(
        &self,
        repository: &str,
        digest: &Digest,
        resolved: bool,
    ) -> Result<Option<harbormaster_core::image::Manifest>, PortError> {
        let single = || harbormaster_core::image::Manifest {
            architectures: None,
        };
        let key = format!("{repository}@{digest}");
        if resolved
            && self
                .single_platform
                .lock()
                .expect("platforms lock")
                .contains(&key)
        {
            return Ok(Some(single()));
        }
        let Some(image) = self.batch_get(repository, digest).await? else {
            return Ok(None);
        };
        let media = image.image_manifest_media_type().unwrap_or_default();
        if !is_index(media) {
            // The next service released with this image in this invocation (web and worker
            // from one push) needs no second call.
            self.remember_single_platform(key);
            return Ok(Some(single()));
        }
        let archs = architectures(image.image_manifest().unwrap_or_default());
        Ok(Some(harbormaster_core::image::Manifest {
            architectures: Some(archs),
        }))
    }

    /// BatchGetImage for the manifest as pushed (its media type kept, so an index stays an
    /// index), then PutImage of it under `tag` ("PutImage", Amazon ECR API Reference: the same
    /// manifest under a new tag adds the tag; `ImageAlreadyExistsException` when the tag is on
    /// it already).
    async fn protect(&self, image: &Image, tag: &str) -> Result<(), PortError> {
        let got = self.batch_get(&image.repository, &image.digest).await?;
        let Some(manifest) = got.and_then(|i| {
            Some((
                i.image_manifest()?.to_owned(),
                i.image_manifest_media_type().map(str::to_owned),
            ))
        }) else {
            let why = format!(
                "ImageNotFound: {} is not in {}",
                image.digest, image.repository
            );
            return Err(PortError::new(ErrorKind::NotFound, "BatchGetImage", why));
        };
        let put = (self.clients.ecr.put_image())
            .repository_name(&image.repository)
            .image_manifest(manifest.0)
            .set_image_manifest_media_type(manifest.1)
            .image_digest(image.digest.as_str())
            .image_tag(tag)
            .send()
            .await;
        match put {
            Ok(_) => Ok(()),
            Err(e) => {
                let pe = classify("PutImage", &e);
                if pe.message.starts_with("ImageAlreadyExistsException") {
                    Ok(())
                } else {
                    Err(pe)
                }
            }
        }
    }

    /// BatchDeleteImage naming the tag only: the tag comes off; an image left with no tag is
    /// deleted ("BatchDeleteImage", Amazon ECR API Reference). A tag already gone is done.
    async fn unprotect(&self, repository: &str, tag: &str) -> Result<(), PortError> {
        let id = aws_sdk_ecr::types::ImageIdentifier::builder()
            .image_tag(tag)
            .build();
        let out = (self.clients.ecr.batch_delete_image())
            .repository_name(repository)
            .image_ids(id)
            .send()
            .await
            .map_err(|e| classify("BatchDeleteImage", &e))?;
        let failed = out.failures().iter().find(|f| {
            f.failure_code() != Some(&aws_sdk_ecr::types::ImageFailureCode::ImageNotFound)
        });
        match failed {
            None => Ok(()),
            Some(f) => {
                let code = f.failure_code().map(|c| c.as_str()).unwrap_or("failure");
                let why = format!("{code}: {}", f.failure_reason().unwrap_or_default());
                Err(PortError::new(ErrorKind::Invalid, "BatchDeleteImage", why))
            }
        }
    }
}
