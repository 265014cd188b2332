//! `bwmon explain` on a real kernel: the decision it shows is the one the
//! last sync applied (its ceil is the class's ceil in the kernel, its used
//! bytes the class's counter), and `--now` tells what a later sync then
//! applies.

mod common;

use common::mid::{self, MID_LIMIT};
use common::{ALICE, DAY, HOUR, alice_only, assert_exit, at, low, or_skip, stdout};

/// tc's rate text as bit/s (`2024bit`, `8Kbit`, `1Gbit`).
fn tc_bits(text: &str) -> u64 {
    common::parse_rate(text).0
}

fn explain_json(sb: &common::Sandbox, now: Option<&str>) -> serde_json::Value {
    let args = ["explain", ALICE.0, "--format", "json"];
    let out = if let Some(t) = now {
        sb.run_bwmon(t, &args, None)
    } else {
        // No `--now`: only the last sync's decision, whatever the clock says.
        let config = sb.config.to_str().expect("UTF-8 temp path");
        let mut full = vec!["-c", config, "--dev", "lo"];
        full.extend(args);
        sb.run_raw(&full, b"", &[])
    };
    assert_exit(&out, 0, "explain --format json");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("explain JSON does not parse ({e}): {}", stdout(&out)))
}

#[test]
fn explain_shows_the_decision_the_kernel_holds() {
    let (sb, used) = or_skip!(mid::alice_capped(&alice_only()));
    let class = sb.ns.class(low(ALICE.1)).expect("alice's low class");

    let v = explain_json(&sb, None);
    let low_class = &v["classes"][0];
    assert_eq!(low_class["class"], "low");
    let last = &low_class["last_sync"];
    eprintln!("{last:#}");
    assert_eq!(
        last["used_bytes"].as_u64(),
        Some(used),
        "used = the class's counter"
    );
    assert_eq!(last["counter_bytes"].as_u64(), Some(class.sent));
    assert_eq!(last["quota_bytes"].as_u64(), Some(MID_LIMIT));
    assert_eq!(last["seconds_left"].as_u64(), Some(DAY - 22 * HOUR));
    assert_eq!(last["left_bytes"].as_u64(), Some(MID_LIMIT - used));
    let formula = (MID_LIMIT - used) * 8 / (DAY - 22 * HOUR);
    assert_eq!(last["formula_bps"].as_u64(), Some(formula));
    assert_eq!(last["clamp"], "none");
    let ceil = last["ceil_bps"].as_u64().expect("ceil");
    assert_eq!(ceil, formula);
    // The kernel keeps bytes/s: what explain says tc shows is what tc shows.
    assert_eq!(
        last["ceil_tc"].as_str(),
        Some(class.ceil.as_str()),
        "{class:?}"
    );
    assert_eq!(tc_bits(&class.ceil), ceil / 8 * 8);
    assert!(v["classes"][0]["now"].is_null(), "no --now, no what-if");
    assert_eq!(v["mailed"], true);
    assert_eq!(
        v["first_capped"].as_str(),
        Some(at(22 * HOUR).as_str()),
        "mailed when first capped"
    );

    // The table says the same in words.
    let out = sb.run_bwmon(&at(22 * HOUR), &["explain", ALICE.0], None);
    assert_exit(&out, 0, "explain");
    let text = stdout(&out);
    eprintln!("{text}");
    assert!(
        text.contains(&format!("(tc shows {})", class.ceil)),
        "{text}"
    );
    assert!(
        text.contains("formula       left x 8 / seconds left"),
        "{text}"
    );

    // What-if, an hour on: the sync that then runs applies just that.
    let later = at(23 * HOUR);
    let v = explain_json(&sb, Some(&later));
    let now = &v["classes"][0]["now"];
    assert_eq!(now["seconds_left"].as_u64(), Some(DAY - 23 * HOUR));
    let want = now["ceil_bps"].as_u64().expect("ceil now");
    sb.sync(&later, &alice_only());
    let class = sb.ns.class(low(ALICE.1)).expect("alice's low class");
    assert_eq!(tc_bits(&class.ceil), want / 8 * 8, "{class:?}");
    assert_eq!(now["ceil_tc"].as_str(), Some(class.ceil.as_str()));

    // Past the period's end a sync starts a new one: nothing used, no cap.
    let v = explain_json(&sb, Some(&at(DAY + HOUR)));
    let now = &v["classes"][0]["now"];
    assert_eq!(now["used_bytes"].as_u64(), Some(0));
    assert_eq!(now["clamp"], "under_threshold");
}

#[test]
fn explain_names_an_unknown_slice_and_exits_3() {
    let sb = or_skip!(mid::synced(&alice_only()));
    let out = sb.run_bwmon(&at(HOUR), &["explain", "pl_nobody"], None);
    assert_exit(&out, 3, "explain of an unknown slice");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unknown slice pl_nobody"), "{err}");
}
