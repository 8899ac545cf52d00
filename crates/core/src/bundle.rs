//! The GitOps source as one checked unit: `harbormaster.toml` and every template it names.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::config::{Config, ConfigErrors, CONFIG_FILE};
use crate::machine::Policy;
use crate::ports::{ConfigSource, PortError, ServiceTarget};
use crate::template::{Template, TemplateError};

#[derive(Debug, Clone)]
pub struct Bundle {
    pub config: Config,
    /// By service name.
    pub templates: BTreeMap<String, Template>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("cannot read {location}: {source}")]
    Read { location: String, source: PortError },
    #[error("{location}: not UTF-8 text")]
    Encoding { location: String },
}

impl Bundle {
    /// Reads and checks everything; any error means nothing is deployed from this source.
    pub async fn load<S: ConfigSource>(source: &S) -> Result<Bundle, BundleError> {
        let text = read_text(source, CONFIG_FILE).await?;
        let config = Config::parse(&source.describe(CONFIG_FILE), &text)?;
        let mut templates = BTreeMap::new();
        for s in config.services.values() {
            let text = read_text(source, &s.task_definition).await?;
            let t = Template::parse(&source.describe(&s.task_definition), &text)?;
            t.image_containers(s)?;
            templates.insert(s.name.clone(), t);
        }
        Ok(Bundle { config, templates })
    }

    pub fn policy(&self, env: &str, service: &str) -> Option<Policy> {
        let (_, s, t) = self.config.target(env, service)?;
        let a = &self.config.agent;
        let extra = s
            .native
            .as_ref()
            .map(|n| n.extra_minutes(&t.gates, a.hook_callback_seconds))
            .unwrap_or(0);
        let project = &self.config.project;
        let mut gates = t.gates.clone();
        gates.checks = gates
            .checks
            .iter()
            .map(|c| crate::strategy::localise(c, project, env, service))
            .collect();
        Some(Policy {
            project: self.config.project.clone(),
            order: t.order(),
            lease: Duration::seconds(a.lease_seconds.into()),
            settle: Duration::seconds(a.settle_seconds.into()),
            stabilize_timeout: Duration::minutes(i64::from(a.stabilize_timeout_minutes) + extra),
            max_attempts: a.max_attempts,
            history_limit: a.history_limit,
            gates,
            alarms: t.alarms.clone(),
            native: s.strategy.is_native(),
            scaling: t.scaling.clone(),
            owner: String::new(),
        })
    }

    pub fn service_target(&self, env: &str, service: &str) -> Option<ServiceTarget> {
        let (e, s, t) = self.config.target(env, service)?;
        Some(ServiceTarget {
            environment: e.name.clone(),
            name: s.name.clone(),
            cluster: e.cluster.clone(),
            service: s.ecs_service.clone(),
            // A scaled service's count belongs to the scaler: deployments leave it alone.
            desired_count: t.desired_count.filter(|_| t.scaling.is_none()),
            rolling: s.rolling.clone(),
            alarms: t.rollback_alarms.clone(),
            native: None,
        })
    }
}

async fn read_text<S: ConfigSource>(source: &S, path: &str) -> Result<String, BundleError> {
    let bytes = source.read(path).await.map_err(|e| BundleError::Read {
        location: source.describe(path),
        source: e,
    })?;
    String::from_utf8(bytes).map_err(|_| BundleError::Encoding {
        location: source.describe(path),
    })
}
