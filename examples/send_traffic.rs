//! Puts real packets into a slice's HTB class, for the demo, the benchmark and
//! the kernel tests: a UDP socket whose `SO_PRIORITY` is the class handle
//! (`0x10000 | minor`) sends to 127.0.0.1 only. Run it inside the network
//! namespace that holds the hierarchy (`ip netns exec NS …`).
//!
//! usage: `send_traffic` XID BYTES [low|i2]
//!
//! Paced so a leaf's pfifo never overflows (dropped packets are not counted).

use std::net::UdpSocket;
use std::time::Duration;

const PAYLOAD: usize = 1000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = || -> ! {
        eprintln!("usage: send_traffic XID BYTES [low|i2]");
        std::process::exit(2)
    };
    let xid: u32 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let bytes: usize = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let base = match args.get(3).map(String::as_str) {
        None | Some("low") => 0x1000,
        Some("i2") => 0x2000,
        Some(_) => usage(),
    };
    if xid > 0xfff {
        usage();
    }
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind a UDP socket on 127.0.0.1");
    let priority = i32::try_from(0x10000 | base | xid).expect("fits");
    nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Priority, &priority)
        .expect("set SO_PRIORITY");
    let payload = [0x42u8; PAYLOAD];
    let mut left = bytes;
    let mut sent = 0usize;
    while left > 0 {
        let n = left.min(PAYLOAD);
        sock.send_to(&payload[..n], "127.0.0.1:9")
            .expect("send to 127.0.0.1:9");
        left -= n;
        sent += 1;
        if sent.is_multiple_of(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
