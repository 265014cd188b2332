//! Counter arithmetic under every u64 (issue "never lose a byte", item 9):
//! counters, limits and times anywhere in their range never overflow,
//! underflow or panic, from the policy through the state file, the status
//! view and the mail. At the top of the crate because it crosses every
//! layer from the policy up.

use crate::classes::{ClassId, KernelClass};
use crate::config::Defaults;
use crate::mail::compose;
use crate::policy::*;
use crate::report;
use crate::slivers::Rspec;
use crate::state::tests::props::any_class;
use crate::state::{ClassState, Hierarchy, SliceState, State};
use crate::units::{BWMIN, Bytes, Kbit, KiB, Rate};
use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use std::collections::HashSet;
use std::path::Path;

fn any_time() -> impl Strategy<Value = DateTime<Utc>> {
    // Anywhere from 1970 to 9999, where RFC 3339 can still write it.
    (0i64..253_402_300_000).prop_map(|s| Utc.timestamp_opt(s, 0).single().unwrap_or_default())
}

fn kernel_class(kind: Kind, xid: u16, sent: u64, ceil: u64) -> KernelClass {
    let id = kind.class_id(xid);
    KernelClass {
        id,
        parent: Some(kind.parent()),
        rate: Rate(1000),
        ceil: Rate(ceil).as_kernel_keeps(),
        quantum: Some(1600),
        sent: Bytes(sent),
        leaf: Some(ClassId::new(id.minor, 0)),
    }
}

proptest! {
    #[test]
    fn used_and_advance_never_overflow(mut c in any_class(), counter in any::<u64>()) {
        let before = c.used(c.last);
        advance(&mut c, Bytes(counter));
        prop_assert!(c.used(Bytes(counter)) >= before.min(c.carry));
        prop_assert!(c.used(Bytes(counter)) >= c.carry);
    }

    #[test]
    fn limits_for_any_rspec(v in any::<[u64; 8]>(), shares in any::<(u32, u32)>(),
                            bwcap in any::<u64>(), bwmax in any::<u64>(),
                            pct in 1u8..=100, defaults_kib in any::<(u64, u64)>()) {
        let rspec = Rspec {
            min_rate: Some(Kbit(v[0])),
            max_rate: Some(Kbit(v[1])),
            i2_min_rate: Some(Kbit(v[2])),
            i2_max_rate: Some(Kbit(v[3])),
            max_kbyte: Some(KiB(v[4])),
            i2_max_kbyte: Some(KiB(v[5])),
            thresh_kbyte: Some(KiB(v[6])),
            i2_thresh_kbyte: Some(KiB(v[7])),
            share: Some(shares.0),
            i2_share: Some(shares.1),
        };
        let defaults = Defaults {
            max_kbyte: KiB(defaults_kib.0),
            max_i2_kbyte: KiB(defaults_kib.1),
            thresh_percent: pct,
            share: 1,
        };
        let node = Node { bwcap: Rate(bwcap), bwmax: Rate(bwmax), period_secs: 86_400 };
        for r in [&rspec, &Rspec::default()] {
            let l = limits_for(r, &defaults, &node);
            prop_assert!(l.lo.min <= l.lo.max && l.i2.min <= l.i2.max);
            prop_assert!(l.lo.min >= BWMIN && l.i2.min >= BWMIN);
            prop_assert!(l.lo.share >= 1 && l.i2.share >= 1);
            let _ = quantum(l.lo.share);
        }
    }

    #[test]
    fn capped_ceil_any_figures(quota in any::<u64>(), used in any::<u64>(), min in any::<u64>(),
                               max in any::<u64>(), elapsed in any::<u64>(), period in any::<u64>()) {
        let (min, max) = (min.min(max), min.max(max));
        let l = Limits { min: Rate(min), max: Rate(max), quota: Bytes(quota), thresh: Bytes(0), share: 1 };
        let c = capped_ceil(&l, Bytes(used), elapsed, period);
        prop_assert!(c >= Rate(min) && c <= Rate(max));
    }

    #[test]
    fn plan_status_and_mail_with_extreme_values(
        class in any_class(),
        counters in any::<(u64, u64)>(),
        start in any_time(),
        now in any_time(),
        period in 60u64..=366 * 86_400,
        mailed in any::<bool>(),
    ) {
        let slice = SliceState {
            name: "pl_x".into(),
            xid: 0x101,
            start,
            mailed,
            lo: class.clone(),
            i2: class,
            capped: None,
        };
        let mut state = State::default();
        state.slices.insert(0x101, Box::new(slice));
        let kernel = vec![
            kernel_class(Kind::Low, 0x101, counters.0, 1_000_000),
            kernel_class(Kind::I2, 0x101, counters.1, 1_000_000),
        ];
        let node = Node { bwcap: Rate(100_000_000), bwmax: Rate(u64::MAX), period_secs: period };
        let base_limits = limits_for(&Rspec::default(), &Defaults {
            max_kbyte: KiB(u64::MAX), max_i2_kbyte: KiB(u64::MAX), thresh_percent: 100, share: 1,
        }, &node);
        let live = vec![Live { name: "pl_x".into(), xid: 0x101, limits: base_limits }];
        let before = state.clone();
        let p = plan(Inputs {
            state,
            live: &live,
            held_xids: &HashSet::new(),
            held_names: &HashSet::new(),
            kernel: &kernel,
            node,
            base_limits,
            now,
        });
        let after = &p.state.slices[&0x101];
        // Within one period, counted usage never goes down.
        if after.start == before.slices[&0x101].start {
            let b = &before.slices[&0x101];
            prop_assert!(after.lo.used(after.lo.last) >= b.lo.used(b.lo.last).min(b.lo.carry));
        }
        for req in &p.mails {
            let _ = compose(&crate::config::MailConfig {
                enabled: true,
                sendmail: "/bin/true".into(),
                from: "a@b".into(),
                name: "n".into(),
                list: "l@b".into(),
                slice_address: Some("SLICE@s".into()),
                hostname: "h".into(),
                timeout: std::time::Duration::from_secs(1),
                subject: crate::config::DEFAULT_SUBJECT.into(),
            }, req, period, now);
        }
        let r = report::build(&p.state, &kernel, "lo",
            Some(Hierarchy::new(Rate(u64::MAX), Rate(u64::MAX))), period, now);
        let _ = (r.table(true), r.json(), r.prometheus());
        // What is written is read back the same, at any u64.
        let text = p.state.to_yaml();
        prop_assert_eq!(State::from_yaml(&text, Path::new("s")).expect("round trip"), p.state.clone());
    }
}

#[test]
fn u64_max_everywhere_round_trips() {
    let max = ClassState {
        base: Bytes(u64::MAX),
        carry: Bytes(u64::MAX),
        last: Bytes(u64::MAX),
        ceil: Rate(u64::MAX),
        min: Rate(u64::MAX),
        max: Rate(u64::MAX),
        quota: Bytes(u64::MAX),
        thresh: Bytes(u64::MAX),
        share: u32::MAX,
    };
    assert_eq!(max.used(Bytes(u64::MAX)), Bytes(u64::MAX));
    let mut s = State::default();
    s.slices.insert(
        0xffe,
        Box::new(SliceState {
            name: "m".into(),
            xid: 0xffe,
            start: DateTime::<Utc>::MAX_UTC,
            mailed: true,
            lo: max.clone(),
            i2: max,
            capped: None,
        }),
    );
    let _ = ClassId::new(1, 0x1ffe);
    let text = s.to_yaml();
    let back = State::from_yaml(&text, Path::new("s"));
    // chrono's last instant is beyond RFC 3339's four-digit years: either it
    // round-trips or it is refused as bad data, never a panic or a silent change.
    match back {
        Ok(b) => assert_eq!(b, s),
        Err(e) => assert_eq!(e.code(), 65, "{e}"),
    }
}
