//! Entry points shared by the cargo-fuzz targets (`fuzz/`) and the test that
//! replays their corpora on every CI run: each takes arbitrary bytes, must
//! never panic, and checks what must hold of any answer it gets.

use crate::state::State;
use std::path::Path;

/// The tc class dump parser: anything in, classes or a line-numbered error out.
pub fn tc_dump(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match crate::tc::parse::parse_class_dump(&text) {
        Ok(classes) => {
            for c in classes {
                assert!(c.rate.precision >= 1 && c.ceil.precision >= 1);
            }
        }
        Err(e) => assert!(e.line >= 1, "errors name a line: {e}"),
    }
}

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

/// The state loader: whatever it accepts, it writes back and reads again the same.
pub fn state(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(s) = State::from_yaml(&text, Path::new("fuzz")) {
        let again = State::from_yaml(&s.to_yaml(), Path::new("fuzz"))
            .unwrap_or_else(|e| panic!("a state bwmon wrote does not load: {e}"));
        assert_eq!(again, s);
    }
}
