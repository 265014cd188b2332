//! Everything bwmon knows about tc: the class handles it uses, the parsed view
//! of one `tc -s -d class show` dump, and (in `run`) the two ways it talks to
//! tc — one dump to read, one `tc -force -batch -` to write.

pub mod batch;
pub mod decode;
pub mod encode;
pub mod htb;
pub mod kernel;
pub mod netlink;
pub mod parse;
pub mod run;

use crate::units::{Bytes, Rate};
use std::fmt;

/// A tc handle `major:minor`, both hex as tc prints them (`1:1fff`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ClassId {
    pub major: u16,
    pub minor: u16,
}

impl ClassId {
    pub const fn new(major: u16, minor: u16) -> Self {
        ClassId { major, minor }
    }
}

impl fmt::Display for ClassId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:{:x}", self.major, self.minor)
    }
}

/// A rate as tc printed it. tc prints truncated (newer iproute2) or rounded
/// (older) figures such as `1234Kbit`, so a printed rate is only known to
/// within `precision` bit/s: one unit for figures of 1000 units or more
/// (`1234Kbit` ± 1000), exact below that, where tc only steps up a unit when
/// the division was exact (`100Mbit` is 100000Kbit ± 1000).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PrintedRate {
    pub shown: Rate,
    pub precision: u64,
}

impl PrintedRate {
    /// Whether the kernel could be holding `applied`: the kernel keeps bytes/s,
    /// and tc prints that within its precision, truncating or rounding.
    pub fn matches(&self, applied: Rate) -> bool {
        let kept = applied.as_kernel_keeps().0;
        kept.abs_diff(self.shown.0) < self.precision.max(1)
    }
}

/// One HTB class as read from the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelClass {
    pub id: ClassId,
    /// `None` for a class directly under the qdisc (`root` in tc's words).
    pub parent: Option<ClassId>,
    pub rate: PrintedRate,
    pub ceil: PrintedRate,
    /// Printed for leaf classes only (and not by every iproute2 release).
    pub quantum: Option<u32>,
    /// The first `Sent N bytes` line after the class header (offloaded classes
    /// add `Sent software`/`Sent hardware` lines; those do not count).
    pub sent: Bytes,
}
