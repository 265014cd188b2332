//! The node the command-line and robustness tests work on: a [`Sandbox`] (its
//! own network namespace, bwmon's hierarchy on that namespace's `lo`) with a
//! config sized so that real traffic of a few MB crosses a threshold, and what
//! those tests compare a run against: a [`Snapshot`] of everything a run may
//! change — state and backup bytes, the kernel's classes and qdiscs (without
//! statistics), bwmon's nft table, the mails.
//!
//! Nothing here depends on how bwmon talks to the kernel (tc processes until
//! issue 10, rtnetlink after it): the effects are read back with `tc` and `nft`,
//! run by the test itself.

use super::{Sandbox, Settings, T0, assert_exit, file_names, one_error_line};
use std::collections::BTreeMap;
use std::fs;
use std::process::Output;

/// Node cap given to `init` (ceil of 1:10), so every slice's low max rate.
pub const BWCAP: &str = "500mbit";
pub const BWCAP_BITS: u64 = 500_000_000;
/// bwmax (the default): every slice's i2 max rate.
pub const BWMAX_BITS: u64 = 1_000_000_000;
/// bwmin: every slice's min rate, and the floor of a cap.
pub const MIN_RATE: u64 = 1000;
/// `defaults.max_kbyte` and `max_i2_kbyte` of the node's config: 16 MiB.
pub const QUOTA_KIB: u64 = 16_384;
pub const QUOTA: u64 = QUOTA_KIB * 1024;
/// `defaults.thresh_percent`: low, so that a few MB cross the threshold while
/// the cap formula, even late in the day, stays above min rate.
pub const THRESH_PERCENT: u64 = 10;
pub const THRESH: u64 = QUOTA * THRESH_PERCENT / 100;

/// Payload of the datagrams [`Sandbox::over_threshold`] sends.
pub const BIG_PAYLOAD: usize = 60_000;
/// How many: 34 × 60,042 B = 2,041,428 B on the wire, over [`THRESH`].
pub const OVER_PACKETS: usize = 34;
/// What [`Sandbox::over_threshold`] adds to a class's counter.
pub const OVER: u64 = OVER_PACKETS as u64 * wire(BIG_PAYLOAD as u64);
// The traffic of `over_threshold` crosses the threshold and stays under the quota.
const _: () = assert!(OVER >= THRESH && OVER < QUOTA);

/// Payload of the datagrams [`Sandbox::push`] sends.
pub const SMALL_PAYLOAD: usize = 1000;

/// Bytes one datagram of `payload` bytes occupies in an HTB class on `lo`
/// (payload + UDP 8 + IPv4 20 + Ethernet 14).
pub const fn wire(payload: u64) -> u64 {
    payload + 42
}

/// The node's config: quotas of [`QUOTA_KIB`], threshold [`THRESH_PERCENT`],
/// `classify: none` (no nft table: packets find their class by `SO_PRIORITY`),
/// `lock_wait: 200ms`.
pub fn settings() -> Settings {
    settings_with("")
}

/// As [`settings`], with `extra` YAML after the `mail:` block.
pub fn settings_with(extra: &str) -> Settings {
    Settings {
        period: "1d",
        max_kbyte: QUOTA_KIB,
        max_i2_kbyte: QUOTA_KIB,
        thresh_percent: THRESH_PERCENT,
        lock_wait: "200ms",
        classify: Some("none"),
        extra: extra.to_string(),
    }
}

/// The kernel's view of the device, without statistics: every class line of
/// `tc -d class show dev lo` by minor, and the lines of `tc qdisc show dev lo`
/// (sorted, the root qdisc's `direct_packets_stat` counter taken out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    pub classes: BTreeMap<u32, String>,
    pub qdiscs: Vec<String>,
}

impl Shape {
    /// What differs from `before`, one line per class or qdisc (empty: nothing).
    pub fn changes_since(&self, before: &Shape) -> Vec<String> {
        let mut v = Vec::new();
        for (minor, line) in &before.classes {
            match self.classes.get(minor) {
                None => v.push(format!("removed: {line}")),
                Some(now) if now != line => v.push(format!("changed: {line}\n      to: {now}")),
                Some(_) => {}
            }
        }
        for (minor, line) in &self.classes {
            if !before.classes.contains_key(minor) {
                v.push(format!("added: {line}"));
            }
        }
        for q in &before.qdiscs {
            if !self.qdiscs.contains(q) {
                v.push(format!("qdisc gone: {q}"));
            }
        }
        for q in &self.qdiscs {
            if !before.qdiscs.contains(q) {
                v.push(format!("qdisc new: {q}"));
            }
        }
        v
    }

    /// The minors of the classes that were added, removed or changed.
    pub fn changed_minors(&self, before: &Shape) -> Vec<u32> {
        let all: std::collections::BTreeSet<u32> = before
            .classes
            .keys()
            .chain(self.classes.keys())
            .copied()
            .collect();
        all.into_iter()
            .filter(|m| before.classes.get(m) != self.classes.get(m))
            .collect()
    }
}

/// Everything a run that must change nothing has to leave as it was.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub state: Option<Vec<u8>>,
    pub backup: Option<Vec<u8>>,
    pub shape: Shape,
    /// `nft list table inet bwmon` (its error text when there is none).
    pub nft: String,
    /// File names in the mail directory.
    pub mails: Vec<String>,
}

impl Sandbox {
    /// Takes the qdisc handle `minor:` by making it the leaf of the default
    /// class 1:1fff: the kernel then refuses the leaf of the slice class
    /// `1:minor` ("Cannot move an existing qdisc to a different parent").
    pub fn take_leaf_handle(&self, minor: u32) {
        let handle = format!("{minor:x}:");
        self.ns
            .tc(&["qdisc", "del", "dev", "lo", "parent", "1:1fff"]);
        self.ns.tc(&[
            "qdisc", "add", "dev", "lo", "parent", "1:1fff", "handle", &handle, "pfifo",
        ]);
    }

    /// Gives the default class its own leaf handle back.
    pub fn free_leaf_handle(&self) {
        self.ns
            .tc(&["qdisc", "del", "dev", "lo", "parent", "1:1fff"]);
        self.ns.tc(&[
            "qdisc", "add", "dev", "lo", "parent", "1:1fff", "handle", "1fff:", "pfifo",
        ]);
    }

    /// A node with the [`settings`] config, no hierarchy yet (`None`: the
    /// real-kernel tests cannot run here, see `require_root`).
    pub fn node() -> Option<Sandbox> {
        Sandbox::new(&settings())
    }

    /// As [`Sandbox::node`], with bwmon's hierarchy ([`Sandbox::init_node`]).
    pub fn node_inited() -> Option<Sandbox> {
        let f = Sandbox::node()?;
        f.init_node();
        Some(f)
    }

    /// As [`Sandbox::node`], with `extra` YAML after the `mail:` block.
    pub fn node_with(extra: &str) -> Option<Sandbox> {
        Sandbox::new(&settings_with(extra))
    }

    /// `bwmon init --bwcap 500mbit` at `T0`, which must succeed.
    pub fn init_node(&self) {
        self.init(T0, Some(BWCAP));
    }

    /// `bwmon -c CONFIG --dev lo --now NOW ARGS...` with raw `stdin`.
    pub fn run(&self, now: &str, args: &[&str], stdin: &[u8]) -> Output {
        self.run_env(now, args, stdin, &[])
    }

    /// The `Sent` counter of class `1:minor` once its backlog drained.
    pub fn sent(&self, minor: u32) -> u64 {
        self.ns.wait_drained(minor)
    }

    /// Sends `packets` datagrams of [`SMALL_PAYLOAD`] bytes into class
    /// `1:minor`; returns its counter afterwards.
    pub fn push(&self, minor: u32, packets: usize) -> u64 {
        self.ns.send(minor, packets, SMALL_PAYLOAD)
    }

    /// Sends [`OVER`] bytes into class `1:minor`; returns its counter afterwards.
    pub fn over_threshold(&self, minor: u32) -> u64 {
        self.ns.send(minor, OVER_PACKETS, BIG_PAYLOAD)
    }

    pub fn shape(&self) -> Shape {
        let classes = self
            .ns
            .tc(&["-d", "class", "show", "dev", "lo"])
            .lines()
            .filter(|l| l.starts_with("class "))
            .map(|l| {
                let id = l.split_whitespace().nth(2).unwrap_or_default();
                let minor = id
                    .split_once(':')
                    .and_then(|(_, m)| u32::from_str_radix(m, 16).ok())
                    .unwrap_or_else(|| panic!("class line without a classid: {l}"));
                (minor, l.trim_end().to_string())
            })
            .collect();
        let mut qdiscs: Vec<String> = self
            .ns
            .tc(&["qdisc", "show", "dev", "lo"])
            .lines()
            .filter(|l| l.starts_with("qdisc "))
            .map(|l| {
                let mut words: Vec<&str> = l.split_whitespace().collect();
                if let Some(i) = words.iter().position(|w| *w == "direct_packets_stat") {
                    words.drain(i..(i + 2).min(words.len()));
                }
                words.join(" ")
            })
            .collect();
        qdiscs.sort();
        Shape { classes, qdiscs }
    }

    /// File names in the mail directory, sorted.
    pub fn mail_files(&self) -> Vec<String> {
        file_names(&self.maildir)
    }

    /// Each mail's text (`N.msg`), in order.
    pub fn mail_texts(&self) -> Vec<String> {
        self.mails().into_iter().map(|m| m.message).collect()
    }

    /// How many mails were about slice `name`.
    pub fn mails_about(&self, name: &str) -> usize {
        let subject = format!("Subject: pl_mom capped bandwidth of slice {name} on ");
        self.mail_texts()
            .iter()
            .filter(|m| m.contains(&subject))
            .count()
    }

    pub fn snapshot(&self) -> Snapshot {
        let nft = self
            .ns
            .command("nft")
            .args(["list", "table", "inet", "bwmon"])
            .output()
            .map_or_else(
                |e| format!("nft: {e}"),
                |o| {
                    String::from_utf8_lossy(&o.stdout).into_owned()
                        + &String::from_utf8_lossy(&o.stderr)
                },
            );
        Snapshot {
            state: fs::read(&self.state).ok(),
            backup: fs::read(self.bak()).ok(),
            shape: self.shape(),
            nft,
            mails: self.mail_files(),
        }
    }

    /// The refusal contract: `out` exited `code` with the one error line
    /// naming `names` ([`one_error_line`]), and the run left the node as in
    /// `before`. Returns the line.
    #[track_caller]
    pub fn assert_refused(
        &self,
        out: &Output,
        code: i32,
        names: &[&str],
        before: &Snapshot,
        what: &str,
    ) -> String {
        assert_exit(out, code, what);
        let line = one_error_line(out, names, what);
        self.assert_unchanged(before, what);
        line
    }

    /// State, backup, the kernel's classes and qdiscs, the nft table and the
    /// mails are as in `before`.
    #[track_caller]
    pub fn assert_unchanged(&self, before: &Snapshot, what: &str) {
        let now = self.snapshot();
        assert!(
            now.state == before.state,
            "{what}: the state file changed (or appeared or vanished)"
        );
        assert!(
            now.backup == before.backup,
            "{what}: the state backup changed"
        );
        let changes = now.shape.changes_since(&before.shape);
        assert!(
            changes.is_empty(),
            "{what}: the kernel changed:\n  {}",
            changes.join("\n  ")
        );
        assert_eq!(now.nft, before.nft, "{what}: the nft table changed");
        assert_eq!(now.mails, before.mails, "{what}: a mail was sent");
    }
}
