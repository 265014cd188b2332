//! Tests of the history file: see history.rs.

use super::*;

fn t(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("valid RFC 3339")
        .with_timezone(&Utc)
}

const DAY: Duration = Duration::from_hours(24);

/// A day's period of `name` ending at `end` (RFC 3339), `lo` bytes used.
fn period(name: &str, end: &str, lo: u64) -> Completed {
    let end = t(end);
    Completed {
        name: name.into(),
        xid: Some(257),
        start: end - chrono::TimeDelta::days(1),
        end,
        lo: Bytes(lo),
        i2: Bytes(lo / 10),
        capped: false,
        cap: None,
        mailed: false,
        removed: false,
    }
}

fn capped(mut c: Completed) -> Completed {
    c.capped = true;
    c.mailed = true;
    c.cap = Some(Capped {
        at: c.start + chrono::TimeDelta::hours(22),
        lo: Some(Rate(2000)),
        i2: None,
    });
    c
}

fn file_with(text: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("history.jsonl");
    fs::write(&path, text).expect("write");
    (dir, path)
}

fn text_of(c: &[Completed]) -> Vec<u8> {
    c.iter().flat_map(line).collect()
}

#[test]
fn a_line_reads_back_as_written() {
    let plain = period("pl_alice", "2024-03-02T00:00:00.123456789Z", 8_405_880);
    let mut odd = capped(period("we\"ird,\nname", "2024-03-03T00:00:00Z", 0));
    odd.xid = None;
    odd.removed = true;
    let (_d, path) = file_with(&text_of(&[plain.clone(), odd.clone()]));
    assert_eq!(read(&path).expect("reads"), vec![plain.clone(), odd]);
    // The layout is the contract: one object a line, keys in this order.
    assert_eq!(
        String::from_utf8(line(&capped(plain))).expect("UTF-8"),
        concat!(
            r#"{"name":"pl_alice","xid":257,"start":"2024-03-01T00:00:00.123456789Z","#,
            r#""end":"2024-03-02T00:00:00.123456789Z","low_bytes":8405880,"i2_bytes":840588,"#,
            r#""capped":true,"capped_at":"2024-03-01T22:00:00.123456789Z","#,
            r#""low_lowest_ceil_bps":2000,"i2_lowest_ceil_bps":null,"mailed":true,"removed":false}"#,
            "\n"
        )
    );
}

#[test]
fn a_missing_file_is_an_empty_history() {
    let dir = tempfile::tempdir().expect("tempdir");
    assert_eq!(read(&dir.path().join("none.jsonl")).expect("ok"), vec![]);
}

#[test]
fn torn_and_bad_lines_are_skipped_and_the_next_append_starts_afresh() {
    let a = period("pl_a", "2024-03-02T00:00:00Z", 100);
    let b = period("pl_b", "2024-03-02T00:00:00Z", 200);
    let mut text = text_of(from_ref(&a));
    text.extend_from_slice(b"not json\n\n");
    let whole = line(&b);
    // A run killed mid-write: half a line, no newline.
    text.extend_from_slice(&whole[..whole.len() / 2]);
    let (_d, path) = file_with(&text);
    assert_eq!(read(&path).expect("reads"), vec![a.clone()]);

    let c = period("pl_c", "2024-03-03T00:00:00Z", 300);
    append(&path, from_ref(&c), c.end, 90 * DAY).expect("appends");
    let after = fs::read(&path).expect("read");
    assert!(
        after.ends_with(&line(&c)),
        "{}",
        String::from_utf8_lossy(&after)
    );
    assert_eq!(
        after.len(),
        text.len() + 1 + line(&c).len(),
        "one newline closes the torn line, nothing else is rewritten"
    );
    assert_eq!(read(&path).expect("reads"), vec![a, c]);
}

/// Even a whole record is not trusted without its newline: the write that
/// made it did not finish.
#[test]
fn a_last_line_without_newline_is_skipped() {
    let a = period("pl_a", "2024-03-02T00:00:00Z", 100);
    let mut text = line(&a);
    text.pop();
    let (_d, path) = file_with(&text);
    assert_eq!(read(&path).expect("reads"), vec![]);
}

/// A run killed after its append and before its save appends the same
/// periods again at the next run, with the bytes counted meanwhile: the
/// later line stands, once, where it was written.
#[test]
fn a_period_appended_twice_counts_once_the_later_figures() {
    let early = period("pl_a", "2024-03-02T00:00:00Z", 100);
    let other = period("pl_b", "2024-03-02T00:00:00Z", 5);
    let mut again = early.clone();
    again.end = t("2024-03-02T00:15:00Z");
    again.lo = Bytes(150);
    let (_d, path) = file_with(&text_of(&[early, other.clone(), again.clone()]));
    assert_eq!(read(&path).expect("reads"), vec![other, again]);
}

#[test]
fn append_writes_nothing_when_nothing_ended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("h.jsonl");
    append(&path, &[], t("2024-03-02T00:00:00Z"), DAY).expect("ok");
    assert!(!path.exists());
}

#[test]
fn pruning_waits_for_the_slack_then_keeps_only_history_keep() {
    let keep = 10 * DAY;
    let old = period("pl_a", "2024-03-01T00:00:00Z", 1);
    let mid = period("pl_a", "2024-03-05T00:00:00Z", 2);
    let (_d, path) = file_with(&text_of(&[old.clone(), mid.clone()]));
    // 10 days and a half after the oldest end: within the slack (one day).
    let new = period("pl_a", "2024-03-11T12:00:00Z", 3);
    append(&path, from_ref(&new), new.end, keep).expect("appends");
    assert_eq!(
        read(&path).expect("reads"),
        vec![old, mid.clone(), new.clone()]
    );
    // A day and a bit past: pruned to the records of the last ten days.
    let later = period("pl_a", "2024-03-12T00:01:00Z", 4);
    append(&path, from_ref(&later), later.end, keep).expect("appends");
    assert_eq!(read(&path).expect("reads"), vec![mid, new, later]);
    assert!(!with_suffix(&path, ".tmp").exists());
}

#[test]
fn pruning_drops_unreadable_lines_and_repeats() {
    let a = period("pl_a", "2024-03-05T00:00:00Z", 1);
    let mut text = b"{\"torn\n".to_vec();
    text.extend(text_of(&[a.clone(), a.clone()]));
    let (_d, path) = file_with(&text);
    prune(&path, t("2024-03-06T00:00:00Z"), DAY * 10).expect("prunes");
    assert_eq!(fs::read(&path).expect("read"), line(&a));
}

fn names(v: &View) -> Vec<(&str, DateTime<Utc>)> {
    v.periods.iter().map(|c| (c.name.as_str(), c.end)).collect()
}

#[test]
fn the_view_is_newest_first_filtered_and_totalled() {
    let records = vec![
        period("pl_b", "2024-03-02T00:00:00Z", 10),
        capped(period("pl_a", "2024-03-02T00:00:00Z", 1000)),
        period("pl_a", "2024-03-03T00:00:00Z", 500),
        period("pl_c", "2024-03-01T00:00:00Z", 7),
    ];
    let v = view(Path::new("h"), records.clone(), &[], None);
    assert_eq!(
        names(&v),
        vec![
            ("pl_a", t("2024-03-03T00:00:00Z")),
            ("pl_a", t("2024-03-02T00:00:00Z")),
            ("pl_b", t("2024-03-02T00:00:00Z")),
            ("pl_c", t("2024-03-01T00:00:00Z")),
        ]
    );
    assert_eq!(
        v.totals[0],
        Total {
            name: "pl_a".into(),
            periods: 2,
            lo: Bytes(1500),
            i2: Bytes(150),
            capped: 1,
        }
    );
    assert_eq!(v.totals.len(), 3);

    let only = view(
        Path::new("h"),
        records.clone(),
        &["pl_a".into(), "pl_c".into()],
        Some(t("2024-03-01T00:00:00Z")),
    );
    assert_eq!(
        names(&only),
        vec![
            ("pl_a", t("2024-03-03T00:00:00Z")),
            ("pl_a", t("2024-03-02T00:00:00Z")),
        ],
        "pl_c's period started the day before"
    );
    assert_eq!(
        only.totals.iter().map(|t| t.lo).collect::<Vec<_>>(),
        vec![Bytes(1500)]
    );
}

#[test]
fn csv_quotes_what_needs_it() {
    assert_eq!(csv_field("pl_alice"), "pl_alice");
    assert_eq!(csv_field("a,b"), "\"a,b\"");
    assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_field("two\nlines"), "\"two\nlines\"");
    assert_eq!(csv_field("=cmd()"), "\"=cmd()\"");
    assert_eq!(csv_field("-x"), "\"-x\"");
    let v = view(
        Path::new("h"),
        vec![capped(period("a,b", "2024-03-02T00:00:00Z", 42))],
        &[],
        None,
    );
    assert_eq!(
        v.csv(),
        "name,xid,start,end,low_bytes,i2_bytes,capped,capped_at,low_lowest_ceil_bps,i2_lowest_ceil_bps,mailed,removed\n\
         \"a,b\",257,2024-03-01T00:00:00Z,2024-03-02T00:00:00Z,42,4,true,2024-03-01T22:00:00Z,2000,,true,false\n"
    );
}

#[test]
fn the_table_fits_80_columns_and_totals_each_slice() {
    let long = "sixteen_chars_ab";
    assert_eq!(long.len(), 16);
    let mut gone = capped(period(long, "2024-03-02T00:00:00Z", 9_999_999_999));
    gone.removed = true;
    gone.xid = Some(4094);
    let v = view(
        Path::new("h"),
        vec![gone, period("pl_a", "2024-03-03T00:00:00Z", 8_405_880)],
        &[],
        None,
    );
    let table = v.table();
    assert_eq!(
        table,
        "\
SLICE             XID START            END               LOW   I2 CAPPED      F
pl_a              257 2024-03-02 00:00 2024-03-03 00:00   8M 821K -           -
sixteen_chars_ab 4094 2024-03-01 00:00 2024-03-02 00:00 9.3G 954M 03-01 22:00 MR
Totals:
pl_a                  1 period                            8M 821K
sixteen_chars_ab      1 period                          9.3G 954M 1 capped
LOW, I2 (exempt): bytes, K M G T = KiB MiB GiB TiB; F: M mailed, R removed
"
    );
    assert!(table.lines().all(|l| l.len() <= 80), "{table}");
    let empty = view(
        Path::new("/h"),
        vec![],
        &[],
        Some(t("2024-03-02T00:00:00Z")),
    );
    assert_eq!(
        empty.table().lines().nth(1),
        Some("no completed period since 2024-03-02 00:00 in /h")
    );
}

#[test]
fn the_json_is_stable_and_exact() {
    let v = view(
        Path::new("/var/lib/bwmon/history.jsonl"),
        vec![
            capped(period("pl_a", "2024-03-02T00:00:00Z", 8_405_880)),
            period("pl_a", "2024-03-03T00:00:00Z", 1),
        ],
        &[],
        None,
    );
    let doc: serde_json::Value = serde_json::from_str(&v.json()).expect("JSON");
    assert_eq!(doc["format_version"], 1);
    assert_eq!(doc["since"], serde_json::Value::Null);
    assert_eq!(doc["periods"][1]["capped_at"], "2024-03-01T22:00:00Z");
    assert_eq!(doc["periods"][1]["low_lowest_ceil_bps"], 2000);
    assert_eq!(doc["periods"][0]["capped_at"], serde_json::Value::Null);
    assert_eq!(doc["totals"][0]["low_bytes"], 8_405_881);
    assert_eq!(doc["totals"][0]["periods"], 2);
    assert_eq!(doc["totals"][0]["capped_periods"], 1);
    let mut keys: Vec<&str> = doc["periods"][0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    let mut want = KEYS;
    keys.sort_unstable();
    want.sort_unstable();
    assert_eq!(keys, want);
}

use std::slice::from_ref;
