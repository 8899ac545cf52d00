//! SNS: notifications, with the attributes subscribers filter on.

use harbormaster_core::notify::Notification;
use harbormaster_core::ports::*;

use crate::errors::classify;

use super::*;

impl Notifier for AwsPorts {
    async fn publish(&self, topic: &str, n: &Notification) -> Result<(), PortError> {
        // Per-protocol messages: people on email and chat read text, machines on SQS, Lambda
        // and HTTPS get JSON. Attributes let subscriptions filter by environment or severity.
        let json = n.json().to_string();
        let message = serde_json::json!({
            "default": n.text(),
            "email": n.text(),
            "sqs": json,
            "lambda": json,
            "http": json,
            "https": json,
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
        req.send().await.map_err(|e| classify("Publish", &e))?;
        Ok(())
    }
}
