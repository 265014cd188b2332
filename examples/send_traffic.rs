//! Puts real packets into a slice's HTB class, for the demo, the benchmark and
//! the kernel tests. Run it inside the network namespace that holds the
//! hierarchy (`ip netns exec NS …`), as the slice's uid when bwmon classifies
//! by uid (`setpriv --reuid XID …`). Sends to 127.0.0.1 (or the given
//! loopback address) only.
//!
//! usage: `send_traffic XID BYTES [low|i2|none] [ADDR] [--mark N] [--secs S]`
//!
//! `low`/`i2` set `SO_PRIORITY` to the class handle (needs `CAP_NET_ADMIN`);
//! `none` leaves classification to bwmon's nftables table. BYTES are paced so
//! a leaf's pfifo never overflows (dropped packets are not counted); with
//! `--secs S` it instead sends as fast as it can for S seconds and prints the
//! bytes it handed to the kernel.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const PAYLOAD: usize = 1000;

fn usage() -> ! {
    eprintln!("usage: send_traffic XID BYTES [low|i2|none] [ADDR] [--mark N] [--secs S]");
    std::process::exit(2)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take_flag = |name: &str| -> Option<u64> {
        let i = args.iter().position(|a| a == name)?;
        let v = args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| usage());
        args.drain(i..=i + 1);
        Some(v)
    };
    let mark = take_flag("--mark");
    let secs = take_flag("--secs");
    let xid: u32 = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let bytes: usize = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let class = match args.get(2).map(String::as_str) {
        None | Some("low") => Some(0x1000),
        Some("i2") => Some(0x2000),
        Some("none") => None,
        Some(_) => usage(),
    };
    let addr: IpAddr = args
        .get(3)
        .map_or(Ok(IpAddr::from([127, 0, 0, 1])), |a| a.parse())
        .unwrap_or_else(|_| usage());
    if xid > 0xfff || !addr.is_loopback() {
        usage();
    }
    let bind: SocketAddr = if addr.is_ipv4() {
        "127.0.0.1:0".parse().expect("literal")
    } else {
        "[::1]:0".parse().expect("literal")
    };
    let sock = UdpSocket::bind(bind).expect("bind a UDP socket on loopback");
    if let Some(base) = class {
        let priority = i32::try_from(0x10000 | base | xid).expect("fits");
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Priority, &priority)
            .expect("set SO_PRIORITY (needs CAP_NET_ADMIN)");
    }
    if let Some(m) = mark {
        let m = u32::try_from(m).unwrap_or_else(|_| usage());
        nix::sys::socket::setsockopt(&sock, nix::sys::socket::sockopt::Mark, &m)
            .expect("set SO_MARK (needs CAP_NET_ADMIN)");
    }
    let to = SocketAddr::new(addr, 9);
    let payload = [0x42u8; PAYLOAD];
    if let Some(secs) = secs {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut handed = 0u64;
        while Instant::now() < end {
            if sock.send_to(&payload, to).is_ok() {
                handed += PAYLOAD as u64;
            }
        }
        println!("{handed}");
        return;
    }
    let mut left = bytes;
    let mut sent = 0usize;
    while left > 0 {
        let n = left.min(PAYLOAD);
        match sock.send_to(&payload[..n], to) {
            Ok(_) => {}
            // ICMP port unreachable from an earlier datagram: send again.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(e) => panic!("send to {to}: {e}"),
        }
        left -= n;
        sent += 1;
        if sent.is_multiple_of(20) {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}
