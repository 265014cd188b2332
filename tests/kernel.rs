//! Real-kernel tests: the built `bwmon` drives tc HTB on `lo` inside a network
//! namespace of its own per test, real packets go into the slices' classes, and
//! the tests read back what the kernel holds and what sendmail received.
//!
//! Needs root (`CAP_NET_ADMIN`, `ip netns`). Without it the tests print a line and
//! pass, except under `CI=true`, where they fail. Time comes only from `--now`
//! (offsets from `T0`); the only sleeping is the sender's pacing and the wait for
//! a class's backlog to drain.

mod common;

use common::mid::{self, BWCAP, BWCAP_BITS, MID_LIMIT, MIN_RATE, assert_low_cap, assert_uncapped};
use common::node::wire;
use common::{
    ALICE, BOB, DAY, HOUR, MIN, Sandbox, Settings, T0, alice_and_bob, alice_only, assert_exit,
    assert_rate, at, bob_only, expected_ceil, i2, low, or_skip, parse_rate, slivers, write_script,
};

/// Parses a rate as bwmon may write it in a mail (`312kbit`, `1.2Mbit`, `999bit`).
fn mail_rate(text: &str) -> Option<f64> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = text.split_at(end);
    let num: f64 = num.parse().ok()?;
    let mult = match unit.to_ascii_lowercase().as_str() {
        "bit" => 1.0,
        "kbit" => 1e3,
        "mbit" => 1e6,
        "gbit" => 1e9,
        "kibit" => 1024.0,
        "mibit" => 1_048_576.0,
        _ => return None,
    };
    Some(num * mult)
}

// ---------------------------------------------------------------------------

/// SPEC §4 and §10 (init): the hierarchy as built, and a second `init` that only
/// changes the cap, keeping an existing slice class, its ceil and its counter.
#[test]
fn init_builds_hierarchy_and_reinit_changes_only_the_cap() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let out = sb.init(T0, Some("10mbit"));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("quantum"),
        "interior classes need an explicit quantum (kernel warning leaked)"
    );

    let root = sb.ns.root_qdisc();
    assert!(root.starts_with("qdisc htb 1: root"), "root qdisc: {root}");
    assert!(
        root.contains("default 0x1fff") || root.contains("default 1fff"),
        "root qdisc default class: {root}"
    );

    let classes = sb.ns.classes();
    let parent_of = |minor: u32| classes.get(&minor).map(|c| c.parent.clone());
    assert_eq!(
        parent_of(0x1),
        Some(None),
        "1:1 under the qdisc: {classes:?}"
    );
    assert_eq!(parent_of(0x10), Some(Some("1:1".into())));
    assert_eq!(parent_of(0x100), Some(Some("1:10".into())));
    assert_eq!(parent_of(0x20), Some(Some("1:1".into())));
    assert_eq!(parent_of(0x1fff), Some(Some("1:100".into())));
    assert_eq!(parent_of(0x2fff), Some(Some("1:20".into())));
    assert_eq!(classes[&0x10].ceil, "10Mbit", "node cap = --bwcap");
    assert_eq!(classes[&0x100].ceil, "10Mbit", "1:100 ceil = bwcap");
    assert_eq!(
        classes[&0x20].ceil, "1Gbit",
        "exempt ceil = bwmax (default 1gbit)"
    );
    assert!(
        !classes.contains_key(&0x1000),
        "root's classes come with the first sync, not init"
    );
    let leaves = sb.ns.qdiscs_by_parent();
    assert_eq!(leaves.get("1:1fff").map(String::as_str), Some("pfifo"));
    assert_eq!(leaves.get("1:2fff").map(String::as_str), Some("pfifo"));

    // A slice with some counted traffic.
    sb.sync(&at(MIN), &alice_only());
    let sent = sb.ns.send(low(ALICE.1), 10, 1000);
    assert_eq!(sent, 10 * wire(1000));
    let before = sb.ns.class(low(ALICE.1)).expect("alice's low class");
    assert_eq!(before.ceil, "10Mbit", "a slice's max rate is the node cap");

    // Re-init with another cap: hierarchy updated, the slice untouched.
    sb.init(&at(2 * MIN), Some("20mbit"));
    let classes = sb.ns.classes();
    assert_eq!(
        classes[&0x10].ceil, "20Mbit",
        "re-init changes the node cap"
    );
    assert_eq!(classes[&0x100].ceil, "20Mbit");
    let after = classes
        .get(&low(ALICE.1))
        .expect("alice's class survives init");
    assert_eq!(after.ceil, before.ceil, "init keeps the slice's ceil");
    assert_eq!(after.rate, before.rate, "init keeps the slice's rate");
    assert_eq!(
        after.sent, sent,
        "init keeps the slice's counter (no re-creation)"
    );
    assert!(classes.contains_key(&i2(ALICE.1)));
    assert_eq!(
        sb.ns.qdiscs_by_parent().get("1:1101").map(String::as_str),
        Some("pfifo")
    );

    // init without --bwcap keeps the cap it finds.
    sb.init(&at(3 * MIN), None);
    assert_eq!(sb.ns.class(0x10).unwrap().ceil, "20Mbit");

    // The next sync brings the slice's max rate to the new node cap.
    sb.sync(&at(4 * MIN), &alice_only());
    let class = sb.ns.class(low(ALICE.1)).unwrap();
    assert_eq!(class.ceil, "20Mbit", "max rate follows the node cap");
    assert_eq!(class.sent, sent);
}

/// Issue 10 / SPEC §4: bwmon talks to the kernel over rtnetlink and spawns
/// no `tc` at all — not the configured one (the sandbox's logging wrapper)
/// and not one found on PATH (a logging `tc` put first on PATH here) — for
/// init, a first sync of new slices, a steady sync, status, reset and
/// teardown; a steady sync is silent.
#[test]
fn no_command_spawns_tc() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let shadow = sb.dir.path().join("path");
    std::fs::create_dir(&shadow).unwrap();
    let path_log = sb.dir.path().join("path-tc.log");
    write_script(
        &shadow.join("tc"),
        &format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexit 1\n",
            path_log.display()
        ),
    );
    let path = format!(
        "{}:{}",
        shadow.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |now: &str, args: &[&str], input: &str| {
        let out = sb.run_env(now, args, input.as_bytes(), &[("PATH", &path)]);
        assert_exit(&out, 0, &args.join(" "));
        out
    };
    run(T0, &["init", "--bwcap", BWCAP], "");
    run(&at(MIN), &["sync"], &alice_and_bob());
    let steady = run(&at(2 * MIN), &["sync"], &alice_and_bob());
    assert!(
        steady.stdout.is_empty() && steady.stderr.is_empty(),
        "a steady sync is silent"
    );
    run(&at(3 * MIN), &["status"], "");
    run(&at(4 * MIN), &["reset", ALICE.0], "");
    let classes_now = sb.ns.classes();
    assert!(
        classes_now.contains_key(&low(BOB.1)),
        "the runs did their work"
    );
    run(&at(5 * MIN), &["teardown"], "");
    assert!(sb.ns.classes().is_empty(), "teardown removed the classes");
    assert_eq!(
        sb.tc_spawns(),
        Vec::<String>::new(),
        "configured tc spawned"
    );
    let on_path = std::fs::read_to_string(&path_log).unwrap_or_default();
    assert_eq!(on_path, "", "tc on PATH spawned");
}

/// SPEC §4 (writing): a first sync creates root's and every live slice's
/// classes, each with its pfifo leaf, in one batch; 50 slices at once too.
#[test]
fn first_sync_creates_every_class_and_leaf() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    sb.init(T0, Some(BWCAP));
    sb.sync(&at(MIN), &alice_and_bob());

    let classes = sb.ns.classes();
    let leaves = sb.ns.qdiscs_by_parent();
    for xid in [0, ALICE.1, BOB.1] {
        for (minor, parent, ceil) in [(low(xid), "1:100", "1Gbit"), (i2(xid), "1:20", "1Gbit")] {
            let c = classes
                .get(&minor)
                .unwrap_or_else(|| panic!("class 1:{minor:x} missing: {classes:?}"));
            assert_eq!(c.parent.as_deref(), Some(parent), "{c:?}");
            assert_eq!(c.rate, "1Kbit", "rate = min rate (bwmin): {c:?}");
            assert_eq!(c.ceil, ceil, "{c:?}");
            assert_eq!(c.quantum, Some(1600), "quantum = share * 1600: {c:?}");
            assert_eq!(
                leaves.get(&format!("1:{minor:x}")).map(String::as_str),
                Some("pfifo"),
                "pfifo leaf of 1:{minor:x}"
            );
        }
    }

    // 50 slices at once on a fresh node.
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    sb.init(T0, Some(BWCAP));
    let names: Vec<String> = (0..50).map(|i| format!("pl_s{i:02}")).collect();
    let records: Vec<(&str, u32, &str)> = names
        .iter()
        .zip(300..)
        .map(|(n, xid)| (n.as_str(), xid, "{}"))
        .collect();
    sb.sync(&at(MIN), &slivers(&records));
    let classes = sb.ns.classes();
    let leaves = sb.ns.qdiscs_by_parent();
    for (_, xid, _) in &records {
        for minor in [low(*xid), i2(*xid)] {
            assert!(classes.contains_key(&minor), "class 1:{minor:x} missing");
            assert!(
                leaves.contains_key(&format!("1:{minor:x}")),
                "leaf of 1:{minor:x}"
            );
        }
    }
}

/// SPEC §1, §5 step 8–9, §6: traffic over the threshold caps the class by the
/// formula at the next sync and mails the list and the slice once.
#[test]
fn traffic_over_threshold_caps_by_formula_and_mails() {
    const KBYTE: u64 = 50_000;
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    // Alice's quota comes from her rspec (KiB), Bob stays on the default (100 KiB).
    let live = slivers(&[
        (
            ALICE.0,
            ALICE.1,
            &format!(r#"{{"net_max_kbyte": {KBYTE}}}"#),
        ),
        (BOB.0, BOB.1, "{}"),
    ]);
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, &live);

    let used = sb.ns.send(low(ALICE.1), 690, 60_000);
    assert_eq!(used, 690 * wire(60_000));
    let limit = KBYTE * 1024;
    assert!(used * 100 >= limit * 80 && used < limit);

    sb.sync(&at(6 * HOUR), &live);
    let expected = expected_ceil(limit, used, DAY, 6 * HOUR, MIN_RATE, BWCAP_BITS);
    assert!(
        expected > MIN_RATE,
        "test design: formula above min rate ({expected})"
    );
    let alice = sb.ns.class(low(ALICE.1)).unwrap();
    assert_rate(&alice.ceil, expected, "alice's capped low ceil");
    assert_uncapped(&sb, i2(ALICE.1));
    assert_uncapped(&sb, low(BOB.1));
    assert_uncapped(&sb, i2(BOB.1));
    assert_uncapped(&sb, low(0));

    let mails = sb.mails();
    assert_eq!(mails.len(), 1, "exactly one mail: {mails:#?}");
    let mail = &mails[0];
    eprintln!(
        "alice's low class: {alice:?}\nmail argv {:?}\n{}",
        mail.argv, mail.message
    );
    assert!(
        mail.argv
            .windows(4)
            .any(|w| w == ["-N", "never", "-t", "-fsupport@example.org"]),
        "sendmail argv: {:?}",
        mail.argv
    );
    for (name, value) in [
        ("To", "mom@example.org, pl_alice@slices.example.org"),
        (
            "Subject",
            "pl_mom capped bandwidth of slice pl_alice on node1.example.org",
        ),
        ("From", "ExampleLab Support <support@example.org>"),
        ("Reply-To", "ExampleLab Support <support@example.org>"),
    ] {
        assert_eq!(mail.header(name).as_deref(), Some(value), "{name}");
    }
    assert!(
        mail.header("Content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "{}",
        mail.message
    );
    assert!(
        mail.header("X-Mailer")
            .is_some_and(|v| v.starts_with("bwmon/")),
        "{}",
        mail.message
    );
    let body = mail.body();
    assert!(
        body.contains("low bandwidth"),
        "body names the class: {body}"
    );
    assert!(
        !body.contains("exempt"),
        "only the low class is capped: {body}"
    );
    assert!(
        body.contains("pl_alice") && body.contains("node1.example.org"),
        "{body}"
    );
    assert!(body.contains("per day"), "period named as a day: {body}");
    // 50,000 KiB, in the IEC units `status` uses too (issue 13).
    assert!(body.contains("48.8 MiB"), "limit in IEC units: {body}");
    assert!(
        body.contains("Mar  1 00:00:00 2024"),
        "period start, asctime: {body}"
    );
    assert!(
        body.contains("Mar  2 00:00:00 2024"),
        "period end, asctime: {body}"
    );
    assert!(body.contains("bwcap pl_alice"), "footer line: {body}");
    // The cap named in the mail is the one applied.
    let cap = body
        .split("capped at ")
        .nth(1)
        .and_then(|rest| rest.split("/s").next())
        .and_then(mail_rate)
        .unwrap_or_else(|| panic!("mail names the new ceil as `capped at RATE/s`: {body}"));
    let (printed, unit) = parse_rate(&alice.ceil);
    let (printed, unit) = (
        u32::try_from(printed).unwrap(),
        u32::try_from(unit).unwrap(),
    );
    assert!(
        (cap - f64::from(printed)).abs() <= f64::from(unit).max(cap * 0.01) + 16.0,
        "mail says {cap} bit/s, tc shows {}",
        alice.ceil
    );
}

/// SPEC §5 step 9: one mail per period; the cap is recomputed at every run.
#[test]
fn second_sync_in_period_keeps_cap_without_second_mail() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));
    mid::sync_still_capped(&sb, &alice_only(), used, 22 * HOUR + 30 * MIN);
    assert_eq!(sb.mails().len(), 1, "no second mail in the same period");
}

/// SPEC §5 step 8: at the end of the period the cap is lifted and a new period
/// (with a fresh mail) begins.
#[test]
fn new_period_lifts_cap_and_allows_a_new_mail() {
    let (sb, first) = or_skip!(mid::alice_capped(&alice_only()));

    let start2 = DAY + MIN;
    sb.sync(&at(start2), &alice_only());
    assert_uncapped(&sb, low(ALICE.1));
    assert_eq!(sb.mails().len(), 1, "lifting a cap sends no mail");

    let total = mid::send_over(&sb, low(ALICE.1));
    let used = total - first;
    sb.sync(&at(start2 + 22 * HOUR), &alice_only());
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR);
    let mails = sb.mails();
    assert_eq!(mails.len(), 2, "the new period's first cap is mailed");
    assert_eq!(
        mails[1].header("Subject").as_deref(),
        Some("pl_mom capped bandwidth of slice pl_alice on node1.example.org")
    );
}

/// SPEC §5 steps 6–7, §9.4: removing and re-adding a slice within its period
/// does not buy a fresh quota: it comes back capped at once, without a new mail.
#[test]
fn removed_and_readded_slice_keeps_usage_and_mail_flag() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_and_bob()));

    sb.sync(&at(22 * HOUR + 10 * MIN), &bob_only());
    let classes = sb.ns.classes();
    assert!(
        !classes.contains_key(&low(ALICE.1)),
        "alice's low class removed"
    );
    assert!(
        !classes.contains_key(&i2(ALICE.1)),
        "alice's i2 class removed"
    );
    assert!(classes.contains_key(&low(BOB.1)), "bob untouched");
    let leaves = sb.ns.qdiscs_by_parent();
    assert!(!leaves.contains_key("1:1101") && !leaves.contains_key("1:2101"));

    sb.sync(&at(22 * HOUR + 20 * MIN), &alice_and_bob());
    let class = sb.ns.class(low(ALICE.1)).expect("alice's class re-created");
    assert_eq!(class.sent, 0, "a fresh kernel class");
    assert!(sb.ns.class(i2(ALICE.1)).is_some());
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR + 20 * MIN);
    assert_uncapped(&sb, low(BOB.1));
    assert_eq!(sb.mails().len(), 1, "no second mail for the same period");
}

/// SPEC §5 steps 1 and 4, §9.6: the qdisc vanishes (reboot, someone's
/// `tc qdisc del`); the next sync rebuilds it from the state and the usage
/// already counted still caps the slice.
#[test]
fn lost_qdisc_rebuilt_by_sync_carries_usage() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));
    sb.ns.tc(&["qdisc", "del", "dev", "lo", "root"]);
    assert!(sb.ns.classes().is_empty());

    let out = sb.sync(&at(22 * HOUR + 10 * MIN), &alice_only());
    assert!(
        !out.stderr.is_empty(),
        "rebuilding a lost hierarchy is said on stderr"
    );
    assert_eq!(
        sb.ns.class(0x10).expect("1:10 rebuilt").ceil,
        "1Gbit",
        "cap from state"
    );
    assert!(sb.ns.class(0x1fff).is_some(), "default class rebuilt");
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR + 10 * MIN);

    mid::sync_still_capped(&sb, &alice_only(), used, 22 * HOUR + 20 * MIN);
    assert_eq!(sb.mails().len(), 1, "still the same period: no new mail");
}

/// As above, with the operator running `bwmon init` after the loss.
#[test]
fn lost_qdisc_rebuilt_by_init_carries_usage() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));
    sb.ns.tc(&["qdisc", "del", "dev", "lo", "root"]);

    sb.init(&at(22 * HOUR + 5 * MIN), Some(BWCAP));
    mid::sync_still_capped(&sb, &alice_only(), used, 22 * HOUR + 10 * MIN);
    mid::sync_still_capped(&sb, &alice_only(), used, 22 * HOUR + 20 * MIN);
    assert_eq!(sb.mails().len(), 1);
}

/// SPEC §5 step 3: a slice-form class with no slice is an orphan and goes;
/// a class of another form under 1:100 is someone else's and stays.
#[test]
fn orphan_slice_classes_removed_foreign_forms_kept() {
    let sb = or_skip!(Sandbox::synced(&Settings::default(), BWCAP, &alice_only()));
    let htb = |parent: &str, classid: &str| {
        sb.ns.tc(&[
            "class", "add", "dev", "lo", "parent", parent, "classid", classid, "htb", "rate",
            "1000bit", "ceil", "1mbit", "quantum", "1600",
        ]);
    };
    htb("1:100", "1:1abc");
    sb.ns
        .tc(&["qdisc", "add", "dev", "lo", "parent", "1:1abc", "pfifo"]);
    htb("1:20", "1:2abc");
    htb("1:100", "1:500");

    sb.sync(&at(MIN), &alice_only());
    let classes = sb.ns.classes();
    assert!(!classes.contains_key(&0x1abc), "orphan 1:1abc removed");
    assert!(!classes.contains_key(&0x2abc), "orphan 1:2abc removed");
    let foreign = classes
        .get(&0x500)
        .expect("1:500 is not bwmon's: left alone");
    assert_eq!(foreign.parent.as_deref(), Some("1:100"));
    assert_eq!(foreign.ceil, "1Mbit");
    assert!(classes.contains_key(&low(ALICE.1)) && classes.contains_key(&low(0)));

    sb.sync(&at(2 * MIN), &alice_only());
    assert!(sb.ns.class(0x500).is_some(), "still left alone");
}

/// SPEC §5 step 1: no hierarchy and no state to rebuild it from → exit 69,
/// nothing created.
#[test]
fn sync_without_hierarchy_or_state_exits_69() {
    let sb = or_skip!(Sandbox::new(&Settings::default()));
    let out = sb.sync_raw(T0, &alice_only());
    assert_exit(&out, 69, "sync without init");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("init"),
        "tells the operator to run `bwmon init`"
    );
    let root = sb.ns.root_qdisc();
    assert!(!root.contains("htb"), "no qdisc created: {root}");
    assert!(sb.ns.classes().is_empty());
    assert!(!sb.state.exists(), "no state written");
    assert!(sb.mails().is_empty());
}

/// SPEC §1, §5 step 8: elapsed is clamped to period - 1 and the period ends exactly
/// at start + period — judged by `--now` alone (the wall clock is years later).
#[test]
fn period_boundaries_follow_now() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));

    mid::sync_still_capped(&sb, &alice_only(), used, DAY - 1);

    sb.sync(&at(DAY), &alice_only());
    assert_uncapped(&sb, low(ALICE.1));
    assert_eq!(sb.mails().len(), 1);
}

/// SPEC §9.1: a slice over only its exempt (i2) quota is capped there and mailed
/// about its "exempt" class (issue 13: one name for it); its low class stays at max.
#[test]
fn i2_traffic_caps_only_the_i2_class() {
    let sb = or_skip!(mid::synced(&alice_and_bob()));
    let used = mid::send_over(&sb, i2(ALICE.1));
    sb.sync(&at(22 * HOUR), &alice_and_bob());

    // i2 max rate = bwmax (1gbit by default).
    let expected = expected_ceil(MID_LIMIT, used, DAY, 22 * HOUR, MIN_RATE, BWCAP_BITS);
    let class = sb.ns.class(i2(ALICE.1)).unwrap();
    assert_rate(&class.ceil, expected, "alice's capped i2 ceil");
    assert_uncapped(&sb, low(ALICE.1));
    assert_uncapped(&sb, i2(BOB.1));

    let mails = sb.mails();
    assert_eq!(mails.len(), 1, "{mails:#?}");
    let body = mails[0].body();
    assert!(body.contains("to exempt destinations"), "{body}");
    assert!(!body.contains("low bandwidth"), "{body}");
    assert!(!body.contains("high bandwidth"), "{body}");
}

/// SPEC §5 step 9: the mail flag is set only when sendmail exits 0; a failed mail
/// is retried at the next run, and the cap is applied either way.
#[test]
fn failed_mail_is_retried_and_cap_applied_anyway() {
    let sb = or_skip!(mid::synced(&alice_only()));
    let used = mid::send_over(&sb, low(ALICE.1));

    std::fs::write(sb.maildir.join("exit-code"), "75").unwrap();
    let out = sb.sync_raw(&at(22 * HOUR), &alice_only());
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "a failed mail is not a failed run: {:?}",
        out.status
    );
    assert!(!out.stderr.is_empty(), "the failed mail is reported");
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR);
    assert_eq!(sb.mails().len(), 1, "the mail was tried");

    std::fs::remove_file(sb.maildir.join("exit-code")).unwrap();
    sb.sync(&at(22 * HOUR + 10 * MIN), &alice_only());
    assert_eq!(sb.mails().len(), 2, "retried at the next run");
    sb.sync(&at(22 * HOUR + 20 * MIN), &alice_only());
    assert_eq!(sb.mails().len(), 2, "sent once: not again");
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR + 20 * MIN);

    // Issue 13: the fleet counts it, across runs: one cap begun, one mail failed.
    let out = sb.run_bwmon(
        &at(22 * HOUR + 21 * MIN),
        &["status", "--format", "prometheus"],
        None,
    );
    assert_exit(&out, 0, "status --format prometheus");
    let text = String::from_utf8_lossy(&out.stdout);
    for line in ["bwmon_caps_total 1", "bwmon_mails_failed_total 1"] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
}

/// SPEC §3: a record with a per-slice error (here an xid out of range) is held:
/// its classes and cap stay exactly as they were; the others go on; exit 1 names it.
#[test]
fn held_record_keeps_its_classes_and_cap() {
    let (sb, _) = or_skip!(mid::alice_capped(&alice_and_bob()));
    let before = sb.ns.classes();

    let bad = slivers(&[
        (ALICE.0, 5000, "{}"),
        (BOB.0, BOB.1, "{}"),
        ("pl_carol", 259, "{}"),
    ]);
    let out = sb.sync_raw(&at(22 * HOUR + 10 * MIN), &bad);
    assert_exit(&out, 1, "sync with one bad record");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pl_alice"),
        "exit 1 names the slice"
    );
    let after = sb.ns.classes();
    for minor in [low(ALICE.1), i2(ALICE.1)] {
        let (b, a) = (&before[&minor], after.get(&minor));
        let a = a.unwrap_or_else(|| panic!("held slice's class 1:{minor:x} removed"));
        assert_eq!(
            (&a.rate, &a.ceil),
            (&b.rate, &b.ceil),
            "1:{minor:x} unchanged"
        );
    }
    assert!(after.contains_key(&low(BOB.1)), "the other slices go on");
    assert!(
        after.contains_key(&low(259)),
        "a new slice is still created"
    );
    assert!(
        // 5000 & 0xfff = 904 = 0x388: the alias the 2008 module made.
        !after.contains_key(&(0x1000 | 0x388)),
        "xid 5000 never aliases another xid's classes"
    );
    assert_eq!(sb.mails().len(), 1);
}

/// SPEC §5 step 4: one slice class deleted by hand (its counter gone) is
/// recreated at the next sync, with the usage already counted.
#[test]
fn deleted_slice_class_recreated_with_its_usage() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));
    sb.ns.tc(&[
        "class",
        "del",
        "dev",
        "lo",
        "classid",
        &format!("1:{:x}", low(ALICE.1)),
    ]);
    assert!(sb.ns.class(low(ALICE.1)).is_none());

    sb.sync(&at(22 * HOUR + 10 * MIN), &alice_only());
    let class = sb.ns.class(low(ALICE.1)).expect("recreated");
    assert_eq!(class.parent.as_deref(), Some("1:100"));
    assert_eq!(
        sb.ns.qdiscs_by_parent().get("1:1101").map(String::as_str),
        Some("pfifo")
    );
    assert_low_cap(&sb, ALICE.1, used, 22 * HOUR + 10 * MIN);
    assert_eq!(sb.mails().len(), 1);
}

/// SPEC §7: while another run holds the lock past `lock_wait`, sync exits 75
/// and touches nothing.
#[test]
fn sync_exits_75_while_the_lock_is_held() {
    let sb = or_skip!(Sandbox::synced(
        &Settings {
            lock_wait: "1s",
            ..Settings::default()
        },
        BWCAP,
        &alice_only(),
    ));
    let state_before = std::fs::read(&sb.state).expect("state written by sync");

    let holder = sb.hold_lock();
    let started = std::time::Instant::now();
    let out = sb.sync_raw(&at(MIN), &alice_and_bob());
    assert_exit(&out, 75, "sync with the lock held");
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "waited lock_wait"
    );
    assert!(
        sb.ns.class(low(ALICE.1)).is_some() && sb.ns.class(low(BOB.1)).is_none(),
        "nothing changed while locked out"
    );
    assert_eq!(
        std::fs::read(&sb.state).unwrap(),
        state_before,
        "state untouched"
    );
    assert!(sb.ns.class(low(BOB.1)).is_none());

    holder.unlock().unwrap();
    sb.sync(&at(2 * MIN), &alice_and_bob());
    assert!(sb.ns.class(low(BOB.1)).is_some());
}

/// Issue 10: rates above 4 Gbit/s (the kernel's 32-bit bytes/s field) go
/// through `TCA_HTB_RATE64`/`CEIL64` and read back exactly, so a steady sync
/// on a 10/40 Gbit/s node re-applies nothing.
#[test]
fn rates_above_4_gbit_are_exact() {
    let sb = or_skip!(Sandbox::new(&Settings {
        extra: "bwmax: 40gbit\n".into(),
        ..Settings::default()
    }));
    sb.init(T0, Some("10gbit"));
    sb.sync(&at(MIN), &alice_only());
    let classes = sb.ns.classes();
    let ceil = |minor: u32| classes[&minor].ceil.clone();
    assert_eq!(ceil(0x10), "10Gbit", "node cap");
    assert_eq!(ceil(0x1), "40Gbit", "bwmax");
    assert_eq!(
        ceil(low(ALICE.1)),
        "10Gbit",
        "a slice's max is the node cap"
    );
    assert_eq!(ceil(i2(ALICE.1)), "40Gbit", "i2 max is bwmax");
    let shape = sb.shape();
    let out = sb.sync(&at(2 * MIN), &alice_only());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let changes = sb.shape().changes_since(&shape);
    assert!(
        changes.is_empty(),
        "a steady sync applies nothing: {changes:?}"
    );
    let out = sb.run_bwmon(&at(3 * MIN), &["status", "--format", "json"], None);
    assert_exit(&out, 0, "status");
    let st: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let alice = st["slices"]
        .as_array()
        .and_then(|a| a.iter().find(|s| s["name"] == ALICE.0))
        .expect("alice");
    assert_eq!(alice["low"]["ceil_bps"], 10_000_000_000_u64, "{alice}");
    assert_eq!(alice["i2"]["ceil_bps"], 40_000_000_000_u64, "{alice}");
}
