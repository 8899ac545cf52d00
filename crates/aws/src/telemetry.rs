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
    let default = if verbose { "info" } else { "warn" };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default)),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
