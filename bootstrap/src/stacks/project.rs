//! The project's stack: what every environment shares — the ECR repositories, the state
//! bucket, the notification topic. The repositories and the bucket hold data no environment
//! may take with it: `Retain` keeps them (and their images and versions) when the stack goes.
//! The repositories' lifecycle policy never expires a release tag or an image the agent
//! protects (what an environment runs or can roll back to): `harbormaster_core::retention`.

use serde_json::{json, Value};

use super::{att, logical, r, Template};
use crate::spec::Spec;

/// `(output name under /<project>/<env>/outputs/, export name)` of what the project stack
/// gives the environments.
pub fn project_exports(spec: &Spec) -> Vec<(String, String)> {
    let p = &spec.project;
    let mut out = vec![
        ("topic-arn".to_owned(), format!("{p}-topic-arn")),
        ("state-bucket".to_owned(), format!("{p}-state-bucket")),
    ];
    for repo in &spec.repositories {
        out.push((format!("repositories/{repo}"), format!("{p}-repository-{}", logical(repo))));
    }
    out
}

pub fn project(spec: &Spec) -> Value {
    let p = &spec.project;
    let mut t = Template::default();
    let tags = json!([{"Key": "harbormaster:project", "Value": p}]);
    for repo in &spec.repositories {
        let id = format!("Repository{}", logical(repo));
        let policy = spec.registry.lifecycle_policy().to_json();
        t.add(
            &id,
            "AWS::ECR::Repository",
            json!({
                "RepositoryName": repo,
                "ImageScanningConfiguration": {"ScanOnPush": true},
                "ImageTagMutability": if spec.registry.immutable_tags { "IMMUTABLE" } else { "MUTABLE" },
                "LifecyclePolicy": {"LifecyclePolicyText": policy.to_string()},
                "Tags": tags,
            }),
        );
        t.retain(&id);
        t.output(&id, att(&id, "RepositoryUri"), Some(format!("{p}-repository-{}", logical(repo))));
    }
    t.add(
        "StateBucket",
        "AWS::S3::Bucket",
        json!({
            "BucketName": spec.state_bucket,
            "VersioningConfiguration": {"Status": "Enabled"},
            "BucketEncryption": {"ServerSideEncryptionConfiguration": [
                {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
            ]},
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": true, "BlockPublicPolicy": true,
                "IgnorePublicAcls": true, "RestrictPublicBuckets": true
            },
            "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
            // Old versions of state documents are history, not forever.
            "LifecycleConfiguration": {"Rules": [{
                "Id": "old-versions", "Status": "Enabled",
                "NoncurrentVersionExpiration": {"NoncurrentDays": 90}
            }]},
            "Tags": tags,
        }),
    );
    t.retain("StateBucket");
    t.output("StateBucket", r("StateBucket"), Some(format!("{p}-state-bucket")));
    t.add("Topic", "AWS::SNS::Topic", json!({"TopicName": spec.topic_name, "Tags": tags}));
    // Subscriptions people made to it must survive a stack replacement of the topic.
    t.retain("Topic");
    t.output("Topic", r("Topic"), Some(format!("{p}-topic-arn")));
    t.render(format!("Harbormaster: what every environment of {p} shares (harbormaster-bootstrap)"))
}
