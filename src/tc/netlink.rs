//! bwmon's one connection to the kernel's traffic control: a `NETLINK_ROUTE`
//! socket that reads a dump (classes or qdiscs of one device) and sends a run's
//! changes as one batch of acknowledged messages (SPEC §4 "Reading",
//! "Writing"). It owns the socket, sequence numbers and acknowledgements;
//! what the messages say is `encode`'s and `decode`'s business.
//!
//! The kernel handles every message of a `send` one after another before the
//! call returns and queues one ack per message; it rolls nothing back. A
//! batch is therefore sent in chunks small enough that their acks always fit
//! the socket's receive buffer (an ack that does not fit is dropped, and the
//! change it answers would be unknown), and each error ack is mapped back to
//! its change by sequence number.

use crate::error::Fatal;
use crate::wire::{HEADER, Messages, align, u16_at, u32_at};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::io;

/// Netlink's own message types and flags (include/uapi/linux/netlink.h).
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
/// The extended ack's human-readable message (`NLMSGERR_ATTR_MSG`).
const NLMSGERR_ATTR_MSG: u16 = 1;

/// Changes sent per `send`: their acks (one skb each, under 1 KiB of receive
/// buffer apiece) stay well within the default 208 KiB receive buffer.
const CHUNK: usize = 64;
/// Room for one datagram of a dump (the kernel fills up to 32 KiB).
const RECV_BUF: usize = 64 * 1024;

/// What the kernel said about one change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The errno, positive.
    pub errno: i32,
    /// The extended ack's message, when the kernel gave one
    /// ("Specified class not found").
    pub message: Option<String>,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let os = io::Error::from_raw_os_error(self.errno);
        match &self.message {
            Some(m) => write!(f, "{m} ({os})"),
            None => write!(f, "{os}"),
        }
    }
}

/// One acknowledgement read back: the sequence number it answers, and the
/// refusal if it is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    pub seq: u32,
    pub refusal: Option<Refusal>,
}

/// A socket bound to one device's index.
pub struct Rtnl {
    socket: Socket,
    pub ifindex: u32,
    pub dev: String,
    seq: u32,
}

impl Rtnl {
    /// Opens the socket and resolves the device.
    pub fn open(dev: &str) -> Result<Rtnl, Fatal> {
        let ifindex = nix::net::if_::if_nametoindex(dev).map_err(|e| {
            Fatal::Unavailable(format!(
                "no network device {dev} ({e}): set `dev:` in the config or pass --dev"
            ))
        })?;
        let unavailable =
            |what: &str, e: io::Error| Fatal::Unavailable(format!("rtnetlink {what}: {e}"));
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(|e| unavailable("socket", e))?;
        socket.bind_auto().map_err(|e| unavailable("bind", e))?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(|e| unavailable("connect", e))?;
        // Errors name their cause ("Specified class not found"); acks carry
        // only the request's header, not the whole request back.
        let _ = socket.set_ext_ack(true);
        let _ = socket.set_cap_ack(true);
        Ok(Rtnl {
            socket,
            ifindex,
            dev: dev.to_string(),
            seq: 0,
        })
    }

    /// The next `n` sequence numbers; the first is returned.
    pub fn reserve_seq(&mut self, n: usize) -> u32 {
        let first = self.seq.wrapping_add(1);
        self.seq = self.seq.wrapping_add(u32::try_from(n).unwrap_or(u32::MAX));
        first
    }

    /// Sends one dump request and hands every datagram of the answer to
    /// `feed`, which returns `true` once it has seen the end of the dump.
    pub fn dump(
        &mut self,
        request: &[u8],
        feed: &mut dyn FnMut(&[u8]) -> Result<bool, Fatal>,
    ) -> Result<(), Fatal> {
        // One buffer, received into again once `feed` is done with it.
        let spare = std::cell::RefCell::new(Vec::new());
        self.dump_buffers(request, &mut || spare.take(), &mut |buf| {
            let end = feed(&buf);
            spare.replace(buf);
            end
        })
    }

    /// As [`Rtnl::dump`], each datagram received into a buffer from `fresh`
    /// and handed over whole to `each`: for another thread to decode.
    pub fn dump_buffers(
        &mut self,
        request: &[u8],
        fresh: &mut dyn FnMut() -> Vec<u8>,
        each: &mut dyn FnMut(Vec<u8>) -> Result<bool, Fatal>,
    ) -> Result<(), Fatal> {
        self.socket
            .send(request, 0)
            .map_err(|e| self.io_error("sending a dump request", &e))?;
        loop {
            let mut buf = fresh();
            buf.clear();
            buf.reserve(RECV_BUF);
            self.socket
                .recv(&mut buf, 0)
                .map_err(|e| self.io_error("reading a dump", &e))?;
            if each(buf)? {
                return Ok(());
            }
        }
    }

    /// Sends `messages` (each encoded with `NLM_F_ACK` and sequence number
    /// `first_seq + i`) and returns, per message, the kernel's refusal if any.
    /// A socket that fails mid-batch (an ack lost to a full receive buffer,
    /// say) leaves the changes it did not acknowledge unknown: each is
    /// reported refused, so its slice is named and retried next run.
    pub fn send_batch(&mut self, messages: &[Vec<u8>], first_seq: u32) -> Vec<Option<Refusal>> {
        let mut result: Vec<Option<Option<Refusal>>> = vec![None; messages.len()];
        let mut buf: Vec<u8> = Vec::with_capacity(RECV_BUF);
        let mut broken: Option<io::Error> = None;
        'chunks: for (c, chunk) in messages.chunks(CHUNK).enumerate() {
            let start = c * CHUNK;
            let out: Vec<u8> = chunk.concat();
            if let Err(e) = self.socket.send(&out, 0) {
                broken = Some(e);
                break;
            }
            let mut answered = 0;
            while answered < chunk.len() {
                buf.clear();
                if let Err(e) = self.socket.recv(&mut buf, 0) {
                    broken = Some(e);
                    break 'chunks;
                }
                for ack in parse_acks(&buf) {
                    let i = ack.seq.wrapping_sub(first_seq) as usize;
                    if (start..start + chunk.len()).contains(&i) && result[i].is_none() {
                        result[i] = Some(ack.refusal);
                        answered += 1;
                    }
                }
            }
        }
        let unknown = |e: &io::Error| Refusal {
            errno: e.raw_os_error().unwrap_or(nix::libc::EIO),
            message: Some(format!("not acknowledged, the socket failed: {e}")),
        };
        result
            .into_iter()
            .map(|r| match (r, &broken) {
                (Some(answer), _) => answer,
                (None, Some(e)) => Some(unknown(e)),
                (None, None) => Some(unknown(&io::Error::from_raw_os_error(nix::libc::EIO))),
            })
            .collect()
    }

    fn io_error(&self, what: &str, e: &io::Error) -> Fatal {
        let hint = if e.raw_os_error() == Some(nix::libc::EPERM) {
            ": bwmon needs CAP_NET_ADMIN (run it as root)"
        } else {
            ""
        };
        Fatal::Unavailable(format!("rtnetlink on {}: {what}: {e}{hint}", self.dev))
    }
}

/// The acks in one datagram; anything else in it is skipped. Pure, so the
/// framing is tested without a kernel.
pub fn parse_acks(buf: &[u8]) -> Vec<Ack> {
    Messages::new(buf)
        .filter(|m| m.kind == NLMSG_ERROR && m.body.len() >= 4)
        .map(|m| {
            let b = m.body;
            let code = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
            let refusal = (code != 0).then(|| Refusal {
                errno: code.saturating_neg(),
                message: if m.flags & NLM_F_ACK_TLVS == 0 {
                    None
                } else {
                    ext_ack_message(b, m.flags & NLM_F_CAPPED != 0)
                },
            });
            Ack {
                seq: m.seq,
                refusal,
            }
        })
        .collect()
}

/// Whether a datagram holds the end of the dump requested with `seq`
/// (`NLMSG_DONE`, or the error that ends it): what a thread that only
/// receives needs to know to stop.
pub fn ends_dump(buf: &[u8], seq: u32) -> bool {
    let mut messages = Messages::new(buf);
    let end = messages
        .by_ref()
        .any(|m| (m.kind == NLMSG_DONE || m.kind == NLMSG_ERROR) && m.seq == seq);
    // Malformed: nothing more will make sense; the decoder says why.
    end || messages.rest.len() >= HEADER
}

/// The `NLMSGERR_ATTR_MSG` string after the echoed request: its header only
/// when the ack says `NLM_F_CAPPED`, else the whole request.
fn ext_ack_message(body: &[u8], capped: bool) -> Option<String> {
    let echoed = if capped {
        HEADER
    } else {
        align(u32_at(body.get(4..)?, 0) as usize)
    };
    let mut tlvs = body.get(4 + echoed..)?;
    while tlvs.len() >= 4 {
        let len = usize::from(u16_at(tlvs, 0));
        let kind = u16_at(tlvs, 2) & 0x3fff;
        if len < 4 || len > tlvs.len() {
            break;
        }
        if kind == NLMSGERR_ATTR_MSG {
            let text = &tlvs[4..len];
            let text = text.split(|b| *b == 0).next().unwrap_or(text);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        tlvs = &tlvs[align(len).min(tlvs.len())..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: usize, kind: u16, flags: u16, seq: u32) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        v.extend_from_slice(&kind.to_ne_bytes());
        v.extend_from_slice(&flags.to_ne_bytes());
        v.extend_from_slice(&seq.to_ne_bytes());
        v.extend_from_slice(&0u32.to_ne_bytes());
        v
    }

    /// An ack as a kernel with `NETLINK_CAP_ACK` and `NETLINK_EXT_ACK` sends it.
    fn ack(seq: u32, code: i32, msg: Option<&str>) -> Vec<u8> {
        let mut body = code.to_ne_bytes().to_vec();
        body.extend(header(36, 40, 5, seq)); // the echoed request header
        let mut flags = 0x100; // NLM_F_CAPPED
        if let Some(m) = msg {
            flags |= NLM_F_ACK_TLVS;
            let mut text = m.as_bytes().to_vec();
            text.push(0);
            let len = 4 + text.len();
            body.extend_from_slice(&u16::try_from(len).unwrap().to_ne_bytes());
            body.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
            body.extend(text);
            while !body.len().is_multiple_of(4) {
                body.push(0);
            }
        }
        let mut v = header(HEADER + body.len(), NLMSG_ERROR, flags, seq);
        v.extend(body);
        v
    }

    #[test]
    fn acks_and_refusals_by_sequence() {
        let mut buf = ack(7, 0, None);
        buf.extend(ack(8, -17, Some("Exclusivity flag on, cannot modify")));
        buf.extend(ack(9, -2, None));
        let acks = parse_acks(&buf);
        assert_eq!(acks.len(), 3);
        assert_eq!(
            acks[0],
            Ack {
                seq: 7,
                refusal: None
            }
        );
        let r = acks[1].refusal.clone().expect("refused");
        assert_eq!(r.errno, 17);
        assert_eq!(
            r.message.as_deref(),
            Some("Exclusivity flag on, cannot modify")
        );
        assert!(
            r.to_string()
                .starts_with("Exclusivity flag on, cannot modify (File exists"),
            "{r}"
        );
        assert_eq!(acks[2].refusal.as_ref().map(|r| r.errno), Some(2));
    }

    #[test]
    fn garbage_is_not_an_ack() {
        assert!(parse_acks(&[]).is_empty());
        assert!(parse_acks(&[0xff; 15]).is_empty());
        let mut short = ack(1, -1, Some("x"));
        short.truncate(20);
        assert!(parse_acks(&short).is_empty());
        // A length field beyond the buffer stops the walk.
        let mut lying = ack(1, 0, None);
        lying[0] = 0xff;
        assert!(parse_acks(&lying).is_empty());
    }

    #[test]
    fn the_end_of_a_dump_is_found_by_its_sequence_number() {
        let mut more = header(20, 44, 2, 3);
        more.extend_from_slice(&[0; 4]);
        assert!(!ends_dump(&more, 3));
        let mut done = more.clone();
        done.extend(header(20, NLMSG_DONE, 2, 3));
        done.extend_from_slice(&0i32.to_ne_bytes());
        assert!(ends_dump(&done, 3));
        assert!(!ends_dump(&done, 4), "another request's end");
        assert!(ends_dump(&ack(3, -1, None), 3), "an error ends it too");
        assert!(
            ends_dump(&[0xff; 16], 3),
            "garbage: stop and let the decoder say"
        );
    }

    #[test]
    fn a_dump_end_is_skipped() {
        let mut buf = header(20, NLMSG_DONE, 2, 3);
        buf.extend_from_slice(&0i32.to_ne_bytes());
        buf.extend(ack(4, 0, None));
        assert_eq!(
            parse_acks(&buf),
            [Ack {
                seq: 4,
                refusal: None
            }]
        );
    }
}
