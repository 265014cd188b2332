//! Carrying out a plan, for every command that changes the kernel (`sync`,
//! `reset`): the batch's refusals mapped back onto their slices and the
//! state, the `--dry-run` listing, the metrics file written whole, and the
//! exit status of a run that had failures.

use crate::config::Config;
use crate::policy::{self, Op};
use crate::state::State;
use crate::tc::batch::{Batch, Origin};
use crate::tc::kernel::BatchOutcome;
use crate::units::Rate;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::Path;
use std::process::ExitCode;

/// Exit 1 after naming every failure, once all other work was done.
pub fn finish(failures: &[String]) -> ExitCode {
    if failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    for f in failures {
        log::error!("{f}");
    }
    ExitCode::from(1)
}

/// `--dry-run`: what would be run and sent, on stdout.
pub fn print_dry_run(batch: &Batch, mails: &[String], cfg: &Config) {
    let mut out = String::new();
    if batch.is_empty() && mails.is_empty() {
        out.push_str("# dry run: no tc changes, no mail\n");
    }
    if !batch.is_empty() {
        out.push_str("# tc commands (dry run: not run)\n");
        out.push_str(&batch.text());
    }
    for m in mails {
        let _ = write!(
            out,
            "# mail (dry run: not sent): {} -N never -t -f{}\n{m}",
            cfg.mail.sendmail.display(),
            cfg.mail.from
        );
    }
    print!("{out}");
}

/// Temp file in the same directory, then rename: the node exporter never reads
/// half a file.
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let tmp = crate::files::with_suffix(path, ".tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)
}

/// Maps refused batch lines back to their slices: those are named, and their
/// recorded ceil is forgotten so the next run applies it again. Returns the
/// xids that had a line refused.
pub fn apply_outcome(
    batch: &Batch,
    first_op_line: usize,
    outcome: &BatchOutcome,
    ops: &[Op],
    state: &mut State,
    cfg: &Config,
    failures: &mut Vec<String>,
) -> HashSet<u16> {
    let mut by_xid: BTreeMap<u16, Vec<String>> = BTreeMap::new();
    for (&line, why) in &outcome.failed {
        let refused = format!("`{}` ({why})", batch.lines[line]);
        match batch.origins.get(line) {
            Some(Origin::Op(i)) => {
                let op = ops[*i];
                by_xid.entry(op.xid()).or_default().push(refused);
                if let Op::Add { xid, kind, .. } | Op::Change { xid, kind, .. } = op
                    && let Some(s) = state.slices.get_mut(&xid)
                {
                    match kind {
                        policy::Kind::Low => s.lo.ceil = Rate(0),
                        policy::Kind::I2 => s.i2.ceil = Rate(0),
                    }
                }
            }
            Some(Origin::Hierarchy) if line < first_op_line => failures.push(format!(
                "rebuilding the hierarchy on {}: the kernel refused {refused}",
                cfg.dev
            )),
            _ => {}
        }
    }
    for (xid, refused) in &by_xid {
        let name = state
            .slices
            .get(xid)
            .map_or_else(|| format!("xid {xid}"), |s| s.name.clone());
        failures.push(format!(
            "slice {name}: the kernel refused {}; retried next run",
            refused.join(", ")
        ));
    }
    by_xid.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Overrides;
    use crate::policy::{Kind, Spec};
    use crate::state::{ClassState, SliceState};
    use crate::tc::kernel::BatchOutcome;
    use crate::tc::netlink::Refusal;

    /// An error ack is mapped back, by its change's index, to its slice: that
    /// slice is named once with what the kernel said, its applied ceil is
    /// forgotten (so the next run applies it again), the other slices stand.
    #[test]
    fn refusals_map_back_to_their_slices() {
        let cfg = Config::from_yaml(Path::new("t.yaml"), "dev: eth0\n", &Overrides::default())
            .expect("config");
        let spec = Spec {
            rate: Rate(1000),
            ceil: Rate(21_216),
            quantum: 1600,
        };
        let ops = [
            Op::Change {
                xid: 257,
                kind: Kind::Low,
                spec,
            },
            Op::Add {
                xid: 258,
                kind: Kind::I2,
                spec,
            },
        ];
        let mut batch = Batch::default();
        batch.add_ops("eth0", &ops);
        assert_eq!(batch.changes.len(), 3, "a change; an add and its leaf");
        let mut state = State::default();
        for (xid, name) in [(257, "pl_alice"), (258, "pl_bob")] {
            let class = ClassState {
                ceil: Rate(21_216),
                ..ClassState::default()
            };
            state.slices.insert(
                xid,
                Box::new(SliceState {
                    name: name.into(),
                    xid,
                    start: chrono::DateTime::UNIX_EPOCH,
                    mailed: false,
                    lo: class.clone(),
                    i2: class,
                    capped: None,
                }),
            );
        }
        let refused = Refusal {
            errno: 17,
            message: Some("Exclusivity flag on, cannot modify".into()),
        };
        let outcome = BatchOutcome {
            failed: [(2, refused)].into_iter().collect(),
        };
        let mut failures = Vec::new();
        let xids = apply_outcome(&batch, 0, &outcome, &ops, &mut state, &cfg, &mut failures);
        assert_eq!(xids, HashSet::from([258]));
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(
            failures[0].starts_with(
                "slice pl_bob: the kernel refused `qdisc add dev eth0 parent 1:2102 handle 2102: pfifo` (Exclusivity flag on, cannot modify (File exists"
            ),
            "{}",
            failures[0]
        );
        assert!(
            failures[0].ends_with("; retried next run"),
            "{}",
            failures[0]
        );
        assert_eq!(
            state.slices[&258].i2.ceil,
            Rate(0),
            "applied again next run"
        );
        assert_eq!(
            state.slices[&257].lo.ceil,
            Rate(21_216),
            "Alice's change stands"
        );
    }
}
