//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that
//! replays their corpora on every CI run: each takes arbitrary bytes, must
//! never panic, and checks what must hold of any answer it gets.

use crate::state::State;
use crate::tc::decode::{ClassDump, DumpError, QdiscDump};
use std::path::Path;

/// The slivers JSON reader: every record lands in exactly one of live, held
/// or skipped, and live xids are valid and unique.
pub fn slivers(data: &[u8]) {
    let uid_of = |name: &str| -> Result<Option<u32>, String> {
        Ok(name.strip_prefix("uid").and_then(|n| n.parse().ok()))
    };
    if let Ok(input) = crate::slivers::parse(data, &uid_of) {
        let mut seen = std::collections::HashSet::new();
        for s in &input.live {
            assert!(
                (1..=4094).contains(&s.xid),
                "xid {} escaped validation",
                s.xid
            );
            assert!(seen.insert(s.xid), "xid {} live twice", s.xid);
        }
        for h in &input.held {
            assert!(!h.label.contains('\n') && !h.reason.contains('\n'));
        }
    }
}

/// The state loader: whatever it accepts, it writes back and reads again
/// the same. Its fast path for bwmon's own layout agrees with the serde path
/// wherever it answers, and the hand-written writer gives the bytes the serde
/// writer gave.
pub fn state(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let what = Path::new("fuzz");
    let fast = State::from_own_yaml(&text);
    // The file is read a window at a time: any window gives the same answer.
    let step = 1 + data.len() % 13;
    assert_eq!(
        State::from_own_yaml_in_steps(&text, step),
        fast,
        "reading {step} bytes at a time reads another state"
    );
    if let Some(fast) = fast {
        match State::from_yaml_serde(&text, what) {
            Ok(general) => assert_eq!(fast, general, "the fast path reads another state"),
            Err(e) => panic!("the fast path accepts what serde refuses: {e}"),
        }
    }
    if let Ok(s) = State::from_yaml(&text, what) {
        let written = s.to_yaml();
        assert_eq!(
            written,
            s.to_yaml_serde(),
            "to_yaml differs from the serde writer"
        );
        let again = State::from_yaml(&written, what)
            .unwrap_or_else(|e| panic!("a state bwmon wrote does not load: {e}"));
        assert_eq!(again, s);
    }
}

/// The rtnetlink dump decoders: any bytes, fed to a class dump and a qdisc
/// dump of device 1 (with the sequence number of the first header, so the
/// fuzzer gets past that check), once whole and once cut after the first
/// message, must give the same answer; an answer never holds an object twice.
/// The class dump's in-place reader must answer exactly as netlink-packet-route
/// does (the same classes, or the same error), and the plain dump a sync
/// takes must hold the detailed one's classes.
pub fn netlink_dump(data: &[u8]) {
    let word = |at: usize| {
        data.get(at..at + 4)
            .map(|w| u32::from_ne_bytes([w[0], w[1], w[2], w[3]]))
    };
    let seq = word(8).unwrap_or(0);
    let first = word(0).map_or(data.len(), |len| len as usize);
    let cut = first.saturating_add(3) & !3;
    let (head, tail) = data.split_at(cut.min(data.len()));
    let whole = dumps(&[data], seq);
    let split = dumps(&[head, tail], seq);
    match (&whole, &split) {
        ((Ok(a), Ok(b)), (Ok(c), Ok(d))) => assert!(a == c && b == d, "cutting changed the answer"),
        ((a, b), (c, d)) => {
            assert_eq!(kind(a), kind(c), "cutting changed the class verdict");
            assert_eq!(kind(b), kind(d), "cutting changed the qdisc verdict");
        }
    }
    let mut reference = ClassDump::reference(seq, 1);
    let mut plain = ClassDump::new(seq, 1);
    let _ = reference.feed(data);
    let _ = plain.feed(data);
    assert_eq!(
        whole.0,
        reference.finish_detailed(),
        "the in-place reader disagrees with netlink-packet-route"
    );
    assert_eq!(
        plain.finish(),
        whole
            .0
            .clone()
            .map(|v| v.into_iter().map(|c| c.class).collect()),
        "the plain dump is not the detailed one's classes"
    );
    if let (Ok(classes), _) = &whole {
        let mut seen = std::collections::HashSet::new();
        for c in classes {
            assert!(seen.insert(c.class.id), "class {} twice", c.class.id);
            assert_eq!(c.class.sent, c.stats.sent);
            assert_eq!(c.class.rate, c.htb.rate);
            assert_eq!(c.class.quantum.is_some(), c.htb.level == 0);
        }
    }
    if let (_, Ok(qdiscs)) = &whole {
        let mut seen = std::collections::HashSet::new();
        for q in qdiscs {
            assert!(
                seen.insert((q.handle, q.parent)),
                "qdisc {} twice",
                q.handle
            );
        }
    }
}

type Dumps = (
    Result<Vec<crate::tc::decode::DumpedClass>, DumpError>,
    Result<Vec<crate::tc::decode::Qdisc>, DumpError>,
);

fn dumps(buffers: &[&[u8]], seq: u32) -> Dumps {
    let mut classes = ClassDump::detailed(seq, 1);
    let mut qdiscs = QdiscDump::new(seq, 1);
    for b in buffers {
        // Errors stick: `finish` reports them.
        let _ = classes.feed(b);
        let _ = qdiscs.feed(b);
    }
    (classes.finish_detailed(), qdiscs.finish())
}

fn kind<T>(r: &Result<T, DumpError>) -> Option<std::mem::Discriminant<DumpError>> {
    r.as_ref().err().map(std::mem::discriminant)
}
