//! What the concern files' table tests share: a policy, states at the points a table starts
//! from, and a step read back as words. Each table calls [`super::decide`] directly.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::{Command, Observation, Outcome, Policy, Step};
use crate::alarm::AlarmPolicy;
use crate::image::{Digest, Image, ImageOrder};
use crate::state::{
    Deployment, DeploymentId, KnownGood, Phase, Release, ServiceState, Trigger, Verdict,
};
use crate::strategy::Gates;

pub const TD1: &str = "arn:td/web:1";
pub const TD2: &str = "arn:td/web:2";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap()
}

pub fn policy() -> Policy {
    Policy {
        project: "booking".into(),
        order: ImageOrder::PushTime,
        lease: Duration::seconds(60),
        settle: Duration::zero(),
        stabilize_timeout: Duration::minutes(30),
        max_attempts: 3,
        history_limit: 25,
        gates: Gates::default(),
        alarms: AlarmPolicy::default(),
        native: false,
        scaling: None,
        autoscaled: false,
        custom_capacity: false,
        one_off_timeout: None,
        owner: "run-a".into(),
        config_version: Some("config-1".into()),
        config_baseline: None,
        config_origin: None,
        bundle: None,
        promote_from: None,
        gate: super::Gate {
            pushes: true,
            config: crate::config::ConfigReleases::Auto,
            self_heal: false,
        },
        drift_every: 5,
    }
}

/// Image `fill` × 64, pushed `secs` seconds before [`t0`].
pub fn image(fill: char, secs: i64) -> Image {
    Image {
        repository: "booking/web".into(),
        digest: Digest::parse(&format!("sha256:{}", fill.to_string().repeat(64))).unwrap(),
        tag: Some(format!("main-{fill}")),
        pushed_at: t0() - Duration::seconds(secs),
    }
}

pub fn idle() -> ServiceState {
    ServiceState::new("dev", "web")
}

/// `a` running on [`TD1`] since a minute ago, accepted and recorded as succeeded.
pub fn deployed() -> ServiceState {
    let mut s = idle();
    let a = image('a', 600);
    let good = KnownGood {
        task_definition_arn: TD1.into(),
        image: a.clone(),
        deployment_id: DeploymentId("d-a".into()),
        at: t0() - Duration::minutes(1),
        started_at: Some(t0() - Duration::minutes(2)),
        restored: false,
        config: Some("config-1".into()),
        config_release: false,
        bundle: None,
    };
    s.record(
        crate::state::HistoryEntry {
            deployment_id: Some(good.deployment_id.clone()),
            image: a.clone(),
            verdict: Verdict::Succeeded,
            task_definition_arn: Some(TD1.into()),
            reason: None,
            at: good.at,
            gates: Vec::new(),
            config: Some("config-1".into()),
            bundle: None,
            rollback: false,
        },
        25,
    );
    s.last_known_good = Some(good);
    s.newest_accepted = Some(a);
    s
}

/// [`deployed`], with `b` in flight in `phase` (its lease held until a minute from now).
pub fn in_flight(phase: Phase) -> ServiceState {
    let mut s = deployed();
    let b = image('b', 60);
    s.newest_accepted = Some(b.clone());
    let release = Release {
        image: b,
        trigger: Trigger::Push {
            event_id: "e-b".into(),
        },
        requested_at: t0(),
        force: false,
    };
    let lease = t0() + Duration::seconds(60);
    let d = Deployment::new(DeploymentId("d-b".into()), release, phase, t0(), lease);
    s.in_flight = Some(d);
    s
}

pub fn stabilizing() -> ServiceState {
    in_flight(Phase::Stabilizing {
        task_definition_arn: TD2.into(),
        ecs_deployment_id: Some("ecs-svc/2".into()),
    })
}

pub fn d_b() -> DeploymentId {
    DeploymentId("d-b".into())
}

/// The outcome's word, as reports serialise it (`started`, `ignored`…).
pub fn outcome(o: &Outcome) -> String {
    let v = serde_json::to_value(o).unwrap();
    v["outcome"].as_str().unwrap().to_owned()
}

/// The command's name, or `-`.
pub fn command(c: &Option<Command>) -> String {
    match c {
        None => "-".into(),
        Some(c) => format!("{c:?}")
            .split([' ', '{', '('])
            .next()
            .unwrap()
            .to_owned(),
    }
}

/// One row of a table: the outcome, the journal and the command a step yields.
pub fn read(step: &Step) -> (String, Vec<String>, String) {
    let words = step
        .journal
        .iter()
        .map(|t| format!("{}->{}", t.from, t.to))
        .collect();
    (outcome(&step.outcome), words, command(&step.command))
}

/// One row of a concern's table: the case, the state before, what is observed, and the
/// outcome, journal and command the step must yield.
pub struct Row {
    pub case: &'static str,
    pub state: ServiceState,
    pub obs: Observation,
    pub outcome: &'static str,
    pub journal: &'static [&'static str],
    pub command: &'static str,
}

/// Decides every row at [`t0`] under `policy` and checks what it yields.
pub fn check(policy: &Policy, rows: Vec<Row>) {
    for r in rows {
        let step = super::decide(&r.state, &r.obs, t0(), policy);
        let (o, j, c) = read(&step);
        let want: Vec<String> = r.journal.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            (o.as_str(), &j, c.as_str()),
            (r.outcome, &want, r.command),
            "{}",
            r.case
        );
    }
}
