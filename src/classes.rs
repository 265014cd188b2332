//! The kernel's HTB classes as plain values — a handle, and one class as a
//! dump shows it — owned by neither side: `tc` decodes the dump into them,
//! the policy and the views read them, so neither imports the other for it.

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

/// One HTB class as read from the dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelClass {
    pub id: ClassId,
    /// `None` for a class directly under the qdisc (`root` in tc's words).
    pub parent: Option<ClassId>,
    /// Exact, as the kernel keeps it: bytes/s × 8 (64-bit).
    pub rate: Rate,
    pub ceil: Rate,
    /// For leaf classes only: the kernel ignores an interior class's.
    pub quantum: Option<u32>,
    /// The basic byte counter (software and offloaded hardware together).
    pub sent: Bytes,
    /// The handle of a leaf class's qdisc (`1101:` for bwmon's own leaf of
    /// 1:1101); `None` for interior classes.
    pub leaf: Option<ClassId>,
}
