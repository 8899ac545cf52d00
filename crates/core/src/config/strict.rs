//! Strict parsing that reports every unknown key (and wrong value) at once. serde's `deny_unknown_fields` stops
//! at the first one and lists every allowed name; a person fixing a config wants each mistyped
//! key with its path and, when one is close, the name meant.
//!
//! Each pass deserializes the parsed document (spans kept, so line numbers stay right); the
//! key an error points at is reported, taken out of the document, and the next pass finds the
//! next error.

use serde::de::DeserializeOwned;
use toml::de::{DeTable, DeValue, Deserializer};
use toml::Spanned;

use super::ConfigError;

/// A config holds a few dozen keys: past this many mistakes, the rest wait for the next run.
const MAX_ERRORS: usize = 50;

pub(super) fn parse<T: DeserializeOwned>(file: &str, text: &str) -> Result<T, Vec<ConfigError>> {
    let error = |field: String, problem: String| ConfigError {
        file: file.to_owned(),
        field,
        problem,
    };
    let mut root = DeTable::parse(text)
        .map_err(|e| vec![error(String::new(), super::describe_toml_error(text, &e))])?;
    // (where in the file, the error): reported in the order of the file.
    let mut found: Vec<(usize, ConfigError)> = Vec::new();
    let mut taken_keys: Vec<String> = Vec::new();
    let in_order = |mut found: Vec<(usize, ConfigError)>| {
        found.sort_by_key(|(at, _)| *at);
        found.into_iter().map(|(_, e)| e).collect::<Vec<_>>()
    };
    while found.len() < MAX_ERRORS {
        let e = match T::deserialize(Deserializer::from(root.clone())) {
            Ok(v) if found.is_empty() => return Ok(v),
            Ok(_) => break,
            Err(e) => e,
        };
        // A key taken out after an error is then missing: that is not news.
        let missing = e
            .message()
            .strip_prefix("missing field `")
            .and_then(|m| m.split('`').next());
        if missing.is_some_and(|k| taken_keys.iter().any(|t| t == k)) {
            break;
        }
        let at = e.span().map(|s| s.start).unwrap_or(usize::MAX);
        let taken = e
            .span()
            .and_then(|span| take_key(root.get_mut(), &span, ""));
        let Some((path, key)) = taken else {
            found.push((
                at,
                error(String::new(), super::describe_toml_error(text, &e)),
            ));
            break;
        };
        let problem = match unknown_key(e.message()) {
            Some((key, allowed)) => {
                let line = text[..at.min(text.len())].matches('\n').count() + 1;
                format!("unknown key at line {line}{}", hint(&key, &allowed))
            }
            None => super::describe_toml_error(text, &e),
        };
        found.push((at, error(path, problem)));
        taken_keys.push(key);
    }
    Err(in_order(found))
}

/// serde's message: "unknown field `x`, expected one of `a`, `b`" (or "expected `a`", or
/// "there are no fields"): the key and the names allowed there.
fn unknown_key(message: &str) -> Option<(String, Vec<String>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (key, rest) = rest.split_once('`')?;
    let allowed = rest
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect();
    Some((key.to_owned(), allowed))
}

/// The allowed name closest to a mistyped `key`, when one is close enough to be what was meant.
pub(crate) fn closest<'a>(key: &str, allowed: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    allowed
        .map(|a| (strsim::jaro_winkler(key, a), a))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, a)| a)
}

/// "; did you mean `y`?" when an allowed name is close (as clap and cargo suggest), else the
/// allowed names when they are few.
fn hint(key: &str, allowed: &[String]) -> String {
    match closest(key, allowed.iter().map(String::as_str)) {
        Some(a) => format!("; did you mean `{a}`?"),
        None if allowed.is_empty() => "; this table takes no keys".to_owned(),
        None if allowed.len() <= 6 => format!(
            "; expected {}",
            allowed
                .iter()
                .map(|a| format!("`{a}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => String::new(),
    }
}

/// Removes the key whose name or value is at `span` from the document: its dotted path and
/// its name.
fn take_key(
    table: &mut DeTable<'_>,
    span: &std::ops::Range<usize>,
    at: &str,
) -> Option<(String, String)> {
    let found = table
        .iter()
        .find(|(k, v)| k.span() == *span || v.span() == *span);
    if let Some(k) = found.map(|(k, _)| k.clone()) {
        table.remove(&k);
        return Some((join(at, k.get_ref()), k.get_ref().to_string()));
    }
    table
        .iter_mut()
        .find_map(|(k, v)| take_in(v, span, &join(at, k.get_ref())))
}

fn take_in(
    value: &mut Spanned<DeValue<'_>>,
    span: &std::ops::Range<usize>,
    at: &str,
) -> Option<(String, String)> {
    match value.get_mut() {
        DeValue::Table(t) => take_key(t, span, at),
        DeValue::Array(items) => items
            .iter_mut()
            .enumerate()
            .find_map(|(i, v)| take_in(v, span, &format!("{at}[{i}]"))),
        _ => None,
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_owned()
    } else {
        format!("{at}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        desired_count: Option<u32>,
        name: Option<String>,
        #[serde(default)]
        services: std::collections::BTreeMap<String, Inner>,
        #[serde(default)]
        alarms: Vec<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        repository: Option<String>,
    }

    #[test]
    fn every_unknown_key_is_reported_with_its_path_and_the_key_meant() {
        let text = "desird_count = 2\nname = \"x\"\n\n[services.web]\nrepositry = \"a\"\n\n[[alarms]]\nrepository = \"b\"\n[[alarms]]\ncolour = 1\n";
        let errors = parse::<Doc>("h.toml", text).unwrap_err();
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "h.toml: `desird_count`: unknown key at line 1; did you mean `desired_count`?",
                "h.toml: `services.web.repositry`: unknown key at line 5; did you mean `repository`?",
                "h.toml: `alarms[1].colour`: unknown key at line 10; expected `repository`",
            ]
        );
    }

    #[test]
    fn a_known_document_parses_and_a_syntax_error_names_its_line() {
        let doc = parse::<Doc>(
            "h.toml",
            "name = \"x\"\n[services.web]\nrepository = \"r\"\n",
        );
        assert_eq!(
            doc.unwrap().services["web"].repository.as_deref(),
            Some("r")
        );
        let errors = parse::<Doc>("h.toml", "name = \n").unwrap_err();
        assert!(
            errors[0].to_string().starts_with("h.toml: line 1"),
            "{errors:?}"
        );
        // A wrong type after an unknown key: both reported, the unknown key first.
        let errors = parse::<Doc>("h.toml", "nme = 1\ndesired_count = \"two\"\n").unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors[1].problem.contains("line 2"), "{errors:?}");
    }
}
