//! The state file: what bwmon remembers between runs (SPEC §3 "State").
//!
//! YAML, one flow mapping per slice so 4,000 slices stay near 1 MB; written
//! atomically (temp file, fsync, rename, fsync directory) after the previous
//! good file is kept as `<state>.bak`, so a run killed at any instant leaves the
//! old state or the new one and never a torn file (SPEC §9.8).
//!
//! **Reading and writing fast.** Every sync loads this file on the main
//! thread while the kernel's class dump runs, and a sync that changes
//! anything saves it, so both are on the critical path (BENCHMARKS.md). At
//! 4,000 slices (`examples/state_bench`, callgrind):
//!
//! - *Load*: `serde_json` into `Disk` cost 55 M instructions, nearly all in
//!   its tokenizer and field matching (integers 12.6 M, strings and keys
//!   12.4 M); chrono's general RFC 3339 parser took 7.2 M and the `Vec`s
//!   before the maps ~2 M. A custom visitor straight into the maps with a
//!   fast time parser would have removed only those last two. So the file
//!   as `to_yaml` lays it out is read by `Scan`, a byte-for-byte reader of
//!   that one layout (16.9 M, one allocation a name): keys compared as
//!   literals in their order, integers digit by digit, times of bwmon's own
//!   form by hand and any other through chrono's deserializer. At the first
//!   thing it does not expect it gives up and the text goes through the
//!   serde path unchanged: `serde_json` into `Disk`, then serde-saphyr for
//!   any other YAML a person wrote. It never reports an error itself (a
//!   duplicate or out-of-range xid also sends the text down the serde path),
//!   so every check and message is the serde path's. Where it answers, it
//!   gives what the serde path would: `fuzzing::state` checks exactly that.
//!   It reads the file 64 KiB at a time into one window, and puts each
//!   slice straight into the map: a buffer for the whole 1.4 MB and a `Vec`
//!   of slices before the map cost ~440 page faults, more than the scan
//!   (status ~3 ms faster, BENCHMARKS.md); only a file it gives up on is
//!   read whole.
//!   Tried and dropped: eight digits a step (SWAR), no faster here.
//! - *Save*: `serde_json` per value cost 32 M, most of it escaping the keys
//!   of every record. `to_yaml` now writes literals, integers two digits a
//!   step and times by hand into one buffer (11.2 M); strings that need
//!   escaping, and times chrono writes its own way (years beyond 0..=9999,
//!   leap seconds), still go through `serde_json`, so the bytes are what it
//!   wrote. `State::to_yaml_serde` keeps the serde writer as the reference
//!   the tests and the fuzz target compare with.

use crate::error::Fatal;
use crate::files::{self, with_suffix};
use crate::json::{line, put_bool, put_str, put_time, put_u64};
use crate::units::{Bytes, Rate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The state format this bwmon reads and writes.
pub const VERSION: u32 = 1;

/// The slice the kernel calls root (xid 0) and the default class (xid 0xfff).
pub const ROOT_XID: u16 = 0;
pub const DEFAULT_XID: u16 = 0xfff;

/// Root and default: bwmon's own classes, never capped, mailed, removed or
/// classified by its nftables table.
pub fn is_special(xid: u16) -> bool {
    xid == ROOT_XID || xid == DEFAULT_XID
}

/// One of a slice's two HTB classes, as bwmon last saw and set it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClassState {
    /// Kernel `Sent` counter at the start of this period (or of this class incarnation).
    pub base: Bytes,
    /// Usage counted this period by earlier class incarnations or before a counter reset.
    pub carry: Bytes,
    /// The kernel counter seen at the last run.
    pub last: Bytes,
    /// The ceil bwmon applied; 0 when unknown (then it is applied again).
    pub ceil: Rate,
    /// The guaranteed rate applied.
    pub min: Rate,
    /// The configured maximum (ceil when not capped).
    pub max: Rate,
    /// Bytes allowed per period.
    pub quota: Bytes,
    /// Bytes after which the class is capped.
    pub thresh: Bytes,
    pub share: u32,
}

impl ClassState {
    /// Bytes sent this period, given the kernel counter now.
    pub fn used(&self, counter: Bytes) -> Bytes {
        Bytes(
            counter
                .0
                .saturating_sub(self.base.0)
                .saturating_add(self.carry.0),
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SliceState {
    pub name: String,
    pub xid: u16,
    /// Start of the current recording period.
    pub start: DateTime<Utc>,
    /// A mail went out for this period.
    pub mailed: bool,
    pub lo: ClassState,
    pub i2: ClassState,
    /// When this period's first cap came and how low the ceils went, for
    /// the history record written when the period ends. Absent until a
    /// class is capped (and in files of a bwmon before history).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<Capped>,
}

/// A slice deleted within its period: recreating it must not buy a fresh quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadState {
    pub name: String,
    pub start: DateTime<Utc>,
    pub lo: Bytes,
    pub i2: Bytes,
    pub mailed: bool,
    /// The xid it had, for its history record (absent in older files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub xid: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capped: Option<Capped>,
}

/// A period's caps as its history record tells them: the first time a class
/// was capped, and per class the lowest ceil it was given (`None`: that
/// class was never capped this period).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capped {
    pub at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lo: Option<Rate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i2: Option<Rate>,
}

/// What `init` set on a device, so a hierarchy lost to a reboot can be rebuilt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hierarchy {
    pub bwcap: Rate,
    pub bwmax: Rate,
    /// `bwmon teardown` removed it on purpose: sync must not rebuild it, but
    /// the next `init` reuses the caps (a node cap silently lost to a
    /// teardown would give every slice bwmax).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub removed: bool,
}

impl Hierarchy {
    pub fn new(bwcap: Rate, bwmax: Rate) -> Hierarchy {
        Hierarchy {
            bwcap,
            bwmax,
            removed: false,
        }
    }
}

/// Events a fleet counts (Prometheus `_total` counters): kept in the state
/// because a counter must not go back to zero at every run. Written only
/// once something was counted, so a node that never capped keeps the file
/// an older bwmon reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// Classes capped below their max (each time a cap begins).
    pub caps: u64,
    /// Cap mails sendmail did not take (each is retried next run).
    pub mails_failed: u64,
}

impl Counters {
    fn is_zero(&self) -> bool {
        *self == Counters::default()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    pub hierarchy: BTreeMap<String, Hierarchy>,
    pub last_sync: Option<DateTime<Utc>>,
    /// Boxed: a map of 232-byte values, filled in rising order, leaves its
    /// nodes half empty (1.7 MB at 4,000 slices, and as much again for a
    /// sync's copy); boxes keep the nodes small and the slices packed
    /// (~1.1 MB), and every page not touched is a fault not taken.
    pub slices: BTreeMap<u16, Box<SliceState>>,
    pub dead: BTreeMap<String, DeadState>,
    /// The xids bwmon's nftables maps held after the last update.
    pub classified: BTreeSet<u16>,
    pub counters: Counters,
}

impl State {
    /// The tenants' xids: what bwmon's nftables maps should hold.
    pub fn tenant_xids(&self) -> BTreeSet<u16> {
        self.slices
            .keys()
            .copied()
            .filter(|&x| !is_special(x))
            .collect()
    }

    /// Caps that began since `before` was taken: classes below their max
    /// now that were not then (a new slice's counts too). A ceil of 0 is
    /// one the kernel refused, so no cap is in force.
    pub fn caps_since(&self, before: &CapsAt) -> u64 {
        let mut then = before.0.iter().peekable();
        let mut n = 0;
        for (&xid, s) in &self.slices {
            while then.next_if(|(x, _)| *x < xid).is_some() {}
            let was = then
                .next_if(|(x, _)| *x == xid)
                .map_or([false; 2], |&(_, c)| c);
            n += [is_capped(&s.lo) && !was[0], is_capped(&s.i2) && !was[1]]
                .into_iter()
                .filter(|&began| began)
                .count() as u64;
        }
        n
    }
}

/// A class under its max, by a ceil the kernel took (0: refused).
fn is_capped(c: &ClassState) -> bool {
    c.ceil.0 != 0 && c.ceil < c.max
}

/// Which of each slice's classes were capped, by xid in rising order:
/// what a run counts new caps against. A sync keeps this rather than a
/// copy of its whole state, which at thousands of slices is a megabyte of
/// fresh memory per run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CapsAt(Vec<(u16, [bool; 2])>);

impl CapsAt {
    pub fn of(slices: &BTreeMap<u16, Box<SliceState>>) -> Self {
        CapsAt(
            slices
                .iter()
                .map(|(&xid, s)| (xid, [is_capped(&s.lo), is_capped(&s.i2)]))
                .collect(),
        )
    }
}

/// The file's shape, as read. Kept apart from `State` so the in-memory form
/// can use maps while the file stays one line per slice.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Disk {
    version: u32,
    #[serde(default)]
    last_sync: Option<DateTime<Utc>>,
    #[serde(default)]
    hierarchy: BTreeMap<String, Hierarchy>,
    #[serde(default)]
    slices: Vec<SliceState>,
    #[serde(default)]
    dead: Vec<DeadState>,
    #[serde(default)]
    classified: BTreeSet<u16>,
    #[serde(default)]
    counters: Counters,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u32>,
}

impl State {
    /// The file's text: YAML in its JSON-compatible flow style, one slice per
    /// line. Any YAML parser reads it. Written by hand into one buffer, byte
    /// for byte what `serde_json` wrote for the same state (the fuzz target
    /// compares the two); see the module doc.
    pub fn to_yaml(&self) -> String {
        // A slice line is ~330 bytes with today's counters, ~600 at most.
        let mut out: Vec<u8> = Vec::with_capacity(
            256 + 400 * self.slices.len() + 120 * self.dead.len() + 6 * self.classified.len(),
        );
        out.extend_from_slice(HEADER);
        out.extend_from_slice(b"{\"version\": ");
        put_u64(&mut out, u64::from(VERSION));
        out.extend_from_slice(b", \"last_sync\": ");
        match &self.last_sync {
            Some(t) => put_time(&mut out, t),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\n \"hierarchy\": {");
        for (i, (dev, h)) in self.hierarchy.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let Hierarchy {
                bwcap,
                bwmax,
                removed,
            } = h;
            put_str(&mut out, dev);
            out.extend_from_slice(b":{\"bwcap\":");
            put_u64(&mut out, bwcap.0);
            out.extend_from_slice(b",\"bwmax\":");
            put_u64(&mut out, bwmax.0);
            if *removed {
                out.extend_from_slice(b",\"removed\":true");
            }
            out.push(b'}');
        }
        out.extend_from_slice(b"},\n \"classified\": [");
        for (i, xid) in self.classified.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            put_u64(&mut out, u64::from(*xid));
        }
        out.push(b']');
        if !self.counters.is_zero() {
            let Counters { caps, mails_failed } = self.counters;
            out.extend_from_slice(b",\n \"counters\": {\"caps\":");
            put_u64(&mut out, caps);
            out.extend_from_slice(b",\"mails_failed\":");
            put_u64(&mut out, mails_failed);
            out.push(b'}');
        }
        out.extend_from_slice(b",\n \"slices\": [");
        for (i, s) in self.slices.values().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            put_slice(&mut out, s);
        }
        out.extend_from_slice(b"],\n \"dead\": [");
        for (i, d) in self.dead.values().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            let DeadState {
                name,
                start,
                lo,
                i2,
                mailed,
                xid,
                capped,
            } = d;
            out.extend_from_slice(b"{\"name\":");
            put_str(&mut out, name);
            out.extend_from_slice(b",\"start\":");
            put_time(&mut out, start);
            out.extend_from_slice(b",\"lo\":");
            put_u64(&mut out, lo.0);
            out.extend_from_slice(b",\"i2\":");
            put_u64(&mut out, i2.0);
            out.extend_from_slice(b",\"mailed\":");
            put_bool(&mut out, *mailed);
            if let Some(xid) = xid {
                out.extend_from_slice(b",\"xid\":");
                put_u64(&mut out, u64::from(*xid));
            }
            put_capped(&mut out, capped.as_ref());
            out.push(b'}');
        }
        out.extend_from_slice(b"]}\n");
        String::from_utf8(out).unwrap_or_else(|e| unreachable!("only UTF-8 is written: {e}"))
    }

    /// The file as `serde_json` wrote it before [`State::to_yaml`] was
    /// written by hand: the reference that writer must match byte for byte
    /// (tests, the fuzz target, `examples/state_bench`).
    #[doc(hidden)]
    pub fn to_yaml_serde(&self) -> String {
        let mut out: Vec<u8> = HEADER.to_vec();
        out.extend_from_slice(format!("{{\"version\": {VERSION}, \"last_sync\": ").as_bytes());
        line(&mut out, &self.last_sync);
        out.extend_from_slice(b",\n \"hierarchy\": ");
        line(&mut out, &self.hierarchy);
        out.extend_from_slice(b",\n \"classified\": ");
        line(&mut out, &self.classified);
        if !self.counters.is_zero() {
            out.extend_from_slice(b",\n \"counters\": ");
            line(&mut out, &self.counters);
        }
        out.extend_from_slice(b",\n \"slices\": [");
        for (i, slice) in self.slices.values().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            line(&mut out, slice);
        }
        out.extend_from_slice(b"],\n \"dead\": [");
        for (i, d) in self.dead.values().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            line(&mut out, d);
        }
        out.extend_from_slice(b"]}\n");
        String::from_utf8(out).unwrap_or_else(|e| unreachable!("serde_json writes UTF-8: {e}"))
    }

    /// Parses a state file's text; `what` names it in errors.
    pub fn from_yaml(text: &str, what: &Path) -> Result<State, Fatal> {
        match Self::from_own_yaml(text) {
            Some(state) => Ok(state),
            None => Self::from_yaml_serde(text, what),
        }
    }

    /// The fast path: the file exactly as `to_yaml` lays it out, read by
    /// [`Scan`]. `None` on anything else, errors included: the serde path
    /// then reads it, or names what is wrong with it.
    pub(crate) fn from_own_yaml(text: &str) -> Option<State> {
        Self::from_own_yaml_in_steps(text, SCAN_STEP)
    }

    /// [`State::from_own_yaml`] reading `step` bytes at a time, as it reads
    /// a file: the same answer at every step is what the tests check.
    pub(crate) fn from_own_yaml_in_steps(text: &str, step: usize) -> Option<State> {
        Scan::new(text.as_bytes(), step).state()
    }

    /// The general path: any JSON of the file's shape through `serde_json`,
    /// anything else through serde-saphyr, and every check with its message.
    pub(crate) fn from_yaml_serde(text: &str, what: &Path) -> Result<State, Fatal> {
        let bad = |msg: String| Fatal::BadData(format!("state file {}: {msg}", what.display()));
        let disk = match serde_json::from_str::<Disk>(json_body(text)) {
            Ok(d) if d.version == VERSION => d,
            _ => Self::from_any_yaml(text).map_err(bad)?,
        };
        let mut state = State {
            hierarchy: disk.hierarchy,
            classified: disk.classified,
            last_sync: disk.last_sync,
            counters: disk.counters,
            ..State::default()
        };
        for s in disk.slices {
            if s.xid > DEFAULT_XID {
                return Err(bad(format!(
                    "slice {} has xid {} beyond 4095",
                    s.name, s.xid
                )));
            }
            if state.slices.insert(s.xid, Box::new(s)).is_some() {
                return Err(bad("two slices with one xid".into()));
            }
        }
        for d in disk.dead {
            state.dead.insert(d.name.clone(), d);
        }
        Ok(state)
    }
}

impl State {
    /// Any YAML: the version first, so a newer bwmon's file is named as such.
    fn from_any_yaml(text: &str) -> Result<Disk, String> {
        let mut budget = serde_saphyr::Budget::default();
        // 4,094 slices of ~50 nodes each, plus dead records: well past the default.
        budget.max_nodes = 2_000_000;
        budget.max_events = 4_000_000;
        let mut options = serde_saphyr::Options::default();
        options.budget = Some(budget);
        let first_line = |e: &dyn std::fmt::Display| {
            e.to_string()
                .lines()
                .next()
                .unwrap_or("invalid YAML")
                .to_string()
        };
        let v: VersionOnly = serde_saphyr::from_str_with_options(text, options.clone())
            .map_err(|e| first_line(&e))?;
        match v.version {
            Some(VERSION) => {}
            Some(other) => {
                return Err(format!(
                    "unknown version {other} (this bwmon reads version {VERSION})"
                ));
            }
            None => return Err("no `version` field".into()),
        }
        serde_saphyr::from_str_with_options(text, options).map_err(|e| first_line(&e))
    }
}

/// The file's first line, so a person who opens it knows not to edit it live.
const HEADER: &[u8] = b"# bwmon state: written by bwmon, do not edit while it runs\n";

/// The text after leading whitespace and comment lines: JSON when bwmon wrote it.
fn json_body(text: &str) -> &str {
    let body = text.trim_start_matches(|c: char| c.is_whitespace());
    skip_comment_lines(body)
}

fn skip_comment_lines(mut text: &str) -> &str {
    while text.starts_with('#') {
        text = text.split_once('\n').map_or("", |(_, rest)| rest);
        text = text.trim_start();
    }
    text
}

/// One live slice's line. The destructuring is exhaustive so that a new
/// field cannot be forgotten here (nor in [`Scan::slice`], a struct literal).
fn put_slice(out: &mut Vec<u8>, s: &SliceState) {
    let SliceState {
        name,
        xid,
        start,
        mailed,
        lo,
        i2,
        capped,
    } = s;
    out.extend_from_slice(b"{\"name\":");
    put_str(out, name);
    out.extend_from_slice(b",\"xid\":");
    put_u64(out, u64::from(*xid));
    out.extend_from_slice(b",\"start\":");
    put_time(out, start);
    out.extend_from_slice(b",\"mailed\":");
    put_bool(out, *mailed);
    out.extend_from_slice(b",\"lo\":");
    put_class(out, lo);
    out.extend_from_slice(b",\"i2\":");
    put_class(out, i2);
    put_capped(out, capped.as_ref());
    out.push(b'}');
}

/// `,"capped":{...}` when there is one, as serde skips it when there is not.
fn put_capped(out: &mut Vec<u8>, capped: Option<&Capped>) {
    let Some(Capped { at, lo, i2 }) = capped else {
        return;
    };
    out.extend_from_slice(b",\"capped\":{\"at\":");
    put_time(out, at);
    for (key, ceil) in [(&b",\"lo\":"[..], lo), (&b",\"i2\":"[..], i2)] {
        if let Some(ceil) = ceil {
            out.extend_from_slice(key);
            put_u64(out, ceil.0);
        }
    }
    out.push(b'}');
}

/// A class's keys in the file, in order, each with what comes before it:
/// the one list [`put_class`] writes and [`Scan::class`] reads.
const CLASS_KEYS: [&[u8]; 9] = [
    b"{\"base\":",
    b",\"carry\":",
    b",\"last\":",
    b",\"ceil\":",
    b",\"min\":",
    b",\"max\":",
    b",\"quota\":",
    b",\"thresh\":",
    b",\"share\":",
];

fn put_class(out: &mut Vec<u8>, c: &ClassState) {
    let ClassState {
        base,
        carry,
        last,
        ceil,
        min,
        max,
        quota,
        thresh,
        share,
    } = c;
    let values = [
        base.0,
        carry.0,
        last.0,
        ceil.0,
        min.0,
        max.0,
        quota.0,
        thresh.0,
        u64::from(*share),
    ];
    for (key, value) in CLASS_KEYS.iter().zip(values) {
        out.extend_from_slice(key);
        put_u64(out, value);
    }
    out.push(b'}');
}

/// Reads the file exactly as [`State::to_yaml`] lays it out, key for key and
/// byte for byte; every method answers `None` at the first thing that is not
/// (other whitespace or key order, escapes in a string, a number with a
/// sign, fraction, exponent, leading zero or overflow, xids out of order or
/// beyond 4095, a time chrono refuses, bytes that are not UTF-8, a read that
/// fails). Where it answers, `serde_json` into `Disk` would have given the
/// same `State` from the file's text: the fuzz target checks this.
///
/// It reads from `src` a window at a time, never the whole file: at 4,000
/// slices a fresh buffer for the 1.4 MB of text cost more than scanning it
/// (each new page is a fault), and a reused 64 KiB window costs nothing.
/// The window is refilled only where a method looks ahead, so whatever one
/// borrows from it lives until the next call.
struct Scan<R> {
    src: R,
    buf: Vec<u8>,
    at: usize,
    /// Bytes asked of `src` at a time (a few in tests, to cross every
    /// boundary).
    step: usize,
    eof: bool,
    /// A read failed: nothing more is read, and no state is given, however
    /// the text read so far might parse.
    failed: bool,
    /// The last time read, text and value: most slices share a period start.
    /// None before the first, so that no text (an empty one neither) is
    /// taken for a time it is not.
    time: Option<(Vec<u8>, DateTime<Utc>)>,
}

/// The window's size for a file: room for several slice lines a read.
const SCAN_STEP: usize = 64 * 1024;
/// The most any literal, number or `true`/`false` of the layout takes.
const LOOKAHEAD: usize = 64;

impl<R: std::io::Read> Scan<R> {
    fn new(src: R, step: usize) -> Scan<R> {
        Scan {
            src,
            buf: Vec::with_capacity(step + LOOKAHEAD),
            at: 0,
            step: step.max(1),
            eof: false,
            failed: false,
            time: None,
        }
    }

    /// Reads on until `n` bytes lie ahead or the source ends (or fails).
    #[inline]
    fn ahead(&mut self, n: usize) {
        if self.buf.len() - self.at < n && !self.eof {
            self.refill(n);
        }
    }

    #[cold]
    fn refill(&mut self, n: usize) {
        self.buf.drain(..self.at);
        self.at = 0;
        while self.buf.len() < n && !self.eof {
            let len = self.buf.len();
            self.buf.resize(len + self.step, 0);
            match self.src.read(&mut self.buf[len..]) {
                Ok(0) => {
                    self.buf.truncate(len);
                    self.eof = true;
                }
                Ok(got) => self.buf.truncate(len + got),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => self.buf.truncate(len),
                Err(_) => {
                    self.buf.truncate(len);
                    self.failed = true;
                    self.eof = true;
                }
            }
        }
    }

    /// What lies ahead in the window: at least `n` bytes unless the source
    /// ends first.
    #[inline]
    fn rest(&mut self, n: usize) -> &[u8] {
        self.ahead(n);
        &self.buf[self.at..]
    }

    /// The first index (relative to `at`) where `stop` holds, reading on as
    /// far as it takes.
    fn find(&mut self, stop: impl Fn(u8) -> bool) -> Option<usize> {
        let mut from = 0;
        loop {
            let window = &self.buf[self.at..];
            if let Some(i) = window.get(from..)?.iter().position(|&b| stop(b)) {
                return Some(from + i);
            }
            from = window.len();
            if self.eof {
                return None;
            }
            self.ahead(from + self.step);
        }
    }

    #[inline]
    fn eat(&mut self, literal: &[u8]) -> Option<()> {
        self.eat_if(literal).then_some(())
    }

    #[inline]
    fn eat_if(&mut self, literal: &[u8]) -> bool {
        let found = self.rest(literal.len()).starts_with(literal);
        if found {
            self.at += literal.len();
        }
        found
    }

    /// Whitespace as JSON and `char::is_whitespace` agree on it.
    fn skip_space(&mut self) {
        while self
            .rest(1)
            .first()
            .is_some_and(|b| matches!(b, b' ' | b'\n' | b'\t' | b'\r'))
        {
            self.at += 1;
        }
    }

    /// What [`json_body`] skips: leading whitespace and `#` lines (each one
    /// UTF-8, as the whole text must be).
    fn skip_preamble(&mut self) -> Option<()> {
        self.skip_space();
        while self.rest(1).first() == Some(&b'#') {
            let end = self.find(|b| b == b'\n')?;
            std::str::from_utf8(&self.buf[self.at..self.at + end]).ok()?;
            self.at += end + 1;
            self.skip_space();
        }
        Some(())
    }

    /// Digits only, no leading zero, within u64: what JSON and `u64` agree on.
    /// (Eight digits a step, SWAR-style, measured no faster: most numbers
    /// here have one to eleven digits.)
    fn u64(&mut self) -> Option<u64> {
        let digits = self.rest(21);
        let mut n: u64 = 0;
        let mut len = 0;
        // Nineteen digits always fit: no overflow check in the loop.
        while let Some(&d) = digits.get(len)
            && d.is_ascii_digit()
            && len < 19
        {
            n = n * 10 + u64::from(d - b'0');
            len += 1;
        }
        if let Some(&d) = digits.get(len)
            && d.is_ascii_digit()
        {
            n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
            len += 1;
            if digits.get(len).is_some_and(u8::is_ascii_digit) {
                return None;
            }
        }
        if len == 0 || (len > 1 && digits[0] == b'0') {
            return None;
        }
        self.at += len;
        Some(n)
    }

    /// Where a string with nothing to unescape (and no control character,
    /// which JSON refuses) lies in the window, its quotes eaten. Its bytes
    /// are the caller's to check as UTF-8.
    fn str_span(&mut self) -> Option<std::ops::Range<usize>> {
        self.eat(b"\"")?;
        let len = self.find(|b| b == b'"' || b == b'\\' || b < 0x20)?;
        if self.buf[self.at + len] != b'"' {
            return None;
        }
        let span = self.at..self.at + len;
        self.at += len + 1;
        Some(span)
    }

    fn string(&mut self) -> Option<String> {
        let span = self.str_span()?;
        std::str::from_utf8(&self.buf[span]).ok().map(str::to_owned)
    }

    fn bool(&mut self) -> Option<bool> {
        if self.eat_if(b"true") {
            Some(true)
        } else if self.eat_if(b"false") {
            Some(false)
        } else {
            None
        }
    }

    fn time(&mut self) -> Option<DateTime<Utc>> {
        let span = self.str_span()?;
        let text = &self.buf[span];
        // The same bytes as the last time read: UTF-8 then, and that time.
        if let Some((last, t)) = &self.time
            && last.as_slice() == text
        {
            return Some(*t);
        }
        let s = std::str::from_utf8(text).ok()?;
        let t = own_time(s).or_else(|| {
            use serde::de::IntoDeserializer;
            // Any other form: chrono's own deserializer, as serde's path calls it.
            DateTime::<Utc>::deserialize(
                IntoDeserializer::<serde::de::value::Error>::into_deserializer(s),
            )
            .ok()
        })?;
        self.time = Some((text.to_vec(), t));
        Some(t)
    }

    fn state(mut self) -> Option<State> {
        let mut state = State::default();
        self.skip_preamble()?;
        self.eat(b"{\"version\": ")?;
        if self.u64()? != u64::from(VERSION) {
            return None;
        }
        self.eat(b", \"last_sync\": ")?;
        if !self.eat_if(b"null") {
            state.last_sync = Some(self.time()?);
        }
        self.eat(b",\n \"hierarchy\": {")?;
        if !self.eat_if(b"}") {
            loop {
                let dev = self.string()?;
                self.eat(b":{\"bwcap\":")?;
                let bwcap = Rate(self.u64()?);
                self.eat(b",\"bwmax\":")?;
                let bwmax = Rate(self.u64()?);
                let removed = self.eat_if(b",\"removed\":true");
                self.eat(b"}")?;
                let h = Hierarchy {
                    bwcap,
                    bwmax,
                    removed,
                };
                state.hierarchy.insert(dev, h);
                if self.eat_if(b"}") {
                    break;
                }
                self.eat(b",")?;
            }
        }
        self.eat(b",\n \"classified\": [")?;
        if !self.eat_if(b"]") {
            let mut xids = Vec::new();
            loop {
                xids.push(u16::try_from(self.u64()?).ok()?);
                if self.eat_if(b"]") {
                    break;
                }
                self.eat(b",")?;
            }
            state.classified = xids.into_iter().collect();
        }
        if self.eat_if(b",\n \"counters\": {\"caps\":") {
            let caps = self.u64()?;
            self.eat(b",\"mails_failed\":")?;
            let mails_failed = self.u64()?;
            self.eat(b"}")?;
            state.counters = Counters { caps, mails_failed };
        }
        self.eat(b",\n \"slices\": [")?;
        if !self.eat_if(b"]") {
            self.eat(b"\n  ")?;
            // Rising xids, each put straight into the map.
            let mut last: Option<u16> = None;
            loop {
                let s = self.slice()?;
                // Strictly rising: no duplicate (serde's path names that error).
                if s.xid > DEFAULT_XID || last.is_some_and(|l| l >= s.xid) {
                    return None;
                }
                last = Some(s.xid);
                state.slices.insert(s.xid, Box::new(s));
                if self.eat_if(b"]") {
                    break;
                }
                self.eat(b",\n  ")?;
            }
        }
        self.eat(b",\n \"dead\": [")?;
        if !self.eat_if(b"]") {
            self.eat(b"\n  ")?;
            loop {
                let d = self.dead()?;
                state.dead.insert(d.name.clone(), d);
                if self.eat_if(b"]") {
                    break;
                }
                self.eat(b",\n  ")?;
            }
        }
        self.eat(b"}")?;
        // serde_json allows trailing JSON whitespace and nothing else.
        self.skip_space();
        (self.rest(1).is_empty() && !self.failed).then_some(state)
    }

    fn slice(&mut self) -> Option<SliceState> {
        self.eat(b"{\"name\":")?;
        let name = self.string()?;
        self.eat(b",\"xid\":")?;
        let xid = u16::try_from(self.u64()?).ok()?;
        self.eat(b",\"start\":")?;
        let start = self.time()?;
        self.eat(b",\"mailed\":")?;
        let mailed = self.bool()?;
        self.eat(b",\"lo\":")?;
        let lo = self.class()?;
        self.eat(b",\"i2\":")?;
        let i2 = self.class()?;
        let capped = if self.eat_if(b",\"capped\":") {
            Some(self.cap()?)
        } else {
            None
        };
        self.eat(b"}")?;
        Some(SliceState {
            name,
            xid,
            start,
            mailed,
            lo,
            i2,
            capped,
        })
    }

    /// The `capped` member's value, in `put_capped`'s form.
    fn cap(&mut self) -> Option<Capped> {
        self.eat(b"{\"at\":")?;
        let at = self.time()?;
        let lo = if self.eat_if(b",\"lo\":") {
            Some(Rate(self.u64()?))
        } else {
            None
        };
        let i2 = if self.eat_if(b",\"i2\":") {
            Some(Rate(self.u64()?))
        } else {
            None
        };
        self.eat(b"}")?;
        Some(Capped { at, lo, i2 })
    }

    fn class(&mut self) -> Option<ClassState> {
        let mut v = [0u64; CLASS_KEYS.len()];
        for (value, key) in v.iter_mut().zip(CLASS_KEYS) {
            self.eat(key)?;
            *value = self.u64()?;
        }
        self.eat(b"}")?;
        let [base, carry, last, ceil, min, max, quota, thresh, share] = v;
        Some(ClassState {
            base: Bytes(base),
            carry: Bytes(carry),
            last: Bytes(last),
            ceil: Rate(ceil),
            min: Rate(min),
            max: Rate(max),
            quota: Bytes(quota),
            thresh: Bytes(thresh),
            share: u32::try_from(share).ok()?,
        })
    }

    fn dead(&mut self) -> Option<DeadState> {
        self.eat(b"{\"name\":")?;
        let name = self.string()?;
        self.eat(b",\"start\":")?;
        let start = self.time()?;
        self.eat(b",\"lo\":")?;
        let lo = Bytes(self.u64()?);
        self.eat(b",\"i2\":")?;
        let i2 = Bytes(self.u64()?);
        self.eat(b",\"mailed\":")?;
        let mailed = self.bool()?;
        let xid = if self.eat_if(b",\"xid\":") {
            Some(u16::try_from(self.u64()?).ok()?)
        } else {
            None
        };
        let capped = if self.eat_if(b",\"capped\":") {
            Some(self.cap()?)
        } else {
            None
        };
        self.eat(b"}")?;
        Some(DeadState {
            name,
            start,
            lo,
            i2,
            mailed,
            xid,
            capped,
        })
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.F]Z` with 1 to 9 fraction digits and seconds below
/// 60: the form bwmon writes, read without chrono's general parser (which
/// gives the same instant for it). `None` for any other form.
fn own_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    let num = |from: usize, to: usize| -> Option<u32> {
        let digits = b.get(from..to)?;
        digits.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    if b.len() < 20
        || [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')]
            .iter()
            .any(|&(at, c)| b[at] != c)
        || b[b.len() - 1] != b'Z'
    {
        return None;
    }
    let nano = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            num(20, 20 + frac.len())? * 10u32.pow(9 - u32::try_from(frac.len()).ok()?)
        }
        _ => return None,
    };
    let year = i32::try_from(num(0, 4)?).ok()?;
    let (month, day) = (num(5, 7)?, num(8, 10)?);
    let (hour, minute, second) = (num(11, 13)?, num(14, 16)?, num(17, 19)?);
    if second > 59 {
        return None;
    }
    Some(
        chrono::NaiveDate::from_ymd_opt(year, month, day)?
            .and_hms_nano_opt(hour, minute, second, nano)?
            .and_utc(),
    )
}

/// The `.last-sync` note: when the last sync completed and how long it took
/// (wall time), one line `<RFC 3339> <seconds>`. The time alone is an older
/// bwmon's note; the duration is in microseconds, so what `status` shows is
/// what the sync's own metrics file said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncNote {
    pub at: DateTime<Utc>,
    pub duration: Option<std::time::Duration>,
}

impl SyncNote {
    pub fn new(at: DateTime<Utc>, took: std::time::Duration) -> SyncNote {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        SyncNote {
            at,
            duration: Some(std::time::Duration::from_micros(micros)),
        }
    }

    fn line(self) -> String {
        let at = self.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        match self.duration {
            Some(d) => format!("{at} {}.{:06}\n", d.as_secs(), d.subsec_micros()),
            None => format!("{at}\n"),
        }
    }

    fn parse(text: &str) -> Option<SyncNote> {
        let mut words = text.split_whitespace();
        let at = DateTime::parse_from_rfc3339(words.next()?)
            .ok()?
            .with_timezone(&Utc);
        // Read exactly (not through f64), so the figure round-trips; one
        // that does not read is only a duration lost.
        let duration = words.next().and_then(|w| {
            let (secs, micros) = w.split_once('.')?;
            if micros.len() != 6 || !micros.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let d = std::time::Duration::from_secs(secs.parse().ok()?);
            Some(d + std::time::Duration::from_micros(micros.parse().ok()?))
        });
        Some(SyncNote { at, duration })
    }
}

/// Where the state lives, and its companions.
#[derive(Clone, Debug)]
pub struct Store {
    pub path: PathBuf,
}

impl Store {
    pub fn new(path: &Path) -> Store {
        Store {
            path: path.to_path_buf(),
        }
    }

    /// Creates the state directory (0700: usage and tenants' names are the
    /// operator's business) when it is missing, so a fresh install's first
    /// run needs no `mkdir`. Called by the runs that write. Only the last
    /// component: a mistyped path deeper down is an error, not a new tree.
    pub fn ensure_dir(&self) -> Result<(), Fatal> {
        use std::os::unix::fs::DirBuilderExt;
        let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) else {
            return Ok(());
        };
        if dir.is_dir() {
            return Ok(());
        }
        fs::DirBuilder::new().mode(0o700).create(dir).map_err(|e| {
            Fatal::Io(format!(
                "cannot create the state directory {}: {e}",
                dir.display()
            ))
        })?;
        log::info!("created the state directory {}", dir.display());
        Ok(())
    }

    pub fn backup_path(&self) -> PathBuf {
        with_suffix(&self.path, ".bak")
    }

    pub fn lock_path(&self) -> PathBuf {
        with_suffix(&self.path, ".lock")
    }

    /// Where each completed sync notes its time. Kept apart from the state so
    /// a sync that changed nothing need not rewrite (and fsync) the state.
    pub fn last_sync_path(&self) -> PathBuf {
        with_suffix(&self.path, ".last-sync")
    }

    /// Loads the state; `Ok(None)` when there is no state file yet.
    pub fn load(&self) -> Result<Option<State>, Fatal> {
        let mut state = read_state(&self.path)?;
        if let Some(s) = state.as_mut() {
            s.last_sync = s.last_sync.max(self.sync_note().map(|n| n.at));
        }
        Ok(state)
    }

    /// What the last completed sync noted, if its note can be read.
    pub fn sync_note(&self) -> Option<SyncNote> {
        SyncNote::parse(&fs::read_to_string(self.last_sync_path()).ok()?)
    }

    /// Notes a completed sync. Not fsynced: losing it loses only a timestamp
    /// and a duration.
    ///
    /// Written over the old note in place, not through a temp file and a
    /// rename: every reader takes the state's lock, which the sync holds
    /// now, so none can see it half written; and on ext4 the create and the
    /// rename over an existing file cost a millisecond, a twentieth of a
    /// steady sync at 4,000 slices. A crash between the write and the
    /// truncation leaves the old note's tail after the new line, which
    /// [`SyncNote::parse`] ignores.
    pub fn note_sync(&self, note: &SyncNote) -> Result<(), Fatal> {
        use std::os::unix::fs::FileExt;
        let path = self.last_sync_path();
        let line = note.line();
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .and_then(|file| {
                file.write_all_at(line.as_bytes(), 0)?;
                if file.metadata()?.len() > line.len() as u64 {
                    file.set_len(line.len() as u64)?;
                }
                Ok(())
            })
            .map_err(|e| Fatal::Io(format!("cannot write {}: {e}", path.display())))
    }

    /// Loads the backup kept by the last save, if any.
    pub fn load_backup(&self) -> Result<Option<State>, Fatal> {
        read_state(&self.backup_path())
    }

    /// Moves an unusable state file out of the way as
    /// `<state>.<label>-<timestamp>`, for a person to look at later.
    pub fn set_aside(&self, label: &str, now: DateTime<Utc>) -> Result<PathBuf, Fatal> {
        let stamp = now.format("%Y%m%dT%H%M%SZ");
        let mut aside = with_suffix(&self.path, &format!(".{label}-{stamp}"));
        let mut n = 1;
        while aside.exists() {
            aside = with_suffix(&self.path, &format!(".{label}-{stamp}.{n}"));
            n += 1;
        }
        fs::rename(&self.path, &aside).map_err(|e| {
            Fatal::Io(format!(
                "cannot move {} aside to {}: {e}",
                self.path.display(),
                aside.display()
            ))
        })?;
        Ok(aside)
    }

    /// Saves atomically, keeping the previous file as `<state>.bak`.
    pub fn save(&self, state: &State) -> Result<(), Fatal> {
        let io = |what: &str, path: &Path, e: std::io::Error| {
            Fatal::Io(format!(
                "cannot {what} {}: {e}; check the directory exists and is writable by bwmon",
                path.display()
            ))
        };
        let failed = |f: files::Failed| io(f.what, &f.path, f.error);
        let tmp = with_suffix(&self.path, ".tmp");
        files::write_synced(&tmp, state.to_yaml().as_bytes()).map_err(failed)?;
        if self.path.exists() {
            // A hard link keeps the old state in place until the rename below,
            // so there is no instant without a state file.
            let bak = self.backup_path();
            let bak_tmp = with_suffix(&self.path, ".bak.tmp");
            let _ = fs::remove_file(&bak_tmp);
            fs::hard_link(&self.path, &bak_tmp)
                .and_then(|()| fs::rename(&bak_tmp, &bak))
                .map_err(|e| io("keep a backup as", &bak, e))?;
            // rename(2) does nothing when both names are already one file
            // (a run killed between the two renames): tidy the extra name.
            let _ = fs::remove_file(&bak_tmp);
        }
        files::rename_synced(&tmp, &self.path).map_err(failed)
    }
}

fn read_state(path: &Path) -> Result<Option<State>, Fatal> {
    use std::io::{Read, Seek};
    let cannot = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Fatal::BadData(format!("state file {}: not UTF-8 text", path.display()))
        } else {
            Fatal::Io(format!("cannot read state file {}: {e}", path.display()))
        }
    };
    let mut file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(cannot(e)),
    };
    let size = file
        .metadata()
        .ok()
        .and_then(|m| usize::try_from(m.len()).ok())
        .unwrap_or(0);
    if let Some(state) = Scan::new(&mut file, SCAN_STEP).state() {
        return Ok(Some(state));
    }
    // Not bwmon's own layout (or a read failed): the whole text, through the
    // serde path and its messages.
    let mut text = String::with_capacity(size);
    file.rewind()
        .and_then(|()| file.read_to_string(&mut text))
        .map_err(cannot)?;
    State::from_yaml_serde(&text, path).map(Some)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::Datelike;

    /// A load's outcome with the error as the message a person reads.
    fn load(text: &str) -> Result<State, String> {
        State::from_yaml(text, Path::new("s")).map_err(|e| e.to_string())
    }

    fn load_serde(text: &str) -> Result<State, String> {
        State::from_yaml_serde(text, Path::new("s")).map_err(|e| e.to_string())
    }

    fn sample() -> State {
        let class = ClassState {
            base: Bytes(10),
            carry: Bytes(5),
            last: Bytes(12),
            ceil: Rate(312_000),
            min: Rate(1000),
            max: Rate(100_000_000),
            quota: Bytes(102_400),
            thresh: Bytes(81_920),
            share: 1,
        };
        let start = DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
            .expect("valid")
            .with_timezone(&Utc);
        let mut s = State::default();
        s.hierarchy.insert(
            "lo".into(),
            Hierarchy::new(Rate(100_000_000), Rate(1_000_000_000)),
        );
        s.slices.insert(
            257,
            Box::new(SliceState {
                name: "pl_alice".into(),
                xid: 257,
                start,
                mailed: true,
                lo: class.clone(),
                i2: class,
                capped: None,
            }),
        );
        s.dead.insert(
            "pl_bob".into(),
            DeadState {
                name: "pl_bob".into(),
                start,
                lo: Bytes(7),
                i2: Bytes(0),
                mailed: false,
                xid: None,
                capped: None,
            },
        );
        s
    }

    // SPEC §9.11: the Python 3 port could not write its own state back.
    #[test]
    fn regression_9_11_state_written_is_read_back() {
        let s = sample();
        let text = s.to_yaml();
        assert_eq!(State::from_yaml(&text, Path::new("s")).expect("parses"), s);
        // One line per slice keeps 4,000 slices compact.
        assert_eq!(text.lines().filter(|l| l.contains("pl_alice")).count(), 1);
    }

    // SPEC §9.8: an unknown version must not silently discard usage.
    #[test]
    fn regression_9_8_unknown_version_is_an_error_not_a_reset() {
        let text = sample()
            .to_yaml()
            .replace("\"version\": 1", "\"version\": 99");
        assert!(text.contains("99"));
        let err = State::from_yaml(&text, Path::new("s")).unwrap_err();
        assert_eq!(err.code(), 65);
        assert!(err.to_string().contains("unknown version 99"), "{err}");
    }

    #[test]
    fn any_yaml_form_is_read_too() {
        // What a person might write by hand, or an older bwmon wrote: block
        // and flow YAML, read through serde-saphyr.
        let text = "# edited\nversion: 1\nhierarchy:\n  lo: {bwcap: 100000000, bwmax: 1000000000}\nslices:\n- {name: pl_alice, xid: 257, start: \"2026-11-24T00:00:00Z\", mailed: true, lo: {base: 10, carry: 5, last: 12, ceil: 312000, min: 1000, max: 100000000, quota: 102400, thresh: 81920, share: 1}, i2: {base: 10, carry: 5, last: 12, ceil: 312000, min: 1000, max: 100000000, quota: 102400, thresh: 81920, share: 1}}\ndead:\n- name: pl_bob\n  start: \"2026-11-24T00:00:00Z\"\n  lo: 7\n  i2: 0\n  mailed: false\n";
        assert_eq!(
            State::from_yaml(text, Path::new("s")).expect("YAML parses"),
            sample()
        );
        // And what bwmon writes is YAML as well as JSON.
        let written = sample().to_yaml();
        assert_eq!(
            State::from_any_yaml(&written).map(|d| d.slices.len()),
            Ok(1)
        );
    }

    #[test]
    fn save_is_atomic_and_keeps_a_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(&dir.path().join("state.yaml"));
        assert_eq!(store.load().expect("no file is fine"), None);
        let mut s = sample();
        store.save(&s).expect("first save");
        s.last_sync = Some(Utc::now());
        store.save(&s).expect("second save");
        assert_eq!(store.load().expect("loads"), Some(s));
        assert_eq!(
            store.load_backup().expect("loads").map(|b| b.last_sync),
            Some(None)
        );
        assert!(!dir.path().join("state.yaml.tmp").exists());
    }

    /// A read that fails partway gives no state (the caller reads the file
    /// again, and names the error), however the bytes so far parse; one
    /// interrupted by a signal is read again.
    #[test]
    fn the_scan_gives_up_on_a_failed_read() {
        struct Flaky<'a> {
            text: &'a [u8],
            reads: usize,
            fail_at: usize,
            kind: std::io::ErrorKind,
        }
        impl std::io::Read for Flaky<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                self.reads += 1;
                if self.reads == self.fail_at {
                    return Err(self.kind.into());
                }
                let n = out.len().min(self.text.len());
                out[..n].copy_from_slice(&self.text[..n]);
                self.text = &self.text[n..];
                Ok(n)
            }
        }
        let text = sample().to_yaml();
        // 16 bytes a read: the first, one inside, the last with bytes.
        for fail_at in [1, 5, text.len().div_ceil(16)] {
            for (kind, read) in [
                (std::io::ErrorKind::Other, false),
                (std::io::ErrorKind::Interrupted, true),
            ] {
                let src = Flaky {
                    text: text.as_bytes(),
                    reads: 0,
                    fail_at,
                    kind,
                };
                let got = Scan::new(src, 16).state();
                assert_eq!(got.is_some(), read, "{kind:?} at read {fail_at}");
            }
        }
    }

    /// The file is read a window at a time: a file in another layout is
    /// read again whole after the scan gave up partway, and a file that is
    /// not UTF-8 is refused as before, wherever the bad bytes lie.
    #[test]
    fn a_file_the_scan_gives_up_on_is_read_again_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(&dir.path().join("state.yaml"));
        let own = sample().to_yaml();
        // Past the first window (64 KiB) before the scan gives up.
        let mut big = sample();
        for x in 1..700u16 {
            let mut s = big.slices[&257].clone();
            s.xid = x;
            s.name = format!("pl_{x}");
            big.slices.insert(x, s);
        }
        let far = big.to_yaml();
        assert!(far.len() > 2 * SCAN_STEP, "{}", far.len());
        let odd = far.replacen("\"name\":\"pl_699\"", "\"name\": \"pl_699\"", 1);
        assert_ne!(odd, far);
        for (text, want) in [(own, sample()), (odd, big)] {
            fs::write(&store.path, &text).expect("write");
            assert_eq!(store.load().expect("loads"), Some(want));
        }
        for at in [10, SCAN_STEP + 10] {
            let mut bytes = far.clone().into_bytes();
            bytes[at] = 0xff;
            fs::write(&store.path, &bytes).expect("write");
            let err = store.load().expect_err("not UTF-8");
            assert!(err.to_string().contains("not UTF-8 text"), "{err}");
        }
    }

    #[test]
    fn truncated_state_is_bad_data() {
        let text = sample().to_yaml();
        let cut = &text[..text.len() / 2];
        let err = State::from_yaml(cut, Path::new("s"));
        assert!(matches!(err, Err(Fatal::BadData(_))), "{err:?}");
    }

    fn time(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("valid")
            .with_timezone(&Utc)
    }

    /// The hand-written writer against the serde writer it replaced.
    fn same_bytes_as_serde(s: &State) {
        assert_eq!(s.to_yaml(), s.to_yaml_serde());
    }

    #[test]
    fn written_bytes_are_serde_jsons_at_the_edges() {
        let mut s = sample();
        same_bytes_as_serde(&s);
        same_bytes_as_serde(&State::default());
        s.last_sync = Some(time("2026-11-25T00:01:00.5Z"));
        s.hierarchy.get_mut("lo").expect("lo").removed = true;
        s.hierarchy.insert(
            "e\"th\\0\n\u{1}\u{7f}é".into(),
            Hierarchy::new(Rate(0), Rate(u64::MAX)),
        );
        s.classified = [0, 1, 9, 10, 99, 100, 4094, u16::MAX].into();
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_500_000_000))
            .expect("a leap second")
            .and_utc();
        let starts = [
            time("2026-11-25T00:01:00.123Z"),
            time("2026-11-25T00:01:00.123456Z"),
            time("2026-11-25T00:01:00.123456789Z"),
            time("2026-11-25T00:01:00.000000001Z"),
            time("0000-01-01T00:00:00Z"),
            time("9999-12-31T23:59:59.999999999Z"),
            leap,
            DateTime::<Utc>::MIN_UTC,
            DateTime::<Utc>::MAX_UTC,
        ];
        let template = s.slices[&257].clone();
        for (i, start) in (1u16..).zip(starts) {
            let mut slice = template.clone();
            slice.xid = i;
            slice.start = start;
            slice.name = format!("s{i}\t\"{}\"", "\\".repeat(usize::from(i)));
            slice.lo.base = Bytes(10u64.pow(u32::from(i)) - 1);
            slice.i2.carry = Bytes(u64::MAX - u64::from(i));
            slice.i2.share = u32::MAX;
            // Every shape of the optional cap record, and of the dead xid.
            let cap = |lo, i2| Capped { at: start, lo, i2 };
            slice.capped = match i % 4 {
                0 => None,
                1 => Some(cap(Some(Rate(u64::from(i))), None)),
                2 => Some(cap(None, Some(Rate(u64::MAX)))),
                _ => Some(cap(Some(Rate(0)), Some(Rate(1)))),
            };
            s.slices.insert(i, slice);
            let dead = DeadState {
                name: format!("d{i}\u{0}"),
                start,
                xid: (i % 2 == 0).then_some(i),
                capped: (i % 3 == 0).then(|| cap(None, None)),
                ..s.dead["pl_bob"].clone()
            };
            s.dead.insert(dead.name.clone(), dead);
        }
        same_bytes_as_serde(&s);
        // What needs escaping, or chrono's own forms, still reads back.
        s.slices
            .retain(|_, v| v.start.year() <= 9999 && v.start.year() >= 0);
        s.dead
            .retain(|_, v| v.start.year() <= 9999 && v.start.year() >= 0);
        assert_eq!(load(&s.to_yaml()), Ok(s));
    }

    #[test]
    fn bwmon_s_own_file_takes_the_fast_path() {
        let mut s = sample();
        s.last_sync = Some(time("2026-11-25T00:01:00.25Z"));
        s.classified = [257].into();
        s.slices.get_mut(&257).expect("alice").capped = Some(Capped {
            at: time("2026-11-24T20:00:00Z"),
            lo: Some(Rate(2000)),
            i2: None,
        });
        let bob = s.dead.get_mut("pl_bob").expect("bob");
        bob.xid = Some(258);
        bob.capped = Some(Capped {
            at: time("2026-11-24T21:00:00Z"),
            lo: None,
            i2: Some(Rate(8000)),
        });
        // A leap second is read by chrono, in the fast path all the same.
        let mut leap = s.slices[&257].clone();
        leap.xid = 4095;
        leap.start = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_nano_opt(23, 59, 59, 1_000_000_000))
            .expect("a leap second")
            .and_utc();
        s.slices.insert(4095, leap);
        let text = s.to_yaml();
        assert_eq!(State::from_own_yaml(&text), Some(s.clone()));
        // However the reads cut it, each window boundary anywhere.
        for step in 1..=80 {
            assert_eq!(
                State::from_own_yaml_in_steps(&text, step),
                Some(s.clone()),
                "step {step}"
            );
        }
        assert_eq!(
            State::from_own_yaml(&State::default().to_yaml()),
            Some(State::default())
        );
    }

    /// Texts in bwmon's layout that the fast path must leave to serde, which
    /// then reads them or names what is wrong, as before.
    #[test]
    fn the_fast_path_leaves_anything_else_to_serde() {
        let own = sample().to_yaml();
        let object = |s: &SliceState| {
            let mut out = Vec::new();
            put_slice(&mut out, s);
            String::from_utf8(out).expect("UTF-8")
        };
        let alice: &SliceState = &sample().slices[&257];
        let line = object(alice);
        assert!(own.contains(&line));
        let other = object(&SliceState {
            name: "pl_carol".into(),
            xid: 100,
            ..alice.clone()
        });
        // (text, the fast path reads it, the error serde's path gives)
        // What serde's path says of a file it cannot read at all.
        let bad: Option<&'static str> = Some("state file s:");
        let case = |from: &str, to: &str, fast: bool, error: Option<&'static str>| {
            (own.replace(from, to), fast, error)
        };
        let cases: &[(String, bool, Option<&str>)] = &[
            // duplicate xid, xid beyond 4095, u16 overflow
            case(
                &line,
                &format!("{line},\n  {line}"),
                false,
                Some("two slices with one xid"),
            ),
            case(
                "\"xid\":257",
                "\"xid\":4096",
                false,
                Some("slice pl_alice has xid 4096 beyond 4095"),
            ),
            case("\"xid\":257", "\"xid\":65536", false, bad),
            // xids out of order
            case(&line, &format!("{line},\n  {other}"), false, None),
            // unknown top-level key (deny_unknown_fields); unknown slice key (ignored)
            case("\"dead\":", "\"deed\": [], \"dead\":", false, bad),
            case(
                "\"mailed\":true",
                "\"mailed\":true,\"extra\":1",
                false,
                None,
            ),
            // other whitespace, number forms, escapes
            case(", \"last_sync\"", ",  \"last_sync\"", false, None),
            case("\"share\":1}", "\"share\":1.0}", false, bad),
            case("\"base\":10,", "\"base\":010,", false, bad),
            case("\"base\":10,", "\"base\":18446744073709551616,", false, bad),
            case("\"base\":10,", "\"base\":-0,", false, bad),
            case("\"share\":1}", "\"share\":4294967296}", false, bad),
            case("pl_alice", "pl_\\u0061lice", false, None),
            // A trailing comment: not JSON, but serde-saphyr reads it.
            case("]}\n", "]}\n# end\n", false, None),
            // Times in chrono's other forms are read by chrono, in the fast path.
            case(
                "2026-11-24T00:00:00Z",
                "2026-11-24T01:00:00+01:00",
                true,
                None,
            ),
            case("2026-11-24T00:00:00Z", "2026-11-24 00:00:00Z", true, None),
            case(
                "2026-11-24T00:00:00Z",
                "2026-11-24T00:00:00.1234567891Z",
                true,
                None,
            ),
            case("2026-11-24T00:00:00Z", "2026-02-30T00:00:00Z", false, bad),
            // An empty time is no time (and no match for the last one read).
            case("\"2026-11-24T00:00:00Z\"", "\"\"", false, bad),
            // JSON whitespace after the end, as serde_json allows.
            case("]}\n", "]} \t\r\n\n", true, None),
        ];
        for (text, fast, error) in cases {
            assert_ne!(text, &own);
            let general = load_serde(text);
            for step in [1, 2, 3, 7, 64, SCAN_STEP] {
                assert_eq!(
                    State::from_own_yaml_in_steps(text, step).is_some(),
                    *fast,
                    "step {step}: {text}"
                );
            }
            let got = load(text);
            assert_eq!(got, general, "{text}");
            match (error, &got) {
                (Some(msg), Err(e)) => assert!(e.contains(msg), "{e} for {text}"),
                (None, Ok(_)) => {}
                _ => panic!("{got:?} for {text}"),
            }
        }
    }

    #[test]
    fn the_fast_time_reader_is_chronos_on_its_form() {
        for text in [
            "2026-11-24T00:00:00Z",
            "2024-02-29T23:59:59Z",
            "0000-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999999Z",
            "2026-11-24T00:00:00.1Z",
            "2026-11-24T00:00:00.000000001Z",
        ] {
            assert_eq!(own_time(text), Some(time(text)), "{text}");
        }
        for text in [
            "2023-02-29T00:00:00Z",
            "2026-13-01T00:00:00Z",
            "2026-11-24T24:00:00Z",
            "2026-11-24T00:60:00Z",
            "2026-11-24T00:00:60Z",
            "2026-11-24T00:00:00.Z",
            "2026-11-24T00:00:00.1234567890Z",
            "2026-11-24t00:00:00Z",
            "2026-11-24T00:00:00z",
            "+2026-11-24T00:00:00Z",
            "2026-11-24T00:00:0aZ",
            "2026-11-24T00:00:00",
        ] {
            assert_eq!(own_time(text), None, "{text}");
        }
    }

    // Issue 13: counters are monotonic across runs, and a file without them
    // (every file before them, and one with nothing counted) still loads.
    #[test]
    fn counters_are_kept_and_optional() {
        let mut s = sample();
        let plain = s.to_yaml();
        assert!(
            !plain.contains("counters"),
            "nothing counted, nothing written"
        );
        s.counters = Counters {
            caps: 3,
            mails_failed: u64::MAX,
        };
        let text = s.to_yaml();
        assert_eq!(text, s.to_yaml_serde());
        assert!(text.contains("\"counters\": {\"caps\":3,"), "{text}");
        assert_eq!(State::from_own_yaml(&text), Some(s.clone()));
        assert_eq!(load_serde(&text), Ok(s.clone()));
        assert_eq!(load(&plain).map(|l| l.counters), Ok(Counters::default()));
        // Zeros written out (by a person, or another writer) read as zeros
        // on both paths.
        let zeros = plain.replace(
            "],\n \"slices\"",
            "],\n \"counters\": {\"caps\":0,\"mails_failed\":0},\n \"slices\"",
        );
        assert_ne!(zeros, plain);
        assert_eq!(State::from_own_yaml(&zeros), Some(sample()));
        assert_eq!(load_serde(&zeros), Ok(sample()));
        // Half a counters object is the serde path's to judge.
        let half = text.replace(",\"mails_failed\":18446744073709551615", "");
        assert_eq!(State::from_own_yaml(&half), None);
        assert!(load(&half).is_ok_and(|l| l.counters.caps == 3));
    }

    #[test]
    fn caps_are_counted_when_they_begin() {
        let mut before = sample();
        let lo = &mut before.slices.get_mut(&257).expect("alice").lo;
        lo.ceil = lo.max;
        let mut after = before.clone();
        assert_eq!(after.caps_since(&CapsAt::of(&before.slices)), 0);
        after.slices.get_mut(&257).expect("alice").lo.ceil = Rate(21_217);
        assert_eq!(
            after.caps_since(&CapsAt::of(&before.slices)),
            1,
            "low capped now"
        );
        // Still capped (another ceil): the same cap, not a new one.
        let mut later = after.clone();
        later.slices.get_mut(&257).expect("alice").lo.ceil = Rate(20_000);
        assert_eq!(later.caps_since(&CapsAt::of(&after.slices)), 0);
        // A ceil the kernel refused (0) is no cap in force.
        later.slices.get_mut(&257).expect("alice").lo.ceil = Rate(0);
        assert_eq!(later.caps_since(&CapsAt::of(&before.slices)), 0);
        // A slice that is new and capped at once: its i2 was capped in the sample.
        let mut born = before.clone();
        let mut carol = born.slices[&257].clone();
        carol.xid = 300;
        born.slices.insert(300, carol);
        assert_eq!(born.caps_since(&CapsAt::of(&before.slices)), 1);
        // Only the slices now count, each against its own xid then,
        // whatever the walk skips on either side.
        let mut apart = born.clone();
        let carol = apart.slices.remove(&300).expect("carol");
        apart.slices.insert(100, carol.clone());
        apart.slices.insert(400, carol);
        let then = CapsAt::of(&apart.slices);
        assert_eq!(
            born.caps_since(&then),
            1,
            "carol's i2 is new, alice's is not"
        );
        apart.slices.remove(&257);
        let then = CapsAt::of(&apart.slices);
        assert_eq!(born.caps_since(&then), 2, "both i2 caps are new");
    }

    #[test]
    fn the_sync_note_round_trips_and_reads_an_older_note() {
        let at = time("2026-11-24T23:00:00Z");
        let note = SyncNote::new(at, std::time::Duration::from_nanos(12_345_678_999));
        assert_eq!(note.line(), "2026-11-24T23:00:00Z 12.345678\n");
        assert_eq!(SyncNote::parse(&note.line()), Some(note));
        let old = SyncNote::parse("2026-11-24T23:00:00Z\n");
        assert_eq!(old, Some(SyncNote { at, duration: None }));
        for bad in ["2026-11-24T23:00:00Z 1.5", "2026-11-24T23:00:00Z x.000001"] {
            assert_eq!(
                SyncNote::parse(bad).map(|n| n.duration),
                Some(None),
                "{bad}"
            );
        }
        assert_eq!(SyncNote::parse("yesterday 1.000000"), None);
    }

    #[test]
    fn a_sync_note_is_written_over_the_old_one_in_place() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = Store::new(&dir.path().join("state.yaml"));
        let at = time("2026-11-24T23:00:00Z");
        let note = |micros| SyncNote::new(at, std::time::Duration::from_micros(micros));
        let path = store.last_sync_path();
        // A longer note, a shorter one over it, then a longer one again.
        for micros in [12_345_678, 45_678, 100_000_001] {
            store.note_sync(&note(micros)).expect("noted");
            assert_eq!(
                fs::read_to_string(&path).expect("read"),
                note(micros).line()
            );
            assert_eq!(store.sync_note(), Some(note(micros)));
        }
        // What a crash between the write and the truncation leaves: the new
        // line, then the old one's tail.
        fs::write(&path, "2026-11-24T23:00:00Z 0.045678\n1\n").expect("written");
        assert_eq!(store.sync_note(), Some(note(45_678)));
        assert!(!with_suffix(&path, ".tmp").exists(), "no temp file");
    }

    pub(crate) mod props {
        use super::super::*;
        use super::{load, load_serde};
        use chrono::{Datelike, TimeZone, Timelike};
        use proptest::prelude::*;

        fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
            // Whole seconds, each fraction length, and years beyond RFC 3339.
            let nanos = prop_oneof![
                Just(0u32),
                (1u32..1000).prop_map(|n| n * 1_000_000),
                (1u32..1_000_000).prop_map(|n| n * 1000),
                0u32..2_000_000_000,
            ];
            let secs = prop_oneof![
                -62_167_219_200i64..253_402_300_800,
                DateTime::<Utc>::MIN_UTC.timestamp()..DateTime::<Utc>::MAX_UTC.timestamp(),
            ];
            (secs, nanos).prop_map(|(s, n)| {
                let t = Utc
                    .timestamp_opt(s, n % 1_000_000_000)
                    .single()
                    .unwrap_or_default();
                // A leap second only where chrono allows one (second 59).
                if n >= 1_000_000_000 && t.second() == 59 {
                    t.with_nanosecond(n).unwrap_or(t)
                } else {
                    t
                }
            })
        }

        /// Any class state, every figure anywhere in its type (also used by
        /// the policy's arithmetic proptests).
        fn any_capped() -> impl Strategy<Value = Option<Capped>> {
            let rate = proptest::option::of(any::<u64>().prop_map(Rate));
            proptest::option::of(
                (any_time(), rate.clone(), rate).prop_map(|(at, lo, i2)| Capped { at, lo, i2 }),
            )
        }

        pub(crate) fn any_class() -> impl Strategy<Value = ClassState> {
            (any::<[u64; 8]>(), any::<u32>()).prop_map(|(v, share)| ClassState {
                base: Bytes(v[0]),
                carry: Bytes(v[1]),
                last: Bytes(v[2]),
                ceil: Rate(v[3]),
                min: Rate(v[4]),
                max: Rate(v[5]),
                quota: Bytes(v[6]),
                thresh: Bytes(v[7]),
                share,
            })
        }

        fn any_state(name: &'static str) -> impl Strategy<Value = State> {
            let slice = (
                name,
                any::<u16>(),
                any_time(),
                any::<bool>(),
                any_class(),
                any_class(),
                any_capped(),
            )
                .prop_map(|(name, xid, start, mailed, lo, i2, capped)| SliceState {
                    name,
                    xid: xid % 4096,
                    start,
                    mailed,
                    lo,
                    i2,
                    capped,
                });
            let dead = (
                name,
                any_time(),
                any::<[u64; 2]>(),
                any::<bool>(),
                proptest::option::of(any::<u16>()),
                any_capped(),
            )
                .prop_map(|(name, start, [lo, i2], mailed, xid, capped)| DeadState {
                    name,
                    start,
                    lo: Bytes(lo),
                    i2: Bytes(i2),
                    mailed,
                    xid,
                    capped,
                });
            let hierarchy =
                (name, any::<[u64; 2]>(), any::<bool>()).prop_map(|(dev, [cap, max], removed)| {
                    (
                        dev,
                        Hierarchy {
                            bwcap: Rate(cap),
                            bwmax: Rate(max),
                            removed,
                        },
                    )
                });
            (
                proptest::collection::vec(hierarchy, 0..3),
                proptest::option::of(any_time()),
                proptest::collection::vec(slice, 0..6),
                proptest::collection::vec(dead, 0..3),
                proptest::collection::btree_set(any::<u16>(), 0..6),
                prop_oneof![Just([0u64; 2]), any::<[u64; 2]>()],
            )
                .prop_map(
                    |(h, last_sync, slices, dead, classified, [caps, mails_failed])| State {
                        hierarchy: h.into_iter().collect(),
                        last_sync,
                        slices: slices.into_iter().map(|s| (s.xid, Box::new(s))).collect(),
                        dead: dead.into_iter().map(|d| (d.name.clone(), d)).collect(),
                        classified,
                        counters: Counters { caps, mails_failed },
                    },
                )
        }

        fn readable(t: DateTime<Utc>) -> bool {
            (0..=9999).contains(&t.year())
        }

        proptest! {
            // Any names and times: the bytes serde_json wrote, read back the
            // same wherever chrono reads its own writing.
            #[test]
            fn any_state_is_written_as_serde_wrote_it(s in any_state("\\PC{0,12}|[\"\\\\\u{0}-\u{1f}a]{0,4}")) {
                let text = s.to_yaml();
                prop_assert_eq!(&text, &s.to_yaml_serde());
                let fast = State::from_own_yaml(&text);
                if let Some(fast) = fast {
                    prop_assert_eq!(Ok(fast), load_serde(&text));
                }
                let times = s.slices.values().map(|v| v.start)
                    .chain(s.dead.values().map(|d| d.start))
                    .chain(s.slices.values().filter_map(|v| v.capped.map(|c| c.at)))
                    .chain(s.dead.values().filter_map(|d| d.capped.map(|c| c.at)))
                    .chain(s.last_sync);
                if times.clone().all(readable) {
                    prop_assert_eq!(load(&text), Ok(s));
                }
            }

            // Names as SPEC §3 allows them: always the fast path, never a
            // fallback that would silently cost the old price.
            #[test]
            fn valid_names_take_the_fast_path(s in any_state("[A-Za-z0-9_.-]{1,64}")) {
                let text = s.to_yaml();
                let times = s.slices.values().map(|v| v.start)
                    .chain(s.dead.values().map(|d| d.start))
                    .chain(s.slices.values().filter_map(|v| v.capped.map(|c| c.at)))
                    .chain(s.dead.values().filter_map(|d| d.capped.map(|c| c.at)))
                    .chain(s.last_sync);
                if times.clone().all(readable) {
                    prop_assert_eq!(State::from_own_yaml(&text), Some(s));
                }
            }

            // The form bwmon writes, any digits: the fast reader agrees
            // with chrono wherever it answers, and answers below second 60.
            #[test]
            fn own_time_is_chrono_on_bwmon_s_form(
                digits in "[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{1,11})?Z"
            ) {
                let chrono = DateTime::<Utc>::deserialize(
                    serde::de::IntoDeserializer::<serde::de::value::Error>::into_deserializer(digits.as_str()),
                ).ok();
                match own_time(&digits) {
                    Some(t) => prop_assert_eq!(Some(t), chrono),
                    None => prop_assert!(
                        chrono.is_none() || &digits[17..19] == "60" || digits.len() > 30,
                        "{} refused", digits
                    ),
                }
            }
        }
    }
}
