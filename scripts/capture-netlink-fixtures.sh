#!/usr/bin/env bash
# Rebuilds tests/fixtures/netlink/ from the running kernel and the installed
# tc (root; needs strace and python3). In a throw-away network namespace it
# builds bwmon's HTB tree on `lo` with the real tc, keeping the netlink request
# tc sent for some of the classes (requests/*.bin: what `htb::class_options`
# must reproduce), then runs examples/nl_capture.rs for the kernel's answers
# to the class and qdisc dumps. Only the namespace's own `lo` is touched; the
# namespace is deleted on any exit.
set -euo pipefail
cd "$(dirname "$0")/.."

out=tests/fixtures/netlink
ns=bwcodec-$$
work=$(mktemp -d)
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cargo build --locked --example nl_capture
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "$out/requests"

tcx() { ip netns exec "$ns" tc "$@"; }

# `req NAME tc-args…`: runs tc under strace and keeps the one RTM_NEWQDISC or
# RTM_NEWTCLASS message it sent, byte for byte, as requests/NAME.bin.
req() {
    local name=$1
    shift
    ip netns exec "$ns" strace -qq -e trace=sendmsg -e write=all \
        -o "$work/$name.strace" tc "$@"
    python3 - "$work/$name.strace" "$out/requests/$name.bin" <<'EOF'
import re, sys
blocks, cur = [], None
for line in open(sys.argv[1]):
    if re.match(r"^\s*\* \d+ bytes in buffer", line):
        cur = bytearray()
        blocks.append(cur)
    elif cur is not None and line.lstrip().startswith("| "):
        # " | 00000  48 00 00 00 ...  ascii |": the 16 byte columns.
        cols = line.split("|")[1].split()[1:]
        for c in cols[:16]:
            if re.fullmatch(r"[0-9a-f]{2}", c):
                cur.append(int(c, 16))
            else:
                break
wanted = [b for b in blocks if len(b) >= 16 and int.from_bytes(b[4:6], "little") in (36, 40)]
assert len(wanted) == 1, f"expected one RTM_NEWQDISC/RTM_NEWTCLASS, got {len(wanted)}"
open(sys.argv[2], "wb").write(bytes(wanted[0]))
EOF
}

# SPEC §4's tree, with rates chosen to cover 32- and 64-bit encodings:
# 40gbit is 5e9 bytes/s, above 2^32, so it needs TCA_HTB_RATE64/CEIL64
# (10gbit, 1.25e9 bytes/s, does not).
req qdisc-htb-default-1fff qdisc add dev lo root handle 1: htb default 1fff
req class-rate-40gbit-ceil-40gbit class add dev lo parent 1: classid 1:1 \
    htb rate 40gbit ceil 40gbit quantum 1600
req class-rate-1000bit-ceil-10gbit class add dev lo parent 1:1 classid 1:10 \
    htb rate 1000bit ceil 10gbit quantum 1600
tcx class add dev lo parent 1:10 classid 1:100 htb rate 1000bit ceil 10gbit quantum 1600
req class-rate-1000bit-ceil-40gbit class add dev lo parent 1:1 classid 1:20 \
    htb rate 1000bit ceil 40gbit quantum 1600

# Slices under 1:100 (low) and 1:20 (i2), each with its leaf.
slice() { # minor parent rate ceil quantum
    tcx class add dev lo parent "$2" classid "1:$1" htb rate "$3" ceil "$4" quantum "$5"
}
req class-rate-1000bit-ceil-21216bit class add dev lo parent 1:100 classid 1:1101 \
    htb rate 1000bit ceil 21216bit quantum 1600
tcx qdisc add dev lo parent 1:1101 handle 1101: pfifo limit 5
req class-rate-1000bit-ceil-100mbit class add dev lo parent 1:100 classid 1:1000 \
    htb rate 1000bit ceil 100mbit quantum 1600
tcx qdisc add dev lo parent 1:1000 handle 1000: pfifo
slice 1fff 1:100 1000bit 10gbit 1600
tcx qdisc add dev lo parent 1:1fff handle 1fff: pfifo
slice 1102 1:100 1000bit 21216bit 3200
# This kernel has no fq_codel (CONFIG_NET_SCH_FQ_CODEL unset): tbf is the
# classful non-HTB leaf here, so the class dump holds a class of another kind.
tcx qdisc add dev lo parent 1:1102 handle 1102: tbf rate 21216bit burst 1600 limit 30000
for x in 1103 1104 1105 1106 1107 1108 1109 110a; do
    slice "$x" 1:100 1000bit 100mbit 1600
    tcx qdisc add dev lo parent "1:$x" handle "$x:" pfifo
done
req class-rate-100mbit-ceil-10gbit class add dev lo parent 1:20 classid 1:2101 \
    htb rate 100mbit ceil 10gbit quantum 1600
tcx qdisc add dev lo parent 1:2101 handle 2101: pfifo
slice 2fff 1:20 1000bit 40gbit 1600
tcx qdisc add dev lo parent 1:2fff handle 2fff: bfifo
# An ingress qdisc, so the qdisc dump also holds a parent other than a class.
tcx qdisc add dev lo ingress

rm -f "$out"/classes-*.bin "$out"/qdiscs-*.bin
ip netns exec "$ns" target/debug/examples/nl_capture "$out"
cat /proc/net/psched >"$out/psched.txt"
{
    echo "kernel $(uname -r)"
    tc -V
} >"$out/captured-with.txt"
ls -l "$out" "$out/requests"
