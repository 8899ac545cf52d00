//! How reports reach a person or a script: JSON on stdout, notes and metrics on stderr.

use std::io::Write;

use harbormaster_core::engine::TargetReport;

/// One line on stdout (the `out!` macro). When the reader has gone, the command's output is
/// no longer wanted: exit 0 at once, as a pipeline's producer does on SIGPIPE; any other
/// failure to write is an error for the person (exit 2).
pub fn line(args: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{args}") {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(2);
    }
}

/// Embedded-metric-format lines go to stderr, with the logs; stdout is the report.
pub fn print_metrics(targets: &[TargetReport]) {
    for line in targets.iter().flat_map(|t| &t.metrics) {
        eprintln!("{line}");
    }
}

/// An error and its causes, each said once: a message that already quotes its cause (`cannot
/// read X: not found`) is not followed by the cause again, as `{:#}` would print it.
pub fn error_chain(e: &anyhow::Error) -> String {
    let mut said = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if said.contains(&text) {
            continue;
        }
        if !said.is_empty() {
            said.push_str(": ");
        }
        said.push_str(&text);
    }
    said
}

/// Text for a terminal: each line with its control and invisible characters escaped (errors
/// quote keys, tags and reasons from files and events), the line breaks between them kept.
pub fn escaped(text: &str) -> String {
    text.split('\n')
        .map(|l| harbormaster_core::text::shown(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {location}: {source}")]
    struct Read {
        location: String,
        source: std::io::Error,
    }

    #[test]
    fn a_cause_the_message_already_quotes_is_not_repeated() {
        let inner = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = anyhow::Error::new(Read {
            location: "taskdefs/web.json".into(),
            source: inner,
        })
        .context("services.web.task_definition");
        assert_eq!(
            super::error_chain(&e),
            "services.web.task_definition: cannot read taskdefs/web.json: no such file"
        );
    }
}
