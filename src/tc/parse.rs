//! Parser of `tc -s -d class show dev DEV` (plain-text form, every iproute2
//! release bwmon meets): pure, over `&str`, never panicking on any input.
//!
//! A dump is a run of blocks, each opened by a `class KIND HANDLE …` line.
//! Only `htb` blocks are read; blocks of other kinds (`mq`, `fq_codel`, …) are
//! skipped whole. Of an htb block bwmon needs the header fields (`root` or
//! `parent`, `rate`, `ceil`, `quantum`) and the first `Sent N bytes` line;
//! everything else (`backlog`, `lended:`, `tokens:`, estimator `rate` lines
//! after the counter) is ignored.

use super::{ClassId, KernelClass, PrintedRate};
use crate::units::{Bytes, Rate};
use std::fmt;

/// Why a dump could not be read, with the 1-based line it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line of the dump.
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

/// Parses a handle as tc prints it: `1:1fff`, `1:` (minor 0), both parts hex
/// of at most four digits. An empty major (`:1`, as `mq` prints) is 0.
pub fn parse_handle(s: &str) -> Option<ClassId> {
    fn part(p: &str) -> Option<u16> {
        if p.is_empty() {
            return Some(0);
        }
        if p.len() > 4 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u16::from_str_radix(p, 16).ok()
    }
    let (maj, min) = s.split_once(':')?;
    if maj.is_empty() && min.is_empty() {
        return None;
    }
    Some(ClassId::new(part(maj)?, part(min)?))
}

/// A plain decimal figure (tc never prints a sign); `None` if not, or too big.
fn decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses a rate as tc prints it (`1Kbit`, `1234Kbit`, `999992bit`, `1Mibit`,
/// `100000Kbit`), keeping the precision of its unit: a printed figure of 1000
/// or more units is only known to within one unit (tc truncates, or in old
/// releases rounds with `%.0f`), so `1234Kbit` is 1234000 ± 1000.
///
/// A figure below 1000 of a unit above `bit` is tighter. Only the truncating
/// releases print one, and they step up a unit only when the figure divides
/// exactly or is 1000 units or more: `1Kbit` is exactly 1000, `100Mbit` is
/// 100000000 to within 1000 (not 1000000), `1Gbit` to within 1000000. With the
/// unit's precision instead, a kernel holding `1Gbit` would pass for 1.5gbit.
pub fn parse_printed_rate(s: &str) -> Option<PrintedRate> {
    let body = s.strip_suffix("bit")?;
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    // (multiplier, step between units)
    let (mult, kilo): (u64, u64) = match unit {
        // Some older releases append the `i` of `-iec` to plain bits as
        // well (`1000ibit`).
        "" | "i" => (1, 1),
        "K" | "k" => (1_000, 1_000),
        "M" | "m" => (1_000_000, 1_000),
        "G" | "g" => (1_000_000_000, 1_000),
        "T" | "t" => (1_000_000_000_000, 1_000),
        "Ki" | "ki" => (1 << 10, 1 << 10),
        "Mi" | "mi" => (1 << 20, 1 << 10),
        "Gi" | "gi" => (1 << 30, 1 << 10),
        "Ti" | "ti" => (1 << 40, 1 << 10),
        _ => return None,
    };
    // Old releases may print a decimal figure ("1.5Mbit"); precision then is
    // one unit of the last printed digit.
    let (int, frac) = match num.split_once('.') {
        Some((int, frac)) if !frac.is_empty() && frac.len() <= 6 => (int, Some(frac)),
        Some(_) => return None,
        None => (num, None),
    };
    let int: u64 = decimal(int)?;
    let mut shown = int.checked_mul(mult)?;
    let mut precision = if int < 1000 { mult / kilo } else { mult };
    if let Some(frac) = frac {
        let frac_v: u64 = decimal(frac)?;
        let scale = 10u64.checked_pow(u32::try_from(frac.len()).ok()?)?;
        shown = shown.checked_add(frac_v.checked_mul(mult)? / scale)?;
        precision = (mult / scale).max(1);
    }
    Some(PrintedRate {
        shown: Rate(shown),
        precision,
    })
}

/// An htb block being read.
struct Block {
    /// Line of its `class htb` header, named by errors about missing fields.
    line: usize,
    id: ClassId,
    parent: Option<ClassId>,
    rate: Option<PrintedRate>,
    ceil: Option<PrintedRate>,
    quantum: Option<u32>,
    sent: Option<Bytes>,
}

impl Block {
    fn finish(self) -> Result<KernelClass, ParseError> {
        let id = self.id;
        let missing = |what: &str| ParseError {
            line: self.line,
            message: format!("class htb {id} has no {what}"),
        };
        Ok(KernelClass {
            id,
            parent: self.parent,
            rate: self.rate.ok_or_else(|| missing("rate"))?,
            ceil: self.ceil.ok_or_else(|| missing("ceil"))?,
            quantum: self.quantum,
            sent: self.sent.ok_or_else(|| missing("`Sent N bytes` counter"))?,
        })
    }
}

/// Reads every htb class of one `tc -s -d class show dev DEV` dump, in dump
/// order. Classes of other kinds are skipped; an htb class without `rate`,
/// `ceil` or a `Sent` counter, or with a malformed handle or figure, is an
/// error naming its line.
pub fn parse_class_dump(text: &str) -> Result<Vec<KernelClass>, ParseError> {
    let mut parser = DumpParser::default();
    for line in text.lines() {
        parser.line(line)?;
    }
    parser.finish()
}

/// The same parser fed one line at a time, so a dump can be read while tc
/// is still writing it.
#[derive(Default)]
pub struct DumpParser {
    classes: Vec<KernelClass>,
    /// None outside any block and inside blocks of other kinds (skipped).
    block: Option<Block>,
    lineno: usize,
}

impl DumpParser {
    pub fn line(&mut self, line: &str) -> Result<(), ParseError> {
        self.lineno += 1;
        let lineno = self.lineno;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        // Statistics after the counter (backlog, lended, tokens…) are most of
        // the dump and never read: skip them before splitting.
        let first = line.split_ascii_whitespace().next();
        let wanted = matches!(first, Some("class" | "Sent"))
            || self.block.as_ref().is_some_and(|b| b.sent.is_none());
        if !wanted {
            return Ok(());
        }
        let mut words = line.split_whitespace();
        match words.next() {
            Some("class") => {
                if let Some(b) = self.block.take() {
                    self.classes.push(b.finish()?);
                }
                let Some(kind) = words.next() else {
                    return Err(err("`class` line without a kind".into()));
                };
                if kind != "htb" {
                    return Ok(());
                }
                let Some(handle) = words.next() else {
                    return Err(err("`class htb` line without a handle".into()));
                };
                let id = parse_handle(handle)
                    .ok_or_else(|| err(format!("bad class handle {handle:?}")))?;
                let mut b = Block {
                    line: lineno,
                    id,
                    parent: None,
                    rate: None,
                    ceil: None,
                    quantum: None,
                    sent: None,
                };
                header_fields(&mut b, words, &err)?;
                self.block = Some(b);
            }
            Some("Sent") => {
                let Some(b) = self.block.as_mut() else {
                    return Ok(());
                };
                if b.sent.is_some() {
                    // `Sent software`/`Sent hardware` after the total.
                    return Ok(());
                }
                // The first `Sent` line counts, even a `Sent software` one.
                let n = match words.next() {
                    Some("software" | "hardware") => words.next(),
                    other => other,
                }
                .ok_or_else(|| err("`Sent` line without a byte count".into()))?;
                let n: u64 =
                    decimal(n).ok_or_else(|| err(format!("bad `Sent` byte count {n:?}")))?;
                b.sent = Some(Bytes(n));
            }
            None => {}
            Some(_) => {
                // Until the counter, a line may continue the header (older
                // releases print fields in other places); after it, only
                // statistics follow (`rate 0bit 0pps backlog …`), not read.
                if let Some(b) = self.block.as_mut()
                    && b.sent.is_none()
                {
                    header_fields(b, line.split_whitespace(), &err)?;
                }
            }
        }
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<KernelClass>, ParseError> {
        if let Some(b) = self.block.take() {
            self.classes.push(b.finish()?);
        }
        Ok(self.classes)
    }
}

/// Picks `root`, `parent H`, `rate R`, `ceil R` and `quantum N` out of header
/// words; any other word (`leaf`, `prio`, `burst`, `level`, …) is skipped.
fn header_fields<'a>(
    b: &mut Block,
    mut it: impl Iterator<Item = &'a str>,
    err: &dyn Fn(String) -> ParseError,
) -> Result<(), ParseError> {
    while let Some(w) = it.next() {
        if w == "root" {
            b.parent = None;
            continue;
        }
        if !matches!(w, "parent" | "rate" | "ceil" | "quantum") {
            continue;
        }
        let v = it
            .next()
            .ok_or_else(|| err(format!("`{w}` without a value")))?;
        match w {
            "parent" => {
                let p = parse_handle(v).ok_or_else(|| err(format!("bad parent handle {v:?}")))?;
                b.parent = Some(p);
            }
            "rate" => {
                let r = parse_printed_rate(v).ok_or_else(|| err(format!("bad rate {v:?}")))?;
                b.rate = Some(r);
            }
            "ceil" => {
                let r = parse_printed_rate(v).ok_or_else(|| err(format!("bad ceil {v:?}")))?;
                b.ceil = Some(r);
            }
            _ => {
                let q = decimal(v).ok_or_else(|| err(format!("bad quantum {v:?}")))?;
                b.quantum = Some(q);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const IPROUTE2_6_1: &str = include_str!("../../tests/fixtures/tc/iproute2-6.1.txt");
    const IPROUTE2_OLD: &str = include_str!("../../tests/fixtures/tc/iproute2-4.x-old.txt");
    const OFFLOADED: &str = include_str!("../../tests/fixtures/tc/offloaded.txt");
    const MIXED_KINDS: &str = include_str!("../../tests/fixtures/tc/mixed-kinds.txt");
    const HUGE_COUNTERS: &str = include_str!("../../tests/fixtures/tc/huge-counters.txt");
    const IEC: &str = include_str!("../../tests/fixtures/tc/iec.txt");

    const FIXTURES: [(&str, &str); 6] = [
        ("iproute2-6.1", IPROUTE2_6_1),
        ("iproute2-4.x-old", IPROUTE2_OLD),
        ("offloaded", OFFLOADED),
        ("mixed-kinds", MIXED_KINDS),
        ("huge-counters", HUGE_COUNTERS),
        ("iec", IEC),
    ];

    fn pr(shown: u64, precision: u64) -> PrintedRate {
        PrintedRate {
            shown: Rate(shown),
            precision,
        }
    }

    fn id(major: u16, minor: u16) -> ClassId {
        ClassId::new(major, minor)
    }

    fn class(classes: &[KernelClass], minor: u16) -> &KernelClass {
        classes
            .iter()
            .find(|c| c.id == id(1, minor))
            .unwrap_or_else(|| panic!("class 1:{minor:x} missing"))
    }

    fn parse_err(text: &str) -> ParseError {
        parse_class_dump(text).expect_err("should not parse")
    }

    // ---- snapshots over the fixtures ----

    /// Real output of iproute2 6.1 on kernel 6.18: the SPEC §4 hierarchy on a
    /// namespace's `lo`, five UDP packets sent into 1:1001 (their ICMP
    /// port-unreachable replies went to the default class 1:1fff).
    #[test]
    fn snapshot_iproute2_6_1() {
        insta::assert_debug_snapshot!("iproute2-6.1", parse_class_dump(IPROUTE2_6_1));
    }

    /// Hand-written in the style of older releases: `prio`/`quantum` printed
    /// on interior classes, `overhead` fields, rates rounded with `%.0f` and
    /// never above `Mbit`, estimator `rate … pps` lines, 32-bit packet counts.
    #[test]
    fn snapshot_iproute2_old() {
        insta::assert_debug_snapshot!("iproute2-4.x-old", parse_class_dump(IPROUTE2_OLD));
    }

    /// Hand-written: offloaded HTB (`Sent software`/`Sent hardware` lines).
    #[test]
    fn snapshot_offloaded() {
        insta::assert_debug_snapshot!("offloaded", parse_class_dump(OFFLOADED));
    }

    /// Real `mq` + `htb` output of iproute2 6.1 on a two-queue veth, with two
    /// hand-written `fq_codel` class blocks inserted (`sch_fq_codel` is not
    /// built into the kernel the capture was made on).
    #[test]
    fn snapshot_mixed_kinds() {
        insta::assert_debug_snapshot!("mixed-kinds", parse_class_dump(MIXED_KINDS));
    }

    /// Hand-written: 64-bit byte counters, packet counts above 2^32.
    #[test]
    fn snapshot_huge_counters() {
        insta::assert_debug_snapshot!("huge-counters", parse_class_dump(HUGE_COUNTERS));
    }

    /// Real output of `tc -iec` (iproute2 6.1): 1gibit root, 100mibit cap.
    #[test]
    fn snapshot_iec() {
        insta::assert_debug_snapshot!("iec", parse_class_dump(IEC));
    }

    // ---- the fixtures, checked by hand as well ----

    #[test]
    fn real_6_1_dump() {
        let classes = parse_class_dump(IPROUTE2_6_1).unwrap();
        let ids: Vec<String> = classes.iter().map(|c| c.id.to_string()).collect();
        // Dump order is the kernel's hash order, not sorted.
        assert_eq!(
            ids,
            ["1:1001", "1:100", "1:10", "1:1", "1:20", "1:2001", "1:1fff"]
        );
        let root = class(&classes, 1);
        assert_eq!(root.parent, None);
        assert_eq!(root.rate, pr(1_000_000_000, 1_000_000));
        assert_eq!(root.quantum, None);
        let cap = class(&classes, 0x10);
        assert_eq!(cap.parent, Some(id(1, 1)));
        assert_eq!(cap.rate, pr(1000, 1));
        assert_eq!(cap.ceil, pr(100_000_000, 1000));
        // iproute2 6.x prints `quantum` for leaf classes only.
        assert_eq!(cap.quantum, None);
        let leaf = class(&classes, 0x1001);
        assert_eq!(leaf.parent, Some(id(1, 0x100)));
        assert_eq!(leaf.quantum, Some(3200));
        assert_eq!(leaf.ceil, pr(999_992, 1));
        assert_eq!(leaf.sent, Bytes(710));
        assert_eq!(class(&classes, 0x1fff).sent, Bytes(850));
        assert_eq!(class(&classes, 0x1fff).ceil, pr(1_234_000, 1000));
        assert_eq!(class(&classes, 0x2001).ceil, pr(1_048_000, 1000));
        assert_eq!(class(&classes, 0x100).sent, Bytes(1560));
    }

    /// What was applied to build the fixtures (SPEC §4 hierarchy).
    const APPLIED: [(u16, u64, u64); 7] = [
        (0x1, 1_000_000_000, 1_000_000_000),
        (0x10, 1000, 100_000_000),
        (0x100, 1000, 100_000_000),
        (0x20, 1000, 1_000_000_000),
        (0x1fff, 1000, 1_234_567),
        (0x1001, 1000, 999_999),
        (0x2001, 1000, 1_048_576),
    ];

    #[test]
    fn printed_rates_of_fixtures_match_what_was_applied() {
        for (name, text) in [("6.1", IPROUTE2_6_1), ("old", IPROUTE2_OLD)] {
            let classes = parse_class_dump(text).unwrap();
            assert_eq!(classes.len(), 7, "{name}");
            for (minor, rate, ceil) in APPLIED {
                let c = class(&classes, minor);
                assert!(c.rate.matches(Rate(rate)), "{name} 1:{minor:x} rate");
                assert!(c.ceil.matches(Rate(ceil)), "{name} 1:{minor:x} ceil");
            }
        }
        // The IEC fixture was built with IEC rates (1gibit, 100mibit, 1kibit).
        let iec = parse_class_dump(IEC).unwrap();
        assert_eq!(iec.len(), 7);
        for (minor, rate, ceil) in [
            (0x1, 1 << 30, 1 << 30),
            (0x10, 1000, 100 << 20),
            (0x100, 1000, 100 << 20),
            (0x20, 1000, 1 << 30),
            (0x1fff, 1024, 1_234_567),
            (0x1001, 1000, 999_999),
            (0x2001, 1000, 1 << 20),
        ] {
            let c = class(&iec, minor);
            assert!(c.rate.matches(Rate(rate)), "iec 1:{minor:x} rate");
            assert!(c.ceil.matches(Rate(ceil)), "iec 1:{minor:x} ceil");
        }
        // And a ceil that was changed since is seen as changed.
        assert!(!class(&iec, 0x1fff).ceil.matches(Rate(1_240_000)));
    }

    #[test]
    fn old_style_quantum_on_interior_classes_and_rounded_rates() {
        let classes = parse_class_dump(IPROUTE2_OLD).unwrap();
        assert_eq!(class(&classes, 0x10).quantum, Some(200_000));
        assert_eq!(class(&classes, 1).quantum, Some(200_000));
        assert_eq!(class(&classes, 1).parent, None);
        assert_eq!(class(&classes, 0x10).ceil, pr(100_000_000, 1000));
        assert_eq!(class(&classes, 1).ceil, pr(1_000_000_000, 1_000_000));
        assert_eq!(class(&classes, 0x1fff).ceil, pr(1_235_000, 1000));
        // The estimator's `rate 8000bit` after the counter is not the rate.
        assert_eq!(class(&classes, 0x1fff).rate, pr(1000, 1));
        assert_eq!(class(&classes, 0x1fff).sent, Bytes(4_294_966_585));
    }

    #[test]
    fn offloaded_first_sent_line_counts() {
        let classes = parse_class_dump(OFFLOADED).unwrap();
        assert_eq!(class(&classes, 1).sent, Bytes(300));
        assert_eq!(class(&classes, 0x1001).sent, Bytes(4000));
        assert_eq!(class(&classes, 0x1fff).sent, Bytes(9000));
    }

    #[test]
    fn other_kinds_are_skipped() {
        let classes = parse_class_dump(MIXED_KINDS).unwrap();
        let ids: Vec<String> = classes.iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["1:10", "1:1", "1:1fff"]);
        // The mq's and fq_codel's counters do not leak into htb classes.
        assert!(classes.iter().all(|c| c.sent == Bytes(0)));
        assert_eq!(class(&classes, 0x1fff).parent, Some(id(1, 0x10)));
    }

    #[test]
    fn huge_counters() {
        let classes = parse_class_dump(HUGE_COUNTERS).unwrap();
        assert_eq!(class(&classes, 1).sent, Bytes(u64::MAX));
        assert_eq!(class(&classes, 0x1001).sent, Bytes(6_442_450_944_000));
        assert_eq!(class(&classes, 0x1fff).sent, Bytes(u64::MAX - 1));
        assert_eq!(
            class(&classes, 0x1fff).ceil,
            pr(1_000_000_000_000, 1_000_000_000)
        );
    }

    #[test]
    fn iec_rates() {
        let classes = parse_class_dump(IEC).unwrap();
        assert_eq!(class(&classes, 1).rate, pr(1 << 30, 1 << 20));
        assert_eq!(class(&classes, 0x10).ceil, pr(100 << 20, 1024));
        assert_eq!(class(&classes, 0x2001).ceil, pr(1 << 20, 1024));
        assert_eq!(class(&classes, 0x1fff).rate, pr(1024, 1));
        assert_eq!(class(&classes, 0x1fff).ceil, pr(1205 * 1024, 1024));
        // Below 1 Kibit, `tc -iec` still prints plain bits.
        assert_eq!(class(&classes, 0x1001).rate, pr(1000, 1));
    }

    // ---- printed rates ----

    #[test]
    fn printed_rate_forms() {
        let cases = [
            // Figures of 1000 units or more: known to within one unit.
            ("1234Kbit", 1_234_000, 1000),
            ("1048Kbit", 1_048_000, 1000),
            ("100000Kbit", 100_000_000, 1000),
            ("1000Mbit", 1_000_000_000, 1_000_000),
            ("2500Gbit", 2_500_000_000_000, 1_000_000_000),
            ("97656Kibit", 97656 * 1024, 1024),
            ("1205Kibit", 1205 * 1024, 1024),
            // Plain bits are exact.
            ("999992bit", 999_992, 1),
            ("1000bit", 1000, 1),
            ("0bit", 0, 1),
            ("1000ibit", 1000, 1),
            // Below 1000 of a unit: exact at that step, truncated below it.
            ("1Kbit", 1000, 1),
            ("312Kbit", 312_000, 1),
            ("100Mbit", 100_000_000, 1000),
            ("1Gbit", 1_000_000_000, 1_000_000),
            ("1Tbit", 1_000_000_000_000, 1_000_000_000),
            ("1Kibit", 1024, 1),
            ("1Mibit", 1 << 20, 1 << 10),
            ("100Mibit", 100 << 20, 1 << 10),
            ("1Gibit", 1 << 30, 1 << 20),
            ("1Tibit", 1 << 40, 1 << 30),
            // Decimal figures (no release bwmon knows prints them).
            ("1.5Mbit", 1_500_000, 100_000),
            ("2.25Kbit", 2250, 10),
        ];
        for (text, shown, precision) in cases {
            assert_eq!(
                parse_printed_rate(text),
                Some(pr(shown, precision)),
                "{text}"
            );
        }
    }

    #[test]
    fn printed_rate_rejects() {
        for text in [
            "",
            "bit",
            "Kbit",
            "1",
            "1Kb",
            "1Xbit",
            "1 Kbit",
            "-1Kbit",
            "+1Kbit",
            "1.Kbit",
            ".5Kbit",
            "1.2.3Kbit",
            "1.1234567Mbit",
            "1KKbit",
            "18446744073709551616bit",
            "18446744073709552Kbit",
            "20000000Tbit",
            "1Kbit ",
            "1Kbitbit",
            "١Kbit",
        ] {
            assert_eq!(parse_printed_rate(text), None, "{text:?}");
        }
    }

    /// What tc prints of applied rates (iproute2 6.1, see the 6.1 fixture)
    /// must match them; a rate changed since must not.
    #[test]
    fn printed_rate_matches_applied() {
        let matches = |printed: &str, applied: u64| {
            parse_printed_rate(printed)
                .unwrap_or_else(|| panic!("{printed}"))
                .matches(Rate(applied))
        };
        assert!(matches("1234Kbit", 1_234_567));
        assert!(matches("1048Kbit", 1_048_576));
        assert!(matches("999992bit", 999_999));
        assert!(matches("100Mbit", 100_000_000));
        assert!(matches("1Kbit", 1000));
        assert!(matches("1Gbit", 1_000_000_000));
        // Old releases round with %.0f.
        assert!(matches("1235Kbit", 1_234_567));
        assert!(matches("1049Kbit", 1_048_576));
        assert!(matches("100000Kbit", 100_000_000));
        // IEC forms.
        assert!(matches("1Mibit", 1 << 20));
        assert!(matches("976562Kibit", 1_000_000_000));
        assert!(matches("1205Kibit", 1_234_567));
        // Not a match.
        assert!(!matches("1234Kbit", 1_240_000));
        assert!(!matches("999992bit", 1_000_000));
        assert!(!matches("100Mbit", 101_000_000));
        assert!(!matches("1Kbit", 2000));
        // A figure below 1000 of its unit is not a unit wide: the kernel
        // holding 1gbit is not what bwmon wants when it wants 1.5gbit.
        assert!(!matches("1Gbit", 1_500_000_000));
        assert!(!matches("1Kbit", 1500));
        assert!(!matches("2Mbit", 2_900_000));
        assert!(!matches("1Mibit", 1_500_000));
    }

    /// tc's rate printing, as iproute2 3.13 and later do it (truncating).
    fn tc_prints(bits: u64, iec: bool) -> String {
        let kilo = if iec { 1024 } else { 1000 };
        let units = ["", "K", "M", "G", "T"];
        let mut rate = bits;
        let mut i = 0;
        while i < units.len() - 1 {
            if rate < kilo || (!rate.is_multiple_of(kilo) && rate < 1000 * kilo) {
                break;
            }
            rate /= kilo;
            i += 1;
        }
        let suffix = if iec && i > 0 { "i" } else { "" };
        format!("{rate}{}{suffix}bit", units[i])
    }

    /// tc's rate printing in older releases (`%.0f`, rounding, from 1000
    /// units on).
    fn old_tc_prints(bits: u64, iec: bool) -> String {
        #[allow(clippy::cast_precision_loss)]
        let tmp = bits as f64;
        let k: f64 = if iec { 1024.0 } else { 1000.0 };
        let i = if iec { "i" } else { "" };
        if tmp >= 1000.0 * k * k * k {
            format!("{:.0}G{i}bit", tmp / (k * k * k))
        } else if tmp >= 1000.0 * k * k {
            format!("{:.0}M{i}bit", tmp / (k * k))
        } else if tmp >= 1000.0 * k {
            format!("{:.0}K{i}bit", tmp / k)
        } else {
            format!("{tmp:.0}bit")
        }
    }

    #[test]
    fn simulated_tc_printing_samples() {
        assert_eq!(tc_prints(1_234_560, false), "1234Kbit");
        assert_eq!(tc_prints(1_000_000_000, true), "976562Kibit");
        assert_eq!(tc_prints(1000, true), "1000bit");
        assert_eq!(old_tc_prints(1_234_560, false), "1235Kbit");
        assert_eq!(old_tc_prints(100_000_000, false), "100000Kbit");
    }

    proptest::proptest! {
        /// Whatever rate bwmon applies, what any tc release prints of what the
        /// kernel keeps of it matches it: no class is re-applied every run.
        #[test]
        fn printed_rate_of_any_applied_rate_matches_it(
            applied in proptest::prop_oneof![
                1u64..2_000_000,
                1u64..2_000_000_000_000,
                proptest::strategy::Strategy::prop_map((1u64..2000, 0u32..5), |(n, e)| n * 1000u64.pow(e)),
                proptest::strategy::Strategy::prop_map((1u64..2000, 0u32..5), |(n, e)| n << (10 * e)),
            ],
            iec in proptest::bool::ANY,
        ) {
            let kept = applied / 8 * 8;
            for printed in [tc_prints(kept, iec), old_tc_prints(kept, iec)] {
                let p = parse_printed_rate(&printed);
                proptest::prop_assert!(p.is_some(), "{printed}");
                let p = p.unwrap();
                proptest::prop_assert!(p.matches(Rate(applied)), "{printed} {p:?} {applied}");
            }
        }

        /// And a kernel rate that tc prints differently by more than one
        /// unit never passes for it.
        #[test]
        fn printed_rate_is_tight(
            a in 1u64..2_000_000_000_000,
            b in 1u64..2_000_000_000_000,
            iec in proptest::bool::ANY,
        ) {
            let (ka, kb) = (a / 8 * 8, b / 8 * 8);
            let pa = parse_printed_rate(&tc_prints(ka, iec)).unwrap();
            if pa.matches(Rate(b)) {
                // Within the printed figure's unit of it.
                proptest::prop_assert!(ka.abs_diff(kb) < 2 * pa.precision);
            }
        }
    }

    // ---- handles ----

    #[test]
    fn handles() {
        assert_eq!(parse_handle("1:1fff"), Some(id(1, 0x1fff)));
        assert_eq!(parse_handle("1:"), Some(id(1, 0)));
        assert_eq!(parse_handle(":1"), Some(id(0, 1)));
        assert_eq!(parse_handle("ffff:FFFF"), Some(id(0xffff, 0xffff)));
        for bad in [
            "", ":", "1", "1:10000", "1:+1", "1:-1", "g:1", "1:1:1", "1 :1", "00001:1",
        ] {
            assert_eq!(parse_handle(bad), None, "{bad:?}");
        }
    }

    // ---- whole dumps, inline ----

    const LEAF: &str = "class htb 1:1001 parent 1:100 leaf 1001: prio 0 quantum 3200 rate 1Kbit ceil 999992bit linklayer ethernet burst 1600b/1 mpu 0b cburst 1599b/1 mpu 0b level 0 \n Sent 710 bytes 5 pkt (dropped 0, overlimits 0 requeues 0) \n backlog 0b 0p requeues 0\n lended: 5 borrowed: 0 giants: 0\n tokens: 111253050 ctokens: 114299\n\n";

    #[test]
    fn empty_and_blank_input() {
        assert_eq!(parse_class_dump(""), Ok(vec![]));
        assert_eq!(parse_class_dump("\n\n  \n"), Ok(vec![]));
        // Statistics without any class header are not ours.
        assert_eq!(
            parse_class_dump(" Sent 5 bytes 1 pkt\n backlog 0b 0p requeues 0\n"),
            Ok(vec![])
        );
    }

    #[test]
    fn one_leaf() {
        let got = parse_class_dump(LEAF).unwrap();
        assert_eq!(
            got,
            vec![KernelClass {
                id: id(1, 0x1001),
                parent: Some(id(1, 0x100)),
                rate: pr(1000, 1),
                ceil: pr(999_992, 1),
                quantum: Some(3200),
                sent: Bytes(710),
            }]
        );
        // CRLF line ends and no trailing newline change nothing.
        assert_eq!(parse_class_dump(&LEAF.replace('\n', "\r\n")).unwrap(), got);
        assert_eq!(parse_class_dump(LEAF.trim_end()).unwrap(), got);
    }

    #[test]
    fn quantum_anywhere_in_the_header_lines() {
        let text = "class htb 1:10 parent 1:1 rate 1000bit ceil 100000Kbit\n  prio 0 quantum 1600 burst 1600b/1\n Sent 0 bytes 0 pkt\n";
        let c = parse_class_dump(text).unwrap();
        assert_eq!(c[0].quantum, Some(1600));
        assert_eq!(c[0].ceil, pr(100_000_000, 1000));
        // A `quantum` word after the counter is statistics, not the header.
        let text = "class htb 1:10 root rate 1Kbit ceil 1Kbit\n Sent 0 bytes 0 pkt\n quantum 99\n";
        assert_eq!(parse_class_dump(text).unwrap()[0].quantum, None);
    }

    #[test]
    fn sent_software_first_is_not_read_as_a_word() {
        let text = "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent software 100 bytes 1 pkt\n Sent hardware 200 bytes 2 pkt\n";
        assert_eq!(parse_class_dump(text).unwrap()[0].sent, Bytes(100));
        let text = "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent hardware 200 bytes 2 pkt\n Sent 300 bytes 3 pkt\n";
        assert_eq!(parse_class_dump(text).unwrap()[0].sent, Bytes(200));
    }

    #[test]
    fn counters_are_64_bit_and_packets_ignored() {
        let text = "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent 18446744073709551615 bytes 99999999999999999999999 pkt\n";
        assert_eq!(parse_class_dump(text).unwrap()[0].sent, Bytes(u64::MAX));
        let text =
            "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent 18446744073709551616 bytes 1 pkt\n";
        let e = parse_err(text);
        assert_eq!(e.line, 2);
        assert!(e.message.contains("18446744073709551616"), "{e}");
    }

    #[test]
    fn other_kinds_skipped_inline() {
        let text = format!(
            "class mq :1 root \n Sent 999 bytes 9 pkt (dropped 0, overlimits 0 requeues 0) \n backlog 0b 0p requeues 0\n\
             class mq :2 root \n Sent 0 bytes 0 pkt\n\
             {LEAF}\
             class fq_codel 8001:1 parent 8001: \n Sent 77 bytes 1 pkt\n rate 1Kbit ceil bogus quantum x\n\
             class prio 8002:1 parent 8002: \n"
        );
        let got = parse_class_dump(&text).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].sent, Bytes(710));
    }

    #[test]
    fn errors_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            // Missing fields are reported at the class's header line.
            (
                "\nclass htb 1:1 root ceil 1Kbit\n Sent 0 bytes 0 pkt\n",
                2,
                "no rate",
            ),
            (
                "class htb 1:1 root rate 1Kbit\n Sent 0 bytes 0 pkt\n",
                1,
                "no ceil",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\n backlog 0b\n",
                1,
                "Sent",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\nclass htb 1:2 root rate 1Kbit ceil 1Kbit\n Sent 0 bytes 0 pkt\n",
                1,
                "Sent",
            ),
            // Malformed things are reported where they are.
            ("class htb 1:zz root rate 1Kbit ceil 1Kbit\n", 1, "handle"),
            ("class htb\n", 1, "handle"),
            ("class\n", 1, "kind"),
            (
                "class htb 1:1 parent 1 rate 1Kbit ceil 1Kbit\n Sent 0 bytes 0 pkt\n",
                1,
                "parent",
            ),
            ("class htb 1:1 root rate 1Kbps ceil 1Kbit\n", 1, "rate"),
            ("class htb 1:1 root rate 1Kbit ceil\n", 1, "`ceil` without"),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit quantum -5\n",
                1,
                "quantum",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit quantum 4294967296\n",
                1,
                "quantum",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent\n",
                2,
                "byte count",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent software\n",
                2,
                "byte count",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent many bytes\n",
                2,
                "byte count",
            ),
            (
                "class htb 1:1 root rate 1Kbit ceil 1Kbit\n Sent -1 bytes\n",
                2,
                "byte count",
            ),
        ];
        for &(text, line, needle) in cases {
            let e = parse_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn error_display() {
        let e = parse_err("class htb 1:1 root rate 1Kbit\n Sent 0 bytes 0 pkt\n");
        assert_eq!(e.to_string(), "line 1: class htb 1:1 has no ceil");
        let _: &dyn std::error::Error = &e;
    }

    /// Every prefix and every single-line deletion of every fixture parses or
    /// fails cleanly: the parser never panics (it is fuzzed as well).
    #[test]
    fn cut_and_damaged_fixtures_never_panic() {
        for (name, text) in FIXTURES {
            for (i, _) in text.char_indices() {
                let _ = parse_class_dump(&text[..i]);
            }
            let lines: Vec<&str> = text.lines().collect();
            for skip in 0..lines.len() {
                let damaged: Vec<&str> = lines
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != skip)
                    .map(|(_, l)| *l)
                    .collect();
                if let Err(e) = parse_class_dump(&damaged.join("\n")) {
                    assert!(e.line >= 1 && e.line <= lines.len(), "{name}: {e}");
                }
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC*") {
            let _ = parse_class_dump(&text);
        }

        #[test]
        fn tc_like_words_never_panic(
            words in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::strategy::Just("class".to_string()),
                    proptest::strategy::Just("htb".to_string()),
                    proptest::strategy::Just("Sent".to_string()),
                    proptest::strategy::Just("software".to_string()),
                    proptest::strategy::Just("rate".to_string()),
                    proptest::strategy::Just("ceil".to_string()),
                    proptest::strategy::Just("quantum".to_string()),
                    proptest::strategy::Just("parent".to_string()),
                    proptest::strategy::Just("root".to_string()),
                    proptest::strategy::Just("\n".to_string()),
                    "[0-9a-fA-F:.]{0,8}(bit|Kbit|Mibit)?",
                ],
                0..60,
            )
        ) {
            let _ = parse_class_dump(&words.join(" "));
        }

        #[test]
        fn printed_rate_never_panics(s in "[0-9.]{0,25}[KMGTkmgt]?i?bit") {
            let _ = parse_printed_rate(&s);
        }
    }
}
