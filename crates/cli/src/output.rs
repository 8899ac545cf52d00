//! How reports reach a person or a script: JSON on stdout, notes and metrics on stderr.

use harbormaster_core::engine::TargetReport;

/// Embedded-metric-format lines go to stderr, with the logs; stdout is the report.
pub fn print_metrics(targets: &[TargetReport]) {
    for line in targets.iter().flat_map(|t| &t.metrics) {
        eprintln!("{line}");
    }
}

/// Reports are JSON on stdout (for scripts and CodeBuild); the dry-run note goes to stderr.
pub fn print_json(report: &impl serde::Serialize, dry_run: bool) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("report serialises")
    );
    if dry_run {
        eprintln!("dry run: nothing was written and no mutating call was made");
    }
}
