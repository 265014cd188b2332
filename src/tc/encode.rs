//! The rtnetlink messages bwmon sends: dump requests, and each [`Change`] of a
//! batch as the one message the kernel acts on. Pure: bytes out, no socket.
//! HTB's own options come from [`super::htb`]; the framing (header, flags,
//! handles) is here.

use super::batch::{Change, ClassVerb};
use super::htb;
use crate::classes::ClassId;
use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};

/// What a dump request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dump {
    /// Every class on the device, as `tc class show` asks.
    Classes,
    /// The classes of qdisc `major:` only. The kernel then walks that
    /// qdisc alone, not every qdisc of the device each time it fills a
    /// datagram: 4,000 leaf qdiscs cost 11 % of a dump at N = 4,000.
    ClassesOf(u16),
    Qdiscs,
}

/// One dump request for the device `ifindex`.
pub fn dump_request(what: Dump, ifindex: u32, seq: u32) -> Vec<u8> {
    let parent = match what {
        Dump::ClassesOf(major) => TcHandle { major, minor: 0 },
        Dump::Classes | Dump::Qdiscs => TcHandle::UNSPEC,
    };
    let tc = tc_message(ifindex, TcHandle::UNSPEC, parent, Vec::new());
    let payload = match what {
        Dump::Classes | Dump::ClassesOf(_) => RouteNetlinkMessage::GetTrafficClass(tc),
        Dump::Qdiscs => RouteNetlinkMessage::GetQueueDiscipline(tc),
    };
    serialize(payload, NLM_F_REQUEST | NLM_F_DUMP, seq)
}

/// The message that makes `change`, acknowledged (`NLM_F_ACK`).
pub fn change_message(change: &Change, ifindex: u32, seq: u32, clock: &htb::Psched) -> Vec<u8> {
    let kind = |k: &str| TcAttribute::Kind(k.to_string());
    let (payload, flags) = match *change {
        Change::Class {
            verb,
            parent,
            id,
            spec,
        } => {
            let params = htb::ClassParams::new(spec.rate, spec.ceil, spec.quantum);
            let options = htb::class_options_with(&params, clock, htb::XmitRounding::RoundUp);
            let attrs = vec![kind("htb"), TcAttribute::Options(options)];
            let parent = parent.map_or(TcHandle::ROOT, handle);
            let tc = tc_message(ifindex, handle(id), parent, attrs);
            let flags = match verb {
                // As `tc class add`: fail rather than change a class that exists.
                ClassVerb::Add => NLM_F_CREATE | NLM_F_EXCL,
                // As `tc class change`: fail rather than create one that does not.
                ClassVerb::Change => 0,
            };
            (RouteNetlinkMessage::NewTrafficClass(tc), flags)
        }
        Change::DeleteClass { id } => {
            let tc = tc_message(ifindex, handle(id), TcHandle::UNSPEC, Vec::new());
            (RouteNetlinkMessage::DelTrafficClass(tc), 0)
        }
        Change::Leaf { parent } => {
            let leaf = TcHandle {
                major: parent.minor,
                minor: 0,
            };
            let tc = tc_message(ifindex, leaf, handle(parent), vec![kind("pfifo")]);
            (
                RouteNetlinkMessage::NewQueueDiscipline(tc),
                NLM_F_CREATE | NLM_F_EXCL,
            )
        }
        Change::RootQdisc {
            replace,
            default_minor,
        } => {
            let attrs = vec![
                kind("htb"),
                TcAttribute::Options(htb::qdisc_init(default_minor, None)),
            ];
            let root = TcHandle { major: 1, minor: 0 };
            let tc = tc_message(ifindex, root, TcHandle::ROOT, attrs);
            let flags = if replace {
                NLM_F_CREATE | NLM_F_REPLACE
            } else {
                NLM_F_CREATE | NLM_F_EXCL
            };
            (RouteNetlinkMessage::NewQueueDiscipline(tc), flags)
        }
        Change::DeleteRoot => {
            let tc = tc_message(ifindex, TcHandle::UNSPEC, TcHandle::ROOT, Vec::new());
            (RouteNetlinkMessage::DelQueueDiscipline(tc), 0)
        }
    };
    serialize(payload, NLM_F_REQUEST | NLM_F_ACK | flags, seq)
}

fn handle(id: ClassId) -> TcHandle {
    TcHandle {
        major: id.major,
        minor: id.minor,
    }
}

fn tc_message(
    ifindex: u32,
    handle: TcHandle,
    parent: TcHandle,
    attributes: Vec<TcAttribute>,
) -> TcMessage {
    // An ifindex is a positive int in the kernel; one beyond i32 cannot exist.
    let mut tc = TcMessage::with_index(i32::try_from(ifindex).unwrap_or(i32::MAX));
    tc.header.handle = handle;
    tc.header.parent = parent;
    tc.attributes = attributes;
    tc
}

fn serialize(payload: RouteNetlinkMessage, flags: u16, seq: u32) -> Vec<u8> {
    let mut header = NetlinkHeader::default();
    header.flags = flags;
    header.sequence_number = seq;
    let mut msg = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(payload));
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `struct tcmsg` follows the 16-byte `nlmsghdr`: family and padding,
    /// then ifindex, handle, parent and info, each 4 bytes.
    fn tcmsg_field(msg: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(msg[16 + at..16 + at + 4].try_into().expect("4 bytes"))
    }

    #[test]
    fn a_class_dump_of_one_qdisc_names_it_as_the_parent() {
        let ours = dump_request(Dump::ClassesOf(1), 7, 3);
        let every = dump_request(Dump::Classes, 7, 3);
        for m in [&ours, &every] {
            assert_eq!(u16::from_ne_bytes([m[4], m[5]]), 42, "RTM_GETTCLASS");
            assert_eq!(u16::from_ne_bytes([m[6], m[7]]), NLM_F_REQUEST | NLM_F_DUMP);
            assert_eq!(tcmsg_field(m, 4), 7, "ifindex");
            assert_eq!(tcmsg_field(m, 8), 0, "handle");
        }
        assert_eq!(tcmsg_field(&ours, 12), 0x0001_0000, "parent 1:0");
        assert_eq!(tcmsg_field(&every, 12), 0, "no parent: every qdisc");
        assert_eq!(tcmsg_field(&dump_request(Dump::Qdiscs, 7, 3), 12), 0);
    }
}
