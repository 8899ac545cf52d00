//! `[environments.<env>.bootstrap]`'s load balancer side: which services take web traffic, on
//! which port and path, how the target groups check and drain them, and the HTTPS certificate.

use super::{RawBootstrap, WebService};
use crate::config::diagnostics::Collector;
use crate::config::Config;

pub(super) struct Web {
    pub services: Vec<WebService>,
    pub health_check_path: String,
    pub deregistration_delay_seconds: u32,
    pub certificate_arn: Option<String>,
}

impl Web {
    pub(super) fn from_raw(
        c: &mut Collector<'_>,
        base: &str,
        raw: &RawBootstrap,
        config: &Config,
        env: &str,
    ) -> Self {
        let services = services(c, base, raw, config, env);
        let health_check_path = raw.health_check_path.clone();
        let health_check_path = health_check_path.unwrap_or_else(|| "/health/".into());
        if !health_check_path.starts_with('/') {
            c.err(
                format!("{base}.health_check_path"),
                "a path starts with `/`",
            );
        }
        let deregistration_delay_seconds = raw.deregistration_delay_seconds.unwrap_or(15);
        if deregistration_delay_seconds > 3600 {
            c.err(
                format!("{base}.deregistration_delay_seconds"),
                "allowed: 0 to 3600",
            );
        }
        if (raw.certificate_arn.as_ref()).is_some_and(|a| !a.starts_with("arn:aws:acm:")) {
            c.err(
                format!("{base}.certificate_arn"),
                "expected an ACM certificate ARN",
            );
        }
        Web {
            services,
            health_check_path,
            deregistration_delay_seconds,
            certificate_arn: raw.certificate_arn.clone(),
        }
    }
}

/// The web services by name (`web_ports`), each with its path pattern (`web_paths`, `/*` by
/// default); paths without a port and shared paths are errors.
fn services(
    c: &mut Collector<'_>,
    base: &str,
    raw: &RawBootstrap,
    config: &Config,
    env: &str,
) -> Vec<WebService> {
    let mut web = Vec::new();
    for (name, port) in &raw.web_ports {
        let field = format!("{base}.web_ports.{name}");
        if !config.services.contains_key(name) {
            c.err(&field, format!("no service `{name}` in the config"));
        }
        if *port == 0 {
            c.err(&field, "a port is 1 to 65535");
        }
        // Target group names: `<project>-<env>-<service>-green`, at most 32 characters.
        if config.project.len() + env.len() + 1 + name.len() + 7 > 32 {
            c.err(&field, format!("target group names `{}-{env}-{name}-green` would exceed AWS's 32 characters; shorten the project, environment or service name", config.project));
        }
        let path = raw.web_paths.get(name).cloned();
        let path = path.unwrap_or_else(|| "/*".into());
        if !path.starts_with('/') {
            c.err(
                format!("{base}.web_paths.{name}"),
                "a path pattern starts with `/`",
            );
        }
        web.push(WebService {
            name: name.clone(),
            port: *port,
            path,
        });
    }
    for name in raw.web_paths.keys() {
        if !raw.web_ports.contains_key(name) {
            c.err(
                format!("{base}.web_paths.{name}"),
                format!("`{name}` has no entry in web_ports"),
            );
        }
    }
    let mut paths: Vec<&str> = web.iter().map(|w| w.path.as_str()).collect();
    paths.sort();
    if paths.windows(2).any(|w| w[0] == w[1]) {
        c.err(
            format!("{base}.web_paths"),
            "two web services share a path pattern; give each its own",
        );
    }
    web
}
