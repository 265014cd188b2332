//! Units that cross module boundaries: rates in bit/s, volumes in bytes or KiB.
//!
//! The 2008 code mixed bit/s and kbit/s in one comparison (SPEC §9.3); every
//! number here carries its unit in its type, and conversions are explicit and
//! saturating so that no input can overflow them.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A rate in bits per second.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Rate(pub u64);

/// A volume in bytes.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Bytes(pub u64);

/// A volume in KiB (1024 bytes), as the node manager's `net_*_kbyte` keys give it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct KiB(pub u64);

/// A rate in kbit/s (1000 bit/s), as the node manager's `net_*_rate` keys give it.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Kbit(pub u64);

/// The smallest rate bwmon ever gives a class (HTB cannot go lower usefully).
pub const BWMIN: Rate = Rate(1000);

impl KiB {
    pub fn bytes(self) -> Bytes {
        Bytes(self.0.saturating_mul(1024))
    }
}

impl Kbit {
    pub fn rate(self) -> Rate {
        Rate(self.0.saturating_mul(1000))
    }
}

impl Rate {
    pub fn bits_per_sec(self) -> u64 {
        self.0
    }

    /// What the kernel keeps of this rate: HTB stores bytes/s, so the low
    /// three bits are lost.
    pub fn as_kernel_keeps(self) -> Rate {
        Rate(self.0 / 8 * 8)
    }

    /// Form for a tc batch line: exact, in bits, so tc never has to round.
    pub fn tc_arg(self) -> String {
        format!("{}bit", self.0)
    }
}

/// Human form for mail and logs, the way tc prints a rate: the largest unit
/// that keeps it exact below 1000 of that unit, else truncated to whole units
/// (`1gbit`, `10mbit`, `312kbit`, `21217bit`, `1234kbit` for 1234567).
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut r = self.0;
        let mut units = ["bit", "kbit", "mbit", "gbit", "tbit"].iter().peekable();
        let mut unit = "bit";
        while let Some(u) = units.next() {
            unit = u;
            if r < 1000 || (!r.is_multiple_of(1000) && r < 1_000_000) || units.peek().is_none() {
                break;
            }
            r /= 1000;
        }
        write!(f, "{r}{unit}")
    }
}

/// SI form for people: `4.2 GB`, `812.0 KB`, `12 bytes` (the 2008 mail's wording).
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // f64 is exact enough for one decimal of a human figure.
        #[allow(clippy::cast_precision_loss)]
        let b = self.0 as f64;
        if b >= 1e9 {
            write!(f, "{:.1} GB", b / 1e9)
        } else if b >= 1e6 {
            write!(f, "{:.1} MB", b / 1e6)
        } else if b >= 1e3 {
            write!(f, "{:.1} KB", b / 1e3)
        } else {
            write!(f, "{} bytes", self.0)
        }
    }
}

/// At most four characters, rounded (the status and history tables): `999`, `9.9K`, `938K`, `10M`, `4.2G`;
/// rates use a lowercase `k` as tc does.
pub fn si(v: u64, kind: &str) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let v = u128::from(v);
    let mut unit = 0;
    let mut div: u128 = 1;
    // Step up while the figure would round to 1000 or more in this unit.
    while unit < UNITS.len() - 1 && v * 2 >= 1999 * div {
        div *= 1000;
        unit += 1;
    }
    let u = if kind == "rate" && unit == 1 {
        "k"
    } else {
        UNITS[unit]
    };
    let tenths = (v * 10 + div / 2) / div;
    if unit > 0 && tenths < 100 && !tenths.is_multiple_of(10) {
        format!("{}.{}{u}", tenths / 10, tenths % 10)
    } else {
        format!("{}{u}", (v + div / 2) / div)
    }
}

/// Parses a rate in tc's syntax: a number (decimals allowed) and a unit.
/// `bit`/`kbit`/`mbit`/`gbit`/`tbit` are powers of 1000 bit/s, `kibit`…`tibit`
/// powers of 1024, `bps`/`kbps`/`mbps`/`gbps`/`tbps` (and `kibps`…) bytes/s.
/// Units are case-insensitive (`10Mbit`). A bare number is bit/s, as in tc.
pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let s = text.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() || num.starts_with('.') || num.ends_with('.') || num.matches('.').count() > 1
    {
        return Err(format!(
            "invalid rate {text:?}: expected a number and a unit such as 100mbit"
        ));
    }
    let unit = unit.to_ascii_lowercase();
    let (mult, per_byte): (u128, bool) = match unit.as_str() {
        "" | "bit" => (1, false),
        "kbit" => (1_000, false),
        "mbit" => (1_000_000, false),
        "gbit" => (1_000_000_000, false),
        "tbit" => (1_000_000_000_000, false),
        "kibit" => (1 << 10, false),
        "mibit" => (1 << 20, false),
        "gibit" => (1 << 30, false),
        "tibit" => (1 << 40, false),
        "bps" => (1, true),
        "kbps" => (1_000, true),
        "mbps" => (1_000_000, true),
        "gbps" => (1_000_000_000, true),
        "tbps" => (1_000_000_000_000, true),
        "kibps" => (1 << 10, true),
        "mibps" => (1 << 20, true),
        "gibps" => (1 << 30, true),
        "tibps" => (1 << 40, true),
        _ => {
            return Err(format!(
                "invalid rate {text:?}: unknown unit {unit:?} (use bit, kbit, mbit, gbit, kibit, mibit, bps, kbps …)"
            ));
        }
    };
    let mult = if per_byte { mult * 8 } else { mult };
    // Exact decimal arithmetic: "1.5mbit" must be 1500000, not 1499999.
    let (int_part, frac_part) = num.split_once('.').unwrap_or((num, ""));
    let too_big = || format!("invalid rate {text:?}: too large");
    let int: u128 = int_part.parse().map_err(|_| too_big())?;
    let mut value = int.checked_mul(mult).ok_or_else(too_big)?;
    if !frac_part.is_empty() {
        if frac_part.len() > 18 {
            return Err(format!("invalid rate {text:?}: too many decimals"));
        }
        let frac: u128 = frac_part.parse().map_err(|_| too_big())?;
        let scale = 10u128.pow(u32::try_from(frac_part.len()).map_err(|_| too_big())?);
        value += frac * mult / scale;
    }
    let value = u64::try_from(value).map_err(|_| too_big())?;
    if value == 0 {
        return Err(format!("invalid rate {text:?}: must be above zero"));
    }
    Ok(Rate(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tc_rate_syntax() {
        let cases = [
            ("8bit", 8),
            ("100kbit", 100_000),
            ("1.5mbit", 1_500_000),
            ("1gbit", 1_000_000_000),
            ("10Mbit", 10_000_000),
            ("1mibit", 1_048_576),
            ("125kbps", 1_000_000),
            ("1000", 1000),
        ];
        for (text, bits) in cases {
            assert_eq!(parse_rate(text), Ok(Rate(bits)), "{text}");
        }
    }

    #[test]
    fn rejects_bad_rates() {
        for text in [
            "",
            "mbit",
            "1.2.3mbit",
            "-5kbit",
            "5 furlongs",
            "0bit",
            "99999999999999tbit",
        ] {
            assert!(parse_rate(text).is_err(), "{text}");
        }
    }

    #[test]
    fn human_forms() {
        assert_eq!(Rate(1_000_000_000).to_string(), "1gbit");
        assert_eq!(Rate(312_500).to_string(), "312500bit");
        assert_eq!(Rate(312_000).to_string(), "312kbit");
        assert_eq!(Rate(1_234_567).to_string(), "1234kbit");
        assert_eq!(Rate(1200).to_string(), "1200bit");
        assert_eq!(Rate(10_000_000).to_string(), "10mbit");
        assert_eq!(Rate(800).to_string(), "800bit");
        assert_eq!(Bytes(4_200_000_000).to_string(), "4.2 GB");
        assert_eq!(Bytes(999).to_string(), "999 bytes");
        assert_eq!(KiB(5_662_310).bytes(), Bytes(5_798_205_440));
        assert_eq!(Kbit(u64::MAX).rate(), Rate(u64::MAX));
    }
}
