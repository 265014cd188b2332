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
mod tests;
