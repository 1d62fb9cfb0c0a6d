//! The `userstream` binary: parses the command line and hands over to [`userstream::commands`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = userstream::cli::Cli::parse();
    userstream::telemetry::init_logging(cli.global.verbose, cli.global.quiet);
    match userstream::commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The whole context chain on one line ("loading config: ...: ..."), like `{:#}`, but without
/// repeating a cause that an outer message already quotes (our error types name their cause in
/// their own message and also expose it as their source).
fn describe(err: &anyhow::Error) -> String {
    let mut message = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}
