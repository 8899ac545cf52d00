//! The lifecycle policy of a project repository, rendered as ECR reads it ("Lifecycle policy
//! properties in Amazon ECR": `rulePriority`, `selection`, `action`).

use serde_json::{json, Value};

use super::PROTECTION_PREFIX;

/// A count no repository reaches: the rules that protect select with it. ECR has no "keep
/// forever" action; a count rule that never fires is how a rule keeps what it selects.
pub const NEVER_REACHED: u32 = 9999;

/// Which images one rule selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Images with a tag starting with this prefix (one prefix per rule: ECR selects only
    /// images carrying *all* of a rule's prefixes, so several in one rule would select less).
    Prefix(String),
    /// Images with a tag matching this pattern (`*` any characters, at most four).
    Pattern(String),
    Untagged,
    /// Every image (`tagStatus: any`): ECR requires such a rule to come last.
    Any,
}

/// One rule: what it selects, and when a selected image expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Selected images beyond the newest `keep` (by push time) expire.
    KeepNewest {
        selection: Selection,
        keep: u32,
        why: String,
    },
    /// Selected images pushed more than `days` ago expire.
    OlderThan {
        selection: Selection,
        days: u32,
        why: String,
    },
}

impl Rule {
    pub fn selection(&self) -> &Selection {
        match self {
            Rule::KeepNewest { selection, .. } | Rule::OlderThan { selection, .. } => selection,
        }
    }
}

/// The rules in priority order (first is priority 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecyclePolicy {
    pub rules: Vec<Rule>,
}

impl LifecyclePolicy {
    /// The project's policy: the agent's protection tags and release tags kept (rules that
    /// never fire, placed first), each development prefix kept to its newest `keep_dev`, and
    /// untagged images (a tag moved away, a failed push) expired after a day. The children of
    /// a multi-arch index are untagged too; ECR expires them with their index, never alone.
    pub fn project(release_patterns: &[String], dev_prefixes: &[String], keep_dev: u32) -> Self {
        let mut rules = vec![Rule::KeepNewest {
            selection: Selection::Prefix(PROTECTION_PREFIX.to_owned()),
            keep: NEVER_REACHED,
            why: "kept: what an environment runs or can roll back to (harbormaster's tags)".into(),
        }];
        for p in release_patterns {
            rules.push(Rule::KeepNewest {
                selection: Selection::Pattern(p.clone()),
                keep: NEVER_REACHED,
                why: format!("kept: release tags {p}"),
            });
        }
        for p in dev_prefixes {
            rules.push(Rule::KeepNewest {
                selection: Selection::Prefix(p.clone()),
                keep: keep_dev,
                why: format!("development tags {p}*: the newest {keep_dev}"),
            });
        }
        rules.push(Rule::OlderThan {
            selection: Selection::Untagged,
            days: 1,
            why: "untagged images: a day".into(),
        });
        LifecyclePolicy { rules }
    }

    /// The policy as ECR's `LifecyclePolicyText` holds it.
    pub fn to_json(&self) -> Value {
        let rules: Vec<Value> = (self.rules.iter().enumerate())
            .map(|(i, rule)| {
                let mut selection = match rule.selection() {
                    Selection::Prefix(p) => json!({"tagStatus": "tagged", "tagPrefixList": [p]}),
                    Selection::Pattern(p) => json!({"tagStatus": "tagged", "tagPatternList": [p]}),
                    Selection::Untagged => json!({"tagStatus": "untagged"}),
                    Selection::Any => json!({"tagStatus": "any"}),
                };
                let (why, count) = match rule {
                    Rule::KeepNewest { keep, why, .. } => {
                        (why, json!({"countType": "imageCountMoreThan", "countNumber": keep}))
                    }
                    Rule::OlderThan { days, why, .. } => (
                        why,
                        json!({"countType": "sinceImagePushed", "countUnit": "days", "countNumber": days}),
                    ),
                };
                for (k, v) in count.as_object().into_iter().flatten() {
                    selection[k] = v.clone();
                }
                json!({
                    "rulePriority": i + 1,
                    "description": why,
                    "selection": selection,
                    "action": {"type": "expire"},
                })
            })
            .collect();
        json!({ "rules": rules })
    }
}

impl LifecyclePolicy {
    /// A policy as ECR holds it (the rendered `LifecyclePolicyText`, or one read back), to
    /// evaluate with [`super::expired`]. Rules come back in priority order.
    pub fn from_json(v: &Value) -> Result<Self, String> {
        let mut rules: Vec<(u64, Rule)> = Vec::new();
        for (i, r) in v["rules"]
            .as_array()
            .ok_or("no `rules`")?
            .iter()
            .enumerate()
        {
            let at = |field: &str| format!("rules[{i}].{field}");
            let s = &r["selection"];
            let one = |key: &str| {
                s[key]
                    .as_array()
                    .and_then(|l| l.first())
                    .and_then(Value::as_str)
            };
            let selection = match s["tagStatus"].as_str() {
                Some("untagged") => Selection::Untagged,
                Some("any") => Selection::Any,
                Some("tagged") => match (one("tagPrefixList"), one("tagPatternList")) {
                    (Some(p), None) => Selection::Prefix(p.to_owned()),
                    (None, Some(p)) => Selection::Pattern(p.to_owned()),
                    _ => return Err(format!("{}: one prefix or one pattern", at("selection"))),
                },
                _ => {
                    return Err(format!(
                        "{}: tagged, untagged or any",
                        at("selection.tagStatus")
                    ))
                }
            };
            let count = s["countNumber"]
                .as_u64()
                .ok_or_else(|| at("selection.countNumber"))?;
            let count = u32::try_from(count).map_err(|_| at("selection.countNumber"))?;
            let why = r["description"].as_str().unwrap_or_default().to_owned();
            let rule = match s["countType"].as_str() {
                Some("imageCountMoreThan") => Rule::KeepNewest {
                    selection,
                    keep: count,
                    why,
                },
                Some("sinceImagePushed") => Rule::OlderThan {
                    selection,
                    days: count,
                    why,
                },
                _ => {
                    return Err(format!(
                        "{}: not one this evaluation knows",
                        at("selection.countType")
                    ))
                }
            };
            let priority = r["rulePriority"]
                .as_u64()
                .ok_or_else(|| at("rulePriority"))?;
            rules.push((priority, rule));
        }
        rules.sort_by_key(|(p, _)| *p);
        Ok(LifecyclePolicy {
            rules: rules.into_iter().map(|(_, r)| r).collect(),
        })
    }
}
