//! The slivers JSON (SPEC §3): turns the node manager's dump into live slices,
//! held records and one-line warnings. This module owns what a valid slice
//! name, xid and resource value are; it touches no state and no kernel.
//!
//! Every record of the input ends up in exactly one of [`Input::live`],
//! [`Input::held`] or [`Input::skipped`]. A record with a per-slice error is
//! *held* (its state and classes stay as they were), never dropped and never
//! silently aliased onto another slice's xid. A malformed whole input, or a
//! record that names no slice (so the live set is unknown), is an
//! [`InputError`] and stops the run.
//!
//! Everything that reaches a message is one printable line: names with odd
//! characters are escaped with `{:?}` and clipped, values are rendered as
//! compact JSON, clipped and escaped.

use crate::units::{Kbit, KiB};
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

/// Per-slice resource keys as given; `None` = key missing or its value
/// invalid (→ the caller uses the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rspec {
    /// `net_min_rate`, kbit/s.
    pub min_rate: Option<Kbit>,
    /// `net_max_rate`, kbit/s.
    pub max_rate: Option<Kbit>,
    /// `net_i2_min_rate`, kbit/s.
    pub i2_min_rate: Option<Kbit>,
    /// `net_i2_max_rate`, kbit/s.
    pub i2_max_rate: Option<Kbit>,
    /// `net_max_kbyte`, KiB per period.
    pub max_kbyte: Option<KiB>,
    /// `net_i2_max_kbyte`, KiB per period.
    pub i2_max_kbyte: Option<KiB>,
    /// `net_thresh_kbyte`, KiB per period.
    pub thresh_kbyte: Option<KiB>,
    /// `net_i2_thresh_kbyte`, KiB per period.
    pub i2_thresh_kbyte: Option<KiB>,
    /// `net_share`, at least 1.
    pub share: Option<u32>,
    /// `net_i2_share`, at least 1.
    pub i2_share: Option<u32>,
}

/// A valid, live slice: name and xid checked, unique in the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sliver {
    /// The slice's identity: 1–64 characters of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The HTB minor of its classes, in `1..=4094`.
    pub xid: u16,
    /// Its resource keys; missing or invalid ones are `None`.
    pub rspec: Rspec,
}

/// A record with a per-slice error: bwmon must leave its state and classes
/// exactly as they were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held {
    /// How to name it in messages, one printable line: the name if valid,
    /// else the name, key or `record #N`, escaped with `{:?}` and clipped.
    pub label: String,
    /// `Some` only if the name is valid.
    pub name: Option<String>,
    /// `Some` only if the xid is valid (`1..=4094`).
    pub xid: Option<u16>,
    /// One line, e.g. `xid 5000 is outside 1..=4094`.
    pub reason: String,
}

/// The parsed input: every record lands in exactly one of `live`, `held`
/// and `skipped`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Input {
    /// Valid records, sorted by xid.
    pub live: Vec<Sliver>,
    /// Records with a per-slice error, in input order.
    pub held: Vec<Held>,
    /// One line each: invalid key values of live slices that fell back to
    /// the default, naming slice, key and value.
    pub warnings: Vec<String>,
    /// Info-level notes, one per record without xid that resolves to no
    /// user (delegated, not instantiated yet).
    pub skipped: Vec<String>,
}

/// Whole-input errors (empty input, not JSON, not an object or array at the
/// top level). The message is one line and says what to do.
#[derive(Debug, PartialEq, Eq)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// The largest xid a slice may have: 4095 is the default class, and the HTB
/// minor has 12 bits.
const XID_MAX: u16 = 4094;
/// Longest valid slice name.
const NAME_MAX: usize = 64;
/// How many characters of a bad name or value a message quotes.
const CLIP: usize = 40;
/// How many other claimants a duplicate's reason lists.
const OTHERS_LISTED: usize = 3;
/// What every whole-input error ends with: what the input must be.
const EXPECTED: &str =
    "expected a JSON object of slivers keyed by name (`{}` means no slice is live)";
/// Names of bwmon's own records (xid 0 and 4095): a tenant of that name would
/// show twice in status and give duplicate Prometheus series.
const RESERVED: [&str; 2] = ["root", "default"];
/// What an invalid name's reason tells the operator to use.
const NAME_RULE: &str = "use 1-64 characters of A-Z a-z 0-9 _ . -";

/// Parses the slivers JSON. `uid_of` resolves the name of a record without
/// `xid` to its uid (in production [`uid_from_nss`]); it is called only for
/// valid names.
///
/// # Errors
///
/// [`InputError`] when the input as a whole is unusable: zero bytes or only
/// whitespace, not JSON (including nesting beyond `serde_json`'s recursion
/// limit), a top level that is neither an object nor an array, or a record
/// that names no slice. Other per-record problems are never errors: they are
/// held, skipped or warned about.
pub fn parse(
    bytes: &[u8],
    uid_of: &dyn Fn(&str) -> Result<Option<u32>, String>,
) -> Result<Input, InputError> {
    if bytes.is_empty() {
        return Err(InputError(format!("slivers input is empty: {EXPECTED}")));
    }
    if bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Err(InputError(format!(
            "slivers input is only whitespace: {EXPECTED}"
        )));
    }
    let top: Top = serde_json::from_slice(bytes)
        .map_err(|e| InputError(format!("slivers input is not valid JSON ({e}): {EXPECTED}")))?;
    let records: Vec<Record> = match top {
        Top::Object(entries) => entries
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record::read(i + 1, Some(key), value, uid_of))
            .collect::<Result<_, _>>()?,
        Top::Array(values) => values
            .iter()
            .enumerate()
            .map(|(i, value)| Record::read(i + 1, None, value, uid_of))
            .collect::<Result<_, _>>()?,
        Top::Other(kind) => {
            return Err(InputError(format!(
                "slivers input is {kind}, not an object or array of slivers: {EXPECTED}"
            )));
        }
    };
    Ok(assemble(hold_duplicates(records)))
}

/// The real NSS lookup for `uid_of`: the uid of the user named `name`.
///
/// A failed lookup (directory service down) is an error, not "no such user":
/// the record is then held, so its classes are not removed as a dead slice's.
pub fn uid_from_nss(name: &str) -> Result<Option<u32>, String> {
    nix::unistd::User::from_name(name)
        .map(|user| user.map(|u| u.uid.as_raw()))
        .map_err(|e| format!("looking up user {:?} failed: {e}", clip(name)))
}

/// The top level of the input. Object entries keep their order and their
/// duplicates (a repeated key is two records, so both get held).
enum Top {
    Object(Vec<(String, Value)>),
    Array(Vec<Value>),
    /// Any other JSON value, described for the error message.
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Top {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of slivers keyed by name, or an array of them")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Top, E> {
        Ok(Top::Other("a boolean"))
    }

    fn visit_i64<E>(self, _: i64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_u64<E>(self, _: u64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_f64<E>(self, _: f64) -> Result<Top, E> {
        Ok(Top::Other("a number"))
    }

    fn visit_str<E>(self, _: &str) -> Result<Top, E> {
        Ok(Top::Other("a string"))
    }

    fn visit_unit<E>(self) -> Result<Top, E> {
        Ok(Top::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Top, A::Error> {
        let mut values = Vec::new();
        while let Some(value) = seq.next_element::<Value>()? {
            values.push(value);
        }
        Ok(Top::Array(values))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry::<String, Value>()? {
            entries.push(entry);
        }
        Ok(Top::Object(entries))
    }
}

/// What became of one record.
enum Fate {
    Live(Sliver, Vec<String>),
    Held(Vec<String>),
    Skipped(String),
}

/// One record of the input, judged on its own (duplicates come later).
struct Record {
    /// 1-based position in the input.
    pos: usize,
    label: String,
    name: Option<String>,
    xid: Option<u16>,
    fate: Fate,
}

impl Record {
    /// # Errors
    ///
    /// A record that names no slice (not an object, no `name` in the array
    /// form, a `name` that is not a string): which slice it stands for cannot
    /// be known, so neither can the live set, and acting on the rest would
    /// remove that slice's classes (SPEC §3).
    fn read(
        pos: usize,
        key: Option<&str>,
        value: &Value,
        uid_of: &dyn Fn(&str) -> Result<Option<u32>, String>,
    ) -> Result<Record, InputError> {
        let whose = || match key {
            Some(k) => format!("record #{pos} ({})", label_of(k)),
            None => format!("record #{pos}"),
        };
        let names_none = |why: String| {
            InputError(format!(
                "slivers input: {} {why}, so the live slices cannot be known: {EXPECTED}",
                whose()
            ))
        };
        let Value::Object(rec) = value else {
            return Err(names_none(format!("is {}, not an object", kind(value))));
        };
        let mut reasons = Vec::new();

        // The record's own name is its identity; the key only stands in for
        // a missing one.
        let given = match (rec.get("name"), key) {
            (Some(Value::String(n)), _) => n.as_str(),
            (None, Some(k)) => k,
            (Some(other), _) => {
                return Err(names_none(format!(
                    "has name {}, not a string",
                    render(other)
                )));
            }
            (None, None) => return Err(names_none("has no \"name\"".to_owned())),
        };
        let (label, name) = if !valid_name(given) {
            reasons.push(format!(
                "name {} is invalid: {NAME_RULE}",
                quote_name(given)
            ));
            (label_of(given), None)
        } else if RESERVED.contains(&given) {
            reasons.push(format!(
                "name {given} is reserved for bwmon's own {} class: rename the slice",
                if given == "root" {
                    "root (xid 0)"
                } else {
                    "unclassified-traffic (xid 4095)"
                }
            ));
            (given.to_owned(), None)
        } else {
            (given.to_owned(), Some(given.to_owned()))
        };

        let xid = match read_xid(rec.get("xid"), name.as_deref(), uid_of) {
            Ok(Some(x)) => Some(x),
            Ok(None) if reasons.is_empty() => {
                let note = format!(
                    "{label} has no xid and no user of that name \
                     (delegated, not instantiated yet): skipped"
                );
                let fate = Fate::Skipped(note);
                return Ok(Record {
                    pos,
                    label,
                    name,
                    xid: None,
                    fate,
                });
            }
            Ok(None) => None,
            Err(reason) => {
                reasons.push(reason);
                None
            }
        };
        let (true, Some(slice), Some(x)) = (reasons.is_empty(), &name, xid) else {
            // Every way to lack a valid name or xid pushed a reason.
            return Ok(Record {
                pos,
                label,
                name,
                xid,
                fate: Fate::Held(reasons),
            });
        };

        let fate = match rec
            .get("_rspec")
            .map(|v| ("_rspec", v))
            .or_else(|| rec.get("rspec").map(|v| ("rspec", v)))
        {
            // Not "gone": a renamed key or a half-written record must not
            // remove a live slice's classes.
            None => Fate::Held(vec!["record has neither _rspec nor rspec".to_owned()]),
            Some((_, Value::Object(map))) => {
                let mut warnings = Vec::new();
                let rspec = read_rspec(slice, map, &mut warnings);
                let sliver = Sliver {
                    name: slice.clone(),
                    xid: x,
                    rspec,
                };
                Fate::Live(sliver, warnings)
            }
            Some((which, other)) => {
                Fate::Held(vec![format!("{which} is {}, not an object", kind(other))])
            }
        };
        Ok(Record {
            pos,
            label,
            name,
            xid,
            fate,
        })
    }
}

/// The record's xid, else the uid of the user `name` (asked only when the
/// name is valid). `Ok(None)`: no xid to be had — no valid name, or no such
/// user.
fn read_xid(
    given: Option<&Value>,
    name: Option<&str>,
    uid_of: &dyn Fn(&str) -> Result<Option<u32>, String>,
) -> Result<Option<u16>, String> {
    let valid = |n: u64| u16::try_from(n).ok().filter(|x| (1..=XID_MAX).contains(x));
    match (given, name) {
        (Some(v), _) => match whole(v) {
            Some(n) => valid(n)
                .map(Some)
                .ok_or_else(|| format!("xid {n} is outside 1..=4094{}", xid_note(n))),
            None => Err(format!(
                "xid {} is not a whole number in 1..=4094",
                render(v)
            )),
        },
        (None, Some(n)) => match uid_of(n)? {
            None => Ok(None),
            Some(uid) => valid(uid.into()).map(Some).ok_or_else(|| {
                format!("no xid given and user {n} has uid {uid}, outside 1..=4094")
            }),
        },
        (None, None) => Ok(None),
    }
}

/// Why an out-of-range xid is reserved, where it is.
fn xid_note(xid: u64) -> &'static str {
    match xid {
        0 => " (0 is root)",
        4095 => " (4095 is the default class)",
        _ => "",
    }
}

/// What a rate key must hold, for warnings.
const RATE: &str = "a whole number of kbit/s";
/// What a volume key must hold, for warnings.
const VOLUME: &str = "a whole number of KiB";
/// What a share key must hold, for warnings.
const SHARE: &str = "a whole number in 1..=4294967295";

/// Reads the ten `net_*` keys; unknown keys are ignored.
fn read_rspec(slice: &str, map: &Map<String, Value>, warnings: &mut Vec<String>) -> Rspec {
    let mut r = RspecReader {
        slice,
        map,
        warnings,
    };
    Rspec {
        min_rate: r.rate("net_min_rate"),
        max_rate: r.rate("net_max_rate"),
        i2_min_rate: r.rate("net_i2_min_rate"),
        i2_max_rate: r.rate("net_i2_max_rate"),
        max_kbyte: r.volume("net_max_kbyte"),
        i2_max_kbyte: r.volume("net_i2_max_kbyte"),
        thresh_kbyte: r.volume("net_thresh_kbyte"),
        i2_thresh_kbyte: r.volume("net_i2_thresh_kbyte"),
        share: r.share("net_share"),
        i2_share: r.share("net_i2_share"),
    }
}

/// Reads one slice's rspec keys, warning about each invalid value.
struct RspecReader<'a> {
    slice: &'a str,
    map: &'a Map<String, Value>,
    warnings: &'a mut Vec<String>,
}

impl RspecReader<'_> {
    /// The key's value if present and accepted by `convert`; a warning if
    /// present and not.
    fn get<T>(
        &mut self,
        key: &str,
        what: &str,
        convert: impl FnOnce(u64) -> Option<T>,
    ) -> Option<T> {
        let value = self.map.get(key)?;
        let got = whole(value).and_then(convert);
        if got.is_none() {
            self.warnings.push(format!(
                "slice {}: {key} {} is not {what}: using the default",
                self.slice,
                render(value)
            ));
        }
        got
    }

    fn rate(&mut self, key: &str) -> Option<Kbit> {
        self.get(key, RATE, |n| Some(Kbit(n)))
    }

    fn volume(&mut self, key: &str) -> Option<KiB> {
        self.get(key, VOLUME, |n| Some(KiB(n)))
    }

    fn share(&mut self, key: &str) -> Option<u32> {
        self.get(key, SHARE, |n| u32::try_from(n).ok().filter(|&s| s >= 1))
    }
}

/// A whole number ≥ 0 that fits u64: a JSON number (`5000`, `5000.0`) or a
/// string of one (`"5000"`, `"5000.0"`, no surrounding whitespace).
fn whole(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => whole_number(n),
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()
        }
        // `Number::from_str` takes exactly one JSON number: no whitespace.
        Value::String(s) => s.parse::<Number>().ok().as_ref().and_then(whole_number),
        _ => None,
    }
}

/// 2^64 as f64: the first integral float that no longer fits u64.
const TWO_POW_64: f64 = 18_446_744_073_709_551_616.0;

fn whole_number(n: &Number) -> Option<u64> {
    if let Some(u) = n.as_u64() {
        return Some(u);
    }
    let f = n.as_f64()?;
    // A minus sign always means a mistake, even on `-0`.
    let fits = f.is_finite() && f.is_sign_positive() && f.fract() == 0.0 && f < TWO_POW_64;
    // Exact: `f` is integral, non-negative and below 2^64.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    fits.then_some(f as u64)
}

/// A valid slice name: 1–64 characters of `[A-Za-z0-9_.-]`.
fn valid_name(name: &str) -> bool {
    (1..=NAME_MAX).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// How a name or key appears in messages: as is if valid, else escaped and
/// clipped so it stays one printable line.
fn label_of(name: &str) -> String {
    if valid_name(name) {
        name.to_owned()
    } else {
        format!("{:?}", clip(name))
    }
}

/// An invalid name for a reason: escaped, clipped, with its length if long.
fn quote_name(name: &str) -> String {
    let chars = name.chars().count();
    if chars > NAME_MAX {
        format!("{:?} ({chars} characters)", clip(name))
    } else {
        format!("{:?}", clip(name))
    }
}

/// A JSON value for a message: compact JSON, clipped, with anything that
/// could break the line or fool a terminal escaped.
fn render(value: &Value) -> String {
    let json = serde_json::to_string(value).unwrap_or_else(|_| "?".to_owned());
    let mut out = String::new();
    for c in clip(&json).chars() {
        if c.is_ascii_graphic() || c == ' ' || c == '…' {
            out.push(c);
        } else {
            out.extend(c.escape_debug());
        }
    }
    out
}

/// The first [`CLIP`] characters of `s`, with `…` if there were more.
fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(CLIP) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// A JSON value's kind, for messages.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Holds every record whose xid or name another record also claims: which
/// of them is meant cannot be known, and guessing would alias one slice's
/// classes onto another's.
fn hold_duplicates(mut records: Vec<Record>) -> Vec<Record> {
    let mut by_xid: HashMap<u16, Vec<usize>> = HashMap::new();
    let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, r) in records.iter().enumerate() {
        if let Some(x) = r.xid {
            by_xid.entry(x).or_default().push(i);
        }
        if let Some(n) = &r.name {
            by_name.entry(n).or_default().push(i);
        }
    }
    let mut extra: Vec<Vec<String>> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        let mut reasons = Vec::new();
        if let Some(x) = r.xid {
            let claimants = &by_xid[&x];
            if claimants.len() > 1 {
                let others = others(&records, i, claimants);
                reasons.push(format!("xid {x} is also claimed by {others}"));
            }
        }
        if let Some(n) = &r.name {
            let users = &by_name[n.as_str()];
            if users.len() > 1 {
                let others = others(&records, i, users);
                reasons.push(format!("name {n} is also used by {others}"));
            }
        }
        extra.push(reasons);
    }
    for (r, reasons) in records.iter_mut().zip(extra) {
        if reasons.is_empty() {
            continue;
        }
        match &mut r.fate {
            Fate::Held(had) => had.extend(reasons),
            fate => *fate = Fate::Held(reasons),
        }
    }
    records
}

/// The other records in `group` as seen from record `me`: by label where
/// that tells them apart, else by position; at most [`OTHERS_LISTED`].
fn others(records: &[Record], me: usize, group: &[usize]) -> String {
    let mine = &records[me];
    let mut listed: Vec<String> = group
        .iter()
        .filter(|&&j| j != me)
        .take(OTHERS_LISTED)
        .map(|&j| {
            let other = &records[j];
            if other.label == mine.label {
                format!("record #{}", other.pos)
            } else {
                other.label.clone()
            }
        })
        .collect();
    let more = group.len() - 1 - listed.len();
    if more > 0 {
        listed.push(format!("{more} more"));
    }
    listed.join(", ")
}

/// Sorts the judged records into the caller's lists.
fn assemble(records: Vec<Record>) -> Input {
    let mut input = Input::default();
    for r in records {
        match r.fate {
            Fate::Live(sliver, warnings) => {
                input.live.push(sliver);
                input.warnings.extend(warnings);
            }
            Fate::Held(reasons) => input.held.push(Held {
                label: r.label,
                name: r.name,
                xid: r.xid,
                reason: reasons.join("; "),
            }),
            Fate::Skipped(note) => input.skipped.push(note),
        }
    }
    input.live.sort_by_key(|s| s.xid);
    input
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    /// The NSS of the tests: `pl_user` is uid 1234, `pl_root` is root,
    /// `pl_big` has a uid above any xid; nobody else exists.
    fn uid_of(name: &str) -> Result<Option<u32>, String> {
        match name {
            "pl_user" => Ok(Some(1234)),
            "pl_root" => Ok(Some(0)),
            "pl_big" => Ok(Some(5000)),
            "pl_nss_down" => Err("looking up user \"pl_nss_down\" failed: EIO".into()),
            _ => Ok(None),
        }
    }

    fn run(input: &str) -> Result<Input, InputError> {
        parse(input.as_bytes(), &uid_of)
    }

    /// True if `s` is one printable line.
    fn one_line(s: &str) -> bool {
        !s.chars()
            .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}'))
    }

    fn assert_one_line(input: &Input) {
        let held = input.held.iter().flat_map(|h| [&h.label, &h.reason]);
        for line in held.chain(&input.warnings).chain(&input.skipped) {
            assert!(one_line(line), "not one printable line: {line:?}");
        }
    }

    #[test]
    fn whole_input_errors() {
        let deep_array = "[".repeat(100_000);
        let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
        let nested_record = format!(r#"{{"pl_a": {}{}}}"#, "[".repeat(5000), "]".repeat(5000));
        let cases: &[(&[u8], &str)] = &[
            (b"", "slivers input is empty"),
            (b"  \n\t\r\n", "only whitespace"),
            (b"5", "slivers input is a number"),
            (b"-1.5", "slivers input is a number"),
            (br#""pl_alice""#, "slivers input is a string"),
            (b"null", "slivers input is null"),
            (b"true", "slivers input is a boolean"),
            (
                b"{",
                "not valid JSON (EOF while parsing an object at line 1 column 1)",
            ),
            (
                b"{}\n{}",
                "not valid JSON (trailing characters at line 2 column 1)",
            ),
            (b"[1,]", "not valid JSON"),
            (br#"{"a":1,}"#, "not valid JSON"),
            (b"\xff\xfe", "not valid JSON"),
            (b"{\"\xff\": {}}", "not valid JSON"),
            (br#"{"a": "\ud800"}"#, "not valid JSON"),
            (b"\x0c{}", "not valid JSON"),
            (deep_array.as_bytes(), "recursion limit exceeded"),
            (deep_object.as_bytes(), "recursion limit exceeded"),
            (nested_record.as_bytes(), "recursion limit exceeded"),
            // Records that name no slice: the live set is unknown.
            (b"[1,2,3]", "record #1 is a number, not an object"),
            (b"[[1, 2], null]", "record #1 is an array, not an object"),
            (
                br#"{"pl_a": 5, "pl_b": {"xid": 1002, "_rspec": {}}}"#,
                "record #1 (pl_a) is a number, not an object",
            ),
            (
                br#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"xid": 1002, "_rspec": {}}]"#,
                r#"record #2 has no "name""#,
            ),
            (
                br#"[{"name": 17, "xid": 1002, "_rspec": {}}]"#,
                "record #1 has name 17, not a string",
            ),
            (
                br#"{"pl_a": {"name": null, "xid": 1002, "_rspec": {}}}"#,
                "record #1 (pl_a) has name null, not a string",
            ),
        ];
        for (bytes, want) in cases {
            let err = parse(bytes, &uid_of).expect_err(want);
            let msg = err.to_string();
            assert!(msg.contains(want), "{msg:?} lacks {want:?}");
            assert!(msg.contains("`{}` means no slice is live"), "{msg:?}");
            assert!(one_line(&msg), "{msg:?}");
        }
    }

    /// What one input must give. Held entries: label, name, xid, a substring
    /// of the reason. Warnings and skipped notes: substrings, in order.
    struct Want {
        live: &'static [(&'static str, u16)],
        held: &'static [(
            &'static str,
            Option<&'static str>,
            Option<u16>,
            &'static str,
        )],
        warnings: &'static [&'static str],
        skipped: &'static [&'static str],
    }

    const NONE: Want = Want {
        live: &[],
        held: &[],
        warnings: &[],
        skipped: &[],
    };

    #[test]
    #[allow(clippy::too_many_lines)]
    fn records() {
        let long_name = "a".repeat(1024);
        let name_64 = "b".repeat(64);
        let name_65 = "c".repeat(65);
        let cases: Vec<(&str, String, Want)> = vec![
            ("empty object", "{}".into(), NONE),
            ("empty array", "[]".into(), NONE),
            (
                "spec example",
                r#"{"pl_alice": {"name": "pl_alice", "xid": 1001,
                   "_rspec": {"net_max_rate": 10000, "net_max_kbyte": "5662310"}}}"#
                    .into(),
                Want { live: &[("pl_alice", 1001)], ..NONE },
            ),
            (
                "object form: the key stands in for a missing name",
                r#"{"pl_alice": {"xid": 1001, "_rspec": {}}}"#.into(),
                Want { live: &[("pl_alice", 1001)], ..NONE },
            ),
            (
                "object form: the record's name wins over the key",
                r#"{"pl_key": {"name": "pl_rec", "xid": 1001, "_rspec": {}}}"#.into(),
                Want { live: &[("pl_rec", 1001)], ..NONE },
            ),
            (
                "object form: an invalid key is fine when the record names itself",
                r#"{"bad key": {"name": "pl_rec", "xid": 1001, "_rspec": {}}}"#.into(),
                Want { live: &[("pl_rec", 1001)], ..NONE },
            ),
            (
                "object form: an invalid key as name",
                r#"{"bad key": {"xid": 1001, "_rspec": {}}}"#.into(),
                Want {
                    held: &[(r#""bad key""#, None, Some(1001), r#"name "bad key" is invalid: use 1-64 characters"#)],
                    ..NONE
                },
            ),
            (
                "array form, sorted by xid",
                r#"[{"name": "pl_b", "xid": 1002, "_rspec": {}},
                    {"name": "pl_a", "xid": 1001, "rspec": {}}]"#
                    .into(),
                Want { live: &[("pl_a", 1001), ("pl_b", 1002)], ..NONE },
            ),
            (
                "a failed user lookup holds the record instead of dropping it",
                r#"{"pl_nss_down": {"_rspec": {}}, "pl_a": {"xid": 1001, "_rspec": {}}}"#.into(),
                Want {
                    live: &[("pl_a", 1001)],
                    held: &[("pl_nss_down", Some("pl_nss_down"), None, "failed")],
                    ..NONE
                },
            ),
            (
                "bwmon's own names are reserved",
                r#"[{"name": "root", "xid": 1001, "_rspec": {}}, {"name": "default", "xid": 1002, "_rspec": {}},
                    {"name": "pl_a", "xid": 1003, "_rspec": {}}]"#
                    .into(),
                Want {
                    live: &[("pl_a", 1003)],
                    held: &[
                        ("root", None, Some(1001), "name root is reserved for bwmon's own root (xid 0) class"),
                        ("default", None, Some(1002), "name default is reserved for bwmon's own unclassified-traffic (xid 4095) class"),
                    ],
                    ..NONE
                },
            ),
            (
                "a reserved name as the key",
                r#"{"root": {"xid": 1001, "_rspec": {}}}"#.into(),
                Want { held: &[("root", None, Some(1001), "reserved")], ..NONE },
            ),
            (
                "name with a space",
                r#"[{"name": "a b", "xid": 1001, "_rspec": {}}]"#.into(),
                Want {
                    held: &[(
                        r#""a b""#,
                        None,
                        Some(1001),
                        r#"name "a b" is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -"#,
                    )],
                    ..NONE
                },
            ),
            (
                "unicode name",
                r#"[{"name": "café", "xid": 1001, "_rspec": {}}]"#.into(),
                Want { held: &[(r#""café""#, None, Some(1001), r#"name "café" is invalid"#)], ..NONE },
            ),
            (
                "empty name",
                r#"[{"name": "", "xid": 1001, "_rspec": {}}]"#.into(),
                Want { held: &[(r#""""#, None, Some(1001), r#"name "" is invalid"#)], ..NONE },
            ),
            (
                "1 KiB name is clipped",
                format!(r#"[{{"name": "{long_name}", "xid": 1001, "_rspec": {{}}}}]"#),
                Want {
                    held: &[(
                        r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…""#,
                        None,
                        Some(1001),
                        r#"name "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (1024 characters) is invalid"#,
                    )],
                    ..NONE
                },
            ),
            (
                "64 characters is the longest name",
                format!(r#"[{{"name": "{name_64}", "xid": 1, "_rspec": {{}}}},
                            {{"name": "{name_65}", "xid": 2, "_rspec": {{}}}}]"#),
                Want {
                    live: &[("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1)],
                    held: &[(
                        r#""cccccccccccccccccccccccccccccccccccccccc…""#,
                        None,
                        Some(2),
                        "(65 characters) is invalid",
                    )],
                    ..NONE
                },
            ),
            (
                "newline in name",
                r#"[{"name": "pl_a\nxid 1 is fine", "xid": 1001, "_rspec": {}}]"#.into(),
                Want {
                    held: &[(
                        r#""pl_a\nxid 1 is fine""#,
                        None,
                        Some(1001),
                        r#"name "pl_a\nxid 1 is fine" is invalid"#,
                    )],
                    ..NONE
                },
            ),
            (
                "CR, NUL and a bidi override in keys",
                r#"{"a\r\u0000\u202eb": {"xid": 7, "_rspec": {}}}"#.into(),
                Want {
                    held: &[(r#""a\r\0\u{202e}b""#, None, Some(7), r#"name "a\r\0\u{202e}b" is invalid"#)],
                    ..NONE
                },
            ),
            (
                "xid 0 is root",
                r#"[{"name": "pl_a", "xid": 0, "_rspec": {}}]"#.into(),
                Want { held: &[("pl_a", Some("pl_a"), None, "xid 0 is outside 1..=4094 (0 is root)")], ..NONE },
            ),
            (
                "xid 1 and 4094 are the bounds",
                r#"[{"name": "pl_a", "xid": 4094, "_rspec": {}}, {"name": "pl_b", "xid": 1, "_rspec": {}}]"#
                    .into(),
                Want { live: &[("pl_b", 1), ("pl_a", 4094)], ..NONE },
            ),
            (
                "xid 4095 is the default class",
                r#"[{"name": "pl_a", "xid": 4095, "_rspec": {}}]"#.into(),
                Want {
                    held: &[("pl_a", Some("pl_a"), None, "xid 4095 is outside 1..=4094 (4095 is the default class)")],
                    ..NONE
                },
            ),
            (
                "xid 4096",
                r#"[{"name": "pl_a", "xid": 4096, "_rspec": {}}]"#.into(),
                Want { held: &[("pl_a", Some("pl_a"), None, "xid 4096 is outside 1..=4094")], ..NONE },
            ),
            (
                "xid 5000 is not masked to 904",
                r#"[{"name": "pl_a", "xid": 5000, "_rspec": {}}, {"name": "pl_b", "xid": 904, "_rspec": {}}]"#
                    .into(),
                Want {
                    live: &[("pl_b", 904)],
                    held: &[("pl_a", Some("pl_a"), None, "xid 5000 is outside 1..=4094")],
                    ..NONE
                },
            ),
            (
                "xid 70000 (beyond u16)",
                r#"[{"name": "pl_a", "xid": "70000", "_rspec": {}}]"#.into(),
                Want { held: &[("pl_a", Some("pl_a"), None, "xid 70000 is outside 1..=4094")], ..NONE },
            ),
            (
                "xid as a string, and as an integral float",
                r#"[{"name": "pl_a", "xid": "1001", "_rspec": {}}, {"name": "pl_b", "xid": 1002.0, "_rspec": {}},
                    {"name": "pl_c", "xid": "1003.0", "_rspec": {}}]"#
                    .into(),
                Want { live: &[("pl_a", 1001), ("pl_b", 1002), ("pl_c", 1003)], ..NONE },
            ),
            (
                "xid not a whole number",
                r#"[{"name": "pl_a", "xid": 1001.5, "_rspec": {}}, {"name": "pl_b", "xid": -1, "_rspec": {}},
                    {"name": "pl_c", "xid": null, "_rspec": {}}, {"name": "pl_d", "xid": "abc", "_rspec": {}},
                    {"name": "pl_e", "xid": " 1005", "_rspec": {}}]"#
                    .into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), None, "xid 1001.5 is not a whole number in 1..=4094"),
                        ("pl_b", Some("pl_b"), None, "xid -1 is not a whole number"),
                        ("pl_c", Some("pl_c"), None, "xid null is not a whole number"),
                        ("pl_d", Some("pl_d"), None, r#"xid "abc" is not a whole number"#),
                        ("pl_e", Some("pl_e"), None, r#"xid " 1005" is not a whole number"#),
                    ],
                    ..NONE
                },
            ),
            (
                "invalid name and invalid xid: both reasons",
                r#"[{"name": "a b", "xid": 0, "_rspec": {}}]"#.into(),
                Want { held: &[(r#""a b""#, None, None, "is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -; xid 0 is outside")], ..NONE },
            ),
            (
                "no xid: the user's uid",
                r#"{"pl_user": {"_rspec": {}}}"#.into(),
                Want { live: &[("pl_user", 1234)], ..NONE },
            ),
            (
                "no xid and no user: delegated, skipped",
                r#"{"pl_nobody": {"_rspec": {}}, "pl_a": {"xid": 1, "_rspec": {}}}"#.into(),
                Want {
                    live: &[("pl_a", 1)],
                    skipped: &["pl_nobody has no xid and no user of that name (delegated, not instantiated yet): skipped"],
                    ..NONE
                },
            ),
            (
                "no xid, invalid name: held, NSS not asked",
                r#"[{"name": "pl user", "_rspec": {}}]"#.into(),
                Want { held: &[(r#""pl user""#, None, None, "is invalid")], ..NONE },
            ),
            (
                "no xid and a uid that is no xid",
                r#"{"pl_root": {"_rspec": {}}, "pl_big": {"_rspec": {}}}"#.into(),
                Want {
                    held: &[
                        ("pl_root", Some("pl_root"), None, "no xid given and user pl_root has uid 0, outside 1..=4094"),
                        ("pl_big", Some("pl_big"), None, "no xid given and user pl_big has uid 5000, outside 1..=4094"),
                    ],
                    ..NONE
                },
            ),
            (
                "neither _rspec nor rspec: held, not gone",
                r#"{"pl_a": {"xid": 1001}, "pl_b": {"xid": 1002, "_resspec": {}}}"#.into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1001), "record has neither _rspec nor rspec"),
                        ("pl_b", Some("pl_b"), Some(1002), "record has neither _rspec nor rspec"),
                    ],
                    ..NONE
                },
            ),
            (
                "_rspec not an object",
                r#"{"pl_a": {"xid": 1001, "_rspec": "fast"}, "pl_b": {"xid": 1002, "_rspec": null, "rspec": {}},
                   "pl_c": {"xid": 1003, "rspec": [1]}}"#
                    .into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1001), "_rspec is a string, not an object"),
                        ("pl_b", Some("pl_b"), Some(1002), "_rspec is null, not an object"),
                        ("pl_c", Some("pl_c"), Some(1003), "rspec is an array, not an object"),
                    ],
                    ..NONE
                },
            ),
            (
                "two records with one xid: both held, each naming the other",
                r#"{"pl_alice": {"xid": 1001, "_rspec": {}}, "pl_bob": {"xid": 1001, "_rspec": {}},
                   "pl_carol": {"xid": 1002, "_rspec": {}}}"#
                    .into(),
                Want {
                    live: &[("pl_carol", 1002)],
                    held: &[
                        ("pl_alice", Some("pl_alice"), Some(1001), "xid 1001 is also claimed by pl_bob"),
                        ("pl_bob", Some("pl_bob"), Some(1001), "xid 1001 is also claimed by pl_alice"),
                    ],
                    ..NONE
                },
            ),
            (
                "two records with one name (array form): both held",
                r#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"name": "pl_a", "xid": 1002, "_rspec": {}}]"#
                    .into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1001), "name pl_a is also used by record #2"),
                        ("pl_a", Some("pl_a"), Some(1002), "name pl_a is also used by record #1"),
                    ],
                    ..NONE
                },
            ),
            (
                "a repeated key (object form): both held",
                r#"{"pl_a": {"xid": 1001, "_rspec": {}}, "pl_a": {"xid": 1001, "_rspec": {}}}"#.into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1001), "xid 1001 is also claimed by record #2; name pl_a is also used by record #2"),
                        ("pl_a", Some("pl_a"), Some(1001), "xid 1001 is also claimed by record #1; name pl_a is also used by record #1"),
                    ],
                    ..NONE
                },
            ),
            (
                "a held record's xid is not given to another slice",
                r#"[{"name": "a b", "xid": 1001, "_rspec": {}}, {"name": "pl_b", "xid": 1001, "_rspec": {}}]"#
                    .into(),
                Want {
                    held: &[
                        (r#""a b""#, None, Some(1001), "is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -; xid 1001 is also claimed by pl_b"),
                        ("pl_b", Some("pl_b"), Some(1001), r#"xid 1001 is also claimed by "a b""#),
                    ],
                    ..NONE
                },
            ),
            (
                "a name used by a skipped record too",
                r#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"name": "pl_a", "xid": 1002}]"#.into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1001), "name pl_a is also used by record #2"),
                        ("pl_a", Some("pl_a"), Some(1002), "name pl_a is also used by record #1"),
                    ],
                    ..NONE
                },
            ),
            (
                "five claimants of one xid: three listed",
                r#"{"a": {"xid": 9, "_rspec": {}}, "b": {"xid": 9, "_rspec": {}}, "c": {"xid": 9, "_rspec": {}},
                   "d": {"xid": 9, "_rspec": {}}, "e": {"xid": 9, "_rspec": {}}}"#
                    .into(),
                Want {
                    held: &[
                        ("a", Some("a"), Some(9), "xid 9 is also claimed by b, c, d, 1 more"),
                        ("b", Some("b"), Some(9), "xid 9 is also claimed by a, c, d, 1 more"),
                        ("c", Some("c"), Some(9), "xid 9 is also claimed by a, b, d, 1 more"),
                        ("d", Some("d"), Some(9), "xid 9 is also claimed by a, b, c, 1 more"),
                        ("e", Some("e"), Some(9), "xid 9 is also claimed by a, b, c, 1 more"),
                    ],
                    ..NONE
                },
            ),
            (
                "invalid values warn, the slice stays live",
                r#"{"pl_a": {"xid": 1001, "_rspec": {"net_max_rate": "abc", "net_share": 0, "net_i2_share": 4294967296,
                   "net_thresh_kbyte": "line\nbreak", "net_min_rate": [1, 2], "vsys": "x", "net_max_kbyte": 5}}}"#
                    .into(),
                Want {
                    live: &[("pl_a", 1001)],
                    warnings: &[
                        "slice pl_a: net_min_rate [1,2] is not a whole number of kbit/s: using the default",
                        r#"slice pl_a: net_max_rate "abc" is not a whole number of kbit/s: using the default"#,
                        r#"slice pl_a: net_thresh_kbyte "line\nbreak" is not a whole number of KiB"#,
                        "slice pl_a: net_share 0 is not a whole number in 1..=4294967295: using the default",
                        "slice pl_a: net_i2_share 4294967296 is not a whole number in 1..=4294967295",
                    ],
                    ..NONE
                },
            ),
            (
                "long values are clipped in warnings",
                format!(r#"{{"pl_a": {{"xid": 1, "_rspec": {{"net_max_rate": "{long_name}"}}}}}}"#),
                Want {
                    live: &[("pl_a", 1)],
                    warnings: &[r#"net_max_rate "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa… is not"#],
                    ..NONE
                },
            ),
            (
                "a held record's warnings are not reported",
                r#"{"pl_a": {"xid": 1, "_rspec": {"net_max_rate": "abc"}}, "pl_b": {"xid": 1, "_rspec": {}}}"#.into(),
                Want {
                    held: &[
                        ("pl_a", Some("pl_a"), Some(1), "xid 1 is also claimed by pl_b"),
                        ("pl_b", Some("pl_b"), Some(1), "xid 1 is also claimed by pl_a"),
                    ],
                    ..NONE
                },
            ),
        ];
        for (what, text, want) in &cases {
            let got = run(text).unwrap_or_else(|e| panic!("{what}: {e}"));
            assert_one_line(&got);
            let live: Vec<(&str, u16)> =
                got.live.iter().map(|s| (s.name.as_str(), s.xid)).collect();
            assert_eq!(live, want.live, "{what}: live");
            assert_eq!(
                got.held.len(),
                want.held.len(),
                "{what}: held {:#?}",
                got.held
            );
            for (h, &(label, name, xid, reason)) in got.held.iter().zip(want.held) {
                assert_eq!(h.label, label, "{what}: label");
                assert_eq!(h.name.as_deref(), name, "{what}: name of {label}");
                assert_eq!(h.xid, xid, "{what}: xid of {label}");
                assert!(
                    h.reason.contains(reason),
                    "{what}: reason {:?} lacks {reason:?}",
                    h.reason
                );
            }
            assert_eq!(
                got.warnings.len(),
                want.warnings.len(),
                "{what}: warnings {:#?}",
                got.warnings
            );
            for (w, want) in got.warnings.iter().zip(want.warnings) {
                assert!(w.contains(want), "{what}: warning {w:?} lacks {want:?}");
            }
            assert_eq!(
                got.skipped.len(),
                want.skipped.len(),
                "{what}: skipped {:#?}",
                got.skipped
            );
            for (s, want) in got.skipped.iter().zip(want.skipped) {
                assert!(s.contains(want), "{what}: note {s:?} lacks {want:?}");
            }
        }
    }

    #[test]
    fn spec_example_values() {
        let got = run(r#"{"pl_alice": {"name": "pl_alice", "xid": 1001,
                  "_rspec": {"net_max_rate": 10000, "net_max_kbyte": "5662310", "net_i2_share": "3"}},
                  "pl_bob": {"xid": 1002, "_rspec": {"net_max_rate": 1}, "rspec": {"net_max_rate": 2}}}"#)
        .unwrap();
        assert_eq!(
            got.live[0].rspec,
            Rspec {
                max_rate: Some(Kbit(10_000)),
                max_kbyte: Some(KiB(5_662_310)),
                i2_share: Some(3),
                ..Rspec::default()
            }
        );
        // `_rspec` wins over `rspec`.
        assert_eq!(got.live[1].rspec.max_rate, Some(Kbit(1)));
    }

    #[test]
    fn every_key_is_read() {
        let got = run(r#"[{"name": "pl_a", "xid": 1, "_rspec": {"net_min_rate": 1, "net_max_rate": 2,
            "net_i2_min_rate": 3, "net_i2_max_rate": 4, "net_max_kbyte": 5, "net_i2_max_kbyte": 6,
            "net_thresh_kbyte": 7, "net_i2_thresh_kbyte": 8, "net_share": 9, "net_i2_share": 10}}]"#)
        .unwrap();
        assert_eq!(
            got.live[0].rspec,
            Rspec {
                min_rate: Some(Kbit(1)),
                max_rate: Some(Kbit(2)),
                i2_min_rate: Some(Kbit(3)),
                i2_max_rate: Some(Kbit(4)),
                max_kbyte: Some(KiB(5)),
                i2_max_kbyte: Some(KiB(6)),
                thresh_kbyte: Some(KiB(7)),
                i2_thresh_kbyte: Some(KiB(8)),
                share: Some(9),
                i2_share: Some(10),
            }
        );
        assert!(got.warnings.is_empty());
    }

    /// Each value form of `net_max_kbyte` and what it reads as (`None`: a
    /// warning and the default).
    #[test]
    fn value_forms() {
        let cases: &[(&str, Option<u64>)] = &[
            ("5000", Some(5000)),
            ("5000.0", Some(5000)),
            (r#""5000""#, Some(5000)),
            (r#""5000.0""#, Some(5000)),
            ("0", Some(0)),
            (r#""0""#, Some(0)),
            ("5e3", Some(5000)),
            (r#""5e3""#, Some(5000)),
            (r#""007""#, Some(7)),
            ("18446744073709551615", Some(u64::MAX)),
            (r#""18446744073709551615""#, Some(u64::MAX)),
            ("1e19", Some(10_000_000_000_000_000_000)),
            ("5000.5", None),
            (r#""5000.5""#, None),
            ("-1", None),
            (r#""-1""#, None),
            ("-0", None),
            ("-0.0", None),
            ("18446744073709551616", None),
            (r#""18446744073709551616""#, None),
            ("1.8446744073709552e19", None),
            ("1e30", None),
            (r#""1e30""#, None),
            ("1e400", None),
            ("null", None),
            ("true", None),
            ("[]", None),
            ("{}", None),
            (r#""abc""#, None),
            (r#""""#, None),
            (r#"" 5000""#, None),
            (r#""5000 ""#, None),
            (r#""+5000""#, None),
            (r#""0x10""#, None),
            (r#""NaN""#, None),
            (r#""5000\u0000""#, None),
        ];
        for &(value, want) in cases {
            let text =
                format!(r#"{{"pl_a": {{"xid": 1, "_rspec": {{"net_max_kbyte": {value}}}}}}}"#);
            let got = match run(&text) {
                Ok(got) => got,
                // serde_json itself refuses numbers out of f64's range.
                Err(e) if value == "1e400" => {
                    assert!(e.0.contains("number out of range"), "{e}");
                    continue;
                }
                Err(e) => panic!("{value}: {e}"),
            };
            assert_eq!(got.live[0].rspec.max_kbyte, want.map(KiB), "{value}");
            if want.is_some() {
                assert!(got.warnings.is_empty(), "{value}: {:?}", got.warnings);
            } else {
                assert_eq!(got.warnings.len(), 1, "{value}");
                let w = &got.warnings[0];
                assert!(w.starts_with("slice pl_a: net_max_kbyte "), "{w}");
                assert!(w.ends_with(": using the default"), "{w}");
                assert!(one_line(w), "{w:?}");
            }
        }
    }

    #[test]
    fn share_bounds() {
        let cases: &[(&str, Option<u32>)] = &[
            ("1", Some(1)),
            (r#""4294967295""#, Some(u32::MAX)),
            ("4294967295.0", Some(u32::MAX)),
            ("0", None),
            ("0.0", None),
            ("4294967296", None),
            ("1.5", None),
        ];
        for &(value, want) in cases {
            let text = format!(
                r#"[{{"name": "pl_a", "xid": 1, "_rspec": {{"net_share": {value}, "net_i2_share": {value}}}}}]"#
            );
            let got = run(&text).unwrap();
            assert_eq!(got.live[0].rspec.share, want, "{value}");
            assert_eq!(got.live[0].rspec.i2_share, want, "{value}");
            assert_eq!(
                got.warnings.len(),
                if want.is_some() { 0 } else { 2 },
                "{value}"
            );
        }
    }

    #[test]
    fn nss_lookup() {
        assert_eq!(uid_from_nss("root"), Ok(Some(0)));
        assert_eq!(uid_from_nss("no-such-user-bwmon-test"), Ok(None));
        assert_ne!(uid_from_nss("a\0b"), Ok(Some(0)));
    }

    #[test]
    fn input_error_displays_its_message() {
        let e = InputError("x".into());
        assert_eq!(e.to_string(), "x");
        let _: &dyn std::error::Error = &e;
    }

    /// Any JSON value, small.
    fn any_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            (0u64..5000).prop_map(Value::from),
            (0u64..5000).prop_map(|n| Value::from(n.to_string())),
            ".{0,12}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(".{0,6}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// A record, often valid, often a near miss; names from a small alphabet
    /// so that duplicates happen.
    fn record() -> impl Strategy<Value = Value> {
        let name = prop_oneof![
            3 => "[a-c]{1,2}".prop_map(|s| Some(Value::from(s))),
            1 => Just(Some(Value::from("pl_user"))),
            1 => Just(None),
            1 => ".{0,70}".prop_map(|s| Some(Value::from(s))),
            1 => any_json().prop_map(Some),
        ];
        let xid = prop_oneof![
            3 => (0u64..4100).prop_map(|n| Some(Value::from(n))),
            1 => (0u64..4100).prop_map(|n| Some(Value::from(n.to_string()))),
            1 => Just(None),
            1 => any_json().prop_map(Some),
        ];
        let rspec = prop_oneof![
            3 => prop::collection::btree_map(
                prop_oneof![Just("net_max_rate".to_owned()), Just("net_share".to_owned()), ".{0,8}".prop_map(String::from)],
                any_json(),
                0..4,
            )
            .prop_map(|m| Some(Value::Object(m.into_iter().collect()))),
            1 => Just(None),
            1 => any_json().prop_map(Some),
        ];
        let rec = (name, xid, rspec, any::<bool>()).prop_map(|(name, xid, rspec, plain)| {
            let mut m = Map::new();
            if let Some(n) = name {
                m.insert("name".into(), n);
            }
            if let Some(x) = xid {
                m.insert("xid".into(), x);
            }
            if let Some(r) = rspec {
                m.insert(if plain { "rspec" } else { "_rspec" }.into(), r);
            }
            Value::Object(m)
        });
        prop_oneof![5 => rec, 1 => any_json()]
    }

    /// Whether a record leaves the live set unknown (SPEC §3): not an object,
    /// a `name` that is not a string, or (array form) no `name` at all.
    fn names_no_slice(rec: &Value, keyed: bool) -> bool {
        match rec {
            Value::Object(m) => match m.get("name") {
                Some(Value::String(_)) => false,
                Some(_) => true,
                None => !keyed,
            },
            _ => true,
        }
    }

    /// Every record of `n` is in exactly one list, and what is live is sound.
    fn check_partition(got: &Input, n: usize) {
        assert_eq!(
            got.live.len() + got.held.len() + got.skipped.len(),
            n,
            "{got:#?}"
        );
        assert!(
            got.live.windows(2).all(|w| w[0].xid < w[1].xid),
            "not sorted or not unique"
        );
        let mut names: Vec<&str> = got.live.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), got.live.len(), "duplicate live names");
        for s in &got.live {
            assert!(valid_name(&s.name) && (1..=4094).contains(&s.xid), "{s:?}");
            assert!(
                !got.held
                    .iter()
                    .any(|h| h.xid == Some(s.xid) || h.name.as_ref() == Some(&s.name))
            );
        }
        for h in &got.held {
            assert!(h.name.as_deref().is_none_or(valid_name), "{h:?}");
            assert!(h.xid.is_none_or(|x| (1..=4094).contains(&x)), "{h:?}");
        }
        assert_one_line(got);
    }

    proptest! {
        #[test]
        fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(got) = parse(&bytes, &uid_of) {
                assert_one_line(&got);
            }
        }

        #[test]
        fn never_panics_on_jsonish(text in r#"[\[\]{}":,0-9a-z_ .\-\\\n\te+]{0,200}"#) {
            match run(&text) {
                Ok(got) => assert_one_line(&got),
                Err(e) => prop_assert!(one_line(&e.0), "{:?}", e.0),
            }
        }

        #[test]
        fn array_records_are_partitioned(recs in prop::collection::vec(record(), 0..12)) {
            let n = recs.len();
            let refused = recs.iter().any(|r| names_no_slice(r, false));
            let text = serde_json::to_string(&Value::Array(recs)).unwrap();
            match run(&text) {
                Ok(got) => { prop_assert!(!refused); check_partition(&got, n); }
                Err(e) => prop_assert!(refused && one_line(&e.0), "{:?}", e.0),
            }
        }

        #[test]
        fn object_records_are_partitioned(
            recs in prop::collection::vec(("[a-c]{1,2}|.{0,6}", record()), 0..12),
        ) {
            // Written by hand so that repeated keys reach the parser.
            let entries: Vec<String> = recs
                .iter()
                .map(|(k, v)| format!("{}: {v}", json!(k)))
                .collect();
            let text = format!("{{{}}}", entries.join(", "));
            let refused = recs.iter().any(|(_, r)| names_no_slice(r, true));
            match run(&text) {
                Ok(got) => { prop_assert!(!refused); check_partition(&got, recs.len()); }
                Err(e) => prop_assert!(refused && one_line(&e.0), "{:?}", e.0),
            }
        }
    }
}
