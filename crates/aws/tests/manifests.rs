//! Issue 33, item 5: the one ECR call before registering or putting a revision back
//! (BatchGetImage) read as AWS answers it: an OCI index lists its platforms (attestations,
//! `unknown`, left out), a single-platform manifest is "not known not to", and a missing image
//! is a `failures` entry, not an error ("BatchGetImage", Amazon ECR API Reference; the index
//! shape from the OCI image spec, `application/vnd.oci.image.index.v1+json`).

mod mocked;

use aws_smithy_mocks::mock;
use harbormaster_core::image::Digest;
use harbormaster_core::ports::Images;
use mocked::*;

fn digest() -> Digest {
    Digest::parse(&format!("sha256:{}", "ab".repeat(32))).unwrap()
}

fn answer(body: serde_json::Value) -> aws_smithy_runtime_api::http::Response {
    http_json(&body.to_string())
}

#[tokio::test]
async fn item_5_an_index_lists_its_platforms_and_a_missing_image_is_none() {
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:1", "size": 1,
             "platform": {"architecture": "amd64", "os": "linux"}},
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:2", "size": 1,
             "platform": {"architecture": "unknown", "os": "unknown"}}
        ]
    });
    let got = serde_json::json!({"images": [{
        "registryId": "123456789012", "repositoryName": "booking/web",
        "imageId": {"imageDigest": digest().as_str()},
        "imageManifest": index.to_string(),
        "imageManifestMediaType": "application/vnd.oci.image.index.v1+json"
    }], "failures": []});
    let missing = serde_json::json!({"images": [], "failures": [{
        "imageId": {"imageDigest": digest().as_str()},
        "failureCode": "ImageNotFound", "failureReason": "Requested image not found"
    }]});
    let (a, b) = (got.clone(), missing.clone());
    let first = mock!(aws_sdk_ecr::Client::batch_get_image)
        .match_requests(|r| {
            r.accepted_media_types()
                .iter()
                .any(|t| t.contains("image.index"))
        })
        .then_http_response(move || answer(a.clone()));
    let second =
        mock!(aws_sdk_ecr::Client::batch_get_image).then_http_response(move || answer(b.clone()));
    let ecr = client!(aws_sdk_ecr, [&first, &second]);
    let p = from(harbormaster_aws::adapters::Clients {
        ecr: ecr.into(),
        ..silent()
    });
    let m = p
        .manifest("booking/web", &digest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.architectures, Some(vec!["amd64".to_string()]));
    assert!(m.offers("X86_64") && !m.offers("ARM64"));
    assert_eq!(
        p.manifest("booking/web", &digest(), false).await.unwrap(),
        None
    );
}
