//! Turns planned changes into one batch of kernel changes, and remembers which
//! change belongs to which slice so a refused one can be mapped back (SPEC §4
//! "Writing"). Each change is typed ([`Change`]): the writer encodes it, and
//! `--dry-run` and error messages show it as the `tc` command line an operator
//! can read and replay. Every class change is a complete spec: `class change`
//! resets any field left out.

use crate::classes::ClassId;
use crate::policy::{CAP_CLASS, I2_PARENT, Kind, LOW_PARENT, Op, ROOT_CLASS, Spec, quantum};
use crate::state::DEFAULT_XID;
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

/// Whether a class change creates the class or changes one that exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassVerb {
    Add,
    Change,
}

/// One change to the kernel's traffic control, as the kernel is asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// An HTB class with a complete spec; `parent: None` is the qdisc itself.
    Class {
        verb: ClassVerb,
        parent: Option<ClassId>,
        id: ClassId,
        spec: Spec,
    },
    DeleteClass {
        id: ClassId,
    },
    /// A pfifo leaf under `parent`, its handle major the class minor
    /// (1:1001 → 1001:).
    Leaf {
        parent: ClassId,
    },
    /// The root HTB qdisc 1:, unclassified packets to `default_minor`.
    RootQdisc {
        replace: bool,
        default_minor: u16,
    },
    DeleteRoot,
}

impl Change {
    /// The same change as a line of `tc -batch`.
    pub fn tc_line(&self, dev: &str) -> String {
        match *self {
            Change::Class {
                verb,
                parent,
                id,
                spec,
            } => {
                let verb = match verb {
                    ClassVerb::Add => "add",
                    ClassVerb::Change => "change",
                };
                let parent = parent.map_or_else(|| "1:".to_string(), |p| p.to_string());
                format!(
                    "class {verb} dev {dev} parent {parent} classid {id} htb rate {} ceil {} quantum {}",
                    spec.rate.tc_arg(),
                    spec.ceil.tc_arg(),
                    spec.quantum
                )
            }
            Change::DeleteClass { id } => format!("class del dev {dev} classid {id}"),
            Change::Leaf { parent } => format!(
                "qdisc add dev {dev} parent {parent} handle {:x}: pfifo",
                parent.minor
            ),
            Change::RootQdisc {
                replace,
                default_minor,
            } => format!(
                "qdisc {} dev {dev} root handle 1: htb default {default_minor:x}",
                if replace { "replace" } else { "add" }
            ),
            Change::DeleteRoot => format!("qdisc del dev {dev} root"),
        }
    }
}

/// The changes of one run, in order, each with the `tc` line it amounts to
/// (`lines[i]` is `changes[i]`) and what it is for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub changes: Vec<Change>,
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

    fn push(&mut self, dev: &str, origin: Origin, change: Change) {
        self.lines.push(change.tc_line(dev));
        self.changes.push(change);
        self.origins.push(origin);
    }

    /// The slice-class changes of a plan.
    pub fn add_ops(&mut self, dev: &str, ops: &[Op]) {
        for (i, op) in ops.iter().enumerate() {
            let o = Origin::Op(i);
            match *op {
                Op::Add { xid, kind, spec } | Op::Change { xid, kind, spec } => {
                    let id = kind.class_id(xid);
                    let verb = if matches!(op, Op::Add { .. }) {
                        ClassVerb::Add
                    } else {
                        ClassVerb::Change
                    };
                    self.push_class(dev, o, verb, kind.parent(), id, spec);
                    // A new class gets bwmon's leaf at once.
                    if verb == ClassVerb::Add {
                        self.push(dev, o, Change::Leaf { parent: id });
                    }
                }
                Op::Delete { xid, kind } => {
                    let id = kind.class_id(xid);
                    self.push(dev, o, Change::DeleteClass { id });
                }
                Op::Leaf { xid, kind } => {
                    let parent = kind.class_id(xid);
                    self.push(dev, o, Change::Leaf { parent });
                }
            }
        }
    }

    /// Lines that build the fixed hierarchy of SPEC §4 from nothing: the root
    /// qdisc and the interior classes (the default xid's classes are added by
    /// `init` itself, and by the policy in `sync`).
    pub fn add_hierarchy(&mut self, dev: &str, bwcap: Rate, bwmax: Rate, root: RootQdisc) {
        let replace = match root {
            RootQdisc::Add => Some(false),
            RootQdisc::Replace => Some(true),
            RootQdisc::Keep => None,
        };
        if let Some(replace) = replace {
            let default_minor = Kind::Low.class_id(DEFAULT_XID).minor;
            self.push(
                dev,
                Origin::Hierarchy,
                Change::RootQdisc {
                    replace,
                    default_minor,
                },
            );
        }
        self.interior_lines(ClassVerb::Add, dev, bwcap, bwmax);
    }

    /// Removes the root qdisc, and with it every class bwmon made.
    pub fn delete_root(&mut self, dev: &str) {
        self.push(dev, Origin::Hierarchy, Change::DeleteRoot);
    }

    /// Lines that change the interior classes of an existing hierarchy.
    pub fn change_interior(&mut self, dev: &str, bwcap: Rate, bwmax: Rate) {
        self.interior_lines(ClassVerb::Change, dev, bwcap, bwmax);
    }

    /// The fixed interior classes: 1:1 (whole link), 1:10 (node cap), 1:100
    /// (room for a rate limiter), 1:20 (exempt). Explicit quanta keep the
    /// kernel from warning on stderr at every cron run.
    fn interior_lines(&mut self, verb: ClassVerb, dev: &str, bwcap: Rate, bwmax: Rate) {
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
            let change = Change::Class {
                verb,
                parent,
                id,
                spec,
            };
            self.push(dev, Origin::Hierarchy, change);
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
            let h = Origin::Hierarchy;
            self.push_class(dev, h, ClassVerb::Add, kind.parent(), id, spec);
            self.push(dev, h, Change::Leaf { parent: id });
        }
    }

    fn push_class(
        &mut self,
        dev: &str,
        origin: Origin,
        verb: ClassVerb,
        parent: ClassId,
        id: ClassId,
        spec: Spec,
    ) {
        let parent = Some(parent);
        self.push(
            dev,
            origin,
            Change::Class {
                verb,
                parent,
                id,
                spec,
            },
        );
    }
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
