//! The `lakefold` command.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match lakefold::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(lakefold::cli::EXIT_USAGE),
            };
        }
    };
    ExitCode::from(lakefold::cli::main(cli))
}
