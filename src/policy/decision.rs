//! Why a class has the ceil it has: the figures of one decision, one by one,
//! for `bwmon explain`. Built from the same state fields and the same
//! [`capped_ceil`] the plan uses, so an explanation cannot disagree with
//! what a sync applied.

use super::{capped_ceil, elapsed_secs};
use crate::state::ClassState;
use crate::units::{Bytes, Rate};
use chrono::{DateTime, Utc};

/// What bounded the formula's rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Clamp {
    /// Under its threshold: not capped, the ceil is the class's max.
    UnderThreshold,
    /// Root and default are never capped.
    NeverCapped,
    /// The formula's rate stands.
    None,
    /// The formula gave less than the guaranteed rate: raised to it.
    RaisedToMin,
    /// The formula gave at least the max: not capped.
    AtMax,
}

/// The figures of one class's decision at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    /// The kernel counter the decision read.
    pub counter: Bytes,
    /// The counter at the period's start (or this class's incarnation).
    pub base: Bytes,
    /// Counted by earlier incarnations or before a counter reset.
    pub carried: Bytes,
    /// `counter − base + carried`.
    pub used: Bytes,
    pub threshold: Bytes,
    pub quota: Bytes,
    /// `quota − used`, 0 once the quota is spent.
    pub left: Bytes,
    pub elapsed_secs: u64,
    /// What is left of the period, at least 1 (the formula divides by it).
    pub secs_left: u64,
    /// `left × 8 / secs_left`, before the clamps; `None` under the threshold.
    pub formula: Option<Rate>,
    pub min: Rate,
    pub max: Rate,
    pub clamp: Clamp,
    /// What the class's ceil is, or would be.
    pub ceil: Rate,
}

/// The decision for `class` (its limits as the state records them) reading
/// `counter` at `at`, in the period that began at `start`.
pub fn decide(
    class: &ClassState,
    counter: Bytes,
    start: DateTime<Utc>,
    at: DateTime<Utc>,
    period_secs: u64,
    special: bool,
) -> Decision {
    let mut live = class.clone();
    super::advance(&mut live, counter);
    let used = live.used(counter);
    let elapsed = elapsed_secs(start, at);
    let (secs_left, rate) = super::formula(class.quota, used, elapsed, period_secs);
    let left = Bytes(class.quota.0.saturating_sub(used.0));
    let over = !special && used >= class.thresh;
    let formula = over.then_some(rate);
    let ceil = if over {
        capped_ceil(
            &super::Limits {
                min: class.min,
                max: class.max,
                quota: class.quota,
                thresh: class.thresh,
                share: class.share,
            },
            used,
            elapsed,
            period_secs,
        )
    } else {
        class.max
    };
    let clamp = match formula {
        _ if special => Clamp::NeverCapped,
        None => Clamp::UnderThreshold,
        Some(f) if f >= class.max.max(class.min) => Clamp::AtMax,
        Some(f) if f < class.min => Clamp::RaisedToMin,
        Some(_) => Clamp::None,
    };
    Decision {
        counter,
        base: live.base,
        carried: live.carry,
        used,
        threshold: class.thresh,
        quota: class.quota,
        left,
        elapsed_secs: elapsed,
        secs_left,
        formula,
        min: class.min,
        max: class.max,
        clamp,
        ceil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn class(quota: u64, thresh: u64, min: u64, max: u64) -> ClassState {
        ClassState {
            base: Bytes(1000),
            carry: Bytes(0),
            last: Bytes(1000),
            ceil: Rate(max),
            min: Rate(min),
            max: Rate(max),
            quota: Bytes(quota),
            thresh: Bytes(thresh),
            share: 1,
        }
    }

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_795_478_400 + secs, 0).expect("in range")
    }

    #[test]
    fn each_clamp_is_named() {
        let c = class(10_000_000, 8_000_000, 8_000, 100_000_000);
        let d = decide(&c, Bytes(1000 + 1_000), t(0), t(3600), 86_400, false);
        assert_eq!(
            (d.clamp, d.ceil, d.formula),
            (Clamp::UnderThreshold, c.max, None)
        );

        // 9 MB used, 1 MB left over 12 h: 185 bit/s, below min.
        let d = decide(&c, Bytes(1000 + 9_000_000), t(0), t(43_200), 86_400, false);
        assert_eq!(d.used, Bytes(9_000_000));
        assert_eq!(d.left, Bytes(1_000_000));
        assert_eq!(d.secs_left, 43_200);
        assert_eq!(d.formula, Some(Rate(185)));
        assert_eq!((d.clamp, d.ceil), (Clamp::RaisedToMin, c.min));

        // The same at 23:59:59: 8,000,000 bit/s, between min and max.
        let d = decide(&c, Bytes(1000 + 9_000_000), t(0), t(86_399), 86_400, false);
        assert_eq!((d.clamp, d.ceil), (Clamp::None, Rate(8_000_000)));

        let roomy = class(u64::MAX / 16, 1, 8_000, 1_000_000);
        let d = decide(&roomy, Bytes(5000), t(0), t(10), 86_400, false);
        assert_eq!((d.clamp, d.ceil), (Clamp::AtMax, roomy.max));

        let d = decide(&c, Bytes(u64::MAX), t(0), t(10), 86_400, true);
        assert_eq!((d.clamp, d.ceil), (Clamp::NeverCapped, c.max));
    }

    #[test]
    fn a_counter_that_went_back_is_carried() {
        let mut c = class(10_000_000, 8_000_000, 8_000, 100_000_000);
        c.last = Bytes(5000);
        let d = decide(&c, Bytes(100), t(0), t(60), 86_400, false);
        assert_eq!(
            (d.base, d.carried, d.used),
            (Bytes(100), Bytes(4000), Bytes(4000))
        );
    }

    proptest! {
        /// The ceil is the plan's rule: max under the threshold, else
        /// `capped_ceil` on the same figures.
        #[test]
        fn the_ceil_is_the_plans(
            quota in any::<u64>(), thresh in any::<u64>(), min in any::<u64>(), max in any::<u64>(),
            sent in any::<u64>(), elapsed in 0i64..200_000, period in 1u64..400_000,
        ) {
            let c = class(quota, thresh, min, max);
            let d = decide(&c, Bytes(sent), t(0), t(elapsed), period, false);
            let limits = super::super::Limits { min: c.min, max: c.max, quota: c.quota, thresh: c.thresh, share: 1 };
            let want = if d.used >= c.thresh {
                capped_ceil(&limits, d.used, u64::try_from(elapsed).unwrap_or(0), period)
            } else {
                c.max
            };
            prop_assert_eq!(d.ceil, want);
            prop_assert!(d.secs_left >= 1);
        }
    }
}
