//! The history file and `bwmon history` (issue 13, item 2): one JSON line per
//! completed period of a slice — what `policy::plan` reports as ended —
//! appended by the run that ended it, pruned past `history_keep`, and read
//! back newest first with a total per slice, as a table, JSON or CSV.
//!
//! **Crash ordering.** A run appends the periods it ended *before* it saves
//! the state that moves past them, and fsyncs the append first. Killed
//! between the two, the next run still has the old state, ends the same
//! periods again (with the bytes counted meanwhile) and appends them again;
//! a record's key is (name, start), and the reader keeps the last line of a
//! key. So a period is never lost (the save that forgets it comes after its
//! line is on disk) and never counted twice (a repeat replaces the earlier
//! line, whose bytes it includes).
//!
//! **Torn lines.** Each run writes its lines with one `write(2)` on an
//! `O_APPEND` descriptor, so lines of two runs never interleave; a run killed
//! mid-write can leave a last line without its newline. The reader skips any
//! line that is not a record (naming the file and the line); the next append
//! starts on a fresh line so it never glues onto the torn one.
//!
//! **Bounded.** When the oldest line (the first) ended more than
//! `history_keep` ago plus a tenth of it (at most a day), the file is
//! rewritten without the records past `history_keep` — temp file, fsync,
//! rename — so a file with thousands of slices is rewritten about once a
//! day, not at every run.

use crate::config::Config;
use crate::error::Fatal;
use crate::files::{self, with_suffix};
use crate::format;
use crate::json::{Pretty, put_bool, put_str, put_time, put_u64};
use crate::lock::{self, Mode};
use crate::policy::Completed;
use crate::state::{Capped, Store};
use crate::units::{Bytes, Rate};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// The `--format json` document's version.
pub const FORMAT_VERSION: u32 = 1;

/// How `bwmon history` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// A record's keys, in the order the file, `--format json` and the CSV
/// header give them.
const KEYS: [&str; 12] = [
    "name",
    "xid",
    "start",
    "end",
    "low_bytes",
    "i2_bytes",
    "capped",
    "capped_at",
    "low_lowest_ceil_bps",
    "i2_lowest_ceil_bps",
    "mailed",
    "removed",
];

/// One value of a record, for whichever writer.
enum Field<'a> {
    Str(&'a str),
    Num(Option<u64>),
    Time(Option<DateTime<Utc>>),
    Bool(bool),
}

/// A record's values in [`KEYS`] order. The destructuring is exhaustive, so
/// a field added to `Completed` cannot be left out of the three formats.
fn fields(c: &Completed) -> [Field<'_>; 12] {
    let Completed {
        name,
        xid,
        start,
        end,
        lo,
        i2,
        capped,
        cap,
        mailed,
        removed,
    } = c;
    [
        Field::Str(name),
        Field::Num(xid.map(u64::from)),
        Field::Time(Some(*start)),
        Field::Time(Some(*end)),
        Field::Num(Some(lo.0)),
        Field::Num(Some(i2.0)),
        Field::Bool(*capped),
        Field::Time(cap.map(|c| c.at)),
        Field::Num(cap.and_then(|c| c.lo).map(|r| r.0)),
        Field::Num(cap.and_then(|c| c.i2).map(|r| r.0)),
        Field::Bool(*mailed),
        Field::Bool(*removed),
    ]
}

/// One record as a line of the file, times to the nanosecond (the start is
/// half of the record's key).
pub fn line(c: &Completed) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    for (i, (key, value)) in KEYS.iter().zip(fields(c)).enumerate() {
        out.extend_from_slice(if i == 0 { b"{\"" } else { b",\"" });
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":");
        match value {
            Field::Str(s) => put_str(&mut out, s),
            Field::Num(Some(n)) => put_u64(&mut out, n),
            Field::Time(Some(t)) => put_time(&mut out, &t),
            Field::Num(None) | Field::Time(None) => out.extend_from_slice(b"null"),
            Field::Bool(b) => put_bool(&mut out, b),
        }
    }
    out.extend_from_slice(b"}\n");
    out
}

/// A line as read. Unknown keys are ignored, so a later bwmon's lines read.
#[derive(Deserialize)]
struct Line {
    name: String,
    #[serde(default)]
    xid: Option<u16>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    low_bytes: u64,
    i2_bytes: u64,
    #[serde(default)]
    capped: bool,
    #[serde(default)]
    capped_at: Option<DateTime<Utc>>,
    #[serde(default)]
    low_lowest_ceil_bps: Option<u64>,
    #[serde(default)]
    i2_lowest_ceil_bps: Option<u64>,
    #[serde(default)]
    mailed: bool,
    #[serde(default)]
    removed: bool,
}

impl From<Line> for Completed {
    fn from(l: Line) -> Completed {
        Completed {
            name: l.name,
            xid: l.xid,
            start: l.start,
            end: l.end,
            lo: Bytes(l.low_bytes),
            i2: Bytes(l.i2_bytes),
            capped: l.capped || l.capped_at.is_some(),
            cap: l.capped_at.map(|at| Capped {
                at,
                lo: l.low_lowest_ceil_bps.map(Rate),
                i2: l.i2_lowest_ceil_bps.map(Rate),
            }),
            mailed: l.mailed,
            removed: l.removed,
        }
    }
}

/// What a line of the file is.
enum Parsed {
    Record(Completed),
    /// Not a record: why, for the warning.
    Bad(&'static str),
    /// Only whitespace (a hand edit): nothing to say.
    Blank,
}

fn parse(line: &[u8], terminated: bool) -> Parsed {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Parsed::Blank;
    }
    if !terminated {
        return Parsed::Bad("cut short (a run killed while writing it?)");
    }
    match serde_json::from_slice::<Line>(line) {
        Ok(l) => Parsed::Record(l.into()),
        Err(_) => Parsed::Bad("not a history record"),
    }
}

/// The file's records in file order, each key's last line only; a line
/// that is not a record is skipped with a warning naming it by number. A
/// missing file is an empty history.
pub fn read(path: &Path) -> Result<Vec<Completed>, Fatal> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(Fatal::Io(format!(
                "cannot read history file {}: {e}",
                path.display()
            )));
        }
    };
    let mut records = Vec::new();
    for (n, line, terminated) in lines(&text) {
        match parse(line, terminated) {
            Parsed::Record(c) => records.push(c),
            Parsed::Bad(why) => log::warn!(
                "history file {}: line {n} is {why}: skipped",
                path.display()
            ),
            Parsed::Blank => {}
        }
    }
    Ok(last_of_each_key(records))
}

/// (1-based number, text without its newline, whether it had one).
fn lines(text: &[u8]) -> impl Iterator<Item = (usize, &[u8], bool)> {
    let mut rest = text;
    let mut n = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        n += 1;
        let (line, terminated) = match rest.iter().position(|&b| b == b'\n') {
            Some(i) => {
                let line = &rest[..i];
                rest = &rest[i + 1..];
                (line, true)
            }
            None => (std::mem::take(&mut rest), false),
        };
        Some((n, line, terminated))
    })
}

/// A repeated (name, start) is a period appended again by a run after one
/// killed before its save: the later line has all the bytes, and replaces
/// the earlier one where it stood.
fn last_of_each_key(records: Vec<Completed>) -> Vec<Completed> {
    let mut last: HashMap<(String, DateTime<Utc>), usize> = HashMap::new();
    for (i, c) in records.iter().enumerate() {
        last.insert((c.name.clone(), c.start), i);
    }
    records
        .into_iter()
        .enumerate()
        .filter(|(i, c)| last.get(&(c.name.clone(), c.start)) == Some(i))
        .map(|(_, c)| c)
        .collect()
}

/// Appends the periods a run ended, fsynced, as one write; then prunes the
/// file when its oldest record is well past `keep`. Nothing to append:
/// nothing is touched.
pub fn append(
    path: &Path,
    ended: &[Completed],
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<(), Fatal> {
    if ended.is_empty() {
        return Ok(());
    }
    let io = |what: &str, e: std::io::Error| {
        Fatal::Io(format!(
            "cannot {what} history file {}: {e}; the {} period(s) that ended this run are not recorded in it (enforcement went on)",
            path.display(),
            ended.len()
        ))
    };
    let mut file = OpenOptions::new()
        .append(true)
        .create(true)
        .read(true)
        .open(path)
        .map_err(|e| io("open", e))?;
    let len = file.metadata().map_err(|e| io("read", e))?.len();
    let mut buf = Vec::with_capacity(256 * ended.len() + 1);
    if len > 0 {
        let mut last = [0u8];
        file.read_exact_at(&mut last, len - 1)
            .map_err(|e| io("read", e))?;
        if last[0] != b'\n' {
            log::warn!(
                "history file {}: its last line was cut short (a run killed while writing it?); it is skipped when read, and this run's records start on a line of their own",
                path.display()
            );
            buf.push(b'\n');
        }
    }
    for c in ended {
        buf.extend_from_slice(&line(c));
    }
    file.write_all(&buf)
        .and_then(|()| file.sync_data())
        .map_err(|e| io("append to", e))?;
    drop(file);
    if needs_pruning(path, now, keep) {
        prune(path, now, keep)?;
    }
    Ok(())
}

/// The moment before which records are pruned.
fn cutoff(now: DateTime<Utc>, keep: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(keep)
        .ok()
        .and_then(|d| now.checked_sub_signed(d))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// Whether the first line ended before the cutoff by more than the slack
/// (a tenth of `keep`, at most a day), or is no record: one line read.
fn needs_pruning(path: &Path, now: DateTime<Utc>, keep: Duration) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    let mut first = Vec::new();
    if BufReader::new(file).read_until(b'\n', &mut first).is_err() {
        return false;
    }
    let terminated = first.last() == Some(&b'\n');
    let slack = (keep / 10).min(Duration::from_hours(24));
    match parse(first.trim_ascii_end(), terminated) {
        Parsed::Record(c) => c.end < cutoff(now, keep + slack),
        Parsed::Bad(_) | Parsed::Blank => true,
    }
}

/// Rewrites the file with the records that ended within `keep` (each key's
/// last), atomically: a reader sees the old file or the new one.
pub fn prune(path: &Path, now: DateTime<Utc>, keep: Duration) -> Result<(), Fatal> {
    let io = |what: &str, p: &Path, e: std::io::Error| {
        Fatal::Io(format!(
            "cannot {what} {} while pruning the history file: {e}; it is left as it was",
            p.display()
        ))
    };
    let text = fs::read(path).map_err(|e| io("read", path, e))?;
    let cut = cutoff(now, keep);
    let mut records = Vec::new();
    let mut dropped_bad = 0;
    for (_, l, terminated) in lines(&text) {
        match parse(l, terminated) {
            Parsed::Record(c) => records.push(c),
            Parsed::Bad(_) => dropped_bad += 1,
            Parsed::Blank => {}
        }
    }
    let before = records.len();
    let kept: Vec<Completed> = last_of_each_key(records)
        .into_iter()
        .filter(|c| c.end >= cut)
        .collect();
    let mut out = Vec::with_capacity(text.len());
    for c in &kept {
        out.extend_from_slice(&line(c));
    }
    let failed = |f: files::Failed| io(f.what, &f.path, f.error);
    let tmp = with_suffix(path, ".tmp");
    files::write_synced(&tmp, &out).map_err(failed)?;
    files::rename_synced(&tmp, path).map_err(failed)?;
    log::info!(
        "history file {}: pruned {} record(s) older than {} and {dropped_bad} unreadable line(s)",
        path.display(),
        before - kept.len(),
        humantime::format_duration(keep)
    );
    Ok(())
}

/// One slice's periods shown, summed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Total {
    pub name: String,
    pub periods: usize,
    pub lo: Bytes,
    pub i2: Bytes,
    pub capped: usize,
}

/// What `bwmon history` shows: periods newest first, totals by name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct View {
    pub file: PathBuf,
    pub since: Option<DateTime<Utc>>,
    pub periods: Vec<Completed>,
    pub totals: Vec<Total>,
}

/// The records of `names` (all when empty) that started at or after `since`,
/// newest end first (then by name), and a total per slice.
pub fn view(
    file: &Path,
    mut records: Vec<Completed>,
    names: &[String],
    since: Option<DateTime<Utc>>,
) -> View {
    records.retain(|c| {
        (names.is_empty() || names.contains(&c.name)) && since.is_none_or(|s| c.start >= s)
    });
    records.sort_by(|a, b| {
        b.end
            .cmp(&a.end)
            .then_with(|| a.name.cmp(&b.name))
            .then_with(|| b.start.cmp(&a.start))
    });
    let mut totals: BTreeMap<&str, Total> = BTreeMap::new();
    for c in &records {
        let t = totals.entry(&c.name).or_insert_with(|| Total {
            name: c.name.clone(),
            periods: 0,
            lo: Bytes(0),
            i2: Bytes(0),
            capped: 0,
        });
        t.periods += 1;
        t.lo = Bytes(t.lo.0.saturating_add(c.lo.0));
        t.i2 = Bytes(t.i2.0.saturating_add(c.i2.0));
        t.capped += usize::from(c.capped);
    }
    let totals = totals.into_values().collect();
    View {
        file: file.to_path_buf(),
        since,
        periods: records,
        totals,
    }
}

fn minute(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M").to_string()
}

impl View {
    /// Aligned columns, 80 wide for names up to 16 characters (as `status`):
    /// sizes in four characters, flags M (mailed) and R (removed).
    pub fn table(&self) -> String {
        let w = self
            .periods
            .iter()
            .map(|c| c.name.len())
            .max()
            .unwrap_or(0)
            .max(16);
        let mut rows = vec![format!(
            "{:<w$} {:>4} {:<16} {:<16} {:>4} {:>4} {:<11} F",
            "SLICE", "XID", "START", "END", "LOW", "I2", "CAPPED"
        )];
        if self.periods.is_empty() {
            let since = self
                .since
                .map_or_else(String::new, |s| format!(" since {}", minute(&s)));
            rows.push(format!(
                "no completed period{since} in {}",
                self.file.display()
            ));
        }
        rows.extend(self.periods.iter().map(|c| period_row(c, w)));
        if !self.totals.is_empty() {
            rows.push("Totals:".into());
            rows.extend(self.totals.iter().map(|t| total_row(t, w)));
        }
        rows.push(format::HISTORY_LEGEND.into());
        // Trailing blanks of the padded last columns help nobody.
        let mut out = String::with_capacity(81 * rows.len());
        for r in &rows {
            out.push_str(r.trim_end());
            out.push('\n');
        }
        out
    }

    /// Stable JSON: bytes, bit/s, RFC 3339 times to the second.
    pub fn json(&self) -> String {
        let mut p = Pretty::with_capacity(512 + 400 * self.periods.len());
        p.open(b'{');
        p.u64("format_version", u64::from(FORMAT_VERSION));
        p.str("file", &self.file.display().to_string());
        p.time_secs("since", self.since.as_ref());
        p.key("periods");
        p.open(b'[');
        for c in &self.periods {
            p.element();
            p.open(b'{');
            for (key, value) in KEYS.iter().zip(fields(c)) {
                match value {
                    Field::Str(s) => p.str(key, s),
                    Field::Num(Some(n)) => p.u64(key, n),
                    Field::Num(None) => p.null(key),
                    Field::Time(t) => p.time_secs(key, t.as_ref()),
                    Field::Bool(b) => p.bool(key, b),
                }
            }
            p.close(b'}');
        }
        p.close(b']');
        p.key("totals");
        p.open(b'[');
        for t in &self.totals {
            p.element();
            p.open(b'{');
            p.str("name", &t.name);
            p.u64("periods", count(t.periods));
            p.u64("low_bytes", t.lo.0);
            p.u64("i2_bytes", t.i2.0);
            p.u64("capped_periods", count(t.capped));
            p.close(b'}');
        }
        p.close(b']');
        p.close(b'}');
        let mut text = p.finish();
        text.push(b'\n');
        String::from_utf8(text).unwrap_or_else(|e| unreachable!("only UTF-8 is written: {e}"))
    }

    /// RFC 4180 CSV with a header line, one row per period; no total rows,
    /// so that a spreadsheet's sum of a column is the total.
    pub fn csv(&self) -> String {
        let mut out = KEYS.join(",");
        out.push('\n');
        for c in &self.periods {
            let row: Vec<String> = fields(c)
                .into_iter()
                .map(|value| match value {
                    Field::Str(s) => csv_field(s),
                    Field::Num(n) => n.map_or_else(String::new, |n| n.to_string()),
                    Field::Time(t) => t.map_or_else(String::new, format::rfc3339),
                    Field::Bool(b) => b.to_string(),
                })
                .collect();
            out.push_str(&row.join(","));
            out.push('\n');
        }
        out
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Table => self.table(),
            Format::Json => self.json(),
            Format::Csv => self.csv(),
        }
    }
}

fn period_row(c: &Completed, w: usize) -> String {
    let capped = match (&c.cap, c.capped) {
        (Some(cap), _) => cap.at.format("%m-%d %H:%M").to_string(),
        (None, true) => "yes".into(),
        (None, false) => "-".into(),
    };
    let flags = match (c.mailed, c.removed) {
        (true, true) => "MR",
        (true, false) => "M",
        (false, true) => "R",
        (false, false) => "-",
    };
    format!(
        "{:<w$} {:>4} {:<16} {:<16} {:>4} {:>4} {:<11} {flags}",
        c.name,
        c.xid.map_or_else(|| "-".into(), |x| x.to_string()),
        minute(&c.start),
        minute(&c.end),
        format::bytes_short(c.lo),
        format::bytes_short(c.i2),
        capped,
    )
}

/// Under the period rows: the count where the times were, the sums under
/// LOW and I2.
fn total_row(t: &Total, w: usize) -> String {
    let periods = format!(
        "{} period{}",
        t.periods,
        if t.periods == 1 { "" } else { "s" }
    );
    let capped = if t.capped > 0 {
        format!("{} capped", t.capped)
    } else {
        String::new()
    };
    format!(
        "{:<w$} {:>4} {periods:<33} {:>4} {:>4} {capped}",
        t.name,
        "",
        format::bytes_short(t.lo),
        format::bytes_short(t.i2),
    )
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A field quoted when it holds a comma, a quote or a line break (quotes
/// doubled), and when it starts with what a spreadsheet takes for a formula.
fn csv_field(s: &str) -> String {
    let formula = s.starts_with(['=', '+', '-', '@']);
    if formula || s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// `bwmon history`: the file read under the state's shared lock (a sync's
/// append and prune are never seen half done). A name that is neither in the
/// history nor in the state exits 3, as `status` does; the others are shown.
pub fn run(
    cfg: &Config,
    names: &[String],
    since: Option<DateTime<Utc>>,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Shared, cfg.lock_wait)?;
    let records = read(&cfg.history_file)?;
    let mut unknown = false;
    if !names.is_empty() {
        // A slice without a completed period yet is known, only quiet.
        let state = store.load().ok().flatten().unwrap_or_default();
        for n in names {
            let known = records.iter().any(|c| &c.name == n)
                || state.slices.values().any(|s| &s.name == n)
                || state.dead.contains_key(n);
            if !known {
                log::error!(
                    "unknown slice {n}: no period of it in {} and none in the state; `bwmon history` without names lists them all",
                    cfg.history_file.display()
                );
                unknown = true;
            }
        }
    }
    let text = view(&cfg.history_file, records, names, since).render(format);
    // A closed pipe (`bwmon history | head`) is not an error worth a message.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::from(if unknown { 3 } else { 0 }))
}

#[cfg(test)]
mod tests;
