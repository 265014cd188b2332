//! The kernel's own record of the rtnetlink requests handled in one network
//! namespace: which task sent each one, through which netlink port, when, and
//! every message it carried (type, flags, sequence number). It is the same
//! whether the sender is a `tc` process or bwmon talking rtnetlink in-process
//! (issue 10), so a test that reads it holds on both sides of that switch.
//!
//! Why not `nlmon`: the netlink monitor device is the usual way to see this,
//! but the test kernel is built without it (`CONFIG_NLMON` is not set, and
//! it boots with `nomodule`): `ip link add nlmon0 type nlmon` answers "Unknown
//! device type", in the initial namespace as in any other. Nor can the function
//! tracer be used (tracefs refuses `set_ftrace_filter` there). What the kernel
//! does allow is BPF on tracepoints, so this attaches one with `bpftrace` to
//! `skb:consume_skb`: once rtnetlink has handled a request — every message of
//! one `send` — the kernel frees its buffer, still owned by the namespace's
//! kernel-side `NETLINK_ROUTE` socket (port 0) and still holding the messages
//! from its start. The sender is the task the kernel is running then, and
//! `NETLINK_CB(skb)` names the port it sent from. A dump request is freed
//! when the dump ends (the dump holds a reference), so its time is the end of
//! the dump; it is still before anything its sender does with the answer.

use super::Netns;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Traffic-control message types (include/uapi/linux/rtnetlink.h).
pub const RTM_NEWQDISC: u16 = 36;
pub const RTM_DELQDISC: u16 = 37;
pub const RTM_GETQDISC: u16 = 38;
pub const RTM_NEWTCLASS: u16 = 40;
pub const RTM_DELTCLASS: u16 = 41;
pub const RTM_GETTCLASS: u16 = 42;
pub const RTM_NEWTFILTER: u16 = 44;
pub const RTM_DELTFILTER: u16 = 45;
pub const RTM_GETTFILTER: u16 = 46;
/// `NLM_F_ROOT | NLM_F_MATCH`.
pub const NLM_F_DUMP: u16 = 0x300;

/// The BPF program. `$1` is the watched namespace's inode number. The offsets
/// into the buffer: `skb->cb` (where `struct netlink_skb_parms` lives) is at
/// 40 on 64-bit kernels, the sender's port 12 bytes into it, after its
/// credentials; [`Request::creds_pid`] checks the layout on every request.
const SCRIPT: &str = r#"
tracepoint:skb:consume_skb
{
  $skb = (struct sk_buff *)args->skbaddr;
  $sk = $skb->sk;
  if ($sk != 0 && $sk->__sk_common.skc_family == 16 && $sk->sk_protocol == 0 &&
      $sk->__sk_common.skc_net.net->ns.inum == $1 &&
      ((struct netlink_sock *)$sk)->portid == 0) {
    $base = (uint64)$skb;
    $len = (uint64)$skb->tail;
    $head = (uint64)$skb->head;
    printf("req %llu %d %d %d %d %u %u %llu %s\n", nsecs, pid, tid,
           curtask->real_parent->tgid, curtask->real_parent->real_parent->tgid,
           *(uint32 *)($base + 40), *(uint32 *)($base + 52), $len, comm);
    $off = (uint64)0;
    $n = 0;
    while ($n < 100) {
      if ($off + 16 > $len) { break; }
      $nlh = (struct nlmsghdr *)($head + $off);
      $ml = (uint64)$nlh->nlmsg_len;
      printf("msg %u %u %u %u %llu\n", $nlh->nlmsg_type, $nlh->nlmsg_flags,
             $nlh->nlmsg_seq, $nlh->nlmsg_pid, $ml);
      if ($ml < 16) { break; }
      $off = $off + (($ml + 3) & 0xfffffffc);
      $n = $n + 1;
    }
    if ($off < $len && $n >= 100) { printf("cut %llu\n", $len - $off); }
  }
}
"#;

/// One netlink message of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    /// The header's `nlmsg_pid` (what the sender wrote; 0 as a rule).
    pub pid: u32,
    pub len: u64,
}

impl Message {
    /// A traffic-control message (qdisc, class or filter; any direction).
    pub fn is_tc(&self) -> bool {
        (RTM_NEWQDISC..=RTM_GETTFILTER).contains(&self.kind)
    }

    /// A message that changes traffic control (new, changed or deleted
    /// qdisc, class or filter).
    pub fn is_tc_change(&self) -> bool {
        matches!(
            self.kind,
            RTM_NEWQDISC
                | RTM_DELQDISC
                | RTM_NEWTCLASS
                | RTM_DELTCLASS
                | RTM_NEWTFILTER
                | RTM_DELTFILTER
        )
    }

    /// The dump of every class of a device (`RTM_GETTCLASS` with `NLM_F_DUMP`).
    pub fn is_class_dump(&self) -> bool {
        self.kind == RTM_GETTCLASS && self.flags & NLM_F_DUMP == NLM_F_DUMP
    }

    pub fn name(&self) -> String {
        let base = match self.kind {
            RTM_NEWQDISC => "RTM_NEWQDISC",
            RTM_DELQDISC => "RTM_DELQDISC",
            RTM_GETQDISC => "RTM_GETQDISC",
            RTM_NEWTCLASS => "RTM_NEWTCLASS",
            RTM_DELTCLASS => "RTM_DELTCLASS",
            RTM_GETTCLASS => "RTM_GETTCLASS",
            RTM_NEWTFILTER => "RTM_NEWTFILTER",
            RTM_DELTFILTER => "RTM_DELTFILTER",
            RTM_GETTFILTER => "RTM_GETTFILTER",
            18 => "RTM_GETLINK",
            k => return format!("type {k}"),
        };
        if self.flags & NLM_F_DUMP == NLM_F_DUMP {
            format!("{base} (dump)")
        } else {
            base.to_string()
        }
    }
}

/// One request: the messages of one `send`, as the kernel handled them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// When the kernel was done with it, in `CLOCK_MONOTONIC` ns ([`monotonic_ns`]).
    pub at_ns: u64,
    /// The sending process (its thread group) and thread.
    pub tgid: u32,
    pub tid: u32,
    /// The thread groups of the sender's parent and grandparent.
    pub ancestors: [u32; 2],
    /// The credentials' pid the kernel stored with the request: the sender's
    /// tgid when the buffer layout is the one the script assumes.
    pub creds_pid: u32,
    /// The netlink port (socket) it was sent from.
    pub portid: u32,
    pub len: u64,
    pub comm: String,
    pub messages: Vec<Message>,
    /// Bytes the script did not walk (more than 100 messages in one send).
    pub cut: u64,
}

impl Request {
    pub fn has_tc(&self) -> bool {
        self.messages.iter().any(Message::is_tc)
    }

    pub fn has_tc_change(&self) -> bool {
        self.messages.iter().any(Message::is_tc_change)
    }

    pub fn has_class_dump(&self) -> bool {
        self.messages.iter().any(Message::is_class_dump)
    }

    /// The process among `pids` that sent it, itself or through a child or
    /// grandchild (a `tc` it spawned, or a shell wrapper's `tc`).
    pub fn sent_by(&self, pids: &[u32]) -> Option<u32> {
        [self.tgid, self.ancestors[0], self.ancestors[1]]
            .into_iter()
            .find(|p| pids.contains(p))
    }

    /// Its messages in one line: `RTM_GETTCLASS (dump)`, `3 × RTM_NEWTCLASS, RTM_NEWQDISC`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<(String, usize)> = Vec::new();
        for m in &self.messages {
            let n = m.name();
            match parts.last_mut() {
                Some((last, count)) if *last == n => *count += 1,
                _ => parts.push((n, 1)),
            }
        }
        let text: Vec<String> = parts
            .into_iter()
            .map(|(n, c)| if c == 1 { n } else { format!("{c} × {n}") })
            .collect();
        text.join(", ")
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06} {}[{}] port {}: {}",
            self.at_ns / 1_000_000_000,
            self.at_ns % 1_000_000_000 / 1000,
            self.comm,
            self.tgid,
            self.portid,
            self.summary()
        )
    }
}

/// `CLOCK_MONOTONIC` in ns: the clock of [`Request::at_ns`].
pub fn monotonic_ns() -> u64 {
    let t = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock_gettime");
    u64::try_from(t.tv_sec()).unwrap() * 1_000_000_000 + u64::try_from(t.tv_nsec()).unwrap()
}

/// A running `bpftrace` recording the requests of one namespace.
pub struct RtnlLog {
    child: Option<Child>,
    dir: tempfile::TempDir,
    out: PathBuf,
    ns: String,
    /// Requests before this time (the readiness probes) are not reported.
    pub since_ns: u64,
}

impl RtnlLog {
    /// Starts recording `ns` and returns once a request the test makes there
    /// (`tc qdisc show`) shows up in the record. Needs root and `bpftrace`
    /// (`make deps`); mounts tracefs when it is not mounted.
    pub fn start(ns: &Netns) -> Result<RtnlLog, String> {
        ensure_tracefs()?;
        let inum = fs::metadata(format!("/run/netns/{}", ns.name))
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
            .map_err(|e| format!("stat /run/netns/{}: {e}", ns.name))?;
        let dir = tempfile::Builder::new()
            .prefix("bwmon-rtnl-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let script = dir.path().join("rtnl.bt");
        fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
        let out = dir.path().join("rtnl.log");
        let err =
            fs::File::create(dir.path().join("bpftrace.stderr")).map_err(|e| e.to_string())?;
        // On stdout, not `-o FILE`: only stdout is line-buffered with `-B line`.
        let record = fs::File::create(&out).map_err(|e| e.to_string())?;
        let child = Command::new("bpftrace")
            .args(["-B", "line"])
            .arg(&script)
            .arg(inum.to_string())
            .stdin(Stdio::null())
            .stdout(record)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("cannot run bpftrace ({e}): `make deps` installs it"))?;
        let mut log = RtnlLog {
            child: Some(child),
            dir,
            out,
            ns: ns.name.clone(),
            since_ns: 0,
        };
        // Attached once a probe request of ours is in the record.
        let deadline = Instant::now() + Duration::from_mins(1);
        loop {
            let probe = Command::new("ip")
                .args(["netns", "exec", &log.ns, "tc", "qdisc", "show", "dev", "lo"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("spawn tc: {e}"))?;
            let probe_pid = probe.id();
            let _ = probe.wait_with_output();
            if log
                .read()?
                .iter()
                .any(|r| r.tgid == probe_pid && r.messages.iter().any(|m| m.kind == RTM_GETQDISC))
            {
                break;
            }
            if let Some(status) = log.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                return Err(format!(
                    "bpftrace exited ({status}): {}",
                    log.stderr().trim()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "bpftrace did not record a `tc qdisc show` in {} within 60 s: {}",
                    log.ns,
                    log.stderr().trim()
                ));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        log.since_ns = monotonic_ns();
        Ok(log)
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.path().join("bpftrace.stderr")).unwrap_or_default()
    }

    /// Stops recording and returns every request since [`RtnlLog::since_ns`],
    /// in the kernel's order. Panics when the record lost events or the
    /// buffer layout is not the one the script reads.
    pub fn stop(mut self) -> Vec<Request> {
        self.halt();
        let all = self.read().unwrap_or_else(|e| panic!("{e}"));
        let err = self.stderr();
        for text in [&err, &fs::read_to_string(&self.out).unwrap_or_default()] {
            assert!(
                !text.lines().any(|l| l.starts_with("Lost ")),
                "bpftrace lost events, the record of {} is incomplete: {text}",
                self.ns
            );
        }
        for r in &all {
            assert_eq!(
                r.creds_pid, r.tgid,
                "the request's credentials do not name its sender: the sk_buff layout the \
                 script reads does not hold on this kernel ({r})"
            );
            assert_eq!(r.cut, 0, "a request of more than 100 messages: {r}");
        }
        all.into_iter()
            .filter(|r| r.at_ns >= self.since_ns)
            .collect()
    }

    /// SIGINT (bpftrace then prints what it has and exits), and wait.
    fn halt(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(20);
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("bpftrace did not stop on SIGINT");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The record so far (complete lines only).
    fn read(&self) -> Result<Vec<Request>, String> {
        let text = fs::read_to_string(&self.out).unwrap_or_default();
        let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
        parse(complete)
    }

    /// Where the raw record is, for a failing test to point at.
    pub fn path(&self) -> &Path {
        &self.out
    }
}

impl Drop for RtnlLog {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Parses the script's lines: `req …` then its `msg …` lines (and a `cut`).
pub fn parse(text: &str) -> Result<Vec<Request>, String> {
    let mut out: Vec<Request> = Vec::new();
    for line in text.lines() {
        let w: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| -> Result<u64, String> {
            w.get(i)
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| format!("bad record line {line:?}"))
        };
        let small = |i: usize| -> Result<u32, String> {
            u32::try_from(num(i)?).map_err(|_| format!("bad record line {line:?}"))
        };
        match w.first() {
            Some(&"req") => out.push(Request {
                at_ns: num(1)?,
                tgid: small(2)?,
                tid: small(3)?,
                ancestors: [small(4)?, small(5)?],
                creds_pid: small(6)?,
                portid: small(7)?,
                len: num(8)?,
                comm: w.get(9..).map(|c| c.join(" ")).unwrap_or_default(),
                messages: Vec::new(),
                cut: 0,
            }),
            Some(&"msg") => {
                let m = Message {
                    kind: u16::try_from(num(1)?).map_err(|_| format!("bad type: {line:?}"))?,
                    flags: u16::try_from(num(2)?).map_err(|_| format!("bad flags: {line:?}"))?,
                    seq: small(3)?,
                    pid: small(4)?,
                    len: num(5)?,
                };
                out.last_mut()
                    .ok_or_else(|| format!("message before any request: {line:?}"))?
                    .messages
                    .push(m);
            }
            Some(&"cut") => {
                if let Some(r) = out.last_mut() {
                    r.cut = num(1)?;
                }
            }
            // bpftrace's own lines ("Attaching 1 probe...").
            _ => {}
        }
    }
    Ok(out)
}

/// tracefs, where bpftrace finds the tracepoint's format: mounted at boot on
/// most systems, not on the test VM.
fn ensure_tracefs() -> Result<(), String> {
    let events = Path::new("/sys/kernel/tracing/events/skb/consume_skb");
    if events.exists() {
        return Ok(());
    }
    let out = Command::new("mount")
        .args(["-t", "tracefs", "tracefs", "/sys/kernel/tracing"])
        .output()
        .map_err(|e| format!("mount tracefs: {e}"))?;
    if !events.exists() {
        return Err(format!(
            "no tracepoint skb:consume_skb under /sys/kernel/tracing (mount: {})",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_lines_parse() {
        let text = "Attaching 1 probe...\n\
                    req 100 7 8 5 1 7 7 52 tc\n\
                    msg 42 769 12 0 36\n\
                    req 200 9 9 7 5 9 4242 200 bwmon\n\
                    msg 40 1541 13 0 100\n\
                    msg 36 1541 14 0 100\n";
        let r = parse(text).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r[0].has_class_dump() && !r[0].has_tc_change());
        assert!(r[1].has_tc_change() && !r[1].has_class_dump());
        assert_eq!(r[1].sent_by(&[5]), Some(5));
        assert_eq!(r[1].sent_by(&[1]), None);
        assert_eq!(r[0].summary(), "RTM_GETTCLASS (dump)");
        assert_eq!(r[1].summary(), "RTM_NEWTCLASS, RTM_NEWQDISC");
        assert_eq!(
            r[1].to_string(),
            "0.000000 bwmon[9] port 4242: RTM_NEWTCLASS, RTM_NEWQDISC"
        );
    }
}
