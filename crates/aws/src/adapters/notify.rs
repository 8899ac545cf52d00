//! SNS: notifications, with the attributes subscribers filter on.

use harbormaster_core::notify::Notification;
use harbormaster_core::ports::*;

use crate::errors::classify;

use super::*;

impl Notifier for AwsPorts {
    async fn publish(&self, topic: &str, n: &Notification) -> Result<(), PortError> {
        // One form per protocol: people on email (and SMS) read text; SQS, Lambda, Firehose and
        // plain HTTP get the full JSON report; HTTPS gets the custom notification schema of
        // Amazon Q Developer in chat applications (AWS Chatbot), which subscribes over HTTPS
        // and drops anything else (core's notify/chat.rs). Attributes let subscriptions filter
        // by environment or severity.
        let json = n.json().to_string();
        let message = serde_json::json!({
            "default": n.text(),
            "email": n.text(),
            "email-json": json,
            "sms": n.subject(),
            "sqs": json,
            "lambda": json,
            "firehose": json,
            "http": json,
            "https": n.chat().to_string(),
        });
        let mut req = self
            .clients
            .sns
            .publish()
            .topic_arn(topic)
            .subject(n.subject())
            .message_structure("json")
            .message(message.to_string());
        for (k, v) in n.attributes() {
            req = req.message_attributes(
                k,
                aws_sdk_sns::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(v)
                    .build()
                    .map_err(|e| PortError::new(ErrorKind::Invalid, "Publish", e.to_string()))?,
            );
        }
        if topic.ends_with(".fifo") {
            // A FIFO topic drops a repeat of the id within five minutes: the outbox delivers
            // at least once, SNS then exactly once. One group per service keeps its order.
            req = req
                .message_group_id(format!("{}/{}", n.environment, n.service))
                .message_deduplication_id(dedup_id(&n.id));
        }
        req.send().await.map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}

/// SNS takes up to 128 characters from `[!-~]` as a deduplication id: the notice id when it
/// fits, else a readable prefix and a stable fingerprint of the whole, the same in every agent
/// version.
fn dedup_id(id: &str) -> String {
    if id.len() <= 128 && id.bytes().all(|b| (b'!'..=b'~').contains(&b)) {
        return id.to_owned();
    }
    let prefix: String = id
        .chars()
        .take(90)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    let hash = harbormaster_core::text::fingerprint(id.as_bytes());
    format!("{prefix}-{hash}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_deduplication_id_is_what_sns_accepts() {
        assert_eq!(super::dedup_id("d-1/started"), "d-1/started");
        let long = format!("{}/ünïcode id", "x".repeat(200));
        let id = super::dedup_id(&long);
        assert!(
            id.len() <= 128 && id.bytes().all(|b| (b'!'..=b'~').contains(&b)),
            "{id}"
        );
        assert_eq!(id, super::dedup_id(&long), "stable");
    }
}
