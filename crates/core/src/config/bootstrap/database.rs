//! `[environments.<env>.bootstrap.database]`: the environment's PostgreSQL, on unless
//! `enabled = false`. The password is not a setting: it is generated once and kept only in SSM.

use serde::Deserialize;

use super::listed;
use crate::config::diagnostics::Collector;

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDatabase {
    enabled: Option<bool>,
    engine_version: Option<String>,
    instance_class: Option<String>,
    allocated_storage_gb: Option<u32>,
    name: Option<String>,
    username: Option<String>,
    deletion_protection: Option<bool>,
    backup_retention_days: Option<u32>,
}

/// PostgreSQL major versions this tool provisions (parameter group family `postgres<major>`).
pub const POSTGRES_MAJORS: &[u32] = &[14, 15, 16, 17];

/// The database's desired settings. The password is not among them: it is generated once and
/// kept only in SSM (see [`super::Spec::password_parameter`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Database {
    pub engine_version: String,
    pub major: u32,
    pub instance_class: String,
    pub allocated_storage_gb: u32,
    pub name: String,
    pub username: String,
    pub deletion_protection: bool,
    pub backup_retention_days: u32,
}

impl Database {
    /// `None` when the environment has no database (`enabled = false`).
    pub(super) fn from_raw(
        c: &mut Collector<'_>,
        field: &str,
        db: &RawDatabase,
        project: &str,
    ) -> Option<Self> {
        if !db.enabled.unwrap_or(true) {
            return None;
        }
        let engine_version = db.engine_version.clone().unwrap_or_else(|| "16.9".into());
        let major = (engine_version.split('.').next())
            .and_then(|m| m.parse::<u32>().ok())
            .unwrap_or(0);
        if !POSTGRES_MAJORS.contains(&major) {
            c.err(
                format!("{field}.engine_version"),
                format!(
                    "PostgreSQL `{engine_version}` is not allowed; allowed majors: {}",
                    listed(POSTGRES_MAJORS)
                ),
            );
        }
        let allocated_storage_gb = db.allocated_storage_gb.unwrap_or(20);
        if !(20..=65536).contains(&allocated_storage_gb) {
            c.err(
                format!("{field}.allocated_storage_gb"),
                "allowed: 20 to 65536",
            );
        }
        let (name, username) = identifiers(c, field, db, project);
        let backup_retention_days = db.backup_retention_days.unwrap_or(7);
        if backup_retention_days > 35 {
            c.err(format!("{field}.backup_retention_days"), "allowed: 0 to 35");
        }
        Some(Database {
            engine_version,
            major,
            instance_class: (db.instance_class.clone()).unwrap_or_else(|| "db.t4g.micro".into()),
            allocated_storage_gb,
            name,
            username,
            deletion_protection: db.deletion_protection.unwrap_or(true),
            backup_retention_days,
        })
    }
}

/// The database's name and master user: PostgreSQL identifiers, the project's name by default;
/// the user not one RDS reserves.
fn identifiers(
    c: &mut Collector<'_>,
    field: &str,
    db: &RawDatabase,
    project: &str,
) -> (String, String) {
    let ident_ok = |s: &str| {
        !s.is_empty()
            && s.len() <= 63
            && s.starts_with(|c: char| c.is_ascii_alphabetic())
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    };
    let default = || project.replace('-', "_");
    let name = db.name.clone().unwrap_or_else(default);
    if !ident_ok(&name) {
        c.err(
            format!("{field}.name"),
            "letters, digits and `_`, starting with a letter",
        );
    }
    let username = db.username.clone().unwrap_or_else(default);
    if !ident_ok(&username) || username == "postgres" || username == "rdsadmin" {
        c.err(
            format!("{field}.username"),
            "letters, digits and `_`, starting with a letter; not a reserved name",
        );
    }
    (name, username)
}
