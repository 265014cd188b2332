//! Turns planned changes into lines of one `tc -force -batch -` run, and
//! remembers which line belongs to which slice so a refused line can be
//! mapped back (SPEC §4 "Writing"). Every line is a complete class spec:
//! `class change` resets any field left out.

use crate::policy::{CAP_CLASS, I2_PARENT, Kind, LOW_PARENT, Op, ROOT_CLASS, Spec, quantum};
use crate::state::DEFAULT_XID;
use crate::tc::ClassId;
use crate::units::{BWMIN, Rate};

/// What a line of the batch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Part of the fixed hierarchy (init, or a rebuild after reboot).
    Hierarchy,
    /// The `ops` entry with this index.
    Op(usize),
}

/// What to do about the root qdisc when building the hierarchy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootQdisc {
    /// There is none of ours: add it.
    Add,
    /// Another root qdisc (noqueue, `fq_codel`…) is there: replace it.
    Replace,
    /// Ours is there already.
    Keep,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub lines: Vec<String>,
    pub origins: Vec<Origin>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn text(&self) -> String {
        let mut t = self.lines.join("\n");
        t.push('\n');
        t
    }

    fn push(&mut self, origin: Origin, line: String) {
        self.lines.push(line);
        self.origins.push(origin);
    }

    /// Lines for the slice-class changes of a plan.
    pub fn add_ops(&mut self, dev: &str, ops: &[Op]) {
        for (i, op) in ops.iter().enumerate() {
            let o = Origin::Op(i);
            match *op {
                Op::Add { xid, kind, spec } => {
                    let id = kind.class_id(xid);
                    self.push(o, class_line("add", dev, &kind.parent(), id, &spec));
                    self.push(o, leaf_line(dev, id));
                }
                Op::Change { xid, kind, spec } => {
                    self.push(
                        o,
                        class_line("change", dev, &kind.parent(), kind.class_id(xid), &spec),
                    );
                }
                Op::Delete { xid, kind } => {
                    self.push(
                        o,
                        format!("class del dev {dev} classid {}", kind.class_id(xid)),
                    );
                }
            }
        }
    }

    /// Lines that build the fixed hierarchy of SPEC §4 from nothing: the root
    /// qdisc and the interior classes (the default xid's classes are added by
    /// `init` itself, and by the policy in `sync`).
    pub fn add_hierarchy(&mut self, dev: &str, bwcap: Rate, bwmax: Rate, root: RootQdisc) {
        let verb = match root {
            RootQdisc::Add => Some("add"),
            RootQdisc::Replace => Some("replace"),
            RootQdisc::Keep => None,
        };
        if let Some(verb) = verb {
            self.push(
                Origin::Hierarchy,
                format!(
                    "qdisc {verb} dev {dev} root handle 1: htb default {:x}",
                    Kind::Low.class_id(DEFAULT_XID).minor
                ),
            );
        }
        self.interior_lines("add", dev, bwcap, bwmax);
    }

    /// Removes the root qdisc, and with it every class bwmon made.
    pub fn delete_root(&mut self, dev: &str) {
        self.push(Origin::Hierarchy, format!("qdisc del dev {dev} root"));
    }

    /// Lines that change the interior classes of an existing hierarchy.
    pub fn change_interior(&mut self, dev: &str, bwcap: Rate, bwmax: Rate) {
        self.interior_lines("change", dev, bwcap, bwmax);
    }

    /// The fixed interior classes: 1:1 (whole link), 1:10 (node cap), 1:100
    /// (room for a rate limiter), 1:20 (exempt). Explicit quanta keep the
    /// kernel from warning on stderr at every cron run.
    fn interior_lines(&mut self, verb: &str, dev: &str, bwcap: Rate, bwmax: Rate) {
        let s = |rate, ceil| Spec {
            rate,
            ceil,
            quantum: quantum(1),
        };
        let classes = [
            (None, ROOT_CLASS, s(bwmax, bwmax)),
            (Some(ROOT_CLASS), CAP_CLASS, s(BWMIN, bwcap)),
            (Some(CAP_CLASS), LOW_PARENT, s(BWMIN, bwcap)),
            (Some(ROOT_CLASS), I2_PARENT, s(BWMIN, bwmax)),
        ];
        for (parent, id, spec) in classes {
            let parent = parent.map_or_else(|| "1:".to_string(), |p: ClassId| p.to_string());
            self.push(Origin::Hierarchy, class_line(verb, dev, &parent, id, &spec));
        }
    }

    /// The default xid's two classes, home of every unclassified packet.
    pub fn add_default_classes(&mut self, dev: &str, bwcap: Rate, bwmax: Rate) {
        for (kind, ceil) in [(Kind::Low, bwcap), (Kind::I2, bwmax)] {
            let id = kind.class_id(DEFAULT_XID);
            let spec = Spec {
                rate: BWMIN,
                ceil,
                quantum: quantum(1),
            };
            self.push(
                Origin::Hierarchy,
                class_line("add", dev, &kind.parent(), id, &spec),
            );
            self.push(Origin::Hierarchy, leaf_line(dev, id));
        }
    }
}

fn class_line(
    verb: &str,
    dev: &str,
    parent: &dyn std::fmt::Display,
    id: ClassId,
    spec: &Spec,
) -> String {
    format!(
        "class {verb} dev {dev} parent {parent} classid {id} htb rate {} ceil {} quantum {}",
        spec.rate.tc_arg(),
        spec.ceil.tc_arg(),
        spec.quantum
    )
}

/// A pfifo leaf whose handle major is the class minor (1:1001 → 1001:).
fn leaf_line(dev: &str, id: ClassId) -> String {
    format!(
        "qdisc add dev {dev} parent {id} handle {:x}: pfifo",
        id.minor
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_complete_specs() {
        let spec = Spec {
            rate: Rate(1000),
            ceil: Rate(312_000),
            quantum: 1600,
        };
        let mut b = Batch::default();
        b.add_ops(
            "eth0",
            &[
                Op::Delete {
                    xid: 0x101,
                    kind: Kind::I2,
                },
                Op::Add {
                    xid: 0x101,
                    kind: Kind::Low,
                    spec,
                },
                Op::Change {
                    xid: 0x102,
                    kind: Kind::I2,
                    spec,
                },
            ],
        );
        assert_eq!(
            b.lines,
            [
                "class del dev eth0 classid 1:2101",
                "class add dev eth0 parent 1:100 classid 1:1101 htb rate 1000bit ceil 312000bit quantum 1600",
                "qdisc add dev eth0 parent 1:1101 handle 1101: pfifo",
                "class change dev eth0 parent 1:20 classid 1:2102 htb rate 1000bit ceil 312000bit quantum 1600",
            ]
        );
        assert_eq!(
            b.origins,
            [Origin::Op(0), Origin::Op(1), Origin::Op(1), Origin::Op(2)]
        );
    }
}
