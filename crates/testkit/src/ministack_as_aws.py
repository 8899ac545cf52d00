"""ministack, with what it does otherwise than AWS put right, then started as its own script is.

ECR BatchDeleteImage: "You can remove a tag from an image by specifying the image's tag in your
request. When you remove the last tag from an image, the image is deleted from your repository."
(BatchDeleteImage, Amazon ECR API Reference.) ministack deletes the whole image whichever tag is
named, so taking a protection tag off would delete a release other tags still name.
"""
import sys

from ministack.app import main
from ministack.services import ecr


def _batch_delete_image(data):
    name = data.get("repositoryName", "")
    if name not in ecr._repositories:
        return ecr.error_response_json(
            "RepositoryNotFoundException", f"The repository with name '{name}' does not exist", 400)
    deleted, failures = [], []
    for iid in data.get("imageIds", []):
        image = ecr._find_image(name, iid)
        if image is None:
            failures.append({"imageId": iid, "failureCode": "ImageNotFound",
                             "failureReason": "Requested image not found"})
            continue
        tag, tags = iid.get("imageTag"), image.get("imageTags", [])
        if tag and not iid.get("imageDigest") and len(tags) > 1:
            tags.remove(tag)
            if image["imageId"].get("imageTag") == tag:
                image["imageId"]["imageTag"] = tags[0]
            deleted.append({"imageDigest": image["imageDigest"], "imageTag": tag})
            continue
        ecr._images[name].remove(image)
        deleted.append(image["imageId"])
    return ecr.json_response({"imageIds": deleted, "failures": failures})


ecr._batch_delete_image = _batch_delete_image

if __name__ == "__main__":
    sys.argv[0] = "ministack"
    sys.exit(main())
