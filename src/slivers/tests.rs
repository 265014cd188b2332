//! Unit tests and proptests of the slivers reader.

use super::*;
use proptest::prelude::*;
use serde_json::json;
use serde_json::{Map, Value};

/// The NSS of the tests: `pl_user` is uid 1234, `pl_root` is root,
/// `pl_big` has a uid above any xid; nobody else exists.
fn uid_of(name: &str) -> Result<Option<u32>, String> {
    match name {
        "pl_user" => Ok(Some(1234)),
        "pl_root" => Ok(Some(0)),
        "pl_big" => Ok(Some(5000)),
        "pl_nss_down" => Err("looking up user \"pl_nss_down\" failed: EIO".into()),
        _ => Ok(None),
    }
}

fn run(input: &str) -> Result<Input, InputError> {
    parse(input.as_bytes(), &uid_of)
}

/// True if `s` is one printable line.
fn one_line(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202e}'))
}

fn assert_one_line(input: &Input) {
    let held = input.held.iter().flat_map(|h| [&h.label, &h.reason]);
    for line in held.chain(&input.warnings).chain(&input.skipped) {
        assert!(one_line(line), "not one printable line: {line:?}");
    }
}

#[test]
fn whole_input_errors() {
    let deep_array = "[".repeat(100_000);
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200));
    let nested_record = format!(r#"{{"pl_a": {}{}}}"#, "[".repeat(5000), "]".repeat(5000));
    let cases: &[(&[u8], &str)] = &[
        (b"", "slivers input is empty"),
        (b"  \n\t\r\n", "only whitespace"),
        (b"5", "slivers input is a number"),
        (b"-1.5", "slivers input is a number"),
        (br#""pl_alice""#, "slivers input is a string"),
        (b"null", "slivers input is null"),
        (b"true", "slivers input is a boolean"),
        (
            b"{",
            "not valid JSON (EOF while parsing an object at line 1 column 1)",
        ),
        (
            b"{}\n{}",
            "not valid JSON (trailing characters at line 2 column 1)",
        ),
        (b"[1,]", "not valid JSON"),
        (br#"{"a":1,}"#, "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"{\"\xff\": {}}", "not valid JSON"),
        (br#"{"a": "\ud800"}"#, "not valid JSON"),
        (b"\x0c{}", "not valid JSON"),
        (deep_array.as_bytes(), "recursion limit exceeded"),
        (deep_object.as_bytes(), "recursion limit exceeded"),
        (nested_record.as_bytes(), "recursion limit exceeded"),
        // Records that name no slice: the live set is unknown.
        (b"[1,2,3]", "record #1 is a number, not an object"),
        (b"[[1, 2], null]", "record #1 is an array, not an object"),
        (
            br#"{"pl_a": 5, "pl_b": {"xid": 1002, "_rspec": {}}}"#,
            "record #1 (pl_a) is a number, not an object",
        ),
        (
            br#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"xid": 1002, "_rspec": {}}]"#,
            r#"record #2 has no "name""#,
        ),
        (
            br#"[{"name": 17, "xid": 1002, "_rspec": {}}]"#,
            "record #1 has name 17, not a string",
        ),
        (
            br#"{"pl_a": {"name": null, "xid": 1002, "_rspec": {}}}"#,
            "record #1 (pl_a) has name null, not a string",
        ),
    ];
    for (bytes, want) in cases {
        let err = parse(bytes, &uid_of).expect_err(want);
        let msg = err.to_string();
        assert!(msg.contains(want), "{msg:?} lacks {want:?}");
        assert!(msg.contains("`{}` means no slice is live"), "{msg:?}");
        assert!(one_line(&msg), "{msg:?}");
    }
}

/// What one input must give. Held entries: label, name, xid, a substring
/// of the reason. Warnings and skipped notes: substrings, in order.
struct Want {
    live: &'static [(&'static str, u16)],
    held: &'static [(
        &'static str,
        Option<&'static str>,
        Option<u16>,
        &'static str,
    )],
    warnings: &'static [&'static str],
    skipped: &'static [&'static str],
}

const NONE: Want = Want {
    live: &[],
    held: &[],
    warnings: &[],
    skipped: &[],
};

#[test]
#[allow(clippy::too_many_lines)]
fn records() {
    let long_name = "a".repeat(1024);
    let name_64 = "b".repeat(64);
    let name_65 = "c".repeat(65);
    let cases: Vec<(&str, String, Want)> = vec![
        ("empty object", "{}".into(), NONE),
        ("empty array", "[]".into(), NONE),
        (
            "spec example",
            r#"{"pl_alice": {"name": "pl_alice", "xid": 1001,
               "_rspec": {"net_max_rate": 10000, "net_max_kbyte": "5662310"}}}"#
                .into(),
            Want { live: &[("pl_alice", 1001)], ..NONE },
        ),
        (
            "object form: the key stands in for a missing name",
            r#"{"pl_alice": {"xid": 1001, "_rspec": {}}}"#.into(),
            Want { live: &[("pl_alice", 1001)], ..NONE },
        ),
        (
            "object form: the record's name wins over the key",
            r#"{"pl_key": {"name": "pl_rec", "xid": 1001, "_rspec": {}}}"#.into(),
            Want { live: &[("pl_rec", 1001)], ..NONE },
        ),
        (
            "object form: an invalid key is fine when the record names itself",
            r#"{"bad key": {"name": "pl_rec", "xid": 1001, "_rspec": {}}}"#.into(),
            Want { live: &[("pl_rec", 1001)], ..NONE },
        ),
        (
            "object form: an invalid key as name",
            r#"{"bad key": {"xid": 1001, "_rspec": {}}}"#.into(),
            Want {
                held: &[(r#""bad key""#, None, Some(1001), r#"name "bad key" is invalid: use 1-64 characters"#)],
                ..NONE
            },
        ),
        (
            "array form, sorted by xid",
            r#"[{"name": "pl_b", "xid": 1002, "_rspec": {}},
                {"name": "pl_a", "xid": 1001, "rspec": {}}]"#
                .into(),
            Want { live: &[("pl_a", 1001), ("pl_b", 1002)], ..NONE },
        ),
        (
            "a failed user lookup holds the record instead of dropping it",
            r#"{"pl_nss_down": {"_rspec": {}}, "pl_a": {"xid": 1001, "_rspec": {}}}"#.into(),
            Want {
                live: &[("pl_a", 1001)],
                held: &[("pl_nss_down", Some("pl_nss_down"), None, "failed")],
                ..NONE
            },
        ),
        (
            "bwmon's own names are reserved",
            r#"[{"name": "root", "xid": 1001, "_rspec": {}}, {"name": "default", "xid": 1002, "_rspec": {}},
                {"name": "pl_a", "xid": 1003, "_rspec": {}}]"#
                .into(),
            Want {
                live: &[("pl_a", 1003)],
                held: &[
                    ("root", None, Some(1001), "name root is reserved for bwmon's own root (xid 0) class"),
                    ("default", None, Some(1002), "name default is reserved for bwmon's own unclassified-traffic (xid 4095) class"),
                ],
                ..NONE
            },
        ),
        (
            "a reserved name as the key",
            r#"{"root": {"xid": 1001, "_rspec": {}}}"#.into(),
            Want { held: &[("root", None, Some(1001), "reserved")], ..NONE },
        ),
        (
            "name with a space",
            r#"[{"name": "a b", "xid": 1001, "_rspec": {}}]"#.into(),
            Want {
                held: &[(
                    r#""a b""#,
                    None,
                    Some(1001),
                    r#"name "a b" is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -"#,
                )],
                ..NONE
            },
        ),
        (
            "unicode name",
            r#"[{"name": "café", "xid": 1001, "_rspec": {}}]"#.into(),
            Want { held: &[(r#""café""#, None, Some(1001), r#"name "café" is invalid"#)], ..NONE },
        ),
        (
            "empty name",
            r#"[{"name": "", "xid": 1001, "_rspec": {}}]"#.into(),
            Want { held: &[(r#""""#, None, Some(1001), r#"name "" is invalid"#)], ..NONE },
        ),
        (
            "1 KiB name is clipped",
            format!(r#"[{{"name": "{long_name}", "xid": 1001, "_rspec": {{}}}}]"#),
            Want {
                held: &[(
                    r#""aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…""#,
                    None,
                    Some(1001),
                    r#"name "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…" (1024 characters) is invalid"#,
                )],
                ..NONE
            },
        ),
        (
            "64 characters is the longest name",
            format!(r#"[{{"name": "{name_64}", "xid": 1, "_rspec": {{}}}},
                        {{"name": "{name_65}", "xid": 2, "_rspec": {{}}}}]"#),
            Want {
                live: &[("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 1)],
                held: &[(
                    r#""cccccccccccccccccccccccccccccccccccccccc…""#,
                    None,
                    Some(2),
                    "(65 characters) is invalid",
                )],
                ..NONE
            },
        ),
        (
            "newline in name",
            r#"[{"name": "pl_a\nxid 1 is fine", "xid": 1001, "_rspec": {}}]"#.into(),
            Want {
                held: &[(
                    r#""pl_a\nxid 1 is fine""#,
                    None,
                    Some(1001),
                    r#"name "pl_a\nxid 1 is fine" is invalid"#,
                )],
                ..NONE
            },
        ),
        (
            "CR, NUL and a bidi override in keys",
            r#"{"a\r\u0000\u202eb": {"xid": 7, "_rspec": {}}}"#.into(),
            Want {
                held: &[(r#""a\r\0\u{202e}b""#, None, Some(7), r#"name "a\r\0\u{202e}b" is invalid"#)],
                ..NONE
            },
        ),
        (
            "xid 0 is root",
            r#"[{"name": "pl_a", "xid": 0, "_rspec": {}}]"#.into(),
            Want { held: &[("pl_a", Some("pl_a"), None, "xid 0 is outside 1..=4094 (0 is root)")], ..NONE },
        ),
        (
            "xid 1 and 4094 are the bounds",
            r#"[{"name": "pl_a", "xid": 4094, "_rspec": {}}, {"name": "pl_b", "xid": 1, "_rspec": {}}]"#
                .into(),
            Want { live: &[("pl_b", 1), ("pl_a", 4094)], ..NONE },
        ),
        (
            "xid 4095 is the default class",
            r#"[{"name": "pl_a", "xid": 4095, "_rspec": {}}]"#.into(),
            Want {
                held: &[("pl_a", Some("pl_a"), None, "xid 4095 is outside 1..=4094 (4095 is the default class)")],
                ..NONE
            },
        ),
        (
            "xid 4096",
            r#"[{"name": "pl_a", "xid": 4096, "_rspec": {}}]"#.into(),
            Want { held: &[("pl_a", Some("pl_a"), None, "xid 4096 is outside 1..=4094")], ..NONE },
        ),
        (
            "xid 5000 is not masked to 904",
            r#"[{"name": "pl_a", "xid": 5000, "_rspec": {}}, {"name": "pl_b", "xid": 904, "_rspec": {}}]"#
                .into(),
            Want {
                live: &[("pl_b", 904)],
                held: &[("pl_a", Some("pl_a"), None, "xid 5000 is outside 1..=4094")],
                ..NONE
            },
        ),
        (
            "xid 70000 (beyond u16)",
            r#"[{"name": "pl_a", "xid": "70000", "_rspec": {}}]"#.into(),
            Want { held: &[("pl_a", Some("pl_a"), None, "xid 70000 is outside 1..=4094")], ..NONE },
        ),
        (
            "xid as a string, and as an integral float",
            r#"[{"name": "pl_a", "xid": "1001", "_rspec": {}}, {"name": "pl_b", "xid": 1002.0, "_rspec": {}},
                {"name": "pl_c", "xid": "1003.0", "_rspec": {}}]"#
                .into(),
            Want { live: &[("pl_a", 1001), ("pl_b", 1002), ("pl_c", 1003)], ..NONE },
        ),
        (
            "xid not a whole number",
            r#"[{"name": "pl_a", "xid": 1001.5, "_rspec": {}}, {"name": "pl_b", "xid": -1, "_rspec": {}},
                {"name": "pl_c", "xid": null, "_rspec": {}}, {"name": "pl_d", "xid": "abc", "_rspec": {}},
                {"name": "pl_e", "xid": " 1005", "_rspec": {}}]"#
                .into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), None, "xid 1001.5 is not a whole number in 1..=4094"),
                    ("pl_b", Some("pl_b"), None, "xid -1 is not a whole number"),
                    ("pl_c", Some("pl_c"), None, "xid null is not a whole number"),
                    ("pl_d", Some("pl_d"), None, r#"xid "abc" is not a whole number"#),
                    ("pl_e", Some("pl_e"), None, r#"xid " 1005" is not a whole number"#),
                ],
                ..NONE
            },
        ),
        (
            "invalid name and invalid xid: both reasons",
            r#"[{"name": "a b", "xid": 0, "_rspec": {}}]"#.into(),
            Want { held: &[(r#""a b""#, None, None, "is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -; xid 0 is outside")], ..NONE },
        ),
        (
            "no xid: the user's uid",
            r#"{"pl_user": {"_rspec": {}}}"#.into(),
            Want { live: &[("pl_user", 1234)], ..NONE },
        ),
        (
            "no xid and no user: delegated, skipped",
            r#"{"pl_nobody": {"_rspec": {}}, "pl_a": {"xid": 1, "_rspec": {}}}"#.into(),
            Want {
                live: &[("pl_a", 1)],
                skipped: &["pl_nobody has no xid and no user of that name (delegated, not instantiated yet): skipped"],
                ..NONE
            },
        ),
        (
            "no xid, invalid name: held, NSS not asked",
            r#"[{"name": "pl user", "_rspec": {}}]"#.into(),
            Want { held: &[(r#""pl user""#, None, None, "is invalid")], ..NONE },
        ),
        (
            "no xid and a uid that is no xid",
            r#"{"pl_root": {"_rspec": {}}, "pl_big": {"_rspec": {}}}"#.into(),
            Want {
                held: &[
                    ("pl_root", Some("pl_root"), None, "no xid given and user pl_root has uid 0, outside 1..=4094"),
                    ("pl_big", Some("pl_big"), None, "no xid given and user pl_big has uid 5000, outside 1..=4094"),
                ],
                ..NONE
            },
        ),
        (
            "neither _rspec nor rspec: held, not gone",
            r#"{"pl_a": {"xid": 1001}, "pl_b": {"xid": 1002, "_resspec": {}}}"#.into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1001), "record has neither _rspec nor rspec"),
                    ("pl_b", Some("pl_b"), Some(1002), "record has neither _rspec nor rspec"),
                ],
                ..NONE
            },
        ),
        (
            "_rspec not an object",
            r#"{"pl_a": {"xid": 1001, "_rspec": "fast"}, "pl_b": {"xid": 1002, "_rspec": null, "rspec": {}},
               "pl_c": {"xid": 1003, "rspec": [1]}}"#
                .into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1001), "_rspec is a string, not an object"),
                    ("pl_b", Some("pl_b"), Some(1002), "_rspec is null, not an object"),
                    ("pl_c", Some("pl_c"), Some(1003), "rspec is an array, not an object"),
                ],
                ..NONE
            },
        ),
        (
            "two records with one xid: both held, each naming the other",
            r#"{"pl_alice": {"xid": 1001, "_rspec": {}}, "pl_bob": {"xid": 1001, "_rspec": {}},
               "pl_carol": {"xid": 1002, "_rspec": {}}}"#
                .into(),
            Want {
                live: &[("pl_carol", 1002)],
                held: &[
                    ("pl_alice", Some("pl_alice"), Some(1001), "xid 1001 is also claimed by pl_bob"),
                    ("pl_bob", Some("pl_bob"), Some(1001), "xid 1001 is also claimed by pl_alice"),
                ],
                ..NONE
            },
        ),
        (
            "two records with one name (array form): both held",
            r#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"name": "pl_a", "xid": 1002, "_rspec": {}}]"#
                .into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1001), "name pl_a is also used by record #2"),
                    ("pl_a", Some("pl_a"), Some(1002), "name pl_a is also used by record #1"),
                ],
                ..NONE
            },
        ),
        (
            "a repeated key (object form): both held",
            r#"{"pl_a": {"xid": 1001, "_rspec": {}}, "pl_a": {"xid": 1001, "_rspec": {}}}"#.into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1001), "xid 1001 is also claimed by record #2; name pl_a is also used by record #2"),
                    ("pl_a", Some("pl_a"), Some(1001), "xid 1001 is also claimed by record #1; name pl_a is also used by record #1"),
                ],
                ..NONE
            },
        ),
        (
            "a held record's xid is not given to another slice",
            r#"[{"name": "a b", "xid": 1001, "_rspec": {}}, {"name": "pl_b", "xid": 1001, "_rspec": {}}]"#
                .into(),
            Want {
                held: &[
                    (r#""a b""#, None, Some(1001), "is invalid: use 1-64 characters of A-Z a-z 0-9 _ . -; xid 1001 is also claimed by pl_b"),
                    ("pl_b", Some("pl_b"), Some(1001), r#"xid 1001 is also claimed by "a b""#),
                ],
                ..NONE
            },
        ),
        (
            "a name used by a skipped record too",
            r#"[{"name": "pl_a", "xid": 1001, "_rspec": {}}, {"name": "pl_a", "xid": 1002}]"#.into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1001), "name pl_a is also used by record #2"),
                    ("pl_a", Some("pl_a"), Some(1002), "name pl_a is also used by record #1"),
                ],
                ..NONE
            },
        ),
        (
            "five claimants of one xid: three listed",
            r#"{"a": {"xid": 9, "_rspec": {}}, "b": {"xid": 9, "_rspec": {}}, "c": {"xid": 9, "_rspec": {}},
               "d": {"xid": 9, "_rspec": {}}, "e": {"xid": 9, "_rspec": {}}}"#
                .into(),
            Want {
                held: &[
                    ("a", Some("a"), Some(9), "xid 9 is also claimed by b, c, d, 1 more"),
                    ("b", Some("b"), Some(9), "xid 9 is also claimed by a, c, d, 1 more"),
                    ("c", Some("c"), Some(9), "xid 9 is also claimed by a, b, d, 1 more"),
                    ("d", Some("d"), Some(9), "xid 9 is also claimed by a, b, c, 1 more"),
                    ("e", Some("e"), Some(9), "xid 9 is also claimed by a, b, c, 1 more"),
                ],
                ..NONE
            },
        ),
        (
            "invalid values warn, the slice stays live",
            r#"{"pl_a": {"xid": 1001, "_rspec": {"net_max_rate": "abc", "net_share": 0, "net_i2_share": 4294967296,
               "net_thresh_kbyte": "line\nbreak", "net_min_rate": [1, 2], "vsys": "x", "net_max_kbyte": 5}}}"#
                .into(),
            Want {
                live: &[("pl_a", 1001)],
                warnings: &[
                    "slice pl_a: net_min_rate [1,2] is not a whole number of kbit/s: using the default",
                    r#"slice pl_a: net_max_rate "abc" is not a whole number of kbit/s: using the default"#,
                    r#"slice pl_a: net_thresh_kbyte "line\nbreak" is not a whole number of KiB"#,
                    "slice pl_a: net_share 0 is not a whole number in 1..=4294967295: using the default",
                    "slice pl_a: net_i2_share 4294967296 is not a whole number in 1..=4294967295",
                ],
                ..NONE
            },
        ),
        (
            "long values are clipped in warnings",
            format!(r#"{{"pl_a": {{"xid": 1, "_rspec": {{"net_max_rate": "{long_name}"}}}}}}"#),
            Want {
                live: &[("pl_a", 1)],
                warnings: &[r#"net_max_rate "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa… is not"#],
                ..NONE
            },
        ),
        (
            "a held record's warnings are not reported",
            r#"{"pl_a": {"xid": 1, "_rspec": {"net_max_rate": "abc"}}, "pl_b": {"xid": 1, "_rspec": {}}}"#.into(),
            Want {
                held: &[
                    ("pl_a", Some("pl_a"), Some(1), "xid 1 is also claimed by pl_b"),
                    ("pl_b", Some("pl_b"), Some(1), "xid 1 is also claimed by pl_a"),
                ],
                ..NONE
            },
        ),
    ];
    for (what, text, want) in &cases {
        let got = run(text).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_one_line(&got);
        let live: Vec<(&str, u16)> = got.live.iter().map(|s| (s.name.as_str(), s.xid)).collect();
        assert_eq!(live, want.live, "{what}: live");
        assert_eq!(
            got.held.len(),
            want.held.len(),
            "{what}: held {:#?}",
            got.held
        );
        for (h, &(label, name, xid, reason)) in got.held.iter().zip(want.held) {
            assert_eq!(h.label, label, "{what}: label");
            assert_eq!(h.name.as_deref(), name, "{what}: name of {label}");
            assert_eq!(h.xid, xid, "{what}: xid of {label}");
            assert!(
                h.reason.contains(reason),
                "{what}: reason {:?} lacks {reason:?}",
                h.reason
            );
        }
        assert_eq!(
            got.warnings.len(),
            want.warnings.len(),
            "{what}: warnings {:#?}",
            got.warnings
        );
        for (w, want) in got.warnings.iter().zip(want.warnings) {
            assert!(w.contains(want), "{what}: warning {w:?} lacks {want:?}");
        }
        assert_eq!(
            got.skipped.len(),
            want.skipped.len(),
            "{what}: skipped {:#?}",
            got.skipped
        );
        for (s, want) in got.skipped.iter().zip(want.skipped) {
            assert!(s.contains(want), "{what}: note {s:?} lacks {want:?}");
        }
    }
}

#[test]
fn spec_example_values() {
    let got = run(r#"{"pl_alice": {"name": "pl_alice", "xid": 1001,
              "_rspec": {"net_max_rate": 10000, "net_max_kbyte": "5662310", "net_i2_share": "3"}},
              "pl_bob": {"xid": 1002, "_rspec": {"net_max_rate": 1}, "rspec": {"net_max_rate": 2}}}"#)
    .unwrap();
    assert_eq!(
        got.live[0].rspec,
        Rspec {
            max_rate: Some(Kbit(10_000)),
            max_kbyte: Some(KiB(5_662_310)),
            i2_share: Some(3),
            ..Rspec::default()
        }
    );
    // `_rspec` wins over `rspec`.
    assert_eq!(got.live[1].rspec.max_rate, Some(Kbit(1)));
}

#[test]
fn every_key_is_read() {
    let got = run(
        r#"[{"name": "pl_a", "xid": 1, "_rspec": {"net_min_rate": 1, "net_max_rate": 2,
        "net_i2_min_rate": 3, "net_i2_max_rate": 4, "net_max_kbyte": 5, "net_i2_max_kbyte": 6,
        "net_thresh_kbyte": 7, "net_i2_thresh_kbyte": 8, "net_share": 9, "net_i2_share": 10}}]"#,
    )
    .unwrap();
    assert_eq!(
        got.live[0].rspec,
        Rspec {
            min_rate: Some(Kbit(1)),
            max_rate: Some(Kbit(2)),
            i2_min_rate: Some(Kbit(3)),
            i2_max_rate: Some(Kbit(4)),
            max_kbyte: Some(KiB(5)),
            i2_max_kbyte: Some(KiB(6)),
            thresh_kbyte: Some(KiB(7)),
            i2_thresh_kbyte: Some(KiB(8)),
            share: Some(9),
            i2_share: Some(10),
        }
    );
    assert!(got.warnings.is_empty());
}

/// Each value form of `net_max_kbyte` and what it reads as (`None`: a
/// warning and the default).
#[test]
fn value_forms() {
    let cases: &[(&str, Option<u64>)] = &[
        ("5000", Some(5000)),
        ("5000.0", Some(5000)),
        (r#""5000""#, Some(5000)),
        (r#""5000.0""#, Some(5000)),
        ("0", Some(0)),
        (r#""0""#, Some(0)),
        ("5e3", Some(5000)),
        (r#""5e3""#, Some(5000)),
        (r#""007""#, Some(7)),
        ("18446744073709551615", Some(u64::MAX)),
        (r#""18446744073709551615""#, Some(u64::MAX)),
        ("1e19", Some(10_000_000_000_000_000_000)),
        ("5000.5", None),
        (r#""5000.5""#, None),
        ("-1", None),
        (r#""-1""#, None),
        ("-0", None),
        ("-0.0", None),
        ("18446744073709551616", None),
        (r#""18446744073709551616""#, None),
        ("1.8446744073709552e19", None),
        ("1e30", None),
        (r#""1e30""#, None),
        ("1e400", None),
        ("null", None),
        ("true", None),
        ("[]", None),
        ("{}", None),
        (r#""abc""#, None),
        (r#""""#, None),
        (r#"" 5000""#, None),
        (r#""5000 ""#, None),
        (r#""+5000""#, None),
        (r#""0x10""#, None),
        (r#""NaN""#, None),
        (r#""5000\u0000""#, None),
    ];
    for &(value, want) in cases {
        let text = format!(r#"{{"pl_a": {{"xid": 1, "_rspec": {{"net_max_kbyte": {value}}}}}}}"#);
        let got = match run(&text) {
            Ok(got) => got,
            // serde_json itself refuses numbers out of f64's range.
            Err(e) if value == "1e400" => {
                assert!(e.0.contains("number out of range"), "{e}");
                continue;
            }
            Err(e) => panic!("{value}: {e}"),
        };
        assert_eq!(got.live[0].rspec.max_kbyte, want.map(KiB), "{value}");
        if want.is_some() {
            assert!(got.warnings.is_empty(), "{value}: {:?}", got.warnings);
        } else {
            assert_eq!(got.warnings.len(), 1, "{value}");
            let w = &got.warnings[0];
            assert!(w.starts_with("slice pl_a: net_max_kbyte "), "{w}");
            assert!(w.ends_with(": using the default"), "{w}");
            assert!(one_line(w), "{w:?}");
        }
    }
}

#[test]
fn share_bounds() {
    let cases: &[(&str, Option<u32>)] = &[
        ("1", Some(1)),
        (r#""4294967295""#, Some(u32::MAX)),
        ("4294967295.0", Some(u32::MAX)),
        ("0", None),
        ("0.0", None),
        ("4294967296", None),
        ("1.5", None),
    ];
    for &(value, want) in cases {
        let text = format!(
            r#"[{{"name": "pl_a", "xid": 1, "_rspec": {{"net_share": {value}, "net_i2_share": {value}}}}}]"#
        );
        let got = run(&text).unwrap();
        assert_eq!(got.live[0].rspec.share, want, "{value}");
        assert_eq!(got.live[0].rspec.i2_share, want, "{value}");
        assert_eq!(
            got.warnings.len(),
            if want.is_some() { 0 } else { 2 },
            "{value}"
        );
    }
}

#[test]
fn nss_lookup() {
    assert_eq!(uid_from_nss("root"), Ok(Some(0)));
    assert_eq!(uid_from_nss("no-such-user-bwmon-test"), Ok(None));
    assert_ne!(uid_from_nss("a\0b"), Ok(Some(0)));
}

#[test]
fn input_error_displays_its_message() {
    let e = InputError("x".into());
    assert_eq!(e.to_string(), "x");
    let _: &dyn std::error::Error = &e;
}

/// Any JSON value, small.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<u64>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..5000).prop_map(Value::from),
        (0u64..5000).prop_map(|n| Value::from(n.to_string())),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A record, often valid, often a near miss; names from a small alphabet
/// so that duplicates happen.
fn record() -> impl Strategy<Value = Value> {
    let name = prop_oneof![
        3 => "[a-c]{1,2}".prop_map(|s| Some(Value::from(s))),
        1 => Just(Some(Value::from("pl_user"))),
        1 => Just(None),
        1 => ".{0,70}".prop_map(|s| Some(Value::from(s))),
        1 => any_json().prop_map(Some),
    ];
    let xid = prop_oneof![
        3 => (0u64..4100).prop_map(|n| Some(Value::from(n))),
        1 => (0u64..4100).prop_map(|n| Some(Value::from(n.to_string()))),
        1 => Just(None),
        1 => any_json().prop_map(Some),
    ];
    let rspec = prop_oneof![
        3 => prop::collection::btree_map(
            prop_oneof![Just("net_max_rate".to_owned()), Just("net_share".to_owned()), ".{0,8}".prop_map(String::from)],
            any_json(),
            0..4,
        )
        .prop_map(|m| Some(Value::Object(m.into_iter().collect()))),
        1 => Just(None),
        1 => any_json().prop_map(Some),
    ];
    let rec = (name, xid, rspec, any::<bool>()).prop_map(|(name, xid, rspec, plain)| {
        let mut m = Map::new();
        if let Some(n) = name {
            m.insert("name".into(), n);
        }
        if let Some(x) = xid {
            m.insert("xid".into(), x);
        }
        if let Some(r) = rspec {
            m.insert(if plain { "rspec" } else { "_rspec" }.into(), r);
        }
        Value::Object(m)
    });
    prop_oneof![5 => rec, 1 => any_json()]
}

/// Whether a record leaves the live set unknown (SPEC §3): not an object,
/// a `name` that is not a string, or (array form) no `name` at all.
fn names_no_slice(rec: &Value, keyed: bool) -> bool {
    match rec {
        Value::Object(m) => match m.get("name") {
            Some(Value::String(_)) => false,
            Some(_) => true,
            None => !keyed,
        },
        _ => true,
    }
}

/// Every record of `n` is in exactly one list, and what is live is sound.
fn check_partition(got: &Input, n: usize) {
    assert_eq!(
        got.live.len() + got.held.len() + got.skipped.len(),
        n,
        "{got:#?}"
    );
    assert!(
        got.live.windows(2).all(|w| w[0].xid < w[1].xid),
        "not sorted or not unique"
    );
    let mut names: Vec<&str> = got.live.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), got.live.len(), "duplicate live names");
    for s in &got.live {
        assert!(valid_name(&s.name) && (1..=4094).contains(&s.xid), "{s:?}");
        assert!(
            !got.held
                .iter()
                .any(|h| h.xid == Some(s.xid) || h.name.as_ref() == Some(&s.name))
        );
    }
    for h in &got.held {
        assert!(h.name.as_deref().is_none_or(valid_name), "{h:?}");
        assert!(h.xid.is_none_or(|x| (1..=4094).contains(&x)), "{h:?}");
    }
    assert_one_line(got);
}

proptest! {
    #[test]
    fn never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(got) = parse(&bytes, &uid_of) {
            assert_one_line(&got);
        }
    }

    #[test]
    fn never_panics_on_jsonish(text in r#"[\[\]{}":,0-9a-z_ .\-\\\n\te+]{0,200}"#) {
        match run(&text) {
            Ok(got) => assert_one_line(&got),
            Err(e) => prop_assert!(one_line(&e.0), "{:?}", e.0),
        }
    }

    #[test]
    fn array_records_are_partitioned(recs in prop::collection::vec(record(), 0..12)) {
        let n = recs.len();
        let refused = recs.iter().any(|r| names_no_slice(r, false));
        let text = serde_json::to_string(&Value::Array(recs)).unwrap();
        match run(&text) {
            Ok(got) => { prop_assert!(!refused); check_partition(&got, n); }
            Err(e) => prop_assert!(refused && one_line(&e.0), "{:?}", e.0),
        }
    }

    #[test]
    fn object_records_are_partitioned(
        recs in prop::collection::vec(("[a-c]{1,2}|.{0,6}", record()), 0..12),
    ) {
        // Written by hand so that repeated keys reach the parser.
        let entries: Vec<String> = recs
            .iter()
            .map(|(k, v)| format!("{}: {v}", json!(k)))
            .collect();
        let text = format!("{{{}}}", entries.join(", "));
        let refused = recs.iter().any(|(_, r)| names_no_slice(r, true));
        match run(&text) {
            Ok(got) => { prop_assert!(!refused); check_partition(&got, recs.len()); }
            Err(e) => prop_assert!(refused && one_line(&e.0), "{:?}", e.0),
        }
    }
}
