//! Real-kernel tests of issue 6: bwmon's own nftables table `inet bwmon`
//! classifies each slice's packets into its HTB classes, so the caps bite on a
//! stock kernel. Real processes send real UDP inside a private network
//! namespace per test — as the slice's uid (`setpriv --reuid`) for
//! `classify: uid`, with `SO_MARK` for `classify: mark` — using
//! `examples/send_traffic.rs` with `none` (no `SO_PRIORITY`: only bwmon's nft
//! rule can put the packets into a slice's class); the tests read the class
//! counters, the ceil and the nft maps back from the kernel.
//!
//! Needs root, `nft` and `setpriv`; without root the tests print a line and
//! pass, except under `CI=true` (see `common::require_root`).

mod common;

use common::node::{MIN_RATE, wire};
use common::{
    ALICE, BOB, CRATE, DAY, MIN, Sandbox, Settings, T0, alice_and_bob, alice_only, assert_exit, at,
    expected_ceil, i2, logging_wrapper, low, or_skip, parse_rate, read_lines, slivers, stderr,
    which,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A uid that is no slice's.
const STRANGER: u32 = 300;
/// Unclassified traffic's class.
const DEFAULT_CLASS: u32 = 0x1fff;
const EXEMPT: &str = "127.0.0.2";

const BWCAP: &str = "100mbit";
const BWCAP_BITS: u64 = 100_000_000;

/// `send_traffic`'s datagram payload.
const PAYLOAD: u64 = 1000;
/// Datagrams per paced send (`BYTES = PACKETS * PAYLOAD`).
const PACKETS: u64 = 50;
const WIRE_V4: u64 = wire(PAYLOAD);
/// The same over IPv6 (40-byte header).
const WIRE_V6: u64 = PAYLOAD + 62;

fn exempt_settings(extra: &str) -> Settings {
    Settings {
        extra: format!("exempt: [{EXEMPT}]\n{extra}"),
        ..Settings::default()
    }
}

// ---------------------------------------------------------------------------
// The sender

/// The `send_traffic` example, built once if it is missing (`make test` builds
/// it before the tests; a bare `cargo test` does not).
fn sender() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let manifest = Path::new(CRATE);
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| manifest.join("target"), PathBuf::from);
        let path = target.join("debug/examples/send_traffic");
        if !path.is_file() {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
            let status = Command::new(cargo)
                .args(["build", "--locked", "--example", "send_traffic"])
                .current_dir(manifest)
                .status()
                .expect("spawn cargo build --example send_traffic");
            assert!(
                status.success(),
                "cargo build --example send_traffic failed"
            );
        }
        assert!(path.is_file(), "{} missing after the build", path.display());
        path
    })
}

/// Runs `send_traffic ARGS` in the namespace, as `uid` (via `setpriv`) or as
/// root; panics when it fails. Returns its stdout.
fn send_as(sb: &Sandbox, uid: Option<u32>, args: &[&str]) -> String {
    let bin = sender();
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = sb.ns.command("setpriv");
            let id = uid.to_string();
            c.args(["--reuid", &id, "--regid", &id, "--clear-groups"])
                .arg(bin);
            c
        }
        None => sb.ns.command(&bin.to_string_lossy()),
    };
    let out = cmd.args(args).output().expect("spawn send_traffic");
    assert!(
        out.status.success(),
        "send_traffic {} as uid {uid:?}: {:?}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `Sent` bytes of every class now.
fn counters(sb: &Sandbox) -> BTreeMap<u32, u64> {
    sb.ns
        .classes()
        .into_iter()
        .map(|(minor, c)| (minor, c.sent))
        .collect()
}

/// Sends `PACKETS` paced datagrams (`none`: no `SO_PRIORITY`) as `uid` (or
/// root) with `extra` arguments (an address, `--mark N`) and checks they were
/// counted in class `1:expect`, `wire` bytes each, and in none of `watched`'s
/// other classes.
#[track_caller]
fn assert_lands(
    sb: &Sandbox,
    uid: Option<u32>,
    xid: u32,
    extra: &[&str],
    expect: u32,
    wire: u64,
    watched: &[u32],
) {
    let before = counters(sb);
    let bytes = (PACKETS * PAYLOAD).to_string();
    let xid = xid.to_string();
    let mut args = vec![xid.as_str(), bytes.as_str(), "none"];
    args.extend_from_slice(extra);
    send_as(sb, uid, &args);
    sb.ns.wait_drained(expect);
    for &m in watched {
        sb.ns.wait_drained(m);
    }
    let after = counters(sb);
    let delta = |m: u32| after.get(&m).copied().unwrap_or(0) - before.get(&m).copied().unwrap_or(0);
    let what = format!("uid {uid:?} sending `{}`", args.join(" "));
    let all: BTreeMap<String, u64> = watched
        .iter()
        .chain([&expect, &DEFAULT_CLASS])
        .map(|&m| (format!("1:{m:x}"), delta(m)))
        .collect();
    eprintln!("{what}: class deltas {all:?}");
    if expect == DEFAULT_CLASS {
        // The kernel's ICMP port-unreachable replies are unclassified too.
        assert!(
            delta(expect) >= PACKETS * wire,
            "{what}: 1:{expect:x} should count its {PACKETS} datagrams: {all:?}"
        );
    } else {
        assert_eq!(
            delta(expect),
            PACKETS * wire,
            "{what}: 1:{expect:x} should count exactly its {PACKETS} datagrams of {wire} B: {all:?}"
        );
    }
    for &m in watched.iter().filter(|&&m| m != expect) {
        assert_eq!(
            delta(m),
            0,
            "{what}: nothing should land in 1:{m:x}: {all:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// nft

/// `nft ARGS` in the namespace (the real one, not the sandbox's wrapper).
fn nft(sb: &Sandbox, args: &[&str]) -> Output {
    sb.ns.command("nft").args(args).output().expect("spawn nft")
}

/// `nft list tables` in the namespace.
fn tables(sb: &Sandbox) -> String {
    let out = nft(sb, &["list", "tables"]);
    assert!(out.status.success(), "nft list tables: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn has_table(sb: &Sandbox) -> bool {
    tables(sb).lines().any(|l| l.trim() == "table inet bwmon")
}

/// Both maps hold exactly `xids`, each to its own low / i2 class.
#[track_caller]
fn assert_maps(sb: &Sandbox, xids: &[u32], when: &str) {
    let low_want: BTreeMap<u64, String> = xids
        .iter()
        .map(|&x| (u64::from(x), format!("1:{:x}", low(x))))
        .collect();
    let i2_want: BTreeMap<u64, String> = xids
        .iter()
        .map(|&x| (u64::from(x), format!("1:{:x}", i2(x))))
        .collect();
    assert_eq!(sb.ns.nft_map("low"), Some(low_want), "map low {when}");
    assert_eq!(sb.ns.nft_map("i2"), Some(i2_want), "map i2 {when}");
}

/// Points the sandbox's config at `nft` (replacing any `nft:` line).
fn set_nft(sb: &Sandbox, nft: &Path) {
    let text = std::fs::read_to_string(&sb.config).unwrap();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("nft:"))
        .map(str::to_string)
        .collect();
    lines.push(format!("nft: {}\n", nft.display()));
    std::fs::write(&sb.config, lines.join("\n")).unwrap();
}

/// A wrapper that logs each call (`$*`) and execs the real nft; the config now
/// points at it. Returns (wrapper, log).
fn nft_logged(sb: &Sandbox) -> (PathBuf, PathBuf) {
    let real = which("nft").expect("nft is installed (the nftables package)");
    let log = sb.path("nft.log");
    let wrapper = sb.path("nft");
    logging_wrapper(&wrapper, &log, &real);
    set_nft(sb, &wrapper);
    (wrapper, log)
}

// ---------------------------------------------------------------------------
// Tests

/// classify: uid — the slice's uid lands in 1:(1000|xid), to an exempt address
/// in 1:(2000|xid), over IPv6 too; another slice's uid in its own classes, a uid
/// that is no slice's in the default class.
#[test]
fn uid_mode_puts_each_slices_packets_in_its_classes() {
    let sb = or_skip!(Sandbox::new(&exempt_settings("")));
    // Part of 127/8 on lo already in most kernels: an error here is fine.
    let _ = sb
        .ns
        .command("ip")
        .args(["addr", "add", &format!("{EXEMPT}/8"), "dev", "lo"])
        .output();
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, &alice_and_bob());
    assert_maps(&sb, &[ALICE.1, BOB.1], "after the first sync");

    let watched = [low(ALICE.1), i2(ALICE.1), low(BOB.1), i2(BOB.1)];
    let a = Some(ALICE.1);
    assert_lands(&sb, a, ALICE.1, &[], low(ALICE.1), WIRE_V4, &watched);
    assert_lands(&sb, a, ALICE.1, &[EXEMPT], i2(ALICE.1), WIRE_V4, &watched);
    assert_lands(&sb, a, ALICE.1, &["::1"], low(ALICE.1), WIRE_V6, &watched);
    assert_lands(&sb, Some(BOB.1), BOB.1, &[], low(BOB.1), WIRE_V4, &watched);
    // The xid argument only names the (unused) priority: the uid decides.
    assert_lands(
        &sb,
        Some(STRANGER),
        ALICE.1,
        &[],
        DEFAULT_CLASS,
        WIRE_V4,
        &watched,
    );
    assert_lands(
        &sb,
        Some(STRANGER),
        ALICE.1,
        &[EXEMPT],
        DEFAULT_CLASS,
        WIRE_V4,
        &watched,
    );
}

/// The cap bites: a capped slice sending as fast as it can for 2 s gets no
/// more than ceil × time × 1.1 + one burst through its class; after `bwmon
/// reset` at least 10× more.
#[test]
#[allow(clippy::cast_precision_loss)] // byte counts far below 2^52
fn cap_bites_on_real_traffic_and_reset_lifts_it() {
    // 2000 KiB; 30 × 60,042 B = 1,801,260 B used (88 %, over the 80 %
    // threshold), 246,740 B left 10 s before the period ends → ~197 kbit/s.
    const KBYTE: u64 = 2000;
    const LIMIT: u64 = KBYTE * 1024;
    const LEFT_S: u64 = 10;
    const SECS: u64 = 2;
    let sb = or_skip!(Sandbox::synced(
        &Settings {
            max_kbyte: KBYTE,
            max_i2_kbyte: KBYTE,
            ..Settings::default()
        },
        BWCAP,
        &alice_only(),
    ));
    let used = sb.ns.send(low(ALICE.1), 30, 60_000);
    assert_eq!(used, 30 * 60_042);
    assert!(used * 100 >= LIMIT * 80, "test design: over the threshold");
    sb.sync(&at(DAY - LEFT_S), &alice_only());

    let class = sb.ns.class(low(ALICE.1)).expect("alice's low class");
    let (ceil, _) = parse_rate(&class.ceil);
    let formula = expected_ceil(LIMIT, used, DAY, DAY - LEFT_S, MIN_RATE, BWCAP_BITS);
    eprintln!("capped: {class:?}; formula {formula} bit/s, kernel {ceil} bit/s");
    assert!(
        (100_000..=400_000).contains(&ceil),
        "alice's low ceil should be capped near 200 kbit/s: {class:?} (formula {formula})"
    );
    let cburst = cburst(&sb, low(ALICE.1));

    let (capped, capped_secs) = blast(&sb, SECS);
    let bound = ceil as f64 / 8.0 * capped_secs * 1.1 + (cburst + WIRE_V4) as f64;
    eprintln!(
        "THROUGHPUT capped (ceil {}): {capped} B in {capped_secs:.2} s = {:.0} B/s; \
         bound {bound:.0} B (ceil/8 × {capped_secs:.2} s × 1.1 + cburst {cburst} B + one packet)",
        class.ceil,
        capped as f64 / capped_secs
    );
    assert!(
        capped as f64 <= bound,
        "the cap does not bite: {capped} B got through in {capped_secs:.2} s at ceil {} \
         (bound {bound:.0} B)",
        class.ceil
    );
    assert!(
        capped > 0,
        "the capped slice's traffic reached its class at all"
    );

    let out = sb.run_bwmon(&at(DAY - LEFT_S + 5), &["reset", ALICE.0], None);
    assert_exit(&out, 0, "reset");
    let lifted = sb.ns.class(low(ALICE.1)).expect("alice's low class");
    assert_eq!(lifted.ceil, "100Mbit", "reset lifts the cap: {lifted:?}");
    // What the capped run left queued goes now, before the measurement.
    sb.ns.wait_drained(low(ALICE.1));

    let (free, free_secs) = blast(&sb, SECS);
    eprintln!(
        "THROUGHPUT after reset (ceil {}): {free} B in {free_secs:.2} s = {:.0} B/s ({:.1}× the capped)",
        lifted.ceil,
        free as f64 / free_secs,
        free as f64 / capped.max(1) as f64
    );
    assert!(
        free >= 10 * capped,
        "after reset the same send should get ≥ 10× through: {free} B vs {capped} B capped"
    );
}

/// Alice's uid sends as fast as it can (`--secs secs`); returns the bytes her
/// low class counted in a window of `secs` seconds from just before the sender
/// started, and the window's length as an upper bound (from before the first
/// counter read began to after the second ended). The window is timed here,
/// not by the sender: a blocking UDP send at a low ceil overruns `--secs`
/// (it waits for half the send buffer to drain).
fn blast(sb: &Sandbox, secs: u64) -> (u64, f64) {
    let bin = sender(); // built outside the measured window
    let minor = low(ALICE.1);
    let id = ALICE.1.to_string();
    let start = Instant::now();
    let before = sb.ns.class(minor).expect("class").sent;
    let child = sb
        .ns
        .command("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups"])
        .arg(bin)
        .args([id.as_str(), "0", "none", "--secs", &secs.to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn send_traffic");
    std::thread::sleep(
        (start + Duration::from_secs(secs)).saturating_duration_since(Instant::now()),
    );
    let after = sb.ns.class(minor).expect("class").sent;
    let window = start.elapsed().as_secs_f64();
    let out = child.wait_with_output().expect("wait for send_traffic");
    assert!(out.status.success(), "send_traffic: {:?}", out.status);
    eprintln!(
        "  sender handed {} B to the kernel in its --secs {secs} (it ran {:.2} s)",
        String::from_utf8_lossy(&out.stdout).trim(),
        start.elapsed().as_secs_f64()
    );
    (after - before, window)
}

/// The class's `cburst` in bytes, from `tc -d class show`.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // a small positive size
fn cburst(sb: &Sandbox, minor: u32) -> u64 {
    let text = sb.ns.tc(&[
        "-d",
        "class",
        "show",
        "dev",
        "lo",
        "classid",
        &format!("1:{minor:x}"),
    ]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let raw = words
        .iter()
        .position(|w| *w == "cburst")
        .and_then(|i| words.get(i + 1))
        .unwrap_or_else(|| panic!("no cburst in {text}"));
    let size = raw.split('/').next().unwrap_or(raw);
    let (num, mult) = if let Some(n) = size.strip_suffix("Mb") {
        (n, 1024.0 * 1024.0)
    } else if let Some(n) = size.strip_suffix("Kb") {
        (n, 1024.0)
    } else {
        (size.strip_suffix('b').unwrap_or(size), 1.0)
    };
    let value: f64 = num.parse().unwrap_or_else(|_| panic!("bad cburst {raw}"));
    (value * mult).ceil() as u64
}

/// classify: mark — a socket with `SO_MARK` = xid lands in the slice's classes
/// (i2 for an exempt destination); without the mark it does not, whatever
/// the uid.
#[test]
fn mark_mode_classifies_by_packet_mark() {
    let sb = or_skip!(Sandbox::synced(
        &exempt_settings("classify: mark\n"),
        BWCAP,
        &alice_and_bob(),
    ));
    assert_maps(&sb, &[ALICE.1, BOB.1], "after the first sync");

    let watched = [low(ALICE.1), i2(ALICE.1), low(BOB.1), i2(BOB.1)];
    let mark = ALICE.1.to_string();
    let m = ["--mark", mark.as_str()];
    assert_lands(&sb, None, ALICE.1, &m, low(ALICE.1), WIRE_V4, &watched);
    assert_lands(
        &sb,
        None,
        ALICE.1,
        &["::1", m[0], m[1]],
        low(ALICE.1),
        WIRE_V6,
        &watched,
    );
    assert_lands(
        &sb,
        None,
        ALICE.1,
        &[EXEMPT, m[0], m[1]],
        i2(ALICE.1),
        WIRE_V4,
        &watched,
    );
    assert_lands(&sb, None, ALICE.1, &[], DEFAULT_CLASS, WIRE_V4, &watched);
    // In mark mode the uid means nothing.
    assert_lands(
        &sb,
        Some(ALICE.1),
        ALICE.1,
        &[],
        DEFAULT_CLASS,
        WIRE_V4,
        &watched,
    );
}

/// The maps follow the live slices, updated in the same run, in one nft
/// process per sync and none when nothing changed; tc stays ≤ 3 per sync.
#[test]
fn maps_follow_slices_in_one_nft_run_only_on_change() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let (_, log) = nft_logged(&sb);
    sb.init(T0, Some(BWCAP));
    let init_calls = read_lines(&log);
    assert!(init_calls.len() <= 1, "init: nft calls {init_calls:?}");

    let step = |now: u64, live: &str, nft_calls: usize, xids: &[u32]| {
        let (nft0, tc0) = (read_lines(&log).len(), sb.tc_spawns().len());
        sb.sync(&at(now), live);
        let nft_new = read_lines(&log)[nft0..].to_vec();
        let tc_new = sb.tc_spawns()[tc0..].to_vec();
        let when = format!("after the sync at +{now} s with {xids:?} live");
        assert_eq!(nft_new.len(), nft_calls, "nft calls {when}: {nft_new:?}");
        assert!(
            nft_new.iter().all(|c| c == "-f -"),
            "nft only as one `nft -f -` transaction {when}: {nft_new:?}"
        );
        assert!(tc_new.len() <= 3, "tc spawns {when}: {tc_new:?}");
        assert_maps(&sb, xids, &when);
    };
    step(0, &alice_and_bob(), 1, &[ALICE.1, BOB.1]);
    step(MIN, &alice_and_bob(), 0, &[ALICE.1, BOB.1]);
    step(2 * MIN, &alice_only(), 1, &[ALICE.1]);
    step(3 * MIN, &alice_only(), 0, &[ALICE.1]);
    step(4 * MIN, &alice_and_bob(), 1, &[ALICE.1, BOB.1]);
    step(5 * MIN, &alice_and_bob(), 0, &[ALICE.1, BOB.1]);
    step(6 * MIN, &slivers(&[]), 1, &[]);
}

/// classify: none — no table, no nft at all.
#[test]
fn classify_none_creates_no_table() {
    let sb = or_skip!(Sandbox::new(&exempt_settings("classify: none\n")));
    let (_, log) = nft_logged(&sb);
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, &alice_and_bob());
    sb.sync(&at(MIN), &alice_only());
    assert!(!has_table(&sb), "no inet bwmon table: {}", tables(&sb));
    assert!(sb.ns.class(low(ALICE.1)).is_some(), "the classes are made");
    let out = sb.run_bwmon(&at(2 * MIN), &["teardown"], None);
    assert_exit(&out, 0, "teardown");
    assert_eq!(read_lines(&log), Vec::<String>::new(), "nft never run");
}

/// nft missing with classify: uid → init exits 69 with one line naming the
/// nftables package, whether the config names nft by path or by a bare name.
#[test]
fn nft_missing_init_exits_69_naming_nftables() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    for missing in ["nft-not-installed", "/nonexistent/nft"] {
        set_nft(&sb, Path::new(missing));
        let out = sb.run_bwmon(T0, &["init", "--bwcap", BWCAP], None);
        let what = format!("init with `nft: {missing}`");
        assert_exit(&out, 69, &what);
        let stderr = stderr(&out);
        eprintln!("{what}: root qdisc now `{}`", sb.ns.root_qdisc());
        assert_eq!(
            stderr.trim().lines().count(),
            1,
            "{what}: one line: {stderr}"
        );
        assert!(
            stderr.contains("nftables"),
            "{what}: names the package: {stderr}"
        );
    }
}

/// nft missing with classify: uid → sync exits 1 but still applies its tc
/// changes, the table stays as it was, and the maps catch up once nft is back.
#[test]
fn nft_missing_sync_exits_1_and_still_applies_tc() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let (wrapper, _) = nft_logged(&sb);
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, &alice_only());
    assert_maps(&sb, &[ALICE.1], "with nft");
    let missing = Path::new("/nonexistent/nft");
    set_nft(&sb, missing);

    let out = sb.sync_raw(&at(MIN), &alice_and_bob());
    assert_exit(&out, 1, "sync with nft missing");
    let stderr = stderr(&out);
    assert!(stderr.contains("nft"), "the failure is reported: {stderr}");
    assert!(
        sb.ns.class(low(BOB.1)).is_some(),
        "tc changes applied: bob's low class"
    );
    assert!(
        sb.ns.class(i2(BOB.1)).is_some(),
        "tc changes applied: bob's i2 class"
    );
    assert_maps(&sb, &[ALICE.1], "the table as it was");
    let out = sb.sync_raw(&at(2 * MIN), &alice_and_bob());
    assert_exit(&out, 1, "the next sync with nft still missing");

    set_nft(&sb, &wrapper);
    sb.sync(&at(3 * MIN), &alice_and_bob());
    assert_maps(&sb, &[ALICE.1, BOB.1], "once nft is back");
}

/// teardown removes the table with the hierarchy; init puts it back.
#[test]
fn teardown_removes_the_table() {
    let sb = or_skip!(Sandbox::synced(&exempt_settings(""), BWCAP, &alice_only()));
    assert!(has_table(&sb));
    let out = sb.run_bwmon(&at(MIN), &["teardown"], None);
    assert_exit(&out, 0, "teardown");
    assert!(!has_table(&sb), "table removed: {}", tables(&sb));
    assert!(!sb.ns.root_qdisc().contains("htb"), "hierarchy removed");
    let out = sb.run_bwmon(&at(2 * MIN), &["teardown"], None);
    assert_exit(&out, 0, "a second teardown");

    sb.init(&at(3 * MIN), Some(BWCAP));
    assert_maps(&sb, &[ALICE.1], "init after teardown: the state's slices");
}

/// A ruleset flushed or a table deleted behind bwmon's back: `status` sees
/// it (read from the kernel, not the state), and the next sync puts the maps
/// back in its one `nft -f -` run.
#[test]
fn maps_emptied_behind_bwmons_back_are_seen_and_put_back() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let (_, log) = nft_logged(&sb);
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, &alice_and_bob());
    let classified = |now: &str| -> Vec<(String, bool)> {
        sb.status_json(now, &[], 0)["slices"]
            .as_array()
            .expect("slices")
            .iter()
            .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["classified"].as_bool()?)))
            .collect()
    };
    let both = |flag: bool| vec![(ALICE.0.to_string(), flag), (BOB.0.to_string(), flag)];
    assert_eq!(classified(&at(1)), both(true), "after the first sync");

    let mut now = 0;
    for (what, args) in [
        (
            "map low flushed",
            &["flush", "map", "inet", "bwmon", "low"][..],
        ),
        ("table deleted", &["delete", "table", "inet", "bwmon"][..]),
    ] {
        let out = nft(&sb, args);
        assert!(out.status.success(), "nft {args:?}: {out:?}");
        now += MIN;
        assert_eq!(classified(&at(now)), both(false), "{what}: status");
        let calls = read_lines(&log).len();
        sb.sync(&at(now), &alice_and_bob());
        assert_eq!(
            read_lines(&log)[calls..],
            ["-f -"],
            "{what}: one nft run puts the table back"
        );
        assert_maps(&sb, &[ALICE.1, BOB.1], &format!("{what}, after the sync"));
        assert_eq!(
            classified(&at(now)),
            both(true),
            "{what}: status after the sync"
        );
    }
}
