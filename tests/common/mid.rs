//! The mid-sized quota of the kernel and operator tests: a cap the formula
//! leaves above min rate late in the period. Quota 10000 KiB (10,240,000 B;
//! threshold 80 %: 8,192,000 B) and [`SEND_PACKETS`] datagrams of
//! [`SEND_PAYLOAD`] bytes (8,405,880 B on the wire), so 22 h into a day the
//! cap is ~2 kbit/s.

use super::node::wire;
use super::{ALICE, DAY, HOUR, Sandbox, Settings, T0, assert_rate, at, expected_ceil, low};

/// Node cap given to `init`, and so every slice's max rate.
pub const BWCAP: &str = "1gbit";
pub const BWCAP_BITS: u64 = 1_000_000_000;
/// bwmin: every slice's min rate.
pub use super::node::MIN_RATE;

pub const MID_KBYTE: u64 = 10_000;
pub const MID_LIMIT: u64 = MID_KBYTE * 1024;
pub const SEND_PACKETS: usize = 140;
pub const SEND_PAYLOAD: usize = 60_000;

pub fn settings() -> Settings {
    Settings {
        max_kbyte: MID_KBYTE,
        max_i2_kbyte: MID_KBYTE,
        ..Settings::default()
    }
}

/// A sandbox with the mid config, its hierarchy and a first sync of `live`
/// at `T0` (`None`: the real-kernel tests cannot run here).
pub fn synced(live: &str) -> Option<Sandbox> {
    Sandbox::synced(&settings(), BWCAP, live)
}

/// Sends the mid traffic into class `1:minor`; returns its counter afterwards.
pub fn send_over(sb: &Sandbox, minor: u32) -> u64 {
    sb.ns.send(minor, SEND_PACKETS, SEND_PAYLOAD)
}

/// init, first sync at T0 with `live`, Alice over her low threshold, sync at
/// T0 + 22 h: she is capped and mailed once. Returns the bytes the kernel
/// counted (her class was new at T0, so that is her usage).
pub fn alice_capped_at_22h(sb: &Sandbox, live: &str) -> u64 {
    sb.init(T0, Some(BWCAP));
    sb.sync(T0, live);
    assert_eq!(sb.ns.class(low(ALICE.1)).expect("alice's class").sent, 0);
    let used = send_over(sb, low(ALICE.1));
    assert_eq!(used, SEND_PACKETS as u64 * wire(SEND_PAYLOAD as u64));
    assert!(
        used * 100 >= MID_LIMIT * 80,
        "the traffic must cross the threshold"
    );
    sb.sync(&at(22 * HOUR), live);
    assert_low_cap(sb, ALICE.1, used, 22 * HOUR);
    assert_eq!(sb.mails().len(), 1, "one mail for the first cap");
    used
}

/// A mid sandbox after [`alice_capped_at_22h`], and Alice's usage.
pub fn alice_capped(live: &str) -> Option<(Sandbox, u64)> {
    let sb = Sandbox::new(&settings())?;
    let used = alice_capped_at_22h(&sb, live);
    Some((sb, used))
}

/// A sync of `live` at `elapsed` into the period, after which Alice's low
/// class is still capped by the formula for `used` bytes.
#[track_caller]
pub fn sync_still_capped(sb: &Sandbox, live: &str, used: u64, elapsed: u64) {
    sb.sync(&at(elapsed), live);
    assert_low_cap(sb, ALICE.1, used, elapsed);
}

/// The low class of `xid` is capped by the formula for `used` bytes at `elapsed`.
#[track_caller]
pub fn assert_low_cap(sb: &Sandbox, xid: u32, used: u64, elapsed: u64) {
    let class = sb
        .ns
        .class(low(xid))
        .unwrap_or_else(|| panic!("class 1:{:x} missing", low(xid)));
    let expected = expected_ceil(MID_LIMIT, used, DAY, elapsed, MIN_RATE, BWCAP_BITS);
    eprintln!(
        "1:{:x}: {class:?}, expected ceil {expected} bit/s",
        low(xid)
    );
    assert!(
        expected > MIN_RATE && expected < BWCAP_BITS,
        "test design: the cap should be strictly between min and max, is {expected}"
    );
    assert_rate(
        &class.ceil,
        expected,
        &format!(
            "ceil of 1:{:x} ({used} B used, {elapsed} s into the period)",
            low(xid)
        ),
    );
}

/// Class `1:minor` is at its max rate, the node cap.
#[track_caller]
pub fn assert_uncapped(sb: &Sandbox, minor: u32) {
    let class = sb
        .ns
        .class(minor)
        .unwrap_or_else(|| panic!("class 1:{minor:x} missing"));
    assert_eq!(
        class.ceil, "1Gbit",
        "1:{minor:x} should be at its max rate: {class:?}"
    );
}
