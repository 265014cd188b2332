//! Times `slivers::parse` on a node manager's dump (issues 10 and 12): N
//! records keyed by name, each with an `_rspec` of the ten `net_*` keys,
//! three of them strings of numbers (shape `rspec`); shape `nm` adds the
//! node manager's other fields and a second copy of the keys as `rspec`.
//! The xids are given, so no NSS lookup is timed.
//!
//! usage: `slivers_parse [N] [RUNS] [rspec|nm] [parse|value|derive]`
//! (default 4000, 101, rspec, parse) → the median and spread of RUNS reads
//! in ms. The readers: `parse` is `slivers::parse`; the other two only
//! deserialize, as the baselines its module doc cites: `value` into a
//! `serde_json::Value`, `derive` into derived structs whose values are an
//! `#[serde(untagged)]` number-or-string (the derive-based reader, which
//! would also turn a repeated key into an error). With RUNS = 1 it reads
//! once, for an instruction count of that reader alone:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='slivers_parse::read_*' \
//!     target/release/examples/slivers_parse 4000 1
//! ```

use serde::Deserialize;
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
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

/// A value as a derive-based reader would take it: a number, a string of
/// one, or anything else (kept for the warning).
// The baselines only build these: what is read is not looked at.
#[allow(dead_code)]
#[derive(Deserialize)]
#[serde(untagged)]
enum Raw<'a> {
    Number(Number),
    String(#[serde(borrow)] Cow<'a, str>),
    Other(Value),
}

// Named as the input's keys are.
#[allow(dead_code, clippy::struct_field_names)]
#[derive(Deserialize)]
struct Keys<'a> {
    #[serde(borrow)]
    net_min_rate: Option<Raw<'a>>,
    #[serde(borrow)]
    net_max_rate: Option<Raw<'a>>,
    #[serde(borrow)]
    net_i2_min_rate: Option<Raw<'a>>,
    #[serde(borrow)]
    net_i2_max_rate: Option<Raw<'a>>,
    #[serde(borrow)]
    net_max_kbyte: Option<Raw<'a>>,
    #[serde(borrow)]
    net_i2_max_kbyte: Option<Raw<'a>>,
    #[serde(borrow)]
    net_thresh_kbyte: Option<Raw<'a>>,
    #[serde(borrow)]
    net_i2_thresh_kbyte: Option<Raw<'a>>,
    #[serde(borrow)]
    net_share: Option<Raw<'a>>,
    #[serde(borrow)]
    net_i2_share: Option<Raw<'a>>,
}

#[allow(dead_code)]
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    name: Option<Raw<'a>>,
    #[serde(borrow)]
    xid: Option<Raw<'a>>,
    #[serde(borrow, rename = "_rspec")]
    effective: Option<Keys<'a>>,
    #[serde(borrow)]
    rspec: Option<Keys<'a>>,
}

#[inline(never)]
fn read_parse(text: &str) -> usize {
    let uid_of = |_: &str| -> Result<Option<u32>, String> { Ok(None) };
    let input = bwmon::slivers::parse(text.as_bytes(), &uid_of).expect("parses");
    assert!(input.warnings.is_empty(), "{:?}", input.warnings);
    input.live.len()
}

#[inline(never)]
fn read_value(text: &str) -> usize {
    let value: Value = serde_json::from_str(text).expect("parses");
    value.as_object().map_or(0, serde_json::Map::len)
}

#[inline(never)]
fn read_derive(text: &str) -> usize {
    let records: HashMap<&str, Record> = serde_json::from_str(text).expect("parses");
    records.len()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args.next().map_or(4000, |a| a.parse().expect("N"));
    assert!((1..=4094).contains(&n), "N is one xid a slice: 1..=4094");
    let runs: usize = args.next().map_or(101, |a| a.parse().expect("RUNS"));
    let shape = args.next().unwrap_or_else(|| "rspec".to_owned());
    let nm = match shape.as_str() {
        "rspec" => false,
        "nm" => true,
        other => panic!("shape {other:?}: rspec or nm"),
    };
    let reader = args.next().unwrap_or_else(|| "parse".to_owned());
    let read: fn(&str) -> usize = match reader.as_str() {
        "parse" => read_parse,
        "value" => read_value,
        "derive" => read_derive,
        other => panic!("reader {other:?}: parse, value or derive"),
    };
    let text = dump(n, nm);
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let got = read(&text);
            let took = start.elapsed().as_secs_f64() * 1e3;
            assert_eq!(got, n as usize);
            took
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    println!(
        "N={n} shape={shape} reader={reader} input={} KB runs={runs} median={:.3} ms spread={:.3}..{:.3} ms",
        text.len() / 1000,
        ms[runs / 2],
        ms[0],
        ms[runs - 1],
    );
}
