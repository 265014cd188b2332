//! The command line as clap sees it. Nothing outside this module touches clap
//! types: `config::Settings::resolve` turns these into a validated `Config`.

use crate::units::{Rate, parse_rate};
use chrono::{DateTime, Utc};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Soft daily bandwidth quotas per slice on tc HTB classes.
#[derive(Debug, Parser)]
#[command(name = "bwmon", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Configuration file [default: /etc/bwmon/bwmon.yaml, if present]
    #[arg(short, long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Egress device to shape (overrides `dev` in the config)
    #[arg(long, global = true, value_name = "IFACE")]
    pub dev: Option<String>,
    /// State file (overrides `state_file` in the config)
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// More output: -v says what changed, -vv why
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Act as if this were the current time (RFC 3339), for tests and what-ifs
    #[arg(long, global = true, hide = true, value_name = "RFC3339", value_parser = parse_now)]
    pub now: Option<DateTime<Utc>>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the HTB hierarchy on the device, or change its cap
    Init(InitArgs),
    /// Run the enforcement cycle once: new and dead slices, usage, caps, mail
    Sync(SyncArgs),
    /// Show where every slice stands: usage, limits, caps, period end
    Status(StatusArgs),
    /// Start a new period for one slice now: caps lifted, usage and mail flag cleared
    Reset(ResetArgs),
    /// The numbers behind a slice's ceils: used, threshold, quota, what is left, the formula, the clamps
    Explain(ExplainArgs),
    /// Remove the HTB hierarchy bwmon made on the device (the state file, with the node cap, is kept: a later `init` reuses it)
    Teardown,
    /// Show usage per completed period, from the history file: newest first, with a total per slice
    History(HistoryArgs),
    /// Write the man page or a shell completion script to stdout
    #[command(hide = true)]
    Generate(GenerateArgs),
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: Generated,
}

#[derive(Debug, Subcommand)]
pub enum Generated {
    /// The man page, roff
    Man,
    /// A completion script
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Node cap: ceil of all non-exempt traffic (tc rate, e.g. 100mbit) [default: the cap in force, else the one the state remembers, else config `bwcap`, else bwmax]
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub bwcap: Option<Rate>,
    /// Hardware maximum: ceil of exempt traffic and of the root class
    #[arg(long, value_name = "RATE", value_parser = parse_rate)]
    pub bwmax: Option<Rate>,
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Read the slivers JSON from FILE instead of the config's `input` or stdin
    #[arg(long, value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Print the changes (as `tc` commands an operator can replay) and mails it would make; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Go on even if this run would remove more than `max_removal_percent`
    /// of the live slices (and more than 3), or the input yields no live slice
    #[arg(long)]
    pub allow_mass_removal: bool,
    /// Start a new state from the kernel's current counters, when the state
    /// file and its backup are both unusable (usage before now is lost)
    #[arg(long)]
    pub rebuild_state: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Show only these slices
    #[arg(value_name = "SLICE")]
    pub slices: Vec<String>,
    /// Output format
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// For monitoring checks: exit 1 when a slice shown is capped, else 3 when
    /// a SLICE name is unknown, else 0 (Nagios: OK, WARNING, UNKNOWN)
    #[arg(long)]
    pub check: bool,
    /// Leave out the two legend lines under the table (what its units and
    /// flags mean), for scripts that read the rows
    #[arg(long)]
    pub no_legend: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Aligned columns for people (80 columns for names up to 16 characters): bytes in IEC units (K = KiB), rates in SI bit/s (k = 1000), a legend under it
    Table,
    /// Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`
    Json,
    /// Prometheus text, for the node exporter's textfile collector
    Prometheus,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The slice to explain
    #[arg(value_name = "SLICE")]
    pub slice: String,
    /// Output format
    #[arg(long, value_enum, default_value_t = ExplainFormat::Table)]
    pub format: ExplainFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExplainFormat {
    /// One block per class, every byte shown
    Table,
    /// Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`
    Json,
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Show only these slices
    #[arg(value_name = "SLICE")]
    pub slices: Vec<String>,
    /// Only periods that started at or after DATE (RFC 3339, or YYYY-MM-DD for midnight UTC)
    #[arg(long, value_name = "DATE", value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Output format
    #[arg(long, value_enum, default_value_t = HistoryFormatArg::Table)]
    pub format: HistoryFormatArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HistoryFormatArg {
    /// Aligned columns for people, then a total per slice
    Table,
    /// Stable JSON: bytes, bit/s, RFC 3339 times, `format_version`, `totals`
    Json,
    /// CSV with a header line, one row per period (no total rows)
    Csv,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The slice to forgive
    #[arg(value_name = "SLICE")]
    pub slice: String,
    /// Print the changes it would make, as `tc` commands; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_since(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: use RFC 3339 (2026-11-24T15:00:00Z) or a day (2026-11-24)"))
}

fn parse_now(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{e}: use RFC 3339, e.g. 2026-11-24T15:00:00Z"))
}
