//! Captures what the kernel answers to bwmon's two rtnetlink dumps, as the
//! raw receive buffers, so the decoders in `src/tc/decode.rs` are tested on
//! bytes the kernel wrote and not on bytes we imagined. Run by
//! `scripts/capture-netlink-fixtures.sh` inside a throw-away network namespace
//! that holds an HTB hierarchy on `lo`; it never touches another interface.
//!
//! usage: `nl_capture OUTDIR`
//!
//! Puts packets into a few classes (`SO_PRIORITY` = class handle), then dumps
//! the classes and the qdiscs of `lo` once each, writing every receive buffer
//! to `OUTDIR/{classes,qdiscs}-N.bin` and what `tc -s -d … show dev lo`
//! printed around the dump to `OUTDIR/{classes,qdiscs}.txt`. The dump is
//! taken again until tc printed the same text before and after it, so the
//! text describes the same counters as the bytes.

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer, NetlinkHeader,
    NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::tc::TcMessage;
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::net::UdpSocket;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// (class minor, packets, payload bytes): slow classes keep a backlog (and
/// 1:1101's five-packet pfifo drops), fast ones drain before the dump.
const TRAFFIC: &[(u32, usize, usize)] = &[
    (0x1101, 20, 1000),
    (0x1102, 8, 1000),
    (0x1000, 3, 200),
    (0x2101, 10, 500),
];

fn send(minor: u32, packets: usize, payload: usize) {
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind UDP on loopback");
    let prio = i32::try_from(0x10000 | minor).expect("fits");
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Priority, &prio)
        .expect("SO_PRIORITY (needs CAP_NET_ADMIN)");
    let buf = vec![0x5a_u8; payload];
    for _ in 0..packets {
        // A full leaf drops the packet (ENOBUFS) and an earlier datagram's
        // port-unreachable comes back as ECONNREFUSED: both are expected.
        let _ = sock.send_to(&buf, "127.0.0.1:9");
    }
}

/// One dump: every receive buffer until `NLMSG_DONE` (or an error).
fn dump(sock: &Socket, seq: u32, inner: RouteNetlinkMessage) -> Vec<Vec<u8>> {
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = seq;
    let mut req = NetlinkMessage::new(header, NetlinkPayload::from(inner));
    req.finalize();
    let mut bytes = vec![0; req.buffer_len()];
    req.serialize(&mut bytes);
    sock.send(&bytes, 0).expect("send dump request");
    let mut buffers = Vec::new();
    loop {
        let (buf, _) = sock.recv_from_full().expect("recv");
        let mut off = 0;
        let mut done = false;
        while off < buf.len() {
            let msg = NetlinkBuffer::new_checked(&buf[off..]).expect("kernel framing");
            done |= matches!(msg.message_type(), NLMSG_DONE | NLMSG_ERROR);
            off += (msg.length() as usize + 3) & !3;
        }
        buffers.push(buf);
        if done {
            return buffers;
        }
    }
}

fn tc_show(what: &str) -> String {
    let out = Command::new("tc")
        .args(["-s", "-d", what, "show", "dev", "lo"])
        .output()
        .expect("run tc");
    assert!(out.status.success(), "tc {what} show failed");
    String::from_utf8(out.stdout).expect("tc prints UTF-8")
}

fn write(dir: &Path, name: &str, data: &[u8]) {
    let path: PathBuf = dir.join(name);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn main() {
    let dir = PathBuf::from(std::env::args().nth(1).expect("usage: nl_capture OUTDIR"));
    let ifindex = nix::net::if_::if_nametoindex("lo").expect("lo exists");
    let index = i32::try_from(ifindex).expect("ifindex fits");
    for &(minor, packets, payload) in TRAFFIC {
        send(minor, packets, payload);
    }
    // Let the fast classes drain; the slow ones keep their backlog.
    std::thread::sleep(Duration::from_millis(200));

    let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
    sock.bind_auto().expect("bind");
    sock.connect(&SocketAddr::new(0, 0)).expect("connect");
    let mut seq = 1;
    for (what, name) in [("class", "classes"), ("qdisc", "qdiscs")] {
        for attempt in 1.. {
            assert!(attempt <= 20, "{what} counters kept moving during the dump");
            let before = tc_show(what);
            let msg = TcMessage::with_index(index);
            let inner = if what == "class" {
                RouteNetlinkMessage::GetTrafficClass(msg)
            } else {
                RouteNetlinkMessage::GetQueueDiscipline(msg)
            };
            let buffers = dump(&sock, seq, inner);
            seq += 1;
            if tc_show(what) != before {
                continue;
            }
            for (i, buf) in buffers.iter().enumerate() {
                write(&dir, &format!("{name}-{}.bin", i + 1), buf);
            }
            write(&dir, &format!("{name}.txt"), before.as_bytes());
            eprintln!("{name}: {} receive buffers", buffers.len());
            break;
        }
    }
}
