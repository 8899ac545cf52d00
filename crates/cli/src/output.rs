//! How reports reach a person or a script: JSON on stdout, notes and metrics on stderr.

use harbormaster_core::engine::TargetReport;

/// Embedded-metric-format lines go to stderr, with the logs; stdout is the report.
pub fn print_metrics(targets: &[TargetReport]) {
    for line in targets.iter().flat_map(|t| &t.metrics) {
        eprintln!("{line}");
    }
}
