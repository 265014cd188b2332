//! What the commands ask of the kernel's traffic control, over rtnetlink: one
//! class dump to read, the root qdisc, and one batch of changes to write. No
//! `tc` process (SPEC §4): a sync is one dump and one batch, whatever N.

use super::batch::Batch;
use super::decode::{ClassDump, DumpError, Feed, Qdisc, QdiscDump};
use super::encode::{self, Dump};
use super::htb::Psched;
use super::netlink::{Refusal, Rtnl, ends_dump};
use crate::classes::KernelClass;
use crate::error::Fatal;
use std::collections::BTreeMap;
use std::time::Instant;

/// A dump that keeps changing under us is read this many times at most.
const DUMP_ATTEMPTS: usize = 3;

/// The classes of bwmon's root qdisc (SPEC §4: `1:`).
const OURS: Dump = Dump::ClassesOf(crate::policy::ROOT_CLASS.major);

fn decode_error(dev: &str, e: &super::decode::DecodeError) -> Fatal {
    Fatal::Unavailable(format!("cannot read the kernel's dump of {dev}: {e}"))
}

/// How a batch went: the changes (by index) the kernel refused, and why.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchOutcome {
    pub failed: BTreeMap<usize, Refusal>,
}

/// The device bwmon works on, and the socket to reach its traffic control.
pub struct Kernel {
    rtnl: Rtnl,
    /// The packet scheduler's clock, which sets the bursts as tc would.
    clock: Psched,
}

impl Kernel {
    pub fn open(dev: &str) -> Result<Kernel, Fatal> {
        // tc reads the clock from here too; every kernel with high-resolution
        // timers says the same.
        let clock = std::fs::read_to_string("/proc/net/psched")
            .ok()
            .and_then(|t| Psched::parse(&t).ok())
            .unwrap_or(Psched::HIGH_RES);
        Ok(Kernel {
            rtnl: Rtnl::open(dev)?,
            clock,
        })
    }

    pub fn dev(&self) -> &str {
        &self.rtnl.dev
    }

    /// Every HTB class on the device with its counter and exact rates. A dump
    /// the kernel marks interrupted (or that lists a class twice) is read again.
    ///
    /// Only the classes of bwmon's root qdisc `1:` are asked for, which is
    /// every class of bwmon's tree. None there (no hierarchy yet, or another
    /// tree's root) is read again as every class of the device, so that what
    /// is there can be named (`hierarchy::inspect`).
    pub fn dump_classes(&mut self) -> Result<Vec<KernelClass>, Fatal> {
        let ours = self.read_classes(OURS)?;
        self.or_every_class(ours)
    }

    fn or_every_class(&mut self, ours: Vec<KernelClass>) -> Result<Vec<KernelClass>, Fatal> {
        if ours.is_empty() {
            self.read_classes(Dump::Classes)
        } else {
            Ok(ours)
        }
    }

    fn read_classes(&mut self, what: Dump) -> Result<Vec<KernelClass>, Fatal> {
        for _ in 0..DUMP_ATTEMPTS {
            let started = Instant::now();
            let seq = self.rtnl.reserve_seq(1);
            let mut dump = ClassDump::new(seq, self.rtnl.ifindex);
            self.dump(what, seq, &mut |buf| dump.feed(buf))?;
            if let Some(classes) = self.class_dump_end(dump, started)? {
                return Ok(classes);
            }
        }
        Err(Fatal::Unavailable(format!(
            "the class dump of {} kept being interrupted; try again",
            self.dev()
        )))
    }

    /// [`Kernel::dump_classes`] while `work` runs on this thread. A second
    /// thread only receives (the kernel makes the next datagram as each one
    /// is read, so that thread's time is the kernel's, the run's critical
    /// path); a third decodes each datagram and hands its buffer back to be
    /// received into again. Measured at 4,000 slices: decoding on the
    /// receiving thread put 2 ms of it on the critical path, and copying each
    /// datagram out for `work`'s thread to decode later cost 2 MB of fresh
    /// memory there; the few recycled buffers cost neither. An interrupted
    /// dump is read again the plain way.
    pub fn dump_classes_while<R>(
        &mut self,
        work: impl FnOnce() -> R,
    ) -> (Result<Vec<KernelClass>, Fatal>, R) {
        let started = Instant::now();
        let seq = self.rtnl.reserve_seq(1);
        let ifindex = self.rtnl.ifindex;
        let request = encode::dump_request(OURS, ifindex, seq);
        let rtnl = &mut self.rtnl;
        let (received, out) = std::thread::scope(|scope| {
            // At most a few datagrams between the threads; their buffers go
            // back to the reader once decoded.
            let (full, to_decode) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
            let (emptied, reuse) = std::sync::mpsc::channel::<Vec<u8>>();
            let decoding = scope.spawn(move || {
                let mut dump = ClassDump::new(seq, ifindex);
                let mut decoded = Ok(Feed::More);
                for buf in to_decode {
                    if decoded.is_ok() {
                        decoded = dump.feed(&buf);
                    }
                    let _ = emptied.send(buf);
                }
                (dump, decoded)
            });
            let reader = scope.spawn(move || {
                rtnl.dump_buffers(
                    &request,
                    &mut || reuse.try_recv().unwrap_or_default(),
                    &mut |buf| {
                        // The last datagram can hold classes before its
                        // NLMSG_DONE: every one goes to the decoder. One
                        // gone has panicked, which its join reports.
                        let end = ends_dump(&buf, seq);
                        Ok(full.send(buf).is_err() || end)
                    },
                )
            });
            let out = work();
            let received = reader.join().unwrap_or_else(|_| {
                Err(Fatal::Unavailable("the class dump thread panicked".into()))
            });
            let (dump, decoded) = decoding.join().unwrap_or_else(|_| {
                (
                    ClassDump::new(seq, ifindex),
                    Err(super::decode::DecodeError::new(
                        "the dump's decoder panicked",
                    )),
                )
            });
            ((received, dump, decoded), out)
        });
        let (received, dump, decoded) = received;
        let classes = received
            .and_then(|()| decoded.map_err(|e| decode_error(self.dev(), &e)))
            .and_then(|_| self.class_dump_end(dump, started))
            .and_then(|classes| match classes {
                Some(classes) => self.or_every_class(classes),
                None => self.dump_classes(),
            });
        (classes, out)
    }

    /// A class dump read to its end: its classes, or `None` when the kernel
    /// says it was interrupted (to be read again).
    fn class_dump_end(
        &self,
        dump: ClassDump,
        started: Instant,
    ) -> Result<Option<Vec<KernelClass>>, Fatal> {
        match dump.finish() {
            Ok(classes) => {
                log::debug!(
                    "rtnetlink: class dump of {} classes took {} µs",
                    classes.len(),
                    started.elapsed().as_micros()
                );
                Ok(Some(classes))
            }
            Err(DumpError::Interrupted) => {
                log::debug!("class dump interrupted, reading again");
                Ok(None)
            }
            Err(e) => Err(self.dump_error("classes", &e)),
        }
    }

    /// The qdiscs of the device (the root one and the leaves).
    pub fn dump_qdiscs(&mut self) -> Result<Vec<Qdisc>, Fatal> {
        for _ in 0..DUMP_ATTEMPTS {
            let seq = self.rtnl.reserve_seq(1);
            let mut dump = QdiscDump::new(seq, self.rtnl.ifindex);
            self.dump(Dump::Qdiscs, seq, &mut |buf| dump.feed(buf))?;
            match dump.finish() {
                Ok(q) => return Ok(q),
                Err(DumpError::Interrupted) => log::debug!("qdisc dump interrupted, reading again"),
                Err(e) => return Err(self.dump_error("qdiscs", &e)),
            }
        }
        Err(Fatal::Unavailable(format!(
            "the qdisc dump of {} kept being interrupted; try again",
            self.dev()
        )))
    }

    /// The device's root qdisc (the kernel's default one, `noqueue 0:`, too).
    pub fn root_qdisc(&mut self) -> Result<Option<Qdisc>, Fatal> {
        Ok(self.dump_qdiscs()?.into_iter().find(|q| q.parent.is_none()))
    }

    fn dump(
        &mut self,
        what: Dump,
        seq: u32,
        feed: &mut dyn FnMut(&[u8]) -> Result<Feed, super::decode::DecodeError>,
    ) -> Result<(), Fatal> {
        let request = encode::dump_request(what, self.rtnl.ifindex, seq);
        let dev = self.rtnl.dev.clone();
        self.rtnl.dump(&request, &mut |buf| match feed(buf) {
            Ok(Feed::Done) => Ok(true),
            Ok(Feed::More) => Ok(false),
            Err(e) => Err(decode_error(&dev, &e)),
        })
    }

    fn dump_error(&self, what: &str, e: &DumpError) -> Fatal {
        Fatal::Unavailable(format!("dumping the {what} of {}: {e}", self.dev()))
    }

    /// Sends every change of `batch` at once; the kernel applies them in
    /// order and refuses some on their own (a refused change does not stop the
    /// others). Nothing is sent for an empty batch.
    pub fn run_batch(&mut self, batch: &Batch) -> Result<BatchOutcome, Fatal> {
        if batch.changes.is_empty() {
            return Ok(BatchOutcome::default());
        }
        let started = Instant::now();
        let first = self.rtnl.reserve_seq(batch.changes.len());
        let messages: Vec<Vec<u8>> = batch
            .changes
            .iter()
            .zip(0u32..)
            .map(|(c, i)| {
                encode::change_message(c, self.rtnl.ifindex, first.wrapping_add(i), &self.clock)
            })
            .collect();
        let answers = self.rtnl.send_batch(&messages, first);
        log::debug!(
            "rtnetlink: batch of {} changes took {} µs",
            messages.len(),
            started.elapsed().as_micros()
        );
        let failed = answers
            .into_iter()
            .enumerate()
            .filter_map(|(i, r)| r.map(|r| (i, r)))
            .collect();
        Ok(BatchOutcome { failed })
    }
}
