//! How figures and class names read wherever a person reads them: the status
//! table and its legend, the cap mail, log lines (issue 13). The choices are
//! made once, here:
//!
//! - **Volumes in IEC units** (powers of 1024: KiB, MiB, GiB, TiB). The node
//!   manager gives quotas in KiB, so a 10,240 KiB quota is "10M" in the table
//!   and "10.0 MiB" in the mail; in SI it read "10M" in one and "10.5 MB" in
//!   the other, and neither was the figure the operator set.
//! - **Rates in SI bit/s** (powers of 1000: kbit, mbit, gbit), as tc reads
//!   and prints them and as `--bwcap` and the slivers' `net_*_rate` give them.
//! - **The exempt class is called "exempt"** in people's text (the config key
//!   that fills it is `exempt:`); machine keys keep `i2` (JSON, the
//!   Prometheus `class` label, the state file) so that scripts and
//!   dashboards keep working.
//!
//! Machine formats (JSON, Prometheus, the state) stay in base units, bytes
//! and bit/s; they do not come through here. `Display` for [`Bytes`] and
//! [`Rate`] is defined here, so every `{}` of either in a message or a log
//! line is one of these forms.

use crate::units::{Bytes, Rate};
use chrono::{DateTime, SecondsFormat, Utc};
use std::fmt;
use std::fmt::Write as _;

/// The low class in people's text (SPEC §6's mail wording).
pub const LOW: &str = "low bandwidth";
/// The exempt (i2) class in people's text.
pub const EXEMPT: &str = "exempt";

/// What the status table's figures mean, printed under it unless
/// `status --no-legend`. Each line fits 80 columns.
pub const LEGEND: [&str; 2] = [
    "USED: bytes sent/quota, K M G T = KiB MiB GiB TiB (1024); EXEMPT = i2 class",
    "CEIL: bit/s now/max, k M G = 1000s; F: C capped, M mailed; END, ETA: time left",
];

/// The history table's legend: its sizes read as the status table's.
pub const HISTORY_LEGEND: &str =
    "LOW, I2 (exempt): bytes, K M G T = KiB MiB GiB TiB; F: M mailed, R removed";

const IEC: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A volume for a sentence: `999 B`, `915.8 KiB`, `10.0 MiB`, `5.4 GiB`.
/// One decimal, rounded; a figure that would round to 1024.0 of a unit is
/// shown in the next one.
pub fn bytes(b: Bytes) -> String {
    let v = u128::from(b.0);
    if v < 1024 {
        return format!("{v} B");
    }
    let (mut unit, mut div) = (1, 1024u128);
    while unit < IEC.len() - 1 && (v * 10 + div / 2) / div >= 10_240 {
        div *= 1024;
        unit += 1;
    }
    let tenths = (v * 10 + div / 2) / div;
    format!("{}.{} {}", tenths / 10, tenths % 10, IEC[unit])
}

/// A volume in at most four characters, for the table: `999`, `9.9K`,
/// `916K`, `10M`, `16G` (IEC: `K` is 1024 bytes; the legend says so).
pub fn bytes_short(b: Bytes) -> String {
    short(b.0, 1024, &["", "K", "M", "G", "T", "P", "E"])
}

/// A rate in at most four characters, for the table: `999`, `21k`, `1.5M`,
/// `50M`, `1G` (SI bit/s; the lowercase `k` is tc's).
pub fn rate_short(r: Rate) -> String {
    short(r.0, 1000, &["", "k", "M", "G", "T", "P", "E"])
}

/// Rounded to three significant digits at most, one decimal below 10.
fn short(v: u64, step: u128, units: &[&str; 7]) -> String {
    let v = u128::from(v);
    let mut unit = 0;
    let mut div: u128 = 1;
    // Step up while the figure would round to 1000 or more in this unit.
    while unit < units.len() - 1 && v * 2 >= 1999 * div {
        div *= step;
        unit += 1;
    }
    let u = units[unit];
    let tenths = (v * 10 + div / 2) / div;
    if unit > 0 && tenths < 100 && !tenths.is_multiple_of(10) {
        format!("{}.{}{u}", tenths / 10, tenths % 10)
    } else {
        format!("{}{u}", (v + div / 2) / div)
    }
}

/// A rate as tc writes it, exact where it can be: the largest unit that
/// keeps it exact below 1000 of that unit, else truncated to whole units
/// (`1gbit`, `10mbit`, `312kbit`, `21217bit`, `1234kbit` for 1234567). The
/// form an operator can give back to `--bwcap`; the mail adds `/s`.
pub fn rate_tc(rate: Rate) -> String {
    let mut r = rate.0;
    let mut units = ["bit", "kbit", "mbit", "gbit", "tbit"].iter().peekable();
    let mut unit = "bit";
    while let Some(u) = units.next() {
        unit = u;
        if r < 1000 || (!r.is_multiple_of(1000) && r < 1_000_000) || units.peek().is_none() {
            break;
        }
        r /= 1000;
    }
    format!("{r}{unit}")
}

/// A rate as `tc -s class show` prints it (iproute2's `print_rate`): the
/// largest of bit, Kbit, Mbit, Gbit, Tbit that keeps it whole below 1000,
/// from the bytes/s the kernel keeps.
pub fn rate_tc_shows(rate: Rate) -> String {
    const UNITS: [&str; 5] = ["", "K", "M", "G", "T"];
    let mut r = rate.as_kernel_keeps().0;
    let mut unit = 0;
    while unit < UNITS.len() - 1 {
        if r < 1000 || (!r.is_multiple_of(1000) && r < 1_000_000) {
            break;
        }
        r /= 1000;
        unit += 1;
    }
    format!("{r}{}bit", UNITS[unit])
}

/// `12,345,678`: every byte shown, in groups a person can read.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A time to the second, `2026-11-24T00:00:00Z`, as every surface shows it.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
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

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&bytes(*self))
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&rate_tc(*self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_name_lists_end_in_a_count() {
        assert_eq!(listed(&["a", "b"], 3), "a, b");
        assert_eq!(listed(&["a", "b", "c", "d", "e"], 3), "a, b, c and 2 more");
        assert_eq!(listed(&[], 3), "");
    }

    #[test]
    fn rates_as_tc_shows_them() {
        for (bits, want) in [
            (8_000, "8Kbit"),
            (1_000_000_000, "1Gbit"),
            (1_200_000, "1200Kbit"),
            (21_217, "21216bit"),
            (999, "992bit"),
            (100_000_000, "100Mbit"),
        ] {
            assert_eq!(rate_tc_shows(Rate(bits)), want, "{bits}");
        }
    }

    #[test]
    fn bytes_in_groups() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
        assert_eq!(grouped(12_345_678), "12,345,678");
        assert_eq!(grouped(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn volumes_in_sentences_are_iec_with_one_decimal() {
        for (v, want) in [
            (0, "0 B"),
            (999, "999 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1075, "1.0 KiB"),
            (1076, "1.1 KiB"),
            (937_800, "915.8 KiB"),
            // 1023.95 KiB would print as 1024.0 KiB: the next unit instead.
            (1_048_524, "1023.9 KiB"),
            (1_048_525, "1.0 MiB"),
            (1_048_576, "1.0 MiB"),
            (10_240 * 1024, "10.0 MiB"),
            (51_200_000, "48.8 MiB"),
            (4_200_000_000, "3.9 GiB"),
            (5_662_310 * 1024, "5.4 GiB"),
            (17_196_646 * 1024, "16.4 GiB"),
            (1 << 40, "1.0 TiB"),
            (u64::MAX, "16.0 EiB"),
        ] {
            assert_eq!(bytes(Bytes(v)), want, "{v}");
            assert_eq!(Bytes(v).to_string(), want, "{v}");
        }
    }

    #[test]
    fn table_volumes_fit_four_columns_in_iec() {
        for (v, want) in [
            (0, "0"),
            (999, "999"),
            // 1000 bytes round to 1K (0.98 KiB): four characters at most.
            (1000, "1K"),
            (1023, "1K"),
            (1024, "1K"),
            (1536, "1.5K"),
            (10_188, "9.9K"),
            (10_240, "10K"),
            (937_800, "916K"),
            (98_765, "96K"),
            (1_023_487, "999K"),
            (1_023_488, "1M"),
            (5_900_000, "5.6M"),
            (10_240 * 1024, "10M"),
            (124_456_789, "119M"),
            (17_196_646 * 1024, "16G"),
            (u64::MAX, "16E"),
        ] {
            let got = bytes_short(Bytes(v));
            assert_eq!(got, want, "{v}");
            assert!(got.len() <= 4, "{got}");
        }
    }

    #[test]
    fn table_rates_fit_four_columns_in_si() {
        for (v, want) in [
            (800, "800"),
            (999, "999"),
            (1000, "1k"),
            (21_217, "21k"),
            (999_499, "999k"),
            (999_500, "1M"),
            (1_500_000, "1.5M"),
            (50_000_000, "50M"),
            (1_000_000_000, "1G"),
            (40_000_000_000, "40G"),
            (u64::MAX, "18E"),
        ] {
            let got = rate_short(Rate(v));
            assert_eq!(got, want, "{v}");
            assert!(got.len() <= 4, "{got}");
        }
    }

    #[test]
    fn rates_in_messages_are_tc_s_form() {
        for (v, want) in [
            (1_000_000_000, "1gbit"),
            (312_500, "312500bit"),
            (312_000, "312kbit"),
            (1_234_567, "1234kbit"),
            (1200, "1200bit"),
            (10_000_000, "10mbit"),
            (800, "800bit"),
            (999_999, "999999bit"),
            (1_000_000, "1mbit"),
        ] {
            assert_eq!(Rate(v).to_string(), want, "{v}");
        }
    }

    #[test]
    fn the_legend_fits_80_columns_and_names_both_unit_systems() {
        for line in LEGEND.iter().chain([&HISTORY_LEGEND]) {
            assert!(line.len() <= 80, "{} columns: {line}", line.len());
            assert!(line.is_ascii(), "{line}");
        }
        let all = LEGEND.join(" ");
        for word in ["KiB", "1024", "bit/s", "1000", "i2"] {
            assert!(all.contains(word), "legend lacks {word}: {all}");
        }
    }
}
