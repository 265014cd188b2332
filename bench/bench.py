#!/usr/bin/env python3
"""bwmon against its floors on the rtnetlink path (issue 10). Run as root: `make bench`.

In a throwaway network namespace on `lo`, for each N (BENCH_N, default
100 1000 4000): build the hierarchy, create N slices (2N + 8 HTB classes),
put traffic on a tenth of them, and time bwmon's runs against three floors
measured in the same namespace, at the same N, in the same run:

  nl floor   examples/nl_floor: one RTM_GETTCLASS dump of every class of
             lo, messages counted, nothing parsed (the least any rtnetlink
             reader of every class does). Beside it, not a target: the same
             floor for bwmon's own request (the classes of qdisc 1: only,
             which spares the kernel a walk of every leaf qdisc per
             datagram), so bwmon's own overhead can be read apart.
  tc dump    `tc -s -d class show dev lo`
  tc batch   `tc -force -batch` of the same changes bwmon makes (its
             `sync --dry-run` lines, which are tc -batch lines)

  run          changes                          compared with (target at N = 4000)
  sync first   every class created              own time = wall - batch µs   (own ≤ 10 % of wall)
  sync steady  nothing                          tc dump (≤ 0.6 ×), nl floor (≤ 1.5 ×)
  sync 10 %    a tenth of the slices recapped   tc dump + tc batch           (≤ 0.8 ×)
  status json  -                                nl floor                     (≤ 1.5 ×)
  every run    peak RSS including children ≤ 16 MiB at every N; 0 tc processes

The first sync is repeated BENCH_REPEAT times (default 5; seconds each at
N = 4000), the runs of milliseconds BENCH_REPEAT_FAST times (default 15:
one slow moment of the machine moves a median of five), each interleaved
with its floors (one of each per repetition, the order rotating), so that machine noise
hits bwmon and the floors alike; reported as median and spread (min..max),
ratios as ratios of medians.

Every command is started by bench/launch.c, not by Python: a process forked
from Python inherits Python's peak RSS in wait4's figure. The launcher's
wait4 ru_maxrss is the peak of the largest process in the tree (bwmon, or an
nft it waited for): "RSS incl. children", what /usr/bin/time -v prints.
bwmon's own peak (VmHWM) comes from its "peak memory: N KiB" log line, the
nft child's own peak from a logging wrapper around nft in separate untimed
runs, so "bwmon + nft" bounds the two being resident at once.

bwmon logs at debug level "rtnetlink: class dump of N classes took X µs"
and "rtnetlink: batch of N changes took X µs"; the batch's µs is the kernel's
time in the batch (plus the encoding, which is bwmon's own but tiny), so
own time = wall - batch µs.

Processes per run are counted with `strace -f -e trace=execve` (successful
execs only) in separate untimed runs of the same kind; whether nft runs in
each timed run is read from a `sync --dry-run` of the same state just before
it (it prints "# nft -f -" when the live set changed).

Results: two tables on stdout and bench/results.json.
"""

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BWMON = os.path.join(ROOT, "target/release/bwmon")
SEND = os.path.join(ROOT, "target/release/examples/send_traffic")
NL_FLOOR = os.path.join(ROOT, "target/release/examples/nl_floor")
LAUNCH_SRC = os.path.join(ROOT, "bench/launch.c")
LAUNCH = os.path.join(ROOT, "target/release/bench-launch")
TC = shutil.which("tc") or "/usr/sbin/tc"
NFT = shutil.which("nft") or "/usr/sbin/nft"
STRACE = shutil.which("strace")
SIZES = [int(n) for n in os.environ.get("BENCH_N", "100 1000 4000").split()]
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
FAST = int(os.environ.get("BENCH_REPEAT_FAST", "15"))
T0 = 1795478400  # 2026-11-24T00:00:00Z
# Only the rtnetlink timings and the peak memory are logged: -vv would also
# format a decision line per class, which is not what is measured.
LOG_SPEC = "bwmon::tc::kernel=debug,bwmon::app=debug"

# Issue 10's targets, at N = 4000 (the largest N measured, if 4000 is not).
TARGETS = {
    "steady_vs_tc_dump": 0.6,
    "steady_vs_nl_floor": 1.5,
    "recap_vs_tc": 0.8,
    "status_vs_nl_floor": 1.5,
    "first_own_share": 0.10,
    "rss_kib": 16 * 1024,
    "tc_spawns": 0,
}


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


class Run:
    """One launched command: wall seconds, wait4's peak RSS (KiB, including
    children), CPU seconds, exit code, stderr and stdout text."""

    def __init__(self, wall, maxrss, utime, stime, rc, err, out):
        self.wall, self.maxrss, self.utime, self.stime = wall, maxrss, utime, stime
        self.rc, self.err, self.out = rc, err, out


class Namespace:
    """The throwaway namespace. The measuring process itself runs inside it
    (re-executed under `ip netns exec`), so no measured command pays for
    `ip netns exec`'s own setup."""

    def __init__(self):
        self.name = f"bwbench-{os.getpid()}"
        subprocess.run(["ip", "netns", "add", self.name], check=True)
        subprocess.run(["ip", "-n", self.name, "link", "set", "lo", "up"], check=True)

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


class Bench:
    def __init__(self, n, work):
        self.n, self.work = n, work
        self.state = os.path.join(work, "state.yaml")
        self.cfg = os.path.join(work, "bwmon.yaml")
        self.cfg_nftlog = os.path.join(work, "bwmon-nftlog.yaml")
        self.nftlog = os.path.join(work, "nft-runs")
        self.res = os.path.join(work, "launch.out")
        self.outfile = os.path.join(work, "stdout")
        self.env = dict(os.environ, RUST_LOG=LOG_SPEC)
        # The nft wrapper (untimed runs only): each nft call's own wall time
        # and peak RSS, through the launcher.
        wrapper = os.path.join(work, "nft-wrapper")
        os.makedirs(self.nftlog)
        with open(wrapper, "w") as f:
            f.write(f'#!/bin/sh\nexec {LAUNCH} {self.nftlog}/$$ {NFT} "$@"\n')
        os.chmod(wrapper, 0o755)
        base = f"state_file: {self.state}\nlock_wait: 60s\nperiod: 1d\nmail:\n  enabled: false\n"
        with open(self.cfg, "w") as f:
            f.write(base + f"nft: {NFT}\n")
        with open(self.cfg_nftlog, "w") as f:
            f.write(base + f"nft: {wrapper}\n")
        self.slivers = os.path.join(work, "slivers.json")
        slivers = {}
        for i in range(1, n + 1):
            rspec = {}
            if i % 10 == 0:
                # The tenth with traffic pass a low threshold; the quota is big
                # enough that the formula stays above the min rate, so their
                # ceils move every minute.
                rspec = {"net_max_kbyte": 20480, "net_thresh_kbyte": 10}
            slivers[f"s{i}"] = {"name": f"s{i}", "xid": i, "_rspec": rspec}
        with open(self.slivers, "w") as f:
            json.dump(slivers, f)

    # -- running things ------------------------------------------------------

    def launch(self, argv, stdin_path=None, check=True):
        with tempfile.TemporaryFile() as errf, open(self.outfile, "wb") as outf:
            stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
            try:
                subprocess.run([LAUNCH, self.res] + argv, stdin=stdin, stdout=outf, stderr=errf,
                               env=self.env, check=False)
            finally:
                if stdin_path:
                    stdin.close()
            errf.seek(0)
            err = errf.read().decode(errors="replace")
        with open(self.res) as f:
            wall_ns, maxrss, ut, st, rc = (int(x) for x in f.read().split())
        with open(self.outfile, "rb") as f:
            out = f.read().decode(errors="replace")
        if check and rc != 0:
            raise RuntimeError(f"{argv[:6]}…: rc {rc}: {err[-2000:]}")
        return Run(wall_ns / 1e9, maxrss, ut / 1e6, st / 1e6, rc, err, out)

    def bwmon_argv(self, args, now, cfg=None):
        return [BWMON, "-c", cfg or self.cfg, "--dev", "lo", "--now", iso(now)] + args

    def bwmon(self, args, now, stdin=True, cfg=None):
        return self.launch(self.bwmon_argv(args, now, cfg), self.slivers if stdin else None)

    def nl_floor(self, *major):
        r = self.launch([NL_FLOOR, "lo", *major])
        m = re.match(r"messages=(\d+) bytes=(\d+)", r.out)
        r.messages, r.bytes = int(m.group(1)), int(m.group(2))
        return r

    def tc_dump(self):
        return self.launch([TC, "-s", "-d", "class", "show", "dev", "lo"])

    def tc_batch(self, text):
        path = os.path.join(self.work, "floor.batch")
        with open(path, "w") as f:
            f.write(text)
        return self.launch([TC, "-force", "-batch", path])

    def dry_run(self, now):
        """The tc lines a sync at `now` would send, and whether it would run nft."""
        r = self.bwmon(["sync", "--dry-run"], now)
        lines, in_tc, nft = [], False, False
        for line in r.out.splitlines():
            if line.startswith("#"):
                in_tc = line.startswith("# tc commands")
                nft = nft or line.startswith("# nft -f -")
            elif in_tc:
                lines.append(line)
        return "".join(l + "\n" for l in lines), len(lines), nft

    def fresh_hierarchy(self):
        subprocess.run([TC, "qdisc", "del", "dev", "lo", "root"], stderr=subprocess.DEVNULL)
        for p in (self.state, self.state + ".bak", self.state + ".last-sync"):
            if os.path.exists(p):
                os.unlink(p)
        self.bwmon(["init", "--bwcap", "1gbit"], T0, stdin=False)

    def spawns(self, args, now, stdin=True):
        """Processes one run starts (successful execs, by program), from strace."""
        log = os.path.join(self.work, "strace.log")
        argv = [STRACE, "-f", "-qq", "-z", "-e", "trace=execve", "-e", "signal=none", "-o", log,
                "--"] + self.bwmon_argv(args, now)
        with open(self.slivers if stdin else os.devnull, "rb") as inp:
            r = subprocess.run(argv, stdin=inp, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env=self.env)
        assert r.returncode == 0, r.stderr[-2000:]
        counts = {}
        execs = re.findall(r'^(\d+)\s+execve\("([^"]+)"', open(log).read(), re.M)
        first_pid = execs[0][0]
        for pid, path in execs:
            if pid != first_pid:
                name = os.path.basename(path)
                counts[name] = counts.get(name, 0) + 1
        return counts

    def nft_cost(self, args, now, stdin=True):
        """The nft calls of one (untimed) run through the wrapper: each one's
        wall seconds and own peak RSS; and bwmon's own peak in that run."""
        for f in os.listdir(self.nftlog):
            os.unlink(os.path.join(self.nftlog, f))
        r = self.bwmon(args, now, stdin=stdin, cfg=self.cfg_nftlog)
        calls = []
        for f in sorted(os.listdir(self.nftlog)):
            wall_ns, maxrss, _, _, rc = (int(x) for x in open(os.path.join(self.nftlog, f)).read().split())
            calls.append({"wall": wall_ns / 1e9, "rss_kib": maxrss, "rc": rc})
        return {"calls": calls, "bwmon_own_kib": own_peak(r.err)}

    # -- the runs ------------------------------------------------------------

    def run(self):
        n = self.n
        r = {"n": n}
        rot = lambda k, fs: fs[k % len(fs):] + fs[:k % len(fs)]  # noqa: E731

        # First sync: every class created, from the hierarchy `init` leaves.
        # Per repetition: bwmon on a fresh hierarchy, then the tc floor (the
        # dump of that hierarchy and the same adds as one batch) on another.
        first, fl_dump, fl_batch, nft_runs, changes = [], [], [], [], None
        for k in range(REPEAT):
            self.fresh_hierarchy()
            text, changes, nft = self.dry_run(T0)
            nft_runs.append(nft)
            first.append(self.bwmon(["sync"], T0))
            self.fresh_hierarchy()
            fl_dump.append(self.tc_dump())
            fl_batch.append(self.tc_batch(text))
        r["first"] = summarize(first, own=lambda x: x.wall - batch_time(x.err))
        r["first"].update(changes=changes, nft_in_timed_runs=nft_runs,
                          floor_tc_dump=stats([x.wall for x in fl_dump]),
                          floor_tc_batch=stats([x.wall for x in fl_batch]),
                          floor_tc_batch_rss_kib=max(x.maxrss for x in fl_batch))
        self.fresh_hierarchy()
        r["first"]["spawns"] = self.spawns(["sync"], T0)
        self.fresh_hierarchy()
        r["first"]["nft"] = self.nft_cost(["sync"], T0)

        # Traffic on a tenth, then the sync that caps them (not timed).
        self.fresh_hierarchy()
        self.bwmon(["sync"], T0)
        for i in range(10, n + 1, 10):
            subprocess.run([SEND, str(i), "20000"], check=True)
        time.sleep(0.5)
        now = T0 + 3600
        self.bwmon(["sync"], now)

        # Steady: same time, same counters: nothing to change.
        steady, nl, nl1, dump, nft_runs = [], [], [], [], []
        for k in range(FAST):
            text, c, nft = self.dry_run(now)
            assert c == 0, f"the steady run would change {c} classes"
            nft_runs.append(nft)
            for f in rot(k, [lambda: steady.append(self.bwmon(["sync"], now)),
                             lambda: nl.append(self.nl_floor()),
                             lambda: nl1.append(self.nl_floor("1")),
                             lambda: dump.append(self.tc_dump())]):
                f()
        r["steady"] = summarize(steady, own=lambda x: x.wall - batch_time(x.err))
        assert nl1[0].messages == nl[0].messages, "qdisc 1: holds every class"
        r["steady"].update(nft_in_timed_runs=nft_runs, floor_nl=stats([x.wall for x in nl]),
                           floor_nl_1=stats([x.wall for x in nl1]),
                           floor_tc_dump=stats([x.wall for x in dump]))
        r["steady"]["spawns"] = self.spawns(["sync"], now)
        r["nl_messages"], r["nl_bytes"] = nl[0].messages, nl[0].bytes
        r["tc_dump_bytes"] = len(dump[0].out.encode())
        r["floor_rss_kib"] = {"nl": max(x.maxrss for x in nl), "tc_dump": max(x.maxrss for x in dump)}

        # A tenth recapped: each run a minute later, so their ceils move. The
        # tc batch replays the same changes after bwmon made them (the kernel
        # does the same work for a change to the value a class already has).
        recap, batch, dump, nl, nft_runs, changes = [], [], [], [], [], []
        nows = [now + 60 * (k + 1) for k in range(FAST + 1)]
        for k in range(FAST):
            text, c, nft = self.dry_run(nows[k])
            assert c >= n // 10, f"the 10 % run would change only {c} classes"
            changes.append(c)
            nft_runs.append(nft)
            recap.append(self.bwmon(["sync"], nows[k]))
            for f in rot(k, [lambda: batch.append(self.tc_batch(text)),
                             lambda: dump.append(self.tc_dump()),
                             lambda: nl.append(self.nl_floor())]):
                f()
        r["recap"] = summarize(recap, own=lambda x: x.wall - batch_time(x.err))
        r["recap"].update(changes=changes, nft_in_timed_runs=nft_runs,
                          floor_tc_batch=stats([x.wall for x in batch]),
                          floor_tc_dump=stats([x.wall for x in dump]),
                          floor_nl=stats([x.wall for x in nl]))
        r["recap"]["spawns"] = self.spawns(["sync"], nows[FAST])
        last = nows[FAST] + 60

        # Status: it reads the nft map in-process on every run (while the
        # dump runs), so an nft process here would be a regression.
        status, nl, nl1, dump = [], [], [], []
        args = ["status", "--format", "json"]
        for k in range(FAST):
            for f in rot(k, [lambda: status.append(self.bwmon(args, last, stdin=False)),
                             lambda: nl.append(self.nl_floor()),
                             lambda: nl1.append(self.nl_floor("1")),
                             lambda: dump.append(self.tc_dump())]):
                f()
        r["status"] = summarize(status, own=lambda x: x.wall)
        r["status"].update(floor_nl=stats([x.wall for x in nl]),
                           floor_nl_1=stats([x.wall for x in nl1]),
                           floor_tc_dump=stats([x.wall for x in dump]),
                           output_bytes=len(status[0].out.encode()))
        r["status"]["spawns"] = self.spawns(args, last, stdin=False)
        r["status"]["nft"] = self.nft_cost(args, last, stdin=False)
        for kind in ("steady", "recap"):
            r[kind]["nft"] = {"calls": [], "bwmon_own_kib": r[kind]["bwmon_own_kib"]}

        r["state_bytes"] = os.path.getsize(self.state)
        r["classes"] = r["nl_messages"]
        r["launcher_rss_kib"] = self.launch(["true"]).maxrss
        return r


def batch_time(stderr):
    """Seconds in the batch (kernel time), from bwmon's debug log."""
    return sum(int(m) for m in re.findall(r"rtnetlink: batch of \d+ changes took (\d+) µs", stderr)) / 1e6


def dump_time(stderr):
    return sum(int(m) for m in re.findall(r"rtnetlink: class dump of \d+ classes took (\d+) µs", stderr)) / 1e6


def own_peak(stderr):
    m = re.search(r"peak memory: (\d+) KiB", stderr)
    return int(m.group(1)) if m else None


def summarize(runs, own):
    return {
        "wall": stats([x.wall for x in runs]),
        "own": stats([max(own(x), 0.0) for x in runs]),
        "batch": stats([batch_time(x.err) for x in runs]),
        "dump": stats([dump_time(x.err) for x in runs]),
        "cpu": stats([x.utime + x.stime for x in runs]),
        "rss_with_children_kib": max(x.maxrss for x in runs),
        "bwmon_own_kib": max(own_peak(x.err) or 0 for x in runs),
    }


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--inside":
        # The child: one N, measured from inside the namespace.
        n, out = int(sys.argv[2]), sys.argv[3]
        work = tempfile.mkdtemp(prefix=f"bwbench-{n}-")
        try:
            result = Bench(n, work).run()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with open(out, "w") as f:
            json.dump(result, f)
        return
    if os.geteuid() != 0:
        sys.exit("make bench needs root (network namespace, rtnetlink, tc)")
    for exe in (BWMON, SEND, NL_FLOOR):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} missing: run `make bench` (cargo build --release --locked --bin bwmon "
                     "--example send_traffic --example nl_floor)")
    if not STRACE:
        sys.exit("strace missing (it counts the processes bwmon starts): apt-get install strace")
    if not os.path.exists(LAUNCH) or os.path.getmtime(LAUNCH) < os.path.getmtime(LAUNCH_SRC):
        cc = os.environ.get("CC", "cc")
        subprocess.run([cc, "-O2", "-Wall", "-o", LAUNCH, LAUNCH_SRC], check=True)
    results = {"machine": machine(), "repeat": REPEAT, "repeat_fast": FAST, "targets": TARGETS, "sizes": []}
    for n in SIZES:
        ns = Namespace()
        out = tempfile.mktemp(prefix=f"bwbench-{n}-", suffix=".json")
        try:
            print(f"N = {n} …", file=sys.stderr, flush=True)
            subprocess.run(["ip", "netns", "exec", ns.name, sys.executable, os.path.abspath(__file__),
                            "--inside", str(n), out], check=True)
            with open(out) as f:
                results["sizes"].append(json.load(f))
        finally:
            ns.close()
            if os.path.exists(out):
                os.unlink(out)
    results["verdicts"] = verdicts(results)
    out = os.path.join(ROOT, "bench/results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    print()
    print(targets_table(results))
    print(f"\nfigures also in {os.path.relpath(out, ROOT)}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
        "tc": subprocess.run([TC, "-V"], capture_output=True, text=True).stdout.strip(),
        "nft": subprocess.run([NFT, "-v"], capture_output=True, text=True).stdout.strip(),
    }


def med(s):
    return s["median"]


def ratios(r):
    """The compared figures of one N: (key, label, bwmon s, floor label, floor s)."""
    st, rc, ss, fs = r["steady"], r["recap"], r["status"], r["first"]
    return [
        ("first_own_share", "sync first", med(fs["own"]), "wall (own = wall - batch)", med(fs["wall"])),
        ("steady_vs_tc_dump", "sync steady", med(st["wall"]), "tc dump", med(st["floor_tc_dump"])),
        ("steady_vs_nl_floor", "sync steady", med(st["wall"]), "nl floor", med(st["floor_nl"])),
        ("recap_vs_tc", "sync 10%", med(rc["wall"]), "tc dump + tc batch",
         med(rc["floor_tc_dump"]) + med(rc["floor_tc_batch"])),
        ("status_vs_nl_floor", "status json", med(ss["wall"]), "nl floor", med(ss["floor_nl"])),
    ]


def spawn_counts(s):
    return s["spawns"].get("tc", 0), sum(v for k, v in s["spawns"].items() if k != "tc")


def peak_incl_children(s):
    """wait4's figure (largest process of the tree), and bwmon's own peak
    plus the largest nft it ran (both can be resident at once)."""
    nft = max((c["rss_kib"] for c in s.get("nft", {}).get("calls", [])), default=0)
    return s["rss_with_children_kib"], s["bwmon_own_kib"] + nft


def judged_n(res):
    ns = [r["n"] for r in res["sizes"]]
    return 4000 if 4000 in ns else max(ns)


def verdicts(res):
    jn = judged_n(res)
    out = {}
    for r in res["sizes"]:
        for key, _, a, _, b in ratios(r):
            if r["n"] == jn:
                out[key] = {"n": jn, "ratio": a / b, "target": TARGETS[key], "holds": a / b <= TARGETS[key]}
    worst = max((peak_incl_children(r[k])[0], r["n"], k) for r in res["sizes"]
                for k in ("first", "steady", "recap", "status"))
    worst_sum = max((peak_incl_children(r[k])[1], r["n"], k) for r in res["sizes"]
                    for k in ("first", "steady", "recap", "status"))
    out["rss_kib"] = {"max": worst[0], "at": worst[1:], "max_bwmon_plus_nft": worst_sum[0],
                      "sum_at": worst_sum[1:], "target": TARGETS["rss_kib"],
                      "holds": worst[0] <= TARGETS["rss_kib"]}
    tcs = max(spawn_counts(r[k])[0] for r in res["sizes"] for k in ("first", "steady", "recap", "status"))
    out["tc_spawns"] = {"max": tcs, "target": 0, "holds": tcs == 0}
    return out


def ms(x):
    return f"{x * 1000:.1f}"


def table(res):
    jn = judged_n(res)
    lines = []
    h = (f"{'N':>5} {'run':<12} {'bwmon ms':>9} {'spread':>15} {'own ms':>7}  {'compared with':<26}"
         f"{'ms':>7} {'ratio':>6} {'target':>7} {'holds?':<7} {'tc':>2} {'nft':>3} {'RSS MiB':>7}")
    lines.append(h)
    lines.append("-" * len(h))
    for r in res["sizes"]:
        for key, label, a, flabel, b in ratios(r):
            kind = {"sync first": "first", "sync steady": "steady", "sync 10%": "recap",
                    "status json": "status"}[label]
            s = r[kind]
            w = s["wall"]
            own = med(s["own"])
            ratio = a / b
            target, verdict = "", ""
            if r["n"] == jn:
                t = TARGETS[key]
                target = f"≤{t:.2f}"
                verdict = "holds" if ratio <= t else "MISSES"
            tc, nft = spawn_counts(s)
            rss = peak_incl_children(s)[0] / 1024
            lines.append(
                f"{r['n']:>5} {label:<12} {ms(med(w)):>9} {ms(w['min']) + '..' + ms(w['max']):>15} "
                f"{ms(own):>7}  {flabel:<26}{ms(b):>7} {ratio:6.2f} {target:>7} {verdict:<7} "
                f"{tc:>2} {nft:>3} {rss:7.1f}"
            )
        st = r["steady"]
        lines.append(
            f"{r['n']:>5} floors       nl floor {ms(med(st['floor_nl']))} ms ({r['nl_messages']} messages, "
            f"{r['nl_bytes'] / 1e6:.2f} MB), of 1: only {ms(med(st['floor_nl_1']))} ms | tc dump {ms(med(st['floor_tc_dump']))} ms | "
            f"tc batch: {r['first']['changes']} adds {ms(med(r['first']['floor_tc_batch']))} ms, "
            f"{r['recap']['changes'][0]} changes {ms(med(r['recap']['floor_tc_batch']))} ms | "
            f"state {r['state_bytes'] / 1e6:.2f} MB"
        )
        ss = r["status"]
        lines.append(
            f"{r['n']:>5} same request  vs the nl floor of 1: only (no target): sync steady "
            f"{med(st['wall']) / med(st['floor_nl_1']):.2f} ×, status json "
            f"{med(ss['wall']) / med(ss['floor_nl_1']):.2f} ×"
        )
        nft = [(label, c) for label, kind in (("first sync: nft -f", "first"), ("status: nft -j list", "status"))
               for c in r[kind]["nft"]["calls"]]
        if nft:
            lines.append(f"{r['n']:>5} nft          " + " | ".join(
                f"{label} {ms(c['wall'])} ms, {c['rss_kib'] / 1024:.1f} MiB" for label, c in nft)
                + f" | bwmon's own peak {max(r[k]['bwmon_own_kib'] for k in ('first', 'steady', 'recap', 'status')) / 1024:.1f} MiB")
    lines.append("")
    lines.append("own ms: sync = wall - the batch's µs (kernel time); status = wall (it has no batch).")
    lines.append("tc, nft: processes per run (strace, separate untimed runs). RSS: wait4's peak including "
                 "children (largest process of the tree).")
    return "\n".join(lines)


def targets_table(res):
    v = verdicts(res)
    jn = judged_n(res)
    sizes = {r["n"]: r for r in res["sizes"]}
    r = sizes[jn]
    rows = []
    for key, label, a, flabel, b in ratios(r):
        if key == "first_own_share":
            fig = f"own {ms(a)} ms of {ms(b)} ms"
            name = "first sync: own time ≤ 10 % of total"
        else:
            fig = f"{ms(a)} ms vs {flabel} {ms(b)} ms"
            name = f"{label} ≤ {TARGETS[key]} × {flabel}"
        rows.append((name, fig, f"{a / b:.2f}", "holds" if v[key]["holds"] else "MISSES"))
    rv = v["rss_kib"]
    rows.append(("peak RSS incl. children ≤ 16 MiB, every N",
                 f"max {rv['max'] / 1024:.1f} MiB (N={rv['at'][0]} {rv['at'][1]}); bwmon+nft "
                 f"{rv['max_bwmon_plus_nft'] / 1024:.1f} MiB", "-", "holds" if rv["holds"] else "MISSES"))
    nft = {k: sorted({spawn_counts(x[k])[1] for x in res["sizes"]}) for k in ("first", "steady", "recap", "status")}
    each = lambda k: "/".join(str(c) for c in nft[k])  # noqa: E731
    rows.append(("0 tc processes per run, every N",
                 f"tc {v['tc_spawns']['max']}; nft (every N): first {each('first')}, steady {each('steady')}, "
                 f"10% {each('recap')}, status {each('status')}", "-",
                 "holds" if v["tc_spawns"]["holds"] else "MISSES"))
    w = max(len(x[0]) for x in rows)
    wf = max(len(x[1]) for x in rows)
    out = [f"Targets at N = {jn}", f"{'target':<{w}}  {'figure':<{wf}}  {'ratio':>5}  holds/misses",
           "-" * (w + wf + 22)]
    out += [f"{a:<{w}}  {b:<{wf}}  {c:>5}  {d}" for a, b, c, d in rows]
    return "\n".join(out)


if __name__ == "__main__":
    main()
