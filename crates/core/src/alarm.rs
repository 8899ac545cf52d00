//! CloudWatch alarms: which service an alarm speaks for, what its state change says, and the
//! standard rollback alarms `harbormaster alarms` creates for a web service.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Per (environment, service): the alarms that roll it back and the ones that hold deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmPolicy {
    /// Alarm names, or patterns with `*`, whose ALARM rolls the service back.
    pub alarms: Vec<String>,
    /// After a release completes, how long an ALARM still counts as the release's fault.
    pub window_minutes: u32,
    /// Alarms that must not be in ALARM for a deployment to start.
    pub guards: Vec<String>,
    /// How long a release waits for its guard alarms to clear before it fails.
    pub guard_timeout_minutes: u32,
}

impl Default for AlarmPolicy {
    fn default() -> Self {
        AlarmPolicy {
            alarms: Vec::new(),
            window_minutes: 30,
            guards: Vec::new(),
            guard_timeout_minutes: 60,
        }
    }
}

impl AlarmPolicy {
    pub fn speaks_for(&self, alarm: &str) -> bool {
        self.alarms.iter().any(|p| glob(p, alarm))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || !name[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlarmState {
    Ok,
    Alarm,
    InsufficientData,
}

impl AlarmState {
    pub fn parse(s: &str) -> Option<AlarmState> {
        match s {
            "OK" => Some(AlarmState::Ok),
            "ALARM" => Some(AlarmState::Alarm),
            "INSUFFICIENT_DATA" => Some(AlarmState::InsufficientData),
            _ => None,
        }
    }
}

/// One alarm state change, from EventBridge or from an SNS alarm action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmChange {
    /// The EventBridge event id or the SNS message id: redeliveries carry the same.
    pub id: String,
    pub alarm: String,
    pub arn: Option<String>,
    pub state: AlarmState,
    pub previous: Option<AlarmState>,
    /// When the alarm changed state (CloudWatch's clock).
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// CloudWatch writes `2019-10-02T17:04:40.235+0000`; EventBridge's envelope RFC 3339.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Thresholds of the standard rollback alarms for a web service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    pub cpu_percent: f64,
    pub memory_percent: f64,
    pub http_5xx_per_minute: f64,
    pub response_time_seconds: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            cpu_percent: 80.0,
            memory_percent: 80.0,
            http_5xx_per_minute: 10.0,
            response_time_seconds: 2.0,
        }
    }
}

/// A CloudWatch alarm as PutMetricAlarm takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSpec {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub period_seconds: u32,
    pub evaluation_periods: u32,
    pub threshold: f64,
    pub tags: BTreeMap<String, String>,
}

pub const TAG_SERVICE: &str = "harbormaster:service";
pub const TAG_ENVIRONMENT: &str = "harbormaster:environment";

/// One standard alarm: its name's last word, where CloudWatch keeps its metric, and its
/// threshold with what crossing it means in words.
struct Standard {
    what: &'static str,
    namespace: &'static str,
    metric: &'static str,
    statistic: &'static str,
    /// A load balancer's metric (its dimensions), not the ECS service's.
    balanced: bool,
    threshold: fn(&Thresholds) -> (f64, String),
}

const STANDARD: [Standard; 4] = [
    Standard {
        what: "cpu",
        namespace: "AWS/ECS",
        metric: "CPUUtilization",
        statistic: "Average",
        balanced: false,
        threshold: |t| {
            (
                t.cpu_percent,
                format!("CPU above {}% for 3 minutes", t.cpu_percent),
            )
        },
    },
    Standard {
        what: "memory",
        namespace: "AWS/ECS",
        metric: "MemoryUtilization",
        statistic: "Average",
        balanced: false,
        threshold: |t| {
            let words = format!("memory above {}% for 3 minutes", t.memory_percent);
            (t.memory_percent, words)
        },
    },
    Standard {
        what: "5xx",
        namespace: "AWS/ApplicationELB",
        metric: "HTTPCode_Target_5XX_Count",
        statistic: "Sum",
        balanced: true,
        threshold: |t| {
            let n = t.http_5xx_per_minute;
            (n, format!("more than {n} target 5XX responses a minute"))
        },
    },
    Standard {
        what: "latency",
        namespace: "AWS/ApplicationELB",
        metric: "TargetResponseTime",
        statistic: "Average",
        balanced: true,
        threshold: |t| {
            let s = t.response_time_seconds;
            (s, format!("target response time above {s} s"))
        },
    },
];

/// The standard alarms: CPU and memory of the ECS service, and, behind a load balancer, target
/// 5XX count and response time. `lb` is (load balancer, target group) in CloudWatch's dimension
/// form (`app/<name>/<id>`, `targetgroup/<name>/<id>`).
pub fn standard_alarms(
    project: &str,
    env: &str,
    service: &str,
    cluster: &str,
    ecs_service: &str,
    lb: Option<(&str, &str)>,
    t: &Thresholds,
) -> Vec<AlarmSpec> {
    let tags = BTreeMap::from([
        (TAG_SERVICE.to_owned(), service.to_owned()),
        (TAG_ENVIRONMENT.to_owned(), env.to_owned()),
    ]);
    let dimensions = |balanced: bool| match (balanced, lb) {
        (false, _) => Some(BTreeMap::from([
            ("ClusterName".to_owned(), cluster.to_owned()),
            ("ServiceName".to_owned(), ecs_service.to_owned()),
        ])),
        (true, Some((balancer, group))) => Some(BTreeMap::from([
            ("LoadBalancer".to_owned(), balancer.to_owned()),
            ("TargetGroup".to_owned(), group.to_owned()),
        ])),
        (true, None) => None,
    };
    let alarm = |s: &Standard| {
        let (threshold, words) = (s.threshold)(t);
        Some(AlarmSpec {
            name: format!("{project}-{env}-{service}-{}", s.what),
            description: format!("{service} in {env}: {words} (Harbormaster rolls back)"),
            namespace: s.namespace.to_owned(),
            metric: s.metric.to_owned(),
            dimensions: dimensions(s.balanced)?,
            statistic: s.statistic.to_owned(),
            period_seconds: 60,
            evaluation_periods: 3,
            threshold,
            tags: tags.clone(),
        })
    };
    STANDARD.iter().filter_map(alarm).collect()
}

/// `arn:aws:elasticloadbalancing:…:loadbalancer/app/name/id` → `app/name/id` (and the same for
/// `targetgroup/name/id`): the form CloudWatch's ELB dimensions take.
pub fn elb_dimension(arn: &str) -> Option<String> {
    let rest = arn.split(':').nth(5)?;
    match rest.strip_prefix("loadbalancer/") {
        Some(lb) => Some(lb.to_owned()),
        None => rest.starts_with("targetgroup/").then(|| rest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_names() {
        assert!(glob("booking-dev-web-*", "booking-dev-web-5xx"));
        assert!(glob("*-5xx", "booking-dev-web-5xx"));
        assert!(glob("booking-*-web-*", "booking-dev-web-cpu"));
        assert!(!glob("booking-*-web-*", "booking-dev-worker-cpu"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
        assert!(!glob("a*a", "a"));
    }

    #[test]
    fn cloudwatch_times_parse() {
        let t = parse_time("2019-10-02T17:04:40.235+0000").unwrap();
        assert_eq!(t.to_rfc3339(), "2019-10-02T17:04:40.235+00:00");
        assert!(parse_time("2019-10-02T17:04:40Z").is_some());
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn standard_alarms_are_tagged_and_use_elb_dimensions() {
        let lb = elb_dimension(
            "arn:aws:elasticloadbalancing:us-east-1:1:loadbalancer/app/booking-dev/50dc6c495c0c9188",
        )
        .unwrap();
        let tg = elb_dimension(
            "arn:aws:elasticloadbalancing:us-east-1:1:targetgroup/booking-dev-web-blue/73e2d6bc24d8a067",
        )
        .unwrap();
        assert_eq!(lb, "app/booking-dev/50dc6c495c0c9188");
        let a = standard_alarms(
            "booking",
            "dev",
            "web",
            "booking-dev",
            "web",
            Some((&lb, &tg)),
            &Thresholds::default(),
        );
        let names: Vec<_> = a.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "booking-dev-web-cpu",
                "booking-dev-web-memory",
                "booking-dev-web-5xx",
                "booking-dev-web-latency"
            ]
        );
        assert!(a.iter().all(|a| a.tags[TAG_SERVICE] == "web"));
        assert_eq!(a[2].dimensions["TargetGroup"], tg);
        assert_eq!(a[3].threshold, 2.0);
    }
}
