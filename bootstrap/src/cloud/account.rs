//! What CloudFormation cannot do for the bootstrap: write the database password as a
//! SecureString before the stack names it (CloudFormation creates no SecureString), find the
//! services still in a cluster (ECS refuses to delete a cluster with services, so a destroy
//! would stop halfway), and count and delete the data the project stack retains.

use anyhow::{anyhow, Result};
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use serde::Serialize;

use super::{missing, Call, Cloud};

/// A store of data the project stack retains, and how much it holds.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Store {
    Repository { name: String, images: usize },
    Bucket { name: String, versions: usize },
    Topic { arn: String, subscriptions: usize },
}

impl std::fmt::Display for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Store::Repository { name, images } => write!(f, "repository {name} ({images} images)"),
            Store::Bucket { name, versions } => {
                write!(f, "bucket {name} ({versions} object versions and delete markers)")
            }
            Store::Topic { arn, subscriptions } => {
                write!(f, "topic {arn} ({subscriptions} confirmed subscriptions)")
            }
        }
    }
}

/// Everything `destroy --project --delete-data` deletes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Data {
    pub stores: Vec<Store>,
}

impl Cloud {
    /// Writes the database password (generated, never shown) unless it exists. True: written.
    pub async fn ensure_password(&self, name: &str) -> Result<bool> {
        match self.ssm.get_parameter().name(name).send().await {
            Ok(_) => return Ok(false),
            Err(e) if missing(&e, &["ParameterNotFound"]) => {}
            Err(e) => return Err(e).call("GetParameter", name),
        }
        let put = self.ssm.put_parameter().name(name).value(generate_password()?).overwrite(false);
        let secure = aws_sdk_ssm::types::ParameterType::SecureString;
        match put.r#type(secure).description("the database's master password").send().await {
            Ok(_) => Ok(true),
            // Written by a concurrent apply: it is that one's, and equally good.
            Err(e) if missing(&e, &["ParameterAlreadyExists"]) => Ok(false),
            Err(e) => Err(e).call("PutParameter", name),
        }
    }

    pub async fn delete_parameter(&self, name: &str) -> Result<()> {
        match self.ssm.delete_parameter().name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if missing(&e, &["ParameterNotFound"]) => Ok(()),
            Err(e) => Err(e).call("DeleteParameter", name),
        }
    }

    /// The services in `cluster` that are not INACTIVE (ACTIVE or DRAINING: either stops
    /// DeleteCluster).
    pub async fn services_in(&self, cluster: &str) -> Result<Vec<String>> {
        let mut arns = Vec::new();
        let mut pages = self.ecs.list_services().cluster(cluster).into_paginator().send();
        while let Some(page) = pages.next().await {
            match page {
                Ok(out) => arns.extend(out.service_arns().iter().cloned()),
                Err(e) if missing(&e, &["ClusterNotFound"]) => return Ok(Vec::new()),
                Err(e) => return Err(e).call("ListServices", cluster),
            }
        }
        let mut running = Vec::new();
        for chunk in arns.chunks(10) {
            let out = (self.ecs.describe_services().cluster(cluster))
                .set_services(Some(chunk.to_vec()))
                .send()
                .await
                .call("DescribeServices", cluster)?;
            running.extend(
                (out.services().iter())
                    .filter(|s| s.status() != Some("INACTIVE"))
                    .filter_map(|s| s.service_name().map(str::to_owned)),
            );
        }
        running.sort();
        Ok(running)
    }

    /// What the retained resources hold: images per repository, object versions (and delete
    /// markers) in the bucket, subscriptions of the topic. Absent ones are left out.
    pub async fn data(&self, repositories: &[String], bucket: &str, topic: &str) -> Result<Data> {
        let mut stores = Vec::new();
        for name in repositories {
            let mut images = 0;
            let mut pages = self.ecr.list_images().repository_name(name).into_paginator().send();
            let mut exists = true;
            while let Some(page) = pages.next().await {
                match page {
                    Ok(p) => images += p.image_ids().len(),
                    Err(e) if missing(&e, &["RepositoryNotFound"]) => {
                        exists = false;
                        break;
                    }
                    Err(e) => return Err(e).call("ListImages", name),
                }
            }
            if exists {
                stores.push(Store::Repository { name: name.clone(), images });
            }
        }
        let versions = match bucket {
            "" => None,
            b => self.versions(b).await?,
        };
        if let Some(versions) = versions {
            stores.push(Store::Bucket { name: bucket.to_owned(), versions: versions.len() });
        }
        if !topic.is_empty() {
            match self.sns.get_topic_attributes().topic_arn(topic).send().await {
                Ok(out) => stores.push(Store::Topic {
                    arn: topic.to_owned(),
                    subscriptions: (out.attributes())
                        .and_then(|a| a.get("SubscriptionsConfirmed"))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                }),
                Err(e) if missing(&e, &["NotFound"]) => {}
                Err(e) => return Err(e).call("GetTopicAttributes", topic),
            }
        }
        Ok(Data { stores })
    }

    /// The `harbormaster:project` tag of `store`, `None` when it has none: the stacks tag every
    /// repository, bucket and topic they make, so a store without the project's tag is someone
    /// else's, whatever the config names.
    pub async fn project_tag(&self, store: &Store) -> Result<Option<String>> {
        const KEY: &str = "harbormaster:project";
        match store {
            Store::Repository { name, .. } => {
                let described = (self.ecr.describe_repositories().repository_names(name).send())
                    .await
                    .call("DescribeRepositories", name)?;
                let arn = described.repositories().first().and_then(|r| r.repository_arn());
                let Some(arn) = arn else { return Ok(None) };
                let tags = (self.ecr.list_tags_for_resource().resource_arn(arn).send())
                    .await
                    .call("ListTagsForResource", name)?;
                let tag = tags.tags().iter().find(|t| t.key() == KEY);
                Ok(tag.map(|t| t.value().to_owned()))
            }
            Store::Bucket { name, .. } => {
                match self.s3.get_bucket_tagging().bucket(name).send().await {
                    Ok(out) => {
                        let tag = out.tag_set().iter().find(|t| t.key() == KEY);
                        Ok(tag.map(|t| t.value().to_owned()))
                    }
                    Err(e) if missing(&e, &["NoSuchTagSet"]) => Ok(None),
                    Err(e) => Err(e).call("GetBucketTagging", name),
                }
            }
            Store::Topic { arn, .. } => {
                let tags = (self.sns.list_tags_for_resource().resource_arn(arn).send())
                    .await
                    .call("ListTagsForResource", arn)?;
                let tag = tags.tags().iter().find(|t| t.key() == KEY);
                Ok(tag.map(|t| t.value().to_owned()))
            }
        }
    }

    /// Every object version and delete marker of `bucket`; `None` when there is no bucket.
    async fn versions(&self, bucket: &str) -> Result<Option<Vec<ObjectIdentifier>>> {
        let mut all = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let p = match (self.s3.list_object_versions().bucket(bucket))
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
            {
                Ok(p) => p,
                Err(e) if missing(&e, &["NoSuchBucket"]) => return Ok(None),
                Err(e) => return Err(e).call("ListObjectVersions", bucket),
            };
            let keys = (p.versions().iter().map(|v| (v.key(), v.version_id())))
                .chain(p.delete_markers().iter().map(|m| (m.key(), m.version_id())));
            for (key, version) in keys {
                all.push(
                    ObjectIdentifier::builder()
                        .key(key.unwrap_or_default())
                        .set_version_id(version.map(str::to_owned))
                        .build()?,
                );
            }
            if p.is_truncated() != Some(true) {
                break;
            }
            key_marker = p.next_key_marker().map(str::to_owned);
            version_marker = p.next_version_id_marker().map(str::to_owned);
        }
        Ok(Some(all))
    }

    /// Deletes what [`Cloud::data`] counted: each repository with its images, the bucket's
    /// versions and then the bucket, the topic.
    pub async fn delete_data(&self, data: &Data) -> Result<()> {
        for store in &data.stores {
            match store {
                Store::Repository { name, .. } => {
                    (self.ecr.delete_repository().repository_name(name).force(true))
                        .send()
                        .await
                        .call("DeleteRepository", name)?;
                }
                Store::Bucket { name, .. } => {
                    let versions = self.versions(name).await?.unwrap_or_default();
                    for chunk in versions.chunks(1000) {
                        let delete = Delete::builder()
                            .set_objects(Some(chunk.to_vec()))
                            .quiet(true)
                            .build()?;
                        (self.s3.delete_objects().bucket(name).delete(delete))
                            .send()
                            .await
                            .call("DeleteObjects", name)?;
                    }
                    (self.s3.delete_bucket().bucket(name).send().await)
                        .call("DeleteBucket", name)?;
                }
                Store::Topic { arn, .. } => {
                    (self.sns.delete_topic().topic_arn(arn).send().await)
                        .call("DeleteTopic", arn)?;
                }
            }
        }
        Ok(())
    }
}

/// 32 characters RDS accepts in a master password (letters and digits, no look-alikes).
fn generate_password() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut out = String::with_capacity(32);
    while out.len() < 32 {
        let mut buf = [0u8; 64];
        getrandom::fill(&mut buf).map_err(|e| anyhow!("no randomness: {e}"))?;
        // Rejection sampling keeps every character equally likely.
        let limit = 256 - (256 % ALPHABET.len());
        out.extend(
            buf.iter()
                .filter(|b| (**b as usize) < limit)
                .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char),
        );
    }
    out.truncate(32);
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_are_long_random_and_safe_for_rds() {
        let a = super::generate_password().unwrap();
        let b = super::generate_password().unwrap();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }
}
