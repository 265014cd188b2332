//! `bwmon`: parse the command line, run, map the error to an exit status.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = bwmon::cli::Cli::parse();
    bwmon::app::init_logging(&cli.global);
    match bwmon::app::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("bwmon: {err:#}");
            bwmon::error::exit_code(&err)
        }
    }
}
