//! Tests of the pure policy: see policy.rs. They check SPEC §1, §3, §4, §5,
//! §9 and §10, not merely what the code does; the tests that found deviations
//! from the SPEC (counter resets above the baseline, Change ops on adoption)
//! stay as regression tests.

use super::*;
use crate::units::{Kbit, KiB};
use chrono::TimeDelta;
use proptest::prelude::*;
use std::slice::from_ref;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const DAY: u64 = 86_400;
const HOUR: i64 = 3600;
const DAY_I: i64 = 86_400;

/// A fixed instant all tests count from.
fn t0() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
        .expect("valid RFC 3339")
        .with_timezone(&Utc)
}

/// `secs` seconds after (or before, if negative) T0.
fn at(secs: i64) -> DateTime<Utc> {
    t0() + TimeDelta::seconds(secs)
}

/// A 100 Mbit/s node cap, 1 Gbit/s hardware, a one-day period.
fn node() -> Node {
    Node {
        bwcap: Rate(100_000_000),
        bwmax: Rate(1_000_000_000),
        period_secs: DAY,
    }
}

fn defaults() -> Defaults {
    Defaults {
        max_kbyte: KiB(100),
        max_i2_kbyte: KiB(1000),
        thresh_percent: 80,
        share: 1,
    }
}

fn base_limits_on(node: &Node) -> SliceLimits {
    limits_for(&Rspec::default(), &defaults(), node)
}

fn base_limits() -> SliceLimits {
    base_limits_on(&node())
}

fn live(name: &str, xid: u16) -> Live {
    live_with(name, xid, &Rspec::default())
}

fn live_with(name: &str, xid: u16, rspec: &Rspec) -> Live {
    live_on(&node(), name, xid, rspec)
}

fn live_on(node: &Node, name: &str, xid: u16, rspec: &Rspec) -> Live {
    Live {
        name: name.into(),
        xid,
        limits: limits_for(rspec, &defaults(), node),
    }
}

/// A rate as the kernel holds it: bytes/s, so a multiple of 8 bit/s.
fn printed(r: Rate) -> Rate {
    r.as_kernel_keeps()
}

/// Builder of one kernel class in a slice's form.
#[derive(Clone, Debug)]
struct Kc(KernelClass);

impl Kc {
    /// The class as bwmon creates it with the default limits, counter at 0.
    fn new(kind: Kind, xid: u16) -> Kc {
        let l = *base_limits().get(kind);
        let id = kind.class_id(xid);
        Kc(KernelClass {
            id,
            parent: Some(kind.parent()),
            rate: printed(l.min),
            ceil: printed(l.max),
            quantum: Some(quantum(l.share)),
            sent: Bytes(0),
            leaf: Some(ClassId::new(id.minor, 0)),
        })
    }
    /// A class of any handle and parent.
    fn raw(id: ClassId, parent: ClassId) -> Kc {
        let mut k = Kc::new(Kind::Low, 1);
        k.0.id = id;
        k.0.parent = Some(parent);
        k
    }
    fn limits(self, l: &Limits) -> Kc {
        self.rate(l.min).ceil(l.max).quantum(Some(quantum(l.share)))
    }
    fn rate(mut self, r: Rate) -> Kc {
        self.0.rate = printed(r);
        self
    }
    fn ceil(mut self, r: Rate) -> Kc {
        self.0.ceil = printed(r);
        self
    }
    fn kernel_ceil(mut self, bits: u64) -> Kc {
        self.0.ceil = Rate(bits);
        self
    }
    fn quantum(mut self, q: Option<u32>) -> Kc {
        self.0.quantum = q;
        self
    }
    fn sent(mut self, n: u64) -> Kc {
        self.0.sent = Bytes(n);
        self
    }
    fn build(self) -> KernelClass {
        self.0
    }
}

/// A class state as bwmon leaves it after applying `l` uncapped.
fn cls(l: &Limits, base: u64, carry: u64, last: u64) -> ClassState {
    ClassState {
        base: Bytes(base),
        carry: Bytes(carry),
        last: Bytes(last),
        ceil: l.max,
        min: l.min,
        max: l.max,
        quota: l.quota,
        thresh: l.thresh,
        share: l.share,
    }
}

/// A slice's state as bwmon leaves it, counters at 0, uncapped, not mailed.
fn slice_state(l: &Live, start: DateTime<Utc>) -> SliceState {
    SliceState {
        name: l.name.clone(),
        xid: l.xid,
        start,
        mailed: false,
        lo: cls(&l.limits.lo, 0, 0, 0),
        i2: cls(&l.limits.i2, 0, 0, 0),
        capped: None,
    }
}

/// A slice state with the given low and i2 counters (base 0, so used = last).
fn slice_used(l: &Live, start: DateTime<Utc>, lo: u64, i2: u64) -> SliceState {
    let mut s = slice_state(l, start);
    s.lo.last = Bytes(lo);
    s.i2.last = Bytes(i2);
    s
}

fn used_of(s: &SliceState, kind: Kind) -> Bytes {
    let c = class_of(s, kind);
    c.used(c.last)
}

/// The kernel showing exactly what bwmon applied to `s`, counters at `last`.
fn kernel_of(s: &SliceState) -> Vec<KernelClass> {
    Kind::BOTH
        .into_iter()
        .map(|kind| {
            let c = class_of(s, kind);
            Kc::new(kind, s.xid)
                .rate(c.min)
                .ceil(c.ceil)
                .quantum(Some(quantum(c.share)))
                .sent(c.last.0)
                .build()
        })
        .collect()
}

fn kernel_of_state(state: &State) -> Vec<KernelClass> {
    state.slices.values().flat_map(|s| kernel_of(s)).collect()
}

fn specials(start: DateTime<Utc>) -> Vec<SliceState> {
    let l = base_limits();
    [(ROOT_XID, "root"), (DEFAULT_XID, "default")]
        .into_iter()
        .map(|(xid, name)| {
            slice_state(
                &Live {
                    name: name.into(),
                    xid,
                    limits: l,
                },
                start,
            )
        })
        .collect()
}

/// A steady world: root, default and `slices` in the state, and the kernel
/// showing exactly what the state says was applied.
fn world(slices: Vec<SliceState>) -> (State, Vec<KernelClass>) {
    let mut state = State::default();
    for s in specials(t0()).into_iter().chain(slices) {
        state.slices.insert(s.xid, Box::new(s));
    }
    let kernel = kernel_of_state(&state);
    (state, kernel)
}

/// Sets the `Sent` counter of one class in a kernel view.
fn set_sent(kernel: &mut [KernelClass], kind: Kind, xid: u16, sent: u64) {
    let id = kind.class_id(xid);
    let k = kernel
        .iter_mut()
        .find(|k| k.id == id)
        .expect("class in the kernel view");
    k.sent = Bytes(sent);
}

/// Drops a slice's classes from a kernel view.
fn without(kernel: Vec<KernelClass>, xid: u16) -> Vec<KernelClass> {
    kernel
        .into_iter()
        .filter(|k| Kind::of_kernel_class(k).is_none_or(|(_, x)| x != xid))
        .collect()
}

fn run(state: State, live: &[Live], kernel: &[KernelClass], now: DateTime<Utc>) -> Plan {
    run_on(node(), state, live, kernel, now)
}

fn run_on(
    node: Node,
    state: State,
    live: &[Live],
    kernel: &[KernelClass],
    now: DateTime<Utc>,
) -> Plan {
    run_full(
        node,
        state,
        live,
        kernel,
        now,
        &HashSet::new(),
        &HashSet::new(),
    )
}

fn run_full(
    node: Node,
    state: State,
    live: &[Live],
    kernel: &[KernelClass],
    now: DateTime<Utc>,
    held_xids: &HashSet<u16>,
    held_names: &HashSet<String>,
) -> Plan {
    plan(Inputs {
        state,
        live,
        held_xids,
        held_names,
        kernel,
        node,
        base_limits: base_limits_on(&node),
        now,
    })
}

fn ops_of(p: &Plan, xid: u16) -> Vec<Op> {
    p.ops.iter().copied().filter(|o| o.xid() == xid).collect()
}

fn sl(p: &Plan, xid: u16) -> &SliceState {
    p.state
        .slices
        .get(&xid)
        .unwrap_or_else(|| panic!("xid {xid} in the plan's state: {:?}", p.state.slices))
}

fn mail_of(p: &Plan, xid: u16) -> Option<&MailRequest> {
    let mut it = p.mails.iter().filter(|m| m.xid == xid);
    let first = it.next();
    assert!(it.next().is_none(), "one mail per slice: {:?}", p.mails);
    first
}

fn mailed_kinds(p: &Plan, xid: u16) -> Vec<Kind> {
    mail_of(p, xid).map_or_else(Vec::new, |m| m.classes.iter().map(|c| c.kind).collect())
}

fn spec(l: &Limits, ceil: Rate) -> Spec {
    Spec {
        rate: l.min,
        ceil,
        quantum: quantum(l.share),
    }
}

fn deletes_come_first(p: &Plan) -> bool {
    let first_other = p
        .ops
        .iter()
        .position(|o| !matches!(o, Op::Delete { .. }))
        .unwrap_or(p.ops.len());
    p.ops[first_other..]
        .iter()
        .all(|o| !matches!(o, Op::Delete { .. }))
}

fn big_quota() -> Rspec {
    // 10,240,000,000 bytes: large enough for the formula to land between
    // bwmin and the node cap.
    Rspec {
        max_kbyte: Some(KiB(10_000_000)),
        ..Rspec::default()
    }
}

// ---------------------------------------------------------------------------
// The cap formula (SPEC §1)
// ---------------------------------------------------------------------------

#[test]
fn cap_formula_with_units() {
    let l = base_limits().lo;
    // Volumes are KiB: 100 KiB is 102,400 bytes; the threshold is 80 % of it.
    assert_eq!(l.quota, Bytes(102_400));
    assert_eq!(l.thresh, Bytes(81_920));
    assert_eq!(l.min, Rate(1000));
    assert_eq!(l.max, Rate(100_000_000));

    // Bytes left * 8 over seconds left, integer division, in bit/s.
    let open = Limits {
        min: Rate(1),
        max: Rate(u64::MAX),
        ..l
    };
    let want = (102_400u64 - 90_000) * 8 / (86_400 - 21_600);
    assert_eq!(capped_ceil(&open, Bytes(90_000), 21_600, DAY), Rate(want));
    // That is 1 bit/s: below min, so min.
    assert_eq!(want, 1);
    assert_eq!(capped_ceil(&l, Bytes(90_000), 21_600, DAY), l.min);

    // A quota where the result lands between min and max is taken as is.
    let big = limits_for(&big_quota(), &defaults(), &node()).lo;
    assert_eq!(big.quota, Bytes(10_240_000_000));
    let want = (10_240_000_000u64 - 9_000_000_000) * 8 / (86_400 - 21_600);
    assert!(want > big.min.0 && want < big.max.0, "{want}");
    assert_eq!(
        capped_ceil(&big, Bytes(9_000_000_000), 21_600, DAY),
        Rate(want)
    );

    // And through `plan`: the Change op and the mail carry that ceil.
    let a = live_with("pl_a", 101, &big_quota());
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 9_000_000_000);
    let p = run(state, from_ref(&a), &kernel, at(6 * HOUR));
    assert_eq!(
        ops_of(&p, 101),
        vec![Op::Change {
            xid: 101,
            kind: Kind::Low,
            spec: spec(&a.limits.lo, Rate(want))
        }]
    );
    assert_eq!(sl(&p, 101).lo.ceil, Rate(want));
    let m = mail_of(&p, 101).expect("capped, so mailed");
    assert_eq!(
        m.classes,
        vec![CappedClass {
            kind: Kind::Low,
            used: Bytes(9_000_000_000),
            ceil: Rate(want),
            quota: Bytes(10_240_000_000),
        }]
    );
    assert_eq!(m.start, t0());
    assert_eq!(m.name, "pl_a");
}

#[test]
fn cap_negative_remainder_gives_min() {
    let l = base_limits().lo;
    assert_eq!(capped_ceil(&l, Bytes(102_401), 3600, DAY), l.min);
    assert_eq!(capped_ceil(&l, Bytes(10_000_000), 3600, DAY), l.min);
    assert_eq!(capped_ceil(&l, Bytes(u64::MAX), 0, DAY), l.min);

    // In a plan: used above the quota → ceil = min, capped, mailed.
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 500_000);
    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    assert_eq!(sl(&p, 101).lo.ceil, a.limits.lo.min);
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::Low]);
}

#[test]
fn cap_above_max_is_max_not_capped_not_mailed() {
    // Over the threshold, but so much quota left that the formula exceeds
    // the max rate: SPEC §10 "Mail flag and caps below max".
    let rspec = Rspec {
        max_kbyte: Some(KiB(10_000_000_000)),
        thresh_kbyte: Some(KiB(1)),
        ..Rspec::default()
    };
    let a = live_with("pl_a", 101, &rspec);
    let l = a.limits.lo;
    assert!(
        (l.quota.0 - 1_000_000) * 8 / DAY > l.max.0,
        "the formula is above max"
    );
    assert_eq!(capped_ceil(&l, Bytes(1_000_000), 0, DAY), l.max);

    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 1_000_000);
    let p = run(state.clone(), from_ref(&a), &kernel, t0());
    assert_eq!(sl(&p, 101).lo.ceil, l.max);
    assert!(ops_of(&p, 101).is_empty(), "{:?}", p.ops);
    assert!(p.mails.is_empty(), "{:?}", p.mails);

    // A class capped at the last run whose formula now reaches max: lifted, no mail.
    let mut s = slice_state(&a, t0());
    s.lo.ceil = Rate(5_000_000);
    let (state, mut kernel) = world(vec![s]);
    set_sent(&mut kernel, Kind::Low, 101, 1_000_000);
    let p = run(state, from_ref(&a), &kernel, t0());
    assert_eq!(
        ops_of(&p, 101),
        vec![Op::Change {
            xid: 101,
            kind: Kind::Low,
            spec: spec(&l, l.max)
        }]
    );
    assert!(p.mails.is_empty(), "{:?}", p.mails);
}

// ---------------------------------------------------------------------------
// Elapsed time clamping
// ---------------------------------------------------------------------------

#[test]
fn elapsed_clock_backwards_is_zero() {
    assert_eq!(elapsed_secs(at(100), at(0)), 0);
    assert_eq!(elapsed_secs(at(0), at(-10 * DAY_I)), 0);
    assert_eq!(elapsed_secs(at(0), at(90)), 90);
    assert_eq!(elapsed_secs(at(0), at(DAY_I)), DAY);

    // The clock went back an hour before the period start: no panic, no new
    // period, the usage is counted, and the cap spreads over the whole period.
    let a = live_with("pl_a", 101, &big_quota());
    let (state, mut kernel) = world(vec![slice_state(&a, at(HOUR))]);
    set_sent(&mut kernel, Kind::Low, 101, 9_000_000_000);
    let p = run(state, from_ref(&a), &kernel, t0());
    let s = sl(&p, 101);
    assert_eq!(s.start, at(HOUR), "no new period");
    assert_eq!(used_of(s, Kind::Low), Bytes(9_000_000_000));
    assert_eq!(s.lo.ceil, Rate(1_240_000_000 * 8 / DAY));
}

#[test]
fn elapsed_near_period_end_divides_by_one_never_zero() {
    let l = Limits {
        min: Rate(1),
        max: Rate(u64::MAX),
        quota: Bytes(1000),
        thresh: Bytes(0),
        share: 1,
    };
    assert_eq!(capped_ceil(&l, Bytes(0), DAY - 2, DAY), Rate(4000));
    assert_eq!(capped_ceil(&l, Bytes(0), DAY - 1, DAY), Rate(8000));
    assert_eq!(capped_ceil(&l, Bytes(0), DAY, DAY), Rate(8000));
    assert_eq!(capped_ceil(&l, Bytes(0), DAY + 7, DAY), Rate(8000));
    assert_eq!(capped_ceil(&l, Bytes(0), u64::MAX, DAY), Rate(8000));
    // period 1: only elapsed 0 is inside it.
    assert_eq!(capped_ceil(&l, Bytes(0), 0, 1), Rate(8000));
    assert_eq!(capped_ceil(&l, Bytes(0), u64::MAX, 1), Rate(8000));
    // A zero period cannot be configured, but must not divide by zero either.
    assert_eq!(capped_ceil(&l, Bytes(0), 0, 0), Rate(8000));
    assert_eq!(capped_ceil(&l, Bytes(0), 5, 0), Rate(8000));

    // In a plan, the last second of the period.
    let a = live_with("pl_a", 101, &big_quota());
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 10_240_000_000 - 1000);
    let p = run(state, from_ref(&a), &kernel, at(DAY_I - 1));
    assert_eq!(sl(&p, 101).start, t0());
    assert_eq!(sl(&p, 101).lo.ceil, Rate(8000));
}

#[test]
fn period_secs_one_edge() {
    let n = Node {
        period_secs: 1,
        ..node()
    };
    let a = live_on(&n, "pl_a", 101, &Rspec::default());
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 90_000);
    // Same second: same period, capped (formula over one second left).
    let p = run_on(n, state.clone(), from_ref(&a), &kernel, t0());
    assert_eq!(sl(&p, 101).start, t0());
    assert_eq!(sl(&p, 101).lo.ceil, Rate((102_400 - 90_000) * 8));
    // One second on: a new period.
    let p = run_on(n, state, from_ref(&a), &kernel, at(1));
    assert_eq!(sl(&p, 101).start, at(1));
    assert_eq!(used_of(sl(&p, 101), Kind::Low), Bytes(0));
    assert_eq!(sl(&p, 101).lo.ceil, a.limits.lo.max);
}

// ---------------------------------------------------------------------------
// Rollover, counter resets (SPEC §5 step 8)
// ---------------------------------------------------------------------------

#[test]
fn rollover_starts_a_new_period_and_lifts_the_cap() {
    let a = live("pl_a", 101);
    let l = a.limits.lo;
    let mut s = slice_state(&a, t0());
    s.mailed = true;
    s.lo = ClassState {
        ceil: l.min,
        ..cls(&l, 500, 100, 200_000)
    };
    let (state, mut kernel) = world(vec![s]);
    set_sent(&mut kernel, Kind::Low, 101, 250_000);
    set_sent(&mut kernel, Kind::I2, 101, 7777);

    // One second before the end: same period, still capped, no second mail.
    let p = run(state.clone(), from_ref(&a), &kernel, at(DAY_I - 1));
    assert_eq!(sl(&p, 101).start, t0());
    assert!(sl(&p, 101).lo.ceil < l.max);
    assert!(sl(&p, 101).mailed);
    assert!(p.mails.is_empty());

    // At start + period: a new period starting now.
    let now = at(DAY_I);
    let p = run(state, from_ref(&a), &kernel, now);
    let s = sl(&p, 101);
    assert_eq!(s.start, now);
    assert!(!s.mailed, "mail flag cleared");
    assert_eq!(
        (s.lo.base, s.lo.carry, s.lo.last),
        (Bytes(250_000), Bytes(0), Bytes(250_000))
    );
    assert_eq!(
        (s.i2.base, s.i2.carry, s.i2.last),
        (Bytes(7777), Bytes(0), Bytes(7777))
    );
    assert_eq!(used_of(s, Kind::Low), Bytes(0));
    assert_eq!(s.lo.ceil, l.max);
    assert_eq!(
        ops_of(&p, 101),
        vec![Op::Change {
            xid: 101,
            kind: Kind::Low,
            spec: spec(&l, l.max)
        }]
    );
    assert!(p.mails.is_empty());
}

#[test]
fn counter_reset_carries_usage() {
    let mut c = ClassState {
        base: Bytes(1000),
        carry: Bytes(50),
        last: Bytes(5000),
        ..ClassState::default()
    };
    assert_eq!(c.used(c.last), Bytes(4050));
    advance(&mut c, Bytes(300));
    assert_eq!(c.carry, Bytes(4050));
    assert_eq!(c.base, Bytes(300));
    assert_eq!(c.last, Bytes(300));
    assert_eq!(c.used(c.last), Bytes(4050));
    advance(&mut c, Bytes(400));
    assert_eq!(c.used(c.last), Bytes(4150));
    assert_eq!(c.carry, Bytes(4050));

    // In a plan: the period goes on, the usage counted so far stays.
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 1000, 50, 5000);
    let (state, mut kernel) = world(vec![s]);
    set_sent(&mut kernel, Kind::Low, 101, 300);
    let p = run(state, from_ref(&a), &kernel, at(2 * HOUR));
    let s = sl(&p, 101);
    assert_eq!(s.start, t0());
    assert_eq!(
        (s.lo.base, s.lo.carry, s.lo.last),
        (Bytes(300), Bytes(4050), Bytes(300))
    );
    assert_eq!(used_of(s, Kind::Low), Bytes(4050));
    assert!(ops_of(&p, 101).is_empty());
}

// SPEC §9.6 names "a counter that goes backwards"; step 8's wording only says
// `counter < baseline`. With baseline 0 (every class bwmon creates starts at
// 0) a counter that restarted and is already above the baseline but below the
// last counter seen must be a reset too, or the usage drops.
#[test]
fn counter_reset_above_baseline_keeps_usage() {
    let mut c = ClassState {
        base: Bytes(0),
        carry: Bytes(0),
        last: Bytes(10_000_000),
        ..ClassState::default()
    };
    advance(&mut c, Bytes(5000));
    assert!(
        c.used(c.last) >= Bytes(10_000_000),
        "usage dropped to {:?}",
        c.used(c.last)
    );

    // The same through plan: a capped slice is uncapped by the reset.
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![slice_used(&a, t0(), 90_000, 0)]);
    set_sent(&mut kernel, Kind::Low, 101, 5000);
    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    assert!(used_of(sl(&p, 101), Kind::Low) >= Bytes(90_000));
    assert!(sl(&p, 101).lo.ceil < a.limits.lo.max);
}

// ---------------------------------------------------------------------------
// Deaths and reinstatement (SPEC §5 steps 1, 6, 7)
// ---------------------------------------------------------------------------

#[test]
fn dead_slice_gets_a_dead_record_and_its_classes_deleted() {
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 100, 0, 1000);
    s.mailed = true;
    let (state, mut kernel) = world(vec![s]);
    set_sent(&mut kernel, Kind::Low, 101, 3000);
    set_sent(&mut kernel, Kind::I2, 101, 5);
    let p = run(state, &[], &kernel, at(HOUR));
    assert!(!p.state.slices.contains_key(&101));
    assert_eq!(
        p.state.dead.get("pl_a"),
        Some(&DeadState {
            name: "pl_a".into(),
            start: t0(),
            lo: Bytes(2900),
            i2: Bytes(5),
            mailed: true,
            xid: Some(101),
            capped: None,
        })
    );
    assert_eq!(
        ops_of(&p, 101),
        vec![
            Op::Delete {
                xid: 101,
                kind: Kind::Low
            },
            Op::Delete {
                xid: 101,
                kind: Kind::I2
            },
        ]
    );
    assert!(p.mails.is_empty());
}

fn dead(name: &str, start: DateTime<Utc>, lo: u64, i2: u64, mailed: bool) -> DeadState {
    DeadState {
        name: name.into(),
        start,
        lo: Bytes(lo),
        i2: Bytes(i2),
        mailed,
        xid: None,
        capped: None,
    }
}

#[test]
fn reinstated_in_the_same_period_keeps_start_usage_and_mail_flag() {
    let a = live("pl_a", 202);
    for mailed in [true, false] {
        let (mut state, kernel) = world(vec![]);
        state
            .dead
            .insert("pl_a".into(), dead("pl_a", t0(), 90_000, 10, mailed));
        let now = at(6 * HOUR);
        let p = run(state, from_ref(&a), &kernel, now);
        let s = sl(&p, 202);
        assert_eq!(s.start, t0());
        assert_eq!(s.mailed, mailed);
        assert_eq!(used_of(s, Kind::Low), Bytes(90_000));
        assert_eq!(used_of(s, Kind::I2), Bytes(10));
        assert!(!p.state.dead.contains_key("pl_a"), "record consumed");
        // Created already capped: usage is over the threshold.
        let lo_ceil = capped_ceil(&a.limits.lo, Bytes(90_000), 6 * 3600, DAY);
        assert!(lo_ceil < a.limits.lo.max);
        assert_eq!(
            ops_of(&p, 202),
            vec![
                Op::Add {
                    xid: 202,
                    kind: Kind::Low,
                    spec: spec(&a.limits.lo, lo_ceil)
                },
                Op::Add {
                    xid: 202,
                    kind: Kind::I2,
                    spec: spec(&a.limits.i2, a.limits.i2.max)
                },
            ]
        );
        // One mail per period: only if the dead record had none.
        assert_eq!(mail_of(&p, 202).is_some(), !mailed);
    }
}

#[test]
fn reinstated_after_its_period_is_a_fresh_period() {
    let a = live("pl_a", 202);
    let (mut state, kernel) = world(vec![]);
    state
        .dead
        .insert("pl_a".into(), dead("pl_a", t0(), 90_000, 10, true));
    let now = at(DAY_I);
    let p = run(state, from_ref(&a), &kernel, now);
    let s = sl(&p, 202);
    assert_eq!(s.start, now);
    assert!(!s.mailed);
    assert_eq!(used_of(s, Kind::Low), Bytes(0));
    assert_eq!(used_of(s, Kind::I2), Bytes(0));
    assert!(p.state.dead.is_empty());
    assert_eq!(
        ops_of(&p, 202),
        vec![
            Op::Add {
                xid: 202,
                kind: Kind::Low,
                spec: spec(&a.limits.lo, a.limits.lo.max)
            },
            Op::Add {
                xid: 202,
                kind: Kind::I2,
                spec: spec(&a.limits.i2, a.limits.i2.max)
            },
        ]
    );
    assert!(p.mails.is_empty());
}

#[test]
fn name_back_with_another_xid_finds_its_dead_record_in_the_same_run() {
    let old = live("pl_a", 101);
    let new = live("pl_a", 303);
    let mut s = slice_used(&old, t0(), 90_000, 20);
    s.mailed = true;
    s.lo.ceil = old.limits.lo.min;
    let (state, kernel) = world(vec![s]);
    let p = run(state, from_ref(&new), &kernel, at(2 * HOUR));
    assert!(!p.state.slices.contains_key(&101));
    let s = sl(&p, 303);
    assert_eq!(s.name, "pl_a");
    assert_eq!(s.start, t0());
    assert!(s.mailed);
    assert_eq!(used_of(s, Kind::Low), Bytes(90_000));
    assert_eq!(used_of(s, Kind::I2), Bytes(20));
    assert!(!p.state.dead.contains_key("pl_a"));
    assert_eq!(
        ops_of(&p, 101),
        vec![
            Op::Delete {
                xid: 101,
                kind: Kind::Low
            },
            Op::Delete {
                xid: 101,
                kind: Kind::I2
            },
        ]
    );
    let adds = ops_of(&p, 303);
    assert_eq!(adds.len(), 2);
    assert!(
        matches!(adds[0], Op::Add { kind: Kind::Low, spec, .. } if spec.ceil < new.limits.lo.max)
    );
    assert!(deletes_come_first(&p));
    assert!(p.mails.is_empty(), "already mailed this period");
}

#[test]
fn another_slice_on_a_freed_xid_starts_from_zero() {
    // pl_a leaves xid 101, pl_b takes it in the same run: pl_b must not
    // inherit pl_a's counters, and its classes are deleted then re-added.
    let a = live("pl_a", 101);
    let b = live("pl_b", 101);
    let (state, mut kernel) = world(vec![slice_used(&a, t0(), 90_000, 0)]);
    set_sent(&mut kernel, Kind::Low, 101, 95_000);
    let now = at(HOUR);
    let p = run(state, from_ref(&b), &kernel, now);
    let s = sl(&p, 101);
    assert_eq!(s.name, "pl_b");
    assert_eq!(s.start, now);
    assert_eq!(used_of(s, Kind::Low), Bytes(0));
    assert_eq!(p.state.dead["pl_a"].lo, Bytes(95_000));
    let ops = ops_of(&p, 101);
    assert_eq!(ops.len(), 4, "{ops:?}");
    assert!(deletes_come_first(&p));
    assert!(p.mails.is_empty());
}

// ---------------------------------------------------------------------------
// Thresholds, limits, classes, mails
// ---------------------------------------------------------------------------

#[test]
fn threshold_edges() {
    let at_t = live("pl_at", 101);
    let under = live("pl_under", 102);
    let i2_at = live("pl_i2_at", 103);
    let i2_under = live("pl_i2_under", 104);
    let lt = at_t.limits.lo.thresh.0;
    let it = at_t.limits.i2.thresh.0;
    assert_eq!((lt, it), (81_920, 819_200));
    let slices = [&at_t, &under, &i2_at, &i2_under]
        .map(|l| slice_state(l, t0()))
        .to_vec();
    let (state, mut kernel) = world(slices);
    set_sent(&mut kernel, Kind::Low, 101, lt);
    set_sent(&mut kernel, Kind::Low, 102, lt - 1);
    set_sent(&mut kernel, Kind::I2, 103, it);
    set_sent(&mut kernel, Kind::I2, 104, it - 1);
    let live = [at_t.clone(), under.clone(), i2_at.clone(), i2_under.clone()];
    let p = run(state, &live, &kernel, at(HOUR));

    assert!(sl(&p, 101).lo.ceil < at_t.limits.lo.max);
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::Low]);
    assert_eq!(sl(&p, 102).lo.ceil, under.limits.lo.max);
    assert!(ops_of(&p, 102).is_empty());
    assert!(mail_of(&p, 102).is_none());

    assert!(sl(&p, 103).i2.ceil < i2_at.limits.i2.max);
    assert_eq!(mailed_kinds(&p, 103), vec![Kind::I2]);
    assert_eq!(sl(&p, 104).i2.ceil, i2_under.limits.i2.max);
    assert!(ops_of(&p, 104).is_empty());
    assert!(mail_of(&p, 104).is_none());
}

#[test]
fn min_rate_floor_and_limit_clamps() {
    let n = node();
    let lim = |r: Rspec| limits_for(&r, &defaults(), &n);

    // Defaults: min = bwmin, max = node cap, i2 max = bwmax, share 1, 80 %.
    let d = lim(Rspec::default());
    assert_eq!((d.lo.min, d.lo.max), (BWMIN, n.bwcap));
    assert_eq!((d.i2.min, d.i2.max), (BWMIN, n.bwmax));
    assert_eq!((d.lo.share, d.i2.share), (1, 1));
    assert_eq!(d.i2.quota, Bytes(1_024_000));
    assert_eq!(d.i2.thresh, Bytes(819_200));

    // Formula below min → min.
    let hi_min = lim(Rspec {
        min_rate: Some(Kbit(20_000)),
        ..Rspec::default()
    });
    assert_eq!(hi_min.lo.min, Rate(20_000_000));
    assert_eq!(
        capped_ceil(&hi_min.lo, Bytes(100_000), 3600, DAY),
        Rate(20_000_000)
    );

    // min above 25 % of the node cap → 25 % of the node cap.
    let l = lim(Rspec {
        min_rate: Some(Kbit(50_000)),
        ..Rspec::default()
    });
    assert_eq!(l.lo.min, Rate(25_000_000));
    // max above the node cap → the node cap.
    let l = lim(Rspec {
        max_rate: Some(Kbit(1_000_000)),
        ..Rspec::default()
    });
    assert_eq!(l.lo.max, Rate(100_000_000));
    // i2 max above bwmax → bwmax.
    let l = lim(Rspec {
        i2_max_rate: Some(Kbit(10_000_000)),
        ..Rspec::default()
    });
    assert_eq!(l.i2.max, Rate(1_000_000_000));
    // i2 min clamped to i2 max.
    let l = lim(Rspec {
        i2_min_rate: Some(Kbit(800_000)),
        i2_max_rate: Some(Kbit(500_000)),
        ..Rspec::default()
    });
    assert_eq!((l.i2.min, l.i2.max), (Rate(500_000_000), Rate(500_000_000)));
    // min clamped to max.
    let l = lim(Rspec {
        min_rate: Some(Kbit(20_000)),
        max_rate: Some(Kbit(10_000)),
        ..Rspec::default()
    });
    assert_eq!((l.lo.min, l.lo.max), (Rate(10_000_000), Rate(10_000_000)));
    // Zero rates are raised to bwmin.
    let l = lim(Rspec {
        min_rate: Some(Kbit(0)),
        max_rate: Some(Kbit(0)),
        i2_min_rate: Some(Kbit(0)),
        i2_max_rate: Some(Kbit(0)),
        ..Rspec::default()
    });
    assert_eq!(
        (l.lo.min, l.lo.max, l.i2.min, l.i2.max),
        (BWMIN, BWMIN, BWMIN, BWMIN)
    );
    // A tiny node cap: 25 % of it is below bwmin, min stays bwmin.
    let tiny = Node {
        bwcap: Rate(2000),
        ..n
    };
    let l = limits_for(&Rspec::default(), &defaults(), &tiny);
    assert_eq!((l.lo.min, l.lo.max), (BWMIN, Rate(2000)));
    // Shares below 1 become 1.
    let l = lim(Rspec {
        share: Some(0),
        i2_share: Some(0),
        ..Rspec::default()
    });
    assert_eq!((l.lo.share, l.i2.share), (1, 1));
}

#[test]
fn low_and_i2_are_independent() {
    let lo_only = live("pl_lo", 101);
    let i2_only = live("pl_i2", 102);
    let both = live("pl_both", 103);
    let slices = vec![
        slice_state(&lo_only, t0()),
        slice_state(&i2_only, t0()),
        slice_state(&both, t0()),
    ];
    let (state, mut kernel) = world(slices);
    set_sent(&mut kernel, Kind::Low, 101, 90_000);
    set_sent(&mut kernel, Kind::I2, 102, 900_000);
    set_sent(&mut kernel, Kind::Low, 103, 90_000);
    set_sent(&mut kernel, Kind::I2, 103, 900_000);
    let live = [lo_only.clone(), i2_only.clone(), both.clone()];
    let p = run(state, &live, &kernel, at(HOUR));

    assert!(sl(&p, 101).lo.ceil < lo_only.limits.lo.max);
    assert_eq!(sl(&p, 101).i2.ceil, lo_only.limits.i2.max);
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::Low]);
    assert!(ops_of(&p, 101).iter().all(|o| matches!(
        o,
        Op::Change {
            kind: Kind::Low,
            ..
        }
    )));

    assert_eq!(sl(&p, 102).lo.ceil, i2_only.limits.lo.max);
    assert!(sl(&p, 102).i2.ceil < i2_only.limits.i2.max);
    assert_eq!(mailed_kinds(&p, 102), vec![Kind::I2]);
    assert!(
        ops_of(&p, 102)
            .iter()
            .all(|o| matches!(o, Op::Change { kind: Kind::I2, .. }))
    );

    assert!(sl(&p, 103).lo.ceil < both.limits.lo.max);
    assert!(sl(&p, 103).i2.ceil < both.limits.i2.max);
    assert_eq!(mailed_kinds(&p, 103), vec![Kind::Low, Kind::I2]);
    assert_eq!(p.mails.len(), 3);
}

#[test]
fn one_mail_per_period() {
    let a = live("pl_a", 101);
    let mut s = slice_used(&a, t0(), 90_000, 0);
    s.mailed = true;
    s.lo.ceil = capped_ceil(&a.limits.lo, Bytes(90_000), 3600, DAY);
    let (state, kernel) = world(vec![s]);
    let p = run(state.clone(), from_ref(&a), &kernel, at(HOUR));
    assert!(sl(&p, 101).lo.ceil < a.limits.lo.max, "still capped");
    assert!(sl(&p, 101).mailed);
    assert!(p.mails.is_empty());
    // Later in the period, more usage: still no second mail.
    let mut kernel = kernel;
    set_sent(&mut kernel, Kind::Low, 101, 100_000);
    set_sent(&mut kernel, Kind::I2, 101, 1_000_000);
    let p = run(state, from_ref(&a), &kernel, at(5 * HOUR));
    assert!(p.mails.is_empty());
    assert!(sl(&p, 101).i2.ceil < a.limits.i2.max);
}

#[test]
fn root_and_default_always_kept_never_capped_mailed_or_deleted() {
    // First run on nothing: both are created with the default limits.
    let p = run(State::default(), &[], &[], t0());
    let bl = base_limits();
    for (xid, name) in [(ROOT_XID, "root"), (DEFAULT_XID, "default")] {
        let s = sl(&p, xid);
        assert_eq!(s.name, name);
        assert_eq!(s.lo.max, bl.lo.max);
        assert_eq!(s.i2.max, bl.i2.max);
        assert_eq!(
            ops_of(&p, xid),
            vec![
                Op::Add {
                    xid,
                    kind: Kind::Low,
                    spec: spec(&bl.lo, bl.lo.max)
                },
                Op::Add {
                    xid,
                    kind: Kind::I2,
                    spec: spec(&bl.i2, bl.i2.max)
                },
            ]
        );
    }

    // Huge counters, live slices that are not them, periods passing.
    let others = [live("pl_a", 101)];
    let mut kernel = kernel_of_state(&p.state);
    for xid in [ROOT_XID, DEFAULT_XID] {
        set_sent(&mut kernel, Kind::Low, xid, u64::MAX / 2);
        set_sent(&mut kernel, Kind::I2, xid, u64::MAX / 3);
    }
    let mut state = p.state;
    for now in [at(HOUR), at(DAY_I - 1), at(DAY_I + HOUR), at(-DAY_I)] {
        let p = run(state.clone(), &others, &kernel, now);
        for xid in [ROOT_XID, DEFAULT_XID] {
            let s = sl(&p, xid);
            assert_eq!(s.lo.ceil, bl.lo.max);
            assert_eq!(s.i2.ceil, bl.i2.max);
            assert!(!s.mailed);
            assert!(mail_of(&p, xid).is_none());
            assert!(
                ops_of(&p, xid).is_empty(),
                "no op for xid {xid}: {:?}",
                p.ops
            );
        }
        state = p.state;
    }

    // State without them but the kernel with them: adopted, not deleted.
    let p = run(State::default(), &[], &kernel, at(HOUR));
    for xid in [ROOT_XID, DEFAULT_XID] {
        assert!(p.state.slices.contains_key(&xid));
        assert!(
            !ops_of(&p, xid)
                .iter()
                .any(|o| matches!(o, Op::Delete { .. } | Op::Add { .. }))
        );
    }
    assert!(p.mails.is_empty());
}

#[test]
fn orphans_are_removed_other_forms_left_alone() {
    let (state, mut kernel) = world(vec![]);
    // The fixed hierarchy.
    let mut root = Kc::raw(ROOT_CLASS, ClassId::new(1, 0)).build();
    root.parent = None;
    kernel.push(root);
    kernel.push(Kc::raw(CAP_CLASS, ROOT_CLASS).build());
    kernel.push(Kc::raw(LOW_PARENT, CAP_CLASS).build());
    kernel.push(Kc::raw(I2_PARENT, ROOT_CLASS).build());
    // Orphans of xid 0xabc.
    kernel.push(Kc::new(Kind::Low, 0xabc).sent(123).build());
    kernel.push(Kc::new(Kind::I2, 0xabc).build());
    // Not a slice's form: a rate limiter's class under 1:100, a slice-form
    // minor under the wrong parent, another major.
    kernel.push(Kc::raw(ClassId::new(1, 0x500), LOW_PARENT).build());
    kernel.push(Kc::raw(ClassId::new(1, 0x1abd), I2_PARENT).build());
    kernel.push(Kc::raw(ClassId::new(1, 0x2abe), LOW_PARENT).build());
    kernel.push(Kc::raw(ClassId::new(2, 0x1abf), ClassId::new(2, 0x100)).build());
    // A live slice's classes are not orphans.
    let a = live("pl_a", 101);
    kernel.extend(kernel_of(&slice_state(&a, t0())));

    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    let deletes: Vec<Op> = p
        .ops
        .iter()
        .copied()
        .filter(|o| matches!(o, Op::Delete { .. }))
        .collect();
    assert_eq!(
        deletes,
        vec![
            Op::Delete {
                xid: 0xabc,
                kind: Kind::Low
            },
            Op::Delete {
                xid: 0xabc,
                kind: Kind::I2
            },
        ]
    );
    for xid in [0x500, 0xabd, 0xabe, 0xabf] {
        assert!(ops_of(&p, xid).is_empty(), "{:?}", p.ops);
    }
    assert!(!p.state.slices.contains_key(&0xabc));
    assert!(p.state.dead.is_empty());
}

// ---------------------------------------------------------------------------
// Steps 4 and 5
// ---------------------------------------------------------------------------

#[test]
fn step4_classes_gone_live_recreated_keeping_period_and_usage() {
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 1000, 500, 60_000);
    s.i2 = cls(&a.limits.i2, 0, 0, 900_000);
    let (state, kernel) = world(vec![s]);
    let kernel = without(kernel, 101);
    let now = at(2 * HOUR);
    let p = run(state, from_ref(&a), &kernel, now);
    let s = sl(&p, 101);
    assert_eq!(s.start, t0(), "period kept");
    assert_eq!(
        (s.lo.base, s.lo.carry, s.lo.last),
        (Bytes(0), Bytes(60_000 - 1000 + 500), Bytes(0))
    );
    assert_eq!(used_of(s, Kind::Low), Bytes(59_500));
    assert_eq!(used_of(s, Kind::I2), Bytes(900_000));
    let i2_ceil = capped_ceil(&a.limits.i2, Bytes(900_000), 2 * 3600, DAY);
    assert_eq!(
        ops_of(&p, 101),
        vec![
            Op::Add {
                xid: 101,
                kind: Kind::Low,
                spec: spec(&a.limits.lo, a.limits.lo.max)
            },
            Op::Add {
                xid: 101,
                kind: Kind::I2,
                spec: spec(&a.limits.i2, i2_ceil)
            },
        ]
    );
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::I2]);

    // Only one class gone: only that one is re-added.
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 1000, 500, 60_000);
    let (state, kernel) = world(vec![s]);
    let kernel: Vec<KernelClass> = kernel
        .into_iter()
        .filter(|k| k.id != Kind::I2.class_id(101))
        .collect();
    let p = run(state, from_ref(&a), &kernel, now);
    assert_eq!(
        ops_of(&p, 101),
        vec![Op::Add {
            xid: 101,
            kind: Kind::I2,
            spec: spec(&a.limits.i2, a.limits.i2.max)
        }]
    );
    assert_eq!(used_of(sl(&p, 101), Kind::Low), Bytes(59_500));
}

#[test]
fn step4_classes_gone_not_live_dies_with_its_usage() {
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 1000, 500, 60_000);
    s.i2 = cls(&a.limits.i2, 10, 0, 70);
    let (state, kernel) = world(vec![s]);
    let kernel = without(kernel, 101);
    let p = run(state, &[], &kernel, at(2 * HOUR));
    assert!(ops_of(&p, 101).is_empty(), "{:?}", p.ops);
    assert_eq!(
        p.state.dead.get("pl_a"),
        Some(&DeadState {
            xid: Some(101),
            ..dead("pl_a", t0(), 59_500, 60, false)
        })
    );
}

#[test]
fn step5_kernel_classes_without_state_are_adopted() {
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![]);
    kernel.push(Kc::new(Kind::Low, 101).sent(5_000_000).build());
    kernel.push(Kc::new(Kind::I2, 101).sent(7).build());
    let now = at(HOUR);
    let p = run(state, from_ref(&a), &kernel, now);
    let s = sl(&p, 101);
    assert_eq!(s.start, now, "a new period starts now");
    assert!(!s.mailed);
    assert_eq!(
        (s.lo.base, s.lo.carry, s.lo.last),
        (Bytes(5_000_000), Bytes(0), Bytes(5_000_000))
    );
    assert_eq!((s.i2.base, s.i2.last), (Bytes(7), Bytes(7)));
    assert!(
        !ops_of(&p, 101)
            .iter()
            .any(|o| matches!(o, Op::Add { .. } | Op::Delete { .. })),
        "{:?}",
        p.ops
    );
    assert!(p.mails.is_empty());
}

// SPEC §5 step 8: "Apply a class only if its rate, ceil or quantum would
// change." An adopted class that the kernel shows already set as configured
// needs no tc line.
#[test]
fn step5_adopted_classes_already_as_configured_are_not_changed() {
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![]);
    kernel.push(
        Kc::new(Kind::Low, 101)
            .limits(&a.limits.lo)
            .sent(5_000_000)
            .build(),
    );
    kernel.push(Kc::new(Kind::I2, 101).limits(&a.limits.i2).sent(7).build());
    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    assert!(ops_of(&p, 101).is_empty(), "{:?}", p.ops);
}

#[test]
fn step5_adoption_with_a_dead_record_reinstates_it() {
    let a = live("pl_a", 101);
    let (mut state, mut kernel) = world(vec![]);
    state
        .dead
        .insert("pl_a".into(), dead("pl_a", at(-HOUR), 90_000, 3, false));
    kernel.push(Kc::new(Kind::Low, 101).sent(1000).build());
    kernel.push(Kc::new(Kind::I2, 101).sent(2000).build());
    let now = at(HOUR);
    let p = run(state, from_ref(&a), &kernel, now);
    let s = sl(&p, 101);
    assert_eq!(s.start, at(-HOUR));
    assert_eq!(
        (s.lo.base, s.lo.carry, s.lo.last),
        (Bytes(1000), Bytes(90_000), Bytes(1000))
    );
    assert_eq!(used_of(s, Kind::Low), Bytes(90_000));
    assert_eq!(used_of(s, Kind::I2), Bytes(3));
    assert!(p.state.dead.is_empty());
    let ceil = capped_ceil(&a.limits.lo, Bytes(90_000), 2 * 3600, DAY);
    assert_eq!(s.lo.ceil, ceil);
    assert!(ops_of(&p, 101).contains(&Op::Change {
        xid: 101,
        kind: Kind::Low,
        spec: spec(&a.limits.lo, ceil)
    }));
    assert!(!ops_of(&p, 101).iter().any(|o| matches!(o, Op::Add { .. })));
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::Low]);
}

// ---------------------------------------------------------------------------
// Held records (SPEC §3)
// ---------------------------------------------------------------------------

#[test]
fn held_slices_are_left_exactly_as_they_were() {
    let a = live("pl_a", 101);
    let b = live("pl_b", 102);
    // Odd but possible states: an expired period, a capped ceil, mailed.
    let mut sa = slice_used(&a, at(-3 * DAY_I), 90_000, 5);
    sa.mailed = true;
    sa.lo.ceil = Rate(1234);
    sa.lo.base = Bytes(70_000);
    let mut sb = slice_used(&b, t0(), 200_000, 0);
    sb.lo.ceil = a.limits.lo.max;
    let (state, mut kernel) = world(vec![sa.clone(), sb.clone()]);
    // The kernel moved on: counters reset, a different ceil.
    set_sent(&mut kernel, Kind::Low, 101, 10);
    set_sent(&mut kernel, Kind::Low, 102, 300_000);
    // A held xid with classes but no state: not an orphan.
    kernel.push(Kc::new(Kind::Low, 150).build());
    kernel.push(Kc::new(Kind::I2, 150).build());

    let held_xids: HashSet<u16> = [101, 150].into();
    let held_names: HashSet<String> = ["pl_b".to_string()].into();
    // pl_a is not live (a held record is not); pl_b is even listed live.
    let p = run_full(
        node(),
        state,
        from_ref(&b),
        &kernel,
        at(HOUR),
        &held_xids,
        &held_names,
    );
    assert_eq!(sl(&p, 101), &sa);
    assert_eq!(sl(&p, 102), &sb);
    for xid in [101, 102, 150] {
        assert!(ops_of(&p, xid).is_empty(), "xid {xid}: {:?}", p.ops);
        assert!(mail_of(&p, xid).is_none());
    }
    assert!(p.state.dead.is_empty());
    assert!(!p.state.slices.contains_key(&150));
}

// ---------------------------------------------------------------------------
// Apply only on change (SPEC §5 step 8, §9.10)
// ---------------------------------------------------------------------------

#[test]
fn apply_only_on_change_second_plan_is_quiet() {
    let plain = live("pl_plain", 101);
    let capped = live("pl_capped", 102);
    let over_cap = live_with(
        "pl_over_cap",
        103,
        &Rspec {
            max_rate: Some(Kbit(10_000_000)),
            i2_max_rate: Some(Kbit(100_000_000)),
            min_rate: Some(Kbit(90_000)),
            ..Rspec::default()
        },
    );
    let shared = live_with(
        "pl_shared",
        104,
        &Rspec {
            share: Some(3),
            i2_share: Some(7),
            ..Rspec::default()
        },
    );
    let live = [plain, capped, over_cap, shared];

    // Run 1: everything new.
    let p1 = run(State::default(), &live, &[], t0());
    assert!(p1.ops.iter().all(|o| matches!(o, Op::Add { .. })));
    assert_eq!(p1.ops.len(), 2 * (live.len() + 2));

    // Run 2: the kernel shows what was applied, with traffic.
    let mut kernel = kernel_of_state(&p1.state);
    set_sent(&mut kernel, Kind::Low, 102, 90_000);
    set_sent(&mut kernel, Kind::Low, 101, 1000);
    let p2 = run(p1.state, &live, &kernel, at(HOUR));
    assert_eq!(
        p2.ops.iter().map(Op::xid).collect::<Vec<_>>(),
        vec![102],
        "{:?}",
        p2.ops
    );
    assert_eq!(mailed_kinds(&p2, 102), vec![Kind::Low]);

    // Run 3: same time, the kernel shows run 2's result, the mail went out.
    let mut state = p2.state;
    state.slices.get_mut(&102).expect("capped slice").mailed = true;
    let kernel = kernel_of_state(&state);
    let p3 = run(state.clone(), &live, &kernel, at(HOUR));
    assert!(p3.ops.is_empty(), "{:?}", p3.ops);
    assert!(p3.mails.is_empty());
    assert_eq!(p3.state.slices, state.slices);
}

#[test]
fn kernel_bytes_per_second_ceil_is_not_a_change() {
    // Max 1234567bit: the kernel keeps 154320 bytes/s, read back as 1234560bit.
    let n = Node {
        bwcap: Rate(1_234_567),
        ..node()
    };
    let a = live_on(&n, "pl_a", 101, &Rspec::default());
    assert_eq!(a.limits.lo.max, Rate(1_234_567));
    let (mut state, _) = world(vec![slice_state(&a, t0())]);
    let bl = base_limits_on(&n);
    for xid in [ROOT_XID, DEFAULT_XID] {
        let s = state.slices.get_mut(&xid).expect("special");
        s.lo = cls(&bl.lo, 0, 0, 0);
    }
    let mut kernel = kernel_of_state(&state);
    for k in &mut kernel {
        if Kind::of_kernel_class(k).is_some_and(|(kind, _)| kind == Kind::Low) {
            k.ceil = Rate(1_234_560);
        }
    }
    let p = run_on(n, state.clone(), from_ref(&a), &kernel, at(HOUR));
    assert!(p.ops.is_empty(), "{:?}", p.ops);

    // A kernel that shows another ceil (changed behind bwmon's back) is fixed.
    let mut kernel2 = kernel.clone();
    let k = kernel2
        .iter_mut()
        .find(|k| k.id == Kind::Low.class_id(101))
        .expect("class");
    *k = Kc(k.clone()).kernel_ceil(1_233_000).build();
    let p = run_on(n, state, from_ref(&a), &kernel2, at(HOUR));
    assert_eq!(
        p.ops,
        vec![Op::Change {
            xid: 101,
            kind: Kind::Low,
            spec: spec(&a.limits.lo, Rate(1_234_567))
        }]
    );
}

// ---------------------------------------------------------------------------
// SPEC §9 regressions
// ---------------------------------------------------------------------------

#[test]
fn regression_9_1_only_low_over_quota_is_mailed() {
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 100_000);
    set_sent(&mut kernel, Kind::I2, 101, 10);
    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    let m = mail_of(&p, 101).expect("a slice over only its low quota is mailed");
    assert_eq!(m.classes.len(), 1);
    assert_eq!(m.classes[0].kind, Kind::Low);
    assert_eq!(m.classes[0].used, Bytes(100_000));
    assert_eq!(m.classes[0].quota, Bytes(102_400));
    assert_eq!(sl(&p, 101).i2.ceil, a.limits.i2.max);
}

#[test]
fn regression_9_2_update_with_share_change_works() {
    let old = live("pl_a", 101);
    let new = live_with(
        "pl_a",
        101,
        &Rspec {
            share: Some(3),
            i2_share: Some(2),
            ..Rspec::default()
        },
    );
    let (state, kernel) = world(vec![slice_state(&old, t0())]);
    let p = run(state, from_ref(&new), &kernel, at(HOUR));
    assert_eq!(
        ops_of(&p, 101),
        vec![
            Op::Change {
                xid: 101,
                kind: Kind::Low,
                spec: Spec {
                    rate: new.limits.lo.min,
                    ceil: new.limits.lo.max,
                    quantum: 3 * 1600
                }
            },
            Op::Change {
                xid: 101,
                kind: Kind::I2,
                spec: Spec {
                    rate: new.limits.i2.min,
                    ceil: new.limits.i2.max,
                    quantum: 2 * 1600
                }
            },
        ]
    );
    assert_eq!((sl(&p, 101).lo.share, sl(&p, 101).i2.share), (3, 2));

    // A kernel quantum changed behind bwmon's back is put back.
    let (state, mut kernel) = world(vec![slice_state(&old, t0())]);
    for k in &mut kernel {
        if k.id == Kind::Low.class_id(101) {
            k.quantum = Some(9999);
        }
    }
    let p = run(state, from_ref(&old), &kernel, at(HOUR));
    assert_eq!(
        ops_of(&p, 101),
        vec![Op::Change {
            xid: 101,
            kind: Kind::Low,
            spec: spec(&old.limits.lo, old.limits.lo.max)
        }]
    );
}

#[test]
fn regression_9_3_slice_at_its_max_is_not_capped_or_mailed() {
    // A configured max in kbit/s must be compared as bit/s.
    let rspec = Rspec {
        max_rate: Some(Kbit(10_000)),
        i2_max_rate: Some(Kbit(20_000)),
        ..Rspec::default()
    };
    let a = live_with("pl_a", 101, &rspec);
    assert_eq!(a.limits.lo.max, Rate(10_000_000));
    assert_eq!(a.limits.i2.max, Rate(20_000_000));
    // Over the threshold, but the formula gives more than max.
    let b = live_with(
        "pl_b",
        102,
        &Rspec {
            max_kbyte: Some(KiB(10_000_000_000)),
            thresh_kbyte: Some(KiB(1)),
            i2_max_kbyte: Some(KiB(10_000_000_000)),
            i2_thresh_kbyte: Some(KiB(1)),
            ..rspec
        },
    );
    let (state, mut kernel) = world(vec![slice_state(&a, t0()), slice_state(&b, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 1000);
    set_sent(&mut kernel, Kind::Low, 102, 50_000);
    set_sent(&mut kernel, Kind::I2, 102, 50_000);
    let p = run(state, &[a.clone(), b.clone()], &kernel, at(HOUR));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert!(p.mails.is_empty(), "{:?}", p.mails);
    for (x, l) in [(101, &a), (102, &b)] {
        assert_eq!(sl(&p, x).lo.ceil, l.limits.lo.max);
        assert_eq!(sl(&p, x).i2.ceil, l.limits.i2.max);
    }
}

#[test]
fn regression_9_4_delete_and_recreate_keeps_period_and_usage() {
    let a = live("pl_a", 101);
    // Run 1: pl_a over its threshold, capped, mailed (sync sets the flag).
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    set_sent(&mut kernel, Kind::Low, 101, 90_000);
    set_sent(&mut kernel, Kind::I2, 101, 44);
    let p1 = run(state, from_ref(&a), &kernel, at(HOUR));
    assert!(mail_of(&p1, 101).is_some());
    let mut s1 = p1.state;
    s1.slices.get_mut(&101).expect("pl_a").mailed = true;

    // Run 2: pl_a deleted.
    let p2 = run(s1, &[], &kernel, at(2 * HOUR));
    assert!(!p2.state.slices.contains_key(&101));
    assert_eq!(ops_of(&p2, 101).len(), 2);
    let kernel = without(kernel, 101);

    // Run 3: recreated: no fresh quota, no fresh mail.
    let p3 = run(p2.state, from_ref(&a), &kernel, at(3 * HOUR));
    let s = sl(&p3, 101);
    assert_eq!(s.start, t0());
    assert!(s.mailed);
    assert_eq!(used_of(s, Kind::Low), Bytes(90_000));
    assert_eq!(used_of(s, Kind::I2), Bytes(44));
    assert!(s.lo.ceil < a.limits.lo.max);
    assert!(p3.mails.is_empty());
    assert!(p3.state.dead.is_empty(), "the dead record is consumed");
    assert!(matches!(
        ops_of(&p3, 101)[..],
        [Op::Add { kind: Kind::Low, spec, .. }, Op::Add { kind: Kind::I2, .. }] if spec.ceil < a.limits.lo.max
    ));
}

#[test]
fn regression_9_5_dead_record_clean_up() {
    let gone = live("pl_gone", 101);
    let expired = live("pl_expired", 102);
    let mut s_gone = slice_used(&gone, t0(), 1234, 0);
    s_gone.mailed = true;
    let s_expired = slice_used(&expired, at(-DAY_I - HOUR), 999, 0);
    let (mut state, kernel) = world(vec![s_gone, s_expired]);
    // pl_gone's classes are already gone from the kernel.
    let kernel = without(kernel, 101);
    state
        .dead
        .insert("old".into(), dead("old", at(HOUR - DAY_I), 1, 1, false));
    state.dead.insert(
        "edge".into(),
        dead("edge", at(HOUR - DAY_I + 1), 2, 2, false),
    );
    state
        .dead
        .insert("fresh".into(), dead("fresh", at(-HOUR), 3, 3, true));

    let p = run(state, &[], &kernel, at(HOUR));
    // Ended exactly now: forgotten; still inside: kept.
    assert!(!p.state.dead.contains_key("old"));
    assert_eq!(
        p.state.dead["edge"],
        dead("edge", at(HOUR - DAY_I + 1), 2, 2, false)
    );
    assert_eq!(p.state.dead["fresh"], dead("fresh", at(-HOUR), 3, 3, true));
    // Dead without kernel classes: no panic, no ops, a dead record.
    assert!(ops_of(&p, 101).is_empty());
    assert_eq!(
        p.state.dead["pl_gone"],
        DeadState {
            xid: Some(101),
            ..dead("pl_gone", t0(), 1234, 0, true)
        }
    );
    // Dead after its period ended: classes removed, nothing remembered.
    assert_eq!(ops_of(&p, 102).len(), 2);
    assert!(!p.state.dead.contains_key("pl_expired"));
    assert!(!p.state.slices.contains_key(&101));
    assert!(!p.state.slices.contains_key(&102));
}

#[test]
fn regression_9_6_counter_going_backwards_keeps_usage_and_period() {
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = ClassState {
        ceil: capped_ceil(&a.limits.lo, Bytes(90_000), 3600, DAY),
        ..cls(&a.limits.lo, 5_000_000, 0, 5_090_000)
    };
    s.mailed = true;
    let (state, mut kernel) = world(vec![s]);
    set_sent(&mut kernel, Kind::Low, 101, 10);
    let p = run(state, from_ref(&a), &kernel, at(2 * HOUR));
    let s = sl(&p, 101);
    assert_eq!(s.start, t0(), "no fresh period");
    assert!(s.mailed);
    assert_eq!(used_of(s, Kind::Low), Bytes(90_000));
    assert!(s.lo.ceil < a.limits.lo.max, "still capped");
    assert!(p.mails.is_empty());
}

#[test]
fn regression_9_7_xids_are_never_masked() {
    assert_eq!(Kind::Low.class_id(ROOT_XID), ClassId::new(1, 0x1000));
    assert_eq!(Kind::I2.class_id(ROOT_XID), ClassId::new(1, 0x2000));
    assert_eq!(Kind::Low.class_id(DEFAULT_XID), ClassId::new(1, 0x1fff));
    assert_eq!(Kind::I2.class_id(DEFAULT_XID), ClassId::new(1, 0x2fff));
    assert_eq!(Kind::Low.class_id(904), ClassId::new(1, 0x1388));

    // 1:3388 (0x2000 | 5000) is not a slice class, under either parent.
    let odd = [
        Kc::raw(ClassId::new(1, 0x3388), I2_PARENT)
            .sent(1 << 40)
            .build(),
        Kc::raw(ClassId::new(1, 0x3388), LOW_PARENT)
            .sent(1 << 40)
            .build(),
    ];
    for k in &odd {
        assert_eq!(Kind::of_kernel_class(k), None);
    }
    // 1:1388 under 1:100 is xid 904's low class, never xid 5000's.
    assert_eq!(
        Kind::of_kernel_class(&Kc::raw(ClassId::new(1, 0x1388), LOW_PARENT).build()),
        Some((Kind::Low, 904))
    );

    let s904 = live("pl_904", 904);
    let (state, mut kernel) = world(vec![slice_state(&s904, t0())]);
    kernel.extend(odd);
    let held_xids: HashSet<u16> = [5000].into();
    let p = run_full(
        node(),
        state,
        from_ref(&s904),
        &kernel,
        at(HOUR),
        &held_xids,
        &HashSet::new(),
    );
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert!(p.ops.iter().all(|o| o.xid() <= DEFAULT_XID));
    assert_eq!(sl(&p, 904).name, "pl_904");
    assert!(!p.state.slices.contains_key(&5000));
}

#[test]
fn regression_9_9_absurd_limits_do_not_stop_others() {
    let good = live("pl_good", 101);
    let absurd = live_with(
        "pl_absurd",
        102,
        &Rspec {
            min_rate: Some(Kbit(u64::MAX)),
            max_rate: Some(Kbit(u64::MAX)),
            i2_min_rate: Some(Kbit(u64::MAX)),
            i2_max_rate: Some(Kbit(u64::MAX)),
            max_kbyte: Some(KiB(u64::MAX)),
            i2_max_kbyte: Some(KiB(u64::MAX)),
            thresh_kbyte: Some(KiB(u64::MAX)),
            i2_thresh_kbyte: Some(KiB(0)),
            share: Some(u32::MAX),
            i2_share: Some(u32::MAX),
        },
    );
    let zero = live_with(
        "pl_zero",
        103,
        &Rspec {
            max_kbyte: Some(KiB(0)),
            i2_max_kbyte: Some(KiB(0)),
            thresh_kbyte: Some(KiB(0)),
            i2_thresh_kbyte: Some(KiB(0)),
            ..Rspec::default()
        },
    );
    let slices = vec![
        slice_state(&good, t0()),
        slice_state(&absurd, t0()),
        slice_state(&zero, t0()),
    ];
    let (state, mut kernel) = world(slices);
    set_sent(&mut kernel, Kind::Low, 101, 90_000);
    set_sent(&mut kernel, Kind::Low, 102, u64::MAX);
    set_sent(&mut kernel, Kind::I2, 102, u64::MAX);
    let live = [absurd.clone(), zero.clone(), good.clone()];
    let p = run(state, &live, &kernel, at(HOUR));
    for l in &live {
        assert_eq!(sl(&p, l.xid).name, l.name);
    }
    assert!(sl(&p, 101).lo.ceil < good.limits.lo.max);
    assert_eq!(mailed_kinds(&p, 101), vec![Kind::Low]);
    assert_eq!(quantum(u32::MAX), u32::MAX, "saturates");
    for l in &live {
        for kind in Kind::BOTH {
            let c = class_of(sl(&p, l.xid), kind);
            let lim = l.limits.get(kind);
            assert!(c.ceil >= lim.min && c.ceil <= lim.max);
        }
    }
}

#[test]
fn regression_9_10_no_change_when_nothing_changed() {
    // A capped ceil of 1234567bit: the kernel keeps bytes/s, 1234560bit.
    let left_secs = DAY - 3600;
    let mut a = live("pl_a", 101);
    a.limits.lo.quota = Bytes(90_000 + 1_234_567 * left_secs / 8 + 1);
    a.limits.lo.thresh = Bytes(1);
    assert_eq!(
        capped_ceil(&a.limits.lo, Bytes(90_000), 3600, DAY),
        Rate(1_234_567)
    );
    let mut s = slice_used(&a, t0(), 90_000, 0);
    s.lo.ceil = Rate(1_234_567);
    s.mailed = true;
    let (state, mut kernel) = world(vec![s]);
    let k = kernel
        .iter_mut()
        .find(|k| k.id == Kind::Low.class_id(101))
        .expect("class");
    *k = Kc(k.clone()).kernel_ceil(1_234_560).build();
    let p = run(state, from_ref(&a), &kernel, at(HOUR));
    assert_eq!(sl(&p, 101).lo.ceil, Rate(1_234_567));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    assert!(p.mails.is_empty());

    // A configured max above the node cap is compared after clamping.
    let over = live_with(
        "pl_over",
        102,
        &Rspec {
            max_rate: Some(Kbit(10_000_000)),
            i2_max_rate: Some(Kbit(10_000_000)),
            ..Rspec::default()
        },
    );
    let (state, kernel) = world(vec![slice_state(&over, t0())]);
    let p = run(state, from_ref(&over), &kernel, at(HOUR));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

fn wide_u64() -> impl Strategy<Value = u64> {
    prop_oneof![0u64..1 << 20, 0u64..1 << 45, any::<u64>()]
}

/// Failures are not persisted: this file is the only one these tests own.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn prop_capped_ceil_never_panics_and_stays_within_min_max(
        a in any::<u64>(),
        b in any::<u64>(),
        quota in wide_u64(),
        thresh in wide_u64(),
        base in wide_u64(),
        carry in wide_u64(),
        counter in wide_u64(),
        elapsed in prop_oneof![0u64..200_000, any::<u64>()],
        period in prop_oneof![60u64..200_000, 60u64..=u64::MAX],
    ) {
        let (min, max) = (a.min(b), a.max(b));
        let l = Limits { min: Rate(min), max: Rate(max), quota: Bytes(quota), thresh: Bytes(thresh), share: 1 };
        let c = ClassState { base: Bytes(base), carry: Bytes(carry), ..ClassState::default() };
        let used = c.used(Bytes(counter));
        let r = capped_ceil(&l, used, elapsed, period);
        prop_assert!(r >= l.min && r <= l.max, "{r:?} outside [{min}, {max}]");
        // And it is the SPEC §1 formula, clamped.
        let left = period - elapsed.min(period - 1);
        let f = u128::from(quota.saturating_sub(used.0)) * 8 / u128::from(left);
        prop_assert_eq!(u128::from(r.0), f.clamp(u128::from(min), u128::from(max)));
    }

    /// The SPEC's counter-reset case (counter below the baseline) and normal
    /// growth never lose usage.
    #[test]
    fn prop_advance_never_decreases_used_on_growth_or_reset_below_base(
        base in wide_u64(),
        carry in wide_u64(),
        grown in wide_u64(),
        step in wide_u64(),
        reset in any::<bool>(),
    ) {
        let last = base.saturating_add(grown);
        let counter = if reset && base > 0 { step % base } else { last.saturating_add(step) };
        let mut c = ClassState { base: Bytes(base), carry: Bytes(carry), last: Bytes(last), ..ClassState::default() };
        let before = c.used(c.last);
        advance(&mut c, Bytes(counter));
        prop_assert_eq!(c.last, Bytes(counter));
        prop_assert!(c.used(Bytes(counter)) >= before);
    }

    #[test]
    fn prop_advance_never_decreases_used(
        base in wide_u64(),
        carry in wide_u64(),
        last in wide_u64(),
        counter in wide_u64(),
    ) {
        let mut c = ClassState { base: Bytes(base), carry: Bytes(carry), last: Bytes(last), ..ClassState::default() };
        let before = c.used(c.last);
        advance(&mut c, Bytes(counter));
        prop_assert_eq!(c.last, Bytes(counter));
        prop_assert!(c.used(Bytes(counter)) >= before, "{:?} < {:?}", c.used(Bytes(counter)), before);
    }
}

/// How a kernel counter moved since the last run.
#[derive(Clone, Debug)]
enum Moved {
    Gone,
    Grew(u64),
    /// Reset below the baseline (SPEC step 8's case).
    Reset(u64),
}

#[derive(Clone, Debug)]
struct GenClass {
    base: u64,
    carry: u64,
    grown: u64,
    moved: Moved,
}

#[derive(Clone, Debug)]
struct GenSlice {
    in_state: bool,
    live: bool,
    moves_to: Option<u16>,
    start_frac: i64,
    mailed: bool,
    lo: GenClass,
    i2: GenClass,
    dead: Option<(i64, u64, u64, bool)>,
    quota: Option<u64>,
    thresh: Option<u64>,
    max_rate: Option<u64>,
}

fn gen_class() -> impl Strategy<Value = GenClass> {
    (
        wide_u64(),
        wide_u64(),
        wide_u64(),
        prop_oneof![
            Just(Moved::Gone),
            wide_u64().prop_map(Moved::Grew),
            wide_u64().prop_map(Moved::Reset)
        ],
    )
        .prop_map(|(base, carry, grown, moved)| GenClass {
            base,
            carry,
            grown,
            moved,
        })
}

fn gen_slice() -> impl Strategy<Value = GenSlice> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            proptest::option::of(1u16..12),
            -1000i64..=1000,
            any::<bool>(),
        ),
        gen_class(),
        gen_class(),
        proptest::option::of((-1000i64..=1000, wide_u64(), wide_u64(), any::<bool>())),
        proptest::option::of(0u64..2_000_000),
        proptest::option::of(0u64..2_000_000),
        proptest::option::of(1u64..2_000_000),
    )
        .prop_map(
            |(
                (in_state, live, moves_to, start_frac, mailed),
                lo,
                i2,
                dead,
                quota,
                thresh,
                max_rate,
            )| {
                GenSlice {
                    in_state,
                    live,
                    moves_to,
                    start_frac,
                    mailed,
                    lo,
                    i2,
                    dead,
                    quota,
                    thresh,
                    max_rate,
                }
            },
        )
}

fn gen_state_class(l: &Limits, g: &GenClass) -> ClassState {
    cls(l, g.base, g.carry, g.base.saturating_add(g.grown))
}

fn gen_counter(c: &ClassState, g: &GenClass) -> Option<u64> {
    match g.moved {
        Moved::Gone => None,
        Moved::Grew(d) => Some(c.last.0.saturating_add(d)),
        Moved::Reset(r) => Some(if c.base.0 > 0 {
            r % c.base.0
        } else {
            c.last.0.saturating_add(r)
        }),
    }
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn prop_plan_never_panics_keeps_live_slices_and_usage(
        gens in proptest::collection::vec(gen_slice(), 0..=5),
        period in prop_oneof![Just(86_400u64), 60u64..200_000],
        now_frac in -2000i64..=2000,
        specials_in_state in any::<bool>(),
    ) {
        let n = Node { period_secs: period, ..node() };
        let p_i = i64::try_from(period).expect("small");
        let frac = |f: i64| t0() + TimeDelta::seconds(f * p_i / 1000);
        let now = frac(now_frac);
        let mut state = State::default();
        let mut kernel = Vec::new();
        let mut live = Vec::new();
        let mut names_in_state = HashSet::new();
        if specials_in_state {
            for s in specials(t0()) {
                kernel.extend(kernel_of(&s));
                state.slices.insert(s.xid, Box::new(s));
            }
        }
        for (i, g) in gens.iter().enumerate() {
            let xid = u16::try_from(i + 1).expect("small");
            let name = format!("s{i}");
            let rspec = Rspec {
                max_kbyte: g.quota.map(KiB),
                thresh_kbyte: g.thresh.map(KiB),
                max_rate: g.max_rate.map(Kbit),
                ..Rspec::default()
            };
            let l = live_on(&n, &name, xid, &rspec);
            if g.in_state {
                let mut s = slice_state(&l, frac(g.start_frac));
                s.mailed = g.mailed;
                s.lo = gen_state_class(&l.limits.lo, &g.lo);
                s.i2 = gen_state_class(&l.limits.i2, &g.i2);
                for kind in Kind::BOTH {
                    let (c, gc) = match kind { Kind::Low => (&s.lo, &g.lo), Kind::I2 => (&s.i2, &g.i2) };
                    if let Some(sent) = gen_counter(c, gc) {
                        kernel.push(Kc::new(kind, xid).sent(sent).build());
                    }
                }
                names_in_state.insert(name.clone());
                state.slices.insert(xid, Box::new(s));
            } else if let Moved::Grew(sent) = g.lo.moved {
                // Classes in the kernel without state (adoption or orphan).
                kernel.push(Kc::new(Kind::Low, xid).sent(sent).build());
            }
            if let Some((f, lo, i2, mailed)) = g.dead {
                state.dead.insert(name.clone(), dead(&name, frac(f), lo, i2, mailed));
            }
            if g.live {
                // Moving to another xid: 100 + k, so it never collides with 1..=5.
                let lxid = g.moves_to.map_or(xid, |k| 100 + k + u16::try_from(i).expect("small") * 12);
                live.push(Live { xid: lxid, ..l });
            }
        }
        let input = state.clone();
        let p = run_on(n, state, &live, &kernel, now);

        // Every live slice, root and default end up in the state.
        for l in &live {
            prop_assert_eq!(&sl(&p, l.xid).name, &l.name);
        }
        prop_assert!(p.state.slices.contains_key(&ROOT_XID));
        prop_assert!(p.state.slices.contains_key(&DEFAULT_XID));
        prop_assert!(deletes_come_first(&p));

        // Ceils within [min, max]; mails only for unmailed capped slices.
        for s in p.state.slices.values() {
            for kind in Kind::BOTH {
                let c = class_of(s, kind);
                prop_assert!(c.ceil >= c.min && c.ceil <= c.max, "{s:?}");
            }
            let capped = Kind::BOTH.iter().any(|&k| class_of(s, k).ceil < class_of(s, k).max);
            let special = s.xid == ROOT_XID || s.xid == DEFAULT_XID;
            let mailed = p.mails.iter().any(|m| m.xid == s.xid);
            prop_assert!(!(special && (capped || mailed)));
            if !special {
                prop_assert_eq!(mailed, capped && !s.mailed, "{:?}", s);
            }
        }

        // Usage never decreases within a period: state → state or dead record.
        let out_by_name: std::collections::HashMap<&str, &SliceState> =
            p.state.slices.values().map(|s| (s.name.as_str(), &**s)).collect();
        for s in input.slices.values() {
            let before = (used_of(s, Kind::Low), used_of(s, Kind::I2));
            if let Some(o) = out_by_name.get(s.name.as_str()) {
                if o.start == s.start {
                    prop_assert!(used_of(o, Kind::Low) >= before.0, "{s:?} -> {o:?}");
                    prop_assert!(used_of(o, Kind::I2) >= before.1, "{s:?} -> {o:?}");
                }
            } else if !period_over(s.start, now, period) {
                // Died within its period: the dead record has all its usage.
                let d = p.state.dead.get(&s.name);
                prop_assert!(d.is_some(), "{s:?} left no dead record");
                let d = d.expect("checked");
                prop_assert_eq!(d.start, s.start);
                prop_assert!(d.lo >= before.0 && d.i2 >= before.1, "{s:?} -> {d:?}");
            }
        }
        for d in input.dead.values() {
            if names_in_state.contains(&d.name) {
                continue;
            }
            if let Some(o) = out_by_name.get(d.name.as_str())
                && o.start == d.start
            {
                prop_assert!(used_of(o, Kind::Low) >= d.lo && used_of(o, Kind::I2) >= d.i2);
                prop_assert_eq!(o.mailed, d.mailed);
            }
        }

        // What a sync goes by instead of a copy of the state: the plan's
        // own account of what it changed, removed and found capped.
        let differs = p.state.slices != input.slices || p.state.dead != input.dead;
        prop_assert_eq!(p.changed, differs);
        let kept: HashSet<&str> = p.state.slices.values().map(|s| s.name.as_str()).collect();
        let gone: Vec<&str> = input
            .slices
            .values()
            .filter(|s| !is_special(s.xid) && !kept.contains(s.name.as_str()))
            .map(|s| s.name.as_str())
            .collect();
        prop_assert_eq!(p.removed.iter().map(String::as_str).collect::<Vec<_>>(), gone);
        prop_assert_eq!(p.live_before, input.slices.keys().filter(|&&x| !is_special(x)).count());
        prop_assert_eq!(&p.caps_before, &CapsAt::of(&input.slices));
    }
}

/// A slice class whose leaf is not bwmon's (the leaf add was refused, or the
/// leaf was replaced behind bwmon's back) gets its leaf at the next run and
/// at a reset; a class with its own leaf does not.
#[test]
fn a_class_without_its_leaf_gets_it() {
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    let p = run(state.clone(), from_ref(&a), &kernel, at(HOUR));
    assert!(p.ops.is_empty(), "{:?}", p.ops);
    for k in &mut kernel {
        if k.id == Kind::I2.class_id(101) {
            k.leaf = None; // the kernel's default leaf has no handle
        }
        if k.id == Kind::Low.class_id(101) {
            k.leaf = Some(ClassId::new(0x8001, 0)); // somebody else's
        }
    }
    let p = run(state.clone(), from_ref(&a), &kernel, at(HOUR));
    assert_eq!(
        p.ops,
        vec![
            Op::Leaf {
                xid: 101,
                kind: Kind::Low
            },
            Op::Leaf {
                xid: 101,
                kind: Kind::I2
            }
        ]
    );
    let mut s = state.slices[&101].clone();
    let ops = reset(&mut s, &kernel, at(2 * HOUR));
    assert!(
        ops.contains(&Op::Leaf {
            xid: 101,
            kind: Kind::Low
        }),
        "{ops:?}"
    );
    assert!(
        ops.contains(&Op::Leaf {
            xid: 101,
            kind: Kind::I2
        }),
        "{ops:?}"
    );
}

// ---------------------------------------------------------------------------
// History: the periods a run ends (issue 13, item 2)
// ---------------------------------------------------------------------------

/// A rollover, a removal after the period's end and an expired dead record
/// are each reported once with the usage counted for them; a dead record
/// still inside its period, and a slice inside its period, are not.
#[test]
fn plan_reports_the_periods_it_ends() {
    let a = live("pl_a", 101);
    let b = live("pl_b", 102);
    let c = live("pl_c", 103);
    let mut sa = slice_state(&a, t0());
    sa.lo = cls(&a.limits.lo, 1000, 500, 5000);
    sa.mailed = true;
    let cap = Capped {
        at: at(20 * HOUR),
        lo: Some(Rate(6000)),
        i2: None,
    };
    sa.capped = Some(cap);
    let sb = slice_used(&b, t0(), 700, 70);
    let sc = slice_state(&c, at(12 * HOUR));
    let (mut state, mut kernel) = world(vec![sa, sb, sc]);
    set_sent(&mut kernel, Kind::Low, 101, 9000);
    set_sent(&mut kernel, Kind::I2, 101, 40);
    set_sent(&mut kernel, Kind::Low, 102, 800);
    state.dead.insert(
        "old".into(),
        DeadState {
            xid: Some(104),
            capped: Some(cap),
            ..dead("old", at(-HOUR), 11, 22, true)
        },
    );
    state
        .dead
        .insert("fresh".into(), dead("fresh", at(12 * HOUR), 3, 3, false));
    let now = at(DAY_I + HOUR);
    let p = run(state, &[a, c], &kernel, now);

    let by_name = |n: &str| {
        let found: Vec<&Completed> = p.ended.iter().filter(|e| e.name == n).collect();
        assert!(found.len() <= 1, "{n} reported twice: {:?}", p.ended);
        found.first().copied().cloned()
    };
    assert_eq!(
        by_name("pl_a"),
        Some(Completed {
            name: "pl_a".into(),
            xid: Some(101),
            start: t0(),
            end: now,
            lo: Bytes(9000 - 1000 + 500),
            i2: Bytes(40),
            capped: true,
            cap: Some(cap),
            mailed: true,
            removed: false,
        })
    );
    let next = sl(&p, 101);
    assert_eq!((next.start, next.capped, next.mailed), (now, None, false));
    let pb = by_name("pl_b").expect("pl_b removed after its period");
    assert_eq!(
        (pb.lo, pb.i2, pb.end, pb.removed, pb.capped),
        (Bytes(800), Bytes(70), now, true, false)
    );
    assert_eq!(
        by_name("old"),
        Some(Completed {
            name: "old".into(),
            xid: Some(104),
            start: at(-HOUR),
            end: at(DAY_I - HOUR),
            lo: Bytes(11),
            i2: Bytes(22),
            capped: true,
            cap: Some(cap),
            mailed: true,
            removed: true,
        })
    );
    assert_eq!(by_name("fresh"), None);
    assert_eq!(by_name("pl_c"), None, "inside its period");
    // Root and default roll over like any slice: their history is the
    // traffic nobody's quota counted.
    assert!(by_name("root").is_some() && by_name("default").is_some());
    assert_eq!(p.ended.len(), 5, "{:?}", p.ended);
}

/// The first cap's time is kept; each class's lowest ceil only goes down;
/// a dead record carries both back to a slice recreated within its period.
#[test]
fn the_first_cap_and_the_lowest_ceil_are_kept_for_the_period() {
    let a = live("pl_a", 101);
    let (state, mut kernel) = world(vec![slice_state(&a, t0())]);
    let l = a.limits.lo;
    set_sent(&mut kernel, Kind::Low, 101, 90_000);
    // Late in the day, so that the formula gives more than min rate.
    let p = run(state, from_ref(&a), &kernel, at(DAY_I - 60));
    let first = capped_ceil(&l, Bytes(90_000), DAY - 60, DAY);
    assert!(first > l.min && first < l.max, "{first}");
    let want = Capped {
        at: at(DAY_I - 60),
        lo: Some(first),
        i2: None,
    };
    assert_eq!(sl(&p, 101).capped, Some(want));

    set_sent(&mut kernel, Kind::Low, 101, 95_000);
    let p = run(p.state, from_ref(&a), &kernel, at(DAY_I - 50));
    let lower = capped_ceil(&l, Bytes(95_000), DAY - 50, DAY);
    assert!(lower > l.min && lower < first, "{lower} {first}");
    let want = Capped {
        lo: Some(lower),
        ..want
    };
    assert_eq!(sl(&p, 101).capped, Some(want));
    // Later the formula gives more again: the lowest stays.
    let p = run(p.state, from_ref(&a), &kernel, at(DAY_I - 20));
    assert_eq!(sl(&p, 101).capped, Some(want));

    let kernel = without(kernel, 101);
    let p = run(p.state, &[], &kernel, at(DAY_I - 10));
    assert_eq!(p.state.dead["pl_a"].capped, Some(want));
    let p = run(p.state, from_ref(&a), &kernel, at(DAY_I - 5));
    assert_eq!(sl(&p, 101).capped, Some(want));
}

/// `bwmon reset` closes the period at the counters it resets from.
#[test]
fn closed_now_counts_as_plan_does() {
    let a = live("pl_a", 101);
    let mut s = slice_state(&a, t0());
    s.lo = cls(&a.limits.lo, 1000, 500, 5000);
    let (state, mut kernel) = world(vec![s]);
    // A counter reset behind bwmon's back: what was counted is carried.
    set_sent(&mut kernel, Kind::Low, 101, 200);
    let done = closed_now(&state.slices[&101], &kernel, at(HOUR));
    assert_eq!(
        (done.lo, done.end, done.removed),
        (Bytes(4500), at(HOUR), false)
    );
}
