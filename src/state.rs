//! The state file: what bwmon remembers between runs (SPEC §3 "State").
//!
//! YAML, one flow mapping per slice so 4,000 slices stay near 1 MB; written
//! atomically (temp file, fsync, rename, fsync directory) after the previous
//! good file is kept as `<state>.bak`, so a run killed at any instant leaves the
//! old state or the new one and never a torn file (SPEC §9.8).

use crate::error::Fatal;
use crate::units::{Bytes, Rate};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
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
}

/// A slice deleted within its period: recreating it must not buy a fresh quota.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadState {
    pub name: String,
    pub start: DateTime<Utc>,
    pub lo: Bytes,
    pub i2: Bytes,
    pub mailed: bool,
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

#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct State {
    pub hierarchy: BTreeMap<String, Hierarchy>,
    pub last_sync: Option<DateTime<Utc>>,
    pub slices: BTreeMap<u16, SliceState>,
    pub dead: BTreeMap<String, DeadState>,
    /// The xids bwmon's nftables maps held after the last update.
    pub classified: BTreeSet<u16>,
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
}

#[derive(Deserialize)]
struct VersionOnly {
    version: Option<u32>,
}

impl State {
    /// The file's text: YAML in its JSON-compatible flow style, one slice per
    /// line. Any YAML parser reads it; bwmon reads it back at JSON speed
    /// (serde-saphyr takes ~0.3 s for 4,000 slices, `serde_json` ~10 ms) and
    /// falls back to serde-saphyr for anything a person may have edited.
    pub fn to_yaml(&self) -> String {
        // About 330 bytes a slice: one allocation for the whole file.
        let mut out: Vec<u8> =
            Vec::with_capacity(512 + 400 * (self.slices.len() + self.dead.len()));
        out.extend_from_slice(b"# bwmon state: written by bwmon, do not edit while it runs\n");
        out.extend_from_slice(format!("{{\"version\": {VERSION}, \"last_sync\": ").as_bytes());
        line(&mut out, &self.last_sync);
        out.extend_from_slice(b",\n \"hierarchy\": ");
        line(&mut out, &self.hierarchy);
        out.extend_from_slice(b",\n \"classified\": ");
        line(&mut out, &self.classified);
        out.extend_from_slice(b",\n \"slices\": [");
        for (i, s) in self.slices.values().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n  " } else { b",\n  " });
            line(&mut out, s);
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
        let bad = |msg: String| Fatal::BadData(format!("state file {}: {msg}", what.display()));
        // The fast path: the file as bwmon writes it, read as JSON once the
        // comment lines are skipped.
        let body = text.trim_start_matches(|c: char| c.is_whitespace());
        let body = skip_comment_lines(body);
        let disk = match serde_json::from_str::<Disk>(body) {
            Ok(d) if d.version == VERSION => d,
            _ => Self::from_any_yaml(text).map_err(bad)?,
        };
        let mut state = State {
            hierarchy: disk.hierarchy,
            classified: disk.classified,
            last_sync: disk.last_sync,
            ..State::default()
        };
        for s in disk.slices {
            if s.xid > DEFAULT_XID {
                return Err(bad(format!(
                    "slice {} has xid {} beyond 4095",
                    s.name, s.xid
                )));
            }
            if state.slices.insert(s.xid, s).is_some() {
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

fn skip_comment_lines(mut text: &str) -> &str {
    while text.starts_with('#') {
        text = text.split_once('\n').map_or("", |(_, rest)| rest);
        text = text.trim_start();
    }
    text
}

/// One value as one line of JSON (which is YAML flow style).
fn line<T: Serialize>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value)
        .unwrap_or_else(|e| unreachable!("state always serialises: {e}"));
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
            let noted = fs::read_to_string(self.last_sync_path())
                .ok()
                .and_then(|t| DateTime::parse_from_rfc3339(t.trim()).ok())
                .map(|t| t.with_timezone(&Utc));
            s.last_sync = s.last_sync.max(noted);
        }
        Ok(state)
    }

    /// Notes a completed sync. Not fsynced: losing it loses only a timestamp.
    pub fn note_sync(&self, now: DateTime<Utc>) -> Result<(), Fatal> {
        let path = self.last_sync_path();
        let tmp = with_suffix(&path, ".tmp");
        fs::write(
            &tmp,
            format!(
                "{}\n",
                now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        )
        .and_then(|()| fs::rename(&tmp, &path))
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
        let dir = match self.path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = with_suffix(&self.path, ".tmp");
        let mut file = File::create(&tmp).map_err(|e| io("create", &tmp, e))?;
        file.write_all(state.to_yaml().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| io("write", &tmp, e))?;
        drop(file);
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
        fs::rename(&tmp, &self.path).map_err(|e| io("replace", &self.path, e))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("sync directory", &dir, e))?;
        Ok(())
    }
}

fn read_state(path: &Path) -> Result<Option<State>, Fatal> {
    match fs::read_to_string(path) {
        Ok(text) => State::from_yaml(&text, path).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Fatal::BadData(format!(
            "state file {}: not UTF-8 text",
            path.display()
        ))),
        Err(e) => Err(Fatal::Io(format!(
            "cannot read state file {}: {e}",
            path.display()
        ))),
    }
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;

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
            SliceState {
                name: "pl_alice".into(),
                xid: 257,
                start,
                mailed: true,
                lo: class.clone(),
                i2: class,
            },
        );
        s.dead.insert(
            "pl_bob".into(),
            DeadState {
                name: "pl_bob".into(),
                start,
                lo: Bytes(7),
                i2: Bytes(0),
                mailed: false,
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

    #[test]
    fn truncated_state_is_bad_data() {
        let text = sample().to_yaml();
        let cut = &text[..text.len() / 2];
        let err = State::from_yaml(cut, Path::new("s"));
        assert!(matches!(err, Err(Fatal::BadData(_))), "{err:?}");
    }
}
