//! The one fixture of the integration tests: a throw-away network namespace
//! per test, a sandbox directory with config, state, a counting `tc` wrapper
//! and a capturing `sendmail`, a sender that puts real packets into a slice's
//! HTB class, readers for what the kernel then shows, runners for the binary
//! and the assertions every test file makes on what a run printed.
//!
//! Everything happens inside namespaces named `bwt-<pid>-<n>` on their own `lo`:
//! the host's interfaces are never touched.
//!
//! [`node`] is the node the command-line and robustness tests share (a config
//! sized for real traffic, and the [`node::Snapshot`] a run that must change
//! nothing is checked against); [`mid`] is the mid-sized quota of the kernel
//! and operator tests, which real traffic crosses within a day; [`rtnl_log`]
//! is the kernel's record of the rtnetlink requests made in a namespace,
//! whoever makes them.

#![allow(dead_code)] // each test binary uses its own part of the harness

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Once, OnceLock};
use std::time::{Duration, Instant};

/// `or_skip!(fixture)`: the fixture, or a return from the test when it is
/// `None` (it cannot run here: see [`require_root`], which has already failed
/// the test under CI). One line for the let-else every test opens with.
#[allow(unused_macros)] // packaging.rs skips without it
macro_rules! or_skip {
    ($fixture:expr) => {
        match $fixture {
            Some(fixture) => fixture,
            None => return,
        }
    };
}
#[allow(unused_imports)]
pub(crate) use or_skip;

/// The binary under test.
pub const BWMON: &str = env!("CARGO_BIN_EXE_bwmon");
/// The crate's root: where `dist/`, `doc/` and the fixtures are.
pub const CRATE: &str = env!("CARGO_MANIFEST_DIR");

/// How long one bwmon run may take before the test calls it hung.
const RUN_TIMEOUT: Duration = Duration::from_mins(1);

static NS_COUNTER: AtomicUsize = AtomicUsize::new(0);
static SWEEP: Once = Once::new();

// ---------------------------------------------------------------------------
// Root / skipping

/// Whether the real-kernel tests can run here. Not root, or no network
/// namespaces: under CI (`CI=true`) that is a failure (panic); elsewhere a line
/// on stderr and `false`, so the test returns early.
pub fn require_root() -> bool {
    static PROBE: OnceLock<Option<String>> = OnceLock::new();
    let reason = PROBE.get_or_init(|| {
        if nix::unistd::geteuid().is_root() {
            match Netns::new() {
                Ok(_probe) => None,
                Err(e) => Some(format!("cannot create a network namespace: {e}")),
            }
        } else {
            Some("not running as root".to_string())
        }
    });
    match reason {
        None => true,
        Some(why) => skip_or_fail("real-kernel test", why),
    }
}

/// A `what` (e.g. "real-kernel test") that cannot run here: under CI
/// (`CI=true`) a failure, so a broken runner is never a green one; elsewhere a
/// line on stderr and `false`, for the test to return early.
pub fn skip_or_fail(what: &str, why: &str) -> bool {
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "{what} cannot run under CI: {why}"
    );
    eprintln!("skipping {what}: {why} (set CI=true to make this a failure)");
    false
}

// ---------------------------------------------------------------------------
// Network namespace guard

/// A network namespace with `lo` up, deleted on drop (also when the test panics).
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new() -> Result<Netns, String> {
        SWEEP.call_once(sweep_stale_namespaces);
        let n = NS_COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("bwt-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .map_err(|e| format!("ip netns add: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip netns add {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let ns = Netns { name };
        let out = Command::new("ip")
            .args(["-n", &ns.name, "link", "set", "lo", "up"])
            .output()
            .map_err(|e| format!("ip link set lo up: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "ip -n {} link set lo up: {}",
                ns.name,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(ns)
    }

    /// `ip netns exec NAME program args...`
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    /// Runs `tc ARGS` (the real one) in the namespace; panics when it fails.
    pub fn tc(&self, args: &[&str]) -> String {
        let out = self.command("tc").args(args).output().expect("spawn tc");
        assert!(
            out.status.success(),
            "tc {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("tc output is UTF-8")
    }

    /// Every HTB class on `lo`, by minor (the part after `1:`, as a number).
    /// Reads until the dump was not interrupted.
    pub fn classes(&self) -> BTreeMap<u32, Class> {
        for _ in 0..10 {
            let out = self
                .command("tc")
                .args(["-s", "-d", "class", "show", "dev", "lo"])
                .output()
                .expect("spawn tc");
            let stderr = String::from_utf8_lossy(&out.stderr);
            if stderr.contains("Dump was interrupted") {
                continue;
            }
            assert!(out.status.success(), "tc class show: {stderr}");
            return parse_classes(&String::from_utf8_lossy(&out.stdout));
        }
        panic!("tc class dump kept being interrupted");
    }

    /// One class (`minor` as in `0x1101`), if it exists.
    pub fn class(&self, minor: u32) -> Option<Class> {
        self.classes().remove(&minor)
    }

    /// `(rate text, ceil text, sent bytes)` of class `1:minor`.
    pub fn tc_class(&self, minor: u32) -> Option<(String, String, u64)> {
        self.class(minor).map(|c| (c.rate, c.ceil, c.sent))
    }

    /// Leaf qdiscs on `lo`: parent class id (e.g. "1:1101") → kind (e.g. "pfifo").
    pub fn qdiscs_by_parent(&self) -> BTreeMap<String, String> {
        let text = self.tc(&["qdisc", "show", "dev", "lo"]);
        let mut map = BTreeMap::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.first() != Some(&"qdisc") || words.len() < 3 {
                continue;
            }
            if let Some(p) = words
                .iter()
                .position(|w| *w == "parent")
                .and_then(|i| words.get(i + 1))
            {
                map.insert((*p).to_string(), words[1].to_string());
            }
        }
        map
    }

    /// The root qdisc line of `lo` (`tc qdisc show dev lo root`).
    pub fn root_qdisc(&self) -> String {
        self.tc(&["qdisc", "show", "dev", "lo", "root"])
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    }

    /// Sends `packets` UDP datagrams of `payload` bytes to 127.0.0.1:9 with
    /// `SO_PRIORITY = 0x10000 | minor`, so HTB files them straight into class
    /// `1:minor`. Waits until that class's backlog is empty and returns its
    /// `Sent` byte counter (the total, as the kernel counted it).
    pub fn send(&self, minor: u32, packets: usize, payload: usize) -> u64 {
        let path = format!("/run/netns/{}", self.name);
        let result = std::thread::spawn(move || -> Result<(), String> {
            // A thread's network namespace is its own: move only this thread.
            let ns = fs::File::open(&path).map_err(|e| format!("open {path}: {e}"))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns: {e}"))?;
            let sock = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
            let prio = i32::try_from(0x10000 | minor).expect("minor fits");
            nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Priority, &prio)
                .map_err(|e| format!("SO_PRIORITY: {e}"))?;
            // A blocking socket waits while its send buffer sits in the class's
            // queue; the timeout turns "class drains too slowly" into an error.
            sock.set_write_timeout(Some(Duration::from_secs(10)))
                .map_err(|e| e.to_string())?;
            let buf = vec![0x5a_u8; payload];
            for i in 0..packets {
                loop {
                    match sock.send_to(&buf, "127.0.0.1:9") {
                        Ok(_) => break,
                        // ICMP port unreachable from an earlier datagram: resend.
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
                        Err(e) => return Err(format!("send packet {i}: {e}")),
                    }
                }
                // Pace: a leaf's pfifo drops silently once full.
                if i % 16 == 15 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            Ok(())
        })
        .join()
        .expect("sender thread panicked");
        if let Err(e) = result {
            panic!("sending into 1:{minor:x} failed: {e}");
        }
        self.wait_drained(minor)
    }

    /// A UDP socket bound to 127.0.0.1:9 inside the namespace, where
    /// [`Netns::send`] sends: while it is open the kernel sends no ICMP "port
    /// unreachable" back through `lo` (those are rate-limited, so they would
    /// make the default class's counter vary). Its receive queue fills and the
    /// surplus is dropped after the HTB class counted it.
    pub fn udp_sink(&self) -> std::net::UdpSocket {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let f = fs::File::open(&path).expect("open netns");
            nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            std::net::UdpSocket::bind("127.0.0.1:9").expect("bind 127.0.0.1:9 in the namespace")
        })
        .join()
        .expect("sink thread")
    }

    /// Elements of bwmon's nft map `inet bwmon NAME`: key → classid text;
    /// `None` when the map (or the table) does not exist.
    pub fn nft_map(&self, name: &str) -> Option<BTreeMap<u64, String>> {
        let out = self
            .command("nft")
            .args(["-j", "list", "map", "inet", "bwmon", name])
            .output()
            .expect("spawn nft");
        if !out.status.success() {
            return None;
        }
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("nft -j is JSON");
        let map = v["nftables"]
            .as_array()
            .expect("nftables array")
            .iter()
            .find(|i| i.get("map").is_some())
            .expect("a map object")["map"]
            .clone();
        Some(
            map["elem"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|pair| {
                    (
                        pair[0].as_u64().expect("numeric key"),
                        pair[1].as_str().expect("classid").to_string(),
                    )
                })
                .collect(),
        )
    }

    /// Polls class `1:minor` until `backlog 0b 0p`; returns its `Sent` bytes.
    pub fn wait_drained(&self, minor: u32) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let class = self
                .class(minor)
                .unwrap_or_else(|| panic!("class 1:{minor:x} does not exist"));
            if class.backlog_bytes == 0 && class.backlog_packets == 0 {
                return class.sent;
            }
            assert!(
                Instant::now() < deadline,
                "class 1:{minor:x} did not drain: {class:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Namespaces of earlier test processes that were killed before their guards ran.
/// Only `bwt-<pid>-<n>` names whose process is gone: never anything else.
fn sweep_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix("bwt-") else {
            continue;
        };
        let Some((pid, n)) = rest.split_once('-') else {
            continue;
        };
        if pid.parse::<u32>().is_err() || n.parse::<u32>().is_err() {
            continue;
        }
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

// ---------------------------------------------------------------------------
// tc output

/// One HTB class as `tc -s -d class show` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Class {
    pub classid: String,
    /// `None` for a class directly under the qdisc (`root`).
    pub parent: Option<String>,
    pub leaf: Option<String>,
    pub rate: String,
    pub ceil: String,
    pub quantum: Option<u64>,
    /// The first `Sent N bytes` line.
    pub sent: u64,
    pub backlog_bytes: u64,
    pub backlog_packets: u64,
}

/// Parses `tc -s -d class show dev DEV` (htb classes only), keyed by minor.
pub fn parse_classes(text: &str) -> BTreeMap<u32, Class> {
    let mut map = BTreeMap::new();
    let mut current: Option<Class> = None;
    let mut seen_sent = false;
    let flush = |c: Option<Class>, map: &mut BTreeMap<u32, Class>| {
        if let Some(c) = c {
            let minor = c
                .classid
                .split_once(':')
                .and_then(|(_, m)| u32::from_str_radix(m, 16).ok())
                .unwrap_or_else(|| panic!("bad classid {}", c.classid));
            map.insert(minor, c);
        }
    };
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first() {
            Some(&"class") => {
                flush(current.take(), &mut map);
                seen_sent = false;
                if words.get(1) != Some(&"htb") {
                    continue;
                }
                let after = |key: &str| {
                    words
                        .iter()
                        .position(|w| *w == key)
                        .and_then(|i| words.get(i + 1))
                        .map(|s| (*s).to_string())
                };
                current = Some(Class {
                    classid: words[2].to_string(),
                    parent: after("parent"),
                    leaf: after("leaf"),
                    rate: after("rate").unwrap_or_default(),
                    ceil: after("ceil").unwrap_or_default(),
                    quantum: after("quantum").and_then(|q| q.parse().ok()),
                    sent: 0,
                    backlog_bytes: 0,
                    backlog_packets: 0,
                });
            }
            Some(&"Sent") if !seen_sent => {
                seen_sent = true;
                if let Some(c) = current.as_mut() {
                    c.sent = words[1].parse().expect("Sent N bytes");
                }
            }
            Some(&"backlog") => {
                if let Some(c) = current.as_mut() {
                    c.backlog_bytes = words[1].trim_end_matches('b').parse().unwrap_or(0);
                    c.backlog_packets = words[2].trim_end_matches('p').parse().unwrap_or(0);
                }
            }
            _ => {}
        }
    }
    flush(current.take(), &mut map);
    map
}

/// Parses a rate as tc prints it: `"1234Kbit"` → `(1234000, 1000)`, the value
/// and the unit it was printed in (tc truncates to that unit).
pub fn parse_rate(text: &str) -> (u64, u64) {
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or_else(|| panic!("rate without unit: {text:?}"));
    let (num, unit) = text.split_at(digits_end);
    let num: u64 = num.parse().unwrap_or_else(|_| panic!("bad rate {text:?}"));
    let mult = match unit {
        "bit" => 1,
        "Kbit" => 1_000,
        "Mbit" => 1_000_000,
        "Gbit" => 1_000_000_000,
        "Tbit" => 1_000_000_000_000,
        "Kibit" => 1 << 10,
        "Mibit" => 1 << 20,
        "Gibit" => 1 << 30,
        _ => panic!("unknown rate unit in {text:?}"),
    };
    (num * mult, mult)
}

/// Whether tc's printed `text` is what the kernel shows for a rate of
/// `expected` bit/s: the kernel keeps bytes/s (`expected / 8 * 8`), tc truncates
/// to its unit. `slack` bit/s either way absorbs integer rounding in the formula.
pub fn rate_matches(text: &str, expected: u64, slack: u64) -> bool {
    let (printed, unit) = parse_rate(text);
    let effective = expected / 8 * 8;
    effective + slack >= printed && effective < printed + unit + slack
}

#[track_caller]
pub fn assert_rate(text: &str, expected: u64, what: &str) {
    assert!(
        rate_matches(text, expected, 16),
        "{what}: tc shows {text}, expected {expected} bit/s (within tc's printing precision)"
    );
}

/// The cap formula of SPEC §1, in bit/s:
/// `clamp((limit - used) * 8 / (period - elapsed), min, max)`, elapsed clamped
/// to `period - 1` (the tests never go before a period's start), a negative
/// remainder giving `min`.
pub fn expected_ceil(
    limit_bytes: u64,
    used_bytes: u64,
    period_s: u64,
    elapsed_s: u64,
    min: u64,
    max: u64,
) -> u64 {
    let elapsed = elapsed_s.min(period_s - 1);
    let left = limit_bytes.saturating_sub(used_bytes);
    (left * 8 / (period_s - elapsed)).clamp(min, max)
}

// ---------------------------------------------------------------------------
// Time

/// The tests' time zero: every `--now` is an offset from it, never the clock.
pub const T0: &str = "2024-03-01T00:00:00Z";

/// `T0 + secs` as RFC 3339 (stays within March 2024).
pub fn at(secs: u64) -> String {
    let day = 1 + secs / 86_400;
    assert!(day <= 31, "offset beyond the test month");
    let s = secs % 86_400;
    format!(
        "2024-03-{day:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

pub const MIN: u64 = 60;
pub const HOUR: u64 = 3600;
pub const DAY: u64 = 86_400;

// ---------------------------------------------------------------------------
// Sandbox

/// The per-test settings written into the sandbox's config.
#[derive(Debug, Clone)]
pub struct Settings {
    pub period: &'static str,
    pub max_kbyte: u64,
    pub max_i2_kbyte: u64,
    pub thresh_percent: u64,
    pub lock_wait: &'static str,
    /// `classify:` (uid, mark, none); `None` leaves bwmon's default.
    pub classify: Option<&'static str>,
    /// Extra YAML appended verbatim, right after the `mail:` block (so an
    /// indented line continues it, e.g. `  timeout: 1s`).
    pub extra: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            period: "1d",
            max_kbyte: 100,
            max_i2_kbyte: 1000,
            thresh_percent: 80,
            lock_wait: "5s",
            classify: None,
            extra: String::new(),
        }
    }
}

/// A namespace plus a temp dir holding config, state, the `tc` wrapper (which
/// logs each spawn) and a `sendmail` that captures each mail.
pub struct Sandbox {
    // Field order: the namespace goes before the directory.
    pub ns: Netns,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub state: PathBuf,
    pub maildir: PathBuf,
    pub tc_log: PathBuf,
}

impl Sandbox {
    /// `None` when the real-kernel tests cannot run here (see [`require_root`]).
    pub fn new(settings: &Settings) -> Option<Sandbox> {
        if !require_root() {
            return None;
        }
        let ns = match Netns::new() {
            Ok(ns) => ns,
            Err(e) => {
                skip_or_fail("real-kernel test", &e);
                return None;
            }
        };
        let dir = tempfile::Builder::new()
            .prefix("bwmon-kernel-")
            .tempdir()
            .expect("temp dir");
        let root = dir.path();
        let maildir = root.join("mail");
        fs::create_dir(&maildir).unwrap();
        let tc_log = root.join("tc.log");
        let real_tc = which("tc").unwrap_or_else(|| PathBuf::from("/usr/sbin/tc"));

        let tc = root.join("tc");
        logging_wrapper(&tc, &tc_log, &real_tc);
        let fixture = Path::new(CRATE).join("tests/fixtures/sendmail-capture");
        let sendmail = root.join("sendmail");
        write_script(
            &sendmail,
            &format!(
                "#!/bin/sh\nexec '{}' '{}' \"$@\"\n",
                fixture.display(),
                maildir.display()
            ),
        );

        let state = root.join("state.yaml");
        let config = root.join("bwmon.yaml");
        let classify = settings
            .classify
            .map_or(String::new(), |c| format!("classify: {c}\n"));
        let yaml = format!(
            "tc: {tc}\n\
             {classify}\
             state_file: {state}\n\
             period: {period}\n\
             lock_wait: {lock_wait}\n\
             defaults:\n  max_kbyte: {max}\n  max_i2_kbyte: {i2}\n  thresh_percent: {thresh}\n\
             mail:\n  enabled: true\n  sendmail: {sendmail}\n  from: support@example.org\n  \
             name: ExampleLab\n  list: mom@example.org\n  \
             slice_address: SLICE@slices.example.org\n  hostname: node1.example.org\n{extra}",
            tc = tc.display(),
            state = state.display(),
            period = settings.period,
            max = settings.max_kbyte,
            i2 = settings.max_i2_kbyte,
            thresh = settings.thresh_percent,
            lock_wait = settings.lock_wait,
            sendmail = sendmail.display(),
            extra = settings.extra,
        );
        fs::write(&config, yaml).unwrap();
        Some(Sandbox {
            ns,
            dir,
            config,
            state,
            maildir,
            tc_log,
        })
    }

    /// Runs `ip netns exec NS bwmon -c CONFIG --dev lo --now NOW ARGS...` with
    /// `stdin` (empty when `None`), bounded in time. Logs the run to stderr.
    pub fn run_bwmon(&self, now: &str, args: &[&str], stdin: Option<&str>) -> Output {
        self.run_env(now, args, stdin.unwrap_or("").as_bytes(), &[])
    }

    /// As [`Sandbox::run_bwmon`], with raw bytes on stdin and `env` set.
    pub fn run_env(&self, now: &str, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let config = self.config.to_str().expect("UTF-8 temp path");
        let mut full = vec!["-c", config, "--dev", "lo", "--now", now];
        full.extend(args);
        self.run_raw(&full, stdin, env)
    }

    /// `ip netns exec NS bwmon ARGS...` exactly as given (no config, device or
    /// time added), `RUST_LOG` unset unless `env` sets it; bounded in time.
    pub fn run_raw(&self, args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
        let mut cmd = self.ns.command(BWMON);
        cmd.args(args)
            .env_remove("RUST_LOG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let output = run_bounded(cmd, stdin, &args.join(" "));
        log_run(&format!("bwmon {}", args.join(" ")), &output);
        output
    }

    /// `bwmon init [--bwcap RATE]`, which must succeed.
    #[track_caller]
    pub fn init(&self, now: &str, bwcap: Option<&str>) -> Output {
        let mut args = vec!["init"];
        if let Some(cap) = bwcap {
            args.extend(["--bwcap", cap]);
        }
        let out = self.run_bwmon(now, &args, None);
        assert_exit(&out, 0, "init");
        out
    }

    /// `bwmon sync` with the slivers JSON on stdin; returns the output unchecked.
    pub fn sync_raw(&self, now: &str, slivers: &str) -> Output {
        self.run_bwmon(now, &["sync"], Some(slivers))
    }

    /// `bwmon sync` that must exit 0.
    #[track_caller]
    pub fn sync(&self, now: &str, slivers: &str) -> Output {
        let out = self.sync_raw(now, slivers);
        assert_exit(&out, 0, "sync");
        out
    }

    /// A sandbox with bwmon's hierarchy (`init --bwcap BWCAP` at `T0`) and a
    /// first sync of `live` at `T0` (`None`: see [`require_root`]).
    pub fn synced(settings: &Settings, bwcap: &str, live: &str) -> Option<Sandbox> {
        let sb = Sandbox::new(settings)?;
        sb.init(T0, Some(bwcap));
        sb.sync(T0, live);
        Some(sb)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn bak(&self) -> PathBuf {
        self.state_with(".bak")
    }

    pub fn lock_path(&self) -> PathBuf {
        self.state_with(".lock")
    }

    fn state_with(&self, suffix: &str) -> PathBuf {
        let mut p = self.state.as_os_str().to_owned();
        p.push(suffix);
        PathBuf::from(p)
    }

    /// Takes the state's lock exclusively, as a running sync would; held
    /// until the returned file is unlocked or dropped.
    pub fn hold_lock(&self) -> fs::File {
        let holder = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .unwrap_or_else(|e| panic!("open {}: {e}", self.lock_path().display()));
        holder.lock().expect("take the lock");
        holder
    }

    /// Appends `yaml` to the config.
    pub fn add_config(&self, yaml: &str) {
        let mut text = fs::read_to_string(&self.config).unwrap();
        text.push_str(yaml);
        fs::write(&self.config, text).unwrap();
    }

    /// Files in the sandbox directory, sorted, but the lock (any run may
    /// create it) and the tc wrapper's log.
    pub fn dir_listing(&self) -> Vec<String> {
        file_names(self.dir.path())
            .into_iter()
            .filter(|n| n != "state.yaml.lock" && n != "tc.log")
            .collect()
    }

    /// `bwmon status --format json [names]` at `now`, which must exit `code`.
    #[track_caller]
    pub fn status_json(&self, now: &str, names: &[&str], code: i32) -> serde_json::Value {
        self.json_of(now, &["status"], names, code)
    }

    /// `bwmon COMMAND --format json ARGS` at `now`, which must exit `code`:
    /// its output, parsed.
    #[track_caller]
    pub fn json_of(
        &self,
        now: &str,
        command: &[&str],
        args: &[&str],
        code: i32,
    ) -> serde_json::Value {
        let mut full = command.to_vec();
        full.extend(["--format", "json"]);
        full.extend(args);
        let what = format!("{} --format json", command.join(" "));
        let out = self.run_bwmon(now, &full, None);
        assert_exit(&out, code, &what);
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{what}: JSON does not parse ({e}): {}", stdout(&out)))
    }

    /// Lines in the tc wrapper's log so far: one per tc process spawned.
    pub fn tc_spawns(&self) -> Vec<String> {
        read_lines(&self.tc_log)
    }

    /// Every mail sendmail received so far, in order.
    pub fn mails(&self) -> Vec<Mail> {
        let mut numbers: Vec<u32> = fs::read_dir(&self.maildir)
            .unwrap()
            .filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                name.strip_suffix(".msg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        numbers
            .into_iter()
            .map(|n| Mail {
                argv: fs::read_to_string(self.maildir.join(format!("{n}.argv")))
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect(),
                message: fs::read_to_string(self.maildir.join(format!("{n}.msg"))).unwrap(),
            })
            .collect()
    }
}

/// Spawns `cmd` (stdin, stdout and stderr piped), feeds it `stdin`, and waits
/// at most [`RUN_TIMEOUT`] for it; `what` names it in the panic.
pub fn run_bounded(mut cmd: Command, stdin: &[u8], what: &str) -> Output {
    let mut child = cmd.spawn().expect("spawn bwmon");
    let input = stdin.to_vec();
    let mut child_in = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = child_in.write_all(&input);
    });
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = wait_within(&mut child, RUN_TIMEOUT, &format!("bwmon {what}"));
    let _ = writer.join();
    Output {
        status,
        stdout: out_reader.join().unwrap(),
        stderr: err_reader.join().unwrap(),
    }
}

/// Waits for `child`, killing it and failing the test when it runs longer
/// than `limit`: a hung run must fail its test, not the whole suite's timeout.
pub fn wait_within(child: &mut Child, limit: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran longer than {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Logs a finished run to stderr (shown with the failing test's output).
pub fn log_run(command: &str, output: &Output) {
    eprintln!(
        "$ {command} -> {:?}\n  stdout: {}\n  stderr: {}",
        output.status.code(),
        clip(&String::from_utf8_lossy(&output.stdout)),
        clip(&String::from_utf8_lossy(&output.stderr))
    );
}

/// `text` trimmed, and cut to its first 4 KiB (a run's log line, not a dump).
fn clip(text: &str) -> &str {
    let t = text.trim_end();
    match t.char_indices().nth(4096) {
        Some((i, _)) => &t[..i],
        None => t,
    }
}

/// One captured mail: sendmail's arguments and what was piped into it.
#[derive(Debug, Clone)]
pub struct Mail {
    pub argv: Vec<String>,
    pub message: String,
}

impl Mail {
    /// The value of header `name` (case-insensitive), from the header block.
    pub fn header(&self, name: &str) -> Option<String> {
        let (head, _) = self.split();
        head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }

    pub fn body(&self) -> String {
        self.split().1
    }

    fn split(&self) -> (String, String) {
        // Leading blank lines (the seed started with one) are not the separator.
        let text = self
            .message
            .trim_start_matches(['\n', '\r'])
            .replace("\r\n", "\n");
        match text.split_once("\n\n") {
            Some((h, b)) => (h.to_string(), b.to_string()),
            None => (text, String::new()),
        }
    }
}

#[track_caller]
pub fn assert_exit(out: &Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit status {:?}, expected {code}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Slivers JSON (object form) for `(name, xid, rspec JSON object)`.
pub fn slivers(records: &[(&str, u32, &str)]) -> String {
    let body: Vec<String> = records
        .iter()
        .map(|(name, xid, rspec)| {
            format!(r#""{name}": {{"name": "{name}", "xid": {xid}, "_rspec": {rspec}}}"#)
        })
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// As [`slivers`], for records built at run time.
pub fn slivers_owned(records: &[(String, u32, String)]) -> String {
    let borrowed: Vec<(&str, u32, &str)> = records
        .iter()
        .map(|(n, x, r)| (n.as_str(), *x, r.as_str()))
        .collect();
    slivers(&borrowed)
}

/// The low class minor of a slice xid (`0x1000 | xid`).
pub fn low(xid: u32) -> u32 {
    0x1000 | xid
}

/// The i2 class minor of a slice xid (`0x2000 | xid`).
pub fn i2(xid: u32) -> u32 {
    0x2000 | xid
}

/// Writes an executable script.
pub fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A script at `wrapper` that appends its arguments to `log` and execs
/// `real`: how a test counts the processes bwmon spawns without changing
/// what they do.
pub fn logging_wrapper(wrapper: &Path, log: &Path, real: &Path) {
    write_script(
        wrapper,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        ),
    );
}

/// `program` on PATH, or in the sbin directories a non-root PATH leaves out.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The lines of the file at `path`; none while it does not exist (a wrapper
/// writes its log only once it runs).
pub fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The names in directory `dir`, sorted.
pub fn file_names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Slice `name` in a `status --format json` document.
#[track_caller]
pub fn slice<'a>(status: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    status["slices"]
        .as_array()
        .expect("slices is an array")
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("slice {name} not in status: {status:#}"))
}

// ---------------------------------------------------------------------------
// Slices

/// The two slices most tests run; xid 0x101 is classes 1:1101 and 1:2101,
/// 0x102 is 1:1102 and 1:2102.
pub const ALICE: (&str, u32) = ("pl_alice", 257);
pub const BOB: (&str, u32) = ("pl_bob", 258);

/// Alice and Bob, both on the config's default limits.
pub fn alice_and_bob() -> String {
    slivers(&[(ALICE.0, ALICE.1, "{}"), (BOB.0, BOB.1, "{}")])
}

pub fn alice_only() -> String {
    slivers(&[(ALICE.0, ALICE.1, "{}")])
}

pub fn bob_only() -> String {
    slivers(&[(BOB.0, BOB.1, "{}")])
}

// ---------------------------------------------------------------------------
// What a run printed

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The error contract: exactly one line on stderr, starting with `bwmon: `,
/// containing every one of `names`. Returns the line.
#[track_caller]
pub fn one_error_line(out: &Output, names: &[&str], what: &str) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{what}: stderr must be exactly one line, is {}:\n{err}",
        lines.len()
    );
    let line = lines[0];
    assert!(
        line.starts_with("bwmon: "),
        "{what}: the message must start with `bwmon: `: {line:?}"
    );
    for n in names {
        assert!(
            line.contains(n),
            "{what}: the message must name {n:?}: {line:?}"
        );
    }
    line.to_string()
}

/// Every stderr line starts with `bwmon: `.
#[track_caller]
pub fn all_lines_prefixed(out: &Output, what: &str) {
    for line in stderr(out).lines() {
        assert!(
            line.starts_with("bwmon: "),
            "{what}: stderr line without `bwmon: `: {line:?}"
        );
    }
}

/// `out` exited `code` and printed nothing at all.
#[track_caller]
pub fn assert_silent(out: &Output, code: i32, what: &str) {
    assert_exit(out, code, what);
    let mut msg = String::new();
    if !out.stdout.is_empty() {
        let _ = write!(msg, "stdout: {}", stdout(out));
    }
    if !out.stderr.is_empty() {
        let _ = write!(msg, "stderr: {}", stderr(out));
    }
    assert!(msg.is_empty(), "{what}: not silent: {msg}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_as_tc_prints_them() {
        assert_eq!(parse_rate("1234Kbit"), (1_234_000, 1000));
        assert_eq!(parse_rate("999992bit"), (999_992, 1));
        assert_eq!(parse_rate("1Gbit"), (1_000_000_000, 1_000_000_000));
        assert!(rate_matches("1234Kbit", 1_234_567, 0));
        assert!(rate_matches("999992bit", 999_999, 0));
        assert!(!rate_matches("1234Kbit", 1_236_000, 16));
    }
}

pub mod mid;
pub mod node;
pub mod rtnl_log;
