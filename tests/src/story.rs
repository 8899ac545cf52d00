//! The e2e tests' vocabulary (as Argo Rollouts' `Given().When().Then()`): what a team does —
//! ship a release, deploy by hand, edit the config — and what it then expects to see, so a test
//! reads as its story. Every step talks to the emulator as the product does (the dispatch a
//! Lambda runs, or the CLI as a process); every expectation panics with what it saw.

use std::process::Output;

use serde_json::Value;

use crate::World;

/// What the team was told: one notification's subject and message.
pub struct Notice {
    pub subject: String,
    pub message: Value,
}

impl World {
    /// Given: `tag` pushed to ECR, its push event through `ecr-push`, and a tick to see the
    /// rollout end. Returns the digest and the revision `service` runs now, and expects it
    /// recorded as the last known good.
    pub async fn ship(&self, service: &str, tag: &str) -> (String, String) {
        let digest = self.push_image(tag).await.expect("image pushed");
        let event = self.push_event(&format!("push-{tag}"), tag, &digest);
        self.push(&event).await;
        self.tick().await;
        let td = self
            .service_task_definition(service)
            .await
            .expect("service");
        let state = self.document("dev", service).await;
        assert_eq!(
            state["last_known_good"]["task_definition_arn"],
            td.as_str(),
            "{state}"
        );
        (digest, td)
    }

    /// When: a person runs `harbormaster deploy` of `image` to dev's `service`, with `extra`
    /// arguments (`--json` goes before the verb; the rest after).
    pub fn deploy(&self, service: &str, image: &str, extra: &[&str]) -> Output {
        let json: Vec<&str> = extra.iter().copied().filter(|a| *a == "--json").collect();
        let rest = extra.iter().copied().filter(|a| *a != "--json");
        let args: Vec<&str> = (json.into_iter())
            .chain([
                "deploy",
                "--env",
                "dev",
                "--service",
                service,
                "--image",
                image,
            ])
            .chain(rest)
            .collect();
        self.cli(&args)
    }

    /// The same, which must exit 0.
    pub fn deploy_ok(&self, service: &str, image: &str, extra: &[&str]) -> Output {
        let out = self.deploy(service, image, extra);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "deploy {service} {image}: {err}");
        out
    }

    /// When: the config in git changes (`edit` gets `harbormaster.toml`'s text and returns
    /// the new one, which must differ).
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.config_dir.join("harbormaster.toml");
        let before = std::fs::read_to_string(&path).expect("the config");
        let after = edit(before.clone());
        assert_ne!(after, before, "the edit changed nothing");
        std::fs::write(&path, after).expect("the config written");
    }

    /// Then: `harbormaster status` of dev's `service`, as a person reads it.
    pub fn status(&self, service: &str) -> String {
        let out = self.cli(&["status", "--env", "dev", "--service", service]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Then: dev's `service` runs revision `arn`.
    pub async fn expect_running(&self, service: &str, arn: &str) {
        let running = self
            .service_task_definition(service)
            .await
            .expect("service");
        assert_eq!(running, arn, "dev/{service} runs another revision");
    }

    /// Then: the state document of `env`/`service`, which must exist.
    pub async fn document(&self, env: &str, service: &str) -> Value {
        let doc = self.state_document(env, service).await.expect("readable");
        doc.unwrap_or_else(|| panic!("no state document for {env}/{service}"))
    }

    /// Then: the team was told of `kind` (the first such notification in the inbox, which is
    /// emptied).
    pub async fn told(&self, kind: &str) -> Notice {
        let inbox = self.inbox().await.expect("the inbox");
        let found = inbox.iter().find(|(_, m, _)| m["kind"] == kind);
        let (subject, message, _) =
            found.unwrap_or_else(|| panic!("no `{kind}` notification: {inbox:?}"));
        Notice {
            subject: subject.clone(),
            message: message.clone(),
        }
    }
}
