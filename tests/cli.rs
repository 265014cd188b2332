//! Command-line tests that need no kernel and no root: exit statuses, error
//! messages, logging levels and `--dry-run`, with `tests/fixtures/fake-tc`
//! standing in for tc.
//!
//! The stand-in only prints `dump.txt` and records what it is fed; to keep runs
//! realistic, `common::fake::Fake` holds a small model of the kernel's HTB
//! classes, applies the lines of every batch bwmon sent to it (like the kernel
//! would), and writes the model back to `dump.txt` as iproute2 6.1 prints it.
//! Time comes only from `--now`.

mod common;

use common::fake::{
    BWCAP, BWMAX, DEV, Fake, FakeClass, all_lines_prefixed, expect_code, fake_tc, one_error_line,
    run, stderr, stdout,
};
use common::{BWMON, DAY, HOUR, MIN, T0, at};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

const ALICE: (&str, u32) = ("pl_alice", 257); // 0x101 → 1:1101, 1:2101
const BOB: (&str, u32) = ("pl_bob", 258); // 0x102 → 1:1102, 1:2102

fn slivers(records: &[(&str, u32, &str)]) -> String {
    common::slivers(records)
}

fn alice_and_bob() -> String {
    slivers(&[(ALICE.0, ALICE.1, "{}"), (BOB.0, BOB.1, "{}")])
}

/// init, then a first sync with Alice and Bob; the model holds their classes.
fn fake_with_alice_and_bob() -> Fake {
    let mut fake = Fake::new();
    fake.init();
    fake.sync(T0, &alice_and_bob());
    assert!(fake.classes.contains_key("1:1101") && fake.classes.contains_key("1:2102"));
    fake
}

/// Alice's low quota with the built-in defaults: 5662310 KiB.
const DEFAULT_QUOTA: u64 = 5_662_310 * 1024;

// ---------------------------------------------------------------------------
// 65: bad slivers data, before anything is touched

#[test]
fn bad_json_on_stdin_exits_65() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    let out = fake.run(&at(MIN), &["sync"], b"{\"pl_alice\": {\"name\": ");
    expect_code(&out, 65, "sync with truncated JSON");
    let line = one_error_line(&out, &[], "bad JSON");
    assert!(
        line.to_lowercase().contains("slivers") || line.contains("stdin"),
        "names the slivers input: {line}"
    );
    fake.assert_unchanged(&before, "bad JSON");
}

#[test]
fn empty_stdin_exits_65() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    let out = fake.run(&at(MIN), &["sync"], b"");
    expect_code(&out, 65, "sync with empty stdin");
    let line = one_error_line(&out, &[], "empty stdin");
    assert!(
        line.to_lowercase().contains("slivers") || line.contains("stdin"),
        "names the slivers input: {line}"
    );
    assert!(line.contains("empty"), "says it is empty: {line}");
    fake.assert_unchanged(&before, "empty stdin");
}

#[test]
fn empty_input_file_exits_65_naming_it() {
    let fake = fake_with_alice_and_bob();
    let input = fake.path("slivers.json");
    fs::write(&input, "").unwrap();
    let before = fake.snapshot();
    let out = fake.run(&at(MIN), &["sync", "--input", input.to_str().unwrap()], &[]);
    expect_code(&out, 65, "sync --input EMPTY");
    one_error_line(&out, &[input.to_str().unwrap()], "empty --input file");
    fake.assert_unchanged(&before, "empty --input file");
}

#[test]
fn json_of_wrong_shape_exits_65() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    for text in ["5", "\"pl_alice\"", "null"] {
        let out = fake.run(&at(MIN), &["sync"], text.as_bytes());
        expect_code(&out, 65, &format!("sync with {text}"));
        one_error_line(&out, &[], &format!("JSON {text}"));
        fake.assert_unchanged(&before, &format!("JSON {text}"));
    }
}

#[test]
fn unusable_state_file_exits_65() {
    let fake = Fake::new();
    fs::write(&fake.state, "this: [is not\n  a bwmon state\n").unwrap();
    let before = fake.snapshot();
    let out = fake.run(&at(MIN), &["sync"], alice_and_bob().as_bytes());
    expect_code(&out, 65, "sync with a garbled state file");
    one_error_line(&out, &[fake.state.to_str().unwrap()], "garbled state");
    fake.assert_unchanged(&before, "garbled state");
    let mut names: Vec<String> = fs::read_dir(fake.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "state.yaml.lock" && n != "calls.log")
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "bwmon.yaml",
            "dump.txt",
            "mail",
            "qdisc.txt",
            "sendmail",
            "state.yaml"
        ],
        "nothing moved aside or created"
    );
}

// ---------------------------------------------------------------------------
// 69: no hierarchy, no tc

#[test]
fn no_hierarchy_and_no_state_exits_69_saying_init() {
    let mut fake = Fake::new();
    fake.classes.clear();
    fake.qdisc = false;
    fake.write_dump();
    let before = fake.snapshot();
    let out = fake.run(T0, &["sync"], alice_and_bob().as_bytes());
    expect_code(&out, 69, "sync without hierarchy");
    one_error_line(&out, &["bwmon init", DEV], "no hierarchy");
    assert!(before.state.is_none());
    fake.assert_unchanged(&before, "no hierarchy");
}

/// Same with an HTB tree of someone else's (classes, but no 1:10).
#[test]
fn foreign_htb_without_class_1_10_exits_69() {
    let mut fake = Fake::new();
    fake.classes.clear();
    for (id, parent) in [("1:1", None), ("1:5", Some("1:1")), ("1:30", Some("1:1"))] {
        fake.classes.insert(
            id.into(),
            FakeClass {
                parent: parent.map(str::to_string),
                rate: 1_000_000,
                ceil: BWMAX,
                quantum: Some(1600),
                sent: 12_345,
                leaf: parent.is_some(),
            },
        );
    }
    fake.write_dump();
    let before = fake.snapshot();
    let out = fake.run(T0, &["sync"], alice_and_bob().as_bytes());
    expect_code(&out, 69, "sync on a foreign HTB");
    one_error_line(&out, &["bwmon init"], "no 1:10");
    fake.assert_unchanged(&before, "no 1:10");
}

#[test]
fn missing_tc_exits_69_naming_it() {
    let fake = Fake::with_config("");
    let text = fs::read_to_string(&fake.config).unwrap().replace(
        &format!("tc: {}", fake_tc().display()),
        "tc: /nonexistent/tc",
    );
    fs::write(&fake.config, text).unwrap();
    for (args, stdin) in [
        (vec!["sync"], alice_and_bob()),
        (vec!["init"], String::new()),
        (vec!["reset", ALICE.0], String::new()),
    ] {
        let before = fake.snapshot();
        let out = fake.run(T0, &args, stdin.as_bytes());
        expect_code(&out, 69, &format!("{args:?} without tc"));
        one_error_line(&out, &["/nonexistent/tc"], "tc missing");
        fake.assert_unchanged(&before, "tc missing");
        assert!(fake.calls().is_empty(), "the fake tc was not called");
    }
}

// ---------------------------------------------------------------------------
// 74: state file I/O

#[test]
fn state_under_a_regular_file_exits_74() {
    let fake = Fake::new();
    let blocker = fake.path("file");
    fs::write(&blocker, "not a directory\n").unwrap();
    let state = blocker.join("state.yaml");
    let before = fake.snapshot();
    for args in [vec!["sync"], vec!["init"], vec!["reset", ALICE.0]] {
        let mut full = vec!["--state", state.to_str().unwrap()];
        full.extend(&args);
        let out = fake.run(T0, &full, alice_and_bob().as_bytes());
        expect_code(&out, 74, &format!("{args:?} with state under a file"));
        one_error_line(&out, &[blocker.to_str().unwrap()], "state dir is a file");
        fake.assert_unchanged(&before, "state dir is a file");
    }
}

#[test]
fn state_in_missing_directory_exits_74() {
    let fake = Fake::new();
    let state = fake.path("no/such/dir/state.yaml");
    let before = fake.snapshot();
    let out = fake.run(
        T0,
        &["--state", state.to_str().unwrap(), "sync"],
        alice_and_bob().as_bytes(),
    );
    expect_code(&out, 74, "sync with state in a missing dir");
    one_error_line(&out, &["no/such/dir"], "missing state dir");
    fake.assert_unchanged(&before, "missing state dir");
    assert!(!fake.path("no").exists(), "no directory tree created");
}

/// Issue 9, problem 6: nothing created `/var/lib/bwmon` on a fresh install,
/// so the first `bwmon init` exited 74. The last component is made, 0700.
#[test]
fn missing_state_directory_is_created_0700() {
    use std::os::unix::fs::PermissionsExt;
    // reset: 1, the slice is not in this (new) state; the directory is made all the same.
    for (cmd, want) in [(&["init"][..], 0), (&["sync"], 0), (&["reset", ALICE.0], 1)] {
        let mut fake = Fake::new();
        if cmd[0] == "reset" {
            fake.init();
            fake.sync(T0, &alice_and_bob());
        }
        let dir = fake.path("bwmon");
        let state = dir.join("state.yaml");
        let mut args = vec!["--state", state.to_str().unwrap()];
        args.extend(cmd);
        let out = fake.run(T0, &args, alice_and_bob().as_bytes());
        expect_code(
            &out,
            want,
            &format!("{cmd:?} with a missing state directory"),
        );
        let mode = fs::metadata(&dir).expect("created").permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{cmd:?}: mode {mode:o}");
    }
    // A dry run writes nothing, not even the directory.
    let fake = Fake::new();
    let state = fake.path("bwmon/state.yaml");
    let out = fake.run(
        T0,
        &["--state", state.to_str().unwrap(), "sync", "--dry-run"],
        alice_and_bob().as_bytes(),
    );
    assert!(!fake.path("bwmon").exists(), "dry run: {}", stderr(&out));
}

#[test]
fn state_path_that_is_a_directory_exits_74() {
    let fake = Fake::new();
    let state = fake.path("statedir");
    fs::create_dir(&state).unwrap();
    let before = fake.snapshot();
    let out = fake.run(
        T0,
        &["--state", state.to_str().unwrap(), "sync"],
        alice_and_bob().as_bytes(),
    );
    expect_code(&out, 74, "sync with a directory as state file");
    one_error_line(&out, &[state.to_str().unwrap()], "state is a directory");
    fake.assert_unchanged(&before, "state is a directory");
}

// ---------------------------------------------------------------------------
// 75: lock held

#[test]
fn lock_held_exits_75_and_changes_nothing() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    assert!(before.state.is_some());
    let holder = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(fake.lock_path())
        .unwrap();
    holder.lock().expect("take the lock");

    let started = std::time::Instant::now();
    let out = fake.run(
        &at(MIN),
        &["sync"],
        slivers(&[(ALICE.0, ALICE.1, "{}")]).as_bytes(),
    );
    let waited = started.elapsed();
    expect_code(&out, 75, "sync while the lock is held");
    one_error_line(&out, &[fake.lock_path().to_str().unwrap()], "lock held");
    assert!(
        waited >= std::time::Duration::from_millis(200),
        "waited lock_wait (200ms), took {waited:?}"
    );
    fake.assert_unchanged(&before, "sync while locked");

    let out = fake.run(&at(MIN), &["reset", ALICE.0], b"");
    expect_code(&out, 75, "reset while the lock is held");
    one_error_line(&out, &[], "reset while locked");
    fake.assert_unchanged(&before, "reset while locked");

    // status takes a shared lock: an exclusive holder keeps it out too.
    let out = fake.run(&at(MIN), &["status"], b"");
    expect_code(&out, 75, "status while an exclusive lock is held");
    one_error_line(&out, &[], "status while locked");

    holder.unlock().unwrap();
    let out = fake.run(&at(MIN), &["status"], b"");
    expect_code(&out, 0, "status once the lock is free");
}

// ---------------------------------------------------------------------------
// 78: configuration

#[test]
fn explicit_config_missing_exits_78_naming_it() {
    let fake = Fake::new();
    let missing = fake.path("nope.yaml");
    let mut cmd = Command::new(BWMON);
    cmd.arg("-c")
        .arg(&missing)
        .args(["--now", T0, "sync"])
        .env("FAKE_TC_DIR", fake.dir.path());
    let out = run(cmd, &["-c", "nope.yaml", "sync"], b"{}");
    expect_code(&out, 78, "missing --config");
    one_error_line(&out, &[missing.to_str().unwrap()], "missing config");
    assert!(fake.calls().is_empty(), "tc not called");
}

/// Writes `yaml` as the config (the fake's own keys first, so only `yaml` is bad).
fn config_case(yaml: &str) -> (Fake, Output) {
    let fake = Fake::new();
    let mut text = fs::read_to_string(&fake.config).unwrap();
    text.push_str(yaml);
    fs::write(&fake.config, text).unwrap();
    let out = fake.run(T0, &["sync"], alice_and_bob().as_bytes());
    (fake, out)
}

#[test]
fn invalid_yaml_exits_78_naming_the_file() {
    let (fake, out) = config_case("bwmax: [1gbit\n");
    expect_code(&out, 78, "invalid YAML");
    one_error_line(&out, &[fake.config.to_str().unwrap()], "invalid YAML");
    assert!(fake.calls().is_empty() && !fake.state.exists());
}

#[test]
fn unknown_key_exits_78_naming_it() {
    let (fake, out) = config_case("perod: 1d\n");
    expect_code(&out, 78, "unknown key");
    one_error_line(
        &out,
        &[fake.config.to_str().unwrap(), "perod"],
        "unknown key perod",
    );
    assert!(fake.calls().is_empty() && !fake.state.exists());
}

#[test]
fn bad_value_exits_78_naming_the_key() {
    for (yaml, key) in [
        ("period: soon\n", "period"),
        ("lock_wait: forever\n", "lock_wait"),
        ("bwmax: fast\n", "bwmax"),
        ("defaults:\n  thresh_percent: 0\n", "thresh_percent"),
    ] {
        let (fake, out) = config_case(yaml);
        expect_code(&out, 78, yaml);
        one_error_line(&out, &[fake.config.to_str().unwrap(), key], yaml);
        assert!(fake.calls().is_empty() && !fake.state.exists());
    }
}

// ---------------------------------------------------------------------------
// 1 and 3: per-slice failures, unknown slices

#[test]
fn status_without_state_file_exits_0() {
    let fake = Fake::new();
    let out = fake.run(T0, &["status"], b"");
    expect_code(&out, 0, "status before any sync");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    assert!(stdout(&out).contains("no slices yet"), "{}", stdout(&out));
    assert!(!fake.state.exists(), "status writes no state");
    let out = fake.run(T0, &["status", "--check"], b"");
    expect_code(&out, 0, "status --check before any sync");
}

#[test]
fn reset_of_unknown_slice_exits_1_naming_it() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    let out = fake.run(&at(MIN), &["reset", "nosuchslice"], b"");
    expect_code(&out, 1, "reset nosuchslice");
    one_error_line(&out, &["nosuchslice"], "reset unknown");
    fake.assert_unchanged(&before, "reset unknown");
}

#[test]
fn reset_of_dead_slice_says_it_is_not_live() {
    let mut fake = fake_with_alice_and_bob();
    fake.sync(&at(MIN), &slivers(&[(ALICE.0, ALICE.1, "{}")]));
    let before = fake.snapshot();
    let out = fake.run(&at(2 * MIN), &["reset", BOB.0], b"");
    expect_code(&out, 1, "reset of a removed slice");
    let line = one_error_line(&out, &[BOB.0], "reset dead");
    assert!(line.contains("not live"), "says it is not live: {line}");
    fake.assert_unchanged(&before, "reset dead");
}

#[test]
fn reset_of_root_or_default_exits_1() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    for name in ["root", "default"] {
        let out = fake.run(&at(MIN), &["reset", name], b"");
        expect_code(&out, 1, &format!("reset {name}"));
        one_error_line(&out, &[name], "reset root/default");
        fake.assert_unchanged(&before, "reset root/default");
    }
}

/// An unknown name is a monitoring UNKNOWN (3), with or without `--check`.
#[test]
fn status_of_unknown_slice_exits_3_and_shows_the_others() {
    let fake = fake_with_alice_and_bob();
    let before = fake.snapshot();
    let out = fake.run(
        &at(MIN),
        &["status", "nosuchslice", ALICE.0, "--format", "json"],
        b"",
    );
    expect_code(&out, 3, "status with an unknown name");
    one_error_line(&out, &["unknown slice nosuchslice"], "status unknown");
    let json = stdout(&out);
    assert!(
        json.contains(ALICE.0),
        "the known slice is still shown: {json}"
    );
    assert!(!json.contains(BOB.0), "names filter the rows: {json}");
    fake.assert_unchanged(&before, "status unknown");

    let out = fake.run(&at(MIN), &["status", ALICE.0, BOB.0], b"");
    expect_code(&out, 0, "status of known slices");
    assert!(out.stderr.is_empty());
    let out = fake.run(&at(MIN), &["status", "--check", "nosuchslice"], b"");
    expect_code(&out, 3, "status --check with an unknown name");
    one_error_line(
        &out,
        &["unknown slice nosuchslice"],
        "status --check unknown",
    );
}

/// `--check` as a Nagios check: 0 OK, 1 WARNING (a slice shown is capped),
/// 3 UNKNOWN (a name bwmon does not know); a capped slice outranks an unknown
/// name, so a typo in the check cannot hide it.
#[test]
fn status_check_exits_1_for_capped_3_for_unknown_and_1_for_both() {
    let mut fake = fake_with_alice_over_threshold();
    let now = at(22 * HOUR);
    fake.sync(&now, &alice_and_bob());
    let check = |args: &[&str], code: i32, what: &str| {
        let mut all = vec!["status", "--check"];
        all.extend(args);
        let out = fake.run(&now, &all, b"");
        expect_code(&out, code, what);
        assert!(!out.stdout.is_empty(), "{what}: the table as usual");
        out
    };
    check(&[], 1, "alice capped");
    let out = check(&[BOB.0], 0, "only bob shown, not capped");
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    check(&[BOB.0, "nosuchslice"], 3, "bob and an unknown name");
    let out = check(
        &[ALICE.0, "nosuchslice"],
        1,
        "alice capped and an unknown name",
    );
    one_error_line(&out, &["unknown slice nosuchslice"], "capped and unknown");
    // Without --check a cap is no failure, and an unknown name still is.
    let out = fake.run(&now, &["status", ALICE.0, "nosuchslice"], b"");
    expect_code(&out, 3, "status without --check, capped and unknown");
    let out = fake.run(&now, &["status", ALICE.0], b"");
    expect_code(&out, 0, "status without --check, capped");
}

#[test]
fn xid_out_of_range_is_held_others_still_applied() {
    let mut fake = Fake::new();
    fake.init();
    let input = slivers(&[
        (ALICE.0, ALICE.1, "{}"),
        ("pl_huge", 5000, "{}"),
        (BOB.0, BOB.1, "{}"),
    ]);
    let out = fake.run(T0, &["sync"], input.as_bytes());
    expect_code(&out, 1, "sync with xid 5000");
    all_lines_prefixed(&out, "xid 5000");
    let err = stderr(&out);
    let naming: Vec<&str> = err.lines().filter(|l| l.contains("pl_huge")).collect();
    assert_eq!(naming.len(), 1, "one line names pl_huge: {err}");
    assert!(
        !err.contains(ALICE.0) && !err.contains(BOB.0),
        "only the bad slice is named: {err}"
    );
    let batch = fake.take_batch(&[]);
    for id in ["1:1101", "1:2101", "1:1102", "1:2102"] {
        assert!(
            batch.contains(&format!("classid {id} ")),
            "the good slices' classes were created ({id}): {batch}"
        );
    }
    // 5000 & 0xfff = 0x388: never a silent alias.
    assert!(
        !batch.contains("1388") && !batch.contains("2388"),
        "{batch}"
    );
    let state = fs::read_to_string(&fake.state).expect("state saved despite the failure");
    assert!(state.contains(ALICE.0) && state.contains(BOB.0), "{state}");
    assert!(
        !state.contains("pl_huge"),
        "a held new record has no state: {state}"
    );
    assert_eq!(
        fake.batch_calls(),
        2,
        "init's batch and one batch for the sync"
    );
}

#[test]
fn refused_batch_line_fails_its_slice_and_is_resent() {
    let mut fake = Fake::new();
    fake.init();
    // Root's classes first, so the next batch is only Alice's and Bob's.
    fake.sync(T0, "{}");
    assert!(fake.classes.contains_key("1:1000"));

    fs::write(
        fake.path("batch.stderr"),
        "RTNETLINK answers: No such file or directory\nCommand failed -:3\n",
    )
    .unwrap();
    fs::write(fake.path("batch.rc"), "1").unwrap();
    let out = fake.run(&at(MIN), &["sync"], alice_and_bob().as_bytes());
    expect_code(&out, 1, "sync with a refused line");
    all_lines_prefixed(&out, "refused line");
    let batch = fake.take_batch(&[3]);
    let line3 = batch.lines().nth(2).expect("a batch of at least 3 lines");
    let classid = line3
        .split_whitespace()
        .skip_while(|w| *w != "classid")
        .nth(1)
        .expect("line 3 names a class");
    let minor = u32::from_str_radix(classid.split_once(':').unwrap().1, 16).unwrap();
    let (culprit, other) = match minor & 0xfff {
        x if x == ALICE.1 => (ALICE.0, BOB.0),
        x if x == BOB.1 => (BOB.0, ALICE.0),
        x => panic!("line 3 belongs to xid {x}, not a live slice: {line3}"),
    };
    let err = stderr(&out);
    assert!(
        err.lines().any(|l| l.contains(culprit)),
        "stderr names {culprit}, whose line 3 ({line3}) was refused: {err}"
    );
    assert!(!err.contains(other), "{other}'s lines went through: {err}");
    assert!(fake.state.exists(), "state saved");

    fs::remove_file(fake.path("batch.stderr")).unwrap();
    fs::remove_file(fake.path("batch.rc")).unwrap();
    let (out, batch) = fake.sync(&at(2 * MIN), &alice_and_bob());
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
    let refused_class = line3
        .split_whitespace()
        .skip_while(|w| *w != "classid")
        .nth(1)
        .unwrap_or(classid);
    assert!(
        batch
            .lines()
            .any(|l| l.starts_with("class ") && l.contains(&format!("classid {refused_class} "))),
        "the refused change of {refused_class} is sent again: {batch:?}"
    );
    let other_xid = if culprit == ALICE.0 { BOB.1 } else { ALICE.1 };
    assert!(
        !batch.contains(&format!("{:x} ", 0x1000 | other_xid))
            && !batch.contains(&format!("{:x} ", 0x2000 | other_xid)),
        "{other}'s classes were applied and are not sent again: {batch}"
    );
    // And now all is in place: a steady run sends nothing.
    let (_, batch) = fake.sync(&at(3 * MIN), &alice_and_bob());
    assert_eq!(batch, "", "nothing left to apply");
}

// ---------------------------------------------------------------------------
// 2: usage

/// Runs a usage error and checks what every one must do: exit 2, nothing on
/// stdout, nothing run or written, clap's message whole with `bwmon: ` in
/// place of clap's `error: `, no colour on a pipe. Returns stderr.
#[track_caller]
fn usage_error(fake: &Fake, args: &[&str]) -> String {
    let mut cmd = Command::new(BWMON);
    cmd.arg("-c")
        .arg(&fake.config)
        .args(args)
        .env("FAKE_TC_DIR", fake.dir.path())
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE");
    let out = run(cmd, args, b"{}");
    expect_code(&out, 2, &format!("{args:?}"));
    assert!(out.stdout.is_empty(), "{args:?}: stdout: {}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.lines().next().is_some_and(|l| l.starts_with("bwmon: ")),
        "{args:?}: the first line starts `bwmon: `: {err}"
    );
    assert!(
        !err.lines().any(|l| l.starts_with("error:")),
        "{args:?}: clap's `error: ` is replaced: {err}"
    );
    assert!(
        err.trim_end()
            .ends_with("For more information, try '--help'."),
        "{args:?}: says where to look: {err}"
    );
    assert!(
        !err.contains('\x1b'),
        "{args:?}: no ANSI escapes on a pipe: {err:?}"
    );
    assert!(fake.calls().is_empty() && !fake.state.exists());
    err
}

#[test]
fn usage_errors_exit_2_naming_the_culprit_first() {
    let fake = Fake::new();
    for (args, culprit) in [
        (vec!["frobnicate"], "frobnicate"),
        (vec!["sync", "--bogus"], "--bogus"),
        (vec!["status", "--format", "xml"], "xml"),
        (vec!["--now", "yesterday", "sync"], "yesterday"),
        (vec!["status", "--check=yes"], "--check"),
        (vec![], "requires a subcommand"),
    ] {
        let err = usage_error(&fake, &args);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.contains(culprit),
            "the first line names {culprit}: {err}"
        );
    }
}

/// Issue: `bwmon reset` said "the following required arguments were not
/// provided:;" and named none of them.
#[test]
fn missing_argument_is_named() {
    let err = usage_error(&Fake::new(), &["reset"]);
    assert!(
        err.lines().any(|l| l.trim() == "<SLICE>"),
        "names the missing <SLICE>: {err}"
    );
    assert!(
        err.contains("Usage: bwmon reset <SLICE>"),
        "shows the usage: {err}"
    );
}

/// Issue: the one-line squash dropped clap's "did you mean".
#[test]
fn misspelt_command_suggests_the_right_one() {
    let err = usage_error(&Fake::new(), &["stauts"]);
    assert!(
        err.lines()
            .any(|l| l.contains("tip:") && l.contains("'status'")),
        "suggests status: {err}"
    );
}

/// Issue: the one-line squash dropped the list of possible values.
#[test]
fn bad_value_lists_the_possible_ones() {
    let err = usage_error(&Fake::new(), &["status", "--format", "yaml"]);
    assert!(
        err.lines().next().is_some_and(|l| l.contains("'yaml'")),
        "{err}"
    );
    assert!(
        err.contains("[possible values: table, json, prometheus]"),
        "lists table, json, prometheus: {err}"
    );
}

/// A bare `bwmon` is clap's help on stderr, exit 2, as clap has it.
#[test]
fn bare_bwmon_prints_the_help_and_exits_2() {
    let out = run(Command::new(BWMON), &[], b"");
    expect_code(&out, 2, "bwmon");
    assert!(out.stdout.is_empty(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(err.contains("Usage: bwmon [OPTIONS] <COMMAND>"), "{err}");
    assert!(!err.contains('\x1b'), "no ANSI escapes on a pipe: {err:?}");
}

#[test]
fn help_and_version_exit_0_on_stdout() {
    for args in [vec!["--help"], vec!["status", "--help"], vec!["--version"]] {
        let mut cmd = Command::new(BWMON);
        cmd.args(&args).env_remove("RUST_LOG");
        let out = run(cmd, &args, b"");
        expect_code(&out, 0, &format!("{args:?}"));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
        assert!(stdout(&out).contains("bwmon"), "{args:?}: {}", stdout(&out));
    }
}

// ---------------------------------------------------------------------------
// Logging levels

#[test]
fn default_level_routine_and_steady_syncs_print_nothing() {
    let mut fake = Fake::new();
    fake.init();
    // Routine: root's and two new slices' classes created.
    let (out, batch) = fake.sync(T0, &alice_and_bob());
    assert!(batch.contains("1:1101"), "{batch}");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    // Steady: nothing changed.
    let (out, batch) = fake.sync(&at(15 * MIN), &alice_and_bob());
    assert_eq!(batch, "", "a steady sync changes nothing in tc");
    assert!(out.stdout.is_empty(), "stdout: {}", stdout(&out));
    assert!(out.stderr.is_empty(), "stderr: {}", stderr(&out));
    // A new period for everyone is routine too.
    let (out, _) = fake.sync(&at(DAY + MIN), &alice_and_bob());
    assert!(
        out.stdout.is_empty() && out.stderr.is_empty(),
        "{}",
        stderr(&out)
    );
}

#[test]
fn verbose_prints_one_line_per_change() {
    let mut fake = Fake::new();
    fake.init();
    let out = fake.run(T0, &["-v", "sync"], alice_and_bob().as_bytes());
    expect_code(&out, 0, "sync -v");
    fake.take_batch(&[]);
    all_lines_prefixed(&out, "-v");
    let err = stderr(&out);
    for name in [ALICE.0, BOB.0] {
        let n = err.lines().filter(|l| l.contains(name)).count();
        assert_eq!(n, 1, "-v: one line for the new slice {name}:\n{err}");
    }
    assert!(out.stdout.is_empty());

    // Removing Bob: one line about him.
    let out = fake.run(
        &at(MIN),
        &["-v", "sync"],
        slivers(&[(ALICE.0, ALICE.1, "{}")]).as_bytes(),
    );
    expect_code(&out, 0, "sync -v removing bob");
    fake.take_batch(&[]);
    let err = stderr(&out);
    assert_eq!(
        err.lines().filter(|l| l.contains(BOB.0)).count(),
        1,
        "{err}"
    );
    assert!(!err.contains(ALICE.0), "nothing changed for alice: {err}");

    // Nothing changed: nothing to say, even at -v.
    let out = fake.run(
        &at(2 * MIN),
        &["-v", "sync"],
        slivers(&[(ALICE.0, ALICE.1, "{}")]).as_bytes(),
    );
    expect_code(&out, 0, "steady sync -v");
    assert!(
        out.stderr.is_empty(),
        "-v on a steady run: {}",
        stderr(&out)
    );
}

/// Alice over her low threshold 22 h into the period (default quota, fake counters).
fn fake_with_alice_over_threshold() -> Fake {
    let mut fake = fake_with_alice_and_bob();
    fake.set_sent(0x1101, DEFAULT_QUOTA * 9 / 10);
    fake
}

#[test]
fn very_verbose_and_rust_log_debug_explain_decisions() {
    let fake = fake_with_alice_over_threshold();
    let now = at(22 * HOUR);
    let input = alice_and_bob();
    let decision = |out: &Output| -> Option<String> {
        stderr(out)
            .lines()
            .find(|l| l.contains(ALICE.0) && l.contains("used") && l.contains("capped"))
            .map(str::to_string)
    };
    let out = fake.run(&now, &["sync", "--dry-run"], input.as_bytes());
    expect_code(&out, 0, "sync --dry-run");
    assert!(
        decision(&out).is_none(),
        "default level: no debug lines: {}",
        stderr(&out)
    );

    let out = fake.run(&now, &["-v", "sync", "--dry-run"], input.as_bytes());
    assert!(
        decision(&out).is_none(),
        "-v: no debug lines: {}",
        stderr(&out)
    );

    let out = fake.run(&now, &["-vv", "sync", "--dry-run"], input.as_bytes());
    expect_code(&out, 0, "sync -vv --dry-run");
    all_lines_prefixed(&out, "-vv");
    let line = decision(&out)
        .unwrap_or_else(|| panic!("-vv explains alice's cap decision: {}", stderr(&out)));
    assert!(line.contains("low"), "names the class: {line}");

    let out = fake.run_env(
        &now,
        &["sync", "--dry-run"],
        input.as_bytes(),
        &[("RUST_LOG", "debug")],
    );
    expect_code(&out, 0, "RUST_LOG=debug sync --dry-run");
    assert_eq!(
        decision(&out).as_deref(),
        Some(line.as_str()),
        "RUST_LOG=debug without -v prints the debug lines: {}",
        stderr(&out)
    );
}

#[test]
fn quiet_suppresses_warnings() {
    let mut fake = Fake::new();
    fake.init();
    let input = slivers(&[
        (ALICE.0, ALICE.1, r#"{"net_max_rate": "abc"}"#),
        (BOB.0, BOB.1, "{}"),
    ]);
    let out = fake.run(T0, &["sync", "--dry-run"], input.as_bytes());
    expect_code(
        &out,
        0,
        "an invalid rspec value is a warning, not a failure",
    );
    all_lines_prefixed(&out, "warning");
    let err = stderr(&out);
    assert!(
        err.lines()
            .any(|l| l.contains(ALICE.0) && l.contains("net_max_rate") && l.contains("abc")),
        "the warning names slice, key and value: {err}"
    );

    let out = fake.run(T0, &["-q", "sync"], input.as_bytes());
    expect_code(&out, 0, "sync -q");
    assert!(out.stderr.is_empty(), "-q: no warnings: {}", stderr(&out));
    assert!(out.stdout.is_empty());
    let batch = fake.take_batch(&[]);
    assert!(
        batch.contains("1:1101"),
        "alice still created, with the default: {batch}"
    );

    // -q still prints errors.
    let out = fake.run(&at(MIN), &["-q", "sync"], b"");
    expect_code(&out, 65, "sync -q with empty stdin");
    one_error_line(&out, &[], "-q error");
}

// ---------------------------------------------------------------------------
// --dry-run

/// Splits dry-run stdout into (tc lines, mails as sent to sendmail).
fn parse_dry_run(text: &str) -> (Vec<String>, Vec<String>) {
    let mut tc = Vec::new();
    let mut mails: Vec<String> = Vec::new();
    let mut section = 0; // 0 none, 1 tc, 2 mail
    for line in text.split_inclusive('\n') {
        if line.starts_with("# tc -force -batch -") {
            section = 1;
            continue;
        }
        if line.starts_with("# mail (dry run: not sent)") {
            section = 2;
            mails.push(String::new());
            continue;
        }
        match section {
            1 => tc.push(line.trim_end_matches('\n').to_string()),
            2 => mails.last_mut().unwrap().push_str(line),
            _ => panic!("dry-run output line outside a section: {line:?}"),
        }
    }
    (tc, mails)
}

#[test]
fn sync_dry_run_changes_nothing_and_shows_what_the_real_run_does() {
    let mut fake = fake_with_alice_over_threshold();
    let now = at(22 * HOUR);
    let before = fake.snapshot();
    let calls_before = fake.calls().len();

    let dry = fake.run(&now, &["sync", "--dry-run"], alice_and_bob().as_bytes());
    expect_code(&dry, 0, "sync --dry-run");
    assert!(dry.stderr.is_empty(), "{}", stderr(&dry));
    fake.assert_unchanged(&before, "sync --dry-run");
    let calls: Vec<String> = fake.calls()[calls_before..].to_vec();
    assert!(
        calls.iter().all(|c| c.contains("class show")),
        "dry run only reads tc: {calls:?}"
    );
    let text = stdout(&dry);
    assert!(
        text.starts_with("# tc -force -batch - (dry run: not run)\n"),
        "{text}"
    );
    let (tc_lines, dry_mails) = parse_dry_run(&text);
    assert!(
        tc_lines.iter().any(|l| l.contains("classid 1:1101")),
        "alice's cap is in the dry run: {text}"
    );
    assert_eq!(dry_mails.len(), 1, "one mail for alice: {text}");
    assert!(dry_mails[0].contains("Subject: pl_mom capped bandwidth of slice pl_alice"));
    assert!(
        text.contains("# mail (dry run: not sent): ")
            && text.contains(" -N never -t -fsupport@example.org\n"),
        "{text}"
    );

    // The real run sends exactly that.
    let (real, batch) = fake.sync(&now, &alice_and_bob());
    assert!(real.stdout.is_empty(), "{}", stdout(&real));
    assert!(
        real.stderr.is_empty(),
        "a cap and its mail are routine at the default level: {}",
        stderr(&real)
    );
    let real_lines: Vec<String> = batch.lines().map(str::to_string).collect();
    assert_eq!(
        real_lines, tc_lines,
        "dry-run tc lines = the real run's batch"
    );
    let msg = fs::read_to_string(fake.maildir.join("1.msg")).expect("the real run mailed");
    assert_eq!(msg, dry_mails[0], "dry-run mail = the mail sent");
    assert_ne!(
        fs::read(&fake.state).ok(),
        before.state,
        "the real run saved"
    );

    // Nothing left to do (same instant, so the same cap): says so.
    let dry = fake.run(&now, &["sync", "--dry-run"], alice_and_bob().as_bytes());
    expect_code(&dry, 0, "steady --dry-run");
    assert!(
        stdout(&dry).contains("# dry run: no tc changes, no mail"),
        "{}",
        stdout(&dry)
    );

    // Later runs recompute the cap (a change every run): routine, silent.
    let (later, batch) = fake.sync(&at(22 * HOUR + 15 * MIN), &alice_and_bob());
    assert!(
        batch.contains("classid 1:1101"),
        "the cap follows the formula: {batch}"
    );
    assert!(
        later.stdout.is_empty() && later.stderr.is_empty(),
        "{}",
        stderr(&later)
    );
    let msgs = fake
        .mail_files()
        .into_iter()
        .filter(|f| Path::new(f).extension().is_some_and(|e| e == "msg"))
        .count();
    assert_eq!(msgs, 1, "still the one mail");
}

#[test]
fn dry_run_of_first_sync_leaves_no_state_file() {
    let mut fake = Fake::new();
    fake.init();
    fs::remove_file(&fake.state).unwrap();
    let before = fake.snapshot();
    let dry = fake.run(T0, &["sync", "--dry-run"], alice_and_bob().as_bytes());
    expect_code(&dry, 0, "first sync --dry-run");
    fake.assert_unchanged(&before, "first sync --dry-run");
    assert!(!fake.state.exists(), "no state file created");
    let (tc_lines, _) = parse_dry_run(&stdout(&dry));
    let (_, batch) = fake.sync(T0, &alice_and_bob());
    assert_eq!(
        batch.lines().map(str::to_string).collect::<Vec<_>>(),
        tc_lines
    );
}

#[test]
fn reset_dry_run_changes_nothing_and_shows_the_lift() {
    let mut fake = fake_with_alice_over_threshold();
    fake.sync(&at(22 * HOUR), &alice_and_bob());
    assert!(fake.classes["1:1101"].ceil < BWCAP, "alice capped");
    let before = fake.snapshot();
    let dry = fake.run(&at(22 * HOUR + MIN), &["reset", ALICE.0, "--dry-run"], b"");
    expect_code(&dry, 0, "reset --dry-run");
    fake.assert_unchanged(&before, "reset --dry-run");
    let (tc_lines, mails) = parse_dry_run(&stdout(&dry));
    assert!(mails.is_empty());
    assert!(
        tc_lines
            .iter()
            .any(|l| l.contains("classid 1:1101") && l.contains(&format!("ceil {BWCAP}bit"))),
        "the lift of alice's cap: {tc_lines:?}"
    );
    let out = fake.run(&at(22 * HOUR + MIN), &["reset", ALICE.0], b"");
    expect_code(&out, 0, "reset");
    assert!(
        out.stderr.is_empty() && out.stdout.is_empty(),
        "{}",
        stderr(&out)
    );
    let batch = fake.take_batch(&[]);
    assert_eq!(
        batch.lines().map(str::to_string).collect::<Vec<_>>(),
        tc_lines
    );
    assert_eq!(fake.classes["1:1101"].ceil, BWCAP, "lifted");
}
