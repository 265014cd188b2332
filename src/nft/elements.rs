//! Reading one map's keys from `nf_tables` over a `NETLINK_NETFILTER` socket
//! (`NFT_MSG_GETSETELEM`, a dump): what `status` asks on every run to tell
//! which slices are classified. In-process because an `nft -j list map`
//! process costs more than the whole class dump at thousands of slices
//! (BENCHMARKS.md); writes stay with `nft -f -`, one transaction a run.
//!
//! Only the keys are read: the map's values are bwmon's own class ids, and
//! whether a slice has an entry is the question. The framing is plain
//! netlink (`struct nfgenmsg`, then attributes), decoded here by hand because
//! the rust-netlink crates have no `nf_tables` messages.

use super::Unreadable;
use crate::wire::{HEADER, Messages, align, u16_at};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_NETFILTER};
use std::collections::BTreeSet;
use std::io;

/// `include/uapi/linux/netfilter/nfnetlink.h` and `nf_tables.h`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFPROTO_INET: u8 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_DATA_VALUE: u16 = 1;

const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_DUMP_INTR: u16 = 0x10;
/// `struct nfgenmsg`: family, version, resource id.
const NFGEN: usize = 4;
/// Attribute type bits that are flags (`NLA_F_NESTED`, `NLA_F_NET_BYTEORDER`).
const NLA_TYPE_MASK: u16 = 0x3fff;
const SEQ: u32 = 1;
const ATTEMPTS: usize = 3;

/// The keys of map `set` in table `inet <table>`; an empty set when the table
/// or the map does not exist (nothing classifies).
pub fn map_keys(table: &str, set: &str) -> Result<BTreeSet<u16>, Unreadable> {
    let unreadable = |what: &str, e: &io::Error| Unreadable {
        message: format!("nf_tables netlink {what}: {e}"),
        not_permitted: e.raw_os_error() == Some(nix::libc::EPERM),
    };
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(|e| unreadable("socket", &e))?;
    socket.bind_auto().map_err(|e| unreadable("bind", &e))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(|e| unreadable("connect", &e))?;
    let request = request(table, set);
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    for _ in 0..ATTEMPTS {
        socket
            .send(&request, 0)
            .map_err(|e| unreadable("send", &e))?;
        let mut dump = Dump::default();
        loop {
            buf.clear();
            socket
                .recv(&mut buf, 0)
                .map_err(|e| unreadable("recv", &e))?;
            if dump.feed(&buf) {
                break;
            }
        }
        match dump.end {
            Some(End::Done) if !dump.interrupted => return Ok(dump.keys),
            Some(End::Done) => log::debug!("nf_tables element dump interrupted, reading again"),
            Some(End::Error(errno)) if errno == nix::libc::ENOENT => return Ok(BTreeSet::new()),
            Some(End::Error(errno)) => {
                return Err(unreadable(
                    &format!("listing map {set} of table inet {table}"),
                    &io::Error::from_raw_os_error(errno),
                ));
            }
            None => unreachable!("feed returns true only at an end"),
        }
    }
    Err(Unreadable {
        message: format!("the nf_tables dump of map {set} kept being interrupted"),
        not_permitted: false,
    })
}

/// The `NFT_MSG_GETSETELEM` dump request for one set of an inet table.
pub fn request(table: &str, set: &str) -> Vec<u8> {
    let mut m = vec![0u8; HEADER];
    m.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]);
    for (kind, name) in [
        (NFTA_SET_ELEM_LIST_TABLE, table),
        (NFTA_SET_ELEM_LIST_SET, set),
    ] {
        let len = 4 + name.len() + 1;
        m.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(name.as_bytes());
        m.push(0);
        m.resize(align(m.len()), 0);
    }
    let len = u32::try_from(m.len()).unwrap_or(u32::MAX);
    m[0..4].copy_from_slice(&len.to_ne_bytes());
    let kind = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM;
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    m[8..12].copy_from_slice(&SEQ.to_ne_bytes());
    m
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    Done,
    /// The errno, positive.
    Error(i32),
}

/// The answer to one dump request, fed datagram by datagram.
#[derive(Debug, Default)]
pub struct Dump {
    pub keys: BTreeSet<u16>,
    pub end: Option<End>,
    pub interrupted: bool,
}

impl Dump {
    /// Takes one datagram; `true` once the dump has ended. Malformed bytes
    /// end it as an I/O error (EIO) rather than a guess.
    pub fn feed(&mut self, buf: &[u8]) -> bool {
        let mut messages = Messages::new(buf);
        for m in messages.by_ref() {
            self.interrupted |= m.flags & NLM_F_DUMP_INTR != 0;
            match m.kind {
                NLMSG_DONE => {
                    self.end = Some(End::Done);
                    return true;
                }
                NLMSG_ERROR => {
                    let code = m.body.get(..4).map_or(-nix::libc::EIO, |b| {
                        i32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                    });
                    self.end = Some(if code == 0 {
                        End::Done
                    } else {
                        End::Error(code.saturating_neg())
                    });
                    return true;
                }
                _ => {
                    if !m.body.get(NFGEN..).is_some_and(|a| self.elements(a)) {
                        self.end = Some(End::Error(nix::libc::EIO));
                        return true;
                    }
                }
            }
        }
        if !messages.rest.is_empty() {
            self.end = Some(End::Error(nix::libc::EIO));
            return true;
        }
        false
    }

    /// The keys of one message; `false` when its attributes do not add up,
    /// so that no half-read map is taken for the map.
    fn elements(&mut self, attrs: &[u8]) -> bool {
        let mut lists = Attrs::new(attrs);
        for (kind, list) in &mut lists {
            if kind != NFTA_SET_ELEM_LIST_ELEMENTS {
                continue;
            }
            let mut elems = Attrs::new(list);
            for (kind, elem) in &mut elems {
                if kind != NFTA_LIST_ELEM {
                    continue;
                }
                let key = Attrs::new(elem)
                    .find(|(k, _)| *k == NFTA_SET_ELEM_KEY)
                    .and_then(|(_, key)| Attrs::new(key).find(|(k, _)| *k == NFTA_DATA_VALUE))
                    .and_then(|(_, v)| <[u8; 4]>::try_from(v).ok())
                    .map(u32::from_ne_bytes);
                match key {
                    Some(k) => {
                        // A key beyond any xid is nobody's slice.
                        if let Ok(k) = u16::try_from(k) {
                            self.keys.insert(k);
                        }
                    }
                    None => return false,
                }
            }
            if elems.bad {
                return false;
            }
        }
        !lists.bad
    }
}

/// Netlink attributes (type without its flag bits, payload); `bad` once one
/// does not fit what holds it.
struct Attrs<'a> {
    rest: &'a [u8],
    bad: bool,
}

impl<'a> Attrs<'a> {
    fn new(b: &'a [u8]) -> Self {
        Attrs {
            rest: b,
            bad: false,
        }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = (u16, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.rest;
        if b.is_empty() {
            return None;
        }
        let len = usize::from(u16_at(b, 0));
        if b.len() < 4 || len < 4 || len > b.len() {
            self.rest = &[];
            self.bad = true;
            return None;
        }
        let kind = u16_at(b, 2) & NLA_TYPE_MASK;
        self.rest = &b[align(len).min(b.len())..];
        Some((kind, &b[4..len]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::u32_at;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = u16::try_from(4 + payload.len())
            .unwrap()
            .to_ne_bytes()
            .to_vec();
        a.extend_from_slice(&kind.to_ne_bytes());
        a.extend_from_slice(payload);
        a.resize(align(a.len()), 0);
        a
    }

    fn message(kind: u16, flags: u16, body: &[u8]) -> Vec<u8> {
        let mut m = u32::try_from(HEADER + body.len())
            .unwrap()
            .to_ne_bytes()
            .to_vec();
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&SEQ.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    /// One `NFT_MSG_NEWSETELEM` message of a dump, as the kernel sends it:
    /// nested attributes flagged `NLA_F_NESTED`, keys and values in host order.
    fn elements(pairs: &[(u32, u32)]) -> Vec<u8> {
        const NESTED: u16 = 0x8000;
        let mut list = Vec::new();
        for &(key, value) in pairs {
            let mut elem = attr(
                NFTA_SET_ELEM_KEY | NESTED,
                &attr(NFTA_DATA_VALUE, &key.to_ne_bytes()),
            );
            elem.extend(attr(
                2 | NESTED,
                &attr(NFTA_DATA_VALUE, &value.to_ne_bytes()),
            ));
            list.extend(attr(NFTA_LIST_ELEM | NESTED, &elem));
        }
        let mut body = vec![NFPROTO_INET, 0, 0, 7];
        body.extend(attr(NFTA_SET_ELEM_LIST_TABLE, b"bwmon\0"));
        body.extend(attr(NFTA_SET_ELEM_LIST_SET, b"low\0"));
        body.extend(attr(NFTA_SET_ELEM_LIST_ELEMENTS | NESTED, &list));
        message((NFNL_SUBSYS_NFTABLES << 8) | 8, 2, &body)
    }

    #[test]
    fn request_names_the_table_and_the_map() {
        let r = request("bwmon", "low");
        assert_eq!(u32_at(&r, 0) as usize, r.len());
        assert_eq!(u16_at(&r, 4), 0x0a0d);
        assert_eq!(u16_at(&r, 6), NLM_F_REQUEST | NLM_F_DUMP);
        assert_eq!(r[HEADER], NFPROTO_INET);
        let attrs: Vec<_> = Attrs::new(&r[HEADER + NFGEN..]).collect();
        assert_eq!(attrs, [(1, &b"bwmon\0"[..]), (2, &b"low\0"[..])], "{r:?}");
    }

    #[test]
    fn keys_across_datagrams_until_done() {
        let mut dump = Dump::default();
        assert!(!dump.feed(&elements(&[(257, 0x1101), (4094, 0x1ffe)])));
        let mut last = elements(&[(5, 0x1005)]);
        last.extend(message(NLMSG_DONE, 2, &0i32.to_ne_bytes()));
        assert!(dump.feed(&last));
        assert_eq!(dump.end, Some(End::Done));
        assert!(!dump.interrupted);
        assert_eq!(dump.keys, [5, 257, 4094].into());
    }

    #[test]
    fn keys_beyond_an_xid_are_not_slices() {
        let mut dump = Dump::default();
        dump.feed(&elements(&[(70_000, 1), (9, 0x1009)]));
        assert_eq!(dump.keys, [9].into());
    }

    #[test]
    fn refusals_and_interruptions() {
        let mut dump = Dump::default();
        assert!(dump.feed(&message(NLMSG_ERROR, 0, &(-2i32).to_ne_bytes())));
        assert_eq!(dump.end, Some(End::Error(2)));
        let mut dump = Dump::default();
        let mut buf = elements(&[(1, 1)]);
        buf[6] |= u8::try_from(NLM_F_DUMP_INTR).unwrap();
        buf.extend(message(NLMSG_DONE, 2, &0i32.to_ne_bytes()));
        assert!(dump.feed(&buf));
        assert!(dump.interrupted);
    }

    #[test]
    fn garbage_ends_the_dump_as_an_error() {
        for bytes in [&[0xffu8; 20][..], &[1, 2, 3][..]] {
            let mut dump = Dump::default();
            assert!(dump.feed(bytes), "{bytes:?}");
            assert_eq!(dump.end, Some(End::Error(nix::libc::EIO)));
        }
        // A message cut short inside its attributes is no answer either:
        // half a map would show slices unclassified that are not.
        let mut cut = elements(&[(3, 3), (4, 4)]);
        let len = cut.len() - 8;
        cut.truncate(len);
        cut[0..4].copy_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        let mut dump = Dump::default();
        assert!(dump.feed(&cut));
        assert_eq!(dump.end, Some(End::Error(nix::libc::EIO)));
    }
}
