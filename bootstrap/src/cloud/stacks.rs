//! CloudFormation: a stack's status, a change set made and read (the plan), executed with its
//! events as progress, a stack deleted, drift detected, and who imports an export.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, StackDriftDetectionStatus,
};
use serde::Serialize;

use super::{describe, missing, Cloud};
use crate::changes::{Action, Change, Replacement, StackPlan};

/// How often a stack in progress is asked again (CloudFormation's own waiters use 30 s; a
/// person watching wants sooner).
const POLL: Duration = Duration::from_secs(2);

/// A change set made and read, not yet executed or discarded.
pub struct Pending {
    pub plan: StackPlan,
    change_set: String,
}

/// One stack event, as progress.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub reason: String,
}

impl Event {
    pub fn failed(&self) -> bool {
        self.status.ends_with("FAILED")
    }
}

impl Drift {
    /// Modified or deleted outside the stack (IN_SYNC and NOT_CHECKED are not drift).
    pub fn drifted(&self) -> bool {
        self.status == "MODIFIED" || self.status == "DELETED"
    }
}

/// How an execution or a delete ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: String,
    /// The first resource that failed, and why (the one to read; the rest are its
    /// consequences: cancelled creates, the rollback).
    pub first_failure: Option<Event>,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        matches!(
            self.status.as_str(),
            "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "DELETE_COMPLETE" | "IMPORT_COMPLETE"
        )
    }
}

/// One resource's drift: its status and the property paths that differ (paths, not values:
/// a value may be a secret).
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub logical_id: String,
    pub resource_type: String,
    pub status: String,
    pub properties: Vec<String>,
}

fn change(c: &aws_sdk_cloudformation::types::ResourceChange) -> Change {
    use aws_sdk_cloudformation::types::Replacement as R;
    let action = match c.action() {
        Some(ChangeAction::Add) => Action::Add,
        Some(ChangeAction::Modify) => Action::Modify,
        Some(ChangeAction::Remove) => Action::Remove,
        _ => Action::Other,
    };
    let mut properties: Vec<String> = (c.details().iter())
        .filter_map(|d| d.target().and_then(|t| t.name()))
        .map(str::to_owned)
        .collect();
    properties.dedup();
    Change {
        action,
        logical_id: c.logical_resource_id().unwrap_or_default().to_owned(),
        resource_type: c.resource_type().unwrap_or_default().to_owned(),
        physical_id: c.physical_resource_id().unwrap_or_default().to_owned(),
        replacement: match c.replacement() {
            Some(R::True) => Replacement::Yes,
            Some(R::Conditional) => Replacement::Conditional,
            _ => Replacement::No,
        },
        properties,
    }
}

impl Cloud {
    /// The stack's status, `None` when there is no such stack (or only a deleted one).
    pub async fn stack_status(&self, name: &str) -> Result<Option<String>> {
        match self.cf.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok(out
                .stacks()
                .first()
                .and_then(|s| s.stack_status())
                .map(|s| s.as_str().to_owned())
                .filter(|s| s != "DELETE_COMPLETE")),
            Err(e) if missing(&e, &["does not exist"]) => Ok(None),
            Err(e) => bail!("DescribeStacks {name}: {}", describe(&e)),
        }
    }

    /// Makes a change set of `template` for `stack` and reads it. `None`: nothing would
    /// change (the change set is deleted again).
    pub async fn change_set(
        &self,
        stack: &str,
        template: &serde_json::Value,
        exists: bool,
    ) -> Result<Option<Pending>> {
        let name = format!(
            "harbormaster-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
        );
        self.cf
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .change_set_type(if exists {
                ChangeSetType::Update
            } else {
                ChangeSetType::Create
            })
            .template_body(template.to_string())
            .capabilities(Capability::CapabilityNamedIam)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("CreateChangeSet {stack}: {}", describe(&e)))?;
        let mut changes = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .cf
                .describe_change_set()
                .stack_name(stack)
                .change_set_name(&name)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeChangeSet {stack}: {}", describe(&e)))?;
            match out.status() {
                Some(ChangeSetStatus::CreateComplete) => {}
                Some(ChangeSetStatus::Failed) => {
                    let reason = out.status_reason().unwrap_or_default().to_owned();
                    // CloudFormation's answer to a template that changes nothing.
                    if reason.contains("didn't contain changes")
                        || reason.contains("No updates are to be performed")
                    {
                        self.discard_named(stack, &name, exists).await?;
                        return Ok(None);
                    }
                    self.discard_named(stack, &name, exists).await?;
                    bail!("the change set of {stack} failed: {reason}");
                }
                _ => {
                    tokio::time::sleep(POLL / 4).await;
                    continue;
                }
            }
            changes.extend(
                (out.changes().iter())
                    .filter_map(|c| c.resource_change())
                    .map(change),
            );
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(Some(Pending {
            plan: StackPlan {
                stack: stack.to_owned(),
                exists,
                changes,
            },
            change_set: name,
        }))
    }

    /// Drops a change set that will not be executed (and the empty stack a change set for a
    /// new stack leaves in REVIEW_IN_PROGRESS).
    pub async fn discard(&self, pending: Pending) -> Result<()> {
        let p = pending.plan;
        self.discard_named(&p.stack, &pending.change_set, p.exists)
            .await
    }

    async fn discard_named(&self, stack: &str, change_set: &str, exists: bool) -> Result<()> {
        if !exists {
            // A stack in REVIEW_IN_PROGRESS holds nothing but the change set.
            self.cf
                .delete_stack()
                .stack_name(stack)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DeleteStack {stack}: {}", describe(&e)))?;
            return Ok(());
        }
        self.cf
            .delete_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteChangeSet {stack}: {}", describe(&e)))?;
        Ok(())
    }

    /// Executes the change set and waits for the stack, handing each new event to `progress`.
    pub async fn execute(
        &self,
        pending: Pending,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Outcome> {
        let stack = pending.plan.stack.clone();
        let seen = self.newest_event(&stack).await?;
        self.cf
            .execute_change_set()
            .stack_name(&stack)
            .change_set_name(&pending.change_set)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ExecuteChangeSet {stack}: {}", describe(&e)))?;
        self.follow(&stack, seen, progress).await
    }

    /// Deletes the stack and waits for it.
    pub async fn delete_stack(
        &self,
        stack: &str,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Outcome> {
        // Events of a deleted stack are read by its id: its name is free again at once.
        let id = (self.cf.describe_stacks().stack_name(stack).send().await)
            .map_err(|e| anyhow::anyhow!("DescribeStacks {stack}: {}", describe(&e)))?
            .stacks()
            .first()
            .and_then(|s| s.stack_id())
            .context("DescribeStacks answered no stack")?
            .to_owned();
        let seen = self.newest_event(&id).await?;
        self.cf
            .delete_stack()
            .stack_name(&id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DeleteStack {stack}: {}", describe(&e)))?;
        self.follow(&id, seen, progress).await
    }

    async fn newest_event(&self, stack: &str) -> Result<Option<String>> {
        Ok(self
            .events_since(stack, None)
            .await?
            .last()
            .map(|(id, _)| id.clone()))
    }

    /// Events newer than `seen`, oldest first; with no `seen`, the newest alone.
    async fn events_since(&self, stack: &str, seen: Option<&str>) -> Result<Vec<(String, Event)>> {
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        'pages: loop {
            let out = (self.cf.describe_stack_events().stack_name(stack))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeStackEvents {stack}: {}", describe(&e)))?;
            for e in out.stack_events() {
                let id = e.event_id().unwrap_or_default();
                if Some(id) == seen {
                    break 'pages;
                }
                events.push((
                    id.to_owned(),
                    Event {
                        logical_id: e.logical_resource_id().unwrap_or_default().to_owned(),
                        resource_type: e.resource_type().unwrap_or_default().to_owned(),
                        status: (e.resource_status().map(|s| s.as_str().to_owned()))
                            .unwrap_or_default(),
                        reason: e.resource_status_reason().unwrap_or_default().to_owned(),
                    },
                ));
                if seen.is_none() {
                    break 'pages;
                }
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        events.reverse();
        Ok(events)
    }

    async fn follow(
        &self,
        stack: &str,
        mut seen: Option<String>,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Outcome> {
        let mut first_failure: Option<Event> = None;
        loop {
            let status = (self.cf.describe_stacks().stack_name(stack).send().await)
                .map_err(|e| anyhow::anyhow!("DescribeStacks {stack}: {}", describe(&e)))?
                .stacks()
                .first()
                .and_then(|s| s.stack_status())
                .map(|s| s.as_str().to_owned())
                .unwrap_or_default();
            for (id, event) in self.events_since(stack, seen.as_deref()).await? {
                if event.failed() && first_failure.is_none() {
                    first_failure = Some(event.clone());
                }
                progress(&event);
                seen = Some(id);
            }
            if !status.ends_with("IN_PROGRESS") {
                return Ok(Outcome {
                    status,
                    first_failure,
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// DetectStackDrift, waited for, and each resource's drift.
    pub async fn drift(&self, stack: &str) -> Result<Vec<Drift>> {
        let id = (self.cf.detect_stack_drift().stack_name(stack).send().await)
            .map_err(|e| anyhow::anyhow!("DetectStackDrift {stack}: {}", describe(&e)))?
            .stack_drift_detection_id()
            .unwrap_or_default()
            .to_owned();
        loop {
            let out = (self.cf.describe_stack_drift_detection_status())
                .stack_drift_detection_id(&id)
                .send()
                .await
                .map_err(|e| {
                    anyhow::anyhow!("DescribeStackDriftDetectionStatus: {}", describe(&e))
                })?;
            match out.detection_status() {
                Some(StackDriftDetectionStatus::DetectionInProgress) => {
                    tokio::time::sleep(POLL).await
                }
                Some(StackDriftDetectionStatus::DetectionFailed) => bail!(
                    "drift detection of {stack} failed: {}",
                    out.detection_status_reason().unwrap_or_default()
                ),
                _ => break,
            }
        }
        let mut drifts = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = (self.cf.describe_stack_resource_drifts().stack_name(stack))
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("DescribeStackResourceDrifts: {}", describe(&e)))?;
            for d in out.stack_resource_drifts() {
                drifts.push(Drift {
                    logical_id: d.logical_resource_id().unwrap_or_default().to_owned(),
                    resource_type: d.resource_type().unwrap_or_default().to_owned(),
                    status: (d
                        .stack_resource_drift_status()
                        .map(|s| s.as_str().to_owned()))
                    .unwrap_or_default(),
                    properties: (d.property_differences().iter())
                        .filter_map(|p| p.property_path().map(str::to_owned))
                        .collect(),
                });
            }
            token = out.next_token().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        drifts.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        Ok(drifts)
    }

    /// The stacks that import `export` (none when nothing does, or the export is gone).
    pub async fn importers(&self, export: &str) -> Result<Vec<String>> {
        match self.cf.list_imports().export_name(export).send().await {
            Ok(out) => Ok(out.imports().to_vec()),
            Err(e) if missing(&e, &["not imported", "does not exist", "not exported"]) => {
                Ok(Vec::new())
            }
            Err(e) => bail!("ListImports {export}: {}", describe(&e)),
        }
    }

    /// The template the stack runs now (which the config may have moved on from).
    pub async fn template(&self, stack: &str) -> Result<serde_json::Value> {
        let out = (self.cf.get_template().stack_name(stack).send().await)
            .map_err(|e| anyhow::anyhow!("GetTemplate {stack}: {}", describe(&e)))?;
        serde_json::from_str(out.template_body().unwrap_or_default())
            .with_context(|| format!("the template of {stack} is not the JSON this tool writes"))
    }

    /// The physical ids of the stack's resources, by logical id.
    pub async fn resources(&self, stack: &str) -> Result<Vec<(String, String, String)>> {
        let out = (self
            .cf
            .describe_stack_resources()
            .stack_name(stack)
            .send()
            .await)
            .map_err(|e| anyhow::anyhow!("DescribeStackResources {stack}: {}", describe(&e)))?;
        Ok(out
            .stack_resources()
            .iter()
            .map(|r| {
                (
                    r.logical_resource_id().unwrap_or_default().to_owned(),
                    r.resource_type().unwrap_or_default().to_owned(),
                    r.physical_resource_id().unwrap_or_default().to_owned(),
                )
            })
            .collect())
    }
}
