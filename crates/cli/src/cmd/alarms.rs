//! `harbormaster alarms`: the standard rollback alarms of a service, from the config's
//! thresholds and, behind the load balancer, the bootstrap's outputs (its ALB and blue target
//! group).

use anyhow::{Context as _, Result};
use harbormaster_core::alarm::{elb_dimension, standard_alarms, AlarmSpec};
use harbormaster_core::ports::{Alarms, Parameters};

use super::TargetArgs;
use crate::context::Context;
use crate::exit::Exit;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    target: TargetArgs,
    /// Create or update them (PutMetricAlarm); without it, or with --dry-run, list them.
    #[arg(long)]
    apply: bool,
    /// List them; make no mutating call.
    #[arg(long)]
    dry_run: bool,
}

impl Args {
    pub async fn run(self, cx: &Context) -> Result<Exit> {
        let apply = self.apply && !self.dry_run;
        let TargetArgs { env, service } = &self.target;
        let (ports, bundle) = cx.prepare().await?;
        let (e, s, t) = bundle.config.target(env, service).with_context(|| {
            format!("service `{service}` is not deployed to `{env}` by the config")
        })?;
        let project = &bundle.config.project;
        let root = format!("/{project}/{env}/outputs/");
        let names = vec![
            format!("{root}alb-arn"),
            format!("{root}target-groups/{service}/blue"),
        ];
        let outputs = ports.outputs(&names).await?;
        let dimension = |name: &String| outputs.get(name).and_then(|a| elb_dimension(a));
        let lb = dimension(&names[0]).zip(dimension(&names[1]));
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
            out!(
                "{} {}",
                if apply { "put" } else { "would put" },
                describe(spec)
            );
        }
        if lb.is_none() {
            eprintln!("no load balancer outputs for {service} in {env} (bootstrap's alb-arn, target-groups/{service}/blue): 5XX and response-time alarms left out");
        }
        if !apply {
            eprintln!("dry run: nothing was created (add --apply)");
        }
        if !t.alarms.speaks_for(&specs[0].name) {
            let patterns = format!("{project}-{env}-{service}-*");
            eprintln!("note: they roll {service} back through their tags; `alarms = [\"{patterns}\"]` in the config names them too");
        }
        Ok(Exit::Done)
    }
}

fn describe(spec: &AlarmSpec) -> String {
    let dimensions: Vec<String> = spec
        .dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{}: {} {} {} > {} ({})",
        spec.name,
        spec.namespace,
        spec.metric,
        spec.statistic,
        spec.threshold,
        dimensions.join(", ")
    )
}
