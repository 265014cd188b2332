//! From the parsed command line to a command: logging, configuration, the
//! clock, and dispatch. The commands themselves live in `init`, `sync`,
//! `status`, `reset`, `explain` and `history`.

use crate::cli::{Cli, Command, ExplainFormat, FormatArg, Global, HistoryFormatArg};
use crate::config::{Config, Overrides};
use crate::context::Context;
use crate::status::Format;
use chrono::Utc;
use std::io::Write;
use std::process::ExitCode;

/// stderr, one line per message, `bwmon: ` first; default level warn, so a
/// cron run with nothing to report prints nothing.
pub fn init_logging(g: &Global) {
    let level = if g.quiet {
        log::LevelFilter::Error
    } else {
        match g.verbose {
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    };
    let mut b = env_logger::Builder::new();
    b.filter_level(level);
    if g.verbose == 0
        && !g.quiet
        && let Ok(spec) = std::env::var("RUST_LOG")
    {
        b.parse_filters(&spec);
    }
    b.format(|buf, record| {
        // Errors read like the fatal ones main prints; warnings say so.
        let level = if record.level() == log::Level::Warn {
            "warning: "
        } else {
            ""
        };
        writeln!(buf, "bwmon: {level}{}", record.args())
    });
    let _ = b.try_init();
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Generate(args) = &cli.command {
        crate::manual::generate(&args.what, &mut std::io::stdout().lock())?;
        return Ok(ExitCode::SUCCESS);
    }
    let g = cli.global;
    let config = Config::load(&Overrides {
        config: g.config,
        dev: g.dev,
        state: g.state,
    })?;
    // `--now` also asks `explain` what a sync would decide at that time.
    let what_if = g.now.is_some();
    let ctx = Context {
        config,
        now: g.now.unwrap_or_else(Utc::now),
    };
    match cli.command {
        Command::Init(args) => crate::init::run(&ctx, args.bwcap, args.bwmax),
        Command::Sync(args) => crate::sync::run(
            &ctx,
            crate::sync::Options {
                input: args.input.as_deref(),
                dry_run: args.dry_run,
                rebuild_state: args.rebuild_state,
                allow_mass_removal: args.allow_mass_removal,
            },
        ),
        Command::Status(args) => {
            let format = match args.format {
                FormatArg::Table => Format::Table {
                    legend: !args.no_legend,
                },
                FormatArg::Json => Format::Json,
                FormatArg::Prometheus => Format::Prometheus,
            };
            crate::status::run(&ctx, &args.slices, format, args.check)
        }
        Command::Reset(args) => crate::reset::run(&ctx, &args.slice, args.dry_run),
        Command::Explain(args) => {
            let format = match args.format {
                ExplainFormat::Table => crate::explain::Format::Table,
                ExplainFormat::Json => crate::explain::Format::Json,
            };
            crate::explain::run(&ctx, &args.slice, format, what_if)
        }
        Command::Teardown => crate::init::teardown(&ctx),
        Command::History(args) => {
            let format = match args.format {
                HistoryFormatArg::Table => crate::history::Format::Table,
                HistoryFormatArg::Json => crate::history::Format::Json,
                HistoryFormatArg::Csv => crate::history::Format::Csv,
            };
            crate::history::run(&ctx.config, &args.slices, args.since, format)
        }
        Command::Generate(_) => unreachable!("handled before the config is read"),
    }
}

/// At -vv, bwmon's own peak resident memory (the kernel's `VmHWM`), which
/// unlike wait4's figure leaves out the tc it spawned.
pub fn log_peak_memory() {
    if !log::log_enabled!(log::Level::Debug) {
        return;
    }
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(kib) = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    {
        log::debug!("peak memory: {kib} KiB");
    }
}
