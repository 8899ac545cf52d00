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
}

/// The resource types whose replacement loses data: the database (a new, empty instance), a
/// repository (its images) and the state bucket (every environment's state).
const HOLDS_DATA: &[&str] = &["AWS::RDS::DBInstance", "AWS::ECR::Repository", "AWS::S3::Bucket"];

impl Change {
    /// Whether `apply` refuses this change without `--allow-replace`.
    pub fn replaces_data(&self) -> bool {
        self.action == Action::Modify
            && self.replacement != Replacement::No
            && HOLDS_DATA.contains(&self.resource_type.as_str())
    }

    /// Its mark and word in a plan's table.
    fn word(&self) -> (char, &'static str) {
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
                })
                .collect(),
        }
    }

    /// The changes `apply` refuses without `--allow-replace`.
    pub fn data_replacements(&self) -> Vec<&Change> {
        self.changes.iter().filter(|c| c.replaces_data()).collect()
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
        }
    }

    #[test]
    fn only_a_replacement_of_what_holds_data_is_guarded() {
        use Action::*;
        use Replacement::*;
        assert!(change("AWS::RDS::DBInstance", Modify, Yes).replaces_data());
        assert!(change("AWS::ECR::Repository", Modify, Conditional).replaces_data());
        assert!(change("AWS::S3::Bucket", Modify, Yes).replaces_data());
        assert!(!change("AWS::RDS::DBInstance", Modify, No).replaces_data());
        assert!(!change("AWS::EC2::SecurityGroup", Modify, Yes).replaces_data());
        // A removed repository or bucket is retained by its deletion policy, not lost.
        assert!(!change("AWS::ECR::Repository", Remove, No).replaces_data());
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
        assert_eq!(existing.data_replacements().len(), 1);
    }
}
