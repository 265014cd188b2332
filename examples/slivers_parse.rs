//! Times `slivers::parse` on a node manager's dump (issues 10 and 12): N
//! records keyed by name, each with an `_rspec` of the ten `net_*` keys,
//! three of them strings of numbers (shape `rspec`); shape `nm` adds the
//! node manager's other fields and a second copy of the keys as `rspec`.
//! The xids are given, so no NSS lookup is timed.
//!
//! usage: `slivers_parse [N] [RUNS] [rspec|nm]` (default 4000, 101, rspec)
//! → input size, then the median and spread of RUNS parses in ms. With
//! RUNS = 1 it parses once, for an instruction count of `parse` alone:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='bwmon::slivers::parse*' \
//!     target/release/examples/slivers_parse 4000 1
//! ```

use std::fmt::Write as _;
use std::time::Instant;

fn dump(n: u32, nm: bool) -> String {
    let mut out = String::from("{");
    for i in 1..=n {
        let rspec = format!(
            r#"{{"net_min_rate": 0, "net_max_rate": {max}, "net_i2_min_rate": 0,
            "net_i2_max_rate": "{max}", "net_max_kbyte": "5662310", "net_i2_max_kbyte": 17196646,
            "net_thresh_kbyte": 4529848, "net_i2_thresh_kbyte": "13757316", "net_share": 1,
            "net_i2_share": 1}}"#,
            max = 10_000 + i,
        );
        let sep = if i == 1 { "" } else { "," };
        if !nm {
            write!(
                out,
                r#"{sep}
 "pl_slice{i}": {{"name": "pl_slice{i}", "xid": {i}, "_rspec": {rspec}}}"#
            )
            .unwrap();
            continue;
        }
        write!(
            out,
            r#"{sep}
 "pl_slice{i}": {{"name": "pl_slice{i}", "xid": {i}, "timestamp": 1700000000,
  "expires": 1731536000, "instantiation": "plc-instantiated", "initscript": "",
  "keys": [{{"key": "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC{i} alice@example.org"}}],
  "delegations": [], "_rspec": {rspec}, "rspec": {rspec}}}"#
        )
        .unwrap();
    }
    out.push_str("\n}\n");
    out
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(4000, |a| a.parse().expect("N"));
    assert!((1..=4094).contains(&n), "N is one xid a slice: 1..=4094");
    let runs: usize = args.next().map_or(101, |a| a.parse().expect("RUNS"));
    let nm = match args.next().as_deref() {
        None | Some("rspec") => false,
        Some("nm") => true,
        Some(other) => panic!("shape {other:?}: rspec or nm"),
    };
    let text = dump(n, nm);
    let uid_of = |_: &str| -> Result<Option<u32>, String> { Ok(None) };
    let check = |input: &bwmon::slivers::Input| {
        assert_eq!(input.live.len(), n as usize, "{:?}", input.held.first());
        assert!(input.warnings.is_empty(), "{:?}", input.warnings);
    };
    if runs == 1 {
        check(&bwmon::slivers::parse(text.as_bytes(), &uid_of).expect("parses"));
        return;
    }
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let input = bwmon::slivers::parse(text.as_bytes(), &uid_of).expect("parses");
            let took = start.elapsed().as_secs_f64() * 1e3;
            check(&input);
            took
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "N={n} shape={} input={} KB runs={runs} median={:.3} ms spread={:.3}..{:.3} ms",
        if nm { "nm" } else { "rspec" },
        text.len() / 1000,
        ms[runs / 2],
        ms[0],
        ms[runs - 1],
    );
}
