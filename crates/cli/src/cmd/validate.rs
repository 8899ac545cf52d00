//! `harbormaster validate`: the config and every template checked, without calling AWS.

use std::path::PathBuf;

use anyhow::Result;
use harbormaster_aws::Source;
use harbormaster_core::bundle::Bundle;
use harbormaster_core::config::bootstrap::Spec;
use harbormaster_core::config::ConfigErrors;
use harbormaster_core::ports::ConfigSource;

use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        // Offline: a folder needs no AWS client at all.
        let source = match cx.config.strip_prefix("s3://") {
            Some(_) => cx.agent().await?.source.clone(),
            None => Source::Folder(PathBuf::from(&cx.config)),
        };
        let bundle = Bundle::load(&source).await?;
        for t in bundle.templates.values() {
            for note in &t.notes {
                out!("{}: note: {note}", t.file);
            }
        }
        let c = &bundle.config;
        let file = source.describe(harbormaster_core::config::CONFIG_FILE);
        // The bootstrap tables too: a typo there is found in review, not at apply time.
        let problems: Vec<_> = (c.environments.keys())
            .filter_map(|env| Spec::from_config(&file, c, env).err())
            .flat_map(|e| e.0)
            .collect();
        if !problems.is_empty() {
            return Err(ConfigErrors(problems).into());
        }
        out!(
            "{}: valid ({} environments, {} services, {} deployment targets)",
            source.describe(harbormaster_core::config::CONFIG_FILE),
            c.environments.len(),
            c.services.len(),
            c.targets().count()
        );
        for (e, s, t) in c.targets() {
            let follows = t
                .follow
                .as_ref()
                .map(|r| r.describe())
                .unwrap_or_else(|| "manual deploys only".into());
            let auto = if e.auto_deploy {
                ""
            } else {
                " (auto-deploy off in this environment)"
            };
            let (env, service, repo) = (&e.name, &s.name, &s.repository);
            out!("  {env}/{service}: {follows} from {repo}{auto}");
            let scaled = t
                .scaling
                .as_ref()
                .map(|q| format!("; scaled on its backlog {}–{}", q.min, q.max))
                .unwrap_or_default();
            out!("    {}{scaled}", t.service.summary());
        }
        Ok(Exit::Done)
    }
}
