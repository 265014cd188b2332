//! HTB's own netlink attributes, which netlink-packet-route 0.34 does not
//! model (they reach it as one opaque `TcOption::Other`): the byte layout of
//! `tc_htb_opt`/`tc_htb_glob` from the kernel's `pkt_sched.h`, how tc fills
//! them (so a class bwmon writes looks exactly like one `tc class add` made),
//! and reading them back from a dump with exact 64-bit rates.
//!
//! Pure: no socket, no file. The clock tc reads from `/proc/net/psched` comes
//! in as a [`Psched`] value.

use crate::units::{Bytes, Rate};
use netlink_packet_core::{DefaultNla, NLA_HEADER_SIZE, NLA_TYPE_MASK, Nla, NlaBuffer};
use netlink_packet_route::tc::TcOption;

/// `TCA_HTB_*`, `include/uapi/linux/pkt_sched.h`.
pub const TCA_HTB_PARMS: u16 = 1;
pub const TCA_HTB_INIT: u16 = 2;
pub const TCA_HTB_CTAB: u16 = 3;
pub const TCA_HTB_RTAB: u16 = 4;
pub const TCA_HTB_DIRECT_QLEN: u16 = 5;
pub const TCA_HTB_RATE64: u16 = 6;
pub const TCA_HTB_CEIL64: u16 = 7;
pub const TCA_HTB_PAD: u16 = 8;
pub const TCA_HTB_OFFLOAD: u16 = 9;
/// `TCA_OPTIONS`, the attribute HTB's are nested in.
pub const TCA_OPTIONS: u16 = 2;

/// `TC_LINKLAYER_ETHERNET`: with it the kernel computes transmit times itself
/// and needs no rate table (`htb_change_class` only reads `TCA_HTB_RTAB`/
/// `CTAB` for `TC_LINKLAYER_UNAWARE`, what a tc from before 2013 sends).
pub const TC_LINKLAYER_ETHERNET: u8 = 1;
/// `TC_HTB_PROTOVER`: the only version `htb_init` accepts.
pub const TC_HTB_PROTOVER: u32 = 3;
/// tc's default `r2q`: a leaf without an explicit quantum gets rate/10.
pub const RATE2QUANTUM: u32 = 10;
/// tc's default `mtu` for the rate table and the default burst (not the
/// device's MTU).
pub const TC_DEFAULT_MTU: u32 = 1600;

/// Netlink attributes walked in place: netlink-packet-core's `NlasIterator`
/// with the same checks (a header, a length of at least the header and
/// within the bytes), the same step (the length rounded up to 4) and the
/// same stop after a malformed attribute, but yielding each attribute's type
/// (flags masked off, as `NlaBuffer::kind`) and value as a slice of the bytes
/// themselves. `NlaBuffer`'s accessors are out-of-line calls that check each
/// field again: reading one class of a dump with them took ~1,700
/// instructions, with this ~590. What the class dump, a sync's critical
/// path, and the HTB options decoders walk attributes with.
#[derive(Clone, Debug)]
pub struct Nlas<'a> {
    rest: &'a [u8],
}

impl<'a> Nlas<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Nlas { rest: bytes }
    }
}

impl<'a> Iterator for Nlas<'a> {
    type Item = Result<(u16, &'a [u8]), BadNla<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let rest = self.rest;
        let [l0, l1, t0, t1, ..] = *rest else {
            self.rest = &[];
            return (!rest.is_empty()).then_some(Err(BadNla(rest)));
        };
        let len = usize::from(u16::from_ne_bytes([l0, l1]));
        let Some(value) = rest.get(NLA_HEADER_SIZE..len) else {
            self.rest = &[];
            return Some(Err(BadNla(rest)));
        };
        self.rest = rest.get(len.next_multiple_of(4)..).unwrap_or_default();
        Some(Ok((u16::from_ne_bytes([t0, t1]) & NLA_TYPE_MASK, value)))
    }
}

/// A malformed attribute and the bytes from it on; says what is wrong in
/// netlink-packet-core's words.
#[derive(Clone, Copy, Debug)]
pub struct BadNla<'a>(&'a [u8]);

impl std::fmt::Display for BadNla<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match NlaBuffer::new_checked(self.0) {
            Err(e) => write!(f, "{e}"),
            Ok(_) => f.write_str("malformed netlink attribute"),
        }
    }
}

/// Something in a netlink answer bwmon cannot use, and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub(crate) fn new(what: impl Into<String>) -> Self {
        DecodeError(what.into())
    }
}

/// A time in the kernel's packet-scheduler ticks (`psched_time_t` units;
/// 64 ns each, `PSCHED_SHIFT` being 6), the unit of `buffer`/`cbuffer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Ticks(pub u32);

impl Ticks {
    /// The kernel's `PSCHED_TICKS2NS`.
    pub fn as_nanos(self) -> u64 {
        u64::from(self.0) << 6
    }
}

/// `struct tc_ratespec`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RateSpec {
    pub cell_log: u8,
    pub linklayer: u8,
    pub overhead: u16,
    pub cell_align: i16,
    pub mpu: u16,
    /// Bytes/s, saturated at `u32::MAX` (the exact figure travels as
    /// `TCA_HTB_RATE64`/`CEIL64`).
    pub rate: u32,
}

impl RateSpec {
    pub const LEN: usize = 12;

    fn write(&self, out: &mut Vec<u8>) {
        out.push(self.cell_log);
        out.push(self.linklayer);
        out.extend_from_slice(&self.overhead.to_ne_bytes());
        out.extend_from_slice(&self.cell_align.to_ne_bytes());
        out.extend_from_slice(&self.mpu.to_ne_bytes());
        out.extend_from_slice(&self.rate.to_ne_bytes());
    }

    /// Reads the 12 bytes at `at` of a whole `tc_htb_opt`.
    fn read(b: &[u8; HtbOpt::LEN], at: usize) -> Self {
        let b = &b[at..at + Self::LEN];
        RateSpec {
            cell_log: b[0],
            linklayer: b[1],
            overhead: u16::from_ne_bytes([b[2], b[3]]),
            cell_align: i16::from_ne_bytes([b[4], b[5]]),
            mpu: u16::from_ne_bytes([b[6], b[7]]),
            rate: u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
}

/// `struct tc_htb_opt`, the payload of `TCA_HTB_PARMS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HtbOpt {
    pub rate: RateSpec,
    pub ceil: RateSpec,
    pub buffer: Ticks,
    pub cbuffer: Ticks,
    /// Bytes a leaf may send per round (DRR).
    pub quantum: u32,
    /// 0 for a leaf; filled by the kernel in dumps, ignored when sent.
    pub level: u32,
    pub prio: u32,
}

impl HtbOpt {
    pub const LEN: usize = 44;

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        self.rate.write(&mut out);
        self.ceil.write(&mut out);
        for v in [
            self.buffer.0,
            self.cbuffer.0,
            self.quantum,
            self.level,
            self.prio,
        ] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        out
    }

    /// Reads the struct from the front of `b`; a longer payload (a newer
    /// kernel's larger struct) is fine, a shorter one is not.
    pub fn parse(b: &[u8]) -> Result<Self, DecodeError> {
        let b: &[u8; Self::LEN] = b
            .get(..Self::LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                DecodeError::new(format!(
                    "TCA_HTB_PARMS of {} bytes, tc_htb_opt needs {}",
                    b.len(),
                    Self::LEN
                ))
            })?;
        let word = |at: usize| u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        Ok(HtbOpt {
            rate: RateSpec::read(b, 0),
            ceil: RateSpec::read(b, RateSpec::LEN),
            buffer: Ticks(word(24)),
            cbuffer: Ticks(word(28)),
            quantum: word(32),
            level: word(36),
            prio: word(40),
        })
    }
}

/// `struct tc_htb_glob`, the payload of `TCA_HTB_INIT` (the qdisc's options).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct HtbGlob {
    pub version: u32,
    pub rate2quantum: u32,
    /// Minor of the class unclassified packets go to (`default 1fff`).
    pub defcls: u32,
    pub debug: u32,
    /// Packets sent through the direct queue (dumps only).
    pub direct_pkts: u32,
}

impl HtbGlob {
    pub const LEN: usize = 20;

    pub fn to_bytes(&self) -> Vec<u8> {
        [
            self.version,
            self.rate2quantum,
            self.defcls,
            self.debug,
            self.direct_pkts,
        ]
        .iter()
        .flat_map(|v| v.to_ne_bytes())
        .collect()
    }

    pub fn parse(b: &[u8]) -> Result<Self, DecodeError> {
        let w = |i: usize| -> Result<u32, DecodeError> {
            b.get(i * 4..i * 4 + 4)
                .and_then(|s| s.try_into().ok())
                .map(u32::from_ne_bytes)
                .ok_or_else(|| {
                    DecodeError::new(format!(
                        "TCA_HTB_INIT of {} bytes, tc_htb_glob needs {}",
                        b.len(),
                        Self::LEN
                    ))
                })
        };
        Ok(HtbGlob {
            version: w(0)?,
            rate2quantum: w(1)?,
            defcls: w(2)?,
            debug: w(3)?,
            direct_pkts: w(4)?,
        })
    }
}

/// The packet-scheduler clock as `/proc/net/psched` describes it: four hex
/// words, `NSEC_PER_USEC`, `PSCHED_TICKS2NS(1)`, `1000000` and
/// `NSEC_PER_SEC / hrtimer_resolution`. tc derives from it the ticks per
/// microsecond (`tc_core_init`) and its "HZ" (`get_hz`, the last word when
/// the third is 1000000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Psched {
    pub t2us: u32,
    pub us2t: u32,
    pub clock_res: u32,
    pub hz_word: u32,
}

impl Psched {
    /// Every kernel with high-resolution timers (this one: `000003e8 00000040
    /// 000f4240 3b9aca00`): 15.625 ticks per µs and an "HZ" of 10⁹, so tc's
    /// default burst is one MTU plus one byte per Gbyte/s of rate.
    pub const HIGH_RES: Psched = Psched {
        t2us: 1000,
        us2t: 64,
        clock_res: 1_000_000,
        hz_word: 1_000_000_000,
    };

    /// Parses the text of `/proc/net/psched`.
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let words: Vec<u32> = text
            .split_whitespace()
            .map(|w| u32::from_str_radix(w, 16))
            .collect::<Result<_, _>>()
            .map_err(|e| DecodeError::new(format!("/proc/net/psched: {e}")))?;
        match words[..] {
            [t2us, us2t, clock_res, hz_word] if us2t != 0 => Ok(Psched {
                t2us,
                us2t,
                clock_res,
                hz_word,
            }),
            _ => Err(DecodeError::new(format!(
                "/proc/net/psched: expected four hex words, got {text:?}"
            ))),
        }
    }

    /// tc's `tick_in_usec` (`tc_core_init`, including its compatibility hack
    /// for a clock resolution of 10⁹).
    pub fn ticks_per_usec(&self) -> f64 {
        let t2us = if self.clock_res == 1_000_000_000 {
            self.us2t
        } else {
            self.t2us
        };
        let clock_factor = f64::from(self.clock_res) / 1e6;
        f64::from(t2us) / f64::from(self.us2t.max(1)) * clock_factor
    }

    /// tc's `get_hz()`: the last word when the third is 10⁶, else its
    /// compile-time `HZ` (100).
    pub fn hz(&self) -> u64 {
        match (self.clock_res, self.hz_word) {
            (1_000_000, hz) if hz != 0 => u64::from(hz),
            _ => 100,
        }
    }
}

/// How bytes become ticks: the one thing iproute2 releases disagree on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum XmitRounding {
    /// iproute2 up to 6.14 (the 6.1 installed here): microseconds truncated to
    /// an integer, then ticks truncated. At high rates this loses most of the
    /// burst: 10gbit's one-MTU burst becomes 15 ticks (1200 bytes), 40gbit's
    /// becomes 0.
    Truncate,
    /// iproute2 6.15 and later (commit d947f365): computed in floating point
    /// and rounded up once, so the bucket always holds the requested bytes.
    RoundUp,
}

/// tc's `tc_calc_xmittime(rate, size)`: the time to send `size` bytes at
/// `rate` (as the kernel keeps it, in bytes/s), in ticks: `1e6 · size / rate`
/// µs times ticks per µs. Never panics; a rate below 8 bit/s, which the
/// kernel refuses anyway, gives `u32::MAX`.
pub fn xmit_ticks(rate: Rate, size: Bytes, clock: &Psched, rounding: XmitRounding) -> Ticks {
    // f64 on purpose: the result must be bit-identical to tc's double math.
    #[allow(clippy::cast_precision_loss)]
    let usec = 1e6 * (size.0 as f64 / bytes_per_sec(rate) as f64);
    let tick = clock.ticks_per_usec();
    // `as` saturates (NaN → 0), where C's conversions would be undefined.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let ticks = match rounding {
        XmitRounding::Truncate => (f64::from(usec as u32) * tick) as u32,
        XmitRounding::RoundUp => (usec * tick).ceil() as u32,
    };
    Ticks(ticks)
}

/// tc's default burst when none is given (`q_htb.c`): `rate / HZ + mtu`
/// bytes, rate in bytes/s, so the bucket holds at least one MTU.
pub fn default_burst(rate: Rate, mtu: u32, clock: &Psched) -> Bytes {
    Bytes(bytes_per_sec(rate) / clock.hz() + u64::from(mtu))
}

/// What bwmon sets on an HTB class; everything else is left as tc leaves it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassParams {
    pub rate: Rate,
    pub ceil: Rate,
    /// Bytes per DRR round; always explicit (the kernel warns about computed
    /// ones, and keeps an interior class's from when it was a leaf).
    pub quantum: u32,
    /// Bytes; tc's default is [`TC_DEFAULT_MTU`], and the burst is one MTU
    /// plus rate/HZ.
    pub mtu: u32,
}

impl ClassParams {
    /// `rate`, `ceil` and `quantum` with tc's default MTU.
    pub fn new(rate: Rate, ceil: Rate, quantum: u32) -> Self {
        ClassParams {
            rate,
            ceil,
            quantum,
            mtu: TC_DEFAULT_MTU,
        }
    }
}

/// Bytes/s as the kernel keeps a rate in bit/s.
fn bytes_per_sec(rate: Rate) -> u64 {
    rate.0 / 8
}

fn ratespec(bytes_per_sec: u64, mtu: u32) -> RateSpec {
    // tc_calc_rtable: the cell size of the (unused) rate table, from the MTU.
    let table_mtu = if mtu == 0 { 2047 } else { mtu };
    let mut cell_log = 0u8;
    while (table_mtu >> cell_log) > 255 {
        cell_log += 1;
    }
    RateSpec {
        cell_log,
        linklayer: TC_LINKLAYER_ETHERNET,
        overhead: 0,
        cell_align: -1,
        mpu: 0,
        rate: u32::try_from(bytes_per_sec).unwrap_or(u32::MAX),
    }
}

/// `tc_htb_opt` exactly as `tc class add … htb rate R ceil C quantum Q`
/// (no burst, cburst, mtu, mpu, overhead or prio) fills it. A rate below
/// 8 bit/s is 0 bytes/s, which the kernel refuses with `EINVAL`.
pub fn htb_opt(p: &ClassParams, clock: &Psched, rounding: XmitRounding) -> HtbOpt {
    let rate = bytes_per_sec(p.rate);
    let ceil = bytes_per_sec(p.ceil);
    HtbOpt {
        rate: ratespec(rate, p.mtu),
        ceil: ratespec(ceil, p.mtu),
        buffer: xmit_ticks(p.rate, default_burst(p.rate, p.mtu, clock), clock, rounding),
        cbuffer: xmit_ticks(p.ceil, default_burst(p.ceil, p.mtu, clock), clock, rounding),
        quantum: p.quantum,
        level: 0,
        prio: 0,
    }
}

/// The nested attributes of `TCA_OPTIONS` for `RTM_NEWTCLASS`, for a
/// `TcAttribute::Options`: `TCA_HTB_RATE64`/`CEIL64` when the bytes/s value
/// does not fit 32 bits (before `PARMS`, in tc's order), then `PARMS`. No rate
/// tables: with an Ethernet link layer the kernel ignores them.
///
/// The burst is tc's default on a high-resolution-timer kernel
/// ([`Psched::HIGH_RES`]), rounded up as iproute2 ≥ 6.15 does, so the
/// bucket holds at least one MTU at any rate (SPEC §4).
pub fn class_options(p: &ClassParams) -> Vec<TcOption> {
    class_options_with(p, &Psched::HIGH_RES, XmitRounding::RoundUp)
}

/// [`class_options`] for a given clock and rounding.
pub fn class_options_with(
    p: &ClassParams,
    clock: &Psched,
    rounding: XmitRounding,
) -> Vec<TcOption> {
    let mut opts = Vec::with_capacity(3);
    for (kind, rate) in [(TCA_HTB_RATE64, p.rate), (TCA_HTB_CEIL64, p.ceil)] {
        let bytes = bytes_per_sec(rate);
        if bytes > u64::from(u32::MAX) {
            opts.push(nla(kind, bytes.to_ne_bytes().to_vec()));
        }
    }
    opts.push(nla(TCA_HTB_PARMS, htb_opt(p, clock, rounding).to_bytes()));
    opts
}

/// The nested attributes of `TCA_OPTIONS` for the root qdisc
/// (`htb default MINOR`): protocol version 3, r2q 10, and `direct_qlen` when
/// given (the kernel otherwise uses the device's `tx_queue_len`).
pub fn qdisc_init(default_minor: u16, direct_qlen: Option<u32>) -> Vec<TcOption> {
    let glob = HtbGlob {
        version: TC_HTB_PROTOVER,
        rate2quantum: RATE2QUANTUM,
        defcls: u32::from(default_minor),
        debug: 0,
        direct_pkts: 0,
    };
    let mut opts = vec![nla(TCA_HTB_INIT, glob.to_bytes())];
    if let Some(qlen) = direct_qlen {
        opts.push(nla(TCA_HTB_DIRECT_QLEN, qlen.to_ne_bytes().to_vec()));
    }
    opts
}

fn nla(kind: u16, value: Vec<u8>) -> TcOption {
    TcOption::Other(DefaultNla::new(kind, value))
}

/// The payload of `TCA_OPTIONS` as netlink-packet-route 0.34 hands it over
/// for a kind it does not model: one `TcOption::Other` holding the whole
/// nest under the kind `TCA_OPTIONS` (2, which is also `TCA_HTB_INIT`'s
/// number: the shape, not the kind, tells them apart). What
/// [`class_options`] builds is the nest's *members* instead, which is what
/// the emit side wants; the two shapes are not each other's round trip.
/// A copy, as `DefaultNla` does not lend its bytes: only for messages that
/// go through netlink-packet-route (qdiscs, and classes the in-place reader
/// leaves to it).
pub fn options_payload(opts: &[TcOption]) -> Option<Vec<u8>> {
    match opts {
        [TcOption::Other(nest)] if nest.kind() & NLA_TYPE_MASK == TCA_OPTIONS => {
            let mut payload = vec![0; nest.value_len()];
            nest.emit_value(&mut payload);
            Some(payload)
        }
        _ => None,
    }
}

/// An HTB class as the kernel reports it in `TCA_OPTIONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtbClass {
    /// Exact: bytes/s × 8, from `TCA_HTB_RATE64` when present.
    pub rate: Rate,
    pub ceil: Rate,
    pub buffer: Ticks,
    pub cbuffer: Ticks,
    /// Bytes. Only meaningful for leaves (level 0): the kernel ignores a
    /// change's quantum on an interior class and keeps the old one.
    pub quantum: u32,
    /// 0 for a leaf, counting up towards the root (7).
    pub level: u32,
    pub prio: u32,
    /// `TCA_HTB_OFFLOAD`: the qdisc is offloaded to the NIC.
    pub offload: bool,
}

fn attr_u64(what: &str, b: &[u8]) -> Result<u64, DecodeError> {
    b.get(..8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_ne_bytes)
        .ok_or_else(|| DecodeError::new(format!("{what} of {} bytes, needs 8", b.len())))
}

fn attr_u32(what: &str, b: &[u8]) -> Result<u32, DecodeError> {
    b.get(..4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or_else(|| DecodeError::new(format!("{what} of {} bytes, needs 4", b.len())))
}

/// Decodes a class's `TCA_OPTIONS` payload: borrowed from the dump's own
/// bytes on the class dump's path, or [`options_payload`]'s copy of what
/// netlink-packet-route parsed. Reads the members where they lie, without
/// a copy. Rates are exact in bit/s: `TCA_HTB_RATE64`/`CEIL64` override the
/// saturated 32-bit fields. Unknown attributes are skipped.
pub fn decode_class_options(nest: &[u8]) -> Result<HtbClass, DecodeError> {
    let mut parms = None;
    let mut rate64 = None;
    let mut ceil64 = None;
    let mut offload = false;
    for nla in Nlas::new(nest) {
        let (kind, value) = nla.map_err(|e| DecodeError::new(format!("HTB class options: {e}")))?;
        match kind {
            TCA_HTB_PARMS => parms = Some(HtbOpt::parse(value)?),
            TCA_HTB_RATE64 => rate64 = Some(attr_u64("TCA_HTB_RATE64", value)?),
            TCA_HTB_CEIL64 => ceil64 = Some(attr_u64("TCA_HTB_CEIL64", value)?),
            TCA_HTB_OFFLOAD => offload = true,
            _ => {}
        }
    }
    let opt = parms.ok_or_else(|| DecodeError::new("HTB class without TCA_HTB_PARMS"))?;
    let bits = |bytes: u64| Rate(bytes.saturating_mul(8));
    Ok(HtbClass {
        rate: bits(rate64.unwrap_or(u64::from(opt.rate.rate))),
        ceil: bits(ceil64.unwrap_or(u64::from(opt.ceil.rate))),
        buffer: opt.buffer,
        cbuffer: opt.cbuffer,
        quantum: opt.quantum,
        level: opt.level,
        prio: opt.prio,
        offload,
    })
}

/// The root HTB qdisc's options as the kernel reports them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HtbQdisc {
    /// The default class's minor. The kernel stores `defcls` as 32 bits but
    /// only its low 16 name a class (`TC_H_MAKE`), so that is what is kept.
    pub default_minor: u16,
    pub version: u32,
    pub rate2quantum: u32,
    pub direct_pkts: u32,
    pub direct_qlen: Option<u32>,
    pub offload: bool,
}

/// Decodes the root qdisc's `TCA_OPTIONS` payload (`TCA_HTB_INIT`, and
/// `TCA_HTB_DIRECT_QLEN`/`OFFLOAD` when present).
pub fn decode_qdisc_options(nest: &[u8]) -> Result<HtbQdisc, DecodeError> {
    let mut glob = None;
    let mut direct_qlen = None;
    let mut offload = false;
    for nla in Nlas::new(nest) {
        let (kind, value) = nla.map_err(|e| DecodeError::new(format!("HTB qdisc options: {e}")))?;
        match kind {
            TCA_HTB_INIT => glob = Some(HtbGlob::parse(value)?),
            TCA_HTB_DIRECT_QLEN => {
                direct_qlen = Some(attr_u32("TCA_HTB_DIRECT_QLEN", value)?);
            }
            TCA_HTB_OFFLOAD => offload = true,
            _ => {}
        }
    }
    let glob = glob.ok_or_else(|| DecodeError::new("HTB qdisc without TCA_HTB_INIT"))?;
    Ok(HtbQdisc {
        default_minor: u16::try_from(glob.defcls & 0xffff).unwrap_or(u16::MAX),
        version: glob.version,
        rate2quantum: glob.rate2quantum,
        direct_pkts: glob.direct_pkts,
        direct_qlen,
        offload,
    })
}

// The fixtures are little-endian bytes, as netlink is on every host bwmon runs on.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use netlink_packet_core::{Emitable, NetlinkMessage, NetlinkPayload, NlasIterator};
    use netlink_packet_route::RouteNetlinkMessage;
    use netlink_packet_route::tc::{TcAttribute, TcMessage};
    use proptest::prelude::*;

    /// Requests tc 6.1 sent for `tc class add … htb rate R ceil C quantum
    /// 1600` (captured with strace by scripts/capture-netlink-fixtures.sh).
    const TC_CLASS_ADDS: &[(&str, &[u8], u64, u64)] = &[
        (
            "1000bit/21216bit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-1000bit-ceil-21216bit.bin"
            ),
            1000,
            21_216,
        ),
        (
            "1000bit/100mbit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-1000bit-ceil-100mbit.bin"
            ),
            1000,
            100_000_000,
        ),
        (
            "1000bit/10gbit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-1000bit-ceil-10gbit.bin"
            ),
            1000,
            10_000_000_000,
        ),
        (
            "100mbit/10gbit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-100mbit-ceil-10gbit.bin"
            ),
            100_000_000,
            10_000_000_000,
        ),
        (
            "1000bit/40gbit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-1000bit-ceil-40gbit.bin"
            ),
            1000,
            40_000_000_000,
        ),
        (
            "40gbit/40gbit",
            include_bytes!(
                "../../tests/fixtures/netlink/requests/class-rate-40gbit-ceil-40gbit.bin"
            ),
            40_000_000_000,
            40_000_000_000,
        ),
    ];

    const TC_QDISC_ADD: &[u8] =
        include_bytes!("../../tests/fixtures/netlink/requests/qdisc-htb-default-1fff.bin");

    /// The tc message of a captured request.
    fn tc_message(bytes: &[u8]) -> TcMessage {
        let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes).expect("tc's request");
        match msg.payload {
            NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewTrafficClass(m)
                | RouteNetlinkMessage::NewQueueDiscipline(m),
            ) => m,
            other => panic!("not a tc request: {other:?}"),
        }
    }

    /// The members of a message's `TCA_OPTIONS`, as (kind, value).
    fn members(m: &TcMessage) -> Vec<(u16, Vec<u8>)> {
        let opts = m
            .attributes
            .iter()
            .find_map(|a| match a {
                TcAttribute::Options(o) => Some(o),
                _ => None,
            })
            .expect("TCA_OPTIONS");
        let payload = options_payload(opts).expect("one opaque nest");
        NlasIterator::new(&payload[..])
            .map(|n| {
                let n = n.expect("tc's nest");
                (n.kind(), n.value().to_vec())
            })
            .collect()
    }

    /// What `options` (as built for the emit side) puts on the wire, read back
    /// as (kind, value): emitted in a real message and parsed again.
    fn on_the_wire(options: Vec<TcOption>) -> Vec<(u16, Vec<u8>)> {
        let mut m = TcMessage::with_index(1);
        m.attributes.push(TcAttribute::Kind("htb".to_string()));
        m.attributes.push(TcAttribute::Options(options));
        let mut msg = NetlinkMessage::from(RouteNetlinkMessage::NewTrafficClass(m));
        msg.finalize();
        let mut bytes = vec![0; msg.buffer_len()];
        msg.serialize(&mut bytes);
        members(&tc_message(&bytes))
    }

    /// A nest's members as (kind, value).
    type Members = Vec<(u16, Vec<u8>)>;

    fn params(rate: u64, ceil: u64) -> ClassParams {
        ClassParams::new(Rate(rate), Rate(ceil), 1600)
    }

    #[test]
    fn truncating_rounding_is_byte_for_byte_what_tc_6_1_sent() {
        for &(name, bytes, rate, ceil) in TC_CLASS_ADDS {
            let tc: Vec<_> = members(&tc_message(bytes))
                .into_iter()
                // Rate tables: tc still sends them, the kernel ignores them.
                .filter(|(k, _)| ![TCA_HTB_RTAB, TCA_HTB_CTAB].contains(k))
                .collect();
            let ours = on_the_wire(class_options_with(
                &params(rate, ceil),
                &Psched::HIGH_RES,
                XmitRounding::Truncate,
            ));
            assert_eq!(ours, tc, "{name}");
        }
    }

    #[test]
    fn only_rates_above_32_bits_of_bytes_carry_rate64() {
        let kinds = |rate, ceil| -> Vec<u16> {
            class_options(&params(rate, ceil))
                .iter()
                .map(Nla::kind)
                .collect()
        };
        // 10gbit is 1.25e9 bytes/s: it fits the u32 field.
        assert_eq!(kinds(1000, 10_000_000_000), [TCA_HTB_PARMS]);
        assert_eq!(kinds(1000, 40_000_000_000), [TCA_HTB_CEIL64, TCA_HTB_PARMS]);
        assert_eq!(
            kinds(40_000_000_000, 40_000_000_000),
            [TCA_HTB_RATE64, TCA_HTB_CEIL64, TCA_HTB_PARMS]
        );
        // 2^32 bytes/s exactly still fits; one byte more does not.
        let edge = u64::from(u32::MAX) * 8;
        assert_eq!(kinds(edge, edge), [TCA_HTB_PARMS]);
        assert_eq!(kinds(edge + 8, edge + 8).len(), 3);
    }

    #[test]
    fn bursts_as_tc_computes_them() {
        let clock = Psched::HIGH_RES;
        let ticks = |rate: u64, rounding| {
            let r = Rate(rate);
            xmit_ticks(r, default_burst(r, 1600, &clock), &clock, rounding).0
        };
        // (rate bit/s, tc 6.1, tc >= 6.15)
        let cases = [
            (1000, 200_000_000, 200_000_000), // 1600 B at 125 B/s = 12.8 s
            (21_216, 9_426_843, 9_426_848),   // 603318.25 µs
            (100_000_000, 2000, 2000),        // 128 µs
            (10_000_000_000, 15, 21),         // 1601 B in 1.28 µs
            (40_000_000_000, 0, 6),           // 1605 B in 0.32 µs
        ];
        for (rate, truncated, rounded) in cases {
            assert_eq!(ticks(rate, XmitRounding::Truncate), truncated, "{rate}");
            assert_eq!(ticks(rate, XmitRounding::RoundUp), rounded, "{rate}");
        }
    }

    #[test]
    fn the_default_rounding_always_holds_one_mtu() {
        let clock = Psched::HIGH_RES;
        for rate in [
            1000,
            21_216,
            999_992,
            100_000_000,
            10_000_000_000,
            40_000_000_000,
            u64::MAX,
        ] {
            let opt = htb_opt(&params(rate, rate), &clock, XmitRounding::RoundUp);
            let bytes = u128::from(rate / 8);
            let held = u128::from(opt.buffer.as_nanos()) * bytes / 1_000_000_000;
            assert!(
                held >= 1600 || opt.buffer.0 == u32::MAX,
                "{rate}: {held} bytes"
            );
        }
    }

    #[test]
    fn default_rounding_agrees_with_tc_where_the_division_is_exact() {
        for &(name, bytes, rate, ceil) in TC_CLASS_ADDS {
            let tc = members(&tc_message(bytes));
            let (_, parms) = tc.iter().find(|(k, _)| *k == TCA_HTB_PARMS).expect("PARMS");
            let tc = HtbOpt::parse(parms).expect("tc's tc_htb_opt");
            let ours = htb_opt(
                &params(rate, ceil),
                &Psched::HIGH_RES,
                XmitRounding::RoundUp,
            );
            assert_eq!(
                (ours.rate, ours.ceil, ours.quantum),
                (tc.rate, tc.ceil, tc.quantum)
            );
            assert!(
                ours.buffer >= tc.buffer && ours.cbuffer >= tc.cbuffer,
                "{name}"
            );
            if rate == 1000 || rate == 100_000_000 {
                assert_eq!(ours.buffer, tc.buffer, "{name}");
            }
        }
    }

    #[test]
    fn root_qdisc_options_are_what_tc_sent() {
        let tc = members(&tc_message(TC_QDISC_ADD));
        assert_eq!(on_the_wire(qdisc_init(0x1fff, None)), tc);
        let decoded = decode_qdisc_options(&encode(&tc)).expect("decodes");
        assert_eq!(decoded.default_minor, 0x1fff);
        assert_eq!((decoded.version, decoded.rate2quantum), (3, 10));
        let with_qlen = on_the_wire(qdisc_init(0x1fff, Some(1000)));
        assert_eq!(
            with_qlen[1],
            (TCA_HTB_DIRECT_QLEN, 1000u32.to_ne_bytes().to_vec())
        );
    }

    /// (kind, value) pairs back into a nest payload.
    fn encode(members: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let opts: Vec<TcOption> = members.iter().map(|(k, v)| nla(*k, v.clone())).collect();
        let mut out = vec![0; opts.as_slice().buffer_len()];
        opts.as_slice().emit(&mut out);
        out
    }

    #[test]
    fn decodes_exact_64_bit_rates() {
        let p = params(40_000_000_000, 21_217);
        let class =
            decode_class_options(&encode(&on_the_wire(class_options(&p)))).expect("decodes");
        assert_eq!(class.rate, Rate(40_000_000_000));
        // The kernel keeps bytes/s.
        assert_eq!(class.ceil, Rate(21_216));
        assert_eq!((class.quantum, class.level, class.prio), (1600, 0, 0));
        assert!(!class.offload);
    }

    #[test]
    fn decode_errors_name_what_is_wrong() {
        let parms = htb_opt(
            &params(1000, 1000),
            &Psched::HIGH_RES,
            XmitRounding::RoundUp,
        )
        .to_bytes();
        let cases: [(Members, &str); 3] = [
            (vec![(TCA_HTB_RATE64, vec![0; 8])], "without TCA_HTB_PARMS"),
            (
                vec![(TCA_HTB_PARMS, parms[..40].to_vec())],
                "tc_htb_opt needs 44",
            ),
            (
                vec![(TCA_HTB_PARMS, parms.clone()), (TCA_HTB_CEIL64, vec![0; 4])],
                "TCA_HTB_CEIL64 of 4 bytes",
            ),
        ];
        for (members, want) in cases {
            let err = decode_class_options(&encode(&members)).expect_err(want);
            assert!(err.0.contains(want), "{err} does not say {want}");
        }
        assert!(decode_class_options(&[5, 0, 1]).is_err());
        assert!(decode_qdisc_options(&encode(&[(TCA_HTB_INIT, vec![3, 0, 0, 0])])).is_err());
    }

    #[test]
    fn reads_the_clock_tc_reads() {
        let here = Psched::parse(include_str!("../../tests/fixtures/netlink/psched.txt"));
        assert_eq!(here, Ok(Psched::HIGH_RES));
        assert!((Psched::HIGH_RES.ticks_per_usec() - 15.625).abs() < f64::EPSILON);
        assert_eq!(Psched::HIGH_RES.hz(), 1_000_000_000);
        // Without high-resolution timers the last word is the kernel's HZ,
        // and the burst grows with the rate: 100mbit at HZ=250 is 50000 B more.
        let low = Psched::parse("000003e8 00000040 000f4240 000000fa\n").expect("parses");
        assert_eq!(low.hz(), 250);
        assert_eq!(default_burst(Rate(100_000_000), 1600, &low), Bytes(51_600));
        for bad in [
            "",
            "1 2 3",
            "000003e8 00000000 000f4240 3b9aca00",
            "zz 1 2 3",
        ] {
            assert!(Psched::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// What netlink-packet-core's iterator makes of `bytes`: (type, value)
    /// per attribute, or its error's text, up to the first error.
    fn core_walk(bytes: &[u8]) -> Vec<Result<(u16, Vec<u8>), String>> {
        NlasIterator::new(bytes)
            .map(|n| {
                n.map(|n| (n.kind(), n.value().to_vec()))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn our_walk(bytes: &[u8]) -> Vec<Result<(u16, Vec<u8>), String>> {
        Nlas::new(bytes)
            .map(|n| n.map(|(k, v)| (k, v.to_vec())).map_err(|e| e.to_string()))
            .collect()
    }

    #[test]
    fn attributes_walk_as_netlink_packet_core_walks_them() {
        let nest = encode(&[
            (TCA_HTB_RATE64 | 0x8000, vec![1; 8]),
            (TCA_HTB_PARMS, vec![2; 44]),
            (TCA_HTB_PAD, vec![]),
            (TCA_HTB_OFFLOAD | 0x4000, vec![3]),
        ]);
        assert_eq!(our_walk(&nest), core_walk(&nest));
        assert_eq!(our_walk(&nest).len(), 4);
        for cut in 0..nest.len() {
            assert_eq!(
                our_walk(&nest[..cut]),
                core_walk(&nest[..cut]),
                "cut at {cut}"
            );
        }
        for bad in [
            &[1u8][..],
            &[3, 0, 1, 0],
            &[8, 0, 1, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ] {
            assert_eq!(our_walk(bad), core_walk(bad), "{bad:?}");
            assert!(our_walk(bad).last().is_some_and(Result::is_err), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn attributes_walk_as_netlink_packet_core_walks_any_bytes(
            bytes in proptest::collection::vec(
                prop_oneof![Just(0u8), Just(4), Just(8), 0u8..16, any::<u8>()],
                0..64,
            ),
        ) {
            prop_assert_eq!(our_walk(&bytes), core_walk(&bytes));
        }

        #[test]
        fn encode_decode_keeps_what_the_kernel_keeps(rate in 8u64.., ceil in 8u64.., quantum: u32) {
            let p = ClassParams::new(Rate(rate), Rate(ceil), quantum);
            let class = decode_class_options(&encode(&on_the_wire(class_options(&p)))).unwrap();
            prop_assert_eq!(class.rate, Rate(rate).as_kernel_keeps());
            prop_assert_eq!(class.ceil, Rate(ceil).as_kernel_keeps());
            prop_assert_eq!(class.quantum, quantum);
        }
    }
}
