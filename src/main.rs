//! The `userstream` binary: parses the command line and hands over to [`userstream::commands`].

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = userstream::cli::Cli::parse();
    userstream::telemetry::init_logging(
        cli.global.verbose,
        cli.global.quiet,
        cli.global.log_format,
    );
    match userstream::commands::dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(exit) = err.downcast_ref::<userstream::commands::ExitWith>() {
                eprintln!("{}", exit.message);
                return ExitCode::from(exit.code);
            }
            eprintln!("error: {}", userstream::error_chain::describe(err.as_ref()));
            ExitCode::FAILURE
        }
    }
}
