//! Log lines: where they go, how they look, and how much of them.

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Logs go to stderr so that `query --format json` output on stdout stays machine-readable.
/// `USERSTREAM_LOG` (or `RUST_LOG`) takes a full filter; `-v`/`-q` adjust the default. Text is
/// coloured only when stderr is a terminal: escapes written into a pipe or a file are noise for
/// whoever reads it. `json` writes one object per line for log shippers.
pub fn init_logging(verbose: u8, quiet: bool, format: crate::cli::LogFormat) {
    let default = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "userstream=debug,info",
        (false, _) => "trace",
    };
    let filter = std::env::var("USERSTREAM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match format {
        crate::cli::LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        crate::cli::LogFormat::Json => builder.json().with_current_span(false).try_init(),
    };
}
