//! Times bwmon's class dump against the rtnetlink floor in one process, so
//! the decoder's share of a steady sync's critical path can be read apart
//! from exec, the slivers and the state. Run it as root inside the network
//! namespace that holds the hierarchy (`ip netns exec NS …`).
//!
//! usage: `dump_decode DEV [ROUNDS]` (default 30 rounds)
//!
//! Each round, in turn: the floor (one `RTM_GETTCLASS` dump received to
//! `NLMSG_DONE`, messages counted, nothing parsed, as `examples/nl_floor`),
//! then `Kernel::dump_classes` (socket, dump and decode, what a sync does),
//! then the decoder alone over the datagrams the floor received (no kernel,
//! no socket). Prints the median and the range of each, in milliseconds.

use bwmon::tc::decode::ClassDump;
use bwmon::tc::encode::{Dump, dump_request};
use bwmon::tc::kernel::Kernel;
use netlink_packet_core::{NLMSG_DONE, NLMSG_ERROR, NetlinkBuffer};
use netlink_sys::{Socket, SocketAddr, protocols::NETLINK_ROUTE};
use std::time::{Duration, Instant};

const SEQ: u32 = 1;

/// One raw dump: the datagrams as received, and the number of messages.
fn floor(ifindex: u32) -> (Vec<Vec<u8>>, usize) {
    let bytes = dump_request(Dump::Classes, ifindex, SEQ);

    let mut sock = Socket::new(NETLINK_ROUTE).expect("netlink socket");
    sock.bind_auto().expect("bind");
    sock.connect(&SocketAddr::new(0, 0)).expect("connect");
    sock.send(&bytes, 0).expect("send");
    let mut datagrams = Vec::new();
    let mut messages = 0;
    loop {
        let mut buf = Vec::with_capacity(64 * 1024);
        sock.recv(&mut buf, 0).expect("recv");
        let mut off = 0;
        let mut done = false;
        while off < buf.len() {
            let m = NetlinkBuffer::new_checked(&buf[off..]).expect("netlink framing");
            match m.message_type() {
                NLMSG_DONE => done = true,
                NLMSG_ERROR => panic!("the kernel refused the dump"),
                _ => messages += 1,
            }
            off += (m.length() as usize + 3) & !3;
        }
        datagrams.push(buf);
        if done {
            return (datagrams, messages);
        }
    }
}

fn decode(datagrams: &[Vec<u8>], ifindex: u32) -> usize {
    let mut dump = ClassDump::new(SEQ, ifindex);
    for d in datagrams {
        dump.feed(d).expect("decodes");
    }
    dump.finish().expect("a whole dump").len()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn summary(name: &str, mut xs: Vec<f64>) {
    xs.sort_by(f64::total_cmp);
    let median = xs[xs.len() / 2];
    println!(
        "{name:<14} median {median:8.3} ms   range {:.3}..{:.3}",
        xs[0],
        xs[xs.len() - 1]
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dev = args.next().expect("usage: dump_decode DEV [ROUNDS]");
    let rounds: usize = args.next().map_or(30, |r| r.parse().expect("ROUNDS"));
    let ifindex = nix::net::if_::if_nametoindex(dev.as_str()).expect("no such device");
    let (mut t_floor, mut t_dump, mut t_decode) = (Vec::new(), Vec::new(), Vec::new());
    let mut counts = (0, 0, 0);
    for _ in 0..rounds {
        let t = Instant::now();
        let (datagrams, messages) = floor(ifindex);
        t_floor.push(ms(t.elapsed()));

        let t = Instant::now();
        let mut kernel = Kernel::open(&dev).expect("rtnetlink");
        let classes = kernel.dump_classes().expect("class dump").len();
        t_dump.push(ms(t.elapsed()));

        let t = Instant::now();
        let decoded = decode(&datagrams, ifindex);
        t_decode.push(ms(t.elapsed()));
        counts = (messages, classes, decoded);
    }
    println!(
        "{} messages, {} HTB classes dumped, {} decoded from the floor's datagrams, {rounds} rounds",
        counts.0, counts.1, counts.2
    );
    summary("nl floor", t_floor);
    summary("dump_classes", t_dump);
    summary("decode only", t_decode);
}
