//! `cargo xtask demo`: bootstrap, push, deploy, alarm and rollback on the local emulator, with
//! the real Lambda functions running in its Lambda service.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use harbormaster_aws::handler::{self, ALARM, ECR_PUSH, TICK};
use harbormaster_core::RunOptions;
use harbormaster_e2e::{fixture, World, CLUSTER};
use harbormaster_testkit::MINISTACK;
use serde_json::{json, Value};

use crate::{root, target_dir};

pub(crate) struct Timeline(pub(crate) Instant);
impl Timeline {
    pub(crate) fn say(&self, what: impl AsRef<str>) {
        println!(
            "[{:>6.2}s] {}",
            self.0.elapsed().as_secs_f64(),
            what.as_ref()
        );
    }
}

pub(crate) async fn demo() -> Result<()> {
    let t = Timeline(Instant::now());
    t.say("starting the local AWS emulator (the first run also creates its venv)…");
    let emulator = harbormaster_testkit::Emulator::start()?;
    t.say(format!("emulator {MINISTACK} at {}", emulator.endpoint));
    bootstrap(&t, &emulator).await?;

    // What the team adds: a secret and an inbox on the topic. No ECS service: the agent
    // creates them.
    let w = World::on(emulator, harbormaster_e2e::Base::Bootstrapped).await?;
    t.say(format!(
        "team: the Django secret in SSM, an SQS inbox on {}; no service in {CLUSTER} yet",
        w.topic_arn
    ));
    t.say("(the emulator runs no containers, so the demo's copy of the config leaves out web's `before_deploy` migration; Application Auto Scaling is a recording stand-in)");
    put_alarms(&t, &w).await?;

    // The functions, as Lambda runs them: ministack runs a provided.al2023 zip's `bootstrap`.
    let lambda = EmulatorLambda::new(&w, &t)?;
    for f in [ECR_PUSH, TICK, ALARM] {
        lambda.create(f.name).await?;
    }
    t.say("functions ecr-push, tick and alarm created in the emulator's Lambda (provided.al2023)");
    let (v1, v2) = two_releases(&t, &w, &lambda).await?;
    t.say(format!("web runs {v2}"));
    alarm_fires(&t, &w, &lambda).await?;
    let rolled_back = show_inbox(&t, &w).await?;
    let now = w.service_task_definition("web").await?;
    if now != v1 || !rolled_back {
        bail!(
            "the story did not end as it should: web runs {now}, rollback notified: {rolled_back}"
        );
    }
    t.say(format!("done: web is back on the first release, {v1}"));
    Ok(())
}

/// The environment, as `harbormaster-bootstrap apply --env dev` makes it: the project's stack
/// and dev's on the emulator's CloudFormation (without the NAT gateway, which it lacks).
pub(crate) async fn bootstrap(
    t: &Timeline,
    emulator: &harbormaster_testkit::Emulator,
) -> Result<()> {
    use harbormaster_bootstrap::{apply, changes::StackPlan, cloud, spec::Spec};
    use harbormaster_core::config::Config;
    struct Quiet;
    impl apply::Progress for Quiet {
        fn planned(&mut self, _: &StackPlan) {}
        fn event(&mut self, _: &str, _: &cloud::Event) {}
        fn note(&mut self, _: &str) {}
    }
    let file = root().join("examples/booking/harbormaster.toml");
    let shown = file.display().to_string();
    let text = harbormaster_e2e::setup::without_nat(&std::fs::read_to_string(&file)?);
    let spec = Spec::from_config(&shown, &Config::parse(&shown, &text)?, "dev")?;
    let sdk = harbormaster_e2e::sdk_for(emulator).await;
    let applied = apply::apply(&cloud::Cloud::new(&sdk), &spec, false, false, &mut Quiet).await?;
    let made: usize = applied.iter().map(|a| a.plan.changes.len()).sum();
    t.say(format!(
        "bootstrap: stacks booking (repository, state bucket, topic) and booking-dev (VPC, ALB with blue/green target groups and test rules, cluster, IAM, RDS, ElastiCache, SSM outputs) on CloudFormation, {made} resources"
    ));
    Ok(())
}

/// What `harbormaster alarms --env dev --service web --apply` does.
async fn put_alarms(t: &Timeline, w: &World) -> Result<()> {
    put_standard_alarms(w).await?;
    t.say("harbormaster alarms --env dev --service web --apply: CPU and memory alarms, tagged for web");
    Ok(())
}

/// web's standard alarms, tagged for it (what `harbormaster alarms --apply` puts).
pub(crate) async fn put_standard_alarms(w: &World) -> Result<()> {
    use harbormaster_core::alarm::standard_alarms;
    use harbormaster_core::ports::Alarms;
    let (ports, bundle) = w.agent().prepare().await?;
    let (e, s, _) = bundle.config.target("dev", "web").context("dev/web")?;
    let (cluster, service) = (&e.cluster, &s.ecs_service);
    for a in standard_alarms(
        "booking",
        "dev",
        "web",
        cluster,
        service,
        None,
        &s.thresholds,
    ) {
        ports.put_alarm(&a).await?;
    }
    Ok(())
}

/// Two releases, each pushed and deployed by the functions: the revisions web ran.
async fn two_releases(
    t: &Timeline,
    w: &World,
    lambda: &EmulatorLambda,
) -> Result<(String, String)> {
    let mut revisions = Vec::new();
    for (n, suffix) in ["a11ce01", "b0b0b02"].iter().enumerate() {
        let tag = format!("main-{suffix}");
        let digest = w.push_image(&tag).await?;
        t.say(format!("push booking/web:{tag} → {}", &digest[..19]));
        let event = w.push_event(&format!("demo-push-{n}"), &tag, &digest);
        t.say("EventBridge \"ECR Image Action\" → Lambda ecr-push");
        print_answer(t, &lambda.invoke("ecr-push", &event).await?);
        if n == 0 {
            created(t, w).await?;
        }
        t.say("EventBridge schedule → Lambda tick");
        print_answer(t, &lambda.invoke("tick", &fixture("scheduled.json")).await?);
        revisions.push(w.service_task_definition("web").await?);
    }
    let second = revisions.pop().context("two releases")?;
    let first = revisions.pop().context("two releases")?;
    Ok((first, second))
}

/// What the first push created: both services, wired to the bootstrap, and web's target
/// tracking.
async fn created(t: &Timeline, w: &World) -> Result<()> {
    let described = w
        .clients
        .ecs
        .describe_services()
        .cluster(CLUSTER)
        .services("web")
        .services("worker")
        .send()
        .await?;
    for s in described.services() {
        let subnets = s
            .network_configuration()
            .and_then(|n| n.awsvpc_configuration())
            .map(|v| v.subnets().join(","))
            .unwrap_or_default();
        let capacity: Vec<String> = s
            .capacity_provider_strategy()
            .iter()
            .map(|c| format!("{}:{}", c.capacity_provider(), c.weight()))
            .collect();
        let lb = s
            .load_balancers()
            .first()
            .and_then(|l| l.target_group_arn())
            .map(|tg| format!(", behind {}", tg.rsplit(':').next().unwrap_or(tg)))
            .unwrap_or_default();
        t.say(format!(
            "created by the push: service {} in subnets {subnets}, capacity {}{lb}",
            s.service_name().unwrap_or("?"),
            capacity.join(" + ")
        ));
    }
    let registered = w.autoscaling.calls.of("RegisterScalableTarget");
    let policies = w.autoscaling.calls.of("PutScalingPolicy").len();
    if let Some(r) = registered.first() {
        t.say(format!(
            "Application Auto Scaling: {} between {} and {} tasks, {policies} target-tracking policies",
            r["ResourceId"].as_str().unwrap_or("?"),
            r["MinCapacity"],
            r["MaxCapacity"]
        ));
    }
    Ok(())
}

/// The second release makes an alarm fire: EventBridge's event goes to the alarm function.
async fn alarm_fires(t: &Timeline, w: &World, lambda: &EmulatorLambda) -> Result<()> {
    let alarm = "booking-dev-web-cpu";
    let why = "Threshold Crossed: 3 datapoints [97.1, 98.4, 99.0] were greater than the threshold (80.0).";
    let event = w.fire_alarm(alarm, why).await?;
    t.say(format!(
        "CloudWatch: {alarm} → ALARM; \"CloudWatch Alarm State Change\" → Lambda alarm"
    ));
    print_answer(t, &lambda.invoke("alarm", &event).await?);
    t.say("EventBridge schedule → Lambda tick");
    print_answer(t, &lambda.invoke("tick", &fixture("scheduled.json")).await?);
    Ok(())
}

/// What the team was told, in order; whether a rollback was among it.
async fn show_inbox(t: &Timeline, w: &World) -> Result<bool> {
    let inbox = w.inbox().await?;
    t.say(format!("{} notifications in the SQS inbox:", inbox.len()));
    let mut rolled_back = false;
    for (subject, message, attrs) in &inbox {
        println!(
            "           {subject}   [severity={}, kind={}]",
            attrs["severity"]["Value"].as_str().unwrap_or("?"),
            message["kind"].as_str().unwrap_or("?")
        );
        if message["kind"] == "rolled_back" {
            rolled_back = true;
            let why = message["reason"].as_str().unwrap_or("");
            println!("             why: {why}");
        }
    }
    Ok(rolled_back)
}

/// The emulator's Lambda API (the demo's only Lambda calls; the agent itself never calls
/// Lambda, so it carries no Lambda SDK). Spoken through hyper's client, which the SDK already
/// builds: aws-sdk-lambda would add 39 s and a 1.3 GB rustc to a fresh machine's first
/// `cargo xtask demo` (measured) for five calls whose signature the emulator does not check.
struct EmulatorLambda {
    endpoint: String,
    env: Value,
    http: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl EmulatorLambda {
    fn new(w: &World, t: &Timeline) -> Result<EmulatorLambda> {
        t.say("building the functions (debug, with the tests' feature set: `cargo xtask test` reuses them)…");
        crate::test::build_bins()?;
        let mut vars = serde_json::Map::new();
        for (k, v) in w.cli_env() {
            vars.insert(k.into(), v.into());
        }
        let http =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http();
        Ok(EmulatorLambda {
            endpoint: w.emulator.endpoint.clone(),
            env: json!({"Variables": vars}),
            http,
        })
    }

    /// POSTs `body` to the Lambda API's `path`: the status, whether the function failed
    /// (`X-Amz-Function-Error`), and the answer's body.
    async fn post(&self, path: &str, body: &Value) -> Result<(u16, bool, Vec<u8>)> {
        use http_body_util::BodyExt;
        let request = hyper::Request::post(format!("{}{path}", self.endpoint))
            .header("content-type", "application/json")
            // ministack routes by the credential scope's service; it checks no signature.
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=test/20261123/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0",
            )
            .body(http_body_util::Full::new(bytes::Bytes::from(body.to_string())))?;
        let answer = self.http.request(request).await?;
        let status = answer.status().as_u16();
        let failed = answer.headers().contains_key("x-amz-function-error");
        let body = answer.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, failed, body))
    }

    async fn create(&self, name: &str) -> Result<()> {
        use std::io::Write;
        let binary = target_dir().join("debug").join(name);
        let mut zip = std::io::Cursor::new(Vec::new());
        {
            let mut z = zip::ZipWriter::new(&mut zip);
            z.start_file(
                "bootstrap",
                zip::write::SimpleFileOptions::default().unix_permissions(0o755),
            )?;
            z.write_all(&std::fs::read(&binary).with_context(|| binary.display().to_string())?)?;
            z.finish()?;
        }
        let body = json!({
            "FunctionName": name,
            "Runtime": "provided.al2023",
            "Handler": "bootstrap",
            "Role": "arn:aws:iam::000000000000:role/booking-harbormaster",
            "Code": {"ZipFile": aws_smithy_types::base64::encode(zip.into_inner())},
            "Environment": self.env,
            "Timeout": 60,
        });
        let (status, _, answer) = self.post("/2015-03-31/functions", &body).await?;
        if !(200..300).contains(&status) {
            bail!(
                "CreateFunction {name}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(())
    }

    /// Invokes a function with an event and returns what it answered.
    async fn invoke(&self, name: &str, event: &Value) -> Result<Value> {
        let path = format!("/2015-03-31/functions/{name}/invocations");
        let (status, failed, answer) = self.post(&path, event).await?;
        if status != 200 || failed {
            bail!(
                "{name} failed: {status} {}",
                String::from_utf8_lossy(&answer)
            );
        }
        Ok(serde_json::from_slice(&answer)?)
    }
}

/// A function's answer (a dispatch report), as the timeline's transitions.
pub(crate) fn print_answer(t: &Timeline, answer: &Value) {
    for target in answer["targets"].as_array().into_iter().flatten() {
        let who = format!(
            "{}/{}",
            target["environment"].as_str().unwrap_or("?"),
            target["service"].as_str().unwrap_or("?")
        );
        for j in target["journal"].as_array().into_iter().flatten() {
            let note = j["note"].as_str().filter(|n| !n.is_empty());
            t.say(format!(
                "  {who}: {} → {}{}",
                j["from"].as_str().unwrap_or(""),
                j["to"].as_str().unwrap_or(""),
                note.map(|n| format!(" ({n})")).unwrap_or_default()
            ));
        }
        if let Some(e) = target["error"].as_str() {
            t.say(format!("  {who}: error: {e}"));
        }
    }
}

/// What the `tick` function does every minute.
pub(crate) async fn tick(
    agent: &harbormaster_aws::Agent,
) -> Result<harbormaster_core::dispatch::DispatchReport> {
    Ok(handler::dispatch(
        agent,
        TICK,
        &fixture("scheduled.json"),
        RunOptions::default(),
    )
    .await?)
}
