//! The names the environment's stack gives from `<project>-<env>`, against what AWS accepts, so
//! `validate` refuses a name `apply` would fail on half way: the database instance (RDS
//! DBInstanceIdentifier: 1–63 letters, digits and hyphens, a letter first, no two hyphens in a
//! row, none last), the Redis replication group (ElastiCache ReplicationGroupId: the same rules,
//! at most 40) and the load balancer (an ALB's Name: at most 32 letters, digits and hyphens,
//! none first or last, not beginning with `internal-`).

use crate::config::diagnostics::Collector;

/// Why `name` is not an RDS or ElastiCache identifier of at most `max` characters.
fn identifier_problem(name: &str, max: usize) -> Option<String> {
    if name.len() > max {
        return Some(format!("{} characters, at most {max}", name.len()));
    }
    if !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Some("it must begin with a letter".into());
    }
    if name.contains("--") || name.ends_with('-') {
        return Some("no two hyphens in a row, and none last".into());
    }
    None
}

fn load_balancer_problem(name: &str) -> Option<String> {
    if name.len() > 32 {
        return Some(format!("{} characters, at most 32", name.len()));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Some("no hyphen first or last".into());
    }
    if name.starts_with("internal-") {
        return Some("it may not begin with `internal-`".into());
    }
    None
}

/// Checks the names `prefix` (`<project>-<env>`) gives the stack's database (when it has one),
/// cache (when it has one) and load balancer.
pub(super) fn check(c: &mut Collector<'_>, base: &str, prefix: &str, database: bool, redis: bool) {
    let shorten = "shorten or rename the project or the environment";
    if let Some(p) = identifier_problem(prefix, 63).filter(|_| database) {
        let why = format!("the database instance would be named `{prefix}`, which RDS refuses: {p}; {shorten}, or set `enabled = false`");
        c.err(format!("{base}.database"), why);
    }
    if let Some(p) = identifier_problem(prefix, 40).filter(|_| redis) {
        let why = format!("the Redis replication group would be named `{prefix}`, which ElastiCache refuses: {p}; {shorten}");
        c.err(format!("{base}.redis"), why);
    }
    if let Some(p) = load_balancer_problem(prefix) {
        let why = format!("the load balancer would be named `{prefix}`, which Elastic Load Balancing refuses: {p}; {shorten}");
        c.err(base, why);
    }
}
