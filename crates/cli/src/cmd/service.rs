//! `harbormaster service delete --env E --service S [--yes]`: the one way a service the agent
//! owns is deleted (it never deletes one by itself). Without `--yes` it only shows the steps.

use anyhow::{bail, Result};
use harbormaster_aws::AwsPorts;
use harbormaster_core::ports::{Autoscaler, ErrorKind, ServiceStatus, Services, StateStore};
use harbormaster_core::service::ScalingStep;
use harbormaster_core::state::ServiceState;
use serde_json::json;

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Subcommand)]
pub enum Cmd {
    /// Deregister its target tracking, scale it to zero and delete it (shown first; done with
    /// --yes). The service may be one git no longer names.
    Delete(DeleteArgs),
}

#[derive(clap::Args)]
pub struct DeleteArgs {
    /// The environment, as named in harbormaster.toml.
    #[arg(long)]
    env: String,
    /// The service: its name in harbormaster.toml, or the ECS service's name.
    #[arg(long)]
    service: String,
    /// Delete; without it, show what would be done and change nothing.
    #[arg(long)]
    yes: bool,
}

impl Cmd {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        match self {
            Cmd::Delete(a) => a.run(cx).await,
        }
    }
}

/// Where the service's state document goes when the service does.
struct Archive {
    key: String,
    to: String,
    state: ServiceState,
}

impl DeleteArgs {
    async fn run(self, cx: &Context) -> Result<Exit> {
        let (ports, bundle) = cx.prepare().await?;
        let Some(e) = bundle.config.environments.get(&self.env) else {
            bail!("no environment `{}` in the config", self.env);
        };
        let in_git = bundle.config.target(&self.env, &self.service).is_some();
        let name = (bundle.config.services.get(&self.service))
            .map(|s| s.ecs_service.clone())
            .unwrap_or_else(|| self.service.clone());
        let cluster = &e.cluster;
        let snap = match ports.describe(cluster, &name).await {
            Ok(s) if s.status == ServiceStatus::Active => s,
            Ok(_) => bail!("service {name} in {cluster} is already deleted"),
            Err(err) if err.kind == ErrorKind::NotFound => {
                bail!("no service {name} in {cluster}")
            }
            Err(err) => return Err(err.into()),
        };
        self.ensure_ours(&ports, cluster, &name, &bundle.config.project)
            .await?;
        let scaling = ports.scaling(cluster, &name).await?;
        let mut steps = Vec::new();
        if scaling.is_some() {
            steps.push(format!(
                "DeregisterScalableTarget service/{cluster}/{name} (its policies go with it)"
            ));
        }
        steps.push(format!(
            "UpdateService desiredCount=0 (it runs {})",
            snap.running_count
        ));
        steps.push(format!("DeleteService {name} in {cluster}"));
        let archive = self.archive(&ports).await?;
        if let Some(a) = &archive {
            steps.push(format!("archive its state document {} as {}", a.key, a.to));
        }
        if in_git {
            eprintln!(
                "warning: `{}` is still in git for {}: its next deployment creates it again; remove it from harbormaster.toml first",
                self.service, self.env
            );
        }
        if self.yes {
            if scaling.is_some() {
                ports
                    .apply_scaling(cluster, &name, &ScalingStep::Deregister)
                    .await?;
            }
            ports.set_desired(cluster, &name, 0).await?;
            ports.delete(cluster, &name).await?;
            if let Some(a) = &archive {
                ports.save(&a.to, &a.state, None).await?;
                ports.remove(&a.key).await?;
            }
        }
        self.report(cx, &name, cluster, &steps)?;
        Ok(Exit::Done)
    }

    /// Only the agent's own service: another one of that name (a team's, another project's,
    /// one made by hand) is not this command's to delete.
    async fn ensure_ours(
        &self,
        ports: &AwsPorts,
        cluster: &str,
        name: &str,
        project: &str,
    ) -> Result<()> {
        let owned = ports.owned(cluster).await?;
        if !(owned.iter()).any(|o| o.name == name && o.is(project, &self.env, &self.service)) {
            bail!(
                "service {name} in {cluster} is not tagged as {project}'s {}/{} (harbormaster:project, harbormaster:environment, harbormaster:service): the agent did not create it, so it does not delete it; nothing was changed",
                self.env,
                self.service
            );
        }
        Ok(())
    }

    /// The service's record goes with it, kept aside: a later service of that name starts
    /// afresh (no last known good that never ran there), and the history is not lost.
    async fn archive(&self, ports: &AwsPorts) -> Result<Option<Archive>> {
        let key = ServiceState::key(&self.env, &self.service);
        let state = match ports.load(&key).await {
            Ok(d) => d.map(|(state, _)| state),
            Err(err) if err.kind == ErrorKind::NotFound => None,
            Err(err) => return Err(err.into()),
        };
        let at = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let to = format!("archive/state/{}/{}/{at}.json", self.env, self.service);
        Ok(state.map(|state| Archive { key, to, state }))
    }

    fn report(&self, cx: &Context, name: &str, cluster: &str, steps: &[String]) -> Result<()> {
        if cx.json {
            let v = json!({"service": name, "cluster": cluster, "steps": steps, "done": self.yes});
            out!("{}", serde_json::to_string_pretty(&v)?);
            return Ok(());
        }
        let head = if self.yes { "done" } else { "would do" };
        out!("{head}:");
        for s in steps {
            out!("  {s}");
        }
        if !self.yes {
            out!("nothing was changed; add --yes to delete");
        }
        Ok(())
    }
}
