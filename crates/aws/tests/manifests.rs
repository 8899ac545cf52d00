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

/// One push releasing web and worker from one image: the second service's check is answered
/// from the first's (a digest's manifest never changes), one BatchGetImage for both. A
/// rollback's check (`resolved = false`) always asks: the image may have gone since.
#[tokio::test]
async fn a_single_platform_image_is_read_once_per_invocation() {
    let got = serde_json::json!({"images": [{
        "registryId": "123456789012", "repositoryName": "booking/web",
        "imageId": {"imageDigest": digest().as_str()},
        "imageManifest": "{\"schemaVersion\":2}",
        "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json"
    }], "failures": []});
    let body = got.to_string();
    let rule = mock!(aws_sdk_ecr::Client::batch_get_image)
        .sequence()
        .http_status(200, Some(body))
        .repeatedly()
        .build();
    let ecr = client!(aws_sdk_ecr, [&rule]);
    let p = from(harbormaster_aws::adapters::Clients {
        ecr: ecr.into(),
        ..silent()
    });
    for _ in 0..2 {
        let m = p
            .manifest("booking/web", &digest(), true)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(m.architectures, None);
    }
    assert_eq!(rule.num_calls(), 1);
    p.manifest("booking/web", &digest(), false).await.unwrap();
    assert_eq!(rule.num_calls(), 2);
}
