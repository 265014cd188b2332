//! `bwmon`: parse the command line, run, map the error to an exit status.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match bwmon::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help and --version: clap's own output, exit 0.
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other error: clap's first line, then where to look.
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("bwmon: {first}; see `bwmon --help`");
            return ExitCode::from(2);
        }
    };
    bwmon::app::init_logging(&cli.global);
    let result = bwmon::app::run(cli);
    bwmon::app::log_peak_memory();
    match result {
        Ok(code) => code,
        // A reader that went away (`bwmon generate man | head`) is not an error.
        Err(err)
            if err.chain().any(|e| {
                e.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("bwmon: {err:#}");
            bwmon::error::exit_code(&err)
        }
    }
}
