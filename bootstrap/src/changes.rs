//! What a change set says a stack update will do, in the bootstrap's words: one row per
//! resource (add, modify, remove), with replacement called out, and the guard that stops an
//! `apply` from replacing what holds data. Pure: [`crate::cloud`] fills it from
//! DescribeChangeSet, the CLI prints it.

use serde::Serialize;

/// What CloudFormation will do to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Add,
    Modify,
    Remove,
    /// Import, Dynamic, SyncWithActual: shown as CloudFormation names them.
    Other,
}

/// Whether a Modify replaces the resource (a new physical resource, the old one deleted).
/// `Conditional`: CloudFormation cannot tell before it runs (a property depends on another
/// resource's new value); the guard treats it as a replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Replacement {
    No,
    Conditional,
    Yes,
}

/// What CloudFormation does with the physical resource a Remove or a replacement lets go of
/// (DescribeChangeSet's `PolicyAction`, from the resource's DeletionPolicy or
/// UpdateReplacePolicy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    Delete,
    Retain,
    /// Deleted after a final snapshot: the live data goes, a copy is kept.
    Snapshot,
}

/// One row of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    pub action: Action,
    pub logical_id: String,
    pub resource_type: String,
    /// Empty for an Add.
    pub physical_id: String,
    pub replacement: Replacement,
    /// The properties a Modify changes (names only: values may be secrets).
    pub properties: Vec<String>,
    /// What becomes of the old resource when it is removed or replaced; `None`: CloudFormation
    /// did not say (then it is taken as deleted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
}

/// The resource types whose removal or replacement loses data: the database, the cache (its
/// queued jobs: Dramatiq's queues live there), a repository (its images) and the state bucket
/// (every environment's state).
const HOLDS_DATA: &[&str] = &[
    "AWS::RDS::DBInstance",
    "AWS::ElastiCache::ReplicationGroup",
    "AWS::ECR::Repository",
    "AWS::S3::Bucket",
];

impl Change {
    fn holds_data(&self) -> bool {
        HOLDS_DATA.contains(&self.resource_type.as_str())
    }

    /// Whether the old resource is kept (DeletionPolicy or UpdateReplacePolicy `Retain`).
    fn kept(&self) -> bool {
        self.policy == Some(Policy::Retain)
    }

    /// Whether `apply` refuses this change without `--allow-replace`: it removes or replaces
    /// what holds data, and the old resource is not retained (a final snapshot keeps a copy,
    /// but the service loses what it runs on).
    pub fn loses_data(&self) -> bool {
        let goes = match self.action {
            Action::Remove => true,
            Action::Modify => self.replacement != Replacement::No,
            Action::Add | Action::Other => false,
        };
        goes && self.holds_data() && !self.kept()
    }

    /// Its mark and word in a plan's table.
    fn word(&self) -> (char, &'static str) {
        if self.action == Action::Remove && self.holds_data() {
            return match self.policy {
                Some(Policy::Retain) => ('-', "remove (kept)"),
                Some(Policy::Snapshot) => ('!', "REMOVE DATA (snapshot)"),
                _ => ('!', "REMOVE DATA"),
            };
        }
        match (self.action, self.replacement) {
            (Action::Add, _) => ('+', "add"),
            (Action::Remove, _) => ('-', "remove"),
            (Action::Modify, Replacement::Yes) => ('!', "REPLACE"),
            (Action::Modify, Replacement::Conditional) => ('!', "modify (may replace)"),
            (Action::Modify, Replacement::No) => ('~', "modify"),
            (Action::Other, _) => ('?', "other"),
        }
    }
}

/// A stack's pending change: what a change set (or, for a stack that does not exist yet, its
/// template) says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackPlan {
    pub stack: String,
    /// False: the stack does not exist and every resource is an Add.
    pub exists: bool,
    pub changes: Vec<Change>,
}

impl StackPlan {
    /// The plan of a stack that does not exist: every resource of `template`, added.
    pub fn create(stack: &str, template: &serde_json::Value) -> StackPlan {
        let resources = template["Resources"].as_object().cloned().unwrap_or_default();
        StackPlan {
            stack: stack.to_owned(),
            exists: false,
            changes: resources
                .iter()
                .map(|(id, r)| Change {
                    action: Action::Add,
                    logical_id: id.clone(),
                    resource_type: r["Type"].as_str().unwrap_or_default().to_owned(),
                    physical_id: String::new(),
                    replacement: Replacement::No,
                    properties: Vec::new(),
                    policy: None,
                })
                .collect(),
        }
    }

    /// The changes `apply` refuses without `--allow-replace`.
    pub fn data_losses(&self) -> Vec<&Change> {
        self.changes.iter().filter(|c| c.loses_data()).collect()
    }

    /// The plan as a person reads it: a heading, a row per resource, a count.
    pub fn text(&self) -> String {
        let mut out = format!("stack {}{}:\n", self.stack, if self.exists { "" } else { " (new)" });
        if self.changes.is_empty() {
            out.push_str("  no change\n");
            return out;
        }
        for c in &self.changes {
            let ((mark, word), props) = (c.word(), c.properties.join(", "));
            let line =
                format!("  {mark} {word:<22} {:<34} {:<40} {props}", c.logical_id, c.resource_type);
            out.push_str(line.trim_end());
            out.push('\n');
        }
        let count = |a: Action| self.changes.iter().filter(|c| c.action == a).count();
        let replaced = (self.changes.iter())
            .filter(|c| c.action == Action::Modify && c.replacement != Replacement::No)
            .count();
        out.push_str(&format!(
            "  {} to add, {} to modify ({replaced} replaced or maybe), {} to remove\n",
            count(Action::Add),
            count(Action::Modify),
            count(Action::Remove)
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(kind: &str, action: Action, replacement: Replacement) -> Change {
        Change {
            action,
            logical_id: "X".into(),
            resource_type: kind.into(),
            physical_id: "x".into(),
            replacement,
            properties: vec!["DBName".into()],
            policy: None,
        }
    }

    #[test]
    fn what_removes_or_replaces_data_is_guarded_unless_retained() {
        use Action::*;
        use Replacement::*;
        assert!(change("AWS::RDS::DBInstance", Modify, Yes).loses_data());
        assert!(change("AWS::ECR::Repository", Modify, Conditional).loses_data());
        assert!(change("AWS::S3::Bucket", Modify, Yes).loses_data());
        assert!(!change("AWS::RDS::DBInstance", Modify, No).loses_data());
        assert!(!change("AWS::EC2::SecurityGroup", Modify, Yes).loses_data());
        assert!(!change("AWS::EC2::SecurityGroup", Remove, No).loses_data());
        // Issue 32, finding 3: the database and the cache removed by a config that drops them.
        assert!(change("AWS::RDS::DBInstance", Remove, No).loses_data());
        assert!(change("AWS::ElastiCache::ReplicationGroup", Remove, No).loses_data());
        let snapshot =
            Change { policy: Some(Policy::Snapshot), ..change("AWS::RDS::DBInstance", Remove, No) };
        assert!(snapshot.loses_data(), "a final snapshot is a copy, not the database");
        // A repository or bucket its policy retains is kept, not lost, and said so.
        let kept =
            Change { policy: Some(Policy::Retain), ..change("AWS::ECR::Repository", Remove, No) };
        assert!(!kept.loses_data());
        assert_eq!(kept.word(), ('-', "remove (kept)"));
        assert_eq!(snapshot.word(), ('!', "REMOVE DATA (snapshot)"));
    }

    #[test]
    fn a_new_stack_adds_every_resource_of_its_template_and_the_text_calls_out_replacement() {
        let t = json!({"Resources": {"A": {"Type": "AWS::SNS::Topic"}, "B": {"Type": "AWS::S3::Bucket"}}});
        let plan = StackPlan::create("booking", &t);
        assert!(!plan.exists);
        assert_eq!(plan.changes.len(), 2);
        assert!(plan.changes.iter().all(|c| c.action == Action::Add));
        let existing = StackPlan {
            stack: "booking-dev".into(),
            exists: true,
            changes: vec![change("AWS::RDS::DBInstance", Action::Modify, Replacement::Yes)],
        };
        let text = existing.text();
        assert!(text.contains("! REPLACE"), "{text}");
        assert!(text.contains("DBName"), "{text}");
        assert!(text.contains("0 to add, 1 to modify (1 replaced"), "{text}");
        assert_eq!(existing.data_losses().len(), 1);
    }
}
