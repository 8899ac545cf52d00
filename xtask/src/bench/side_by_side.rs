//! `harbormaster deploy` beside ecs-deploy: the same service, the same kind of change (a new
//! image deployed by digest), each tool run as a process with its endpoint at a counting proxy.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Result};
use harbormaster_e2e::{World, CLUSTER};
use harbormaster_testkit::proxy::{is_mutating, CountingProxy};

use super::{counted, percentile};

/// Pinned: the comparison is with this release.
pub(super) const ECS_DEPLOY: &str = "ecs-deploy==1.17.0";
const ROUNDS: usize = 5;

pub(super) struct ToolRuns {
    /// Process wall times, ms, sorted.
    walls: Vec<f64>,
    /// The calls of the last round.
    pub(super) calls: Vec<harbormaster_testkit::proxy::Call>,
}

impl ToolRuns {
    fn mutating(&self) -> usize {
        self.calls
            .iter()
            .filter(|c| is_mutating(&c.operation))
            .count()
    }

    fn ops(&self) -> String {
        counted(&self.calls)
    }
}

impl ToolRuns {
    fn new() -> Self {
        ToolRuns {
            walls: Vec::new(),
            calls: Vec::new(),
        }
    }
}

/// One process of `program args…` against the proxy: its wall time, ms, start to exit.
fn timed(program: &Path, args: &[&str], env: &[(&'static str, String)]) -> Result<f64> {
    let t = Instant::now();
    let out = Command::new(program)
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.clone())))
        .output()?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !out.status.success() {
        bail!(
            "{} {}: {}{}",
            program.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(ms)
}

/// `harbormaster deploy` and `ecs deploy`, alternating, each on a freshly pushed image.
pub(super) async fn side_by_side(
    w: &World,
    cli: &Path,
    proxy: &CountingProxy,
) -> Result<(ToolRuns, ToolRuns)> {
    let venv = harbormaster_testkit::ensure_python_tool(
        &harbormaster_testkit::cache_dir(&format!("venv-{}", ECS_DEPLOY.replace("==", "-"))),
        &[ECS_DEPLOY],
        "ecs",
    )?;
    let mut env = w.cli_env_at(&proxy.endpoint);
    env.push(("AWS_DEFAULT_REGION", harbormaster_e2e::REGION.into()));
    let (mut ours, mut theirs) = (ToolRuns::new(), ToolRuns::new());
    for round in 0..ROUNDS {
        let digest = w.push_image(&format!("main-h{round:06}")).await?;
        proxy.reset();
        let deploy = [
            "deploy",
            "--env",
            "dev",
            "--service",
            "web",
            "--image",
            &digest,
        ];
        ours.walls.push(timed(cli, &deploy, &env)?);
        ours.calls = proxy.calls();
        // Let the emulator's finished rollout be recorded, outside the measurement.
        timed(cli, &["tick"], &env)?;

        let digest = w.push_image(&format!("main-e{round:06}")).await?;
        let image = format!(
            "{}.dkr.ecr.{}.amazonaws.com/{}@{digest}",
            harbormaster_e2e::ACCOUNT,
            harbormaster_e2e::REGION,
            harbormaster_e2e::REPOSITORY
        );
        proxy.reset();
        let theirs_args = [
            "deploy",
            CLUSTER,
            "web",
            "--image",
            "web",
            &image,
            "--timeout",
            "-1",
        ];
        theirs
            .walls
            .push(timed(&venv.join("bin/ecs"), &theirs_args, &env)?);
        theirs.calls = proxy.calls();
    }
    ours.walls.sort_by(|a, b| a.total_cmp(b));
    theirs.walls.sort_by(|a, b| a.total_cmp(b));
    Ok((ours, theirs))
}

/// `harbormaster deploy`'s calls in the order made, each with the failure it protects against
/// (issue 20 asks each remaining call, writes above all, to justify itself). A call without a
/// known reason says so, so a new one cannot slip into the table unexplained.
pub(super) fn why_each_call(calls: &[harbormaster_testkit::proxy::Call]) -> String {
    const DEPLOY: &str = "the deploy";
    const STATE: &str = "its state";
    const CHECK: &str = "a check";
    let mut writes = 0;
    let mut rows = String::from("| # | call | for | why it is made |\n| --- | --- | --- | --- |\n");
    let mut tally: Vec<(&str, usize)> = Vec::new();
    for (i, c) in calls.iter().enumerate() {
        let op = c.operation.as_str();
        let (role, why) = match op.split_whitespace().next().unwrap_or(op) {
            "sts:GetCallerIdentity" => (DEPLOY, "who deploys, as AWS says (the ARN recorded with the release, `$USER` only a label beside it); it tells the account too"),
            "ecr:DescribeImages" => (DEPLOY, "the digest the tag names now (the revision pins it)"),
            "s3:GET" => (STATE, "the service's state document: what runs, what is in flight, and the version every write is fenced by"),
            "s3:PUT" => {
                writes += 1;
                match writes {
                    1 => (STATE, "the intent to register, with the lease and the \"started\" notice claimed: of two invocations one registers and one notifies; a crash after RegisterTaskDefinition or UpdateService is taken over from it"),
                    2 => (STATE, "stabilizing, with ECS's deployment id the tick follows (the updating intent and the sent notice saved with it)"),
                    _ => ("?", "NOT EXPLAINED: a write this table does not know"),
                }
            }
            "ssm:DescribeParameters" => (CHECK, "every secret the template names exists (names only, never values): a missing one fails the deployment before registering, not the tasks after; made only when the config version differs from the running release's, whose tasks resolved the same parameters"),
            "ssm:GetParameters" => (CHECK, "the bootstrap's outputs the service's settings default to (subnets, security groups, target group): the service follows the environment's stack"),
            "ecs:RegisterTaskDefinition" => (DEPLOY, "the new revision, tagged with the deployment id"),
            "ecs:UpdateService" => (DEPLOY, "the rollout"),
            "sns:Publish" => (DEPLOY, "the \"started\" notification"),
            _ => ("?", "NOT EXPLAINED: a call this table does not know"),
        };
        match tally.iter_mut().find(|(r, _)| *r == role) {
            Some((_, n)) => *n += 1,
            None => tally.push((role, 1)),
        }
        rows.push_str(&format!("| {} | {op} | {role} | {why} |\n", i + 1));
    }
    let count = |role: &str| tally.iter().find(|(r, _)| *r == role).map_or(0, |t| t.1);
    rows.push_str(&format!(
        "\n{} calls are the deploy itself (who asks, the digest check, registering, the rollout, \
         the notification); {} keep its state, one versioned document: the read every write is \
         fenced by, the intent a crash is taken over from (`crates/core/tests/crash.rs` kills \
         every port call, before or after its effect), and the record of the rollout the tick \
         follows; {} check what the deploy depends on, and dropping them would change what a \
         deploy does. A deploy that records what it did and survives a crash at any call makes \
         no fewer than {} calls.\n",
        count(DEPLOY),
        count(STATE),
        count(CHECK),
        count(DEPLOY) + count(STATE),
    ));
    rows
}

pub(super) fn side_by_side_table(ours: &ToolRuns, theirs: &ToolRuns) -> String {
    let (o, t) = (percentile(&ours.walls, 0.5), percentile(&theirs.walls, 0.5));
    format!(
        "| measure | Harbormaster (`harbormaster deploy`) | {ECS_DEPLOY} (`ecs deploy`) | ratio (Harbormaster / ecs-deploy) |\n\
         | --- | --- | --- | --- |\n\
         | wall time, process start → exit after UpdateService, median of {ROUNDS} | {o:.0} ms | {t:.0} ms | {:.2}× |\n\
         | same, min – max | {:.0} – {:.0} ms | {:.0} – {:.0} ms | – |\n\
         | AWS API calls | {} | {} | {:.2}× |\n\
         | of which mutating | {} | {} | {:.2}× |\n\
         | calls | {} | {} | – |\n",
        o / t,
        ours.walls[0],
        ours.walls[ours.walls.len() - 1],
        theirs.walls[0],
        theirs.walls[theirs.walls.len() - 1],
        ours.calls.len(),
        theirs.calls.len(),
        ours.calls.len() as f64 / theirs.calls.len().max(1) as f64,
        ours.mutating(),
        theirs.mutating(),
        ours.mutating() as f64 / theirs.mutating().max(1) as f64,
        ours.ops(),
        theirs.ops(),
    )
}
