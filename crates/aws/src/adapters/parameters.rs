//! SSM: secrets checked to exist (never read), the bootstrap's and the agent's outputs.

use harbormaster_core::ports::*;

use crate::errors::classify;

use super::*;

impl Parameters for AwsPorts {
    async fn missing(&self, names: &[String]) -> Result<Vec<String>, PortError> {
        // DescribeParameters answers with metadata only: no value, encrypted or not, is read.
        let mut found = std::collections::BTreeSet::new();
        for chunk in names.chunks(50) {
            let mut token = None;
            loop {
                let out = self
                    .clients
                    .ssm
                    .describe_parameters()
                    .parameter_filters(
                        aws_sdk_ssm::types::ParameterStringFilter::builder()
                            .key("Name")
                            .option("Equals")
                            .set_values(Some(chunk.to_vec()))
                            .build()
                            .map_err(|e| {
                                PortError::new(
                                    ErrorKind::Invalid,
                                    "DescribeParameters",
                                    e.to_string(),
                                )
                            })?,
                    )
                    .set_next_token(token)
                    .send()
                    .await
                    .map_err(|e| classify("DescribeParameters", &e))?;
                found.extend(
                    out.parameters()
                        .iter()
                        .filter_map(|p| p.name().map(str::to_owned)),
                );
                token = out.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(names
            .iter()
            .filter(|n| !found.contains(*n))
            .cloned()
            .collect())
    }

    async fn outputs(
        &self,
        names: &[String],
    ) -> Result<std::collections::BTreeMap<String, String>, PortError> {
        let mut found = std::collections::BTreeMap::new();
        for chunk in names.chunks(10) {
            let out = self
                .clients
                .ssm
                .get_parameters()
                .set_names(Some(chunk.to_vec()))
                // Outputs are plain Strings; a SecureString is never decrypted here.
                .with_decryption(false)
                .send()
                .await
                .map_err(|e| classify("GetParameters", &e))?;
            for p in out.parameters() {
                if p.r#type() == Some(&aws_sdk_ssm::types::ParameterType::SecureString) {
                    continue;
                }
                if let (Some(n), Some(v)) = (p.name(), p.value()) {
                    found.insert(n.to_owned(), v.to_owned());
                }
            }
        }
        Ok(found)
    }
}
