//! `destroy --env E` and `destroy --project`: checked before anything is deleted, shown
//! before it is done (without `--yes` nothing is), and never more than the stack named.
//!
//! An environment's destroy deletes its stack only: the project's stack (repositories, state
//! bucket, topic) is another stack, which it never touches. It refuses while services run in
//! the cluster (ECS refuses DeleteCluster then, so the delete would stop halfway). The
//! database's final snapshot comes from its `Snapshot` deletion policy; `--skip-final-snapshot`
//! first changes that policy to `Delete` (a change set of the policy alone).
//!
//! The project's destroy refuses while any stack imports its exports (an environment stack).
//! The repositories, the bucket and the topic are `Retain`ed: they outlive the stack unless
//! `--delete-data`, which deletes them after the stack, as counted in the preview.

use anyhow::{bail, Result};
use serde::Serialize;

use crate::apply::Progress;
use crate::cloud::{Cloud, Data};
use crate::spec::Spec;
use crate::stacks;

/// What a destroy deletes and keeps, shown before it is done.
#[derive(Debug, Clone, Serialize)]
pub struct Preview {
    pub stack: String,
    /// False: there is nothing to destroy.
    pub exists: bool,
    /// The stack's resources: `(logical id, type, physical id)`.
    pub deletes: Vec<(String, String, String)>,
    /// What outlives the destroy, in words.
    pub keeps: Vec<String>,
    /// With `--delete-data`: the retained stores deleted after the stack, counted.
    pub data: Option<Data>,
}

/// What an environment's stack runs, from its template as deployed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Live {
    /// The ECS cluster's name.
    cluster: Option<String>,
    /// The database has deletion protection: deleting the stack would stop half way.
    protected_database: bool,
}

impl Live {
    fn of(template: &serde_json::Value) -> Live {
        let resources = template["Resources"].as_object().cloned().unwrap_or_default();
        let of_type = |kind: &str| resources.values().find(|r| r["Type"] == kind).cloned();
        let cluster = of_type("AWS::ECS::Cluster")
            .and_then(|c| c["Properties"]["ClusterName"].as_str().map(str::to_owned));
        let protected_database = of_type("AWS::RDS::DBInstance")
            .is_some_and(|d| d["Properties"]["DeletionProtection"] == serde_json::json!(true));
        Live { cluster, protected_database }
    }
}

/// Why a destroy may not go ahead: names what stands in the way.
fn refuse(what: &str, names: &[String], remedy: &str) -> anyhow::Error {
    anyhow::anyhow!("{what}: {}; nothing was deleted. {remedy}", names.join(", "))
}

pub async fn preview_environment(
    cloud: &Cloud,
    spec: &Spec,
    skip_final_snapshot: bool,
) -> Result<Preview> {
    let (project, stack) = stacks::stack_names(spec);
    let exists = cloud.stack_status(&stack).await?.is_some();
    // What the stack runs, not what the config says now: a flag flipped or a cluster renamed
    // in git and not applied would let the delete stop half way.
    let live = if exists { Live::of(&cloud.template(&stack).await?) } else { Live::default() };
    if live.protected_database {
        bail!(
            "the database of {stack} has deletion protection (as applied; the config's environments.{}.bootstrap.database.deletion_protection must be false and applied first); nothing was deleted",
            spec.environment
        );
    }
    let cluster = live.cluster.as_deref().unwrap_or(&spec.cluster);
    let running = cloud.services_in(cluster).await?;
    if !running.is_empty() {
        return Err(refuse(
            &format!("services still run in cluster {cluster}"),
            &running,
            "Delete them first: harbormaster service delete --env E --service S",
        ));
    }
    let deletes = if exists { cloud.resources(&stack).await? } else { Vec::new() };
    let mut keeps = vec![format!(
        "stack {project}: the repositories with their images, the state bucket with every environment's state, the topic"
    )];
    if spec.database.is_some() {
        keeps.push(if skip_final_snapshot {
            "no database snapshot (--skip-final-snapshot); the password parameter is deleted".into()
        } else {
            format!(
                "a final snapshot of the database, and its password at {} (a restore needs it)",
                spec.password_parameter()
            )
        });
    }
    Ok(Preview { stack, exists, deletes, keeps, data: None })
}

pub async fn environment(
    cloud: &Cloud,
    spec: &Spec,
    skip_final_snapshot: bool,
    progress: &mut dyn Progress,
) -> Result<()> {
    let (_, stack) = stacks::stack_names(spec);
    if skip_final_snapshot && spec.database.is_some() {
        // The running template, not the config's: a destroy applies no pending change.
        let mut template = cloud.template(&stack).await?;
        template["Resources"]["Database"]["DeletionPolicy"] = "Delete".into();
        if let Some(pending) = cloud.change_set(&stack, &template, true).await? {
            progress.planned(&pending.plan);
            cloud.execute(pending, &mut |e| progress.event(&stack, e)).await?.check(&stack)?;
        }
    }
    cloud.delete_stack(&stack, &mut |e| progress.event(&stack, e)).await?.check(&stack)?;
    if skip_final_snapshot && spec.database.is_some() {
        cloud.delete_parameter(&spec.password_parameter()).await?;
    }
    Ok(())
}

pub async fn preview_project(cloud: &Cloud, spec: &Spec, delete_data: bool) -> Result<Preview> {
    let (stack, _) = stacks::stack_names(spec);
    let mut importers = Vec::new();
    for (_, export) in stacks::project_exports(spec) {
        importers.extend(cloud.importers(&export).await?);
    }
    importers.sort();
    importers.dedup();
    if !importers.is_empty() {
        return Err(refuse(
            &format!("environment stacks still use {stack}"),
            &importers,
            "Destroy each environment first: harbormaster-bootstrap destroy --env E --yes",
        ));
    }
    let exists = cloud.stack_status(&stack).await?.is_some();
    let deletes = if exists { cloud.resources(&stack).await? } else { Vec::new() };
    let of = |kind: &str| -> Vec<String> {
        (deletes.iter().filter(|(_, t, _)| t == kind)).map(|(_, _, id)| id.clone()).collect()
    };
    // What the stack made; once it is gone (a destroy without --delete-data before), what
    // the config names.
    let (repositories, bucket, topic) = if exists {
        let one = |kind: &str| of(kind).pop().unwrap_or_default();
        (of("AWS::ECR::Repository"), one("AWS::S3::Bucket"), one("AWS::SNS::Topic"))
    } else {
        (spec.repositories.clone(), spec.state_bucket.clone(), spec.topic_arn.clone())
    };
    let data = cloud.data(&repositories, &bucket, &topic).await?;
    if delete_data && !exists {
        // Named by the config, not recorded by the project's stack: deleted only if tagged as
        // this project's (the config may name another team's bucket or topic).
        let mut foreign = Vec::new();
        for store in &data.stores {
            if cloud.project_tag(store).await?.as_deref() != Some(spec.project.as_str()) {
                foreign.push(store.to_string());
            }
        }
        if !foreign.is_empty() {
            return Err(refuse(
                &format!("not tagged harbormaster:project = {}", spec.project),
                &foreign,
                "The project's stacks tag what they make; these were not made by them (or lost their tags), so --delete-data leaves them. Delete them yourself if they are yours",
            ));
        }
    }
    let (keeps, data) = if delete_data {
        (Vec::new(), Some(data))
    } else {
        let kept = (data.stores.iter())
            .map(|s| format!("{s}: retained (--delete-data deletes it)"))
            .collect();
        (kept, None)
    };
    Ok(Preview { stack, exists, deletes, keeps, data })
}

pub async fn project(cloud: &Cloud, preview: &Preview, progress: &mut dyn Progress) -> Result<()> {
    let stack = &preview.stack;
    if preview.exists {
        cloud.delete_stack(stack, &mut |e| progress.event(stack, e)).await?.check(stack)?;
    }
    if let Some(data) = &preview.data {
        cloud.delete_data(data).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Live;

    /// Issue 32, finding 6: `destroy --env` checked deletion protection and running services
    /// against the config; the stack as applied is what CloudFormation deletes.
    #[test]
    fn finding_6_what_the_stack_runs_is_read_from_its_template() {
        let template = serde_json::json!({"Resources": {
            "Cluster": {"Type": "AWS::ECS::Cluster", "Properties": {"ClusterName": "booking-dev-old"}},
            "Database": {"Type": "AWS::RDS::DBInstance", "Properties": {"DeletionProtection": true}}
        }});
        let live = Live::of(&template);
        assert_eq!(live.cluster.as_deref(), Some("booking-dev-old"));
        assert!(live.protected_database);
        let unprotected = serde_json::json!({"Resources": {
            "Database": {"Type": "AWS::RDS::DBInstance", "Properties": {"DeletionProtection": false}}
        }});
        assert_eq!(Live::of(&unprotected), Live::default());
    }
}
