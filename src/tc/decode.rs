//! Reads the kernel's answers to bwmon's two rtnetlink dumps (SPEC §4
//! "Reading"): one `RTM_GETTCLASS` and one `RTM_GETQDISC` of a device, fed in
//! receive buffer by receive buffer. It owns the rules for trusting a dump:
//! any `NLM_F_DUMP_INTR` or a class seen twice means "dump again", an error
//! from the kernel is the kernel's errno, and anything that does not parse is
//! an error rather than a class silently missing (a missing class would look
//! like a deleted slice, a missing counter like a counter reset).
//!
//! Pure: bytes in, values out. The socket I/O lives in `netlink.rs`.
//!
//! The class dump is a steady sync's critical path: the kernel builds each
//! datagram inside the `recvmsg` that asks for it, so time spent decoding
//! between two receives is added to the kernel's. An HTB class is therefore
//! read in place, attribute by attribute over the borrowed bytes
//! (`read_htb`, walking them with [`htb::Nlas`], `NlasIterator`'s rules
//! without its per-field calls), with no allocation per class. That reader accepts only
//! what netlink-packet-route would have parsed, and reads it the same way;
//! every other message (another kind, a malformed or unusual one) and the
//! whole qdisc dump go through netlink-packet-route's `TcMessage` as before,
//! so the verdict on them is unchanged. HTB's options, which it does not
//! model, go through [`super::htb`] either way. Where it fails on a message
//! of another kind (a qdisc it models strictly, say), the message is still
//! placed from its header and `TCA_KIND` instead of failing the whole dump.

pub use super::htb::DecodeError;
use super::htb::{self, HtbClass, HtbQdisc, Nlas};
use crate::classes::{ClassId, KernelClass};
use crate::units::Bytes;
use netlink_packet_core::{
    NLM_F_DUMP_INTR, NLMSG_DONE, NLMSG_ERROR, NLMSG_NOOP, NetlinkBuffer, NetlinkMessage,
    NetlinkPayload, NlasIterator, parse_string,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcHeader, TcMessage, TcStats2};
use std::collections::HashSet;

const RTM_NEWQDISC: u16 = 36;
const RTM_NEWTCLASS: u16 = 40;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDRLEN: usize = 16;
/// `sizeof(struct tcmsg)`.
const TCMSG_LEN: usize = 20;
/// `TCA_*`, `include/uapi/linux/rtnetlink.h` (`TCA_OPTIONS` is
/// [`htb::TCA_OPTIONS`]).
const TCA_KIND: u16 = 1;
const TCA_STATS: u16 = 3;
const TCA_STATS2: u16 = 7;
const TCA_CHAIN: u16 = 11;
const TCA_HW_OFFLOAD: u16 = 12;
/// `TCA_STATS_*`, `include/uapi/linux/gen_stats.h`.
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_STATS_BASIC_HW: u16 = 7;
/// The least netlink-packet-route accepts: `struct gnet_stats_basic` (12
/// bytes, padded to 8), `struct gnet_stats_queue`, `struct tc_stats` (36,
/// padded to 8).
const STATS_BASIC_LEN: usize = 16;
const STATS_QUEUE_LEN: usize = 20;
const TC_STATS_LEN: usize = 40;

/// A count of packets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Packets(pub u64);

/// A class's or qdisc's counters as the kernel reports them: `TCA_STATS2`'s
/// `TCA_STATS_BASIC` and `TCA_STATS_QUEUE`, or the legacy `TCA_STATS` when
/// those are missing.
///
/// `sent` is `TCA_STATS_BASIC`, which is the software+hardware total: the
/// kernel emits `TCA_STATS_BASIC_HW` (a hardware-only subset, which tc shows
/// as "Sent hardware", with "Sent software" = basic − hw) only for tc
/// actions (`tcf_action_copy_stats`); an offloaded qdisc folds the NIC's
/// counters into its basic stats, and an offloaded HTB sums its leaves' queue
/// counters into each class's (`htb_offload_aggregate_stats`). So the basic
/// counter is the one to charge, and a `BASIC_HW` is never added to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct QueueStats {
    pub sent: Bytes,
    pub packets: Packets,
    /// Bytes queued in the leaf below (0 for an interior class).
    pub backlog: Bytes,
    /// Packets queued in the leaf below.
    pub qlen: Packets,
    /// Packets dropped (by HTB itself for a class; by the qdisc for a qdisc).
    pub drops: Packets,
}

/// One HTB class of a dump with everything the decoder read, for the code
/// that needs more than [`KernelClass`] (leaf stats, the root check).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DumpedClass {
    /// Rates exact (`precision: 1`), quantum for leaves only.
    pub class: KernelClass,
    pub htb: HtbClass,
    pub stats: QueueStats,
    /// The handle of a leaf's qdisc (`tcm_info`), `None` for interior classes.
    pub leaf: Option<ClassId>,
}

/// What a [`ClassDump`] keeps of each HTB class: [`KernelClass`], all a sync
/// needs, or [`DumpedClass`], everything that was read.
pub trait Kept: Sized {
    fn keep(class: KernelClass, htb: HtbClass, stats: QueueStats) -> Self;
}

impl Kept for KernelClass {
    fn keep(class: KernelClass, _: HtbClass, _: QueueStats) -> Self {
        class
    }
}

impl Kept for DumpedClass {
    fn keep(class: KernelClass, htb: HtbClass, stats: QueueStats) -> Self {
        let leaf = class.leaf;
        DumpedClass {
            class,
            htb,
            stats,
            leaf,
        }
    }
}

/// One qdisc of a dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Qdisc {
    /// `major:0` (`0:` for the kernel's default qdiscs, `ffff:` for ingress).
    pub handle: ClassId,
    /// `None` for the device's root qdisc (`TC_H_ROOT`); the class a leaf
    /// hangs from; `ffff:fff1` for ingress/clsact.
    pub parent: Option<ClassId>,
    pub kind: String,
    /// Options of an `htb` qdisc.
    pub htb: Option<HtbQdisc>,
    /// `None` when the kernel sent no counters, or netlink-packet-route
    /// could not parse this kind's message (its header and kind still are).
    pub stats: Option<QueueStats>,
}

impl Qdisc {
    /// The minor of `htb default N`, for an HTB qdisc.
    pub fn htb_default(&self) -> Option<u16> {
        self.htb.map(|h| h.default_minor)
    }
}

/// Whether the dump needs more receive buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Feed {
    More,
    Done,
}

/// Why a dump gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// `NLM_F_DUMP_INTR` on a message, or one object seen twice: the tree
    /// changed during the dump, which must be taken again.
    #[error("the dump was interrupted by a change to the device's qdiscs or classes")]
    Interrupted,
    /// `NLMSG_ERROR`, or an error in `NLMSG_DONE`: the positive errno.
    #[error("the kernel refused the dump: {}", std::io::Error::from_raw_os_error(*.0))]
    Kernel(i32),
    /// Bytes that are not a dump of this request, or a class without what
    /// bwmon needs from it; also a dump that never reached `NLMSG_DONE`.
    #[error("malformed netlink dump: {0}")]
    Malformed(String),
}

/// What every dump shares: framing, sequence numbers, the end, the errors.
#[derive(Debug)]
struct Framing {
    seq: u32,
    ifindex: u32,
    message_type: u16,
    done: bool,
    interrupted: bool,
    kernel_error: Option<i32>,
    failed: Option<DecodeError>,
}

/// One message of the requested type, as the framing found it.
#[derive(Clone, Copy)]
struct Message<'a> {
    /// The whole message, its netlink header included.
    bytes: &'a [u8],
    /// What follows the netlink header: `struct tcmsg`, then the attributes.
    payload: &'a [u8],
}

/// A message of the requested type as netlink-packet-route reads it: the
/// whole message when it could parse it.
enum Tc {
    Parsed(TcMessage),
    /// netlink-packet-route refused it: the header, the kind if there was
    /// one, and its error.
    Unparsed(TcHeader, Option<String>, String),
    /// Not even the header.
    Broken(String),
}

impl Message<'_> {
    /// The message through netlink-packet-route.
    fn generic(self) -> Result<Tc, DecodeError> {
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(self.bytes) {
            Ok(NetlinkMessage {
                payload:
                    NetlinkPayload::InnerMessage(
                        RouteNetlinkMessage::NewTrafficClass(m)
                        | RouteNetlinkMessage::NewQueueDiscipline(m),
                    ),
                ..
            }) => Ok(Tc::Parsed(m)),
            Ok(m) => Err(DecodeError::new(format!(
                "message type {} not read as a tc message",
                m.header.message_type
            ))),
            Err(e) => Ok(peek(self.payload, e.to_string())),
        }
    }
}

impl Framing {
    fn new(seq: u32, ifindex: u32, message_type: u16) -> Self {
        Framing {
            seq,
            ifindex,
            message_type,
            done: false,
            interrupted: false,
            kernel_error: None,
            failed: None,
        }
    }

    /// Splits `buf` into messages, handles the control ones and hands each
    /// message of the requested type to `each`.
    fn feed(
        &mut self,
        buf: &[u8],
        each: impl FnMut(&mut Self, Message<'_>) -> Result<(), DecodeError>,
    ) -> Result<Feed, DecodeError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let result = self.feed_inner(buf, each);
        if let Err(e) = &result {
            self.failed = Some(e.clone());
        }
        result
    }

    fn feed_inner(
        &mut self,
        buf: &[u8],
        mut each: impl FnMut(&mut Self, Message<'_>) -> Result<(), DecodeError>,
    ) -> Result<Feed, DecodeError> {
        let mut off = 0;
        while off < buf.len() {
            if self.done {
                return Err(DecodeError::new(
                    "bytes after the end of the dump (NLMSG_DONE or an error)",
                ));
            }
            let rest = &buf[off..];
            let frame = NetlinkBuffer::new_checked(rest)
                .map_err(|e| DecodeError::new(format!("netlink framing at byte {off}: {e}")))?;
            let len = frame.length() as usize;
            let msg = &rest[..len];
            off = off.saturating_add(len.saturating_add(3) & !3);
            let (kind, flags, seq) = (frame.message_type(), frame.flags(), frame.sequence_number());
            if seq != self.seq {
                return Err(DecodeError::new(format!(
                    "a message of sequence {seq} in the dump of sequence {}",
                    self.seq
                )));
            }
            // The kernel also marks NLMSG_DONE when the tree changed under it.
            if flags & NLM_F_DUMP_INTR != 0 {
                self.interrupted = true;
            }
            match kind {
                NLMSG_NOOP => {}
                NLMSG_DONE | NLMSG_ERROR => self.end(msg)?,
                k if k == self.message_type => {
                    let payload = frame.payload();
                    each(
                        self,
                        Message {
                            bytes: msg,
                            payload,
                        },
                    )?;
                }
                k => {
                    return Err(DecodeError::new(format!(
                        "unexpected message type {k} in a dump of type {}",
                        self.message_type
                    )));
                }
            }
        }
        Ok(if self.done { Feed::Done } else { Feed::More })
    }

    /// `NLMSG_DONE` (carrying the dump's own result) or `NLMSG_ERROR`.
    fn end(&mut self, msg: &[u8]) -> Result<(), DecodeError> {
        let parsed = NetlinkMessage::<RouteNetlinkMessage>::deserialize(msg)
            .map_err(|e| DecodeError::new(format!("end of dump: {e}")))?;
        let code = match parsed.payload {
            NetlinkPayload::Done(d) => d.code,
            NetlinkPayload::Error(e) => match e.code {
                Some(code) => code.get(),
                // An ACK is no answer to a dump.
                None => return Err(DecodeError::new("an ACK where the dump should end")),
            },
            _ => {
                return Err(DecodeError::new(
                    "end of dump that is neither DONE nor ERROR",
                ));
            }
        };
        if code < 0 {
            self.kernel_error = Some(code.saturating_neg());
        } else if code > 0 {
            return Err(DecodeError::new(format!("positive error code {code}")));
        }
        self.done = true;
        Ok(())
    }

    /// The verdict once the caller stopped feeding.
    fn verdict(&self) -> Result<(), DumpError> {
        if let Some(e) = &self.failed {
            return Err(DumpError::Malformed(e.0.clone()));
        }
        if let Some(errno) = self.kernel_error {
            return Err(DumpError::Kernel(errno));
        }
        if self.interrupted {
            return Err(DumpError::Interrupted);
        }
        if !self.done {
            return Err(DumpError::Malformed(
                "the dump ended before NLMSG_DONE".to_string(),
            ));
        }
        Ok(())
    }

    fn check_device(&self, index: i32) -> Result<(), DecodeError> {
        if i64::from(index) == i64::from(self.ifindex) {
            Ok(())
        } else {
            Err(DecodeError::new(format!(
                "a message of device {index} in the dump of device {}",
                self.ifindex
            )))
        }
    }
}

/// How many netlink messages `buf` holds, from their length fields alone: at
/// most as many classes as it can add (the framing checks the messages).
fn messages_in(buf: &[u8]) -> usize {
    let (mut n, mut off) = (0, 0);
    while let Some(len) = u32_at(buf, off) {
        let len = len as usize;
        if len < NLMSG_HDRLEN {
            break;
        }
        n += 1;
        off = off.saturating_add(len.saturating_add(3) & !3);
    }
    n
}

/// What can be read of a message netlink-packet-route refused.
fn peek(payload: &[u8], error: String) -> Tc {
    let Ok(header) = TcHeader::parse(payload) else {
        return Tc::Broken(error);
    };
    let kind = payload.get(TCMSG_LEN..).and_then(|attrs| {
        NlasIterator::new(attrs)
            .map_while(Result::ok)
            .find(|nla| nla.kind() == TCA_KIND)
            .and_then(|nla| parse_string(nla.value()).ok())
    });
    Tc::Unparsed(header, kind, error)
}

/// The fields of `struct tcmsg` bwmon reads.
#[derive(Clone, Copy, Debug)]
struct TcmHeader {
    index: i32,
    handle: u32,
    parent: u32,
    info: u32,
}

impl TcmHeader {
    fn read(payload: &[u8]) -> Option<Self> {
        let index = u32_at(payload, 4)?.to_ne_bytes();
        Some(TcmHeader {
            index: i32::from_ne_bytes(index),
            handle: u32_at(payload, 8)?,
            parent: u32_at(payload, 12)?,
            info: u32_at(payload, 16)?,
        })
    }
}

impl From<&TcHeader> for TcmHeader {
    fn from(h: &TcHeader) -> Self {
        TcmHeader {
            index: h.index,
            handle: h.handle.into(),
            parent: h.parent.into(),
            info: h.info,
        }
    }
}

/// A handle as `TC_H_MAJ`/`TC_H_MIN` split it.
fn id(handle: u32) -> ClassId {
    let [a, b, c, d] = handle.to_be_bytes();
    ClassId::new(u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d]))
}

/// `None` for `TC_H_ROOT`.
fn parent(handle: u32) -> Option<ClassId> {
    (handle != u32::MAX).then(|| id(handle))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let w = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let w: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_ne_bytes(w))
}

/// Bytes and packets sent: `TCA_STATS_BASIC`, or the front of `TCA_STATS`.
#[derive(Clone, Copy, Default)]
struct Sent {
    bytes: u64,
    packets: u32,
}

/// The queue's state: `TCA_STATS_QUEUE`, or the tail of `TCA_STATS`.
#[derive(Clone, Copy, Default)]
struct Queued {
    backlog: u32,
    qlen: u32,
    drops: u32,
}

/// The counters of one message, the last of each kind winning (as they did
/// when read from netlink-packet-route's attribute list).
#[derive(Clone, Copy, Default)]
struct Counters {
    basic: Option<Sent>,
    queue: Option<Queued>,
    legacy: Option<(Sent, Queued)>,
}

impl Counters {
    /// `TCA_STATS_BASIC`, `None` when shorter than netlink-packet-route takes.
    fn read_basic(b: &[u8]) -> Option<Sent> {
        if b.len() < STATS_BASIC_LEN {
            return None;
        }
        Some(Sent {
            bytes: u64_at(b, 0)?,
            packets: u32_at(b, 8)?,
        })
    }

    /// `TCA_STATS_QUEUE` (`qlen, backlog, drops, requeues, overlimits`).
    fn read_queue(b: &[u8]) -> Option<Queued> {
        if b.len() < STATS_QUEUE_LEN {
            return None;
        }
        Some(Queued {
            qlen: u32_at(b, 0)?,
            backlog: u32_at(b, 4)?,
            drops: u32_at(b, 8)?,
        })
    }

    /// `TCA_STATS` (`bytes, packets, drops, overlimits, bps, pps, qlen,
    /// backlog`).
    fn read_legacy(b: &[u8]) -> Option<(Sent, Queued)> {
        if b.len() < TC_STATS_LEN {
            return None;
        }
        let sent = Sent {
            bytes: u64_at(b, 0)?,
            packets: u32_at(b, 8)?,
        };
        let queued = Queued {
            drops: u32_at(b, 12)?,
            qlen: u32_at(b, 28)?,
            backlog: u32_at(b, 32)?,
        };
        Some((sent, queued))
    }

    /// The counters, `None` without a byte counter (`TCA_STATS_BASIC` or
    /// `TCA_STATS`).
    fn stats(&self) -> Option<QueueStats> {
        let legacy_sent = self.legacy.map(|l| l.0);
        let sent = self.basic.or(legacy_sent)?;
        let queued = self.queue.or(self.legacy.map(|l| l.1)).unwrap_or_default();
        Some(QueueStats {
            sent: Bytes(sent.bytes),
            packets: Packets(u64::from(sent.packets)),
            backlog: Bytes(u64::from(queued.backlog)),
            qlen: Packets(u64::from(queued.qlen)),
            drops: Packets(u64::from(queued.drops)),
        })
    }
}

/// Kind, options payload and counters of a tc message netlink-packet-route
/// parsed.
struct Attrs<'a> {
    kind: Option<&'a str>,
    options: Option<Vec<u8>>,
    stats: Option<QueueStats>,
}

fn attrs(m: &TcMessage) -> Attrs<'_> {
    let mut kind = None;
    let mut options = None;
    let mut counters = Counters::default();
    for a in &m.attributes {
        match a {
            TcAttribute::Kind(k) => kind = Some(k.as_str()),
            TcAttribute::Options(opts) => options = htb::options_payload(opts),
            TcAttribute::Stats2(stats) => {
                for s in stats {
                    match s {
                        TcStats2::Basic(b) => {
                            counters.basic = Some(Sent {
                                bytes: b.bytes,
                                packets: b.packets,
                            });
                        }
                        TcStats2::Queue(q) => {
                            counters.queue = Some(Queued {
                                backlog: q.backlog,
                                qlen: q.qlen,
                                drops: q.drops,
                            });
                        }
                        _ => {}
                    }
                }
            }
            TcAttribute::Stats(s) => {
                let sent = Sent {
                    bytes: s.bytes,
                    packets: s.packets,
                };
                let queued = Queued {
                    backlog: s.backlog,
                    qlen: s.qlen,
                    drops: s.drops,
                };
                counters.legacy = Some((sent, queued));
            }
            _ => {}
        }
    }
    Attrs {
        kind,
        options,
        stats: counters.stats(),
    }
}

/// An HTB class message read in place: its header, its `TCA_OPTIONS` payload
/// (borrowed) and its counters.
struct HtbMessage<'a> {
    header: TcmHeader,
    options: Option<&'a [u8]>,
    stats: Option<QueueStats>,
}

/// Reads a class message in place when it is one netlink-packet-route 0.34
/// would have parsed as an HTB class (`TCA_KIND` "htb" first, and no other
/// `TCA_KIND`), the same way it reads it: the attributes it checks checked
/// as it checks them (`TCA_STATS`, `TCA_STATS2`'s `BASIC`/`QUEUE`/`BASIC_HW`
/// long enough, `TCA_CHAIN` and `TCA_HW_OFFLOAD` of their exact size), the
/// last `TCA_OPTIONS` and the last of each counter kept. `None` for anything
/// else, which is left to netlink-packet-route: it decides that message as
/// it always did (skips another kind, names the flaw of a broken HTB class).
fn read_htb(payload: &[u8]) -> Option<HtbMessage<'_>> {
    let header = TcmHeader::read(payload)?;
    let mut nlas = Nlas::new(payload.get(TCMSG_LEN..)?);
    // netlink-packet-route's `parse_string` drops one trailing NUL.
    match nlas.next()?.ok()? {
        (TCA_KIND, b"htb\0" | b"htb") => {}
        _ => return None,
    }
    let mut options = None;
    let mut counters = Counters::default();
    for nla in nlas {
        let (kind, value) = nla.ok()?;
        match kind {
            TCA_KIND => return None,
            htb::TCA_OPTIONS => options = Some(value),
            TCA_STATS => counters.legacy = Some(Counters::read_legacy(value)?),
            TCA_STATS2 => {
                for s in Nlas::new(value) {
                    let (kind, value) = s.ok()?;
                    match kind {
                        TCA_STATS_BASIC => counters.basic = Some(Counters::read_basic(value)?),
                        TCA_STATS_QUEUE => counters.queue = Some(Counters::read_queue(value)?),
                        TCA_STATS_BASIC_HW if value.len() < STATS_BASIC_LEN => return None,
                        _ => {}
                    }
                }
            }
            TCA_CHAIN if value.len() != 4 => return None,
            TCA_HW_OFFLOAD if value.len() != 1 => return None,
            _ => {}
        }
    }
    Some(HtbMessage {
        header,
        options,
        stats: counters.stats(),
    })
}

/// An HTB class from its message, however it was read.
fn htb_class(
    header: &TcmHeader,
    options: Option<&[u8]>,
    stats: Option<QueueStats>,
) -> Result<(KernelClass, HtbClass, QueueStats), DecodeError> {
    let class_id = id(header.handle);
    let what = |e: &str| DecodeError::new(format!("class {class_id}: {e}"));
    let options = options.ok_or_else(|| what("no TCA_OPTIONS"))?;
    let h = htb::decode_class_options(options).map_err(|e| what(&e.0))?;
    let stats = stats.ok_or_else(|| what("no byte counter (TCA_STATS2 or TCA_STATS)"))?;
    let leaf = (h.level == 0 && header.info != 0).then(|| id(header.info));
    let class = KernelClass {
        id: class_id,
        parent: parent(header.parent),
        rate: h.rate,
        ceil: h.ceil,
        // As tc shows it: an interior class's figure is stale.
        quantum: (h.level == 0).then_some(h.quantum),
        sent: stats.sent,
        leaf,
    };
    Ok((class, h, stats))
}

/// The classes a dump has listed: a bitmap over the minors of major 1, where
/// all of bwmon's classes are, and a set for the few others (a classful
/// leaf's own).
struct Seen {
    major1: Box<[u64; 1024]>,
    others: HashSet<ClassId>,
}

impl Seen {
    fn new() -> Self {
        Seen {
            major1: Box::new([0; 1024]),
            others: HashSet::new(),
        }
    }

    /// Notes `id`; `false` when it was noted already.
    fn insert(&mut self, id: ClassId) -> bool {
        if id.major != 1 {
            return self.others.insert(id);
        }
        let word = &mut self.major1[usize::from(id.minor >> 6)];
        let bit = 1u64 << (id.minor & 63);
        let fresh = *word & bit == 0;
        *word |= bit;
        fresh
    }
}

impl std::fmt::Debug for Seen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let major1: u32 = self.major1.iter().map(|w| w.count_ones()).sum();
        f.debug_struct("Seen")
            .field("major1", &major1)
            .field("others", &self.others)
            .finish()
    }
}

/// The decoder of one `RTM_GETTCLASS` dump of one device: every HTB class,
/// in dump order, as a [`KernelClass`] ([`ClassDump::new`]) or a
/// [`DumpedClass`] ([`ClassDump::detailed`]). Classes of other kinds (a
/// classful leaf's own, `mq`'s) are skipped.
#[derive(Debug)]
pub struct ClassDump<T: Kept = KernelClass> {
    framing: Framing,
    classes: Vec<T>,
    seen: Seen,
    skipped: usize,
    /// HTB classes read in place; `false` only for [`ClassDump::reference`].
    in_place: bool,
}

impl ClassDump<KernelClass> {
    /// For the dump requested with sequence number `seq` of device `ifindex`.
    pub fn new(seq: u32, ifindex: u32) -> Self {
        Self::with(seq, ifindex)
    }
}

impl ClassDump<DumpedClass> {
    /// As [`ClassDump::new`], keeping HTB parameters, queue counters and
    /// leaf handles too.
    pub fn detailed(seq: u32, ifindex: u32) -> Self {
        Self::with(seq, ifindex)
    }

    /// [`Self::finish`] of a detailed dump: the classes with HTB parameters,
    /// queue counters and leaf handles.
    pub fn finish_detailed(self) -> Result<Vec<DumpedClass>, DumpError> {
        self.finish()
    }

    /// A detailed dump that reads every message through netlink-packet-route,
    /// as all were before the in-place reader: what the fuzz target holds
    /// that reader to.
    pub(crate) fn reference(seq: u32, ifindex: u32) -> Self {
        ClassDump {
            in_place: false,
            ..Self::with(seq, ifindex)
        }
    }
}

/// Room for every class bwmon makes (two per xid, 4,096 xids, and the
/// hierarchy's few), reserved at once: growing the vector as the dump comes
/// in copied it a dozen times on the dump's own thread. Pages never written
/// are never touched, so a small node pays nothing for it.
const CLASSES_RESERVED: usize = 2 * crate::policy::XIDS + 16;

impl<T: Kept> ClassDump<T> {
    fn with(seq: u32, ifindex: u32) -> Self {
        ClassDump {
            framing: Framing::new(seq, ifindex, RTM_NEWTCLASS),
            classes: Vec::with_capacity(CLASSES_RESERVED),
            seen: Seen::new(),
            skipped: 0,
            in_place: true,
        }
    }

    /// Reads one receive buffer (one or more netlink messages). After an
    /// error every later call fails the same way, and so does `finish`.
    pub fn feed(&mut self, buf: &[u8]) -> Result<Feed, DecodeError> {
        let (classes, seen, skipped) = (&mut self.classes, &mut self.seen, &mut self.skipped);
        let in_place = self.in_place;
        classes.reserve(messages_in(buf));
        self.framing.feed(buf, |framing, message| {
            if in_place && let Some(m) = read_htb(message.payload) {
                framing.check_device(m.header.index)?;
                if !seen.insert(id(m.header.handle)) {
                    // SPEC §4: a class twice is a dump that raced a change.
                    framing.interrupted = true;
                    return Ok(());
                }
                let (class, h, stats) = htb_class(&m.header, m.options, m.stats)?;
                classes.push(T::keep(class, h, stats));
                return Ok(());
            }
            let m = match message.generic()? {
                Tc::Parsed(m) => m,
                Tc::Unparsed(header, kind, error) => {
                    framing.check_device(header.index)?;
                    let class_id = id(header.handle.into());
                    if !seen.insert(class_id) {
                        framing.interrupted = true;
                    }
                    if kind.as_deref() == Some("htb") {
                        return Err(DecodeError::new(format!("class {class_id}: {error}")));
                    }
                    *skipped += 1;
                    return Ok(());
                }
                Tc::Broken(error) => return Err(DecodeError::new(error)),
            };
            let header = TcmHeader::from(&m.header);
            framing.check_device(header.index)?;
            if !seen.insert(id(header.handle)) {
                framing.interrupted = true;
                return Ok(());
            }
            let a = attrs(&m);
            if a.kind != Some("htb") {
                *skipped += 1;
                return Ok(());
            }
            let (class, h, stats) = htb_class(&header, a.options.as_deref(), a.stats)?;
            classes.push(T::keep(class, h, stats));
            Ok(())
        })
    }

    /// Classes of other kinds seen so far (not in the answer).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The HTB classes, once the dump reached its end uninterrupted.
    pub fn finish(self) -> Result<Vec<T>, DumpError> {
        self.framing.verdict()?;
        Ok(self.classes)
    }
}

/// The decoder of one `RTM_GETQDISC` dump. The kernel answers it for every
/// device of the network namespace; only `ifindex`'s qdiscs are kept. Not on
/// a sync's path: every message goes through netlink-packet-route.
#[derive(Debug)]
pub struct QdiscDump {
    framing: Framing,
    qdiscs: Vec<Qdisc>,
    seen: HashSet<(ClassId, Option<ClassId>)>,
}

impl QdiscDump {
    pub fn new(seq: u32, ifindex: u32) -> Self {
        QdiscDump {
            framing: Framing::new(seq, ifindex, RTM_NEWQDISC),
            qdiscs: Vec::new(),
            seen: HashSet::new(),
        }
    }

    /// Reads one receive buffer, as [`ClassDump::feed`].
    pub fn feed(&mut self, buf: &[u8]) -> Result<Feed, DecodeError> {
        let (qdiscs, seen) = (&mut self.qdiscs, &mut self.seen);
        self.framing.feed(buf, |framing, message| {
            let (header, qdisc) = match message.generic()? {
                Tc::Parsed(m) => {
                    let header = TcmHeader::from(&m.header);
                    let a = attrs(&m);
                    let kind = a.kind.unwrap_or_default().to_string();
                    let htb = match (kind.as_str(), a.options) {
                        ("htb", Some(o)) => Some(htb::decode_qdisc_options(&o).map_err(|e| {
                            DecodeError::new(format!("qdisc {}: {e}", id(header.handle)))
                        })?),
                        ("htb", None) => {
                            return Err(DecodeError::new(format!(
                                "htb qdisc {} without TCA_OPTIONS",
                                id(header.handle)
                            )));
                        }
                        _ => None,
                    };
                    let q = Qdisc {
                        handle: id(header.handle),
                        parent: parent(header.parent),
                        kind,
                        htb,
                        stats: a.stats,
                    };
                    (header, q)
                }
                Tc::Unparsed(header, kind, error) => {
                    let header = TcmHeader::from(&header);
                    let kind = kind.unwrap_or_default();
                    if kind == "htb" {
                        return Err(DecodeError::new(format!(
                            "qdisc {}: {error}",
                            id(header.handle)
                        )));
                    }
                    let q = Qdisc {
                        handle: id(header.handle),
                        parent: parent(header.parent),
                        kind,
                        htb: None,
                        stats: None,
                    };
                    (header, q)
                }
                Tc::Broken(error) => return Err(DecodeError::new(error)),
            };
            if framing.check_device(header.index).is_err() {
                return Ok(());
            }
            // Several qdiscs may share `0:` (mq's children); with their
            // parents they are unique.
            if !seen.insert((qdisc.handle, qdisc.parent)) {
                framing.interrupted = true;
                return Ok(());
            }
            qdiscs.push(qdisc);
            Ok(())
        })
    }

    /// The device's qdiscs, once the dump reached its end uninterrupted.
    pub fn finish(self) -> Result<Vec<Qdisc>, DumpError> {
        self.framing.verdict()?;
        Ok(self.qdiscs)
    }
}

// The fixtures are little-endian bytes, as netlink is on every host bwmon runs on.
#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;
    use crate::units::Rate;
    use std::fmt::Write;

    /// One `RTM_GETTCLASS` dump of `lo` as the kernel sent it, receive buffer
    /// by receive buffer (scripts/capture-netlink-fixtures.sh), and what
    /// `tc -s -d class show dev lo` printed just before and after it.
    const CLASSES: [&[u8]; 3] = [
        include_bytes!("../../tests/fixtures/netlink/classes-1.bin"),
        include_bytes!("../../tests/fixtures/netlink/classes-2.bin"),
        include_bytes!("../../tests/fixtures/netlink/classes-3.bin"),
    ];
    const CLASSES_TXT: &str = include_str!("../../tests/fixtures/netlink/classes.txt");
    const QDISCS: [&[u8]; 2] = [
        include_bytes!("../../tests/fixtures/netlink/qdiscs-1.bin"),
        include_bytes!("../../tests/fixtures/netlink/qdiscs-2.bin"),
    ];
    const QDISCS_TXT: &str = include_str!("../../tests/fixtures/netlink/qdiscs.txt");
    /// `lo` in a fresh network namespace.
    const LO: u32 = 1;

    fn seq_of(buf: &[u8]) -> u32 {
        u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]])
    }

    fn class_dump(bufs: &[&[u8]]) -> Result<Vec<DumpedClass>, DumpError> {
        let mut d = ClassDump::detailed(seq_of(bufs[0]), LO);
        for b in bufs {
            if d.feed(b).is_err() {
                break;
            }
        }
        d.finish_detailed()
    }

    fn qdisc_dump(bufs: &[&[u8]]) -> Result<Vec<Qdisc>, DumpError> {
        let mut d = QdiscDump::new(seq_of(bufs[0]), LO);
        for b in bufs {
            if d.feed(b).is_err() {
                break;
            }
        }
        d.finish()
    }

    // --- building messages for the cases the kernel was not asked to make

    fn nla(kind: u16, value: &[u8]) -> Vec<u8> {
        let len = u16::try_from(4 + value.len()).expect("small");
        let mut out = [len.to_ne_bytes(), kind.to_ne_bytes()].concat();
        out.extend_from_slice(value);
        out.resize(out.len().next_multiple_of(4), 0);
        out
    }

    fn message(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = u32::try_from(16 + payload.len()).expect("small");
        let mut out = len.to_ne_bytes().to_vec();
        out.extend_from_slice(&kind.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn tcmsg(ifindex: u32, handle: u32, parent: u32, attrs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0u8; 4];
        for v in [ifindex, handle, parent, 0] {
            out.extend_from_slice(&v.to_ne_bytes());
        }
        for a in attrs {
            out.extend_from_slice(a);
        }
        out
    }

    fn done(seq: u32, code: i32) -> Vec<u8> {
        message(NLMSG_DONE, 2, seq, &code.to_ne_bytes())
    }

    fn error(seq: u32, code: i32) -> Vec<u8> {
        // The error code, then the header of the request it answers.
        let mut payload = code.to_ne_bytes().to_vec();
        payload.extend_from_slice(&message(42, 0x301, seq, &[])[..16]);
        message(NLMSG_ERROR, 0, seq, &payload)
    }

    /// An htb class 1:`minor` under 1:100 with the given stats attributes.
    fn htb_class(seq: u32, ifindex: u32, minor: u32, stats: &[Vec<u8>]) -> Vec<u8> {
        let p = htb::ClassParams::new(Rate(8000), Rate(80_000), 1600);
        let opt = htb::htb_opt(&p, &htb::Psched::HIGH_RES, htb::XmitRounding::RoundUp);
        let mut attrs = vec![
            nla(TCA_KIND, b"htb\0"),
            nla(htb::TCA_OPTIONS, &nla(htb::TCA_HTB_PARMS, &opt.to_bytes())),
        ];
        attrs.extend_from_slice(stats);
        message(
            RTM_NEWTCLASS,
            2,
            seq,
            &tcmsg(ifindex, 0x1_0000 | minor, 0x1_0100, &attrs),
        )
    }

    /// `TCA_STATS2` with a basic counter of `bytes`.
    fn stats2(bytes: u64) -> Vec<u8> {
        let mut basic = bytes.to_ne_bytes().to_vec();
        basic.extend_from_slice(&[7, 0, 0, 0, 0, 0, 0, 0]);
        nla(7, &nla(1, &basic))
    }

    // --- what the kernel sent

    #[test]
    fn reads_the_kernel_buffers_one_by_one() {
        let mut d = ClassDump::new(seq_of(CLASSES[0]), LO);
        let feeds: Vec<_> = CLASSES.iter().map(|b| d.feed(b)).collect();
        assert_eq!(feeds, [Ok(Feed::More), Ok(Feed::More), Ok(Feed::Done)]);
        // tbf's own class 1102:1, under 1:1102.
        assert_eq!(d.skipped(), 1);
        assert_eq!(d.finish().map(|c| c.len()), Ok(18));
    }

    /// `backlog Nb Np` and `(dropped N,` of each class tc printed, in order.
    fn printed_queues(text: &str) -> Vec<(u64, u64, u64)> {
        let mut out = Vec::new();
        let mut drops = 0;
        let mut in_htb = false;
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.first() {
                Some(&"class") => in_htb = words.get(1) == Some(&"htb"),
                Some(&"Sent") if in_htb => {
                    drops = words[6].trim_end_matches(',').parse().expect("dropped N,");
                }
                Some(&"backlog") if in_htb => {
                    let n =
                        |w: &str, unit| w.trim_end_matches(unit).parse::<u64>().expect("figure");
                    out.push((n(words[1], 'b'), n(words[2], 'p'), drops));
                }
                _ => {}
            }
        }
        out
    }

    /// Handle, parent, quantum and `Sent` bytes of each htb class tc printed.
    fn printed_classes(text: &str) -> Vec<(ClassId, Option<ClassId>, Option<u32>, u64)> {
        let handle = |w: &str| {
            let (maj, min) = w.split_once(':').expect("major:minor");
            let hex = |h: &str| u16::from_str_radix(h, 16).expect("hex");
            ClassId::new(hex(maj), hex(min))
        };
        let mut out = Vec::new();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let after = |key: &str| words.iter().position(|w| *w == key).map(|i| words[i + 1]);
            match words.first() {
                Some(&"class") if words.get(1) == Some(&"htb") => {
                    let quantum = after("quantum").map(|q| q.parse().expect("quantum"));
                    out.push((handle(words[2]), after("parent").map(handle), quantum, 0));
                }
                Some(&"Sent") => {
                    if let Some(last) = out.last_mut() {
                        last.3 = words[1].parse().expect("Sent N");
                    }
                }
                _ => {}
            }
        }
        out
    }

    #[test]
    fn class_dump_says_what_tc_printed() {
        let decoded = class_dump(&CLASSES).expect("the kernel's dump decodes");
        let printed = printed_classes(CLASSES_TXT);
        assert_eq!(decoded.len(), printed.len());
        let queues = printed_queues(CLASSES_TXT);
        for ((d, p), (backlog, qlen, drops)) in decoded.iter().zip(&printed).zip(queues) {
            let c = &d.class;
            assert_eq!((c.id, c.parent, c.quantum, c.sent.0), *p);
            let s = d.stats;
            assert_eq!(
                (s.backlog.0, s.qlen.0, s.drops.0),
                (backlog, qlen, drops),
                "{}",
                c.id
            );
        }
    }

    #[test]
    fn class_dump_has_exact_64_bit_rates_and_the_backlog() {
        let decoded = class_dump(&CLASSES).expect("decodes");
        let find = |minor| {
            decoded
                .iter()
                .find(|d| d.class.id == ClassId::new(1, minor))
                .expect("class present")
        };
        let root = find(0x1);
        assert_eq!(root.class.parent, None);
        assert_eq!(
            (root.htb.rate, root.htb.ceil),
            (Rate(40_000_000_000), Rate(40_000_000_000))
        );
        assert_eq!(find(0x20).htb.ceil, Rate(40_000_000_000));
        let slice = find(0x1101);
        assert_eq!(slice.class.ceil, Rate(21_216));
        assert_eq!(slice.leaf, Some(ClassId::new(0x1101, 0)));
        assert_eq!(slice.class.sent, Bytes(3126));
        assert_eq!(
            (slice.stats.qlen, slice.stats.drops),
            (Packets(4), Packets(13))
        );
        // Interior classes: no quantum, no leaf, as tc shows them.
        assert_eq!((find(0x100).class.quantum, find(0x100).leaf), (None, None));
    }

    fn render_classes(classes: &[DumpedClass]) -> String {
        let mut out = String::new();
        for d in classes {
            let c = &d.class;
            let parent = c
                .parent
                .map_or_else(|| "root".to_string(), |p| format!("parent {p}"));
            let leaf = d.leaf.map_or_else(String::new, |l| format!(" leaf {l}"));
            let _ = writeln!(
                out,
                "{} {parent}{leaf} level {} rate {} ceil {} quantum {} buffer {} cbuffer {} \
                 sent {}b {}p backlog {}b {}p drops {}",
                c.id,
                d.htb.level,
                d.htb.rate.0,
                d.htb.ceil.0,
                d.htb.quantum,
                d.htb.buffer.0,
                d.htb.cbuffer.0,
                d.stats.sent.0,
                d.stats.packets.0,
                d.stats.backlog.0,
                d.stats.qlen.0,
                d.stats.drops.0,
            );
        }
        out
    }

    #[test]
    fn class_dump_snapshot() {
        insta::assert_snapshot!(render_classes(&class_dump(&CLASSES).expect("decodes")));
    }

    #[test]
    fn qdisc_dump_says_what_tc_printed() {
        let decoded = qdisc_dump(&QDISCS).expect("the kernel's dump decodes");
        let printed: Vec<(String, String, String)> = QDISCS_TXT
            .lines()
            .filter(|l| l.starts_with("qdisc "))
            .map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                let parent = if w[3] == "root" { "root" } else { w[4] };
                (w[1].to_string(), w[2].to_string(), parent.to_string())
            })
            .collect();
        let ours: Vec<(String, String, String)> = decoded
            .iter()
            .map(|q| {
                let handle = format!("{:x}:", q.handle.major);
                let parent = q
                    .parent
                    .map_or_else(|| "root".to_string(), |p| p.to_string());
                (q.kind.clone(), handle, parent)
            })
            .collect();
        // tc prints ingress's parent as ffff:fff1, and a minor 0 as `1:`.
        assert_eq!(ours, printed);
        let root = &decoded[0];
        assert_eq!(
            (root.kind.as_str(), root.parent, root.htb_default()),
            ("htb", None, Some(0x1fff))
        );
        assert_eq!(root.htb.and_then(|h| h.direct_qlen), Some(1000));
        let stats = root.stats.expect("counters");
        assert_eq!(
            (stats.sent, stats.backlog, stats.qlen, stats.drops),
            (Bytes(20816), Bytes(10420), Packets(10), Packets(13))
        );
    }

    #[test]
    fn qdisc_dump_snapshot() {
        let mut out = String::new();
        for q in qdisc_dump(&QDISCS).expect("decodes") {
            let parent = q
                .parent
                .map_or_else(|| "root".to_string(), |p| format!("parent {p}"));
            let default = q
                .htb_default()
                .map_or_else(String::new, |m| format!(" default {m:x}"));
            let s = q.stats.unwrap_or_default();
            let _ = writeln!(
                out,
                "{} {:x}: {parent}{default} sent {}b {}p backlog {}b {}p drops {}",
                q.kind, q.handle.major, s.sent.0, s.packets.0, s.backlog.0, s.qlen.0, s.drops.0
            );
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn the_whole_dump_in_one_buffer_is_the_same_dump() {
        let whole = CLASSES.concat();
        assert_eq!(class_dump(&[&whole]), class_dump(&CLASSES));
    }

    // --- when to dump again

    #[test]
    fn dump_intr_on_any_message_means_dump_again() {
        let mut second = CLASSES[1].to_vec();
        second[6] |= 0x10; // NLM_F_DUMP_INTR on its first message
        assert_eq!(
            class_dump(&[CLASSES[0], &second, CLASSES[2]]),
            Err(DumpError::Interrupted)
        );
        let mut end = CLASSES[2].to_vec();
        end[6] |= 0x10; // only on NLMSG_DONE
        assert_eq!(
            class_dump(&[CLASSES[0], CLASSES[1], &end]),
            Err(DumpError::Interrupted)
        );
        let mut qend = QDISCS[1].to_vec();
        qend[6] |= 0x10;
        assert_eq!(qdisc_dump(&[QDISCS[0], &qend]), Err(DumpError::Interrupted));
    }

    #[test]
    fn a_class_seen_twice_means_dump_again() {
        assert_eq!(
            class_dump(&[CLASSES[0], CLASSES[0], CLASSES[1], CLASSES[2]]),
            Err(DumpError::Interrupted)
        );
        assert_eq!(
            qdisc_dump(&[QDISCS[0], QDISCS[0], QDISCS[1]]),
            Err(DumpError::Interrupted)
        );
    }

    // --- the kernel's errors

    #[test]
    fn kernel_errors_carry_the_errno() {
        let seq = 7;
        let refused = class_dump(&[&error(seq, -19)]);
        assert_eq!(refused, Err(DumpError::Kernel(19)));
        assert!(refused.unwrap_err().to_string().contains("No such device"));
        // A dump that failed half-way ends in NLMSG_DONE with the errno.
        let half = [htb_class(seq, LO, 0x1101, &[stats2(5)]), done(seq, -90)].concat();
        assert_eq!(class_dump(&[&half]), Err(DumpError::Kernel(90)));
        assert_eq!(qdisc_dump(&[&error(seq, -1)]), Err(DumpError::Kernel(1)));
    }

    // --- what is not a dump

    fn malformed(result: Result<Vec<DumpedClass>, DumpError>, want: &str) {
        match result {
            Err(DumpError::Malformed(m)) => {
                assert!(m.contains(want), "{m:?} does not say {want:?}");
            }
            other => panic!("expected Malformed({want}), got {other:?}"),
        }
    }

    #[test]
    fn bytes_that_are_not_this_dump_are_errors() {
        let seq = seq_of(CLASSES[0]);
        malformed(class_dump(&[&CLASSES[0][..100]]), "netlink framing");
        malformed(class_dump(&[CLASSES[0], CLASSES[1]]), "before NLMSG_DONE");
        let mut wrong_seq = CLASSES[1].to_vec();
        wrong_seq[8] ^= 1;
        malformed(
            class_dump(&[CLASSES[0], &wrong_seq, CLASSES[2]]),
            "sequence",
        );
        let trailing = [CLASSES[2], CLASSES[1]].concat();
        malformed(class_dump(&[CLASSES[0], &trailing]), "after the end");
        let ack = error(seq, 0);
        malformed(class_dump(&[&ack]), "ACK");
        let other = message(16, 2, seq, &[0; 16]); // RTM_NEWLINK
        malformed(class_dump(&[&other]), "unexpected message type 16");
        let foreign = [htb_class(seq, 2, 0x1101, &[stats2(5)]), done(seq, 0)].concat();
        malformed(class_dump(&[&foreign]), "device 2");
        let no_counter = [htb_class(seq, LO, 0x1101, &[]), done(seq, 0)].concat();
        malformed(class_dump(&[&no_counter]), "no byte counter");
    }

    #[test]
    fn an_error_sticks() {
        let mut d = ClassDump::new(seq_of(CLASSES[0]), LO);
        assert!(d.feed(&CLASSES[0][..100]).is_err());
        assert!(d.feed(CLASSES[1]).is_err(), "later buffers fail too");
        assert!(matches!(d.finish(), Err(DumpError::Malformed(_))));
    }

    #[test]
    fn legacy_stats_stand_in_for_stats2() {
        let seq = 9;
        let mut legacy = vec![0u8; 40];
        legacy[..8].copy_from_slice(&123_456u64.to_ne_bytes());
        legacy[32..36].copy_from_slice(&2u32.to_ne_bytes()); // backlog
        let bytes = [htb_class(seq, LO, 0x1101, &[nla(3, &legacy)]), done(seq, 0)].concat();
        let classes = class_dump(&[&bytes]).expect("decodes");
        assert_eq!(classes[0].class.sent, Bytes(123_456));
        assert_eq!(classes[0].stats.backlog, Bytes(2));
    }

    #[test]
    fn a_message_netlink_packet_route_refuses_is_skipped_unless_it_is_htb() {
        let seq = 11;
        // fq_codel's TCA_XSTATS must hold at least its 4-byte type.
        let fq = message(
            RTM_NEWTCLASS,
            2,
            seq,
            &tcmsg(
                LO,
                0x8001_0001,
                0x8001_0000,
                &[nla(TCA_KIND, b"fq_codel\0"), nla(4, &[1, 0])],
            ),
        );
        let mut d = ClassDump::new(seq, LO);
        let bytes = [
            htb_class(seq, LO, 0x1101, &[stats2(5)]),
            fq.clone(),
            done(seq, 0),
        ]
        .concat();
        assert_eq!(d.feed(&bytes), Ok(Feed::Done));
        assert_eq!(d.skipped(), 1);
        assert_eq!(d.finish().map(|c| c.len()), Ok(1));
        // The same flaw in an htb class is an error: bwmon needs that class.
        let bad_htb = [
            htb_class(seq, LO, 0x1101, &[stats2(5), nla(3, &[0; 12])]),
            done(seq, 0),
        ]
        .concat();
        malformed(class_dump(&[&bad_htb]), "class 1:1101");
        // A qdisc it refuses still shows its kind and place.
        let q = message(
            RTM_NEWQDISC,
            2,
            seq,
            &tcmsg(
                LO,
                0x8001_0000,
                0xffff_ffff,
                &[nla(TCA_KIND, b"fq_codel\0"), nla(4, &[1, 0])],
            ),
        );
        let qdiscs = qdisc_dump(&[&[q, done(seq, 0)].concat()]).expect("decodes");
        assert_eq!(qdiscs[0].kind, "fq_codel");
        assert_eq!(
            (qdiscs[0].handle, qdiscs[0].parent, qdiscs[0].stats),
            (ClassId::new(0x8001, 0), None, None)
        );
    }

    /// The messages of the fixture's class dump, one by one (`NLMSG_DONE`
    /// left out).
    fn class_messages() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for buf in CLASSES {
            let mut off = 0;
            while off < buf.len() {
                let frame = NetlinkBuffer::new_checked(&buf[off..]).expect("the kernel's framing");
                let len = frame.length() as usize;
                if frame.message_type() == RTM_NEWTCLASS {
                    out.push(buf[off..off + len].to_vec());
                }
                off += len.next_multiple_of(4);
            }
        }
        out
    }

    #[test]
    fn every_htb_class_the_kernel_sent_is_read_in_place() {
        let messages = class_messages();
        let in_place: Vec<bool> = messages
            .iter()
            .map(|m| read_htb(&m[NLMSG_HDRLEN..]).is_some())
            .collect();
        // All but tbf's own class 1102:1, which goes to netlink-packet-route.
        assert_eq!(in_place.iter().filter(|&&b| b).count(), 18);
        assert_eq!(in_place.len(), 19);
    }

    /// One message and the end of its dump, through the in-place reader and
    /// through netlink-packet-route alone.
    fn both_ways(message: &[u8]) -> [(Result<Vec<DumpedClass>, DumpError>, usize); 2] {
        let seq = seq_of(message);
        let bytes = [message, &done(seq, 0)].concat();
        [ClassDump::detailed(seq, LO), ClassDump::reference(seq, LO)].map(|mut d| {
            let _ = d.feed(&bytes);
            let skipped = d.skipped();
            (d.finish_detailed(), skipped)
        })
    }

    #[test]
    fn the_in_place_reader_answers_as_netlink_packet_route() {
        let seq = 21;
        let mut messages = class_messages();
        let mut legacy = vec![0u8; 40];
        legacy[..8].copy_from_slice(&99u64.to_ne_bytes());
        let queue = nla(
            3,
            &[1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        );
        for extra in [
            vec![stats2(5)],
            vec![nla(3, &legacy)],
            vec![nla(3, &legacy), stats2(5)],
            vec![stats2(5), nla(7, &queue), nla(11, &[0; 4]), nla(12, &[1])],
            vec![stats2(5), nla(7, &nla(7, &[0; 16]))],
            vec![stats2(5), nla(TCA_KIND, b"htb\0")],
            // Each counter one byte shorter than netlink-packet-route takes,
            // and each exact-size attribute the wrong size.
            vec![nla(7, &nla(1, &[0; 15]))],
            vec![stats2(5), nla(7, &nla(3, &[0; 19]))],
            vec![stats2(5), nla(7, &nla(7, &[0; 15]))],
            vec![nla(3, &legacy[..39])],
            vec![stats2(5), nla(11, &[0; 8])],
            vec![stats2(5), nla(12, &[0; 4])],
            vec![stats2(5), nla(12, &[])],
        ] {
            messages.push(htb_class(seq, LO, 0x1101, &extra));
        }
        // `TCA_KIND` without its NUL, and with two.
        let mut bare = htb_class(seq, LO, 0x1101, &[stats2(5)]);
        bare[NLMSG_HDRLEN + TCMSG_LEN] = 7;
        let twice = message(
            RTM_NEWTCLASS,
            2,
            seq,
            &tcmsg(
                LO,
                0x1_1101,
                0x1_0100,
                &[nla(TCA_KIND, b"htb\0\0"), stats2(5)],
            ),
        );
        messages.extend([bare, twice]);
        let mut differ = Vec::new();
        for (n, m) in messages.iter().enumerate() {
            let [fast, reference] = both_ways(m);
            assert_eq!(fast, reference, "message {n} as it is");
            // Every byte after the netlink header, set to a few values.
            for at in NLMSG_HDRLEN..m.len() {
                for v in [
                    0,
                    1,
                    3,
                    0x7f,
                    0xff,
                    m[at] ^ 0x01,
                    m[at] ^ 0x80,
                    m[at].wrapping_add(4),
                ] {
                    let mut bent = m.clone();
                    bent[at] = v;
                    let [fast, reference] = both_ways(&bent);
                    if fast != reference {
                        differ.push((n, at, v, fast, reference));
                    }
                }
            }
            // Cut short, the length fields left as they were.
            for len in NLMSG_HDRLEN..m.len() {
                let mut cut = m[..len].to_vec();
                cut[..4].copy_from_slice(&u32::try_from(len).expect("small").to_ne_bytes());
                let [fast, reference] = both_ways(&cut);
                if fast != reference {
                    differ.push((n, len, 0, fast, reference));
                }
            }
        }
        assert!(
            differ.is_empty(),
            "{} differences, first {:?}",
            differ.len(),
            differ.first()
        );
    }

    #[test]
    fn the_seen_set_tells_every_class_apart() {
        let mut seen = Seen::new();
        for minor in [0, 1, 63, 64, 0x1fff, 0xffff] {
            assert!(seen.insert(ClassId::new(1, minor)), "1:{minor:x}");
            assert!(!seen.insert(ClassId::new(1, minor)), "1:{minor:x} twice");
        }
        for id in [
            ClassId::new(0, 1),
            ClassId::new(2, 1),
            ClassId::new(0xffff, 0xffff),
        ] {
            assert!(seen.insert(id), "{id}");
            assert!(!seen.insert(id), "{id} twice");
        }
        assert!(!seen.insert(ClassId::new(1, 1)));
        assert!(seen.insert(ClassId::new(1, 2)));
    }

    #[test]
    fn qdiscs_of_other_devices_are_left_out() {
        let seq = 13;
        let other = message(
            RTM_NEWQDISC,
            2,
            seq,
            &tcmsg(2, 0, 0xffff_ffff, &[nla(TCA_KIND, b"noqueue\0")]),
        );
        let ours = message(
            RTM_NEWQDISC,
            2,
            seq,
            &tcmsg(LO, 0, 0xffff_ffff, &[nla(TCA_KIND, b"noqueue\0")]),
        );
        let qdiscs = qdisc_dump(&[&[other, ours, done(seq, 0)].concat()]).expect("decodes");
        assert_eq!(qdiscs.len(), 1);
        assert_eq!(
            (qdiscs[0].kind.as_str(), qdiscs[0].parent),
            ("noqueue", None)
        );
    }
}
