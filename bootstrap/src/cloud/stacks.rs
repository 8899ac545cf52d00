//! CloudFormation: a stack's status, a change set made and read (the plan), executed with its
//! events as progress, a stack deleted, drift detected, and who imports an export.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use aws_sdk_cloudformation::types::{
    Capability, ChangeAction, ChangeSetStatus, ChangeSetType, PolicyAction, Replacement as R,
    ResourceChange, StackDriftDetectionStatus as Detection,
};
use serde::Serialize;

use super::{missing, Call, Cloud};
use crate::changes::{Action, Change, Policy, Replacement, StackPlan};

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

/// How an execution or a delete ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: String,
    /// The first resource that failed, and why (the one to read; the rest are its
    /// consequences: cancelled creates, the rollback).
    pub first_failure: Option<Event>,
}

impl Outcome {
    /// The final status when the stack got there; else an error naming the first resource
    /// that failed and why.
    pub fn check(self, stack: &str) -> Result<String> {
        let done = ["CREATE_COMPLETE", "UPDATE_COMPLETE", "DELETE_COMPLETE"];
        match (done.contains(&self.status.as_str()), self.first_failure) {
            (true, _) => Ok(self.status),
            (false, Some(e)) => bail!(
                "stack {stack}: {}; the first failure: {} ({}) {}: {}",
                self.status,
                e.logical_id,
                e.resource_type,
                e.status,
                e.reason
            ),
            (false, None) => bail!("stack {stack}: ended {}", self.status),
        }
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

impl Drift {
    /// Modified or deleted outside the stack (IN_SYNC and NOT_CHECKED are not drift).
    pub fn drifted(&self) -> bool {
        self.status == "MODIFIED" || self.status == "DELETED"
    }
}

/// A stack's drift: each resource's, and why the detection failed where it did (it fails when
/// one resource could not be checked; the others' results stand).
#[derive(Debug, Clone, Serialize)]
pub struct StackDrift {
    pub resources: Vec<Drift>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failed: Option<String>,
}

impl StackDrift {
    /// The resources CloudFormation could not check.
    pub fn unchecked(&self) -> Vec<&str> {
        let not_checked = self.resources.iter().filter(|d| d.status == "NOT_CHECKED");
        not_checked.map(|d| d.logical_id.as_str()).collect()
    }
}

fn text(s: Option<&str>) -> String {
    s.unwrap_or_default().to_owned()
}

fn change(c: &ResourceChange) -> Change {
    let action = match c.action() {
        Some(ChangeAction::Add) => Action::Add,
        Some(ChangeAction::Modify) => Action::Modify,
        Some(ChangeAction::Remove) => Action::Remove,
        _ => Action::Other,
    };
    let mut properties: Vec<String> = (c.details().iter())
        .filter_map(|d| d.target().and_then(|t| t.name()).map(str::to_owned))
        .collect();
    properties.dedup();
    let policy = c.policy_action().and_then(|p| match p {
        PolicyAction::Retain | PolicyAction::ReplaceAndRetain => Some(Policy::Retain),
        PolicyAction::Snapshot | PolicyAction::ReplaceAndSnapshot => Some(Policy::Snapshot),
        PolicyAction::Delete | PolicyAction::ReplaceAndDelete => Some(Policy::Delete),
        _ => None,
    });
    let replacement = match c.replacement() {
        Some(R::True) => Replacement::Yes,
        Some(R::Conditional) => Replacement::Conditional,
        _ => Replacement::No,
    };
    Change {
        action,
        logical_id: text(c.logical_resource_id()),
        resource_type: text(c.resource_type()),
        physical_id: text(c.physical_resource_id()),
        replacement,
        properties,
        policy,
    }
}

impl Cloud {
    /// The stack's status, `None` when there is no such stack (or only a deleted one).
    pub async fn stack_status(&self, name: &str) -> Result<Option<String>> {
        match self.cf.describe_stacks().stack_name(name).send().await {
            Ok(out) => Ok((out.stacks().first().and_then(|s| s.stack_status()))
                .map(|s| s.as_str().to_owned())
                .filter(|s| s != "DELETE_COMPLETE")),
            Err(e) if missing(&e, &["does not exist"]) => Ok(None),
            Err(e) => Err(e).call("DescribeStacks", name),
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
        let since_epoch = std::time::UNIX_EPOCH.elapsed().unwrap_or_default();
        let name = format!("harbormaster-{}", since_epoch.as_millis());
        let kind = if exists { ChangeSetType::Update } else { ChangeSetType::Create };
        (self.cf.create_change_set().stack_name(stack).change_set_name(&name))
            .change_set_type(kind)
            // A new stack adopts what a destroy retained under the names it gives (the
            // project's repositories, bucket and topic): CloudFormation imports a resource
            // with a custom name that exists instead of failing to create it (CloudFormation
            // User Guide, "Import AWS resources into a CloudFormation stack automatically").
            .import_existing_resources(!exists)
            .template_body(template.to_string())
            .capabilities(Capability::CapabilityNamedIam)
            .send()
            .await
            .call("CreateChangeSet", stack)?;
        let describe = || self.cf.describe_change_set().stack_name(stack).change_set_name(&name);
        loop {
            let out = describe().send().await.call("DescribeChangeSet", stack)?;
            match out.status() {
                Some(ChangeSetStatus::CreateComplete) => break,
                Some(ChangeSetStatus::Failed) => {
                    self.discard_named(stack, &name, exists).await?;
                    let reason = text(out.status_reason());
                    // CloudFormation's answer to a template that changes nothing.
                    let quiet = ["didn't contain changes", "No updates are to be performed"];
                    if quiet.iter().any(|q| reason.contains(q)) {
                        return Ok(None);
                    }
                    bail!("the change set of {stack} failed: {reason}");
                }
                _ => tokio::time::sleep(POLL / 4).await,
            }
        }
        let mut changes = Vec::new();
        let mut pages = describe().into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.call("DescribeChangeSet", stack)?;
            changes.extend(page.changes().iter().filter_map(|c| c.resource_change()).map(change));
        }
        let plan = StackPlan { stack: stack.to_owned(), exists, changes };
        Ok(Some(Pending { plan, change_set: name }))
    }

    /// Drops a change set that will not be executed (and the empty stack a change set for a
    /// new stack leaves in REVIEW_IN_PROGRESS).
    pub async fn discard(&self, pending: Pending) -> Result<()> {
        let p = pending.plan;
        self.discard_named(&p.stack, &pending.change_set, p.exists).await
    }

    async fn discard_named(&self, stack: &str, change_set: &str, exists: bool) -> Result<()> {
        if !exists {
            // A stack in REVIEW_IN_PROGRESS holds nothing but the change set.
            self.cf.delete_stack().stack_name(stack).send().await.call("DeleteStack", stack)?;
        } else {
            (self.cf.delete_change_set().stack_name(stack).change_set_name(change_set))
                .send()
                .await
                .call("DeleteChangeSet", stack)?;
        }
        Ok(())
    }

    /// Executes the change set and waits for the stack, handing each new event to `progress`.
    pub async fn execute(
        &self,
        pending: Pending,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Outcome> {
        let stack = pending.plan.stack;
        let seen = self.events_since(&stack, None).await?.pop().map(|(id, _)| id);
        (self.cf.execute_change_set().stack_name(&stack))
            .change_set_name(&pending.change_set)
            .send()
            .await
            .call("ExecuteChangeSet", &stack)?;
        self.follow(&stack, seen, progress).await
    }

    /// Deletes the stack and waits for it.
    pub async fn delete_stack(
        &self,
        stack: &str,
        progress: &mut dyn FnMut(&Event),
    ) -> Result<Outcome> {
        // Events of a deleted stack are read by its id: its name is free again at once.
        let out = self.cf.describe_stacks().stack_name(stack).send().await;
        let id =
            text(out.call("DescribeStacks", stack)?.stacks().first().and_then(|s| s.stack_id()));
        let seen = self.events_since(&id, None).await?.pop().map(|(id, _)| id);
        self.cf.delete_stack().stack_name(&id).send().await.call("DeleteStack", stack)?;
        self.follow(&id, seen, progress).await
    }

    /// Events newer than `seen`, oldest first; with no `seen`, the newest alone.
    async fn events_since(&self, stack: &str, seen: Option<&str>) -> Result<Vec<(String, Event)>> {
        let mut events = Vec::new();
        let mut pages = self.cf.describe_stack_events().stack_name(stack).into_paginator().send();
        'pages: while let Some(page) = pages.next().await {
            for e in page.call("DescribeStackEvents", stack)?.stack_events() {
                let id = text(e.event_id());
                if Some(id.as_str()) == seen {
                    break 'pages;
                }
                let status = e.resource_status().map(|s| s.as_str());
                events.push((
                    id,
                    Event {
                        logical_id: text(e.logical_resource_id()),
                        resource_type: text(e.resource_type()),
                        status: text(status),
                        reason: text(e.resource_status_reason()),
                    },
                ));
                if seen.is_none() {
                    break 'pages;
                }
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
            let out = self.cf.describe_stacks().stack_name(stack).send().await;
            let out = out.call("DescribeStacks", stack)?;
            let status = out.stacks().first().and_then(|s| s.stack_status());
            let status = text(status.map(|s| s.as_str()));
            for (id, event) in self.events_since(stack, seen.as_deref()).await? {
                if event.status.ends_with("FAILED") && first_failure.is_none() {
                    first_failure = Some(event.clone());
                }
                progress(&event);
                seen = Some(id);
            }
            if !status.ends_with("IN_PROGRESS") {
                return Ok(Outcome { status, first_failure });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// DetectStackDrift, waited for, and each resource's drift.
    pub async fn drift(&self, stack: &str) -> Result<StackDrift> {
        let out = self.cf.detect_stack_drift().stack_name(stack).send().await;
        let id = text(out.call("DetectStackDrift", stack)?.stack_drift_detection_id());
        let failed = loop {
            let out = (self.cf.describe_stack_drift_detection_status())
                .stack_drift_detection_id(&id)
                .send()
                .await
                .call("DescribeStackDriftDetectionStatus", stack)?;
            match out.detection_status() {
                Some(Detection::DetectionInProgress) => tokio::time::sleep(POLL).await,
                // Failed on some resource: the others' results stand, read below.
                Some(Detection::DetectionFailed) => {
                    break Some(text(out.detection_status_reason()))
                }
                _ => break None,
            }
        };
        let mut drifts = Vec::new();
        let mut pages =
            self.cf.describe_stack_resource_drifts().stack_name(stack).into_paginator().send();
        while let Some(page) = pages.next().await {
            for d in page.call("DescribeStackResourceDrifts", stack)?.stack_resource_drifts() {
                let status = d.stack_resource_drift_status().map(|s| s.as_str());
                let paths = d.property_differences().iter().map(|p| text(p.property_path()));
                drifts.push(Drift {
                    logical_id: text(d.logical_resource_id()),
                    resource_type: text(d.resource_type()),
                    status: text(status),
                    properties: paths.collect(),
                });
            }
        }
        drifts.sort_by(|a, b| a.logical_id.cmp(&b.logical_id));
        Ok(StackDrift { resources: drifts, failed })
    }

    /// The stacks that import `export` (none when nothing does, or the export is gone).
    pub async fn importers(&self, export: &str) -> Result<Vec<String>> {
        match self.cf.list_imports().export_name(export).send().await {
            Ok(out) => Ok(out.imports().to_vec()),
            Err(e) if missing(&e, &["not imported", "does not exist", "not exported"]) => {
                Ok(Vec::new())
            }
            Err(e) => Err(e).call("ListImports", export),
        }
    }

    /// The template the stack runs now (which the config may have moved on from).
    pub async fn template(&self, stack: &str) -> Result<serde_json::Value> {
        let out =
            self.cf.get_template().stack_name(stack).send().await.call("GetTemplate", stack)?;
        serde_json::from_str(out.template_body().unwrap_or_default())
            .with_context(|| format!("the template of {stack} is not the JSON this tool writes"))
    }

    /// The stack's resources: `(logical id, type, physical id)`.
    pub async fn resources(&self, stack: &str) -> Result<Vec<(String, String, String)>> {
        let out = self.cf.describe_stack_resources().stack_name(stack).send().await;
        let out = out.call("DescribeStackResources", stack)?;
        let row = |r: &aws_sdk_cloudformation::types::StackResource| {
            (text(r.logical_resource_id()), text(r.resource_type()), text(r.physical_resource_id()))
        };
        Ok(out.stack_resources().iter().map(row).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_execution_names_its_first_failed_resource_and_why() {
        let e = Event {
            logical_id: "Database".into(),
            resource_type: "AWS::RDS::DBInstance".into(),
            status: "UPDATE_FAILED".into(),
            reason: "DBName cannot be changed".into(),
        };
        let failed = Outcome { status: "UPDATE_ROLLBACK_COMPLETE".into(), first_failure: Some(e) };
        let text = failed.check("booking-dev").unwrap_err().to_string();
        assert!(text.contains("UPDATE_ROLLBACK_COMPLETE; the first failure: Database (AWS::RDS::DBInstance) UPDATE_FAILED: DBName cannot be changed"), "{text}");
        let done = Outcome { status: "UPDATE_COMPLETE".into(), first_failure: None };
        assert_eq!(done.check("booking-dev").unwrap(), "UPDATE_COMPLETE");
    }
}

#[cfg(test)]
mod mocked_tests {
    use aws_sdk_cloudformation::operation::describe_stack_drift_detection_status::DescribeStackDriftDetectionStatusOutput as Status;
    use aws_sdk_cloudformation::operation::describe_stack_resource_drifts::DescribeStackResourceDriftsOutput as Drifts;
    use aws_sdk_cloudformation::operation::detect_stack_drift::DetectStackDriftOutput;
    use aws_sdk_cloudformation::types::{StackResourceDrift, StackResourceDriftStatus as S};
    use aws_smithy_mocks::{mock, MockResponseInterceptor, RuleMode};

    use super::*;

    fn resource(id: &str, status: S) -> StackResourceDrift {
        StackResourceDrift::builder()
            .stack_id("booking-dev")
            .logical_resource_id(id)
            .resource_type("AWS::EC2::SecurityGroup")
            .stack_resource_drift_status(status)
            .timestamp(aws_smithy_types::DateTime::from_secs(0))
            .build()
    }

    /// A Cloud whose CloudFormation client answers from `rules` (any order).
    fn mocked(rules: &[&aws_smithy_mocks::Rule]) -> Cloud {
        let mut interceptor = MockResponseInterceptor::new().rule_mode(RuleMode::MatchAny);
        for r in rules {
            interceptor = interceptor.with_rule(r);
        }
        let conf = aws_sdk_cloudformation::Config::builder()
            .behavior_version(aws_sdk_cloudformation::config::BehaviorVersion::latest())
            .region(aws_sdk_cloudformation::config::Region::new("us-east-1"))
            .http_client(aws_smithy_mocks::create_mock_http_client())
            .interceptor(interceptor)
            .build();
        let sdk = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let mut cloud = Cloud::new(&sdk);
        cloud.cf = aws_sdk_cloudformation::Client::from_conf(conf);
        cloud
    }

    /// Issue 32, finding 7: after `destroy --project` (the repositories, bucket and topic
    /// retained, as documented), applying the project again failed: they keep the names the
    /// new stack gives. A new stack's change set asks CloudFormation to import what exists
    /// under those names (CreateChangeSet `ImportExistingResources`, CloudFormation User Guide,
    /// "Import AWS resources into a CloudFormation stack automatically"); an update's does not.
    /// ministack ignores the flag, so this is checked at the request.
    #[tokio::test]
    async fn finding_7_a_new_stack_imports_what_a_destroy_retained() {
        use aws_sdk_cloudformation::operation::create_change_set::CreateChangeSetOutput;
        use aws_sdk_cloudformation::operation::describe_change_set::DescribeChangeSetOutput;
        for exists in [false, true] {
            let create = mock!(aws_sdk_cloudformation::Client::create_change_set)
                .match_requests(move |r| r.import_existing_resources() == Some(!exists))
                .then_output(|| CreateChangeSetOutput::builder().id("cs-1").build());
            let describe =
                mock!(aws_sdk_cloudformation::Client::describe_change_set).then_output(|| {
                    DescribeChangeSetOutput::builder()
                        .status(ChangeSetStatus::CreateComplete)
                        .build()
                });
            let cloud = mocked(&[&create, &describe]);
            let template = serde_json::json!({"Resources": {}});
            let pending = cloud.change_set("booking", &template, exists).await.unwrap();
            assert!(pending.is_some());
            assert_eq!(create.num_calls(), 1, "ImportExistingResources = {}", !exists);
        }
    }

    /// Issue 32, finding 9: a detection that fails on one resource still has the others'
    /// results (DescribeStackDriftDetectionStatus: DETECTION_FAILED "if at least one resource
    /// in the stack failed to be checked"; CloudFormation User Guide, "Detect drift on an
    /// entire CloudFormation stack"). They are kept, and the report says which resources could
    /// not be checked and why, instead of throwing every result away.
    #[tokio::test]
    async fn finding_9_a_detection_failed_on_one_resource_keeps_the_others_results() {
        let detect = mock!(aws_sdk_cloudformation::Client::detect_stack_drift).then_output(|| {
            DetectStackDriftOutput::builder().stack_drift_detection_id("d-1").build()
        });
        let status = mock!(aws_sdk_cloudformation::Client::describe_stack_drift_detection_status)
            .then_output(|| {
                Status::builder()
                    .stack_id("booking-dev")
                    .stack_drift_detection_id("d-1")
                    .detection_status(Detection::DetectionFailed)
                    .detection_status_reason("Failed to detect drift on resource [Cache]")
                    .timestamp(aws_smithy_types::DateTime::from_secs(0))
                    .build()
            });
        let drifts = mock!(aws_sdk_cloudformation::Client::describe_stack_resource_drifts)
            .then_output(|| {
                Drifts::builder()
                    .stack_resource_drifts(resource("AppSecurityGroup", S::Modified))
                    .stack_resource_drifts(resource("Cache", S::NotChecked))
                    .build()
            });
        let cloud = mocked(&[&detect, &status, &drifts]);
        let drift = cloud.drift("booking-dev").await.unwrap();
        assert_eq!(drift.resources.len(), 2);
        assert!(drift.resources.iter().any(|d| d.logical_id == "AppSecurityGroup" && d.drifted()));
        assert_eq!(drift.unchecked(), ["Cache"]);
        assert_eq!(drift.failed.as_deref(), Some("Failed to detect drift on resource [Cache]"));
    }
}
