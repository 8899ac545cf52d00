//! A small environment in the local emulator, set up with the real SDK: the world the end-to-end
//! tests and `cargo xtask demo` run in. Cluster and service, ECR repository, SNS topic with an
//! SQS subscriber (our inbox), the state bucket, SSM parameters, and the GitOps source folder.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use harbormaster_aws::Agent;

pub mod chaos;
mod cli;
pub mod docs;
pub mod load;
pub mod setup;
mod story;

pub use cli::{binary, cli_binary, shell_quoted};
use harbormaster_testkit::Emulator;
use serde_json::{json, Value};
pub use setup::{create_service, emulator_config, for_the_emulator};
pub use story::Notice;

pub const ACCOUNT: &str = "000000000000";
pub const REGION: &str = "us-east-1";
pub const CLUSTER: &str = "booking-dev";
pub const REPOSITORY: &str = "booking/web";
pub const BUCKET: &str = "booking-harbormaster-state";
pub const TOPIC: &str = "booking-deployments";
pub const INBOX: &str = "booking-deployments-inbox";
pub const FAMILY: &str = "booking-dev-web";
/// The blue target group a world without the bootstrap says web is behind.
pub const WEB_TARGET_GROUP: &str =
    "arn:aws:elasticloadbalancing:us-east-1:000000000000:targetgroup/booking-dev-web-blue/0123456789abcdef";

pub fn workspace_root() -> PathBuf {
    // At run time first: cargo sets CARGO_MANIFEST_DIR for `cargo test` and `cargo run`. Builds
    // of two checkouts sharing one CARGO_TARGET_DIR share artifacts (cargo's hashes do not
    // depend on the checkout's path), so the compile-time value may name the other checkout.
    // Every caller (the tests here, xtask) sits one level below the workspace root.
    let dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    dir.parent().expect("workspace root").to_path_buf()
}

pub fn fixture(name: &str) -> Value {
    let p = workspace_root().join("tests/fixtures").join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).expect("fixture exists"))
        .expect("fixture is JSON")
}

pub struct Clients {
    pub ecs: aws_sdk_ecs::Client,
    pub ecr: aws_sdk_ecr::Client,
    pub s3: aws_sdk_s3::Client,
    pub sns: aws_sdk_sns::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub ssm: aws_sdk_ssm::Client,
}

/// A running emulator with the booking app's dev environment in it.
pub struct World {
    pub emulator: Emulator,
    /// The harness's own set-up calls (fixtures, metrics a test writes) go straight to the
    /// emulator; the agent's and the CLI's go through [`World::strict`].
    pub clients: Clients,
    pub sdk: aws_config::SdkConfig,
    /// Refuses what AWS refuses and the emulator accepts (`harbormaster_testkit::strict`).
    pub strict: harbormaster_testkit::strict::StrictProxy,
    /// The SDK config the agent's ports use: the strict proxy's endpoint.
    pub agent_sdk: aws_config::SdkConfig,
    pub config_dir: PathBuf,
    pub topic_arn: String,
    pub inbox_url: String,
    /// Stands in for Application Auto Scaling ([`setup::autoscaling_recorder`]).
    pub autoscaling: harbormaster_testkit::recorder::Recorder,
    _tmp: TempDir,
}

/// The notification topic (CreateTopic is idempotent: it also finds the bootstrap's) and an SQS
/// inbox subscribed to it, where the tests read what the team was told.
async fn subscribed_inbox(c: &Clients) -> Result<(String, String)> {
    let topic_arn = c
        .sns
        .create_topic()
        .name(TOPIC)
        .send()
        .await?
        .topic_arn
        .context("topic arn")?;
    let inbox_url = c
        .sqs
        .create_queue()
        .queue_name(INBOX)
        .send()
        .await?
        .queue_url
        .context("queue url")?;
    let inbox_arn = c
        .sqs
        .get_queue_attributes()
        .queue_url(&inbox_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await?
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .context("queue arn")?;
    c.sns
        .subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(&inbox_arn)
        .send()
        .await?;
    Ok((topic_arn, inbox_url))
}

/// The secrets the example's templates reference, as the team puts them in SSM (the bootstrap
/// makes the database password and the Redis URL itself).
async fn team_secrets(c: &Clients, base: Base) -> Result<()> {
    let secrets = [
        ("/booking/dev/database/password", "db-password-CANARY-7c1f"),
        ("/booking/dev/django/secret-key", "django-key-CANARY-93ab"),
        (
            "/booking/dev/redis/url",
            "redis://:redis-CANARY-55d0@cache:6379/0",
        ),
    ];
    for (name, value) in secrets {
        // The bootstrap made the database password and the Redis URL; the team adds the rest.
        if base == Base::Bootstrapped && !name.ends_with("/django/secret-key") {
            continue;
        }
        c.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await?;
    }
    Ok(())
}

/// A temporary folder removed on drop.
pub struct TempDir(pub PathBuf);
impl TempDir {
    pub fn new(label: &str) -> Result<TempDir> {
        // A counter as well as the time: two tests starting in the same clock tick once shared
        // a folder (and one applied its config edits to the other's).
        static MADE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!(
            "harbormaster-{label}-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::create_dir_all(&p)?;
        Ok(TempDir(p))
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The SDK pointed at one emulator. Set explicitly (not through the process environment), so
/// that tests running in parallel each talk to their own emulator.
pub async fn sdk_for(emulator: &Emulator) -> aws_config::SdkConfig {
    sdk_at(&emulator.endpoint).await
}

/// The SDK pointed at any endpoint on loopback (an emulator, or a proxy in front of one).
pub async fn sdk_at(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new(REGION))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "harbormaster-tests",
        ))
        .load()
        .await
}

/// What already exists in the account when a [`World`] is set up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Base {
    /// Nothing: the world creates the cluster, repository, bucket, topic and secrets itself.
    Empty,
    /// `harbormaster-bootstrap apply --env dev` ran: only what a team adds on top is created
    /// (the Django secret the bootstrap does not make, the services, an inbox).
    Bootstrapped,
}

impl World {
    pub async fn start() -> Result<World> {
        World::on(Emulator::start()?, Base::Empty).await
    }

    pub async fn on(emulator: Emulator, base: Base) -> Result<World> {
        let sdk = sdk_for(&emulator).await;
        let clients = Clients {
            ecs: aws_sdk_ecs::Client::new(&sdk),
            ecr: aws_sdk_ecr::Client::new(&sdk),
            s3: aws_sdk_s3::Client::from_conf(
                aws_sdk_s3::config::Builder::from(&sdk)
                    .force_path_style(true)
                    .build(),
            ),
            sns: aws_sdk_sns::Client::new(&sdk),
            sqs: aws_sdk_sqs::Client::new(&sdk),
            ssm: aws_sdk_ssm::Client::new(&sdk),
        };
        let tmp = TempDir::new("world")?;
        let config_dir = tmp.0.join("gitops");
        copy_dir(&workspace_root().join("examples/booking"), &config_dir)?;
        let c = &clients;

        if base == Base::Empty {
            // As a team's cluster (and the bootstrap's) has them: a strategy naming a provider
            // the cluster lacks is refused, by AWS and by the strict proxy.
            (c.ecs.create_cluster().cluster_name(CLUSTER))
                .capacity_providers("FARGATE")
                .capacity_providers("FARGATE_SPOT")
                .send()
                .await?;
            c.ecr
                .create_repository()
                .repository_name(REPOSITORY)
                .image_scanning_configuration(
                    aws_sdk_ecr::types::ImageScanningConfiguration::builder()
                        .scan_on_push(true)
                        .build(),
                )
                .send()
                .await?;
            c.s3.create_bucket().bucket(BUCKET).send().await?;
        }
        let (topic_arn, inbox_url) = subscribed_inbox(c).await?;
        team_secrets(c, base).await?;
        // Without the bootstrap, the services as a team would have them before Harbormaster
        // takes over: on a first revision of a public image, and the one output the example's
        // load balancer reads. After it, the agent creates them from the bootstrap's outputs.
        if base == Base::Empty {
            c.ssm
                .put_parameter()
                .name("/booking/dev/outputs/target-groups/web/blue")
                .value(WEB_TARGET_GROUP)
                .r#type(aws_sdk_ssm::types::ParameterType::String)
                .send()
                .await?;
            for (service, family, container) in [
                ("web", FAMILY, "web"),
                ("worker", "booking-dev-worker", "worker"),
            ] {
                create_service(c, family, service, container).await?;
            }
        }
        for_the_emulator(&config_dir)?;
        let strict = harbormaster_testkit::strict::StrictProxy::start(emulator.port)?;
        let agent_sdk = sdk_at(&strict.endpoint).await;
        Ok(World {
            emulator,
            clients,
            sdk,
            strict,
            agent_sdk,
            config_dir,
            topic_arn,
            inbox_url,
            autoscaling: setup::autoscaling_recorder()?,
            _tmp: tmp,
        })
    }

    /// The agent as a Lambda function would build it, reading the GitOps folder.
    pub fn agent(&self) -> Agent {
        let ports = self.ports();
        let source = harbormaster_aws::Source::Folder(self.config_dir.clone());
        Agent::of(ports, source)
    }

    /// The ports the functions build, with Application Auto Scaling at this world's stand-in.
    pub fn ports(&self) -> harbormaster_aws::AwsPorts {
        self.ports_via(&self.agent_sdk, &self.autoscaling.endpoint)
    }

    /// The same, with `sdk`'s endpoint (a proxy, say) and Application Auto Scaling at
    /// `autoscaling`.
    pub fn ports_via(
        &self,
        sdk: &aws_config::SdkConfig,
        autoscaling: &str,
    ) -> harbormaster_aws::AwsPorts {
        let mut ports = harbormaster_aws::AwsPorts::new(sdk, "");
        ports.clients.autoscaling = aws_sdk_applicationautoscaling::Client::from_conf(
            aws_sdk_applicationautoscaling::config::Builder::from(sdk)
                .endpoint_url(autoscaling)
                .build(),
        )
        .into();
        ports
    }

    /// Pushes an image of the example's repository without Docker (see [`push_fake_image`]).
    /// Returns the digest ECR computed.
    pub async fn push_image(&self, tag: &str) -> Result<String> {
        push_fake_image(&self.clients.ecr, REPOSITORY, tag).await
    }

    /// The AWS push sample, tied to this world's repository and an image pushed into it.
    pub fn push_event(&self, id: &str, tag: &str, digest: &str) -> Value {
        ecr_push_event(id, REPOSITORY, tag, digest)
    }

    /// Pushes an image tagged `tag` and writes ECR's push event for it to `dir/<id>.json`, the
    /// file `harbormaster invoke --event` reads.
    pub async fn push_event_file(&self, dir: &Path, id: &str, tag: &str) -> Result<PathBuf> {
        let digest = self.push_image(tag).await?;
        let file = dir.join(format!("{id}.json"));
        std::fs::write(&file, self.push_event(id, tag, &digest).to_string())?;
        Ok(file)
    }

    pub async fn service_task_definition(&self, service: &str) -> Result<String> {
        let out = self
            .clients
            .ecs
            .describe_services()
            .cluster(CLUSTER)
            .services(service)
            .send()
            .await?;
        out.services()
            .first()
            .and_then(|s| s.task_definition())
            .map(str::to_owned)
            .context("service not found")
    }

    /// The image of the first container of the task definition `service` runs now.
    pub async fn running_image(&self, service: &str) -> Result<String> {
        let td = self.service_task_definition(service).await?;
        Ok(self
            .task_definition(&td)
            .await?
            .container_definitions()
            .first()
            .and_then(|c| c.image())
            .unwrap_or_default()
            .to_owned())
    }

    pub async fn revisions(&self, family: &str) -> Result<Vec<String>> {
        let out = self
            .clients
            .ecs
            .list_task_definitions()
            .family_prefix(family)
            .send()
            .await?;
        Ok(out.task_definition_arns().to_vec())
    }

    pub async fn task_definition(&self, arn: &str) -> Result<aws_sdk_ecs::types::TaskDefinition> {
        let out = self
            .clients
            .ecs
            .describe_task_definition()
            .task_definition(arn)
            .send()
            .await?;
        out.task_definition.context("no task definition")
    }

    /// Notifications that reached the SQS subscriber, as (subject, message JSON, attributes).
    pub async fn inbox(&self) -> Result<Vec<(String, Value, Value)>> {
        let mut all = Vec::new();
        for _ in 0..3 {
            let out = self
                .clients
                .sqs
                .receive_message()
                .queue_url(&self.inbox_url)
                .max_number_of_messages(10)
                .wait_time_seconds(1)
                .send()
                .await?;
            let msgs = out.messages();
            if msgs.is_empty() {
                break;
            }
            for m in msgs {
                let envelope: Value = serde_json::from_str(m.body().unwrap_or("{}"))?;
                let message: Value =
                    serde_json::from_str(envelope["Message"].as_str().unwrap_or("null"))
                        .unwrap_or(Value::Null);
                all.push((
                    envelope["Subject"].as_str().unwrap_or("").to_owned(),
                    message,
                    envelope["MessageAttributes"].clone(),
                ));
                if let Some(h) = m.receipt_handle() {
                    self.clients
                        .sqs
                        .delete_message()
                        .queue_url(&self.inbox_url)
                        .receipt_handle(h)
                        .send()
                        .await?;
                }
            }
        }
        Ok(all)
    }

    pub async fn state_document(&self, env: &str, service: &str) -> Result<Option<Value>> {
        match self
            .clients
            .s3
            .get_object()
            .bucket(BUCKET)
            .key(format!("state/{env}/{service}.json"))
            .send()
            .await
        {
            Ok(o) => Ok(Some(serde_json::from_slice(
                &o.body.collect().await?.into_bytes(),
            )?)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts an alarm in ALARM in the emulator's CloudWatch and returns the "CloudWatch Alarm
    /// State Change" event EventBridge would send for it, from what CloudWatch then says of it.
    pub async fn fire_alarm(&self, name: &str, reason: &str) -> Result<Value> {
        let cw = aws_sdk_cloudwatch::Client::new(&self.sdk);
        cw.set_alarm_state()
            .alarm_name(name)
            .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
            .state_reason(reason)
            .send()
            .await?;
        let described = cw.describe_alarms().alarm_names(name).send().await?;
        let a = described.metric_alarms().first().context("no such alarm")?;
        anyhow::ensure!(
            a.state_value().map(|s| s.as_str()) == Some("ALARM"),
            "{name} did not go to ALARM"
        );
        let at = a
            .state_updated_timestamp()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), 0))
            .unwrap_or_else(chrono::Utc::now);
        let mut e = alarm_event(&format!("alarm-{name}-{}", at.timestamp()), name, at);
        e["resources"] = json!([a.alarm_arn().unwrap_or_default()]);
        e["detail"]["state"]["reason"] = json!(a.state_reason().unwrap_or_default());
        Ok(e)
    }

    /// The `ecr-push` function's dispatch, once.
    pub async fn push(&self, event: &Value) -> harbormaster_core::dispatch::DispatchReport {
        harbormaster_aws::handler::dispatch(
            &self.agent(),
            harbormaster_aws::handler::ECR_PUSH,
            event,
            harbormaster_core::RunOptions::default(),
        )
        .await
        .expect("push handled")
    }

    /// The `tick` function's dispatch, once.
    pub async fn tick(&self) -> harbormaster_core::dispatch::DispatchReport {
        harbormaster_aws::handler::dispatch(
            &self.agent(),
            harbormaster_aws::handler::TICK,
            &fixture("scheduled.json"),
            harbormaster_core::RunOptions::default(),
        )
        .await
        .expect("tick handled")
    }
}

/// AWS's "CloudWatch Alarm State Change" sample for alarm `name` going to ALARM at `at` (in
/// CloudWatch's own timestamp format), in this world's account and region.
pub fn alarm_event(id: &str, name: &str, at: chrono::DateTime<chrono::Utc>) -> Value {
    let mut e = fixture("cloudwatch-alarm-state-change.json");
    e["id"] = json!(id);
    e["account"] = json!(ACCOUNT);
    e["region"] = json!(REGION);
    e["time"] = json!(at.to_rfc3339());
    e["resources"] = json!([format!(
        "arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{name}"
    )]);
    e["detail"]["alarmName"] = json!(name);
    e["detail"]["state"]["timestamp"] = json!(at.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string());
    e
}

pub fn wait() -> tokio::time::Sleep {
    tokio::time::sleep(Duration::from_millis(200))
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Pushes an image without Docker: PutImage with a manifest whose config digest is unique, so
/// every push is a distinct image. Returns the digest ECR computed from the manifest.
pub async fn push_fake_image(
    ecr: &aws_sdk_ecr::Client,
    repository: &str,
    tag: &str,
) -> Result<String> {
    static PUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = PUSHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = chrono::Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128;
    let config_digest = format!(
        "{:032x}{:032x}",
        nanos,
        u128::from(n) << 64 | u128::from(std::process::id())
    );
    let seed = format!("{tag}-{config_digest}");
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": seed.len(), "digest": format!("sha256:{config_digest}")},
        "layers": []
    });
    let out = ecr
        .put_image()
        .repository_name(repository)
        .image_manifest(manifest.to_string())
        .image_tag(tag)
        .send()
        .await?;
    out.image
        .and_then(|i| i.image_id)
        .and_then(|i| i.image_digest)
        .context("PutImage returned no digest")
}

/// AWS's "ECR Image Action" push sample for `repository:tag` at `digest`, as EventBridge
/// delivers it now, in the emulator's account and region.
pub fn ecr_push_event(id: &str, repository: &str, tag: &str, digest: &str) -> Value {
    let mut e = fixture("ecr-push.json");
    e["id"] = json!(id);
    e["account"] = json!(ACCOUNT);
    e["region"] = json!(REGION);
    e["time"] = json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    e["detail"]["repository-name"] = json!(repository);
    e["detail"]["image-tag"] = json!(tag);
    e["detail"]["image-digest"] = json!(digest);
    e
}
