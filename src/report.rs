//! What `status` shows and the metrics file holds: a view of every slice
//! built from the state and one tc dump (live counters), and its three
//! renderings — an 80-column table for people, stable JSON for scripts, and
//! Prometheus text for the node exporter's textfile collector.

use crate::classes::KernelClass;
use crate::json::Pretty;
use crate::policy::{KernelIndex, Kind, advance, plus_secs};
use crate::state::{ClassState, Hierarchy, SliceState, State};
use crate::units::{Bytes, Rate};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use std::fmt::Write as _;

/// The JSON layout's version: bumped when a field changes meaning or goes away.
pub const FORMAT_VERSION: u32 = 1;

/// About what one slice takes in `status --format json`.
const PER_SLICE: usize = 760;

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

/// Names for a one-line message: the first `shown`, then "and N more", so
/// a warning about thousands of slices stays one readable line.
pub fn listed(names: &[&str], shown: usize) -> String {
    let mut out = names[..shown.min(names.len())].join(", ");
    if names.len() > shown {
        let _ = write!(out, " and {} more", names.len() - shown);
    }
    out
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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
    let counters = KernelIndex::new(kernel);
    let pace_secs = state
        .last_sync
        .and_then(|t| u64::try_from((now - t).num_seconds()).ok())
        .filter(|&s| s > 0);
    let class_view = |s: &SliceState, kind: Kind| {
        let c = match kind {
            Kind::Low => &s.lo,
            Kind::I2 => &s.i2,
        };
        let kc = counters.get((kind, s.xid));
        view_class(c, kc.map(|k| k.sent), kc.map(|k| k.ceil), pace_secs, now)
    };
    let slices = state
        .slices
        .values()
        .map(|s| {
            let low = class_view(s, Kind::Low);
            let i2 = class_view(s, Kind::I2);
            SliceView {
                name: s.name.clone(),
                xid: s.xid,
                period_start: s.start,
                period_end: plus_secs(s.start, period_secs),
                capped: low.capped || i2.capped,
                mailed: s.mailed,
                classified: None,
                low,
                i2,
            }
        })
        .collect();
    let dead = state
        .dead
        .values()
        .map(|d| DeadView {
            name: d.name.clone(),
            period_start: d.start,
            period_end: plus_secs(d.start, period_secs),
            mailed: d.mailed,
            low_used_bytes: d.lo.0,
            i2_used_bytes: d.i2.0,
        })
        .collect();
    Report {
        format_version: FORMAT_VERSION,
        dev: dev.to_string(),
        now,
        last_sync: state.last_sync,
        period_seconds: period_secs,
        node: node.map(|h| NodeView {
            bwcap_bps: h.bwcap.0,
            bwmax_bps: h.bwmax.0,
        }),
        slices,
        dead,
    }
}

/// One element of `slices` in [`Report::json`].
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
    j.element();
    j.open(b'{');
    j.str("name", name);
    j.u64("xid", u64::from(*xid));
    j.time_secs("period_start", Some(period_start));
    j.time_secs("period_end", Some(period_end));
    j.bool("capped", *capped);
    j.bool("mailed", *mailed);
    if let Some(c) = classified {
        j.bool("classified", *c);
    }
    for (key, c) in [("low", low), ("i2", i2)] {
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
        j.key(key);
        j.open(b'{');
        j.u64("used_bytes", *used_bytes);
        j.u64("quota_bytes", *quota_bytes);
        j.u64("threshold_bytes", *threshold_bytes);
        j.u64("ceil_bps", *ceil_bps);
        j.u64("max_bps", *max_bps);
        j.u64("min_bps", *min_bps);
        j.bool("capped", *capped);
        j.time_secs("full_at", full_at.as_ref());
        j.close(b'}');
    }
    j.close(b'}');
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

    /// `status --format json`: what `serde_json::to_string_pretty` writes
    /// for the report (a test holds the two equal), written by hand because
    /// at thousands of slices serde's generic path cost more than the dump.
    pub fn json(&self) -> Vec<u8> {
        let mut j = Pretty::with_capacity(1024 + 200 * self.dead.len());
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
        // At thousands of slices writing them is most of a status run: the
        // two halves are written on two threads, as the two cores are free
        // once the dump is read.
        if self.slices.len() >= 1024 {
            let (head, tail) = self.slices.split_at(self.slices.len() / 2);
            let mut first = j.part(false, PER_SLICE * head.len());
            let mut second = j.part(true, PER_SLICE * tail.len());
            std::thread::scope(|scope| {
                let t = scope.spawn(|| {
                    for s in tail {
                        slice_json(&mut second, s);
                    }
                });
                for s in head {
                    slice_json(&mut first, s);
                }
                t.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            });
            j.append(first);
            j.append(second);
        } else {
            for s in &self.slices {
                slice_json(&mut j, s);
            }
        }
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
        j.finish()
    }

    pub fn prometheus(&self) -> String {
        let mut out = String::new();
        let mut family = |name: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} gauge");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let per_class = |f: &dyn Fn(&ClassView) -> u64| -> Vec<(String, u64)> {
            self.slices
                .iter()
                .flat_map(|s| {
                    [("low", &s.low), ("i2", &s.i2)]
                        .map(|(class, c)| (labels(&s.name, Some(class)), f(c)))
                })
                .collect()
        };
        family(
            "bwmon_slice_used_bytes",
            "Bytes sent by the slice's class in the current period.",
            per_class(&|c| c.used_bytes),
        );
        family(
            "bwmon_slice_quota_bytes",
            "Bytes the class may send per period.",
            per_class(&|c| c.quota_bytes),
        );
        family(
            "bwmon_slice_threshold_bytes",
            "Bytes after which the class is capped.",
            per_class(&|c| c.threshold_bytes),
        );
        family(
            "bwmon_slice_ceil_bits_per_second",
            "Ceil applied to the class, in bit/s.",
            per_class(&|c| c.ceil_bps),
        );
        family(
            "bwmon_slice_max_bits_per_second",
            "Configured maximum rate of the class, in bit/s.",
            per_class(&|c| c.max_bps),
        );
        family(
            "bwmon_slice_capped",
            "1 when the class is capped below its maximum rate.",
            per_class(&|c| u64::from(c.capped)),
        );
        let per_slice = |f: &dyn Fn(&SliceView) -> u64| -> Vec<(String, u64)> {
            self.slices
                .iter()
                .map(|s| (labels(&s.name, None), f(s)))
                .collect()
        };
        family(
            "bwmon_slice_mailed",
            "1 when the slice was mailed about a cap this period.",
            per_slice(&|s| u64::from(s.mailed)),
        );
        let classified: Vec<(String, u64)> = self
            .slices
            .iter()
            .filter_map(|s| s.classified.map(|c| (labels(&s.name, None), u64::from(c))))
            .collect();
        if !classified.is_empty() {
            family(
                "bwmon_slice_classified",
                "1 when bwmon's nftables maps send the slice's packets to its classes.",
                classified,
            );
        }
        family(
            "bwmon_slice_period_end_timestamp_seconds",
            "End of the slice's current period, Unix time.",
            per_slice(&|s| unix(s.period_end)),
        );
        family(
            "bwmon_dead_slice_used_bytes",
            "Bytes used this period by a removed slice, kept until its period ends.",
            self.dead
                .iter()
                .flat_map(|d| {
                    [("low", d.low_used_bytes), ("i2", d.i2_used_bytes)]
                        .map(|(class, v)| (labels(&d.name, Some(class)), v))
                })
                .collect(),
        );
        if let Some(t) = self.last_sync {
            family(
                "bwmon_last_sync_success_timestamp_seconds",
                "When the last sync completed (exit 0 or 1), Unix time.",
                vec![(String::new(), unix(t))],
            );
        }
        out
    }

    /// The table of SPEC §8: one row per slice, 80 columns for names up to 16
    /// characters; longer names widen it and rows never wrap.
    pub fn table(&self) -> String {
        let w = self
            .slices
            .iter()
            .map(|s| s.name.len())
            .chain(self.dead.iter().map(|d| d.name.len()))
            .max()
            .unwrap_or(0)
            .max(16);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{:<w$} {:>4} {:<9} {:>3} {:<9} {:>3} {:<9} {:<9} {:<2} {:>3} {:>3}",
            "SLICE",
            "XID",
            "LOW USED",
            "%",
            "I2 USED",
            "%",
            "LOW CEIL",
            "I2 CEIL",
            "F",
            "END",
            "ETA"
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
            let _ = writeln!(
                out,
                "{:<w$} {:>4} {:<9} {:>3} {:<9} {:>3} {:<9} {:<9} {:<2} {:>3} {:>3}",
                s.name,
                s.xid,
                usage(&s.low),
                percent(&s.low),
                usage(&s.i2),
                percent(&s.i2),
                ceil(&s.low),
                ceil(&s.i2),
                flags,
                relative(self.now, s.period_end),
                full,
            );
        }
        if !self.dead.is_empty() {
            out.push_str("Removed within their period:\n");
            for d in &self.dead {
                let _ = writeln!(
                    out,
                    "{:<w$} {:>4} {:<9} {:>3} {:<9} {:>3} {:<9} {:<9} {:<2} {:>3} {:>3}",
                    d.name,
                    "-",
                    si(d.low_used_bytes, ""),
                    "",
                    si(d.i2_used_bytes, ""),
                    "",
                    "",
                    "",
                    if d.mailed { "M" } else { "-" },
                    relative(self.now, d.period_end),
                    "",
                );
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
    format!("{}/{}", si(c.used_bytes, ""), si(c.quota_bytes, ""))
}

fn percent(c: &ClassView) -> String {
    let q = u128::from(c.quota_bytes.max(1));
    let p = (u128::from(c.used_bytes) * 100 + q / 2) / q;
    p.min(999).to_string()
}

fn ceil(c: &ClassView) -> String {
    if c.capped {
        format!("{}/{}", si(c.ceil_bps, "rate"), si(c.max_bps, "rate"))
    } else {
        si(c.max_bps, "rate")
    }
}

pub use crate::units::si;

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
    fn si_figures_fit_four_columns() {
        for (v, want) in [
            (0, "0"),
            (999, "999"),
            (1000, "1K"),
            (9_949, "9.9K"),
            (9_999, "10K"),
            (999_499, "999K"),
            (999_500, "1M"),
            (937_800, "938K"),
            (10_485_760, "10M"),
            (4_200_000_000, "4.2G"),
            (17_609_365_504, "18G"),
            (u64::MAX, "18E"),
        ] {
            let got = si(v, "");
            assert_eq!(got, want, "{v}");
        }
        assert_eq!(si(21_217, "rate"), "21k");
        assert_eq!(si(1_000_000_000, "rate"), "1G");
        assert_eq!(si(1_500_000, "rate"), "1.5M");
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

        /// Enough slices that the two halves are written on two threads.
        #[test]
        fn json_written_in_halves_is_serdes_too() {
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
            };
            assert_eq!(String::from_utf8(r.json()).expect("UTF-8"), serde(&r));
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
            ) {
                let r = Report {
                    format_version: FORMAT_VERSION,
                    dev,
                    now,
                    last_sync,
                    period_seconds,
                    node: node.map(|n| NodeView { bwcap_bps: n[0], bwmax_bps: n[1] }),
                    slices,
                    dead,
                };
                prop_assert_eq!(String::from_utf8(r.json()).expect("UTF-8"), serde(&r));
            }
        }
    }
}
