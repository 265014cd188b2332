//! Parser of `tc -s -d class show dev DEV` (plain-text form, every iproute2
//! release bwmon meets): pure, over `&str`, never panicking on any input.

use super::{ClassId, KernelClass, PrintedRate};
use crate::units::{Bytes, Rate};
use std::fmt;

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

/// Parses a handle as tc prints it: `1:1fff`, `1:` (minor 0), hex.
pub fn parse_handle(s: &str) -> Option<ClassId> {
    let (maj, min) = s.split_once(':')?;
    let major = u16::from_str_radix(maj, 16).ok()?;
    let minor = if min.is_empty() {
        0
    } else {
        u16::from_str_radix(min, 16).ok()?
    };
    Some(ClassId::new(major, minor))
}

/// Parses a rate as tc prints it (`1Kbit`, `1234Kbit`, `999992bit`, `1Mibit`,
/// `100000Kbit`), keeping the precision of its unit.
pub fn parse_printed_rate(s: &str) -> Option<PrintedRate> {
    let body = s.strip_suffix("bit")?;
    let split = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, unit) = body.split_at(split);
    let mult: u64 = match unit {
        "" => 1,
        "K" | "k" => 1_000,
        "M" | "m" => 1_000_000,
        "G" | "g" => 1_000_000_000,
        "T" | "t" => 1_000_000_000_000,
        "Ki" | "ki" => 1 << 10,
        "Mi" | "mi" => 1 << 20,
        "Gi" | "gi" => 1 << 30,
        "Ti" | "ti" => 1 << 40,
        _ => return None,
    };
    // Old releases may print a decimal figure ("1.5Mbit"); precision then is
    // one unit of the last printed digit.
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || frac.len() > 6 {
        return None;
    }
    let scale = 10u64.pow(u32::try_from(frac.len()).ok()?);
    let int: u64 = int.parse().ok()?;
    let frac_v: u64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let shown = int
        .checked_mul(mult)?
        .checked_add(frac_v.checked_mul(mult)? / scale)?;
    Some(PrintedRate {
        shown: Rate(shown),
        precision: (mult / scale).max(1),
    })
}

#[derive(Default)]
struct Block {
    line: usize,
    id: Option<ClassId>,
    parent: Option<ClassId>,
    rate: Option<PrintedRate>,
    ceil: Option<PrintedRate>,
    quantum: Option<u32>,
    sent: Option<Bytes>,
}

impl Block {
    fn finish(self) -> Result<Option<KernelClass>, ParseError> {
        let Some(id) = self.id else { return Ok(None) };
        let missing = |what: &str| ParseError {
            line: self.line,
            message: format!("class {id} has no {what}"),
        };
        Ok(Some(KernelClass {
            id,
            parent: self.parent,
            rate: self.rate.ok_or_else(|| missing("rate"))?,
            ceil: self.ceil.ok_or_else(|| missing("ceil"))?,
            quantum: self.quantum,
            sent: self.sent.ok_or_else(|| missing("`Sent` counter"))?,
        }))
    }
}

pub fn parse_class_dump(text: &str) -> Result<Vec<KernelClass>, ParseError> {
    let mut classes = Vec::new();
    // None while inside a block of another class kind (skipped).
    let mut block: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let err = |message: String| ParseError {
            line: lineno,
            message,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("class") => {
                if let Some(b) = block.take() {
                    classes.extend(b.finish()?);
                }
                if words.get(1) != Some(&"htb") {
                    continue;
                }
                let handle = words
                    .get(2)
                    .ok_or_else(|| err("class line without a handle".into()))?;
                let id = parse_handle(handle)
                    .ok_or_else(|| err(format!("bad class handle {handle:?}")))?;
                let mut b = Block {
                    line: lineno,
                    id: Some(id),
                    ..Block::default()
                };
                header_fields(&mut b, &words[3..], &err)?;
                block = Some(b);
            }
            Some("Sent") => {
                let Some(b) = block.as_mut() else { continue };
                if b.sent.is_some() {
                    continue; // `Sent software`/`Sent hardware` after the total
                }
                let n = words
                    .iter()
                    .skip(1)
                    .find(|w| w.bytes().all(|c| c.is_ascii_digit()))
                    .ok_or_else(|| err("`Sent` line without a byte count".into()))?;
                let n: u64 = n
                    .parse()
                    .map_err(|_| err(format!("byte counter {n:?} out of range")))?;
                b.sent = Some(Bytes(n));
            }
            Some(_) => {
                // Continuation of a header (older releases wrap long lines)
                // or statistics; only header fields are picked up.
                if let Some(b) = block.as_mut()
                    && b.sent.is_none()
                {
                    header_fields(b, &words, &err)?;
                }
            }
            None => {}
        }
    }
    if let Some(b) = block.take() {
        classes.extend(b.finish()?);
    }
    Ok(classes)
}

fn header_fields(
    b: &mut Block,
    words: &[&str],
    err: &dyn Fn(String) -> ParseError,
) -> Result<(), ParseError> {
    let mut it = words.iter();
    while let Some(&w) = it.next() {
        match w {
            "root" => b.parent = None,
            "parent" | "rate" | "ceil" | "quantum" => {
                let v = it
                    .next()
                    .ok_or_else(|| err(format!("`{w}` without a value")))?;
                match w {
                    "parent" => {
                        b.parent = Some(
                            parse_handle(v)
                                .ok_or_else(|| err(format!("bad parent handle {v:?}")))?,
                        );
                    }
                    "rate" => {
                        b.rate = Some(
                            parse_printed_rate(v).ok_or_else(|| err(format!("bad rate {v:?}")))?,
                        );
                    }
                    "ceil" => {
                        b.ceil = Some(
                            parse_printed_rate(v).ok_or_else(|| err(format!("bad ceil {v:?}")))?,
                        );
                    }
                    _ => {
                        b.quantum = Some(v.parse().map_err(|_| err(format!("bad quantum {v:?}")))?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}
