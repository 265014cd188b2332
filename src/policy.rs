//! The enforcement decisions of SPEC §5, as one pure function: given the
//! state, the live slices, the kernel's classes and the time, `plan` returns
//! the next state, the tc changes to make and the mails to send. No I/O here,
//! so every rule (periods, caps, reinstatement, counter resets) is tested
//! without root and without a clock.

use crate::classes::{ClassId, KernelClass};
use crate::config::Defaults;
use crate::slivers::Rspec;
use crate::state::{
    Capped, CapsAt, ClassState, DEFAULT_XID, DeadState, ROOT_XID, SliceState, State, is_special,
};
use crate::units::{BWMIN, Bytes, Rate};
use chrono::{DateTime, Utc};
use std::collections::HashSet;
use std::collections::btree_map::Entry;

/// HTB's quantum per unit of share.
pub const QUANTUM_PER_SHARE: u64 = 1600;

/// Handles of the fixed hierarchy (SPEC §4).
pub const ROOT_CLASS: ClassId = ClassId::new(1, 1);
pub const CAP_CLASS: ClassId = ClassId::new(1, 0x10);
pub const LOW_PARENT: ClassId = ClassId::new(1, 0x100);
pub const I2_PARENT: ClassId = ClassId::new(1, 0x20);

/// The two classes every slice has.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Normal destinations, under the node cap.
    Low,
    /// Destinations exempt from the node cap.
    I2,
}

impl Kind {
    pub const BOTH: [Kind; 2] = [Kind::Low, Kind::I2];

    pub fn class_id(self, xid: u16) -> ClassId {
        match self {
            Kind::Low => ClassId::new(1, 0x1000 | xid),
            Kind::I2 => ClassId::new(1, 0x2000 | xid),
        }
    }

    pub fn parent(self) -> ClassId {
        match self {
            Kind::Low => LOW_PARENT,
            Kind::I2 => I2_PARENT,
        }
    }

    /// The words the mail uses (the 2008 wording).
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Low => crate::format::LOW,
            Kind::I2 => crate::format::EXEMPT,
        }
    }

    /// Which slice class a kernel class is, if it has a slice's form.
    pub fn of_kernel_class(class: &KernelClass) -> Option<(Kind, u16)> {
        if class.id.major != 1 {
            return None;
        }
        let kind = match class.id.minor & 0xf000 {
            0x1000 => Kind::Low,
            0x2000 => Kind::I2,
            _ => return None,
        };
        (class.parent == Some(kind.parent())).then_some((kind, class.id.minor & 0x0fff))
    }
}

/// What one class may do this period.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub min: Rate,
    pub max: Rate,
    pub quota: Bytes,
    pub thresh: Bytes,
    pub share: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceLimits {
    pub lo: Limits,
    pub i2: Limits,
}

impl SliceLimits {
    pub fn get(&self, kind: Kind) -> &Limits {
        match kind {
            Kind::Low => &self.lo,
            Kind::I2 => &self.i2,
        }
    }
}

/// The node-wide figures the limits are clamped to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node {
    /// Ceil of class 1:10: the most non-exempt traffic may have.
    pub bwcap: Rate,
    /// Hardware maximum: the most exempt traffic may have.
    pub bwmax: Rate,
    pub period_secs: u64,
}

/// Resolves a sliver's rspec against the defaults and clamps it (SPEC §3, §4):
/// max within [bwmin, bwcap], min within [bwmin, max] and at most 25 % of the
/// node cap; i2 max within [bwmin, bwmax], i2 min within [bwmin, i2 max].
pub fn limits_for(rspec: &Rspec, defaults: &Defaults, node: &Node) -> SliceLimits {
    let bwcap = node.bwcap.max(BWMIN);
    let bwmax = node.bwmax.max(BWMIN);
    let max = rspec
        .max_rate
        .map_or(bwcap, super::units::Kbit::rate)
        .clamp(BWMIN, bwcap);
    let min = rspec
        .min_rate
        .map_or(BWMIN, super::units::Kbit::rate)
        .min(Rate(bwcap.0 / 4))
        .clamp(BWMIN, max);
    let i2max = rspec
        .i2_max_rate
        .map_or(bwmax, super::units::Kbit::rate)
        .clamp(BWMIN, bwmax);
    let i2min = rspec
        .i2_min_rate
        .map_or(BWMIN, super::units::Kbit::rate)
        .clamp(BWMIN, i2max);
    let quota = rspec.max_kbyte.unwrap_or(defaults.max_kbyte).bytes();
    let i2quota = rspec.i2_max_kbyte.unwrap_or(defaults.max_i2_kbyte).bytes();
    let pct = |q: Bytes| {
        let t = u128::from(q.0) * u128::from(defaults.thresh_percent) / 100;
        Bytes(u64::try_from(t).unwrap_or(u64::MAX))
    };
    SliceLimits {
        lo: Limits {
            min,
            max,
            quota,
            thresh: rspec
                .thresh_kbyte
                .map_or_else(|| pct(quota), super::units::KiB::bytes),
            share: rspec.share.unwrap_or(defaults.share).max(1),
        },
        i2: Limits {
            min: i2min,
            max: i2max,
            quota: i2quota,
            thresh: rspec
                .i2_thresh_kbyte
                .map_or_else(|| pct(i2quota), super::units::KiB::bytes),
            share: rspec.i2_share.unwrap_or(defaults.share).max(1),
        },
    }
}

/// The ceil of a class over its threshold: what is left of the quota spread
/// over what is left of the period, never below min nor above max.
pub fn capped_ceil(limits: &Limits, used: Bytes, elapsed_secs: u64, period_secs: u64) -> Rate {
    let (_, rate) = formula(limits.quota, used, elapsed_secs, period_secs);
    rate.clamp(limits.min, limits.max.max(limits.min))
}

/// The cap formula before its clamps: the seconds left of the period (at
/// least 1) and (quota − used) × 8 / those seconds.
pub fn formula(quota: Bytes, used: Bytes, elapsed_secs: u64, period_secs: u64) -> (u64, Rate) {
    let period = period_secs.max(1);
    let left_secs = period - elapsed_secs.min(period - 1);
    let left_bits = u128::from(quota.0.saturating_sub(used.0)) * 8;
    let rate = u64::try_from(left_bits / u128::from(left_secs)).unwrap_or(u64::MAX);
    (left_secs, Rate(rate))
}

/// Seconds from `start` to `now`, 0 when the clock says `now` is earlier.
pub fn elapsed_secs(start: DateTime<Utc>, now: DateTime<Utc>) -> u64 {
    u64::try_from((now - start).num_seconds()).unwrap_or(0)
}

/// `t` plus `secs`, saturating at the end of time instead of panicking.
pub fn plus_secs(t: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    i64::try_from(secs)
        .ok()
        .and_then(chrono::TimeDelta::try_seconds)
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether the period that began at `start` is over at `now`.
pub fn period_over(start: DateTime<Utc>, now: DateTime<Utc>, period_secs: u64) -> bool {
    elapsed_secs(start, now) >= period_secs
}

/// Brings a class up to the kernel counter now: a counter below the baseline
/// (or below the last one seen: a counter never goes back on its own) means
/// the class was reset behind our back, so what was counted up to the last
/// run is carried and counting goes on from the new counter (SPEC §9.6: never
/// a fresh period, and usage never decreases).
pub fn advance(class: &mut ClassState, counter: Bytes) {
    if counter < class.base || counter < class.last {
        class.carry = Bytes(
            class
                .carry
                .0
                .saturating_add(class.last.0.saturating_sub(class.base.0)),
        );
        class.base = counter;
    }
    class.last = counter;
}

/// A class's new period from `counter`: nothing used, nothing carried
/// (a rollover, `reset`, and what `explain` says a rollover would give).
pub fn start_period(class: &mut ClassState, counter: Bytes) {
    class.base = counter;
    class.last = counter;
    class.carry = Bytes(0);
}

/// Usage of a class whose kernel class is gone: it ends at the last counter seen.
fn retire(class: &mut ClassState) {
    class.carry = class.used(class.last);
    class.base = Bytes(0);
    class.last = Bytes(0);
}

/// A live slice, its rspec resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Live {
    pub name: String,
    pub xid: u16,
    pub limits: SliceLimits,
}

/// What a class should be set to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spec {
    pub rate: Rate,
    pub ceil: Rate,
    pub quantum: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// Create the class and its pfifo leaf.
    Add { xid: u16, kind: Kind, spec: Spec },
    /// Change rate, ceil and quantum of an existing class.
    Change { xid: u16, kind: Kind, spec: Spec },
    /// Remove the class (and its leaf).
    Delete { xid: u16, kind: Kind },
    /// Give an existing class bwmon's leaf: the one made with it was refused
    /// (its handle taken) or replaced behind bwmon's back.
    Leaf { xid: u16, kind: Kind },
}

impl Op {
    pub fn xid(&self) -> u16 {
        match *self {
            Op::Add { xid, .. }
            | Op::Change { xid, .. }
            | Op::Delete { xid, .. }
            | Op::Leaf { xid, .. } => xid,
        }
    }
}

/// One capped class, as the mail describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CappedClass {
    pub kind: Kind,
    pub used: Bytes,
    pub ceil: Rate,
    pub quota: Bytes,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailRequest {
    pub xid: u16,
    pub name: String,
    pub start: DateTime<Utc>,
    pub classes: Vec<CappedClass>,
}

/// A period this run brought to an end: what its history record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Completed {
    pub name: String,
    /// `None` for a removed slice recorded by a bwmon that kept no xid.
    pub xid: Option<u16>,
    pub start: DateTime<Utc>,
    /// When counting for it stopped: the run that began the next period (or
    /// removed the slice after its period was over), or, for a removed
    /// slice's record that expired, start + period.
    pub end: DateTime<Utc>,
    pub lo: Bytes,
    pub i2: Bytes,
    /// A class was capped in it. Can be true with `cap` unknown: a state
    /// written before bwmon kept `cap` shows only the caps in force.
    pub capped: bool,
    pub cap: Option<Capped>,
    pub mailed: bool,
    /// The slice was removed within or at the end of this period.
    pub removed: bool,
}

impl Completed {
    /// The period of a live slice, closed at `end` with `used` bytes per class.
    fn of_slice(s: &SliceState, used: [Bytes; 2], end: DateTime<Utc>, removed: bool) -> Self {
        let capped_now = [&s.lo, &s.i2]
            .iter()
            .any(|c| c.ceil != Rate(0) && c.ceil < c.max);
        Completed {
            name: s.name.clone(),
            xid: Some(s.xid),
            start: s.start,
            end,
            lo: used[0],
            i2: used[1],
            capped: s.capped.is_some() || capped_now,
            cap: s.capped,
            mailed: s.mailed,
            removed,
        }
    }

    /// A removed slice's record whose period is over.
    fn of_dead(d: &DeadState, period_secs: u64) -> Self {
        Completed {
            name: d.name.clone(),
            xid: d.xid,
            start: d.start,
            end: plus_secs(d.start, period_secs),
            lo: d.lo,
            i2: d.i2,
            capped: d.capped.is_some(),
            cap: d.capped,
            mailed: d.mailed,
            removed: true,
        }
    }
}

/// The period `s` is in, closed now at the kernel's counters: what `bwmon
/// reset` ends. Usage is counted as `plan` counts it (counter resets carried).
pub fn closed_now(s: &SliceState, kernel: &[KernelClass], now: DateTime<Utc>) -> Completed {
    let mut used = [Bytes(0); 2];
    for (i, kind) in Kind::BOTH.into_iter().enumerate() {
        let counter = slice_class(kernel, kind, s.xid).map_or(Bytes(0), |c| c.sent);
        used[i] = used_at(class_of(s, kind), counter);
    }
    Completed::of_slice(s, used, now, false)
}

/// What a class has used this period at `counter`, without moving its state.
fn used_at(class: &ClassState, counter: Bytes) -> Bytes {
    let mut c = class.clone();
    advance(&mut c, counter);
    c.used(counter)
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub state: State,
    /// Deletions first, then additions and changes, so a freed xid can be reused.
    pub ops: Vec<Op>,
    pub mails: Vec<MailRequest>,
    /// Periods ended this run (rollovers, removals after the period's end,
    /// removed slices' records that expired), for the history file.
    pub ended: Vec<Completed>,
    /// Whether the plan changed any slice's or removed slice's record. The
    /// plan knows where it writes, so a run need not keep a copy of the
    /// state to compare with (at thousands of slices, a megabyte of fresh
    /// memory). Errs only towards true: a slice replaced by an equal one.
    pub changed: bool,
    /// Which classes were capped before the plan, to count the caps it began.
    pub caps_before: CapsAt,
    /// Slices (not root or default) before the plan.
    pub live_before: usize,
    /// Names of the slices the plan removes; one that only moved to another
    /// xid is not removed.
    pub removed: Vec<String>,
}

/// Everything `plan` looks at.
#[derive(Debug)]
pub struct Inputs<'a> {
    pub state: State,
    pub live: &'a [Live],
    /// Records with per-slice errors: their state and classes stay as they were.
    pub held_xids: &'a HashSet<u16>,
    pub held_names: &'a HashSet<String>,
    pub kernel: &'a [KernelClass],
    pub node: Node,
    /// Limits of root and default, which have no rspec.
    pub base_limits: SliceLimits,
    pub now: DateTime<Utc>,
}

/// Every xid a class id can hold (`1:(1000|xid)`, 12 bits).
pub(crate) const XIDS: usize = 0x1000;

/// The kernel's slice classes by kind and xid: a lookup per class without
/// hashing, for the plan and the status view alike.
pub struct KernelIndex<'a> {
    lo: Vec<Option<&'a KernelClass>>,
    i2: Vec<Option<&'a KernelClass>>,
}

impl<'a> KernelIndex<'a> {
    pub fn new(kernel: &'a [KernelClass]) -> Self {
        let mut k = KernelIndex {
            lo: vec![None; 0x1000],
            i2: vec![None; 0x1000],
        };
        for c in kernel {
            if let Some((kind, xid)) = Kind::of_kernel_class(c) {
                let slot = match kind {
                    Kind::Low => &mut k.lo,
                    Kind::I2 => &mut k.i2,
                };
                slot[usize::from(xid)] = Some(c);
            }
        }
        k
    }

    pub fn get(&self, (kind, xid): (Kind, u16)) -> Option<&'a KernelClass> {
        let slot = match kind {
            Kind::Low => &self.lo,
            Kind::I2 => &self.i2,
        };
        slot.get(usize::from(xid)).copied().flatten()
    }

    fn contains_key(&self, key: (Kind, u16)) -> bool {
        self.get(key).is_some()
    }

    /// Every slice class present, in xid order.
    fn keys(&self) -> impl Iterator<Item = (Kind, u16)> + '_ {
        let of = |kind: Kind, v: &Vec<Option<&'a KernelClass>>| {
            v.iter()
                .enumerate()
                .filter(|(_, c)| c.is_some())
                .filter_map(move |(x, _)| u16::try_from(x).ok().map(|x| (kind, x)))
                .collect::<Vec<_>>()
        };
        of(Kind::Low, &self.lo)
            .into_iter()
            .chain(of(Kind::I2, &self.i2))
    }
}

pub fn plan(inputs: Inputs<'_>) -> Plan {
    let Inputs {
        state,
        live,
        held_xids,
        held_names,
        kernel,
        node,
        base_limits,
        now,
    } = inputs;
    let period = node.period_secs;
    let k = KernelIndex::new(kernel);
    // Per xid, plain vectors rather than hash maps: at thousands of slices
    // hashing was a fifth of the plan. Every xid a class id can hold fits.
    let mut live_by_xid: Vec<Option<&Live>> = vec![None; XIDS];
    for l in live {
        if let Some(slot) = live_by_xid.get_mut(usize::from(l.xid)) {
            *slot = Some(l);
        }
    }

    let State {
        hierarchy,
        last_sync,
        mut slices,
        mut dead,
        classified,
        counters,
    } = state;
    // The plan works on the state's own map: held and continuing slices stay
    // where they are, removed ones leave it, new ones enter it. At thousands
    // of slices, moving every slice state through new containers was a third
    // of the plan, most of it fresh memory.
    let mut kept = vec![false; XIDS];
    let mut deletes = Vec::new();
    let mut changes = Vec::new();
    let mut mails = Vec::new();
    let mut ended = Vec::new();
    // xids whose kernel classes are deleted this run: their counters are gone.
    let mut freed = vec![false; XIDS];
    // Slices the live input goes on with, by xid (taken by the first live
    // record of that xid).
    let mut continuing = vec![false; XIDS];
    let caps_before = CapsAt::of(&slices);
    let live_before = slices.keys().filter(|&&x| !is_special(x)).count();
    let mut touched = false;
    let mut removed = Vec::new();

    // Held and dying slices first (SPEC §5 step 1: deaths before births).
    slices.retain(|&xid, s| {
        let at = usize::from(xid);
        if held_xids.contains(&xid) || held_names.contains(&s.name) {
            if let Some(k) = kept.get_mut(at) {
                *k = true;
            }
            return true;
        }
        let special = is_special(xid);
        if at < XIDS && (special || live_by_xid[at].is_some_and(|l| l.name == s.name)) {
            continuing[at] = true;
            return true;
        }
        let mut used = [Bytes(0); 2];
        for (i, kind) in Kind::BOTH.into_iter().enumerate() {
            let class = class_mut(s, kind);
            if let Some(kc) = k.get((kind, xid)) {
                advance(class, kc.sent);
                deletes.push(Op::Delete { xid, kind });
            }
            used[i] = class.used(class.last);
        }
        if let Some(f) = freed.get_mut(at) {
            *f = true;
        }
        touched = true;
        removed.push(s.name.clone());
        if period_over(s.start, now, period) {
            log::info!("{}: removed; its period had ended", s.name);
            ended.push(Completed::of_slice(s, used, now, true));
        } else {
            log::info!(
                "{}: removed; its usage is kept until its period ends",
                s.name
            );
            let name = std::mem::take(&mut s.name);
            dead.insert(
                name.clone(),
                DeadState {
                    name,
                    start: s.start,
                    lo: used[0],
                    i2: used[1],
                    mailed: s.mailed,
                    xid: Some(xid),
                    capped: s.capped,
                },
            );
        }
        false
    });
    dead.retain(|_, d| {
        let over = period_over(d.start, now, period);
        if over {
            ended.push(Completed::of_dead(d, period));
            touched = true;
        }
        !over
    });

    // Root and default always exist, with default limits (step 2).
    let specials = [(ROOT_XID, "root"), (DEFAULT_XID, "default")];
    // Walked, not collected: at thousands of slices a list of them is
    // hundreds of kilobytes of fresh memory after the dump.
    let work = specials
        .iter()
        .map(|&(xid, name)| (xid, name, base_limits, true))
        .chain(
            live.iter()
                // SPEC §9.7: an xid outside 1..=4094 would alias another slice's
                // classes; the slivers reader holds such records, this is the backstop.
                .filter(|l| (1..DEFAULT_XID).contains(&l.xid))
                .filter(|l| !held_xids.contains(&l.xid) && !held_names.contains(&l.name))
                .map(|l| (l.xid, l.name.as_str(), l.limits, false)),
        );

    for (xid, name, limits, special) in work {
        let mut added = [false; 2];
        // What a slice that goes on held before this run, to tell whether
        // it changed (a new one did).
        let mut was = None;
        let at = usize::from(xid);
        let goes_on = continuing.get_mut(at).is_some_and(std::mem::take);
        let s = match slices.entry(xid) {
            Entry::Occupied(entry) if goes_on => {
                let s = entry.into_mut();
                was = Some(figures(s));
                for (i, kind) in Kind::BOTH.into_iter().enumerate() {
                    if !k.contains_key((kind, xid)) {
                        // Classes gone (qdisc rebuilt, reboot): keep the period and
                        // carry what was counted (step 4).
                        retire(class_mut(s, kind));
                        added[i] = true;
                    }
                }
                s
            }
            entry => {
                let back = dead.remove(name);
                if back.is_some() {
                    log::info!("{name}: recreated within its period: its usage and period go on");
                } else {
                    log::info!("{name}: new slice, period starts now");
                }
                let mut s = SliceState {
                    name: name.to_string(),
                    xid,
                    start: back.as_ref().map_or(now, |d| d.start),
                    mailed: back.as_ref().is_some_and(|d| d.mailed),
                    lo: ClassState::default(),
                    i2: ClassState::default(),
                    capped: back.as_ref().and_then(|d| d.capped),
                };
                for (i, kind) in Kind::BOTH.into_iter().enumerate() {
                    let class = class_mut(&mut s, kind);
                    class.carry = match (&back, kind) {
                        (Some(d), Kind::Low) => d.lo,
                        (Some(d), Kind::I2) => d.i2,
                        (None, _) => Bytes(0),
                    };
                    match k.get((kind, xid)).filter(|_| !freed[at]) {
                        // Adopted: counting starts from the counter as it stands (step 5).
                        Some(kc) => {
                            class.base = kc.sent;
                            class.last = kc.sent;
                        }
                        None => added[i] = true,
                    }
                }
                // A second live record of an xid replaces the first, as the
                // later of two equal keys does in a map.
                match entry {
                    Entry::Occupied(mut held) => {
                        held.insert(Box::new(s));
                        held.into_mut()
                    }
                    Entry::Vacant(place) => place.insert(Box::new(s)),
                }
            }
        };

        if period_over(s.start, now, period) {
            log::info!("{name}: new period");
            let mut used = [Bytes(0); 2];
            for (i, kind) in Kind::BOTH.into_iter().enumerate() {
                let counter = kernel_counter(&k, kind, xid, added[i]);
                used[i] = used_at(class_of(s, kind), counter);
            }
            ended.push(Completed::of_slice(s, used, now, false));
            s.start = now;
            s.mailed = false;
            s.capped = None;
            for (i, kind) in Kind::BOTH.into_iter().enumerate() {
                let counter = kernel_counter(&k, kind, xid, added[i]);
                start_period(class_mut(s, kind), counter);
            }
        }

        let elapsed = elapsed_secs(s.start, now);
        let mut capped = Vec::new();
        let mut ceils: [Option<Rate>; 2] = [None; 2];
        for (i, kind) in Kind::BOTH.into_iter().enumerate() {
            let counter = kernel_counter(&k, kind, xid, added[i]);
            let l = limits.get(kind);
            let class = class_mut(s, kind);
            advance(class, counter);
            let used = class.used(counter);
            let ceil = if !special && used >= l.thresh {
                capped_ceil(l, used, elapsed, period)
            } else {
                l.max
            };
            let spec = Spec {
                rate: l.min,
                ceil,
                quantum: quantum(l.share),
            };
            // The decision line is formatted only when it is shown: at
            // thousands of slices the formatting alone is a noticeable share.
            if log::log_enabled!(log::Level::Debug) {
                log::debug!(
                    "{name}: {} used {} of {} (threshold {}): {}",
                    kind.describe(),
                    used,
                    l.quota,
                    l.thresh,
                    if special {
                        "never capped".to_string()
                    } else if used < l.thresh {
                        format!("under threshold, ceil {}", l.max)
                    } else if ceil < l.max {
                        format!(
                            "capped at {ceil} for {}s left",
                            period.saturating_sub(elapsed).max(1)
                        )
                    } else {
                        format!(
                            "over threshold, but the formula gives at least max {}",
                            l.max
                        )
                    }
                );
            }
            if ceil < l.max {
                ceils[i] = Some(ceil);
                capped.push(CappedClass {
                    kind,
                    used,
                    ceil,
                    quota: l.quota,
                });
            }
            if added[i] {
                changes.push(Op::Add { xid, kind, spec });
            } else {
                let kc = k.get((kind, xid));
                if needs_change(class, kc, &spec) {
                    log::info!("{name}: {} ceil {} (max {})", kind.describe(), ceil, l.max);
                    changes.push(Op::Change { xid, kind, spec });
                }
                if kc.is_some_and(|c| !has_own_leaf(c)) {
                    log::info!("{name}: {} class without bwmon's leaf", kind.describe());
                    changes.push(Op::Leaf { xid, kind });
                }
            }
            class.min = l.min;
            class.ceil = ceil;
            class.max = l.max;
            class.quota = l.quota;
            class.thresh = l.thresh;
            class.share = l.share;
        }
        note_caps(s, ceils, now);
        touched |= was.is_none_or(|w| w != figures(s));
        if !capped.is_empty() && !s.mailed && !special {
            mails.push(MailRequest {
                xid,
                name: s.name.clone(),
                start: s.start,
                classes: capped,
            });
        }
        kept[at] = true;
    }
    // A continuing slice no live record took (none today: each is some
    // record's) would leave with its record.
    slices.retain(|&xid, _| {
        let keep = !continuing.get(usize::from(xid)).copied().unwrap_or(false);
        touched |= !keep;
        keep
    });
    if !removed.is_empty() {
        let kept: HashSet<&str> = slices.values().map(|s| s.name.as_str()).collect();
        removed.retain(|name| !kept.contains(name.as_str()));
    }

    // Orphans: slice-form classes nobody claims (step 3).
    let mut orphans: Vec<(Kind, u16)> = k
        .keys()
        .filter(|(_, xid)| {
            let at = usize::from(*xid);
            !kept[at] && !held_xids.contains(xid) && !freed[at]
        })
        .collect();
    orphans.sort_unstable();
    for (kind, xid) in orphans {
        log::info!("class {}: orphan, removed", kind.class_id(xid));
        deletes.push(Op::Delete { xid, kind });
    }

    deletes.extend(changes);
    Plan {
        state: State {
            hierarchy,
            last_sync,
            slices,
            dead,
            classified,
            counters,
        },
        ops: deletes,
        mails,
        ended,
        changed: touched,
        caps_before,
        live_before,
        removed,
    }
}

/// All of a slice the plan may change but its name and xid: a slice goes
/// on only under its own name.
fn figures(s: &SliceState) -> (DateTime<Utc>, bool, ClassState, ClassState, Option<Capped>) {
    (s.start, s.mailed, s.lo.clone(), s.i2.clone(), s.capped)
}

/// Keeps the period's first cap time and each class's lowest ceil.
fn note_caps(s: &mut SliceState, ceils: [Option<Rate>; 2], now: DateTime<Utc>) {
    if ceils == [None, None] {
        return;
    }
    let cap = s.capped.get_or_insert(Capped {
        at: now,
        lo: None,
        i2: None,
    });
    for (slot, ceil) in [&mut cap.lo, &mut cap.i2].into_iter().zip(ceils) {
        if let Some(ceil) = ceil {
            *slot = Some(slot.map_or(ceil, |low| low.min(ceil)));
        }
    }
}

/// `bwmon reset`: the slice starts a new period now — baseline at the current
/// counters, nothing carried, mail flag cleared — and its classes go back to
/// their configured rates at once.
pub fn reset(s: &mut SliceState, kernel: &[KernelClass], now: DateTime<Utc>) -> Vec<Op> {
    let xid = s.xid;
    s.start = now;
    s.mailed = false;
    s.capped = None;
    let mut ops = Vec::new();
    for kind in Kind::BOTH {
        let kc = slice_class(kernel, kind, xid);
        let class = class_mut(s, kind);
        start_period(class, kc.map_or(Bytes(0), |c| c.sent));
        let spec = Spec {
            rate: class.min,
            ceil: class.max,
            quantum: quantum(class.share),
        };
        match kc {
            None => ops.push(Op::Add { xid, kind, spec }),
            Some(kc) => {
                if needs_change(class, Some(kc), &spec) {
                    ops.push(Op::Change { xid, kind, spec });
                }
                if !has_own_leaf(kc) {
                    ops.push(Op::Leaf { xid, kind });
                }
            }
        }
        class.ceil = class.max;
    }
    ops
}

/// One slice class in a dump, for the commands that look at one slice
/// (`reset`, `explain`); the plan indexes the whole dump instead.
pub fn slice_class(kernel: &[KernelClass], kind: Kind, xid: u16) -> Option<&KernelClass> {
    kernel
        .iter()
        .find(|c| Kind::of_kernel_class(c) == Some((kind, xid)))
}

pub fn class_of(s: &SliceState, kind: Kind) -> &ClassState {
    match kind {
        Kind::Low => &s.lo,
        Kind::I2 => &s.i2,
    }
}

fn class_mut(s: &mut SliceState, kind: Kind) -> &mut ClassState {
    match kind {
        Kind::Low => &mut s.lo,
        Kind::I2 => &mut s.i2,
    }
}

/// The kernel counter of a class; a class created this run starts at 0.
fn kernel_counter(k: &KernelIndex<'_>, kind: Kind, xid: u16, added: bool) -> Bytes {
    if added {
        return Bytes(0);
    }
    k.get((kind, xid)).map_or(Bytes(0), |c| c.sent)
}

pub fn quantum(share: u32) -> u32 {
    u32::try_from(u64::from(share).saturating_mul(QUANTUM_PER_SHARE)).unwrap_or(u32::MAX)
}

/// Whether a slice class has the leaf bwmon gives it (handle major = class
/// minor: 1:1101 → 1101:). The kernel's default leaf has no handle.
fn has_own_leaf(c: &KernelClass) -> bool {
    c.leaf == Some(ClassId::new(c.id.minor, 0))
}

/// A class is changed when what bwmon wants differs from what it applied last,
/// or when the kernel shows something else (changed behind our back). Rates
/// are compared exactly, as the kernel keeps them (bytes/s; SPEC §9.10). A
/// class whose applied values are unknown (adopted, or a change the kernel
/// refused) is judged by the kernel alone.
fn needs_change(prev: &ClassState, kernel: Option<&KernelClass>, spec: &Spec) -> bool {
    let known = prev.ceil != Rate(0);
    let applied = Spec {
        rate: prev.min,
        ceil: prev.ceil,
        quantum: quantum(prev.share),
    };
    if known && applied != *spec {
        return true;
    }
    kernel.is_none_or(|kc| {
        kc.rate != spec.rate.as_kernel_keeps()
            || kc.ceil != spec.ceil.as_kernel_keeps()
            || kc.quantum.is_some_and(|q| q != spec.quantum)
    })
}

mod decision;
pub use decision::{Clamp, Decision, decide};

#[cfg(test)]
mod tests;
