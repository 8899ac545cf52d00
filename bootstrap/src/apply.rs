//! `plan` and `apply`: the project's stack, then the environment's, each as a change set.
//! `plan` reads the change set and discards it (a stack that does not exist yet is planned
//! from its template, with no call but DescribeStacks); `apply` executes the change set it
//! showed, unless it would replace what holds data and `--allow-replace` was not given.

use anyhow::{bail, Result};
use serde::Serialize;
use serde_json::Value;

use crate::changes::StackPlan;
use crate::cloud::{Cloud, Event};
use crate::spec::Spec;
use crate::stacks;

/// The stacks a verb works on, in the order they are applied: the project's (its exports are
/// the environment's imports), then the environment's unless `project_only`.
pub fn targets(spec: &Spec, project_only: bool) -> Vec<(String, Value)> {
    let (project, environment) = stacks::stack_names(spec);
    let mut out = vec![(project, stacks::project(spec))];
    if !project_only {
        out.push((environment, stacks::environment(spec)));
    }
    out
}

/// What happened to one stack in an `apply`.
#[derive(Debug, Clone, Serialize)]
pub struct Applied {
    #[serde(flatten)]
    pub plan: StackPlan,
    /// The stack's status after the execution; `None` when nothing changed.
    pub status: Option<String>,
}

/// A failed creation leaves a stack in ROLLBACK_COMPLETE, which CloudFormation only deletes:
/// it holds nothing, so it is planned (and applied) as a stack to create.
const FAILED_CREATE: &str = "ROLLBACK_COMPLETE";

async fn exists(cloud: &Cloud, stack: &str) -> Result<Option<String>> {
    let status = cloud.stack_status(stack).await?;
    if let Some(s) = &status {
        workable(stack, s)?;
    }
    Ok(status.filter(|s| s != "REVIEW_IN_PROGRESS"))
}

/// Whether a stack in `status` takes a change set now, and what to do when it does not.
fn workable(stack: &str, status: &str) -> Result<()> {
    if status.ends_with("_IN_PROGRESS") && status != "REVIEW_IN_PROGRESS" {
        bail!("stack {stack} is {status}: another change is under way; try again when it ends");
    }
    // CloudFormation could not roll a failed update back (a resource changed or deleted
    // outside it, say): no change set is accepted until the rollback is continued.
    if status == "UPDATE_ROLLBACK_FAILED" {
        bail!(
            "stack {stack} is UPDATE_ROLLBACK_FAILED: CloudFormation could not roll back its last update. Fix the resource its events name (harbormaster-bootstrap's last apply printed it), then run `aws cloudformation continue-update-rollback --stack-name {stack}` (`--resources-to-skip` for one that cannot be fixed) and apply again; nothing was changed"
        );
    }
    Ok(())
}

/// Each target's pending change. Makes no change to any stack.
pub async fn plan(cloud: &Cloud, spec: &Spec, project_only: bool) -> Result<Vec<StackPlan>> {
    let mut plans = Vec::new();
    for (stack, template) in targets(spec, project_only) {
        let plan = match exists(cloud, &stack).await?.as_deref() {
            None | Some(FAILED_CREATE) => StackPlan::create(&stack, &template),
            Some(_) => match cloud.change_set(&stack, &template, true).await? {
                Some(pending) => {
                    let plan = pending.plan.clone();
                    cloud.discard(pending).await?;
                    plan
                }
                None => StackPlan { stack, exists: true, changes: Vec::new() },
            },
        };
        plans.push(plan);
    }
    Ok(plans)
}

/// How `apply` reports as it goes: each stack's plan before it runs, then its events.
pub trait Progress {
    fn planned(&mut self, plan: &StackPlan);
    fn event(&mut self, stack: &str, event: &Event);
    fn note(&mut self, line: &str);
}

/// Applies each target in turn; stops at the first that fails or is refused.
pub async fn apply(
    cloud: &Cloud,
    spec: &Spec,
    project_only: bool,
    allow_replace: bool,
    progress: &mut dyn Progress,
) -> Result<Vec<Applied>> {
    let mut applied = Vec::new();
    for (stack, template) in targets(spec, project_only) {
        let mut status = exists(cloud, &stack).await?;
        if status.as_deref() == Some(FAILED_CREATE) {
            progress.note(&format!(
                "stack {stack} failed its creation and holds nothing: deleting it first"
            ));
            cloud.delete_stack(&stack, &mut |e| progress.event(&stack, e)).await?.check(&stack)?;
            status = None;
        }
        if stack != stacks::stack_names(spec).0 && spec.database.is_some() {
            // Before the change set: the template names the parameter, CloudFormation reads it.
            let name = spec.password_parameter();
            if cloud.ensure_password(&name).await? {
                progress.note(&format!("wrote the database password as SecureString {name}"));
            }
        }
        let Some(pending) = cloud.change_set(&stack, &template, status.is_some()).await? else {
            let plan = StackPlan { stack, exists: true, changes: Vec::new() };
            progress.planned(&plan);
            applied.push(Applied { plan, status: None });
            continue;
        };
        progress.planned(&pending.plan);
        let refused: Vec<String> = (pending.plan.data_losses().iter())
            .map(|c| format!("{} ({})", c.logical_id, c.resource_type))
            .collect();
        if !refused.is_empty() && !allow_replace {
            cloud.discard(pending).await?;
            bail!(
                "stack {stack}: this change removes or replaces {}, and that loses what they hold (a final snapshot is a copy, not the live data); nothing was changed. Apply again with --allow-replace if that is meant",
                refused.join(", ")
            );
        }
        let plan = pending.plan.clone();
        let status =
            cloud.execute(pending, &mut |e| progress.event(&stack, e)).await?.check(&stack)?;
        applied.push(Applied { plan, status: Some(status) });
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    /// Issue 32, finding 6: a stack in UPDATE_ROLLBACK_FAILED got CloudFormation's bare
    /// refusal of the change set; the way out is ContinueUpdateRollback, and apply says so.
    #[test]
    fn finding_6_a_stack_whose_rollback_failed_says_how_to_continue_it() {
        let err = super::workable("booking-dev", "UPDATE_ROLLBACK_FAILED").unwrap_err();
        let said = err.to_string();
        assert!(said.contains("continue-update-rollback --stack-name booking-dev"), "{said}");
        assert!(super::workable("booking-dev", "UPDATE_IN_PROGRESS").is_err());
        assert!(super::workable("booking-dev", "UPDATE_COMPLETE").is_ok());
        assert!(super::workable("booking-dev", "REVIEW_IN_PROGRESS").is_ok());
    }
}
