//! Times `slivers::parse` on a node manager's dump (issues 10 and 12): N
//! records keyed by name, each with an `_rspec` of the ten `net_*` keys,
//! three of them strings of numbers (shape `rspec`); shape `nm` adds the
//! node manager's other fields and a second copy of the keys as `rspec`.
//! The xids are given, so no NSS lookup is timed.
//!
//! usage: `slivers_parse [N] [RUNS] [rspec|nm] [parse|value|derive|with]`
//! (default 4000, 101, rspec, parse) → the median and spread of RUNS reads
//! in ms. The readers: `parse` is `slivers::parse`; the others only
//! deserialize, as the baselines its module doc cites: `value` into a
//! `serde_json::Value`; `derive` and `with` into derived structs whose
//! values are a number-or-string, read by `#[serde(untagged)]` or by one
//! `deserialize_with` visitor. Both derived readers would change what
//! bwmon does: a repeated key in a record becomes an error of the whole
//! input, and unknown keys are skipped unchecked (`IgnoredAny`). `parse`
//! also judges the records: its serde part alone is the inclusive count of
//! `serde_json::de::from_trait` (`callgrind_annotate --inclusive=yes`).
//! With RUNS = 1 it reads once, for an instruction count of that reader
//! alone:
//!
//! ```text
//! valgrind --tool=callgrind --toggle-collect='slivers_parse::read_*' \
//!     target/release/examples/slivers_parse 4000 1
//! ```

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::{self, Write as _};
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

/// Reads a [`Raw`] with one visitor, as `deserialize_with` would: no
/// buffering of the value to try each variant in turn, as untagged does.
fn raw<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Raw<'de>>, D::Error> {
    struct RawVisitor;
    impl<'de> Visitor<'de> for RawVisitor {
        type Value = Raw<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(Raw::Other(Value::Null))
        }
        fn visit_bool<E>(self, b: bool) -> Result<Self::Value, E> {
            Ok(Raw::Other(b.into()))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Self::Value, E> {
            Ok(Raw::Number(n.into()))
        }
        fn visit_u64<E>(self, n: u64) -> Result<Self::Value, E> {
            Ok(Raw::Number(n.into()))
        }
        fn visit_f64<E>(self, f: f64) -> Result<Self::Value, E> {
            Ok(Number::from_f64(f).map_or(Raw::Other(Value::Null), Raw::Number))
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Self::Value, E> {
            Ok(Raw::String(Cow::Borrowed(s)))
        }
        fn visit_str<E>(self, s: &str) -> Result<Self::Value, E> {
            Ok(Raw::String(Cow::Owned(s.to_owned())))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
            Value::deserialize(SeqAccessDeserializer::new(seq)).map(Raw::Other)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            Value::deserialize(MapAccessDeserializer::new(map)).map(Raw::Other)
        }
    }
    deserializer.deserialize_any(RawVisitor).map(Some)
}

/// A record and its rspec as derived structs whose values are read as
/// `$how` says: the two derive-based readers differ only there.
macro_rules! derived {
    ($record:ident, $keys:ident, $($how:tt)*) => {
        // Named as the input's keys are.
        #[allow(dead_code, clippy::struct_field_names)]
        #[derive(Deserialize)]
        struct $keys<'a> {
            #[serde(borrow, $($how)*)]
            net_min_rate: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_max_rate: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_i2_min_rate: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_i2_max_rate: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_max_kbyte: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_i2_max_kbyte: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_thresh_kbyte: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_i2_thresh_kbyte: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_share: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            net_i2_share: Option<Raw<'a>>,
        }

        #[allow(dead_code)]
        #[derive(Deserialize)]
        struct $record<'a> {
            #[serde(borrow, $($how)*)]
            name: Option<Raw<'a>>,
            #[serde(borrow, $($how)*)]
            xid: Option<Raw<'a>>,
            #[serde(borrow, rename = "_rspec")]
            effective: Option<$keys<'a>>,
            #[serde(borrow)]
            rspec: Option<$keys<'a>>,
        }
    };
}

derived!(Record, Keys,);
derived!(WithRecord, WithKeys, default, deserialize_with = "raw");

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

#[inline(never)]
fn read_with(text: &str) -> usize {
    let records: HashMap<&str, WithRecord> = serde_json::from_str(text).expect("parses");
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
        "with" => read_with,
        other => panic!("reader {other:?}: parse, value, derive or with"),
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
