#!/usr/bin/env python3
"""bwmon against the tc floor (issue 5). Run as root: `make bench`.

In a throwaway network namespace on `lo`, for each N: build the hierarchy,
create N slices, put traffic on a tenth of them, and time bwmon's runs
against what tc itself costs for the same work:

  sync first   all classes created         floor: one dump + one batch of the same adds
  sync steady  nothing to change            floor: one dump
  sync 10 %    a tenth of the slices recapped  floor: one dump + one batch of the same changes
  status json                               floor: one dump

Each is repeated (BENCH_REPEAT, default 5) and reported as median and spread
(min..max). bwmon's own time is its wall time minus the time it spent waiting
for tc (it logs each tc call's duration at debug level, RUST_LOG). Peak RSS is the kernel's
bwmon's own VmHWM (it logs it at -vv); the wait4(2) figure that
/usr/bin/time -v prints, which also counts the tc processes bwmon waited for,
is kept in the JSON as peak_rss_with_children_kib. tc processes per run are counted with a logging wrapper in separate,
untimed runs. Results: a table on stdout and bench/results.json.
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
TC = shutil.which("tc") or "/usr/sbin/tc"
SIZES = [int(n) for n in os.environ.get("BENCH_N", "100 1000 4000").split()]
REPEAT = int(os.environ.get("BENCH_REPEAT", "5"))
T0 = 1795478400  # 2026-11-24T00:00:00Z


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


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


class Inside:
    """Commands run as they are: this process is already in the namespace."""

    @staticmethod
    def cmd(argv):
        return argv


def measure(argv, stdin_path=None):
    """One run: wall seconds, peak RSS (KiB) of the process from wait4, stderr text, rc."""
    with tempfile.TemporaryFile() as errf, tempfile.TemporaryFile() as outf:
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        start = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            try:
                if stdin_path:
                    os.dup2(stdin.fileno(), 0)
                os.dup2(outf.fileno(), 1)
                os.dup2(errf.fileno(), 2)
                os.execvp(argv[0], argv)
            finally:
                os._exit(127)
        _, status, usage = os.wait4(pid, 0)
        secs = time.perf_counter() - start
        if stdin_path:
            stdin.close()
        errf.seek(0)
        err = errf.read().decode(errors="replace")
        rc = os.waitstatus_to_exitcode(status)
        return secs, usage.ru_maxrss, err, rc


def tc_time(stderr):
    """Seconds bwmon spent waiting for tc, from its -vv log."""
    return sum(int(m) for m in re.findall(r"tc: .* took (\d+) µs", stderr)) / 1e6


def stats(xs):
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "runs": xs}


class Bench:
    def __init__(self, ns, n, work):
        self.ns, self.n, self.work = ns, n, work
        self.state = os.path.join(work, "state.yaml")
        self.cfg = os.path.join(work, "bwmon.yaml")
        self.cfg_count = os.path.join(work, "bwmon-count.yaml")
        self.tclog = os.path.join(work, "tc.log")
        self.wrapper = os.path.join(work, "tc-wrapper")
        with open(self.wrapper, "w") as f:
            f.write(f"""#!/bin/sh
echo "$*" >>{self.tclog}
case "$*" in *-batch*) tee -a {self.tclog}.batch | exec {TC} "$@" ;; esac
exec {TC} "$@"
""")
        os.chmod(self.wrapper, 0o755)
        base = f"state_file: {self.state}\nlock_wait: 60s\nperiod: 1d\nmail:\n  enabled: false\n"
        with open(self.cfg, "w") as f:
            f.write(base + f"tc: {TC}\n")
        with open(self.cfg_count, "w") as f:
            f.write(base + f"tc: {self.wrapper}\n")
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

    def bwmon(self, args, now, count=False, stdin=True):
        cfg = self.cfg_count if count else self.cfg
        # Only the tc timings and the peak memory are logged: -vv would also
        # format a decision line per class, which is not what is measured.
        argv = self.ns.cmd(["env", "RUST_LOG=bwmon::tc::run=debug,bwmon::app=debug",
                            BWMON, "-c", cfg, "--dev", "lo", "--now", iso(now)] + args)
        return measure(argv, self.slivers if stdin else None)

    def fresh_hierarchy(self):
        subprocess.run(self.ns.cmd([TC, "qdisc", "del", "dev", "lo", "root"]), stderr=subprocess.DEVNULL)
        for p in (self.state, self.state + ".bak"):
            if os.path.exists(p):
                os.unlink(p)
        secs, _, err, rc = self.bwmon(["init", "--bwcap", "1gbit"], T0, stdin=False)
        assert rc == 0, err

    def spawns(self, args, now, stdin=True):
        open(self.tclog, "w").close()
        open(self.tclog + ".batch", "w").close()
        _, _, err, rc = self.bwmon(args, now, count=True, stdin=stdin)
        assert rc == 0, err
        calls = [l for l in open(self.tclog).read().splitlines() if not l.startswith(("class ", "qdisc "))]
        batch = open(self.tclog + ".batch").read()
        return len(calls), batch

    def dump_floor(self):
        xs = []
        for _ in range(REPEAT):
            secs, _, _, rc = measure(self.ns.cmd([TC, "-s", "-d", "class", "show", "dev", "lo"]))
            assert rc == 0
            xs.append(secs)
        return stats(xs)

    def batch_floor(self, batch_text, before=None):
        path = os.path.join(self.work, "floor.batch")
        with open(path, "w") as f:
            f.write(batch_text)
        xs = []
        for _ in range(REPEAT):
            if before:
                before()
            secs, _, err, rc = measure(self.ns.cmd([TC, "-force", "-batch", path]))
            xs.append(secs)
        return stats(xs)

    def series(self, args, nows, before=None, stdin=True):
        wall, own, rss, tc_rss = [], [], [], []
        for now in nows:
            if before:
                before()
            secs, maxrss, err, rc = self.bwmon(args, now, stdin=stdin)
            assert rc == 0, f"{args}: rc {rc}: {err[-2000:]}"
            wall.append(secs)
            own.append(max(secs - tc_time(err), 0.0))
            # bwmon's own peak (VmHWM, logged at -vv); wait4's figure would
            # include the tc it spawned.
            m = re.search(r"peak memory: (\d+) KiB", err)
            rss.append(int(m.group(1)) if m else maxrss)
            tc_rss.append(maxrss)
        return {"wall": stats(wall), "own": stats(own), "peak_rss_kib": max(rss),
                "peak_rss_with_children_kib": max(tc_rss)}

    def run(self):
        r = {"n": self.n}
        # First sync: every class created.
        r["first"] = self.series(["sync"], [T0] * REPEAT, before=self.fresh_hierarchy)
        self.fresh_hierarchy()
        r["first"]["tc_spawns"], first_batch = self.spawns(["sync"], T0)
        # The floor replays the same adds on a kernel as it is before a first sync.
        r["first"]["floor_batch"] = self.batch_floor(first_batch, before=self.fresh_hierarchy)
        # Traffic on a tenth, then the sync that caps them (not timed).
        self.fresh_hierarchy()
        assert self.bwmon(["sync"], T0)[3] == 0
        for i in range(10, self.n + 1, 10):
            subprocess.run(self.ns.cmd([SEND, str(i), "20000"]), check=True)
        time.sleep(0.5)
        now = T0 + 3600
        assert self.bwmon(["sync"], now)[3] == 0
        # Steady: same time, same counters: nothing to change.
        r["steady"] = self.series(["sync"], [now] * REPEAT)
        r["steady"]["tc_spawns"], _ = self.spawns(["sync"], now)
        # A tenth recapped: each run a minute later, so their ceils move.
        nows = [now + 60 * (k + 1) for k in range(REPEAT)]
        r["recap"] = self.series(["sync"], nows)
        r["recap"]["tc_spawns"], recap_batch = self.spawns(["sync"], nows[-1] + 60)
        r["recap"]["changed_lines"] = recap_batch.count("\n")
        assert r["recap"]["changed_lines"] >= self.n // 10, "the 10 % run changed nothing"
        r["recap"]["floor_batch"] = self.batch_floor(recap_batch)
        r["status"] = self.series(["status", "--format", "json"], [nows[-1] + 60] * REPEAT, stdin=False)
        r["floor_dump"] = self.dump_floor()
        r["state_bytes"] = os.path.getsize(self.state)
        r["classes"] = 2 * self.n + 10
        return r


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "--inside":
        # The child: one N, measured from inside the namespace.
        n, out = int(sys.argv[2]), sys.argv[3]
        work = tempfile.mkdtemp(prefix=f"bwbench-{n}-")
        try:
            result = Bench(Inside(), n, work).run()
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with open(out, "w") as f:
            json.dump(result, f)
        return
    if os.geteuid() != 0:
        sys.exit("make bench needs root (network namespace, tc)")
    for exe in (BWMON, SEND):
        if not os.access(exe, os.X_OK):
            sys.exit(f"{exe} missing: run `cargo build --release --bin bwmon --example send_traffic`")
    results = {"machine": machine(), "repeat": REPEAT, "sizes": []}
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
    out = os.path.join(ROOT, "bench/results.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=2)
    print(table(results))
    print(f"\nfigures also in {os.path.relpath(out, ROOT)}")


def machine():
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": os.uname().release,
        "tc": subprocess.run([TC, "-V"], capture_output=True, text=True).stdout.strip(),
    }


def ms(x):
    return f"{x * 1000:7.1f}"


def table(res):
    lines = []
    h = f"{'N':>5} {'run':<12} {'bwmon ms':>9} {'spread':>17} {'own ms':>8} {'floor ms':>9} {'ratio':>6} {'tc':>3} {'RSS MiB':>8}"
    lines.append(h)
    lines.append("-" * len(h))
    for r in res["sizes"]:
        dump = r["floor_dump"]["median"]
        rows = [
            ("sync first", r["first"], dump + r["first"]["floor_batch"]["median"]),
            ("sync steady", r["steady"], dump),
            ("sync 10%", r["recap"], dump + r["recap"]["floor_batch"]["median"]),
            ("status json", r["status"], dump),
        ]
        for name, s, floor in rows:
            w = s["wall"]
            lines.append(
                f"{r['n']:>5} {name:<12} {ms(w['median'])}   {ms(w['min'])}..{ms(w['max']).strip():<7} "
                f"{ms(s['own']['median'])} {ms(floor)}  {w['median'] / floor:5.2f} "
                f"{s.get('tc_spawns', 1):>3} {s['peak_rss_kib'] / 1024:8.1f}"
            )
        lines.append(f"{r['n']:>5} {'tc dump':<12} {ms(dump)}   state file {r['state_bytes'] / 1e6:.2f} MB")
    sizes = {r["n"]: r for r in res["sizes"]}
    if 1000 in sizes and 4000 in sizes:
        lines.append("")
        for run in ("first", "steady", "recap", "status"):
            a, b = sizes[1000][run]["own"]["median"], sizes[4000][run]["own"]["median"]
            lines.append(f"own time N=4000 / N=1000, {run}: {b / a:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
