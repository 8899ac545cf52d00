//! Issue 33, item 14: the pipeline's input artifact was read into memory whole, whatever its
//! size; a build that put the image itself in the artifact would fill the function's memory.
//! It is refused by its announced length, or as soon as more than the cap arrived when S3 does
//! not announce one (a chunked answer), saying what to give the action instead.

use aws_sdk_s3::primitives::ByteStream;
use harbormaster_aws::pipeline::read_capped;

#[tokio::test]
async fn item_14_an_artifact_over_the_cap_is_refused_by_its_length_or_as_it_arrives() {
    let small = read_capped(
        ByteStream::from(vec![1u8; 1000]),
        Some(1000),
        4096,
        "s3://a/k",
    )
    .await
    .unwrap();
    assert_eq!(small.len(), 1000);

    let announced = read_capped(
        ByteStream::from(vec![0u8; 10]),
        Some(10 << 20),
        4096,
        "s3://a/k",
    )
    .await
    .unwrap_err();
    assert!(
        announced.message.contains("s3://a/k") && announced.message.contains("imagedefinitions"),
        "{announced}"
    );

    let unannounced = read_capped(ByteStream::from(vec![0u8; 8192]), None, 4096, "s3://a/k")
        .await
        .unwrap_err();
    assert!(unannounced.message.contains("at most"), "{unannounced}");
}
