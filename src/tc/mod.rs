//! Everything bwmon does with the kernel's traffic control: (in `kernel`)
//! the two ways it talks to it over rtnetlink — one dump to read, one batch of
//! changes to write. No `tc` process is involved; `tc` stays what operators
//! and tests use to look.

pub mod batch;
pub mod decode;
pub mod encode;
pub mod htb;
pub mod kernel;
pub mod netlink;
