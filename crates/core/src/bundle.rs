//! The GitOps source as one checked unit: `harbormaster.toml` and every template it names.

use std::collections::BTreeMap;

use chrono::Duration;

use crate::config::{Config, ConfigErrors, CONFIG_FILE};
use crate::machine::Policy;
use crate::ports::{ConfigSource, PortError, ServiceTarget};
use crate::template::{Template, TemplateError};

#[derive(Debug, Clone)]
pub struct Bundle {
    pub config: Config,
    /// Where this version came from (`publish`'s commit, author and message), if known.
    pub origin: Option<String>,
    /// The published bundle this is (its digest), if it came from one: what a release records,
    /// and what `promote_from` compares between environments.
    pub published: Option<String>,
    /// By service name.
    pub templates: BTreeMap<String, Template>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    #[error("{0}")]
    Template(#[from] TemplateError),
    #[error("cannot read {location}: {source}")]
    Read { location: String, source: PortError },
    /// A service's template that cannot be read: named with the setting that refers to it.
    #[error("services.{service}.task_definition: cannot read {location}: {source}")]
    TemplateUnreadable {
        service: String,
        location: String,
        source: PortError,
    },
    #[error("{location}: not UTF-8 text")]
    Encoding { location: String },
    #[error("{location}: {size} bytes, over the {max} a bundle may hold for this file")]
    TooLarge {
        location: String,
        size: usize,
        max: usize,
    },
    /// Several templates are wrong: each is reported, so one run finds them all.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Several(Vec<BundleError>),
}

/// The last bundle a process checked, with the texts it was made from: a warm function that
/// reads the same texts again (the usual case: the config changes with a publish, events come
/// every second) reuses it instead of parsing and checking 50 services and their templates per
/// event. Anything that differs, byte for byte, is loaded and checked in full.
#[derive(Debug, Default)]
pub struct BundleCache(std::sync::Mutex<Option<Checked>>);

#[derive(Debug, Clone)]
struct Checked {
    config_text: String,
    /// (path, text) of each template, as read.
    template_texts: Vec<(String, String)>,
    bundle: Bundle,
}

impl Bundle {
    /// Reads and checks everything; any error means nothing is deployed from this source.
    pub async fn load<S: ConfigSource>(source: &S) -> Result<Bundle, BundleError> {
        Bundle::load_cached(source, &BundleCache::default()).await
    }

    /// As [`Bundle::load`], reusing `cache` when every text read is the one it was made from.
    pub async fn load_cached<S: ConfigSource>(
        source: &S,
        cache: &BundleCache,
    ) -> Result<Bundle, BundleError> {
        let pinned = source.pinned().await.map_err(|e| BundleError::Read {
            location: source.describe(crate::config::POINTER_FILE),
            source: e,
        })?;
        let source = &pinned;
        let text = read_text(source, CONFIG_FILE, MAX_CONFIG_BYTES).await?;
        let last = cache.0.lock().expect("bundle cache").clone();
        if let Some(last) = last.filter(|l| l.config_text == text) {
            if let Some(b) = Bundle::unchanged(source, last).await {
                return Ok(b);
            }
        }
        let (bundle, template_texts) = Bundle::check(source, &text).await?;
        *cache.0.lock().expect("bundle cache") = Some(Checked {
            config_text: text,
            template_texts: template_texts.into_iter().collect(),
            bundle: bundle.clone(),
        });
        Ok(bundle)
    }

    /// The cached bundle, if every template still reads as it did and the origin is the same.
    async fn unchanged<S: ConfigSource>(source: &S, last: Checked) -> Option<Bundle> {
        for (path, text) in &last.template_texts {
            match read_text(source, path, MAX_TEMPLATE_BYTES).await {
                Ok(now) if &now == text => {}
                _ => return None,
            }
        }
        let same =
            last.bundle.origin == source.origin() && last.bundle.published == source.bundle();
        same.then_some(last.bundle)
    }

    /// Parses and checks the config `text` and every template it names; with the bundle, the
    /// text of each template as read (by path), for the cache to compare with next time.
    async fn check<S: ConfigSource>(
        source: &S,
        text: &str,
    ) -> Result<(Bundle, BTreeMap<String, String>), BundleError> {
        let config = Config::parse(&source.describe(CONFIG_FILE), text)?;
        let mut templates = BTreeMap::new();
        let mut texts = BTreeMap::new();
        let mut problems = Vec::new();
        for s in config.services.values() {
            match template_of(source, s).await {
                Ok((t, text)) => {
                    templates.insert(s.name.clone(), t);
                    texts.insert(s.task_definition.clone(), text);
                }
                Err(e) => problems.push(e),
            }
        }
        match problems.len() {
            0 => {}
            1 => return Err(problems.remove(0)),
            _ => return Err(BundleError::Several(problems)),
        }
        check_capacity(&config, &templates)?;
        check_exec(&config, &templates)?;
        let bundle = Bundle {
            config,
            templates,
            origin: source.origin(),
            published: source.bundle(),
        };
        Ok((bundle, texts))
    }

    pub fn policy(&self, env: &str, service: &str) -> Option<Policy> {
        let (e, _, t) = self.config.target(env, service)?;
        let a = &self.config.agent;
        let extra = t
            .native
            .as_ref()
            .map(|n| n.extra_minutes(&t.gates, a.hook_callback_seconds))
            .unwrap_or(0);
        let project = &self.config.project;
        let mut gates = t.gates.clone();
        gates.checks = gates
            .checks
            .iter()
            .map(|c| crate::strategy::localise(c, project, env, service))
            .collect();
        Some(Policy {
            project: self.config.project.clone(),
            order: t.order(),
            lease: Duration::seconds(a.lease_seconds.into()),
            settle: Duration::seconds(a.settle_seconds.into()),
            stabilize_timeout: Duration::minutes(i64::from(a.stabilize_timeout_minutes) + extra),
            max_attempts: a.max_attempts,
            history_limit: a.history_limit,
            gates,
            alarms: t.alarms.clone(),
            native: t.strategy.is_native(),
            scaling: t.scaling.clone(),
            autoscaled: t.service.autoscaling.is_some(),
            custom_capacity: t.service.custom_capacity(),
            one_off_timeout: (t.service.before_deploy.as_ref())
                .map(|b| Duration::minutes(b.timeout_minutes.into())),
            owner: String::new(),
            config_version: self.config_version(env, service),
            config_baseline: self.config_baseline(env, service),
            config_origin: self.origin.clone(),
            bundle: self.published.clone(),
            promote_from: e.promote_from.clone(),
            gate: crate::machine::Gate {
                pushes: e.auto_deploy,
                config: e.config_releases,
                self_heal: e.self_heal,
            },
            drift_every: a.drift_check_minutes,
        })
    }

    /// The fingerprint of what git says `service` runs in `env`, image aside, as
    /// `<scheme>:<hex>` ([`CONFIG_SCHEME`]): its task definition rendered with fixed stand-ins
    /// for the image, the placement and the deployment (the agent's own `harbormaster:` tags
    /// left out), and every service setting the agent owns, its count, rolling percentages and
    /// rollback alarms; keys sorted (a reordered template is no change) and absent values
    /// (`null`, `[]`, `{}`) dropped, so a setting added to a later agent, unset, moves no
    /// fingerprint. Pure: the tick compares it every minute without a call to AWS, and renders
    /// for real only when it changed.
    ///
    /// Pinned by `the_example_configs_fingerprints_are_pinned`: a change of what goes in is a
    /// new scheme, and [`Bundle::config_baseline`] keeps the previous one so that what runs is
    /// re-baselined, not released.
    pub fn config_version(&self, env: &str, service: &str) -> Option<String> {
        let (_, s, t) = self.config.target(env, service)?;
        let mut rendered = self.stand_in_rendering(env, service)?;
        if let Some(tags) = rendered.get_mut("tags").and_then(|t| t.as_array_mut()) {
            tags.retain(|t| {
                !(t.get("key").and_then(serde_json::Value::as_str))
                    .is_some_and(|k| k.starts_with("harbormaster:"))
            });
        }
        let whole = serde_json::json!({
            "task_definition": rendered,
            "service": t.service,
            "desired_count": t.desired_count,
            "rolling": s.rolling,
            "alarms": t.rollback_alarms,
        });
        let mut canonical = String::new();
        write_canonical(&whole, &mut canonical, Absent::Dropped);
        let hex = crate::text::fingerprint(canonical.as_bytes());
        Some(format!("{CONFIG_SCHEME}:{hex}"))
    }

    /// The same config's fingerprint in scheme 1 (agents before scheme 2 wrote it, 32 hex
    /// characters): the service's settings counted only once one was set, its count, rolling
    /// percentages and alarms not otherwise. A service that recorded exactly this runs what git
    /// says: re-baselined without a release.
    pub fn config_baseline(&self, env: &str, service: &str) -> Option<String> {
        let (_, s, t) = self.config.target(env, service)?;
        let rendered = self.stand_in_rendering(env, service)?;
        let mut canonical = String::new();
        write_canonical(&rendered, &mut canonical, Absent::Kept);
        if !t.service.is_default() {
            let settings = serde_json::json!({
                "service": t.service,
                "desired_count": t.desired_count,
                "rolling": s.rolling,
                "alarms": t.rollback_alarms,
            });
            canonical.push_str("|service:");
            write_canonical(&settings, &mut canonical, Absent::Kept);
        }
        Some(crate::text::fingerprint(canonical.as_bytes()))
    }

    /// The task definition `service` gets in `env`, with fixed stand-ins for what is not the
    /// config's (the image digest, the account and region, the deployment).
    fn stand_in_rendering(&self, env: &str, service: &str) -> Option<serde_json::Value> {
        let (e, s, t) = self.config.target(env, service)?;
        let template = self.templates.get(&s.name)?;
        let digest = crate::image::Digest::parse(&format!("sha256:{}", "0".repeat(64))).ok()?;
        let placement = crate::template::Placement {
            account: "000000000000".into(),
            region: "region".into(),
        };
        let input = crate::template::RenderInput {
            config: &self.config,
            environment: e,
            service: s,
            target: t,
            digest: &digest,
            placement: &placement,
            deployment_id: "",
        };
        Some(template.render(&input).ok()?.body)
    }

    pub fn service_target(&self, env: &str, service: &str) -> Option<ServiceTarget> {
        let (e, s, _) = self.config.target(env, service)?;
        Some(ServiceTarget {
            environment: e.name.clone(),
            name: s.name.clone(),
            cluster: e.cluster.clone(),
            service: s.ecs_service.clone(),
            native: None,
            settings: self.resolved_service(env, service, &Default::default())?,
        })
    }

    /// The service settings of a target with `outputs` (the bootstrap's, by short name)
    /// filling in what the config leaves out.
    pub fn resolved_service(
        &self,
        env: &str,
        service: &str,
        outputs: &BTreeMap<String, String>,
    ) -> Option<crate::service::ResolvedService> {
        let (e, s, t) = self.config.target(env, service)?;
        let field = format!("services.{}.environments.{}", s.name, e.name);
        let names = crate::service::Names {
            project: &self.config.project,
            environment: &e.name,
            service: &s.name,
            cluster: &e.cluster,
            field: &field,
        };
        Some(crate::service::resolve_service(
            &names, t, &s.rolling, outputs,
        ))
    }
}

/// Every target with its service's template (one that failed to load is reported on its own).
fn with_templates<'a>(
    config: &'a Config,
    templates: &'a BTreeMap<String, Template>,
) -> impl Iterator<
    Item = (
        &'a crate::config::Environment,
        &'a crate::config::Service,
        &'a crate::config::TargetSettings,
        &'a Template,
    ),
> + 'a {
    (config.targets()).filter_map(|(e, s, t)| Some((e, s, t, templates.get(&s.name)?)))
}

/// Fargate Spot refuses some task definitions; refuse them here, before any call, naming the
/// template's field and the setting that asks for Spot.
fn check_capacity(
    config: &Config,
    templates: &BTreeMap<String, Template>,
) -> Result<(), TemplateError> {
    for (e, s, t, template) in with_templates(config, templates) {
        let (arch, os) = template.runtime_platform();
        if let Err((field, why)) = crate::service::check_spot(&t.service, arch, os) {
            return Err(TemplateError {
                file: template.file.clone(),
                field,
                problem: format!(
                    "{why}: `services.{}.environments.{}.capacity` (or the service's) asks for `fargate_spot`",
                    s.name, e.name
                ),
            });
        }
    }
    Ok(())
}

/// ECS Exec runs the SSM agent with the task's role: CreateService and UpdateService refuse
/// `enableExecuteCommand` when the task definition names none ("Using Amazon ECS Exec",
/// ECS Developer Guide: the task role needs the ssmmessages permissions; ECS answers "a valid
/// taskRoleArn is not being used"). Refused here, naming the template's field and the setting.
fn check_exec(
    config: &Config,
    templates: &BTreeMap<String, Template>,
) -> Result<(), TemplateError> {
    for (e, s, t, template) in with_templates(config, templates) {
        if t.service.execute_command && !template.has_task_role() {
            return Err(TemplateError {
                file: template.file.clone(),
                field: "taskRoleArn".into(),
                problem: format!(
                    "`services.{}.environments.{}.enable_execute_command` (or the service's) needs a task role: ECS Exec runs with it, and ECS refuses the service without one",
                    s.name, e.name
                ),
            });
        }
    }
    Ok(())
}

/// A service's template, read and checked against the service's settings, and its text.
async fn template_of<S: ConfigSource>(
    source: &S,
    s: &crate::config::Service,
) -> Result<(Template, String), BundleError> {
    let text = read_text(source, &s.task_definition, MAX_TEMPLATE_BYTES)
        .await
        .map_err(|e| match e {
            BundleError::Read { location, source } => BundleError::TemplateUnreadable {
                service: s.name.clone(),
                location,
                source,
            },
            other => other,
        })?;
    let t =
        Template::parse_all(&source.describe(&s.task_definition), &text).map_err(|mut all| {
            match all.len() {
                1 => BundleError::Template(all.remove(0)),
                _ => BundleError::Several(all.into_iter().map(BundleError::Template).collect()),
            }
        })?;
    t.image_containers(s)?;
    Ok((t, text))
}

/// The largest `harbormaster.toml` read: far beyond any real project (the example is 4 KiB), far
/// below what a function's memory holds once parsed.
pub const MAX_CONFIG_BYTES: usize = 256 * 1024;
/// The largest template read: ECS refuses a task definition over 64 KiB (RegisterTaskDefinition,
/// "Amazon ECS service quotas": task definition size), and the rendering only adds to it.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;

async fn read_text<S: ConfigSource>(
    source: &S,
    path: &str,
    max: usize,
) -> Result<String, BundleError> {
    let bytes = source.read(path).await.map_err(|e| BundleError::Read {
        location: source.describe(path),
        source: e,
    })?;
    if bytes.len() > max {
        return Err(BundleError::TooLarge {
            location: source.describe(path),
            size: bytes.len(),
            max,
        });
    }
    String::from_utf8(bytes).map_err(|_| BundleError::Encoding {
        location: source.describe(path),
    })
}

/// The scheme of [`Bundle::config_version`]: 2 counts every service setting, always, and
/// drops absent values. Bump it with any change of what goes in, and keep the previous
/// scheme's function as [`Bundle::config_baseline`].
pub const CONFIG_SCHEME: u32 = 2;

/// What [`write_canonical`] does with absent values (`null`, `[]`, `{}`) inside objects.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Absent {
    /// Scheme 1 wrote them.
    Kept,
    /// Scheme 2: a setting that is not set is not there.
    Dropped,
}

fn absent(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(m) => m.values().all(absent),
        _ => false,
    }
}

/// JSON with every object's keys sorted, whatever map the build of serde_json uses.
fn write_canonical(v: &serde_json::Value, out: &mut String, mode: Absent) {
    use serde_json::Value;
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m
                .keys()
                .filter(|k| mode == Absent::Kept || !absent(&m[*k]))
                .collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out, mode);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out, mode);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;
    use futures::executor::block_on;

    /// A warm function reuses the bundle it checked while every text reads the same, and loads
    /// again the moment one byte of the config or of a template differs.
    #[test]
    fn the_cached_bundle_serves_unchanged_texts_and_any_change_is_loaded_again() {
        let cache = BundleCache::default();
        let mut source = crate::testing::source();
        let first = block_on(Bundle::load_cached(&source, &cache)).unwrap();
        // Mark the cached copy: a reuse returns the mark, a load does not.
        let mark = |cache: &BundleCache| {
            let mut last = cache.0.lock().unwrap();
            last.as_mut().unwrap().bundle.config.project = "cached".into();
        };
        mark(&cache);
        let again = block_on(Bundle::load_cached(&source, &cache)).unwrap();
        assert_eq!(again.config.project, "cached", "unchanged texts: reused");

        let web = source.0.get_mut("taskdefs/web.json").unwrap();
        *web = web.replace("\"essential\": true", "\"essential\" : true");
        let after_template = block_on(Bundle::load_cached(&source, &cache)).unwrap();
        assert_eq!(
            after_template.config.project, first.config.project,
            "a template changed"
        );

        mark(&cache);
        let toml = source.0.get_mut("harbormaster.toml").unwrap();
        toml.push_str("\n# a comment\n");
        let after_config = block_on(Bundle::load_cached(&source, &cache)).unwrap();
        assert_eq!(
            after_config.config.project, first.config.project,
            "the config changed"
        );

        // A broken template is an error, not the last good bundle.
        source.0.insert("taskdefs/web.json".into(), "{".into());
        assert!(block_on(Bundle::load_cached(&source, &cache)).is_err());
    }
}

#[cfg(test)]
mod fingerprint_tests {
    /// Finding 8: a new setting, defaulted, must not move the fingerprint of a config that does
    /// not use it (an agent upgrade would release every service).
    #[test]
    fn finding_8_a_new_defaulted_setting_does_not_move_the_fingerprint() {
        let canonical = |v: serde_json::Value| {
            let mut out = String::new();
            super::write_canonical(&v, &mut out, super::Absent::Dropped);
            out
        };
        let before = serde_json::json!({"service": {"capacity": "fargate", "exec": true}});
        let after = serde_json::json!({"service": {"capacity": "fargate", "exec": true,
            "new_setting": null, "new_list": [], "new_table": {}}});
        assert_eq!(canonical(before), canonical(after));
    }
}

#[cfg(test)]
mod size_tests {
    use super::*;

    /// Finding 12: a 39 MB template passed validate and publish, and every function that loaded
    /// it ran out of memory. A template over ECS's 64 KiB, or a config over its cap, is refused
    /// naming the file, before anything else reads it.
    #[test]
    fn finding_12_a_file_over_its_cap_is_refused_naming_it() {
        let mut source = crate::testing::source();
        let web = source.0.get_mut("taskdefs/web.json").unwrap();
        *web = web.replace(
            "\"essential\": true",
            &format!(
                "\"essential\": true, \"x\": \"{}\"",
                "a".repeat(MAX_TEMPLATE_BYTES)
            ),
        );
        let e = futures::executor::block_on(Bundle::load(&source)).unwrap_err();
        assert!(
            matches!(&e, BundleError::TooLarge { location, .. } if location == "taskdefs/web.json"),
            "{e}"
        );

        let mut source = crate::testing::source();
        let toml = source.0.get_mut("harbormaster.toml").unwrap();
        toml.push_str(&format!("\n# {}\n", "a".repeat(MAX_CONFIG_BYTES)));
        let e = futures::executor::block_on(Bundle::load(&source)).unwrap_err();
        assert!(
            matches!(&e, BundleError::TooLarge { location, .. } if location == "harbormaster.toml"),
            "{e}"
        );
    }
}

#[cfg(test)]
mod exec_tests {
    use super::*;
    use futures::executor::block_on;

    /// Issue 33, item 7: `enable_execute_command` with a template that names no task role is
    /// refused when the bundle loads (`validate`, `publish`, every function), naming the file,
    /// the field and the setting; with a task role it loads.
    #[test]
    fn item_7_exec_without_a_task_role_is_refused_naming_the_template_field() {
        let config = crate::testing::CONFIG.replace(
            "[services.web.environments.dev]\n",
            "enable_execute_command = true\n[services.web.environments.dev]\n",
        );
        let source = crate::testing::source_of(&config);
        let err = block_on(Bundle::load(&source)).unwrap_err().to_string();
        assert!(
            err.contains("taskRoleArn") && err.contains("enable_execute_command"),
            "{err}"
        );
        assert!(err.contains("web.json"), "{err}");
        let mut with_role = crate::testing::source_of(&config);
        let web = with_role.0.get_mut("taskdefs/web.json").unwrap();
        *web = web.replacen(
            "\"cpu\"",
            "\"taskRoleArn\": \"arn:aws:iam::${account}:role/booking-${env}-task\", \"cpu\"",
            1,
        );
        block_on(Bundle::load(&with_role)).unwrap();
    }
}
