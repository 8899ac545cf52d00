//! The bootstrap as CloudFormation (issue 19): an environment's base rendered from
//! `harbormaster.toml` as two templates — the project's stack (what every environment
//! shares: repositories, the state bucket, the topic) and one stack per environment (network,
//! load balancer, cluster, roles, logs, database, cache, and the outputs the agent reads in
//! SSM). Pure: no AWS call; `harbormaster-bootstrap template` prints them for any tool that
//! deploys CloudFormation.

mod application;
mod data;
mod network;
mod project;

use serde_json::{json, Map, Value};

use crate::spec::Spec;

pub use project::{project, project_exports};

/// A template under construction: resources and outputs by logical id.
#[derive(Default)]
pub(crate) struct Template {
    resources: Map<String, Value>,
    outputs: Map<String, Value>,
}

impl Template {
    /// Adds a resource (`properties` as CloudFormation spells them).
    pub(crate) fn add(
        &mut self,
        id: &str,
        kind: &str,
        properties: Value,
    ) -> &mut Map<String, Value> {
        self.resources.insert(id.to_owned(), json!({"Type": kind, "Properties": properties}));
        self.resources[id].as_object_mut().expect("a resource is an object")
    }

    /// Keeps `id` (and its data) when the stack is deleted or the resource replaced.
    pub(crate) fn retain(&mut self, id: &str) {
        let r = self.resources[id].as_object_mut().expect("resource");
        r.insert("DeletionPolicy".into(), json!("Retain"));
        r.insert("UpdateReplacePolicy".into(), json!("Retain"));
    }

    pub(crate) fn output(&mut self, id: &str, value: Value, export: Option<String>) {
        let mut o = json!({"Value": value});
        if let Some(name) = export {
            o["Export"] = json!({"Name": name});
        }
        self.outputs.insert(id.to_owned(), o);
    }

    fn render(self, description: String) -> Value {
        json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Description": description,
            "Resources": self.resources,
            "Outputs": self.outputs,
        })
    }
}

pub(crate) fn r(id: &str) -> Value {
    json!({"Ref": id})
}

pub(crate) fn att(id: &str, attribute: &str) -> Value {
    json!({"Fn::GetAtt": [id, attribute]})
}

pub(crate) fn sub(text: &str) -> Value {
    json!({"Fn::Sub": text})
}

/// The tags every resource of an environment carries.
pub(crate) fn tags(spec: &Spec, name: &str) -> Value {
    json!([
        {"Key": "Name", "Value": name},
        {"Key": "harbormaster:project", "Value": spec.project},
        {"Key": "harbormaster:environment", "Value": spec.environment},
    ])
}

/// A logical id from a name (`booking/web` → `BookingWeb`): letters and digits only.
pub(crate) fn logical(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// A String parameter at `/<project>/<env>/<path>` (logical id from the path).
pub(crate) fn parameter(t: &mut Template, spec: &Spec, path: &str, value: Value) {
    t.add(
        &logical(path),
        "AWS::SSM::Parameter",
        json!({
            "Name": format!("{}/{path}", spec.parameter_root()),
            "Type": "String",
            "Value": value,
            "Tags": {"harbormaster:project": spec.project, "harbormaster:environment": spec.environment},
        }),
    );
}

/// The environment's stack (`<project>-<env>`): everything `harbormaster-bootstrap apply`
/// provisions for one environment, and its outputs as SSM parameters under
/// `/<project>/<env>/outputs/`, the paths the agent reads.
pub fn environment(spec: &Spec) -> Value {
    let mut t = Template::default();
    let mut outputs = Vec::new();
    network::network(&mut t, spec, &mut outputs);
    application::application(&mut t, spec, &mut outputs);
    data::data(&mut t, spec, &mut outputs);
    // What the project stack holds, as this environment's outputs too (one place to read).
    for (name, export) in project_exports(spec) {
        outputs.push((name, json!({"Fn::ImportValue": export})));
    }
    for (name, value) in outputs {
        parameter(&mut t, spec, &format!("outputs/{name}"), value);
    }
    t.render(format!(
        "Harbormaster: the {} environment of {} (harbormaster-bootstrap)",
        spec.environment, spec.project
    ))
}

/// The stack names: the project's, and an environment's.
pub fn stack_names(spec: &Spec) -> (String, String) {
    (spec.project.clone(), format!("{}-{}", spec.project, spec.environment))
}

#[cfg(test)]
mod tests;
