//! Logging: JSON lines in Lambda (CloudWatch Logs Insights can query the fields), readable text
//! for people at a terminal. `RUST_LOG` filters; the default is `info`.

use tracing_subscriber::EnvFilter;

pub fn init_json() {
    let _ = tracing_subscriber::fmt()
        .json()
        // Lambda sends stdout and stderr alike to CloudWatch Logs; for the CLI, stdout is the
        // report a script reads.
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_current_span(false)
        .with_target(false)
        .without_time() // Lambda stamps every line itself
        .try_init();
}

pub fn init_text(verbose: bool) {
    // Without -v, the SDK's credential and region chains stay quiet: their warnings (IMDS
    // unreachable off EC2, a profile file missing) are noise when a later provider answers,
    // and an error that stops the command is reported by the command itself.
    let default = if verbose {
        "info"
    } else {
        "warn,aws_config=error,aws_smithy_runtime=error"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(colour_on_stderr())
        .with_target(false)
        .try_init();
}

/// Colour only for a person at a terminal, and never when `NO_COLOR` is set to anything
/// (<https://no-color.org>).
pub fn colour_on_stderr() -> bool {
    use std::io::IsTerminal;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    std::io::stderr().is_terminal() && !no_color
}
