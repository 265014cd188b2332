//! bwmon's fixed HTB hierarchy (SPEC §4) as seen in one class dump: whether
//! it is there, whether it is bwmon's, and the node cap and bwmax it holds.
//! Shared by every command that acts on a device, so none of them builds
//! slice classes into somebody else's tree (an old shaping script,
//! `PlanetLab`'s `bwlimit`) where they would end up outside any node cap.

use crate::classes::{ClassId, KernelClass};
use crate::policy::{CAP_CLASS, I2_PARENT, LOW_PARENT, ROOT_CLASS};
use crate::state::Hierarchy;
use crate::units::Rate;

/// The interior classes and the parent each must have (`None`: the qdisc).
const FIXED: [(ClassId, Option<ClassId>); 4] = [
    (ROOT_CLASS, None),
    (CAP_CLASS, Some(ROOT_CLASS)),
    (LOW_PARENT, Some(CAP_CLASS)),
    (I2_PARENT, Some(ROOT_CLASS)),
];

/// What a device holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tree {
    /// No HTB class at all (a fresh boot, or after `bwmon teardown`).
    Absent,
    /// bwmon's four interior classes, each under its own parent.
    Ours,
}

/// Tells bwmon's hierarchy from an absent or a foreign one.
///
/// # Errors
///
/// One line naming what differs from SPEC §4 and what to do, for exit 69:
/// HTB classes of another tree, or bwmon's tree with a class missing or
/// under another parent.
pub fn inspect(kernel: &[KernelClass], dev: &str) -> Result<Tree, String> {
    if kernel.is_empty() {
        return Ok(Tree::Absent);
    }
    let find = |id: ClassId| kernel.iter().find(|c| c.id == id);
    let show = |p: Option<ClassId>| p.map_or_else(|| "the root".to_string(), |p| p.to_string());
    let fix = format!(
        "not bwmon's hierarchy, nothing was changed: if that tree can go, `tc qdisc del dev {dev} root`, then `bwmon init`"
    );
    let mut missing = Vec::new();
    for (id, parent) in FIXED {
        match find(id) {
            None => missing.push(id.to_string()),
            Some(c) if c.parent != parent => {
                return Err(format!(
                    "{dev}: HTB class {id} is under {}, bwmon's is under {}: {fix}",
                    show(c.parent),
                    show(parent)
                ));
            }
            Some(_) => {}
        }
    }
    if missing.is_empty() {
        return Ok(Tree::Ours);
    }
    let mut seen: Vec<String> = kernel.iter().take(4).map(|c| c.id.to_string()).collect();
    if kernel.len() > 4 {
        seen.push(format!("{} more", kernel.len() - 4));
    }
    Err(format!(
        "{dev}: HTB classes {} but no class {}: {fix}",
        seen.join(", "),
        missing.join(", ")
    ))
}

/// The node cap in force: the kernel's class 1:10 is the source of truth, read
/// at the precision of the exact figure `init` recorded when they agree.
pub fn node_cap(classes: &[KernelClass], remembered: Option<Hierarchy>) -> Option<Rate> {
    kernel_ceil(classes, CAP_CLASS, remembered.map(|h| h.bwcap))
}

/// bwmax in force: class 1:20's ceil, read the same way.
pub fn node_max(classes: &[KernelClass], remembered: Option<Hierarchy>) -> Option<Rate> {
    kernel_ceil(classes, I2_PARENT, remembered.map(|h| h.bwmax))
}

fn kernel_ceil(classes: &[KernelClass], id: ClassId, recorded: Option<Rate>) -> Option<Rate> {
    let c = classes.iter().find(|c| c.id == id)?;
    Some(match recorded {
        Some(r) if c.ceil == r.as_kernel_keeps() => r,
        _ => c.ceil,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::Bytes;

    fn class(minor: u16, parent: Option<u16>) -> KernelClass {
        KernelClass {
            id: ClassId::new(1, minor),
            parent: parent.map(|p| ClassId::new(1, p)),
            rate: Rate(1000),
            ceil: Rate(1000),
            quantum: None,
            sent: Bytes(0),
            leaf: None,
        }
    }

    fn ours() -> Vec<KernelClass> {
        vec![
            class(0x1, None),
            class(0x10, Some(0x1)),
            class(0x100, Some(0x10)),
            class(0x20, Some(0x1)),
            class(0x1fff, Some(0x100)),
        ]
    }

    #[test]
    fn bwmon_tree_and_none() {
        assert_eq!(inspect(&ours(), "lo"), Ok(Tree::Ours));
        assert_eq!(inspect(&[], "lo"), Ok(Tree::Absent));
    }

    /// Issue 9: `PlanetLab`'s `bwlimit` puts slices under 1:10 and has no 1:100.
    #[test]
    fn bwlimit_tree_is_foreign() {
        let bwlimit = [
            class(0x1, None),
            class(0x10, Some(0x1)),
            class(0x20, Some(0x1)),
            class(0x1001, Some(0x10)),
        ];
        let err = inspect(&bwlimit, "eth0").unwrap_err();
        assert!(err.contains("no class 1:100"), "{err}");
        assert!(err.contains("HTB classes 1:1, 1:10, 1:20, 1:1001"), "{err}");
        assert!(err.contains("tc qdisc del dev eth0 root"), "{err}");
    }

    #[test]
    fn wrong_parent_is_foreign() {
        let mut t = ours();
        t[1] = class(0x10, None);
        let err = inspect(&t, "lo").unwrap_err();
        assert!(
            err.contains("HTB class 1:10 is under the root, bwmon's is under 1:1"),
            "{err}"
        );
    }

    #[test]
    fn other_classes_only_is_foreign() {
        let err = inspect(&[class(0x5, None), class(0x6, Some(0x5))], "lo").unwrap_err();
        assert!(
            err.contains("HTB classes 1:5, 1:6 but no class 1:1, 1:10, 1:100, 1:20"),
            "{err}"
        );
    }

    #[test]
    fn long_lists_are_clipped() {
        let many: Vec<KernelClass> = (0x30..0x40).map(|m| class(m, None)).collect();
        let err = inspect(&many, "lo").unwrap_err();
        assert!(err.contains("1:33, 12 more but"), "{err}");
    }
}
