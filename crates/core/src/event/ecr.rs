//! "ECR Image Action": a push of a tagged image is a release; anything else deploys nothing.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

use super::{Event, EventError, Source};
use crate::image::{Digest, Image};

/// The `detail` of an EventBridge "ECR Image Action" event. aws_lambda_events has no type for it.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub struct EcrImageActionDetail {
    pub result: String,
    pub repository_name: String,
    #[serde(default)]
    pub image_digest: Option<String>,
    pub action_type: String,
    #[serde(default)]
    pub image_tag: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrAction {
    /// A successful push of a tagged image.
    Pushed(Image),
    /// Anything else: a failed push, a DELETE, an untagged push. Nothing to deploy; the reason
    /// says why.
    NothingToDeploy(String),
}

pub(super) fn parse(value: &Value, id: String, at: Source<'_>) -> Result<Event, EventError> {
    let ev: EventBridgeEvent<EcrImageActionDetail> =
        crate::json::typed(value).map_err(|e| at.malformed_field(&e))?;
    at.require_id(&id)?;
    let d = ev.detail;
    let action = if d.action_type != "PUSH" {
        EcrAction::NothingToDeploy(format!("{} action: nothing to deploy", d.action_type))
    } else if d.result != "SUCCESS" {
        EcrAction::NothingToDeploy(format!("push result {}: nothing to deploy", d.result))
    } else {
        let raw = (d.image_digest).ok_or_else(|| {
            at.malformed("detail.image-digest", "is required for a successful push")
        })?;
        let digest =
            Digest::parse(&raw).map_err(|e| at.malformed("detail.image-digest", &e.to_string()))?;
        let time = (ev.time).ok_or_else(|| at.malformed("time", "is required to order pushes"))?;
        if d.repository_name.is_empty() {
            return Err(at.malformed("detail.repository-name", "must not be empty"));
        }
        at.short("detail.repository-name", &d.repository_name)?;
        match d.image_tag.filter(|t| !t.is_empty()) {
            None => EcrAction::NothingToDeploy(
                "untagged push: environments follow tags, nothing to deploy".into(),
            ),
            // ECR accepts no such tag: this event was not written by it.
            Some(tag) if !crate::text::is_image_tag(&tag) => EcrAction::NothingToDeploy(format!(
                "`{}` is not an image tag ECR accepts: nothing to deploy",
                crate::text::shown(&tag)
            )),
            // The agent's own PutImage, keeping an image an environment needs: not a release.
            Some(tag) if tag.starts_with(crate::retention::PROTECTION_PREFIX) => {
                EcrAction::NothingToDeploy(format!(
                    "`{tag}` is harbormaster's protection tag (it keeps an image an environment needs): nothing to deploy"
                ))
            }
            Some(tag) => EcrAction::Pushed(Image {
                repository: d.repository_name,
                digest,
                tag: Some(tag),
                pushed_at: time,
            }),
        }
    };
    Ok(Event::EcrImageAction {
        id,
        account: ev.account,
        region: ev.region,
        action,
    })
}
