//! `bwmon`: parse the command line, run, map the error to an exit status.

use clap::Parser;
use std::io::Write;
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
            // clap's whole message: what is wrong, its tip ("a similar subcommand
            // exists", the possible values), the usage line and where to look;
            // `bwmon: ` where clap says `error: `. Coloured as clap would
            // (`ColorChoice::Auto`): plain when stderr is not a terminal.
            // A bare `bwmon` gets the help, on stderr, as it is.
            let rendered = e.render();
            let mut text = rendered.ansi().to_string();
            if rendered.to_string().starts_with("error:") {
                text = text.replacen("error:", "bwmon:", 1);
            }
            let _ = write!(anstream::stderr(), "{text}");
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
