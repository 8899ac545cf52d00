//! Where every check of the config reports: one [`Collector`] per file, each problem with the
//! dotted path of its field (never its value), all of them said at once. A leaf: every section's
//! `from_raw` (the service settings, strategies, scaling, the bootstrap's network, web, database)
//! takes `&mut Collector` and returns what it could build, so a caller is a list of calls and
//! the first error does not hide the next.

use super::{ConfigError, ConfigErrors};

pub(crate) struct Collector<'a> {
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Collector<'a> {
    pub(crate) fn new(file: &'a str) -> Self {
        Collector {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn err(&mut self, field: impl Into<String>, problem: impl Into<String>) {
        let e = ConfigError {
            file: self.file.to_owned(),
            field: field.into(),
            problem: problem.into(),
        };
        // A service-wide setting is checked once per environment: said once.
        if !self.errors.iter().any(|x| x.to_string() == e.to_string()) {
            self.errors.push(e);
        }
    }

    /// `value`, when nothing was reported; every problem otherwise. A section that could not be
    /// built (`None`) has reported why.
    pub(crate) fn finish<T>(self, value: Option<T>) -> Result<T, ConfigErrors> {
        match value {
            Some(v) if self.errors.is_empty() => Ok(v),
            _ => {
                debug_assert!(!self.errors.is_empty(), "a section failed without a word");
                Err(ConfigErrors(self.errors))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_said_once_with_its_file_and_field() {
        let mut c = Collector::new("harbormaster.toml");
        c.err("services.web.desired_count", "allowed: 0 to 1000");
        c.err("services.web.desired_count", "allowed: 0 to 1000");
        c.err("project", "too long");
        let errors = c.finish(Some(())).unwrap_err().0;
        let said: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            said,
            [
                "harbormaster.toml: `services.web.desired_count`: allowed: 0 to 1000",
                "harbormaster.toml: `project`: too long"
            ]
        );
        assert_eq!(Collector::new("f").finish(Some(7)).unwrap(), 7);
    }
}
