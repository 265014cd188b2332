//! The slivers JSON (SPEC §3): turns the node manager's dump into live slices,
//! held records and one-line warnings. This module owns what a valid slice
//! name, xid and resource value are; it touches no state and no kernel.
//!
//! Its serde reader ([`read`]) is by hand: in `bench/slivers_parse.rs`, at
//! 4,000 records, this whole parse takes 47 M instructions and 5 ms (30 M
//! in serde); deserializing alone takes 77 M and 35 ms into a `Value`, 86 M
//! and 22 ms into derived structs of `#[serde(untagged)]` values, 38 M and
//! 17 ms into ones whose values one `deserialize_with` visitor reads, and
//! those fail the whole input on a repeated key and skip unknown keys
//! unchecked. It runs on `bwmon sync`'s main thread beside the kernel's
//! ~15 ms dump of the classes, and must end first.
//!
//! Every record ends up in exactly one of [`Input::live`], [`Input::held`]
//! (a per-slice error: its state and classes stay as they were, never
//! dropped, never aliased onto another slice's xid) or [`Input::skipped`]. A
//! malformed input, or a record that names no slice (the live set is then
//! unknown), is an [`InputError`]. Every message is one printable line: odd
//! names are escaped with `{:?}` and clipped, values are compact JSON,
//! clipped and escaped.

mod read;

use crate::units::{Kbit, KiB};
use read::{Fields, Json, KEYS, Keys, Raw, Top};
use serde_json::Number;
use std::{borrow::Cow, fmt};

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
/// The records `parse` makes room for before reading (the shortest record,
/// `{"name":"a","xid":1}`, takes over 20 bytes); more grow the list.
const MOST_RESERVED: usize = 1 << 16;
/// Longest valid slice name.
const NAME_MAX: usize = 64;
/// How many characters of a bad name or value a message quotes.
const CLIP: usize = 40;
/// How many other claimants a duplicate's reason lists.
const OTHERS_LISTED: usize = 3;
/// What every whole-input error ends with: what the input must be.
const EXPECTED: &str =
    "expected a JSON object of slivers keyed by name (`{}` means no slice is live)";
/// Names of bwmon's own records: a tenant of that name would show twice in
/// status and give duplicate Prometheus series.
const RESERVED: [(&str, &str); 2] = [
    ("root", "root (xid 0)"),
    ("default", "unclassified-traffic (xid 4095)"),
];

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
    let error = |what: &str| Err(InputError(format!("slivers input {what}: {EXPECTED}")));
    if bytes.is_empty() {
        return error("is empty");
    }
    if bytes.iter().all(|b| b" \t\n\r".contains(b)) {
        return error("is only whitespace");
    }
    // Each record is judged as it is read: held in its raw form until the
    // whole input had parsed, 4,000 records took 2 MB. A record that names
    // no slice still loses to invalid JSON after it, as before.
    // After the first such record the rest are only parsed (no user lookups).
    let mut unusable: Option<InputError> = None;
    // Pushed here as judged, not collected and copied after: at 4,000
    // records each copy was a megabyte of fresh memory. Room reserved for
    // the most records the input can hold is only address space until used.
    let mut records: Vec<Record> = Vec::with_capacity((bytes.len() / 32).min(MOST_RESERVED));
    let judged = read::top(bytes, |pos, key, rec| {
        if unusable.is_some() {
            return;
        }
        match Record::read(pos, key, rec, uid_of) {
            Ok(r) => records.push(r),
            Err(e) => unusable = Some(e),
        }
    });
    match judged {
        Ok(Top::Records) => {
            if let Some(e) = unusable {
                return Err(e);
            }
        }
        Ok(Top::Other(kind)) => {
            return error(&format!("is {kind}, not an object or array of slivers"));
        }
        Err(e) => return error(&format!("is not valid JSON ({e})")),
    }
    hold_duplicates(&mut records);
    Ok(assemble(records))
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

/// A whole number ≥ 0 that fits u64: a JSON number (`5000`, `5000.0`) or a
/// string of one (`"5000"`, `"5000.0"`, no surrounding whitespace).
fn whole(value: &Raw<'_>) -> Option<u64> {
    match value {
        Json::Number(n) => whole_number(n),
        Json::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => s.parse().ok(),
        // `Number::from_str` takes exactly one JSON number: no whitespace.
        Json::String(s) => whole_number(&s.parse().ok()?),
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
    /// Whether `label` is the record's valid name.
    named: bool,
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
        rec: Json<'_, Fields<'_>>,
        uid_of: &dyn Fn(&str) -> Result<Option<u32>, String>,
    ) -> Result<Record, InputError> {
        let names_none = |why: String| {
            let whose = key.map_or(String::new(), |k| format!(" ({})", label_of(k)));
            let why = format!("record #{pos}{whose} {why}, so the live slices cannot be known");
            Err(InputError(format!("slivers input: {why}: {EXPECTED}")))
        };
        let Json::Object(rec) = rec else {
            return names_none(format!("is {}, not an object", rec.kind()));
        };
        // Its own name is its identity; the key only stands in for a missing one.
        let given = match (&rec.name, key) {
            (Some(Json::String(n)), _) => n,
            (None, Some(k)) => k,
            (Some(n), _) => return names_none(format!("has name {}, not a string", n.render())),
            (None, None) => return names_none("has no \"name\"".to_owned()),
        };
        let mut reasons: Vec<String> = name_fault(given).into_iter().collect();
        let (label, named) = (label_of(given), reasons.is_empty());
        let fate = Fate::Held(Vec::new());
        let mut r = Record {
            pos,
            label,
            named,
            xid: None,
            fate,
        };
        match read_xid(rec.xid.as_ref(), r.name(), uid_of) {
            Ok(None) if named => {
                let why = "has no xid and no user of that name (delegated, not instantiated yet)";
                r.fate = Fate::Skipped(format!("{} {why}: skipped", r.label));
                return Ok(r);
            }
            Ok(xid) => r.xid = xid,
            Err(reason) => reasons.push(reason),
        }
        // Every way to lack a valid name or xid pushed a reason.
        let (true, Some(xid)) = (reasons.is_empty(), r.xid) else {
            r.fate = Fate::Held(reasons);
            return Ok(r);
        };
        let effective = rec.effective.map(|v| ("_rspec", v));
        let rspec = effective.or(rec.rspec.map(|v| ("rspec", v)));
        r.fate = match rspec {
            Some((_, Json::Object(keys))) => {
                let (rspec, warnings) = read_rspec(&r.label, &keys);
                let name = r.label.clone();
                Fate::Live(Sliver { name, xid, rspec }, warnings)
            }
            // Not "gone": a renamed key or a half-written record must not
            // remove a live slice's classes.
            None => Fate::Held(vec!["record has neither _rspec nor rspec".to_owned()]),
            Some((which, v)) => Fate::Held(vec![format!("{which} is {}, not an object", v.kind())]),
        };
        Ok(r)
    }

    /// The record's name, if valid.
    fn name(&self) -> Option<&str> {
        self.named.then_some(self.label.as_str())
    }
}

/// Why `name` cannot name a slice, if it cannot.
fn name_fault(name: &str) -> Option<String> {
    if !valid_name(name) {
        let rule = "use 1-64 characters of A-Z a-z 0-9 _ . -";
        return Some(format!("name {} is invalid: {rule}", quote_name(name)));
    }
    let (_, own) = RESERVED.iter().find(|(n, _)| *n == name)?;
    Some(format!(
        "name {name} is reserved for bwmon's own {own} class: rename the slice"
    ))
}

/// The record's xid, else the uid of the user `name` (asked only when the
/// name is valid). `Ok(None)`: no xid to be had — no valid name, or no such
/// user.
fn read_xid(
    given: Option<&Raw<'_>>,
    name: Option<&str>,
    uid_of: &dyn Fn(&str) -> Result<Option<u32>, String>,
) -> Result<Option<u16>, String> {
    let valid = |n: u64| u16::try_from(n).ok().filter(|x| (1..=XID_MAX).contains(x));
    match (given, name) {
        (Some(v), _) => {
            let Some(n) = whole(v) else {
                return Err(format!(
                    "xid {} is not a whole number in 1..=4094",
                    v.render()
                ));
            };
            let note = match n {
                0 => " (0 is root)",
                4095 => " (4095 is the default class)",
                _ => "",
            };
            valid(n)
                .map(Some)
                .ok_or_else(|| format!("xid {n} is outside 1..=4094{note}"))
        }
        (None, Some(n)) => match uid_of(n)? {
            None => Ok(None),
            Some(uid) => valid(uid.into()).map(Some).ok_or_else(|| {
                format!("no xid given and user {n} has uid {uid}, outside 1..=4094")
            }),
        },
        (None, None) => Ok(None),
    }
}

/// The [`KEYS`] as an [`Rspec`], and a warning for each invalid value.
fn read_rspec(slice: &str, keys: &Keys<'_>) -> (Rspec, Vec<String>) {
    let mut warnings = Vec::new();
    let mut n = [None; KEYS.len()];
    for (i, (key, value)) in KEYS.iter().zip(keys.0.iter()).enumerate() {
        let Some(value) = value else { continue };
        let (what, least, most) = match i {
            0..4 => ("a whole number of kbit/s", 0, u64::MAX),
            4..8 => ("a whole number of KiB", 0, u64::MAX),
            _ => ("a whole number in 1..=4294967295", 1, u32::MAX.into()),
        };
        n[i] = whole(value).filter(|v| (least..=most).contains(v));
        if n[i].is_none() {
            let value = value.render();
            warnings.push(format!(
                "slice {slice}: {key} {value} is not {what}: using the default"
            ));
        }
    }
    let share = |i: usize| n[i].and_then(|s| u32::try_from(s).ok());
    let rspec = Rspec {
        min_rate: n[0].map(Kbit),
        max_rate: n[1].map(Kbit),
        i2_min_rate: n[2].map(Kbit),
        i2_max_rate: n[3].map(Kbit),
        max_kbyte: n[4].map(KiB),
        i2_max_kbyte: n[5].map(KiB),
        thresh_kbyte: n[6].map(KiB),
        i2_thresh_kbyte: n[7].map(KiB),
        share: share(8),
        i2_share: share(9),
    };
    (rspec, warnings)
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
    match name.chars().count() {
        chars if chars > NAME_MAX => format!("{:?} ({chars} characters)", clip(name)),
        _ => format!("{:?}", clip(name)),
    }
}

/// The first [`CLIP`] characters of `s`, with `…` if there were more.
fn clip(s: &str) -> Cow<'_, str> {
    match s.char_indices().nth(CLIP) {
        None => Cow::Borrowed(s),
        Some((at, _)) => Cow::Owned(format!("{}…", &s[..at])),
    }
}

/// Holds every record whose xid or name another record also claims: which
/// of them is meant cannot be known, and guessing would alias one slice's
/// classes onto another's.
fn hold_duplicates(records: &mut [Record]) {
    let mut extra = vec![Vec::new(); records.len()];
    claims(records, |r| r.xid, "xid", "claimed by", &mut extra);
    claims(records, Record::name, "name", "used by", &mut extra);
    for (r, reasons) in records.iter_mut().zip(extra) {
        match &mut r.fate {
            _ if reasons.is_empty() => {}
            Fate::Held(had) => had.extend(reasons),
            fate => *fate = Fate::Held(reasons),
        }
    }
}

/// A reason for each record that shares its `key` with others, e.g. `xid 9
/// is also claimed by b, c`.
fn claims<'r, K: Ord + fmt::Display>(
    records: &'r [Record],
    key: impl Fn(&'r Record) -> Option<K>,
    what: &str,
    verb: &str,
    extra: &mut [Vec<String>],
) {
    let keyed = records.iter().enumerate();
    let mut keyed: Vec<(K, usize)> = keyed.filter_map(|(i, r)| Some((key(r)?, i))).collect();
    // Stable: a group keeps input order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    for group in keyed.chunk_by(|a, b| a.0 == b.0).filter(|g| g.len() > 1) {
        for (k, me) in group {
            let others = others(records, *me, group);
            extra[*me].push(format!("{what} {k} is also {verb} {others}"));
        }
    }
}

/// The other records of a group as seen from record `me`: by label where
/// that tells them apart, else by position; at most [`OTHERS_LISTED`].
fn others<K>(records: &[Record], me: usize, group: &[(K, usize)]) -> String {
    let mine = &records[me];
    let mut listed: Vec<String> = group
        .iter()
        .filter(|&&(_, j)| j != me)
        .take(OTHERS_LISTED)
        .map(|&(_, j)| {
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
    let mut input = Input {
        live: Vec::with_capacity(records.len()),
        ..Input::default()
    };
    for r in records {
        match r.fate {
            Fate::Live(sliver, warnings) => {
                input.live.push(sliver);
                input.warnings.extend(warnings);
            }
            Fate::Held(reasons) => input.held.push(Held {
                name: r.named.then(|| r.label.clone()),
                label: r.label,
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
