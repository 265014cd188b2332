//! bwmon's nftables table `inet bwmon`: what makes the caps bite on a stock
//! kernel. An output-hook chain sets each packet's priority (the HTB class it
//! lands in) from a map keyed by the sending socket's uid (`classify: uid`) or
//! by the packet mark (`classify: mark`): xid → 1:(1000|xid), or 1:(2000|xid)
//! for destinations in the exempt set. The whole table is rewritten in one
//! `nft -f -` transaction, so an update applies entirely or not at all.

use crate::config::{Classify, Prefix};
use crate::error::Fatal;
use crate::policy::Kind;
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const TABLE: &str = "inet bwmon";

mod elements;

/// The xids the `low` map holds now, read from the kernel in-process; an
/// empty set when there is no table.
pub fn classified() -> Result<BTreeSet<u16>, Unreadable> {
    elements::map_keys("bwmon", "low")
}

#[derive(Clone, Debug)]
pub struct Nft {
    pub path: PathBuf,
}

impl Nft {
    pub fn new(configured: &Path) -> Result<Nft, Fatal> {
        find_program(configured).map(|path| Nft { path }).ok_or_else(|| {
            Fatal::Unavailable(format!(
                "{} not found (as given, or on PATH, /usr/sbin, /sbin): install the nftables package (or set `classify: none` and classify packets yourself)",
                configured.display()
            ))
        })
    }

    /// Runs one script as one transaction.
    pub fn apply(&self, script: &str) -> Result<(), String> {
        let mut child = Command::new(&self.path)
            .args(["-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", self.path.display()))?;
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(script.as_bytes());
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("waiting for {}: {e}", self.path.display()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "nft refused the {TABLE} table: {}",
                first_line(&String::from_utf8_lossy(&out.stderr))
            ))
        }
    }

    /// Removes the table (teardown); no table is no error.
    pub fn delete(&self) -> Result<(), String> {
        self.apply(&format!("add table {TABLE}\ndelete table {TABLE}\n"))
    }
}

/// Why the maps could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// One line: which nft, and the first line of what it said.
    pub message: String,
    /// The kernel refused to show the ruleset to a caller without
    /// `CAP_NET_ADMIN`, as it does to every non-root user.
    pub not_permitted: bool,
}

/// The whole table, recreated in one transaction with the given slices.
pub fn table_script(mode: Classify, exempt: &[Prefix], xids: &BTreeSet<u16>) -> String {
    let (key_type, key) = match mode {
        Classify::Mark => ("mark", "meta mark"),
        Classify::Uid | Classify::None => ("uid", "meta skuid"),
    };
    let elements = |kind: Kind| {
        let items: Vec<String> = xids
            .iter()
            .map(|&x| format!("{x} : {}", kind.class_id(x)))
            .collect();
        if items.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", items.join(", "))
        }
    };
    let set = |v4: bool| {
        let items: Vec<String> = exempt
            .iter()
            .filter(|p| p.is_v4() == v4)
            .map(ToString::to_string)
            .collect();
        if items.is_empty() {
            String::new()
        } else {
            format!(" elements = {{ {} }};", items.join(", "))
        }
    };
    let mut s = String::new();
    // `add` then `delete` then the table: idempotent whether or not it exists.
    let _ = writeln!(
        s,
        "add table {TABLE}\ndelete table {TABLE}\ntable {TABLE} {{"
    );
    let _ = writeln!(
        s,
        "  set exempt4 {{ type ipv4_addr; flags interval;{} }}",
        set(true)
    );
    let _ = writeln!(
        s,
        "  set exempt6 {{ type ipv6_addr; flags interval;{} }}",
        set(false)
    );
    let _ = writeln!(
        s,
        "  map low {{ type {key_type} : classid;{} }}",
        elements(Kind::Low)
    );
    let _ = writeln!(
        s,
        "  map i2 {{ type {key_type} : classid;{} }}",
        elements(Kind::I2)
    );
    let _ = writeln!(s, "  chain out {{");
    let _ = writeln!(s, "    type filter hook output priority 0; policy accept;");
    let _ = writeln!(
        s,
        "    ip daddr @exempt4 meta priority set {key} map @i2 accept"
    );
    let _ = writeln!(
        s,
        "    ip6 daddr @exempt6 meta priority set {key} map @i2 accept"
    );
    let _ = writeln!(s, "    meta priority set {key} map @low");
    let _ = writeln!(s, "  }}\n}}");
    s
}

/// A program named in the config: a path as given, a bare name looked up on
/// PATH and in the sbin directories cron's PATH lacks.
pub fn find_program(configured: &Path) -> Option<PathBuf> {
    if configured.components().count() > 1 {
        return configured.is_file().then(|| configured.to_path_buf());
    }
    let dirs = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&dirs)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(configured))
        .find(|p| p.is_file())
}

/// The first non-blank line of a program's stderr, for a one-line message.
pub fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_maps_xids_to_their_classes() {
        let xids: BTreeSet<u16> = [0x101, 0xffe].into_iter().collect();
        let exempt = [
            Prefix::parse("127.0.0.2").expect("valid"),
            Prefix::parse("2001:db8::/32").expect("valid"),
        ];
        let s = table_script(Classify::Uid, &exempt, &xids);
        assert!(
            s.contains(
                "map low { type uid : classid; elements = { 257 : 1:1101, 4094 : 1:1ffe }; }"
            ),
            "{s}"
        );
        assert!(
            s.contains(
                "map i2 { type uid : classid; elements = { 257 : 1:2101, 4094 : 1:2ffe }; }"
            ),
            "{s}"
        );
        assert!(s.contains("elements = { 127.0.0.2/32 }"), "{s}");
        assert!(s.contains("elements = { 2001:db8::/32 }"), "{s}");
        assert!(s.contains("meta priority set meta skuid map @low"), "{s}");
        let m = table_script(Classify::Mark, &[], &BTreeSet::new());
        assert!(m.contains("map low { type mark : classid; }"), "{m}");
        assert!(m.contains("meta priority set meta mark map @low"), "{m}");
    }
}
