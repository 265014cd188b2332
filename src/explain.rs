//! `bwmon explain SLICE`: the numbers behind a slice's ceils, for the
//! support desk's "why is my slice slow". For each class: the decision of
//! the last sync, rebuilt from what the state recorded (the counter it read,
//! the limits in force, the time); with `--now`, also what a sync would
//! decide now from the live counter. Read-only, under the shared lock.

use crate::context::Context;
use crate::error::Fatal;
use crate::format;
use crate::format::rfc3339;
use crate::json::Pretty;
use crate::lock::{self, Mode};
use crate::policy::{
    Clamp, Decision, Kind, class_of, decide, period_over, plus_secs, slice_class, start_period,
};
use crate::state::{SliceState, Store, is_special};
use crate::tc::kernel::Kernel;
use crate::units::Rate;
use chrono::{DateTime, Utc};
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
}

/// One class's decisions: at the last sync, and now when asked.
struct Explained {
    kind: Kind,
    last: Decision,
    now: Option<Decision>,
}

pub fn run(ctx: &Context, name: &str, format: Format, what_if: bool) -> anyhow::Result<ExitCode> {
    let cfg = &ctx.config;
    let store = Store::new(&cfg.state_file);
    let _lock = lock::acquire(&store.lock_path(), Mode::Shared, cfg.lock_wait)?;
    let state = store.load()?.unwrap_or_default();
    let Some(slice) = state.slices.values().find(|s| s.name == name) else {
        log::error!("unknown slice {name}: `bwmon status` lists the slices");
        return Ok(ExitCode::from(3));
    };
    let Some(last_sync) = state.last_sync else {
        return Err(Fatal::BadData(format!(
            "{}: no sync has run yet, so there is no decision to explain",
            cfg.state_file.display()
        ))
        .into());
    };
    let special = is_special(slice.xid);
    // The live counters, only for the what-if: without `--now` nothing but
    // the state is read.
    let live = if what_if {
        let classes = Kernel::open(&cfg.dev)?.dump_classes()?;
        Some(Kind::BOTH.map(|kind| slice_class(&classes, kind, slice.xid).map(|c| c.sent)))
    } else {
        None
    };
    let period = cfg.period_secs;
    let classes: Vec<Explained> = Kind::BOTH
        .into_iter()
        .enumerate()
        .map(|(i, kind)| {
            let c = class_of(slice, kind);
            let last = decide(c, c.last, slice.start, last_sync, period, special);
            let now = live.map(|counters| {
                // A class gone from the kernel counts what it had counted.
                let counter = counters[i].unwrap_or(c.last);
                if period_over(slice.start, ctx.now, period) {
                    // A sync now starts a new period: nothing used yet.
                    let mut fresh = c.clone();
                    start_period(&mut fresh, counter);
                    decide(&fresh, counter, ctx.now, ctx.now, period, special)
                } else {
                    decide(c, counter, slice.start, ctx.now, period, special)
                }
            });
            Explained { kind, last, now }
        })
        .collect();
    let bwcap = state.hierarchy.get(&cfg.dev).map(|h| h.bwcap);
    let text = match format {
        Format::Table => table(slice, &classes, last_sync, ctx.now, period, bwcap),
        Format::Json => json(slice, &classes, last_sync, ctx.now, period),
    };
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(ExitCode::SUCCESS)
}

fn clamp_words(d: &Decision, kind: Kind, bwcap: Option<Rate>) -> String {
    match d.clamp {
        Clamp::NeverCapped => "none: bwmon's own class, never capped".into(),
        Clamp::UnderThreshold => format!(
            "none: under the threshold, so the ceil is the max {}",
            d.max
        ),
        Clamp::None => format!("none: between the min {} and the max {}", d.min, d.max),
        Clamp::AtMax => format!("the formula is at or above the max {}: not capped", d.max),
        Clamp::RaisedToMin => {
            let mut s = format!("raised to the min rate {}", d.min);
            if kind == Kind::Low && bwcap.is_some_and(|cap| d.min == Rate(cap.0 / 4)) {
                let _ = write!(
                    s,
                    " (a min is at most 25 % of the node cap {})",
                    bwcap.unwrap_or_default()
                );
            }
            s
        }
    }
}

fn table(
    s: &SliceState,
    classes: &[Explained],
    last_sync: DateTime<Utc>,
    now: DateTime<Utc>,
    period: u64,
    bwcap: Option<Rate>,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} (xid {}), period {} to {}",
        s.name,
        s.xid,
        rfc3339(s.start),
        rfc3339(plus_secs(s.start, period))
    );
    let first_cap = s.capped.as_ref().map(|c| rfc3339(c.at));
    let _ = writeln!(
        out,
        "mailed: {}",
        match (s.mailed, &first_cap) {
            (true, Some(at)) =>
                format!("yes, at its first cap this period ({at}) or the run after"),
            (true, None) => "yes, this period".to_string(),
            (false, Some(at)) => format!("no (capped since {at}; mail failed or disabled)"),
            (false, None) => "no".to_string(),
        }
    );
    for c in classes {
        let id = c.kind.class_id(s.xid);
        let mut block = |when: &str, d: &Decision| {
            let _ = writeln!(out, "\n{} class {id}, {when}:", c.kind.describe());
            let bytes = |label: &str, b: crate::units::Bytes, how: &str| {
                format!("  {label:<13} {:>26} bytes{how}\n", format::grouped(b.0))
            };
            out.push_str(&bytes("counter", d.counter, ""));
            out.push_str(&bytes("baseline", d.base, ""));
            out.push_str(&bytes("carried", d.carried, ""));
            out.push_str(&bytes("used", d.used, "  = counter - baseline + carried"));
            out.push_str(&bytes("threshold", d.threshold, ""));
            out.push_str(&bytes("quota", d.quota, ""));
            out.push_str(&bytes("left", d.left, "  = quota - used"));
            let _ = writeln!(
                out,
                "  {:<13} {:>26} s      of {} s",
                "seconds left",
                format::grouped(d.secs_left),
                format::grouped(period)
            );
            match d.formula {
                Some(f) => {
                    let _ = writeln!(
                        out,
                        "  {:<13} left x 8 / seconds left = {} x 8 / {} = {} bit/s",
                        "formula",
                        format::grouped(d.left.0),
                        format::grouped(d.secs_left),
                        format::grouped(f.0)
                    );
                }
                None => {
                    let _ = writeln!(
                        out,
                        "  {:<13} not applied (used is under the threshold)",
                        "formula"
                    );
                }
            }
            let _ = writeln!(out, "  {:<13} {}", "clamps", clamp_words(d, c.kind, bwcap));
            let _ = writeln!(
                out,
                "  {:<13} {} bit/s (tc shows {})",
                "ceil",
                format::grouped(d.ceil.0),
                format::rate_tc_shows(d.ceil)
            );
        };
        block(
            &format!("at the last sync ({})", rfc3339(last_sync)),
            &c.last,
        );
        if let Some(d) = &c.now {
            block(&format!("if a sync ran now ({})", rfc3339(now)), d);
        }
    }
    out
}

fn json(
    s: &SliceState,
    classes: &[Explained],
    last_sync: DateTime<Utc>,
    now: DateTime<Utc>,
    period: u64,
) -> String {
    let mut j = Pretty::with_capacity(4096);
    j.open(b'{');
    j.u64("format_version", 1);
    j.str("name", &s.name);
    j.u64("xid", u64::from(s.xid));
    j.time_secs("period_start", Some(&s.start));
    j.time_secs("period_end", Some(&plus_secs(s.start, period)));
    j.u64("period_seconds", period);
    j.bool("mailed", s.mailed);
    // The mail goes out in the sync that first caps the slice in a period.
    j.time_secs("first_capped", s.capped.as_ref().map(|c| &c.at));
    j.key("classes");
    j.open(b'[');
    for c in classes {
        j.element();
        j.open(b'{');
        j.str("class", if c.kind == Kind::Low { "low" } else { "i2" });
        j.str("id", &c.kind.class_id(s.xid).to_string());
        for (key, at, d) in [
            ("last_sync", Some(last_sync), Some(&c.last)),
            ("now", Some(now), c.now.as_ref()),
        ] {
            match (at, d) {
                (Some(at), Some(d)) => {
                    j.key(key);
                    decision_json(&mut j, at, d);
                }
                _ => j.null(key),
            }
        }
        j.close(b'}');
    }
    j.close(b']');
    j.close(b'}');
    j.out.push(b'\n');
    String::from_utf8(j.finish()).unwrap_or_else(|e| unreachable!("only UTF-8 is written: {e}"))
}

fn decision_json(j: &mut Pretty, at: DateTime<Utc>, d: &Decision) {
    j.open(b'{');
    j.time_secs("at", Some(&at));
    j.u64("counter_bytes", d.counter.0);
    j.u64("baseline_bytes", d.base.0);
    j.u64("carried_bytes", d.carried.0);
    j.u64("used_bytes", d.used.0);
    j.u64("threshold_bytes", d.threshold.0);
    j.u64("quota_bytes", d.quota.0);
    j.u64("left_bytes", d.left.0);
    j.u64("elapsed_seconds", d.elapsed_secs);
    j.u64("seconds_left", d.secs_left);
    match d.formula {
        Some(f) => j.u64("formula_bps", f.0),
        None => j.null("formula_bps"),
    }
    j.u64("min_bps", d.min.0);
    j.u64("max_bps", d.max.0);
    j.str(
        "clamp",
        match d.clamp {
            Clamp::UnderThreshold => "under_threshold",
            Clamp::NeverCapped => "never_capped",
            Clamp::None => "none",
            Clamp::RaisedToMin => "raised_to_min",
            Clamp::AtMax => "at_max",
        },
    );
    j.u64("ceil_bps", d.ceil.0);
    j.str("ceil_tc", &format::rate_tc_shows(d.ceil));
    j.close(b'}');
}
