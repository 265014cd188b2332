//! The rtnetlink floor of the benchmark: the least any reader of a device's
//! classes can do. One `RTM_GETTCLASS` dump, received until `NLMSG_DONE`,
//! messages counted and nothing parsed, so bwmon's read path can be compared
//! with the kernel's own cost (as `tc -s -d class show` is the tc floor).
//!
//! usage: `nl_floor DEV [MAJOR]` → prints `messages=N bytes=B`. Without
//! MAJOR every class of the device is asked for, as `tc class show` asks (the
//! benchmark's floor); with it (`1`) only the classes of qdisc `MAJOR:`, the
//! request bwmon sends, which spares the kernel a walk of every leaf qdisc.

use bwmon::tc::encode::{Dump, dump_request};
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};

fn main() {
    let dev = std::env::args().nth(1).expect("usage: nl_floor DEV");
    let ifindex = nix::net::if_::if_nametoindex(dev.as_str()).expect("no such device");
    let what = match std::env::args().nth(2) {
        Some(major) => Dump::ClassesOf(major.parse().expect("MAJOR: a number, 1 for 1:")),
        None => Dump::Classes,
    };
    let bytes = dump_request(what, ifindex, 1);

    let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
    sock.bind_auto().expect("bind");
    sock.connect(&SocketAddr::new(0, 0)).expect("connect");
    sock.send(&bytes, 0).expect("send");
    // The kernel fills up to 32 KiB per datagram for a reader this large.
    let mut buf = Vec::with_capacity(64 * 1024);
    let (mut messages, mut total) = (0u64, 0usize);
    loop {
        buf.clear();
        let n = sock.recv(&mut buf, 0).expect("recv");
        total += n;
        let mut off = 0;
        while off < buf.len() {
            let m = NetlinkBuffer::new_checked(&buf[off..]).expect("netlink framing");
            match m.message_type() {
                NLMSG_DONE => {
                    println!("messages={messages} bytes={total}");
                    return;
                }
                NLMSG_ERROR => panic!("the kernel refused the dump"),
                _ => messages += 1,
            }
            off += (m.length() as usize + 3) & !3;
        }
    }
}
