//! Real-kernel tests of the history file and `bwmon history` (issue 13,
//! item 2): a simulated week of daily periods (`--now`) with real packets in
//! a slice's classes, each period's record checked against what the kernel's
//! counters (`tc -s class show`) counted in it; a torn last line, and a run
//! killed between its append and its save, survived.
//!
//! Needs root, as tests/kernel.rs; under `CI=true` failing instead of skipping.

mod common;

use common::mid::{self, SEND_PACKETS, SEND_PAYLOAD};
use common::{
    ALICE, BOB, DAY, HOUR, Sandbox, T0, alice_and_bob, alice_only, assert_exit, at, i2, low,
    or_skip, stderr, stdout,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;

/// What the kernel counted in a slice's two classes: (low, i2) `Sent` bytes.
fn counters(sb: &Sandbox, xid: u32) -> (u64, u64) {
    let classes = sb.ns.classes();
    let sent = |minor: u32| {
        classes
            .get(&minor)
            .unwrap_or_else(|| panic!("class 1:{minor:x} missing"))
            .sent
    };
    (sent(low(xid)), sent(i2(xid)))
}

/// `bwmon history --format json ARGS` at `now`, which must exit `code`.
#[track_caller]
fn history_json(sb: &Sandbox, now: &str, args: &[&str], code: i32) -> Value {
    sb.json_of(now, &["history"], args, code)
}

/// Every period in a history document, as shown (newest first).
fn all(doc: &Value) -> &[Value] {
    doc["periods"].as_array().expect("periods is an array")
}

/// The periods of `name` in a history document, oldest first:
/// (start, low bytes, i2 bytes).
fn periods_of(doc: &Value, name: &str) -> Vec<(String, u64, u64)> {
    let mut v: Vec<(String, u64, u64)> = all(doc)
        .iter()
        .filter(|p| p["name"] == name)
        .map(|p| {
            (
                p["start"].as_str().expect("start").to_string(),
                p["low_bytes"].as_u64().expect("low_bytes"),
                p["i2_bytes"].as_u64().expect("i2_bytes"),
            )
        })
        .collect();
    v.reverse();
    v
}

fn total_of(doc: &Value, name: &str) -> (u64, u64, u64) {
    let t = doc["totals"]
        .as_array()
        .expect("totals")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no total for {name}: {doc:#}"));
    (
        t["periods"].as_u64().expect("periods"),
        t["low_bytes"].as_u64().expect("low_bytes"),
        t["i2_bytes"].as_u64().expect("i2_bytes"),
    )
}

/// Seven days of one-day periods. Each day Alice sends into both classes
/// (the first day past her threshold, so she is capped and mailed), a sync
/// at 22:00 counts it, and the next day's first sync rolls her period over.
/// Bob is removed on day 3: his dead record expires with his period. A torn
/// line is appended to the file on day 5 and survived. `bwmon history`'s
/// figures are then exactly the kernel counters' deltas per period.
#[test]
fn a_simulated_week_is_recorded_as_the_kernel_counted_it() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let _sink = sb.ns.udp_sink();
    let file = sb.path("history.jsonl");
    // (period start, low, i2) as the kernel counted each of Alice's periods.
    let mut expected: Vec<(String, u64, u64)> = Vec::new();
    let mut at_start = counters(&sb, ALICE.1);
    assert_eq!(at_start, (0, 0), "classes made at T0");
    let mut start = T0.to_string();
    let mut bob_removed = false;
    for day in 0..7u64 {
        let base = day * DAY;
        if day == 0 {
            mid::send_over(&sb, low(ALICE.1));
        } else {
            sb.ns
                .send(low(ALICE.1), 20 * usize::try_from(day).unwrap(), 1000);
        }
        sb.ns
            .send(i2(ALICE.1), 3, 500 + 100 * usize::try_from(day).unwrap());
        let live = if day >= 3 {
            alice_only()
        } else {
            alice_and_bob()
        };
        if day == 3 {
            bob_removed = true;
        }
        sb.sync(&at(base + 22 * HOUR), &live);
        if day == 5 {
            // A run killed while writing: half a line, no newline.
            let mut f = fs::OpenOptions::new().append(true).open(&file).unwrap();
            f.write_all(br#"{"name":"pl_alice","xid":257,"start":"2024-03"#)
                .unwrap();
        }
        let before_rollover = counters(&sb, ALICE.1);
        let next = at(base + DAY + 5 * 60);
        let out = sb.sync(&next, &live);
        if day == 5 {
            assert!(
                stderr(&out).contains(&file.display().to_string())
                    && stderr(&out).contains("cut short"),
                "the torn line is reported: {}",
                stderr(&out)
            );
        }
        expected.push((
            start.clone(),
            before_rollover.0 - at_start.0,
            before_rollover.1 - at_start.1,
        ));
        at_start = counters(&sb, ALICE.1);
        assert_eq!(
            at_start, before_rollover,
            "no traffic between the two reads"
        );
        start = next;
    }
    assert!(bob_removed);
    assert_eq!(sb.mails().len(), 1, "capped and mailed on day 0 only");

    let now = at(8 * DAY);
    let doc = history_json(&sb, &now, &[], 0);
    eprintln!("{doc:#}");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(periods_of(&doc, ALICE.0), expected);
    let (n, lo, i2_total) = total_of(&doc, ALICE.0);
    assert_eq!(n, 7);
    assert_eq!(lo, expected.iter().map(|e| e.1).sum::<u64>());
    assert_eq!(i2_total, expected.iter().map(|e| e.2).sum::<u64>());
    assert!(
        expected[0].1 >= SEND_PACKETS as u64 * SEND_PAYLOAD as u64,
        "day 0 crossed the threshold: {expected:?}"
    );
    let day0 = all(&doc).iter().rfind(|p| p["name"] == ALICE.0).unwrap();
    assert_eq!(day0["capped"], true, "{day0}");
    assert_eq!(day0["mailed"], true, "{day0}");
    assert_eq!(day0["capped_at"], "2024-03-01T22:00:00Z");
    assert!(day0["low_lowest_ceil_bps"].as_u64().unwrap() < mid::BWCAP_BITS);
    let day1 = all(&doc)
        .iter()
        .filter(|p| p["name"] == ALICE.0)
        .nth(5)
        .unwrap();
    assert_eq!(
        (&day1["capped"], &day1["capped_at"], &day1["mailed"]),
        (&Value::Bool(false), &Value::Null, &Value::Bool(false)),
        "the cap is gone with its period: {day1}"
    );
    // Newest first.
    let ends: Vec<&str> = all(&doc)
        .iter()
        .map(|p| p["end"].as_str().unwrap())
        .collect();
    assert!(ends.windows(2).all(|w| w[0] >= w[1]), "{ends:?}");

    // Bob: three periods (days 0-2) and the record of his removal on day 3,
    // written when his period was over.
    let bob: Vec<&Value> = all(&doc).iter().filter(|p| p["name"] == BOB.0).collect();
    assert_eq!(bob.len(), 4, "{bob:?}");
    assert_eq!(bob[0]["removed"], true);
    assert_eq!(bob[0]["xid"], BOB.1);
    assert_eq!(bob[0]["start"], at(3 * DAY + 5 * 60));

    // The torn line is skipped when read, named by file and line number.
    let out = sb.run_bwmon(&now, &["history", ALICE.0], None);
    assert_exit(&out, 0, "history table");
    let err = stderr(&out);
    assert!(
        err.contains(&file.display().to_string()) && err.contains("line "),
        "the torn line is named: {err}"
    );
    let table = stdout(&out);
    eprintln!("bwmon history {}:\n{table}", ALICE.0);
    assert!(
        table.contains("Totals:") && table.contains("7 periods"),
        "{table}"
    );
    assert!(table.lines().all(|l| l.len() <= 80), "{table}");

    // --since a day, and csv.
    let since = history_json(&sb, &now, &[ALICE.0, "--since", "2024-03-05"], 0);
    assert_eq!(periods_of(&since, ALICE.0), expected[4..].to_vec());
    let out = sb.run_bwmon(&now, &["history", "--format", "csv", ALICE.0], None);
    assert_exit(&out, 0, "history csv");
    let csv = stdout(&out);
    assert!(
        csv.starts_with("name,xid,start,end,low_bytes,i2_bytes,"),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 1 + 7, "{csv}");
    // An unknown name: exit 3, as status; the known ones still shown.
    let doc = history_json(&sb, &now, &[ALICE.0, "pl_nobody"], 3);
    assert_eq!(periods_of(&doc, ALICE.0).len(), 7);
}

/// A run killed after its append and before its save: the next run ends the
/// same period again and appends it again, with the bytes counted since.
/// `bwmon history` shows it once, with the later figures, and they are what
/// the kernel counted up to the run whose save stood.
#[test]
fn a_run_killed_between_append_and_save_neither_loses_nor_doubles_a_period() {
    let sb = or_skip!(mid::synced(&alice_only()));
    let _sink = sb.ns.udp_sink();
    let first = sb.ns.send(low(ALICE.1), 40, 1000);
    sb.sync(&at(20 * HOUR), &alice_only());
    let saved = fs::read(&sb.state).unwrap();
    sb.sync(&at(DAY + 60), &alice_only());
    // As if killed before the save: the state of before the rollover.
    fs::write(&sb.state, &saved).unwrap();
    let file = sb.path("history.jsonl");
    let lines = |name: &str| {
        fs::read_to_string(&file)
            .unwrap()
            .lines()
            .filter(|l| l.contains(&format!("\"name\":\"{name}\"")))
            .count()
    };
    assert_eq!(lines(ALICE.0), 1);
    let more = sb.ns.send(low(ALICE.1), 10, 1000);
    assert!(more > first);
    sb.sync(&at(DAY + 15 * 60), &alice_only());
    assert_eq!(lines(ALICE.0), 2, "appended again by the run that saved");

    let doc = history_json(&sb, &at(2 * DAY), &[ALICE.0], 0);
    let periods = periods_of(&doc, ALICE.0);
    assert_eq!(periods, vec![(T0.to_string(), more, 0)], "{doc:#}");
    assert_eq!(total_of(&doc, ALICE.0), (1, more, 0));
    // And the next period started at the run whose save stood.
    let status = sb.status_json(&at(DAY + 16 * 60), &[ALICE.0], 0);
    assert_eq!(
        common::slice(&status, ALICE.0)["period_start"],
        at(DAY + 15 * 60)
    );
}

/// `bwmon reset` ends a period too: its record holds what was counted.
#[test]
fn reset_records_the_period_it_cuts_short() {
    let sb = or_skip!(mid::synced(&alice_only()));
    let _sink = sb.ns.udp_sink();
    let sent = sb.ns.send(low(ALICE.1), 30, 1000);
    let out = sb.run_bwmon(&at(3 * HOUR), &["reset", ALICE.0], None);
    assert_exit(&out, 0, "reset");
    let doc = history_json(&sb, &at(4 * HOUR), &[], 0);
    let by_name: BTreeMap<&str, &Value> = all(&doc)
        .iter()
        .map(|p| (p["name"].as_str().unwrap(), p))
        .collect();
    assert_eq!(by_name.len(), 1, "only Alice's period ended: {doc:#}");
    let p = by_name[ALICE.0];
    assert_eq!(
        (p["low_bytes"].as_u64(), p["end"].as_str()),
        (Some(sent), Some(at(3 * HOUR).as_str()))
    );
}
