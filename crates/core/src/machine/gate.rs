//! The environment's gate and what the agent remembers of its own releases: what an
//! environment does not let happen by itself (`auto_deploy`, `config_releases`, `self_heal`,
//! `promote_from`), a config version an alarm rolled back or whose release failed with this
//! image, and a new image held while git's config is one an alarm rolled back. Admission
//! (`admission.rs`) asks these; nothing else starts a release.

use super::admission::Admission;
use super::context::Ctx;
use super::Outcome;
use crate::config::ConfigReleases;
use crate::state::{Release, Trigger};

impl Ctx<'_> {
    /// The environment's gate: what it does not let happen by itself is not done (said in the
    /// report and, for config, in `status`; nothing is sent each minute).
    pub(super) fn gate_closed(&self, admission: Admission) -> Option<Outcome> {
        let env = &self.s.environment;
        let gate = self.policy.gate;
        let reason = match admission {
            Admission::Pushed | Admission::Reconciled if !gate.pushes => format!(
                "auto_deploy = false in `{env}`: pushes deploy here only when a person or the pipeline asks"
            ),
            Admission::Config if gate.config == ConfigReleases::Manual => {
                let version = self.policy.config_version.as_deref().unwrap_or_default();
                format!(
                    "git's config {} is pending: config_releases = \"manual\" in `{env}`; `harbormaster deploy --env {env} --service {} --config-only` releases it",
                    super::config::short_version(version),
                    self.s.service
                )
            }
            Admission::Heal if !gate.self_heal => format!("self_heal is off in `{env}`"),
            _ => return None,
        };
        Some(Outcome::Ignored { reason })
    }

    /// A config release of the image that runs: not a version an alarm rolled back, nor one
    /// whose release with this image failed (the team heard of that once, when it failed).
    pub(super) fn refuse_config(&mut self, release: &Release) -> Option<Outcome> {
        let version = release.trigger.config_version()?;
        let short = super::config::short_version(version);
        if let Some(source) = &self.policy.promote_from {
            let reason = match &self.promotion {
                Some(super::Promotion::Succeeded) => None,
                Some(super::Promotion::NotYet(why)) => Some(why.clone()),
                None => Some(format!(
                    "whether git's config succeeded in `{source}` is not known yet (promote_from)"
                )),
            };
            if let Some(reason) = reason {
                return Some(Outcome::Ignored { reason });
            }
        }
        if let Some(bad) = self.bad_config(version) {
            let reason = format!("git's config {short} was rolled back ({}); it is released again only when git changes or a person deploys it", bad.why);
            return Some(Outcome::Ignored { reason });
        }
        let failed = self.s.failed(&release.image.digest, version)?;
        let reason = format!(
            "git's config {short} failed with {} at {} ({}); it is released again only when git changes or a person deploys it",
            release.image.label(),
            failed.at.format("%Y-%m-%d %H:%M UTC"),
            failed.why
        );
        Some(Outcome::Ignored { reason })
    }

    /// Why a new image may not start now: git's config for this target is one an alarm rolled
    /// back, and the image would carry it (then the next alarm would blame the image). A
    /// person's `--force` deploys it anyway; a newer config in git releases it.
    pub(super) fn held_by_config(&self, release: &Release) -> Option<String> {
        let carries_git = matches!(
            release.trigger,
            Trigger::Push { .. } | Trigger::Reconcile | Trigger::Request { .. }
        );
        let version = self.policy.config_version.as_deref()?;
        let bad = self
            .bad_config(version)
            .filter(|_| carries_git && !release.force)?;
        Some(format!(
            "held: git's config {} was rolled back ({}); {} deploys when git changes, or with --force",
            super::config::short_version(version),
            bad.why,
            release.image.label()
        ))
    }
}
