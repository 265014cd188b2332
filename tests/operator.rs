//! Real-kernel tests of the operator surface (doc/operator-contract.md):
//! `status` against live counters, `reset`, `--dry-run`, `metrics_file`,
//! `teardown`. Each test has a network namespace of its own and works on its
//! `lo`; real packets go into the slices' classes.
//!
//! Needs root. Without it the tests print a line and pass, except under
//! `CI=true`, where they fail (see `common::require_root`). Time comes only from
//! `--now`.

mod common;

use common::mid::{self, BWCAP, BWCAP_BITS, MID_LIMIT, MIN_RATE, SEND_PACKETS, SEND_PAYLOAD};
use common::{
    ALICE, BOB, DAY, HOUR, MIN, Sandbox, T0, alice_and_bob, assert_exit, assert_rate, at,
    expected_ceil, file_names, i2, low, or_skip, rate_matches, slice, slivers, stderr, stdout,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

#[track_caller]
fn u(v: &Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not an unsigned integer: {v}"))
}

/// Every file in the sandbox dir (recursively, the mail dir included) with its
/// bytes, except the lock file (a dry run may create it) and the tc wrapper's
/// spawn log.
fn files(sb: &Sandbox) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.insert(p.clone(), fs::read(&p).unwrap());
            }
        }
    }
    let mut map = BTreeMap::new();
    walk(sb.dir.path(), &mut map);
    map.retain(|p, _| {
        let name = p.file_name().unwrap().to_string_lossy();
        !name.ends_with(".lock") && p != &sb.tc_log
    });
    map
}

/// The value of the sample `name` (metric name with its labels, as printed).
fn prom_value(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n.trim() == name).then(|| v.trim().parse().ok())?
    })
}

fn epoch(rfc3339: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .unwrap()
        .timestamp()
}

// ---------------------------------------------------------------------------
// status

/// Status reads live counters: `used_bytes` is the kernel's `Sent` minus the
/// baseline, also for traffic after the last sync; `capped`/`ceil_bps` are what
/// sync applied; `--check` exits 1 only while a shown slice is capped, and an
/// unknown name exits 3 unless a shown slice is capped.
#[test]
fn status_shows_live_counters_and_the_applied_caps() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let baseline = sb.ns.class(low(ALICE.1)).expect("alice's low class").sent;

    let sent = sb.ns.send(low(ALICE.1), 20, 10_000);
    let st = sb.status_json(&at(HOUR), &[], 0);
    assert_eq!(st["format_version"], 1);
    assert_eq!(st["dev"], "lo");
    assert_eq!(st["now"], at(HOUR));
    assert_eq!(st["last_sync"], T0);
    let alice = slice(&st, ALICE.0);
    assert_eq!(alice["xid"], ALICE.1);
    assert_eq!(
        u(&alice["low"]["used_bytes"], "low.used_bytes"),
        sent - baseline,
        "used = kernel Sent - baseline, without a sync: {alice}"
    );
    assert_eq!(u(&alice["i2"]["used_bytes"], "i2.used_bytes"), 0);
    assert_eq!(alice["capped"], false);
    assert_eq!(alice["low"]["capped"], false);
    assert_eq!(u(&alice["low"]["ceil_bps"], "ceil"), BWCAP_BITS);
    assert_eq!(u(&alice["low"]["max_bps"], "max"), BWCAP_BITS);
    assert_eq!(u(&alice["low"]["quota_bytes"], "quota"), MID_LIMIT);
    assert_eq!(
        u(&alice["low"]["threshold_bytes"], "threshold"),
        MID_LIMIT * 80 / 100
    );
    assert_eq!(alice["period_start"], T0);
    assert_eq!(alice["period_end"], at(DAY));
    for name in ["root", "default"] {
        slice(&st, name);
    }
    let out = sb.run_bwmon(&at(HOUR), &["status", "--check"], None);
    assert_exit(&out, 0, "status --check with nobody capped");
    let out = sb.run_bwmon(&at(HOUR), &["status", "--check", "nosuch"], None);
    assert_exit(&out, 3, "status --check with an unknown name");

    // More traffic, still no sync: status follows the kernel.
    let sent = mid::send_over(&sb, low(ALICE.1));
    let bob_sent = sb.ns.send(i2(BOB.1), 7, 1000);
    let st = sb.status_json(&at(2 * HOUR), &[], 0);
    assert_eq!(
        u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used"),
        sent - baseline,
        "live counter after more traffic"
    );
    assert_eq!(
        u(&slice(&st, BOB.0)["i2"]["used_bytes"], "bob i2"),
        bob_sent
    );
    assert_eq!(
        slice(&st, ALICE.0)["capped"],
        false,
        "over the threshold, but no sync has capped her yet"
    );

    // The sync caps her; status shows exactly what it applied.
    sb.sync(&at(22 * HOUR), &alice_and_bob());
    let kernel = sb.ns.class(low(ALICE.1)).unwrap();
    let st = sb.status_json(&at(22 * HOUR), &[], 0);
    let alice = slice(&st, ALICE.0);
    assert_eq!(u(&alice["low"]["used_bytes"], "used"), sent - baseline);
    assert_eq!(alice["capped"], true, "{alice}");
    assert_eq!(alice["low"]["capped"], true);
    assert_eq!(alice["i2"]["capped"], false);
    assert_eq!(alice["mailed"], true);
    let ceil = u(&alice["low"]["ceil_bps"], "ceil_bps");
    let expected = expected_ceil(
        MID_LIMIT,
        sent - baseline,
        DAY,
        22 * HOUR,
        MIN_RATE,
        BWCAP_BITS,
    );
    assert!(
        ceil.abs_diff(expected) <= 16,
        "ceil_bps {ceil} = the formula's {expected}"
    );
    assert!(
        rate_matches(&kernel.ceil, ceil, 0),
        "ceil_bps {ceil} is what tc shows ({})",
        kernel.ceil
    );
    assert_eq!(u(&alice["i2"]["ceil_bps"], "i2 ceil"), BWCAP_BITS);
    let bob = slice(&st, BOB.0);
    assert_eq!(bob["capped"], false);
    assert_eq!(u(&bob["low"]["ceil_bps"], "bob ceil"), BWCAP_BITS);
    assert_eq!(st["last_sync"], at(22 * HOUR));

    let out = sb.run_bwmon(&at(22 * HOUR), &["status", "--check"], None);
    assert_exit(&out, 1, "status --check with alice capped");
    assert!(!out.stdout.is_empty(), "--check prints the table as usual");
    let out = sb.run_bwmon(&at(22 * HOUR), &["status", BOB.0, "--check"], None);
    assert_exit(
        &out,
        0,
        "status pl_bob --check: only the shown slices count",
    );
    let out = sb.run_bwmon(
        &at(22 * HOUR),
        &["status", ALICE.0, "--check", "--format", "json"],
        None,
    );
    assert_exit(&out, 1, "status pl_alice --check --format json");
    // An unknown name is UNKNOWN (3), unless a capped slice is shown (1).
    let out = sb.run_bwmon(
        &at(22 * HOUR),
        &["status", BOB.0, "nosuch", "--check"],
        None,
    );
    assert_exit(&out, 3, "status pl_bob nosuch --check");
    let out = sb.run_bwmon(
        &at(22 * HOUR),
        &["status", ALICE.0, "nosuch", "--check"],
        None,
    );
    assert_exit(&out, 1, "status pl_alice nosuch --check: the cap outranks");
    let out = sb.run_bwmon(&at(22 * HOUR), &["status", ALICE.0, "nosuch"], None);
    assert_exit(&out, 3, "status pl_alice nosuch, without --check");
}

/// The hierarchy lost behind bwmon's back (reboot, someone's `tc qdisc del`):
/// status shows the figures of the last sync, says so once, exits 0.
#[test]
fn status_without_hierarchy_shows_the_state_with_one_warning() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let used = sb.ns.send(low(ALICE.1), 20, 10_000);
    sb.sync(&at(HOUR), &alice_and_bob());
    sb.ns.tc(&["qdisc", "del", "dev", "lo", "root"]);

    let out = sb.run_bwmon(&at(2 * HOUR), &["status", "--format", "json"], None);
    assert_exit(&out, 0, "status without hierarchy");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "one warning: {err:?}");
    assert!(err.starts_with("bwmon: "), "{err}");
    let st: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used"), used);
    assert!(sb.ns.classes().is_empty(), "status rebuilt nothing");
}

// ---------------------------------------------------------------------------
// reset

#[test]
fn reset_lifts_the_cap_at_once_and_starts_a_new_period() {
    let (sb, _) = or_skip!(mid::alice_capped(&alice_and_bob()));
    let reset_at = at(22 * HOUR + 5 * MIN);
    let spawns = sb.tc_spawns().len();

    let out = sb.run_bwmon(&reset_at, &["reset", ALICE.0], None);
    assert_exit(&out, 0, "reset pl_alice");
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "a reset that worked is silent: {}",
        stderr(&out)
    );
    assert_eq!(sb.tc_spawns().len(), spawns, "no tc process");
    let class = sb.ns.class(low(ALICE.1)).unwrap();
    assert_eq!(class.ceil, "1Gbit", "cap lifted in tc at once: {class:?}");
    assert_eq!(class.rate, "1Kbit", "rate = min");
    assert_eq!(class.quantum, Some(1600), "quantum = share * 1600");

    let st = sb.status_json(&reset_at, &[ALICE.0], 0);
    let alice = slice(&st, ALICE.0);
    assert_eq!(u(&alice["low"]["used_bytes"], "low used"), 0, "{alice}");
    assert_eq!(u(&alice["i2"]["used_bytes"], "i2 used"), 0);
    assert_eq!(alice["mailed"], false);
    assert_eq!(alice["capped"], false);
    assert_eq!(alice["low"]["capped"], false);
    assert_eq!(u(&alice["low"]["ceil_bps"], "ceil"), BWCAP_BITS);
    assert_eq!(alice["period_start"], reset_at, "the new period starts now");
    assert_eq!(alice["period_end"], at(DAY + 22 * HOUR + 5 * MIN));

    // The next sync in the same (old) day does not cap her again.
    sb.sync(&at(22 * HOUR + 10 * MIN), &alice_and_bob());
    assert_eq!(sb.ns.class(low(ALICE.1)).unwrap().ceil, "1Gbit");
    assert_eq!(sb.mails().len(), 1, "no new mail without new traffic");
    let st = sb.status_json(&at(22 * HOUR + 10 * MIN), &[], 0);
    assert_eq!(u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used"), 0);

    // New traffic over the threshold: capped again, and a new mail.
    let total = mid::send_over(&sb, low(ALICE.1));
    let st = sb.status_json(&at(22 * HOUR + 20 * MIN), &[], 0);
    let used = u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used");
    assert_eq!(
        used,
        SEND_PACKETS as u64 * (SEND_PAYLOAD as u64 + 42),
        "only the traffic since the reset counts (kernel total {total})"
    );
    sb.sync(&at(23 * HOUR + 5 * MIN), &alice_and_bob());
    let class = sb.ns.class(low(ALICE.1)).unwrap();
    assert_rate(
        &class.ceil,
        expected_ceil(MID_LIMIT, used, DAY, HOUR, MIN_RATE, BWCAP_BITS),
        "capped again, elapsed counted from the reset",
    );
    assert_eq!(sb.mails().len(), 2, "a new mail after the reset");
    assert!(
        sb.mails()[1].body().contains(ALICE.0),
        "{}",
        sb.mails()[1].message
    );
}

// ---------------------------------------------------------------------------
// --dry-run

#[test]
fn dry_runs_change_nothing_and_print_what_they_would_do() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let used = mid::send_over(&sb, low(ALICE.1));
    let now = at(22 * HOUR);

    let shape = sb.shape();
    let files_before = files(&sb);
    let out = sb.run_bwmon(&now, &["sync", "--dry-run"], Some(&alice_and_bob()));
    assert_exit(&out, 0, "sync --dry-run");
    assert_eq!(sb.shape(), shape, "sync --dry-run changed tc");
    assert_eq!(
        files(&sb),
        files_before,
        "sync --dry-run changed a file (state, mail)"
    );
    assert!(sb.mails().is_empty());
    let text = stdout(&out);
    assert!(
        text.starts_with("# tc commands (dry run: not run)\n"),
        "{text}"
    );
    let expected = expected_ceil(MID_LIMIT, used, DAY, 22 * HOUR, MIN_RATE, BWCAP_BITS);
    let cap_line = text
        .lines()
        .find(|l| l.starts_with("class change dev lo parent 1:100 classid 1:1101 htb "))
        .unwrap_or_else(|| panic!("alice's cap in the dry run: {text}"));
    let ceil: u64 = cap_line
        .split_whitespace()
        .skip_while(|w| *w != "ceil")
        .nth(1)
        .and_then(|c| c.strip_suffix("bit"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("ceil in {cap_line}"));
    assert!(
        ceil.abs_diff(expected) <= 16,
        "{cap_line}: expected {expected}"
    );
    assert!(
        text.contains("# mail (dry run: not sent): ")
            && text.contains(
                "Subject: pl_mom capped bandwidth of slice pl_alice on node1.example.org"
            ),
        "the mail is shown: {text}"
    );

    // The real run does what the dry run said.
    sb.sync(&now, &alice_and_bob());
    assert!(rate_matches(
        &sb.ns.class(low(ALICE.1)).unwrap().ceil,
        ceil,
        0
    ));
    assert_eq!(sb.mails().len(), 1);
    let msg = &sb.mails()[0].message;
    assert!(
        text.contains(msg.as_str()),
        "dry-run mail = mail sent:\n{msg}\n---\n{text}"
    );

    // reset --dry-run
    let shape = sb.shape();
    let files_before = files(&sb);
    let out = sb.run_bwmon(
        &at(22 * HOUR + 5 * MIN),
        &["reset", ALICE.0, "--dry-run"],
        None,
    );
    assert_exit(&out, 0, "reset --dry-run");
    assert_eq!(sb.shape(), shape, "reset --dry-run changed tc");
    assert_eq!(files(&sb), files_before, "reset --dry-run changed a file");
    let text = stdout(&out);
    assert!(
        text.contains(
            "class change dev lo parent 1:100 classid 1:1101 htb rate 1000bit ceil 1000000000bit quantum 1600"
        ),
        "{text}"
    );
    assert!(!text.contains("# mail"), "a reset sends no mail: {text}");
    assert_ne!(
        sb.ns.class(low(ALICE.1)).unwrap().ceil,
        "1Gbit",
        "still capped"
    );
}

/// A dry run over a lost hierarchy shows the rebuild and builds nothing.
#[test]
fn dry_run_over_a_lost_hierarchy_builds_nothing() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    sb.ns.tc(&["qdisc", "del", "dev", "lo", "root"]);
    let files_before = files(&sb);
    let out = sb.run_bwmon(&at(HOUR), &["sync", "--dry-run"], Some(&alice_and_bob()));
    assert_exit(&out, 0, "sync --dry-run without hierarchy");
    let text = stdout(&out);
    assert!(
        text.contains("root handle 1: htb") && text.contains("classid 1:1101"),
        "shows the rebuild: {text}"
    );
    assert!(sb.ns.classes().is_empty(), "nothing built");
    assert!(!sb.ns.tc(&["qdisc", "show", "dev", "lo"]).contains("htb"));
    assert_eq!(files(&sb), files_before, "no file changed");
    sb.sync(&at(HOUR), &alice_and_bob());
    assert!(sb.ns.class(low(ALICE.1)).is_some(), "the real run rebuilds");
}

// ---------------------------------------------------------------------------
// metrics_file

#[test]
fn metrics_file_written_atomically_by_every_completed_sync() {
    let sb = or_skip!(Sandbox::new(&mid::settings()));
    let dir = sb.dir.path().join("textfile");
    fs::create_dir(&dir).unwrap();
    let prom = dir.join("bwmon.prom");
    sb.add_config(&format!("metrics_file: {}\n", prom.display()));

    sb.init(T0, Some(BWCAP));
    assert!(!prom.exists(), "init is not a sync");
    sb.sync(T0, &alice_and_bob());
    let sent = sb.ns.send(low(ALICE.1), 20, 10_000);
    sb.sync(&at(HOUR), &alice_and_bob());

    let text = fs::read_to_string(&prom).expect("metrics file written");
    let value = |name: &str| prom_value(&text, name);
    let used = value(r#"bwmon_slice_used_bytes{slice="pl_alice",class="low"}"#)
        .unwrap_or_else(|| panic!("alice's low usage in {text}"));
    #[allow(clippy::cast_precision_loss)]
    let sent_f = sent as f64;
    assert!((used - sent_f).abs() < 0.5, "used {used} = sent {sent}");
    #[allow(clippy::cast_precision_loss)]
    let t1 = epoch(&at(HOUR)) as f64;
    assert_eq!(
        value("bwmon_last_sync_success_timestamp_seconds"),
        Some(t1),
        "the --now of the sync: {text}"
    );
    assert_eq!(
        file_names(&dir),
        ["bwmon.prom"],
        "no temp file left beside it"
    );

    // A dry run and a failed run do not write it.
    let before = fs::read(&prom).unwrap();
    let out = sb.run_bwmon(
        &at(2 * HOUR),
        &["sync", "--dry-run"],
        Some(&alice_and_bob()),
    );
    assert_exit(&out, 0, "sync --dry-run");
    assert_eq!(
        fs::read(&prom).unwrap(),
        before,
        "a dry run leaves the metrics file"
    );
    let out = sb.run_bwmon(&at(2 * HOUR), &["sync"], Some(""));
    assert_exit(&out, 65, "sync with empty stdin");
    assert_eq!(
        fs::read(&prom).unwrap(),
        before,
        "a failed run leaves the metrics file"
    );

    // A sync that exits 1 (a held record) completed: it writes.
    let with_bad = slivers(&[
        (ALICE.0, ALICE.1, "{}"),
        (BOB.0, BOB.1, "{}"),
        ("pl_huge", 5000, "{}"),
    ]);
    let out = sb.sync_raw(&at(3 * HOUR), &with_bad);
    assert_exit(&out, 1, "sync with xid 5000");
    let text = fs::read_to_string(&prom).unwrap();
    #[allow(clippy::cast_precision_loss)]
    let t3 = epoch(&at(3 * HOUR)) as f64;
    assert_eq!(
        prom_value(&text, "bwmon_last_sync_success_timestamp_seconds"),
        Some(t3),
        "a sync that exits 1 counts as completed: {text}"
    );
    assert_eq!(file_names(&dir), ["bwmon.prom"]);

    // A capping sync: the file shows the cap it applied and the mail it sent.
    let sent = mid::send_over(&sb, low(ALICE.1));
    sb.sync(&at(22 * HOUR), &alice_and_bob());
    let text = fs::read_to_string(&prom).unwrap();
    let kernel = sb.ns.class(low(ALICE.1)).unwrap();
    assert_eq!(
        prom_value(&text, r#"bwmon_slice_capped{slice="pl_alice",class="low"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        prom_value(&text, r#"bwmon_slice_mailed{slice="pl_alice"}"#),
        Some(1.0),
        "{text}"
    );
    // Bytes per second (Prometheus base units): tc's bit/s divided by 8.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ceil = (prom_value(
        &text,
        r#"bwmon_slice_ceil_bytes_per_second{slice="pl_alice",class="low"}"#,
    )
    .unwrap_or_else(|| panic!("alice's ceil in {text}"))
        * 8.0) as u64;
    assert!(
        rate_matches(&kernel.ceil, ceil, 0) && ceil < BWCAP_BITS,
        "the metrics show the applied cap {} ({ceil})",
        kernel.ceil
    );
    #[allow(clippy::cast_precision_loss)]
    let sent_f = sent as f64;
    assert_eq!(
        prom_value(
            &text,
            r#"bwmon_slice_used_bytes{slice="pl_alice",class="low"}"#
        ),
        Some(sent_f)
    );
    assert_eq!(
        prom_value(&text, r#"bwmon_slice_capped{slice="pl_bob",class="low"}"#),
        Some(0.0)
    );
    // Issue 13: counters and the sync's own time, for a fleet.
    assert_eq!(prom_value(&text, "bwmon_caps_total"), Some(1.0), "{text}");
    assert_eq!(
        prom_value(&text, "bwmon_mails_failed_total"),
        Some(0.0),
        "{text}"
    );
    let took = prom_value(&text, "bwmon_sync_duration_seconds")
        .unwrap_or_else(|| panic!("the sync's duration in {text}"));
    assert!(took > 0.0 && took < 60.0, "a sync takes {took} s");
}

// ---------------------------------------------------------------------------
// teardown

/// The contract: teardown removes the root qdisc, keeps the state (with the
/// slices' usage) but forgets the hierarchy, so a later sync exits 69 saying
/// `bwmon init`; after `init`, sync recreates the classes carrying usage.
#[test]
fn teardown_removes_the_hierarchy_and_keeps_the_state() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let used = sb.ns.send(low(ALICE.1), 20, 10_000);
    sb.sync(&at(HOUR), &alice_and_bob());

    let out = sb.run_bwmon(&at(HOUR + MIN), &["teardown"], None);
    assert_exit(&out, 0, "teardown");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let qdiscs = sb.ns.tc(&["qdisc", "show", "dev", "lo"]);
    assert!(!qdiscs.contains("htb"), "root qdisc gone: {qdiscs}");
    assert!(sb.ns.classes().is_empty(), "every class gone");
    let state = fs::read_to_string(&sb.state).expect("the state file is kept");
    assert!(state.contains(ALICE.0) && state.contains(BOB.0), "{state}");

    // Status still shows the usage (from the state), with one warning.
    let out = sb.run_bwmon(&at(HOUR + 2 * MIN), &["status", "--format", "json"], None);
    assert_exit(&out, 0, "status after teardown");
    let st: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used"), used);
    let err = stderr(&out);
    assert_eq!(
        err.lines().count(),
        1,
        "no hierarchy on the device: one warning on stderr: {err:?}"
    );
    assert!(err.starts_with("bwmon: "));

    // Teardown again: nothing to do.
    let out = sb.run_bwmon(&at(HOUR + 3 * MIN), &["teardown"], None);
    assert_exit(&out, 0, "second teardown");

    // sync does not rebuild what the operator removed.
    let before = fs::read(&sb.state).unwrap();
    let out = sb.sync_raw(&at(HOUR + 5 * MIN), &alice_and_bob());
    assert_exit(&out, 69, "sync after teardown");
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bwmon: ") && err.contains("bwmon init"),
        "{err}"
    );
    assert_eq!(fs::read(&sb.state).unwrap(), before, "state unchanged");
    assert!(!sb.ns.tc(&["qdisc", "show", "dev", "lo"]).contains("htb"));

    // After init, sync recreates the classes and carries the usage.
    sb.init(&at(HOUR + 10 * MIN), Some(BWCAP));
    sb.sync(&at(HOUR + 15 * MIN), &alice_and_bob());
    assert!(sb.ns.class(low(ALICE.1)).is_some() && sb.ns.class(i2(BOB.1)).is_some());
    let st = sb.status_json(&at(HOUR + 15 * MIN), &[], 0);
    let alice = slice(&st, ALICE.0);
    assert_eq!(
        u(&alice["low"]["used_bytes"], "used"),
        used,
        "usage carried"
    );
    assert_eq!(alice["period_start"], T0, "same period");
    let more = sb.ns.send(low(ALICE.1), 5, 1000);
    let st = sb.status_json(&at(HOUR + 20 * MIN), &[], 0);
    assert_eq!(
        u(&slice(&st, ALICE.0)["low"]["used_bytes"], "used"),
        used + more,
        "carried + the new class's counter"
    );
}
