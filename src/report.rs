//! What `status` shows and the metrics file holds: a view of every slice
//! built from the state and one tc dump (live counters), and its three
//! renderings — an 80-column table for people (figures as `crate::format`
//! writes them, and its legend), stable JSON for scripts, and Prometheus
//! text for the node exporter's textfile collector. `status --format
//! prometheus` and the `metrics_file` a sync writes are both
//! [`Report::prometheus`], so they hold the same families.

use crate::classes::KernelClass;
use crate::format::rfc3339;
use crate::format::{self, bytes_short, rate_short};
use crate::json::{self, Pretty};
use crate::policy::{KernelIndex, Kind, advance, class_of, plus_secs};
use crate::state::{ClassState, Counters, Hierarchy, SliceState, State, is_special};
use crate::units::{Bytes, Rate};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Duration;

/// The JSON layout's version: bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// About what one slice takes in `status --format json`.
const PER_SLICE: usize = 760;

/// Slices written and sent out at a time by [`Report::write_json`]: about
/// 100 KB, as large as a write need be, small enough that the output is
/// never whole in memory (2.9 MB at 4,000 slices).
const CHUNK: usize = 128;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClassView {
    pub used_bytes: u64,
    pub quota_bytes: u64,
    pub threshold_bytes: u64,
    pub ceil_bps: u64,
    pub max_bps: u64,
    pub min_bps: u64,
    pub capped: bool,
    /// When the quota is reached at the pace since the last sync.
    #[serde(serialize_with = "opt_time")]
    pub full_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SliceView {
    pub name: String,
    pub xid: u16,
    #[serde(serialize_with = "time")]
    pub period_start: DateTime<Utc>,
    #[serde(serialize_with = "time")]
    pub period_end: DateTime<Utc>,
    pub capped: bool,
    pub mailed: bool,
    /// Whether bwmon's nftables maps hold the slice (absent with `classify: none`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classified: Option<bool>,
    pub low: ClassView,
    pub i2: ClassView,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeadView {
    pub name: String,
    #[serde(serialize_with = "time")]
    pub period_start: DateTime<Utc>,
    #[serde(serialize_with = "time")]
    pub period_end: DateTime<Utc>,
    pub mailed: bool,
    pub low_used_bytes: u64,
    pub i2_used_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub bwcap_bps: u64,
    pub bwmax_bps: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format_version: u32,
    pub dev: String,
    #[serde(serialize_with = "time")]
    pub now: DateTime<Utc>,
    #[serde(serialize_with = "opt_time")]
    pub last_sync: Option<DateTime<Utc>>,
    pub period_seconds: u64,
    pub node: Option<NodeView>,
    pub slices: Vec<SliceView>,
    pub dead: Vec<DeadView>,
    /// For the metrics only: JSON stays as `format_version` 1 has it.
    #[serde(skip)]
    pub counters: Counters,
    /// Wall time of the last sync, when its note says.
    #[serde(skip)]
    pub sync_duration: Option<Duration>,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's signature
fn time<S: serde::Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

#[allow(clippy::ref_option)] // serde's signature
fn opt_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// Builds the view. `kernel` gives live counters; a class missing from it
/// shows what was counted up to the last sync.
pub fn build(
    state: &State,
    kernel: &[KernelClass],
    dev: &str,
    node: Option<Hierarchy>,
    period_secs: u64,
    now: DateTime<Utc>,
) -> Report {
    let mut report = from_state(state, dev, period_secs, now);
    report.count(state, kernel, node);
    report
}

/// The view as the state alone has it, as if no class were in the kernel:
/// what [`Report::count`] then completes. Made apart so that `status` can
/// make it (thousands of views, fresh memory) while the kernel dumps.
pub fn from_state(state: &State, dev: &str, period_secs: u64, now: DateTime<Utc>) -> Report {
    let mut report = Report {
        format_version: FORMAT_VERSION,
        dev: dev.to_string(),
        now,
        last_sync: state.last_sync,
        period_seconds: period_secs,
        node: None,
        slices: Vec::with_capacity(state.slices.len()),
        dead: Vec::with_capacity(state.dead.len()),
        counters: state.counters,
        sync_duration: None,
    };
    for s in state.slices.values() {
        let low = view_class(class_of(s, Kind::Low), None, None, None, now);
        let i2 = view_class(class_of(s, Kind::I2), None, None, None, now);
        report.slices.push(SliceView {
            name: s.name.clone(),
            xid: s.xid,
            period_start: s.start,
            period_end: plus_secs(s.start, period_secs),
            capped: low.capped || i2.capped,
            mailed: s.mailed,
            classified: None,
            low,
            i2,
        });
    }
    report.dead.extend(state.dead.values().map(|d| DeadView {
        name: d.name.clone(),
        period_start: d.start,
        period_end: plus_secs(d.start, period_secs),
        mailed: d.mailed,
        low_used_bytes: d.lo.0,
        i2_used_bytes: d.i2.0,
    }));
    report
}

impl Report {
    /// Completes a view [`from_state`] made of the same `state` with the
    /// kernel's counters and ceils, and the node's limits.
    pub fn count(&mut self, state: &State, kernel: &[KernelClass], node: Option<Hierarchy>) {
        debug_assert_eq!(
            self.slices.len(),
            state.slices.len(),
            "a view of another state"
        );
        let counters = KernelIndex::new(kernel);
        let now = self.now;
        let pace_secs = state
            .last_sync
            .and_then(|t| u64::try_from((now - t).num_seconds()).ok())
            .filter(|&s| s > 0);
        let class_view = |s: &SliceState, kind: Kind| {
            let kc = counters.get((kind, s.xid));
            view_class(
                class_of(s, kind),
                kc.map(|k| k.sent),
                kc.map(|k| k.ceil),
                pace_secs,
                now,
            )
        };
        for (view, s) in self.slices.iter_mut().zip(state.slices.values()) {
            view.low = class_view(s, Kind::Low);
            view.i2 = class_view(s, Kind::I2);
            view.capped = view.low.capped || view.i2.capped;
        }
        self.node = node.map(|h| NodeView {
            bwcap_bps: h.bwcap.0,
            bwmax_bps: h.bwmax.0,
        });
    }
}

/// The elements of `slices` in [`Report::json`], sent to `w` [`CHUNK`]
/// slices at a time, after what `j` holds. At thousands of slices writing
/// them is most of a status run once the dump is read: a second thread lays
/// the chunks out while this one writes them, two at a time when two are
/// ready (to a file, writes of ~200 KB cost the kernel a third less than
/// ~100 KB ones). Laying out a chunk takes less than writing it to a file,
/// so the writes follow each other back to back. The few buffers in flight
/// go back and forth, so the output never takes fresh memory of its size.
fn write_slices(
    j: &mut Pretty,
    slices: &[SliceView],
    w: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if slices.len() < 4 * CHUNK {
        for s in slices {
            slice_json(j, s);
        }
        return Ok(());
    }
    j.drain_to(w)?;
    std::thread::scope(|scope| {
        // At most two chunks ahead of what is sent.
        let (laid_out, take) = std::sync::mpsc::sync_channel::<Pretty>(2);
        let (emptied, reuse) = std::sync::mpsc::channel::<Vec<u8>>();
        let template = j.part(false, Vec::new());
        scope.spawn(move || {
            for (i, chunk) in slices.chunks(CHUNK).enumerate() {
                let buf = reuse
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(PER_SLICE * CHUNK));
                let mut part = template.part(i > 0, buf);
                for s in chunk {
                    slice_json(&mut part, s);
                }
                // The receiver is gone only when writing failed.
                if laid_out.send(part).is_err() {
                    return;
                }
            }
        });
        // Ends when the other thread has sent every chunk (or panicked:
        // the scope passes its panic on).
        while let Ok(part) = take.recv() {
            let next = take.try_recv().ok();
            let second = next.as_ref().map_or(&[][..], |n| &n.out[..]);
            json::write_all_vectored(w, &[&part.out, second])?;
            j.follow(next.as_ref().unwrap_or(&part));
            for p in std::iter::once(part).chain(next) {
                let _ = emptied.send(p.out);
            }
        }
        Ok(())
    })
}

/// One element of `slices` in [`Report::json`], at the level `write_json`
/// puts it (inside the top-level object's array), laid out as [`Pretty`]
/// would: each run of keys and punctuation is one constant. At thousands of
/// slices this is most of a status run, and the key-by-key writer spent
/// most of its time on runs of a few bytes.
fn slice_json(j: &mut Pretty, s: &SliceView) {
    let SliceView {
        name,
        xid,
        period_start,
        period_end,
        capped,
        mailed,
        classified,
        low,
        i2,
    } = s;
    let first = j.raw_element(2);
    let out = &mut j.out;
    out.extend_from_slice(if first {
        b"\n    {\n      \"name\": "
    } else {
        b",\n    {\n      \"name\": "
    });
    json::put_str(out, name);
    out.extend_from_slice(b",\n      \"xid\": ");
    json::put_u64(out, u64::from(*xid));
    out.extend_from_slice(b",\n      \"period_start\": ");
    json::put_time_secs(out, period_start);
    out.extend_from_slice(b",\n      \"period_end\": ");
    json::put_time_secs(out, period_end);
    out.extend_from_slice(b",\n      \"capped\": ");
    json::put_bool(out, *capped);
    out.extend_from_slice(b",\n      \"mailed\": ");
    json::put_bool(out, *mailed);
    if let Some(c) = classified {
        out.extend_from_slice(b",\n      \"classified\": ");
        json::put_bool(out, *c);
    }
    let classes: [(&[u8], &ClassView); 2] = [
        (b",\n      \"low\": {\n        \"used_bytes\": ", low),
        (b",\n      \"i2\": {\n        \"used_bytes\": ", i2),
    ];
    for (opening, c) in classes {
        let ClassView {
            used_bytes,
            quota_bytes,
            threshold_bytes,
            ceil_bps,
            max_bps,
            min_bps,
            capped,
            full_at,
        } = c;
        out.extend_from_slice(opening);
        json::put_u64(out, *used_bytes);
        let figures: [(&[u8], u64); 5] = [
            (b",\n        \"quota_bytes\": ", *quota_bytes),
            (b",\n        \"threshold_bytes\": ", *threshold_bytes),
            (b",\n        \"ceil_bps\": ", *ceil_bps),
            (b",\n        \"max_bps\": ", *max_bps),
            (b",\n        \"min_bps\": ", *min_bps),
        ];
        for (key, value) in figures {
            out.extend_from_slice(key);
            json::put_u64(out, value);
        }
        out.extend_from_slice(b",\n        \"capped\": ");
        json::put_bool(out, *capped);
        out.extend_from_slice(b",\n        \"full_at\": ");
        match full_at {
            Some(t) => json::put_time_secs(out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b"\n      }");
    }
    out.extend_from_slice(b"\n    }");
}

fn view_class(
    c: &ClassState,
    counter: Option<Bytes>,
    kernel_ceil: Option<Rate>,
    pace_secs: Option<u64>,
    now: DateTime<Utc>,
) -> ClassView {
    let mut live = c.clone();
    let used = match counter {
        Some(n) => {
            advance(&mut live, n);
            live.used(n)
        }
        None => c.used(c.last),
    };
    // Bytes since the last sync over the time since: the slice's current pace.
    let sent_since = counter.map_or(0, |n| n.0.saturating_sub(c.last.0));
    let full_at = if used >= c.quota {
        Some(now)
    } else {
        pace_secs.filter(|_| sent_since > 0).map(|secs| {
            let left = u128::from(c.quota.0 - used.0);
            let eta = left * u128::from(secs) / u128::from(sent_since);
            plus_secs(now, u64::try_from(eta).unwrap_or(u64::MAX))
        })
    };
    // 0 means "not known": then the kernel's figure is the best there is.
    let ceil = if c.ceil.0 == 0 {
        kernel_ceil.unwrap_or(c.max)
    } else {
        c.ceil
    };
    ClassView {
        used_bytes: used.0,
        quota_bytes: c.quota.0,
        threshold_bytes: c.thresh.0,
        ceil_bps: ceil.0,
        max_bps: c.max.0,
        min_bps: c.min.0,
        capped: ceil < c.max,
        full_at,
    }
}

impl Report {
    pub fn any_capped(&self) -> bool {
        self.slices.iter().any(|s| s.capped)
    }

    /// Marks each tenant as held or not by bwmon's nftables maps (`xids`);
    /// root and default are never in them and stay unmarked.
    pub fn mark_classified(&mut self, xids: &BTreeSet<u16>) {
        for s in &mut self.slices {
            if !is_special(s.xid) {
                s.classified = Some(xids.contains(&s.xid));
            }
        }
    }

    /// `status --format json`: what `serde_json::to_string_pretty` writes
    /// for the report (a test holds the two equal), written by hand because
    /// at thousands of slices serde's generic path cost more than the dump.
    pub fn json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024 + PER_SLICE * self.slices.len());
        self.write_json(&mut out)
            .unwrap_or_else(|e| unreachable!("writing to memory cannot fail: {e}"));
        out
    }

    /// [`Report::json`] sent to `w` a piece at a time.
    ///
    /// # Errors
    ///
    /// The first error of `w` (a closed pipe, say); the rest is not written.
    pub fn write_json(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut j = Pretty::with_capacity(PER_SLICE * CHUNK + 1024);
        j.open(b'{');
        j.u64("format_version", u64::from(self.format_version));
        j.str("dev", &self.dev);
        j.time_secs("now", Some(&self.now));
        j.time_secs("last_sync", self.last_sync.as_ref());
        j.u64("period_seconds", self.period_seconds);
        match &self.node {
            Some(NodeView {
                bwcap_bps,
                bwmax_bps,
            }) => {
                j.key("node");
                j.open(b'{');
                j.u64("bwcap_bps", *bwcap_bps);
                j.u64("bwmax_bps", *bwmax_bps);
                j.close(b'}');
            }
            None => j.null("node"),
        }
        j.key("slices");
        j.open(b'[');
        write_slices(&mut j, &self.slices, w)?;
        j.close(b']');
        j.key("dead");
        j.open(b'[');
        for d in &self.dead {
            let DeadView {
                name,
                period_start,
                period_end,
                mailed,
                low_used_bytes,
                i2_used_bytes,
            } = d;
            j.element();
            j.open(b'{');
            j.str("name", name);
            j.time_secs("period_start", Some(period_start));
            j.time_secs("period_end", Some(period_end));
            j.bool("mailed", *mailed);
            j.u64("low_used_bytes", *low_used_bytes);
            j.u64("i2_used_bytes", *i2_used_bytes);
            j.close(b'}');
        }
        j.close(b']');
        j.close(b'}');
        j.out.push(b'\n');
        j.drain_to(w)
    }

    /// Prometheus text (`node_exporter`'s textfile format), by the naming
    /// rules `promtool check metrics` holds it to: base units in the name
    /// (bytes, seconds; a rate is bytes per second, so bit/s are divided by
    /// 8), `_total` on counters, HELP and TYPE for every family.
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(2048 + 1400 * self.slices.len());
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let per_class = |f: &dyn Fn(&ClassView) -> String| -> Vec<(String, String)> {
            self.slices
                .iter()
                .flat_map(|s| {
                    [("low", &s.low), ("i2", &s.i2)]
                        .map(|(class, c)| (labels(&s.name, Some(class)), f(c)))
                })
                .collect()
        };
        let gauge = "gauge";
        family(
            "bwmon_slice_used_bytes",
            gauge,
            "Bytes sent by the slice's class in the current period.",
            per_class(&|c| c.used_bytes.to_string()),
        );
        family(
            "bwmon_slice_quota_bytes",
            gauge,
            "Bytes the class may send per period.",
            per_class(&|c| c.quota_bytes.to_string()),
        );
        family(
            "bwmon_slice_threshold_bytes",
            gauge,
            "Bytes after which the class is capped.",
            per_class(&|c| c.threshold_bytes.to_string()),
        );
        family(
            "bwmon_slice_ceil_bytes_per_second",
            gauge,
            "Ceil applied to the class (tc's bit/s divided by 8).",
            per_class(&|c| bytes_per_second(c.ceil_bps)),
        );
        family(
            "bwmon_slice_max_bytes_per_second",
            gauge,
            "Configured maximum rate of the class (tc's bit/s divided by 8).",
            per_class(&|c| bytes_per_second(c.max_bps)),
        );
        family(
            "bwmon_slice_capped",
            gauge,
            "1 when the class is capped below its maximum rate.",
            per_class(&|c| u8::from(c.capped).to_string()),
        );
        let per_slice = |f: &dyn Fn(&SliceView) -> String| -> Vec<(String, String)> {
            self.slices
                .iter()
                .map(|s| (labels(&s.name, None), f(s)))
                .collect()
        };
        family(
            "bwmon_slice_mailed",
            gauge,
            "1 when the slice was mailed about a cap this period.",
            per_slice(&|s| u8::from(s.mailed).to_string()),
        );
        let classified: Vec<(String, String)> = self
            .slices
            .iter()
            .filter_map(|s| {
                s.classified
                    .map(|c| (labels(&s.name, None), u8::from(c).to_string()))
            })
            .collect();
        if !classified.is_empty() {
            family(
                "bwmon_slice_classified",
                gauge,
                "1 when bwmon's nftables maps send the slice's packets to its classes.",
                classified,
            );
        }
        family(
            "bwmon_slice_period_end_timestamp_seconds",
            gauge,
            "End of the slice's current period, Unix time.",
            per_slice(&|s| unix(s.period_end).to_string()),
        );
        family(
            "bwmon_dead_slice_used_bytes",
            gauge,
            "Bytes used this period by a removed slice, kept until its period ends.",
            self.dead
                .iter()
                .flat_map(|d| {
                    [("low", d.low_used_bytes), ("i2", d.i2_used_bytes)]
                        .map(|(class, v)| (labels(&d.name, Some(class)), v.to_string()))
                })
                .collect(),
        );
        let Counters { caps, mails_failed } = self.counters;
        family(
            "bwmon_caps_total",
            "counter",
            "Caps begun: classes capped below their maximum rate, since the state file began.",
            vec![(String::new(), caps.to_string())],
        );
        family(
            "bwmon_mails_failed_total",
            "counter",
            "Cap mails sendmail did not take (each is retried at the next sync).",
            vec![(String::new(), mails_failed.to_string())],
        );
        if let Some(t) = self.last_sync {
            family(
                "bwmon_last_sync_success_timestamp_seconds",
                gauge,
                "When the last sync completed (exit 0 or 1), Unix time.",
                vec![(String::new(), unix(t).to_string())],
            );
        }
        if let Some(d) = self.sync_duration {
            family(
                "bwmon_sync_duration_seconds",
                gauge,
                "Wall time the last completed sync took.",
                vec![(
                    String::new(),
                    format!("{}.{:06}", d.as_secs(), d.subsec_micros()),
                )],
            );
        }
        out
    }

    /// The table of SPEC §8: one row per slice, 80 columns for names up to 16
    /// characters; longer names widen it and rows never wrap. A line above
    /// the column names says which class each group is; `legend` adds
    /// [`format::LEGEND`] at the bottom, so that bytes (IEC) and bit/s (SI),
    /// which both read `10M`, cannot be taken for each other.
    pub fn table(&self, legend: bool) -> String {
        let w = self
            .slices
            .iter()
            .map(|s| s.name.len())
            .chain(self.dead.iter().map(|d| d.name.len()))
            .max()
            .unwrap_or(0)
            .max(16);
        let mut out = String::new();
        let row = |out: &mut String, cells: [&str; 11]| {
            let [
                name,
                xid,
                lo,
                lo_pc,
                i2,
                i2_pc,
                lo_ceil,
                i2_ceil,
                flags,
                end,
                eta,
            ] = cells;
            let _ = writeln!(
                out,
                "{name:<w$} {xid:>4} {lo:<9} {lo_pc:>3} {i2:<9} {i2_pc:>3} {lo_ceil:<9} {i2_ceil:<9} {flags:<2} {end:>3} {eta:>3}",
            );
        };
        // Over USED and % of each class, and over the two ceils.
        let _ = writeln!(
            out,
            "{:<w$} {:>4} {:<13} {:<13} CEIL",
            "", "", "LOW", "EXEMPT"
        );
        row(
            &mut out,
            [
                "SLICE", "XID", "USED", "%", "USED", "%", "LOW", "EXEMPT", "F", "END", "ETA",
            ],
        );
        if self.slices.is_empty() && self.dead.is_empty() {
            out.push_str("no slices yet: run `bwmon sync`\n");
        }
        for s in &self.slices {
            let flags = match (s.capped, s.mailed) {
                (true, true) => "CM",
                (true, false) => "C",
                (false, true) => "M",
                (false, false) => "-",
            };
            let full = [s.low.full_at, s.i2.full_at]
                .into_iter()
                .flatten()
                .min()
                .map_or_else(|| "-".to_string(), |t| relative(self.now, t));
            row(
                &mut out,
                [
                    &s.name,
                    &s.xid.to_string(),
                    &usage(&s.low),
                    &percent(&s.low),
                    &usage(&s.i2),
                    &percent(&s.i2),
                    &ceil(&s.low),
                    &ceil(&s.i2),
                    flags,
                    &relative(self.now, s.period_end),
                    &full,
                ],
            );
        }
        if !self.dead.is_empty() {
            out.push_str("Removed within their period:\n");
            for d in &self.dead {
                row(
                    &mut out,
                    [
                        &d.name,
                        "-",
                        &bytes_short(Bytes(d.low_used_bytes)),
                        "",
                        &bytes_short(Bytes(d.i2_used_bytes)),
                        "",
                        "",
                        "",
                        if d.mailed { "M" } else { "-" },
                        &relative(self.now, d.period_end),
                        "",
                    ],
                );
            }
        }
        if legend && !(self.slices.is_empty() && self.dead.is_empty()) {
            for line in format::LEGEND {
                out.push_str(line);
                out.push('\n');
            }
        }
        // Trailing blanks of the padded last columns help nobody.
        out.lines()
            .map(str::trim_end)
            .fold(String::new(), |mut acc, l| {
                acc.push_str(l);
                acc.push('\n');
                acc
            })
    }
}

/// bit/s as the bytes per second Prometheus names call for: exact, since an
/// eighth is at most three decimals (`2652.125`).
fn bytes_per_second(bps: u64) -> String {
    let (whole, eighths) = (bps / 8, bps % 8);
    if eighths == 0 {
        whole.to_string()
    } else {
        let frac = format!("{:03}", eighths * 125);
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

fn labels(slice: &str, class: Option<&str>) -> String {
    let esc = |v: &str| {
        v.replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n")
    };
    match class {
        Some(c) => format!("{{slice=\"{}\",class=\"{c}\"}}", esc(slice)),
        None => format!("{{slice=\"{}\"}}", esc(slice)),
    }
}

fn unix(t: DateTime<Utc>) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

fn usage(c: &ClassView) -> String {
    format!(
        "{}/{}",
        bytes_short(Bytes(c.used_bytes)),
        bytes_short(Bytes(c.quota_bytes))
    )
}

fn percent(c: &ClassView) -> String {
    let q = u128::from(c.quota_bytes.max(1));
    let p = (u128::from(c.used_bytes) * 100 + q / 2) / q;
    p.min(999).to_string()
}

fn ceil(c: &ClassView) -> String {
    if c.capped {
        format!(
            "{}/{}",
            rate_short(Rate(c.ceil_bps)),
            rate_short(Rate(c.max_bps))
        )
    } else {
        rate_short(Rate(c.max_bps))
    }
}

/// Time from `now` to `t` in at most three characters: `45m`, `23h`, `6d`.
pub fn relative(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let secs = (t - now).num_seconds();
    if secs <= 0 {
        return "now".into();
    }
    let mins = secs / 60;
    if mins < 1 {
        "<1m".into()
    } else if mins < 60 {
        format!("{mins}m")
    } else if mins < 48 * 60 {
        format!("{}h", mins / 60)
    } else {
        format!("{}d", (mins / (24 * 60)).min(99))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_in_bytes_per_second_are_exact() {
        for (bps, want) in [
            (0, "0"),
            (8, "1"),
            (21_217, "2652.125"),
            (1004, "125.5"),
            (1002, "125.25"),
            (50_000_000, "6250000"),
            (u64::MAX, "2305843009213693951.875"),
        ] {
            assert_eq!(bytes_per_second(bps), want, "{bps}");
        }
    }

    #[test]
    fn relative_times_fit_three_columns() {
        let t = DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        assert_eq!(relative(t, plus_secs(t, 45 * 60)), "45m");
        assert_eq!(relative(t, plus_secs(t, 23 * 3600)), "23h");
        assert_eq!(relative(t, plus_secs(t, 6 * 86_400)), "6d");
        assert_eq!(relative(t, t), "now");
    }

    /// A report with every family bwmon can emit: a capped slice, root and
    /// default, classification known, a dead record, counters, a last sync.
    pub(crate) fn full() -> Report {
        let t = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .expect("valid")
                .with_timezone(&Utc)
        };
        let class = |used, ceil, max| ClassView {
            used_bytes: used,
            quota_bytes: 10_485_760,
            threshold_bytes: 8_388_608,
            ceil_bps: ceil,
            max_bps: max,
            min_bps: 1000,
            capped: ceil < max,
            full_at: None,
        };
        let slice = |name: &str, xid, low: ClassView| SliceView {
            name: name.into(),
            xid,
            period_start: t("2026-11-24T00:00:00Z"),
            period_end: t("2026-11-25T00:00:00Z"),
            capped: low.capped,
            mailed: low.capped,
            classified: None,
            low,
            i2: class(0, 1_000_000_000, 1_000_000_000),
        };
        let mut r = Report {
            format_version: FORMAT_VERSION,
            dev: "eth0".into(),
            now: t("2026-11-24T23:30:00Z"),
            last_sync: Some(t("2026-11-24T23:00:00Z")),
            period_seconds: 86_400,
            node: Some(NodeView {
                bwcap_bps: 100_000_000,
                bwmax_bps: 1_000_000_000,
            }),
            slices: vec![
                slice("root", 0, class(4321, 100_000_000, 100_000_000)),
                slice("pl_alice", 257, class(937_800, 21_217, 50_000_000)),
                slice("pl_bob", 258, class(5_900_000, 100_000_000, 100_000_000)),
                slice("default", 4095, class(98_765, 100_000_000, 100_000_000)),
            ],
            dead: vec![DeadView {
                name: "pl_carol".into(),
                period_start: t("2026-11-24T00:00:00Z"),
                period_end: t("2026-11-25T00:00:00Z"),
                mailed: false,
                low_used_bytes: 2_500_000,
                i2_used_bytes: 1500,
            }],
            counters: Counters {
                caps: 1,
                mails_failed: 2,
            },
            sync_duration: Some(Duration::from_micros(12_345)),
        };
        r.mark_classified(&[257].into());
        r
    }

    #[test]
    fn metrics_follow_prometheus_naming() {
        let text = full().prometheus();
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("name and type");
                assert_eq!(
                    kind.ends_with("counter"),
                    name.ends_with("_total"),
                    "{line}"
                );
                assert!(!name.contains("bits"), "bytes are the base unit: {name}");
                families.push(name.to_string());
            }
        }
        for want in [
            "bwmon_slice_classified",
            "bwmon_caps_total",
            "bwmon_mails_failed_total",
            "bwmon_sync_duration_seconds",
            "bwmon_last_sync_success_timestamp_seconds",
        ] {
            assert!(
                families.iter().any(|f| f == want),
                "{want} missing:\n{text}"
            );
        }
        for line in [
            r#"bwmon_slice_ceil_bytes_per_second{slice="pl_alice",class="low"} 2652.125"#,
            r#"bwmon_slice_classified{slice="pl_alice"} 1"#,
            r#"bwmon_slice_classified{slice="pl_bob"} 0"#,
            "bwmon_caps_total 1",
            "bwmon_mails_failed_total 2",
            "bwmon_sync_duration_seconds 0.012345",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?}:\n{text}");
        }
        // Root and default are never in the maps: no sample says they are not.
        assert!(
            !text.contains(r#"bwmon_slice_classified{slice="root"}"#),
            "{text}"
        );
    }

    /// `promtool check metrics` (Debian's `prometheus` package; `make deps`
    /// puts it on PATH): the linter Prometheus users run. Missing, it is a
    /// skip, and under CI=true a failure.
    pub(crate) fn promtool_check(what: &str, text: &str) {
        use std::io::Write as _;
        use std::process::{Command, Stdio};
        let tool = std::env::var("PROMTOOL").unwrap_or_else(|_| "promtool".into());
        let child = Command::new(&tool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "{tool}: {e}: `make deps` installs promtool (Debian's prometheus package)"
                );
                eprintln!("skipping promtool check of {what}: {tool}: {e}");
                return;
            }
        };
        child
            .stdin
            .take()
            .expect("piped")
            .write_all(text.as_bytes())
            .expect("promtool reads its input");
        let out = child.wait_with_output().expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool check metrics on {what}: {}\n{}{}\n{text}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    #[test]
    fn promtool_accepts_every_family() {
        promtool_check("a report with every family", &full().prometheus());
        promtool_check(
            "an empty report",
            &Report {
                slices: Vec::new(),
                dead: Vec::new(),
                last_sync: None,
                sync_duration: None,
                ..full()
            }
            .prometheus(),
        );
    }

    /// The query strings of a Grafana dashboard: `expr` of targets, and
    /// template variables' `query`/`definition`.
    fn walk(v: &serde_json::Value, exprs: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                            exprs.push(s.clone());
                        }
                        ("query", serde_json::Value::Object(q)) => {
                            if let Some(serde_json::Value::String(s)) = q.get("query") {
                                exprs.push(s.clone());
                            }
                        }
                        _ => walk(v, exprs),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, exprs)),
            _ => {}
        }
    }

    /// Issue 13: every metric the fleet dashboard queries is one bwmon
    /// writes, so a rename cannot leave a panel silently empty.
    #[test]
    fn the_grafana_dashboard_queries_only_metrics_bwmon_emits() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/dist/grafana/bwmon.json");
        let text = std::fs::read_to_string(path).expect("dist/grafana/bwmon.json");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
        let mut exprs = Vec::new();
        walk(&doc, &mut exprs);
        let emitted: BTreeSet<String> = full()
            .prometheus()
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .map(str::to_string)
            .collect();
        let mut named = BTreeSet::new();
        for e in &exprs {
            let b = e.as_bytes();
            let mut i = 0;
            while let Some(at) = e[i..].find("bwmon_") {
                let start = i + at;
                let boundary =
                    start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
                let end = start
                    + e[start..]
                        .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                        .unwrap_or(e.len() - start);
                if boundary {
                    named.insert(e[start..end].to_string());
                }
                i = end;
            }
        }
        assert!(exprs.len() >= 6, "queries found: {exprs:?}");
        assert!(named.len() >= 8, "metrics named: {named:?}");
        let unknown: Vec<&String> = named.difference(&emitted).collect();
        assert!(
            unknown.is_empty(),
            "the dashboard queries {unknown:?}, which bwmon does not emit (it emits {emitted:?})"
        );
    }

    #[test]
    fn the_table_has_its_legend_unless_asked_not_to() {
        let r = full();
        let with = r.table(true);
        let without = r.table(false);
        for line in format::LEGEND {
            assert!(with.lines().any(|l| l == line), "{with}");
            assert!(!without.contains(line), "{without}");
        }
        assert_eq!(
            with.lines().count(),
            without.lines().count() + format::LEGEND.len()
        );
        assert!(
            with.ends_with(&format!("{}\n", format::LEGEND[1])),
            "legend at the bottom:\n{with}"
        );
        for line in with.lines() {
            assert!(line.len() <= 80, "{} columns: {line:?}", line.len());
        }
        let alice = with
            .lines()
            .find(|l| l.starts_with("pl_alice"))
            .expect("alice's row");
        let cells: Vec<&str> = alice.split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "pl_alice", "257", "916K/10M", "9", "0/10M", "0", "21k/50M", "1G", "CM", "30m", "-"
            ]
        );
        // An empty table needs no legend.
        let empty = Report {
            slices: Vec::new(),
            dead: Vec::new(),
            ..full()
        };
        assert!(!empty.table(true).contains(format::LEGEND[0]));
    }

    mod json {
        use super::super::*;
        use chrono::TimeZone;
        use proptest::prelude::*;
        use proptest::strategy::ValueTree;

        fn serde(r: &Report) -> String {
            serde_json::to_string_pretty(r).expect("serialises") + "\n"
        }

        fn time() -> impl Strategy<Value = DateTime<Utc>> {
            // Fractions are cut to the second; years beyond 9999 go through chrono.
            prop_oneof![
                (0i64..4_102_444_800, 0u32..2_000_000_000),
                (253_402_300_800i64..253_402_400_000, 0u32..1),
            ]
            .prop_map(|(secs, nanos)| {
                Utc.timestamp_opt(secs, nanos % 1_000_000_000)
                    .single()
                    .expect("in range")
            })
        }

        fn class() -> impl Strategy<Value = ClassView> {
            (
                any::<[u64; 6]>(),
                any::<bool>(),
                proptest::option::of(time()),
            )
                .prop_map(|(n, capped, full_at)| ClassView {
                    used_bytes: n[0],
                    quota_bytes: n[1],
                    threshold_bytes: n[2],
                    ceil_bps: n[3],
                    max_bps: n[4],
                    min_bps: n[5],
                    capped,
                    full_at,
                })
        }

        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                "pl_[a-z0-9_]{1,12}",
                "\\PC{0,8}",
                "[\"\\\\\\x00-\\x1f]{1,4}"
            ]
        }

        fn slice() -> impl Strategy<Value = SliceView> {
            (
                name(),
                any::<u16>(),
                time(),
                time(),
                any::<[bool; 2]>(),
                proptest::option::of(any::<bool>()),
                class(),
                class(),
            )
                .prop_map(
                    |(name, xid, period_start, period_end, b, classified, low, i2)| SliceView {
                        name,
                        xid,
                        period_start,
                        period_end,
                        capped: b[0],
                        mailed: b[1],
                        classified,
                        low,
                        i2,
                    },
                )
        }

        fn dead() -> impl Strategy<Value = DeadView> {
            (name(), time(), time(), any::<bool>(), any::<[u64; 2]>()).prop_map(
                |(name, period_start, period_end, mailed, used)| DeadView {
                    name,
                    period_start,
                    period_end,
                    mailed,
                    low_used_bytes: used[0],
                    i2_used_bytes: used[1],
                },
            )
        }

        /// Enough slices that the chunks are laid out on a second thread.
        #[test]
        fn json_written_in_chunks_is_serdes_too() {
            let mut runner = proptest::test_runner::TestRunner::deterministic();
            let slices = proptest::collection::vec(slice(), 1500)
                .new_tree(&mut runner)
                .expect("a tree")
                .current();
            let r = Report {
                format_version: FORMAT_VERSION,
                dev: "eth0".into(),
                now: Utc.timestamp_opt(1_795_478_400, 0).single().expect("valid"),
                last_sync: None,
                period_seconds: 86_400,
                node: None,
                slices,
                dead: Vec::new(),
                counters: Counters::default(),
                sync_duration: None,
            };
            let json = r.json();
            assert_eq!(String::from_utf8(json.clone()).expect("UTF-8"), serde(&r));
            // Sent a chunk at a time, never whole: each write at most a few
            // chunks' worth, and in order.
            let mut sink = Sink::default();
            r.write_json(&mut sink).expect("written");
            assert_eq!(sink.bytes, json);
            assert!(sink.writes > 1500 / CHUNK, "{} writes", sink.writes);
            assert!(
                sink.largest < 3 * PER_SLICE * CHUNK,
                "{} bytes in one write",
                sink.largest
            );
            // A reader gone halfway (`status | head`): the error comes back,
            // nothing hangs.
            let mut closed = Sink {
                fail_after: Some(2),
                ..Sink::default()
            };
            assert!(r.write_json(&mut closed).is_err());
            assert_eq!(closed.writes, 2);
        }

        /// A writer that counts its writes, and fails from a given one on.
        #[derive(Default)]
        struct Sink {
            bytes: Vec<u8>,
            writes: usize,
            largest: usize,
            fail_after: Option<usize>,
        }

        impl std::io::Write for Sink {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.fail_after.is_some_and(|n| self.writes >= n) {
                    return Err(std::io::ErrorKind::BrokenPipe.into());
                }
                self.writes += 1;
                self.largest = self.largest.max(buf.len());
                self.bytes.extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        proptest! {
            #[test]
            fn hand_written_json_is_serdes_byte_for_byte(
                dev in name(),
                now in time(),
                last_sync in proptest::option::of(time()),
                period_seconds in any::<u64>(),
                node in proptest::option::of(any::<[u64; 2]>()),
                slices in proptest::collection::vec(slice(), 0..4),
                dead in proptest::collection::vec(dead(), 0..3),
                counters in any::<[u64; 2]>(),
                sync_duration in proptest::option::of(any::<u64>()),
            ) {
                // The metrics-only fields leave the JSON as it was.
                let r = Report {
                    format_version: FORMAT_VERSION,
                    dev,
                    now,
                    last_sync,
                    period_seconds,
                    node: node.map(|n| NodeView { bwcap_bps: n[0], bwmax_bps: n[1] }),
                    slices,
                    dead,
                    counters: Counters { caps: counters[0], mails_failed: counters[1] },
                    sync_duration: sync_duration.map(Duration::from_micros),
                };
                prop_assert_eq!(String::from_utf8(r.json()).expect("UTF-8"), serde(&r));
            }
        }
    }
}
