//! `harbormaster`: the local tool and the CodeBuild step.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use harbormaster_aws::{handler, telemetry, Agent, Source};
use harbormaster_core::bundle::Bundle;
use harbormaster_core::dispatch::{
    record_approval, request_deploy, request_rollback, resolve_image, tick,
};
use harbormaster_core::engine::{render_for, TargetReport};
use harbormaster_core::image::Digest;
use harbormaster_core::machine::{HookStatus, Outcome};
use harbormaster_core::ports::StateStore;
use harbormaster_core::state::ServiceState;
use harbormaster_core::template::{Placement, RenderInput};
use harbormaster_core::RunOptions;
use serde_json::{json, Value};

#[derive(Parser)]
#[command(
    name = "harbormaster",
    version,
    about = "GitOps deployments for Amazon ECS on Fargate"
)]
struct Cli {
    /// The GitOps source: a folder holding harbormaster.toml, or s3://bucket/prefix.
    #[arg(long, global = true, env = "HARBORMASTER_CONFIG", default_value = ".")]
    config: String,
    /// Log what happens (to stderr).
    #[arg(long, short, global = true)]
    verbose: bool,
    /// Log as JSON lines, as the Lambda functions do.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Check harbormaster.toml and every task-definition template, without calling AWS.
    Validate,
    /// Print the task definition that would be registered.
    Render {
        #[arg(long)]
        env: String,
        #[arg(long)]
        service: String,
        /// Image to pin: a tag or digest in the service's repository (looked up in ECR).
        #[arg(long, conflicts_with = "digest")]
        image: Option<String>,
        /// Pin this digest without asking ECR (sha256:…); a placeholder digest when omitted.
        #[arg(long)]
        digest: Option<String>,
        /// Account to render for, without asking STS.
        #[arg(long)]
        account: Option<String>,
        /// Region to render for (default: the config's, else the SDK's).
        #[arg(long)]
        region: Option<String>,
    },
    /// Deploy an image of a service to an environment.
    Deploy {
        #[arg(long)]
        env: String,
        #[arg(long)]
        service: String,
        /// A tag, sha256:…, repo:tag or repo@sha256:… of the service's repository.
        #[arg(
            long,
            required_unless_present = "image_detail",
            conflicts_with = "image_detail"
        )]
        image: Option<String>,
        /// The build's imageDetail.json or imagedefinitions.json, instead of --image.
        #[arg(long)]
        image_detail: Option<PathBuf>,
        /// Deploy even if the release is marked bad, or while a guard alarm is in ALARM.
        #[arg(long)]
        force: bool,
        /// Follow the deployment until it ends: exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many minutes (exit 4).
        #[arg(long, default_value_t = 30)]
        timeout_minutes: u64,
        /// Decide and print what would happen; make no mutating call.
        #[arg(long)]
        dry_run: bool,
    },
    /// Put a service back on a known good revision: the one before the current release, or one
    /// from its history. The release taken off is marked bad.
    Rollback {
        #[arg(long)]
        env: String,
        #[arg(long)]
        service: String,
        /// A task-definition ARN, `family:revision` or revision number from the service's
        /// history (see `status`); default: the good release before the current one.
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Size a worker service from its backlog now (what the tick does every minute); with
    /// --dry-run, print the decision and its inputs and change nothing.
    Scale {
        #[arg(long)]
        env: String,
        #[arg(long)]
        service: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Create the standard rollback alarms of a service (CPU, memory; 5XX and response time
    /// behind a load balancer), tagged so the `alarm` function maps them to it.
    Alarms {
        #[arg(long)]
        env: String,
        #[arg(long)]
        service: String,
        /// Create or update them (PutMetricAlarm); without it, or with --dry-run, list them.
        #[arg(long)]
        apply: bool,
        #[arg(long)]
        dry_run: bool,
    },
    /// Show deployments in flight, pending releases, last known good and history.
    Status {
        #[arg(long)]
        env: Option<String>,
        #[arg(long)]
        service: Option<String>,
        #[arg(long)]
        json: bool,
        /// History entries to show per service.
        #[arg(long, default_value_t = 5)]
        history: usize,
    },
    /// Approve the deployment in flight at its approval gate (blue/green, canary, linear).
    Approve {
        #[command(flatten)]
        decision: Decision,
        /// Reject instead of approving: the hook fails and ECS rolls the deployment back.
        #[arg(long)]
        reject: bool,
    },
    /// Reject the deployment in flight at its approval gate (same as `approve --reject`).
    Reject {
        #[command(flatten)]
        decision: Decision,
    },
    /// Advance what is in flight and reconcile lost pushes (what the `tick` function does).
    Tick {
        #[arg(long)]
        dry_run: bool,
    },
    /// Run an event file through exactly the dispatch the Lambda functions use.
    Invoke {
        /// A JSON event file, or - for standard input.
        #[arg(long)]
        event: PathBuf,
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(clap::Args)]
struct Decision {
    /// With --service: the deployment in flight at its approval gate.
    #[arg(long, requires = "service", required_unless_present = "pipeline")]
    env: Option<String>,
    #[arg(long, requires = "env")]
    service: Option<String>,
    /// With --stage and --action: a pipeline's manual approval action instead.
    #[arg(long, requires_all = ["stage", "action"], conflicts_with = "env")]
    pipeline: Option<String>,
    #[arg(long)]
    stage: Option<String>,
    #[arg(long)]
    action: Option<String>,
    /// Why, in a few words: kept with the decision and shown in `status`.
    #[arg(long)]
    summary: Option<String>,
    /// Decide and print what would happen; make no mutating call.
    #[arg(long)]
    dry_run: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.log_json {
        telemetry::init_json();
    } else {
        telemetry::init_text(cli.verbose);
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn agent(config: &str) -> Result<Agent> {
    Ok(Agent::new(config).await?)
}

async fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Cmd::Validate => {
            // Offline: a folder needs no AWS client at all.
            let source = match cli.config.strip_prefix("s3://") {
                Some(_) => agent(&cli.config).await?.source,
                None => Source::Folder(PathBuf::from(&cli.config)),
            };
            let bundle = Bundle::load(&source).await?;
            let c = &bundle.config;
            println!(
                "{}: valid ({} environments, {} services, {} deployment targets)",
                source_name(&source),
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
                println!(
                    "  {}/{}: {} from {}{auto}",
                    e.name, s.name, follows, s.repository
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Render {
            env,
            service,
            image,
            digest,
            account,
            region,
        } => {
            let offline = image.is_none() && account.is_some();
            let (bundle, rendered) = if offline {
                let bundle = Bundle::load(&Source::Folder(PathBuf::from(&cli.config))).await?;
                let (e, s, t) = bundle.config.target(&env, &service).with_context(|| {
                    format!("service `{service}` is not deployed to `{env}` by the config")
                })?;
                let digest = parse_digest(digest.as_deref())?;
                let placement = Placement {
                    account: account.clone().unwrap_or_default(),
                    region: region
                        .or(bundle.config.region.clone())
                        .unwrap_or_else(|| "us-east-1".into()),
                };
                let r = bundle.templates[&service].render(&RenderInput {
                    config: &bundle.config,
                    environment: e,
                    service: s,
                    target: t,
                    digest: &digest,
                    placement: &placement,
                    deployment_id: "render",
                })?;
                (bundle, r)
            } else {
                let a = agent(&cli.config).await?;
                let (ports, bundle) = a.prepare().await?;
                let (_, s, _) = bundle.config.target(&env, &service).with_context(|| {
                    format!("service `{service}` is not deployed to `{env}` by the config")
                })?;
                let digest = match &image {
                    Some(reference) => {
                        resolve_image(&ports, &s.repository, reference)
                            .await?
                            .digest
                    }
                    None => parse_digest(digest.as_deref())?,
                };
                let r = render_for(&ports, &bundle, &env, &service, &digest, "render").await?;
                (bundle, r)
            };
            let _ = bundle;
            println!("{}", serde_json::to_string_pretty(&rendered.body)?);
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Deploy {
            env,
            service,
            image,
            image_detail,
            force,
            wait,
            timeout_minutes,
            dry_run,
        } => {
            let a = agent(&cli.config).await?;
            let (ports, bundle) = a.prepare().await?;
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let image = match (image, image_detail) {
                (Some(i), _) => i,
                (None, Some(path)) => image_from_file(&bundle, &service, &path)?,
                (None, None) => bail!("give --image or --image-detail"),
            };
            let report = request_deploy(
                &ports,
                &bundle,
                &env,
                &service,
                &image,
                &by,
                force,
                RunOptions { dry_run },
            )
            .await?;
            print_json(&report, dry_run);
            if wait && !dry_run {
                let (_, svc, _) = bundle
                    .config
                    .target(&env, &service)
                    .expect("resolved above");
                let digest = resolve_image(&ports, &svc.repository, &image).await?.digest;
                return wait_for(&ports, &bundle, &env, &service, &digest, timeout_minutes).await;
            }
            Ok(exit_for(std::slice::from_ref(&report)))
        }
        Cmd::Rollback {
            env,
            service,
            to,
            dry_run,
        } => {
            let a = agent(&cli.config).await?;
            let (ports, bundle) = a.prepare().await?;
            let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
            let report = request_rollback(
                &ports,
                &bundle,
                &env,
                &service,
                to,
                &by,
                RunOptions { dry_run },
            )
            .await?;
            print_json(&report, dry_run);
            Ok(exit_for_request(&report))
        }
        Cmd::Scale {
            env,
            service,
            dry_run,
        } => {
            let a = agent(&cli.config).await?;
            let (ports, bundle) = a.prepare().await?;
            let report = harbormaster_core::dispatch::scale(
                &ports,
                &bundle,
                &env,
                &service,
                RunOptions { dry_run },
            )
            .await?;
            print_metrics(std::slice::from_ref(&report));
            print_json(&report, dry_run);
            Ok(exit_for(std::slice::from_ref(&report)))
        }
        Cmd::Alarms {
            env,
            service,
            apply,
            dry_run,
        } => alarms(&cli.config, &env, &service, apply && !dry_run).await,
        Cmd::Status {
            env,
            service,
            json,
            history,
        } => {
            let a = agent(&cli.config).await?;
            let (ports, bundle) = a.prepare().await?;
            let mut docs = Vec::new();
            for (e, s, _) in bundle.config.targets() {
                if env.as_ref().is_some_and(|x| x != &e.name)
                    || service.as_ref().is_some_and(|x| x != &s.name)
                {
                    continue;
                }
                let state = ports
                    .load(&ServiceState::key(&e.name, &s.name))
                    .await?
                    .map(|(s, _)| s);
                docs.push((e.name.clone(), s.name.clone(), state));
            }
            if docs.is_empty() {
                bail!("no service matches --env/--service in the config");
            }
            if json {
                let v: Vec<Value> = docs
                    .iter()
                    .map(|(e, s, st)| json!({"environment": e, "service": s, "state": st}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (e, s, st) in &docs {
                    print_status(e, s, st.as_ref(), history);
                }
            }
            // A service whose latest release failed or was rolled back is a failure here too.
            let failing = docs.iter().any(|(_, _, st)| {
                st.as_ref()
                    .and_then(|s| s.history.iter().find(|h| h.deployment_id.is_some()))
                    .is_some_and(|h| h.verdict.is_failure())
            });
            Ok(if failing {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Cmd::Approve { decision, reject } => approve(&cli.config, decision, !reject).await,
        Cmd::Reject { decision } => approve(&cli.config, decision, false).await,
        Cmd::Tick { dry_run } => {
            let a = agent(&cli.config).await?;
            let (ports, bundle) = a.prepare().await?;
            let report = tick(&ports, &bundle, RunOptions { dry_run }).await;
            print_metrics(&report.targets);
            print_json(&report, dry_run);
            Ok(exit_for(&report.targets))
        }
        Cmd::Invoke { event, dry_run } => {
            let text = if event.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                std::fs::read_to_string(&event)
                    .with_context(|| format!("reading {}", event.display()))?
            };
            let value: Value = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a JSON event", event.display()))?;
            let function = handler::route(&value).with_context(|| {
                format!(
                    "{}: no Harbormaster function handles detail-type {}; handled: {}",
                    event.display(),
                    value
                        .get("detail-type")
                        .map(|v| v.to_string())
                        .unwrap_or_else(|| "(none)".into()),
                    handler::FUNCTIONS
                        .iter()
                        .map(|f| format!("{} ({})", f.accepts.join(", "), f.name))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            })?;
            let a = agent(&cli.config).await?;
            if function == handler::PIPELINE_JOB {
                let report = harbormaster_aws::pipeline::handle_job(
                    &a,
                    &value,
                    None,
                    RunOptions { dry_run },
                )
                .await
                .map_err(anyhow::Error::msg)?;
                print_json(&report, dry_run);
                return Ok(
                    if matches!(
                        report.result,
                        harbormaster_aws::pipeline::JobResult::Failed { .. }
                    ) {
                        ExitCode::from(1)
                    } else {
                        ExitCode::SUCCESS
                    },
                );
            }
            let report = handler::dispatch(&a, function, &value, RunOptions { dry_run })
                .await
                .with_context(|| format!("{} ({})", event.display(), function.name))?;
            print_json(&report, dry_run);
            // A hook that fails a deployment is a failure here too.
            if report
                .hook
                .as_ref()
                .is_some_and(|h| h.hook_status == HookStatus::Failed)
            {
                return Ok(ExitCode::from(1));
            }
            Ok(exit_for(&report.targets))
        }
    }
}

/// The standard alarms for a service, from the config's thresholds and, for a service behind
/// the load balancer, the bootstrap's outputs (its ALB and blue target group).
async fn alarms(config: &str, env: &str, service: &str, apply: bool) -> Result<ExitCode> {
    use harbormaster_core::alarm::{elb_dimension, standard_alarms};
    use harbormaster_core::ports::{Alarms, Parameters};
    let a = agent(config).await?;
    let (ports, bundle) = a.prepare().await?;
    let (e, s, _) = bundle
        .config
        .target(env, service)
        .with_context(|| format!("service `{service}` is not deployed to `{env}` by the config"))?;
    let project = &bundle.config.project;
    let root = format!("/{project}/{env}/outputs/");
    let names = vec![
        format!("{root}alb-arn"),
        format!("{root}target-groups/{service}/blue"),
    ];
    let outputs = ports.outputs(&names).await?;
    let lb = match (
        outputs.get(&names[0]).and_then(|a| elb_dimension(a)),
        outputs.get(&names[1]).and_then(|a| elb_dimension(a)),
    ) {
        (Some(l), Some(t)) => Some((l, t)),
        _ => None,
    };
    let specs = standard_alarms(
        project,
        env,
        service,
        &e.cluster,
        &s.ecs_service,
        lb.as_ref().map(|(l, t)| (l.as_str(), t.as_str())),
        &s.thresholds,
    );
    for spec in &specs {
        if apply {
            ports.put_alarm(spec).await?;
        }
        println!(
            "{} {}: {} {} {} > {} ({})",
            if apply { "put" } else { "would put" },
            spec.name,
            spec.namespace,
            spec.metric,
            spec.statistic,
            spec.threshold,
            spec.dimensions
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if lb.is_none() {
        eprintln!("no load balancer outputs for {service} in {env} (bootstrap's alb-arn, target-groups/{service}/blue): 5XX and response-time alarms left out");
    }
    if !apply {
        eprintln!("dry run: nothing was created (add --apply)");
    }
    let patterns = format!("{project}-{env}-{service}-*");
    let t = &bundle.config.target(env, service).expect("checked").2;
    if !t.alarms.speaks_for(&specs[0].name) {
        eprintln!("note: they roll {service} back through their tags; `alarms = [\"{patterns}\"]` in the config names them too");
    }
    Ok(ExitCode::SUCCESS)
}

async fn approve(config: &str, d: Decision, approved: bool) -> Result<ExitCode> {
    let a = agent(config).await?;
    if let (Some(p), Some(st), Some(ac)) = (&d.pipeline, &d.stage, &d.action) {
        let summary = d.summary.clone().unwrap_or_else(|| {
            format!(
                "by {}",
                std::env::var("USER").unwrap_or_else(|_| "cli".into())
            )
        });
        if d.dry_run {
            eprintln!("dry run: would answer {p} / {st} / {ac}; nothing was sent");
            return Ok(ExitCode::SUCCESS);
        }
        let done =
            harbormaster_aws::pipeline::answer_approval(&a.ports, p, st, ac, approved, &summary)
                .await
                .map_err(anyhow::Error::msg)?;
        println!("{done}");
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(env), Some(service)) = (&d.env, &d.service) else {
        bail!("give --env and --service, or --pipeline, --stage and --action");
    };
    let (ports, bundle) = a.prepare().await?;
    let by = std::env::var("USER").unwrap_or_else(|_| "cli".into());
    let report = record_approval(
        &ports,
        &bundle,
        env,
        service,
        approved,
        &by,
        d.summary,
        RunOptions { dry_run: d.dry_run },
    )
    .await?;
    print_json(&report, d.dry_run);
    Ok(exit_for_request(&report))
}

/// The image reference for `service` in a build's imageDetail.json or imagedefinitions.json.
fn image_from_file(bundle: &Bundle, service: &str, path: &std::path::Path) -> Result<String> {
    use harbormaster_core::pipeline::BuiltImages;
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let files = std::collections::BTreeMap::from([(name, bytes)]);
    let built = BuiltImages::from_artifact(&path.display().to_string(), &files)?;
    let containers = bundle
        .config
        .services
        .get(service)
        .and_then(|s| s.containers.clone())
        .unwrap_or_default();
    Ok(built.for_service(service, &containers)?)
}

/// Follows one release until it succeeds (0), fails or is rolled back (1), or the time is up (4).
async fn wait_for(
    ports: &harbormaster_aws::AwsPorts,
    bundle: &Bundle,
    env: &str,
    service: &str,
    digest: &Digest,
    timeout_minutes: u64,
) -> Result<ExitCode> {
    use harbormaster_core::dispatch::follow;
    use harbormaster_core::pipeline::{release_status, ReleaseStatus};
    let until = std::time::Instant::now() + std::time::Duration::from_secs(timeout_minutes * 60);
    let mut last = String::new();
    loop {
        follow(ports, bundle, env, service, RunOptions::default()).await;
        let state = ports
            .load(&ServiceState::key(env, service))
            .await?
            .map(|(s, _)| s);
        let phase = state
            .as_ref()
            .and_then(|s| s.in_flight.as_ref())
            .map(|d| {
                let stage = d.stage.map(|s| format!(" at {s}")).unwrap_or_default();
                format!("{}{stage}", d.phase)
            })
            .unwrap_or_default();
        match release_status(state.as_ref(), digest) {
            ReleaseStatus::Succeeded {
                task_definition_arn,
                ..
            } => {
                eprintln!("{env}/{service}: succeeded on {task_definition_arn}");
                return Ok(ExitCode::SUCCESS);
            }
            ReleaseStatus::Failed(why) => {
                eprintln!("{env}/{service}: FAILED: {why}");
                return Ok(ExitCode::from(1));
            }
            ReleaseStatus::Running => {
                if phase != last {
                    eprintln!("{env}/{service}: {phase}");
                    last = phase;
                }
            }
        }
        if std::time::Instant::now() >= until {
            eprintln!("{env}/{service}: still {last} after {timeout_minutes} min; giving up waiting (the deployment goes on)");
            return Ok(ExitCode::from(4));
        }
        tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    }
}

fn source_name(s: &Source) -> String {
    use harbormaster_core::ports::ConfigSource;
    s.describe(harbormaster_core::config::CONFIG_FILE)
}

fn parse_digest(d: Option<&str>) -> Result<Digest> {
    match d {
        Some(d) => Ok(Digest::parse(d)?),
        None => Ok(Digest::parse(&format!("sha256:{}", "0".repeat(64)))?),
    }
}

/// A person's request (approve, reject, rollback): 3 when a step was interrupted; 1 when nothing
/// was done (nothing waiting for the decision, nothing to roll back: scripts see it), or as
/// [`exit_for`].
fn exit_for_request(report: &TargetReport) -> ExitCode {
    if report.error.is_some() {
        ExitCode::from(3)
    } else if matches!(report.outcome, Outcome::Ignored { .. }) {
        ExitCode::from(1)
    } else {
        exit_for(std::slice::from_ref(report))
    }
}

/// 0 when everything went through; 1 when a deployment failed or was rolled back; 3 when a step
/// was interrupted (retryable: the tick carries on).
fn exit_for(targets: &[TargetReport]) -> ExitCode {
    let failed = targets
        .iter()
        .any(|t| matches!(&t.outcome, Outcome::Finished { verdict, .. } if verdict.is_failure()));
    if failed {
        ExitCode::from(1)
    } else if targets.iter().any(|t| t.error.is_some()) {
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// Embedded-metric-format lines go to stderr, with the logs; stdout is the report.
fn print_metrics(targets: &[TargetReport]) {
    for line in targets.iter().flat_map(|t| &t.metrics) {
        eprintln!("{line}");
    }
}

/// Reports are JSON on stdout (for scripts and CodeBuild); the dry-run note goes to stderr.
fn print_json(report: &impl serde::Serialize, dry_run: bool) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("report serialises")
    );
    if dry_run {
        eprintln!("dry run: nothing was written and no mutating call was made");
    }
}

fn print_status(env: &str, service: &str, st: Option<&ServiceState>, history: usize) {
    println!("{env}/{service}");
    let Some(st) = st else {
        println!("  no deployments recorded yet\n");
        return;
    };
    match &st.in_flight {
        Some(d) => {
            let stage = d.stage.map(|s| format!(", at {s}")).unwrap_or_default();
            println!(
                "  in flight:       {} {} ({}{stage}, since {})",
                d.id,
                d.release.image.label(),
                d.phase,
                d.started_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            if let Some(a) = &d.approval {
                println!(
                    "  approval:        {} by {}{}",
                    if a.approved { "approved" } else { "rejected" },
                    a.by,
                    a.summary
                        .as_ref()
                        .map(|s| format!(": {s}"))
                        .unwrap_or_default()
                );
            }
            print_gates(&d.gates);
        }
        None => println!("  in flight:       -"),
    }
    match (&st.pending, &st.guard_wait) {
        (Some(p), Some(g)) => println!(
            "  pending:         {} (held since {}: guard alarms in ALARM: {})",
            p.image.label(),
            g.since.format("%H:%M:%S"),
            g.alarms.join(", ")
        ),
        (Some(p), None) => println!("  pending:         {}", p.image.label()),
        (None, _) => println!("  pending:         -"),
    }
    match &st.last_known_good {
        Some(g) => println!(
            "  last known good: {} {}",
            g.image.label(),
            g.task_definition_arn
        ),
        None => println!("  last known good: -"),
    }
    for b in &st.bad_releases {
        println!(
            "  marked bad:      {} ({}, {})",
            b.image.label(),
            b.why,
            b.at.format("%Y-%m-%d %H:%M")
        );
    }
    if let Some(last) = st.history.iter().find(|h| h.deployment_id.is_some()) {
        if st.in_flight.is_none() && !last.gates.is_empty() {
            println!("  gates of the last deployment:");
            print_gates(&last.gates);
        }
    }
    if !st.history.is_empty() {
        println!("  history:");
        for h in st.history.iter().take(history) {
            println!(
                "    {}  {:<11} {}{}",
                h.at.format("%Y-%m-%d %H:%M:%S"),
                h.verdict.to_string(),
                h.image.label(),
                h.reason
                    .as_ref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            );
        }
    }
    println!();
}

fn print_gates(gates: &[harbormaster_core::state::GateRecord]) {
    for g in gates {
        println!(
            "    {:<30} {:<18} {:<12} {} (at {})",
            g.stage.to_string(),
            g.gate,
            g.status.to_string(),
            g.detail,
            g.at.format("%H:%M:%S")
        );
    }
}
