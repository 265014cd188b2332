//! Replays every committed fuzz corpus through the fuzz entry points, so CI
//! (stable Rust, no libFuzzer) checks each target over its corpus on every
//! run; `make fuzz` runs the real campaigns.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.expect("corpus entry").path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| run(&data));
        assert!(outcome.is_ok(), "{} panics on {}", target, path.display());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn slivers_corpus() {
    replay("slivers", bwmon::fuzzing::slivers);
}

#[test]
fn state_corpus() {
    replay("state", bwmon::fuzzing::state);
}

#[test]
fn netlink_dump_corpus() {
    replay("netlink_dump", bwmon::fuzzing::netlink_dump);
}
