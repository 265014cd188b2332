//! Units that cross module boundaries: rates in bit/s, volumes in bytes or KiB.
//!
//! The 2008 code mixed bit/s and kbit/s in one comparison (SPEC §9.3); every
//! number here carries its unit in its type, and conversions are explicit and
//! saturating so that no input can overflow them.

use serde::{Deserialize, Serialize};

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

// How these read in people's text (`Display`) is `crate::format`'s: one
// module chooses the units of every surface.

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
    fn conversions_saturate() {
        assert_eq!(KiB(5_662_310).bytes(), Bytes(5_798_205_440));
        assert_eq!(KiB(u64::MAX).bytes(), Bytes(u64::MAX));
        assert_eq!(Kbit(u64::MAX).rate(), Rate(u64::MAX));
    }
}
