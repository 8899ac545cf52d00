//! `harbormaster init`: a template and a config block from a service that already runs, to
//! start managing it from git (ecspresso's `init`).

use std::path::PathBuf;

use anyhow::{bail, Context as _, Result};
use harbormaster_core::ports::{Placements, Services, TaskDefinitions};
use harbormaster_core::template::init::{template_from, Initial, Origin};

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    /// The environment it runs in (its name becomes `${env}` in the template).
    #[arg(long)]
    env: String,
    /// The service's name in harbormaster.toml.
    #[arg(long)]
    service: String,
    /// The ECS cluster the service runs in.
    #[arg(long)]
    cluster: String,
    /// The ECS service's name; default: --service.
    #[arg(long)]
    ecs_service: Option<String>,
    /// Where to write the template; default: taskdefs/<service>.json beside the config.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Replace a template that exists (init never overwrites one otherwise).
    #[arg(long)]
    force: bool,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let ecs_service = self
            .ecs_service
            .clone()
            .unwrap_or_else(|| self.service.clone());
        let running = ports.describe(&self.cluster, &ecs_service).await?;
        let described = ports.describe_body(&running.task_definition).await?;
        let environment = bundle
            .config
            .environments
            .get(&self.env)
            .with_context(|| format!("no environment `{}` in the config", self.env))?;
        let placement = ports.placement(environment).await?;
        let origin = Origin {
            environment: &self.env,
            account: &placement.account,
            region: &placement.region,
        };
        let Initial {
            template,
            repositories,
            secrets,
        } = template_from(&described, &origin);
        let relative = format!("taskdefs/{}.json", self.service);
        let out = self
            .out
            .clone()
            .unwrap_or_else(|| PathBuf::from(&cx.config).join(&relative));
        if out.exists() && !self.force {
            bail!(
                "{} exists: init never overwrites a template; give --force to replace it",
                out.display()
            );
        }
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&out, serde_json::to_string_pretty(&template)? + "\n")
            .with_context(|| format!("writing {}", out.display()))?;
        eprintln!(
            "wrote {} from {} (read-only fields and ECS's defaults dropped; secrets kept as valueFrom)",
            out.display(),
            running.task_definition
        );
        let repository = repositories
            .first()
            .cloned()
            .unwrap_or_else(|| "<repository>".into());
        out!("[services.{}]", self.service);
        out!("repository = \"{repository}\"");
        out!("task_definition = \"{relative}\"");
        if ecs_service != self.service {
            out!("ecs_service = \"{ecs_service}\"");
        }
        out!("desired_count = {}", running.desired_count);
        out!("\n[services.{}.environments.{}]", self.service, self.env);
        self.say_secrets(&bundle.config.project, &secrets);
        Ok(Exit::Done)
    }

    /// Plaintext variables that looked like secrets: left out of the template, offered as
    /// `secrets` references to parameters the team writes itself (their values are never
    /// printed or written).
    fn say_secrets(&self, project: &str, names: &[String]) {
        if names.is_empty() {
            return;
        }
        let param = |n: &str| format!("app/{}", n.to_ascii_lowercase().replace('_', "-"));
        let refs: Vec<String> = names
            .iter()
            .map(|n| format!("{n} = \"{}\"", param(n)))
            .collect();
        out!("secrets = {{ {} }}", refs.join(", "));
        for n in names {
            eprintln!(
                "{n} looked like a secret: its value was not written. Put it in SSM as a SecureString named /{project}/{}/{} (it keeps its name in the container)",
                self.env,
                param(n)
            );
        }
    }
}
