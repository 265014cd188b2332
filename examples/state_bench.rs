//! Times the state file's load and save at benchmark scale: a 4,000-slice
//! state (plus root, default and 200 dead records, about 1.4 MB, as
//! `make bench` leaves it) formatted with `State::to_yaml` and parsed with
//! `State::from_yaml`, each the median of many runs.
//!
//! usage: `state_bench [N] [MODE]`
//! - MODE `time` (default): prints the medians and the file's size.
//! - MODE `load` / `save`: one call only, for instruction counts:
//!   `valgrind --tool=callgrind --toggle-collect='*State::from_yaml*' \
//!   target/release/examples/state_bench 4000 load` (and `*State::to_yaml*`).
//! - MODE `write FILE`: writes the state file there, to look at or fuzz.

use bwmon::state::{ClassState, DeadState, Hierarchy, SliceState, State};
use bwmon::units::{Bytes, Rate};
use chrono::{DateTime, TimeZone, Utc};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

fn class(i: u64, max: u64, quota: u64) -> ClassState {
    // Counters of the sizes a day's traffic gives: a tenth of the slices
    // sent something, a few were capped.
    let base = i * 7_919_993 % 100_000_000_000;
    let sent = if i.is_multiple_of(10) {
        i * 1_234_567
    } else {
        0
    };
    ClassState {
        base: Bytes(base),
        carry: Bytes(if i.is_multiple_of(37) { 4096 } else { 0 }),
        last: Bytes(base + sent),
        ceil: Rate(if i.is_multiple_of(100) { 212_170 } else { max }),
        min: Rate(1000),
        max: Rate(max),
        quota: Bytes(quota),
        thresh: Bytes(quota / 5 * 4),
        share: 1,
    }
}

fn sample(n: u16) -> State {
    let day: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 25, 0, 1, 0).unwrap();
    let earlier: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 11, 24, 13, 7, 42).unwrap();
    let mut s = State::default();
    s.hierarchy.insert(
        "lo".into(),
        Hierarchy::new(Rate(100_000_000), Rate(1_000_000_000)),
    );
    s.last_sync = Some(day);
    let mut add = |name: String, xid: u16| {
        let i = u64::from(xid);
        s.slices.insert(
            xid,
            Box::new(SliceState {
                name,
                xid,
                start: if i % 10 == 3 { earlier } else { day },
                mailed: i.is_multiple_of(100),
                lo: class(i, 100_000_000, 5_798_205_440),
                i2: class(i + 5000, 1_000_000_000, 17_609_365_504),
                capped: None,
            }),
        );
    };
    add("root".into(), 0);
    add("default".into(), 0xfff);
    for xid in 1..=n {
        add(format!("s{xid}"), xid);
    }
    for d in 0..200u64 {
        s.dead.insert(
            format!("gone{d}"),
            DeadState {
                name: format!("gone{d}"),
                start: earlier,
                lo: Bytes(d * 1_000_003),
                i2: Bytes(d),
                mailed: d.is_multiple_of(7),
                xid: None,
                capped: None,
            },
        );
    }
    s.classified = (1..=n).collect();
    s
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u16 = args
        .next()
        .map_or(4000, |a| a.parse().expect("N: a number"));
    let mode = args.next().unwrap_or_else(|| "time".into());
    let state = sample(n);
    let path = Path::new("state.yaml");
    if mode == "save" {
        // Exactly one call, for callgrind.
        drop(black_box(black_box(&state).to_yaml()));
        return;
    }
    let text = state.to_yaml();
    match mode.as_str() {
        "time" => {
            assert_eq!(
                text,
                state.to_yaml_serde(),
                "to_yaml writes what serde_json wrote"
            );
            assert_eq!(
                State::from_yaml(&text, path).expect("what bwmon writes loads"),
                state
            );
            let runs = 201;
            let save = median(|| drop(black_box(black_box(&state).to_yaml())), runs);
            let load = median(
                || drop(black_box(State::from_yaml(black_box(&text), path))),
                runs,
            );
            println!(
                "N={n} slices={} bytes={} save={:.3} ms load={:.3} ms (median of {runs})",
                state.slices.len(),
                text.len(),
                save.as_secs_f64() * 1e3,
                load.as_secs_f64() * 1e3,
            );
        }
        "load" => drop(black_box(State::from_yaml(black_box(&text), path))),
        "write" => {
            let out = args.next().expect("write FILE");
            std::fs::write(&out, &text).expect("write");
        }
        other => panic!("unknown mode {other}: time, load, save or write FILE"),
    }
}
