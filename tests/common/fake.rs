//! The stand-in kernel behind `tests/fixtures/fake-tc`, for the tests of the
//! tc-process path only (`tests/tc_process.rs`, which goes away with issue 10's
//! switch to rtnetlink). Every other test works on a real kernel in a network
//! namespace (`super::node`).
//!
//! The stand-in only prints `dump.txt` and records what it is fed; to keep runs
//! realistic, [`Fake`] holds a small model of the kernel's HTB classes, applies
//! the lines of every batch bwmon sent to it (like the kernel would), and writes
//! the model back to `dump.txt` as iproute2 6.1 prints it. Time comes only from
//! `--now`.

#![allow(dead_code)] // each test binary uses its own part of the model

use super::{BWMON, T0, assert_exit};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const DEV: &str = "eth9";

/// Node cap of the fake hierarchy (ceil of 1:10), so every slice's low max rate.
pub const BWCAP: u64 = 100_000_000;
pub const BWMAX: u64 = 1_000_000_000;

// ---------------------------------------------------------------------------
// A model of the kernel's HTB classes behind the fake tc

#[derive(Clone, Debug)]
pub struct FakeClass {
    /// `None` for 1:1 (under the qdisc).
    pub parent: Option<String>,
    pub rate: u64,
    pub ceil: u64,
    pub quantum: Option<u64>,
    pub sent: u64,
    pub leaf: bool,
}

/// A temp dir with the fake tc's files, a config and a capturing sendmail.
pub struct Fake {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub maildir: PathBuf,
    /// classid ("1:1101") → class.
    pub classes: BTreeMap<String, FakeClass>,
    /// Has a root HTB qdisc at all.
    pub qdisc: bool,
    /// Bytes of batch.txt already applied to the model.
    pub batch_seen: usize,
}

pub fn fake_tc() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fake-tc")
}

impl Fake {
    /// The hierarchy `bwmon init --bwcap 100mbit` builds (SPEC §4), with the
    /// default xid's classes, and a config pointing at the fake tc.
    pub fn new() -> Fake {
        Fake::with_config("")
    }

    /// As [`Fake::new`], with `extra` YAML appended to the config.
    pub fn with_config(extra: &str) -> Fake {
        let dir = tempfile::Builder::new()
            .prefix("bwmon-cli-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        let maildir = root.join("mail");
        fs::create_dir(&maildir).unwrap();
        let sendmail = root.join("sendmail");
        let capture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sendmail-capture");
        fs::write(
            &sendmail,
            format!(
                "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
                capture.display(),
                maildir.display()
            ),
        )
        .unwrap();
        fs::set_permissions(&sendmail, fs::Permissions::from_mode(0o755)).unwrap();
        let state = root.join("state.yaml");
        let config = root.join("bwmon.yaml");
        fs::write(
            &config,
            format!(
                "dev: {DEV}\ntc: {tc}\nclassify: none\nstate_file: {state}\nlock_wait: 200ms\n\
                 mail:\n  enabled: true\n  sendmail: {sendmail}\n  from: support@example.org\n  \
                 name: ExampleLab\n  list: mom@example.org\n  \
                 slice_address: SLICE@slices.example.org\n  hostname: node1.example.org\n{extra}",
                tc = fake_tc().display(),
                state = state.display(),
                sendmail = sendmail.display(),
            ),
        )
        .unwrap();
        let mut fake = Fake {
            dir,
            config,
            state,
            maildir,
            classes: BTreeMap::new(),
            qdisc: false,
            batch_seen: 0,
        };
        fake.build_hierarchy();
        fake.write_dump();
        fake
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn build_hierarchy(&mut self) {
        self.qdisc = true;
        let interior = |parent: Option<&str>, rate, ceil| FakeClass {
            parent: parent.map(str::to_string),
            rate,
            ceil,
            quantum: None,
            sent: 0,
            leaf: false,
        };
        self.classes
            .insert("1:1".into(), interior(None, BWMAX, BWMAX));
        self.classes
            .insert("1:10".into(), interior(Some("1:1"), 1000, BWCAP));
        self.classes
            .insert("1:100".into(), interior(Some("1:10"), 1000, BWCAP));
        self.classes
            .insert("1:20".into(), interior(Some("1:1"), 1000, BWMAX));
        for (id, parent, ceil) in [("1:1fff", "1:100", BWCAP), ("1:2fff", "1:20", BWMAX)] {
            self.classes.insert(
                id.into(),
                FakeClass {
                    parent: Some(parent.into()),
                    rate: 1000,
                    ceil,
                    quantum: Some(1600),
                    sent: 0,
                    leaf: true,
                },
            );
        }
    }

    /// Writes the model to `dump.txt` / `qdisc.txt` as iproute2 6.1 prints them.
    pub fn write_dump(&self) {
        let mut text = String::new();
        for (id, c) in &self.classes {
            let minor = id.split_once(':').unwrap().1;
            let place = match &c.parent {
                None => "root".to_string(),
                Some(p) => format!("parent {p}"),
            };
            let leaf = if c.leaf {
                format!(" leaf {minor}:")
            } else {
                String::new()
            };
            let quantum = match c.quantum {
                Some(q) if c.leaf => format!(" prio 0 quantum {q}"),
                _ => String::new(),
            };
            let _ = write!(
                text,
                "class htb {id} {place}{leaf}{quantum} rate {} ceil {} linklayer ethernet burst 1600b/1 mpu 0b cburst 1600b/1 mpu 0b level {} \n \
                 Sent {} bytes {} pkt (dropped 0, overlimits 0 requeues 0) \n \
                 backlog 0b 0p requeues 0\n \
                 lended: 0 borrowed: 0 giants: 0\n \
                 tokens: 200000 ctokens: 200000\n\n",
                tc_print_rate(c.rate),
                tc_print_rate(c.ceil),
                if c.leaf { 0 } else { 7 },
                c.sent,
                c.sent / 100,
            );
        }
        fs::write(self.path("dump.txt"), text).unwrap();
        let qdisc = if self.qdisc {
            "qdisc htb 1: root refcnt 2 r2q 10 default 0x1fff direct_packets_stat 0 direct_qlen 1000\n"
        } else {
            "qdisc noqueue 0: root refcnt 2\n"
        };
        fs::write(self.path("qdisc.txt"), qdisc).unwrap();
    }

    /// The batch text sent since the last call (and applies it to the model,
    /// except the 1-based line numbers in `refused`, then rewrites the dump).
    pub fn take_batch(&mut self, refused: &[usize]) -> String {
        let all = fs::read_to_string(self.path("batch.txt")).unwrap_or_default();
        let new = all[self.batch_seen..].to_string();
        self.batch_seen = all.len();
        for (i, line) in new.lines().enumerate() {
            if !refused.contains(&(i + 1)) {
                self.apply_line(line);
            }
        }
        self.write_dump();
        new
    }

    pub fn apply_line(&mut self, line: &str) {
        let w: Vec<&str> = line.split_whitespace().collect();
        let after = |key: &str| {
            w.iter()
                .position(|x| *x == key)
                .and_then(|i| w.get(i + 1))
                .map(|s| (*s).to_string())
        };
        match (w.first().copied(), w.get(1).copied()) {
            (Some("class"), Some("add" | "change" | "replace")) => {
                let id = after("classid").expect("classid");
                let parent = after("parent").filter(|p| p != "1:");
                let old_sent = self.classes.get(&id).map_or(0, |c| c.sent);
                let leaf = self.classes.get(&id).is_some_and(|c| c.leaf);
                self.classes.insert(
                    id,
                    FakeClass {
                        parent,
                        rate: parse_batch_rate(&after("rate").expect("rate")),
                        ceil: parse_batch_rate(&after("ceil").expect("ceil")),
                        quantum: after("quantum").map(|q| q.parse().expect("quantum")),
                        sent: old_sent,
                        leaf,
                    },
                );
            }
            (Some("class"), Some("del")) => {
                self.classes.remove(&after("classid").expect("classid"));
            }
            (Some("qdisc"), Some("add" | "replace")) if w.contains(&"root") => self.qdisc = true,
            (Some("qdisc"), Some("add")) => {
                if let Some(c) = after("parent").and_then(|p| self.classes.get_mut(&p)) {
                    c.leaf = true;
                }
            }
            (Some("qdisc"), Some("del")) if w.contains(&"root") => {
                self.qdisc = false;
                self.classes.clear();
            }
            _ => panic!("the fake kernel does not know this batch line: {line:?}"),
        }
    }

    /// Sets the `Sent` counter of class `1:minor` in the dump.
    pub fn set_sent(&mut self, minor: u32, bytes: u64) {
        let id = format!("1:{minor:x}");
        self.classes
            .get_mut(&id)
            .unwrap_or_else(|| panic!("no class {id} in the fake kernel"))
            .sent = bytes;
        self.write_dump();
    }

    /// `bwmon -c CONFIG --now NOW ARGS...` with `FAKE_TC_DIR` set, `RUST_LOG` unset.
    pub fn run(&self, now: &str, args: &[&str], stdin: &[u8]) -> Output {
        self.run_env(now, args, stdin, &[])
    }

    pub fn run_env(&self, now: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(BWMON);
        cmd.arg("-c")
            .arg(&self.config)
            .args(["--now", now])
            .args(args)
            .env("FAKE_TC_DIR", self.dir.path())
            .env_remove("RUST_LOG");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run(cmd, args, stdin)
    }

    /// `bwmon init` (must succeed; its batch is applied to the model).
    pub fn init(&mut self) {
        let out = self.run(T0, &["init"], b"");
        assert_exit(&out, 0, "init");
        self.take_batch(&[]);
    }

    /// `bwmon sync` that must exit 0; its batch is applied to the model.
    pub fn sync(&mut self, now: &str, slivers: &str) -> (Output, String) {
        let out = self.run(now, &["sync"], slivers.as_bytes());
        assert_exit(&out, 0, "sync");
        let batch = self.take_batch(&[]);
        (out, batch)
    }

    pub fn calls(&self) -> Vec<String> {
        fs::read_to_string(self.path("calls.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    pub fn batch_calls(&self) -> usize {
        self.calls().iter().filter(|c| c.contains("-batch")).count()
    }

    pub fn mail_files(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.maildir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// What "nothing changed" is compared against.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            state: fs::read(&self.state).ok(),
            backup: fs::read(self.bak()).ok(),
            batch: fs::read(self.path("batch.txt")).ok(),
            batch_calls: self.batch_calls(),
            mails: self.mail_files(),
        }
    }

    pub fn bak(&self) -> PathBuf {
        let mut p = self.state.as_os_str().to_owned();
        p.push(".bak");
        PathBuf::from(p)
    }

    pub fn lock_path(&self) -> PathBuf {
        let mut p = self.state.as_os_str().to_owned();
        p.push(".lock");
        PathBuf::from(p)
    }

    #[track_caller]
    pub fn assert_unchanged(&self, before: &Snapshot, what: &str) {
        let now = self.snapshot();
        assert!(
            now.state == before.state,
            "{what}: the state file changed (or appeared)"
        );
        assert!(
            now.backup == before.backup,
            "{what}: the state backup changed"
        );
        assert_eq!(
            now.batch_calls,
            before.batch_calls,
            "{what}: a tc batch was run: {:?}",
            self.calls()
        );
        assert!(
            now.batch == before.batch,
            "{what}: batch lines were sent to tc"
        );
        assert_eq!(now.mails, before.mails, "{what}: a mail was sent");
    }
}

#[derive(Debug)]
pub struct Snapshot {
    pub state: Option<Vec<u8>>,
    pub backup: Option<Vec<u8>>,
    pub batch: Option<Vec<u8>>,
    pub batch_calls: usize,
    pub mails: Vec<String>,
}

/// Runs `cmd` with `stdin`, logs it on the test's stderr.
pub fn run(mut cmd: Command, args: &[&str], stdin: &[u8]) -> Output {
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bwmon");
    let mut child_in = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = child_in.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait bwmon");
    let _ = writer.join();
    eprintln!(
        "$ bwmon {} -> {:?}\n  stdout: {}\n  stderr: {}",
        args.join(" "),
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    out
}

/// How tc (iproute2 6.1, `sprint_rate`) prints a rate: the kernel keeps bytes/s;
/// the unit steps up while the figure divides exactly or is 1000 units or more.
pub fn tc_print_rate(bits: u64) -> String {
    let mut rate = bits / 8 * 8;
    let units = ["", "K", "M", "G", "T"];
    let mut i = 0;
    while i < units.len() - 1 {
        if rate < 1000 || (!rate.is_multiple_of(1000) && rate < 1_000_000) {
            break;
        }
        rate /= 1000;
        i += 1;
    }
    format!("{rate}{}bit", units[i])
}

/// A rate as bwmon writes it into a batch (`1000bit`, `100kbit`, `1.5mbit`).
pub fn parse_batch_rate(text: &str) -> u64 {
    let lower = text.to_ascii_lowercase();
    let end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(end);
    let num: f64 = num.parse().unwrap_or_else(|_| panic!("rate {text:?}"));
    let mult = match unit {
        "bit" | "" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "kibit" => 1024.0,
        "mibit" => 1_048_576.0,
        "gibit" => 1_073_741_824.0,
        "bps" => 8.0,
        "kbps" => 8e3,
        "mbps" => 8e6,
        _ => panic!("unknown rate unit in batch line: {text:?}"),
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let r = (num * mult).round() as u64;
    r
}
