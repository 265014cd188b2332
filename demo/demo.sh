#!/usr/bin/env bash
# bwmon in one minute, on a throwaway network namespace (run as root).
# Builds the hierarchy on the namespace's lo, starts three slices, sends real
# packets from one, and walks a simulated day with --now: the cap goes on, the
# mail goes out once, and the cap is lifted when the next period starts.
set -euo pipefail

BWMON=${BWMON:-target/debug/bwmon}
SEND=${SEND:-target/debug/examples/send_traffic}
NS="bwmon-demo-$$"
WORK=$(mktemp -d)

cleanup() {
    ip netns del "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces and tc)" >&2; exit 1; }
for t in ip tc; do
    command -v "$t" >/dev/null || { echo "$t not found: apt-get install iproute2" >&2; exit 1; }
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
in_ns() { ip netns exec "$NS" "$@"; }
bw() { in_ns "$BWMON" -c "$WORK/bwmon.yaml" --dev lo "$@"; }
show_class() { in_ns tc -s class show dev lo classid "$1" | sed -n '1,2p'; }
# Bytes that left the class: tc's Sent counts queued packets too, so the
# backlog still waiting is taken off.
sent_bytes() {
    in_ns tc -s class show dev lo classid "$1" |
        awk '/Sent/ && !s { s = $2 } /backlog/ && !b { b = $2; sub(/b$/, "", b) } END { print s - b }'
}
# pl_alice sends as fast as she can for 2 s; prints what her class let through.
burst_test() {
    local before after
    before=$(sent_bytes 1:1101)
    in_ns setpriv --reuid 257 --regid 257 --clear-groups "$SEND" 257 0 none --secs 2 >/dev/null
    after=$(sent_bytes 1:1101)
    echo "pl_alice sent as fast as she could for 2 s: her class passed $((after - before)) bytes ($(( (after - before) * 8 / 2 )) bit/s)"
}

ip netns add "$NS"
ip -n "$NS" link set lo up

# A stand-in for sendmail that keeps each message and its arguments.
mkdir -p "$WORK/mail"
cat >"$WORK/sendmail" <<SH
#!/bin/sh
n=\$(ls "$WORK/mail" | wc -l)
echo "\$@" >"$WORK/mail/\$n.argv"
cat >"$WORK/mail/\$n.msg"
SH
chmod +x "$WORK/sendmail"

# bwmon classifies each slice's packets by the sending uid itself, through
# its nftables table: that is what the demo shows, so it needs nft
# (`make demo` installs it through `make deps`).
command -v nft >/dev/null 2>&1 || [ -x /usr/sbin/nft ] ||
    { echo "nft not found: apt-get install nftables (or run \`make deps\` as root)" >&2; exit 1; }
command -v setpriv >/dev/null || { echo "setpriv not found: apt-get install util-linux" >&2; exit 1; }
CLASSIFY=uid

cat >"$WORK/bwmon.yaml" <<YAML
classify: $CLASSIFY
state_file: $WORK/state.yaml
period: 1d
mail:
  sendmail: $WORK/sendmail
  from: support@example.org
  name: ExampleLab
  list: mom@example.org
  slice_address: SLICE@slices.example.org
  hostname: node1.example.org
YAML

cat >"$WORK/slivers.json" <<'JSON'
{"pl_alice": {"name": "pl_alice", "xid": 257, "_rspec": {"net_max_rate": 50000, "net_max_kbyte": 10240, "net_thresh_kbyte": 800}},
 "pl_bob":   {"name": "pl_bob",   "xid": 258, "_rspec": {}},
 "pl_carol": {"name": "pl_carol", "xid": 259, "_rspec": {"net_max_kbyte": 4096}}}
JSON

T0=2026-11-24T00:00:00Z
say "bwmon init --bwcap 100mbit on $NS's lo"
bw init --bwcap 100mbit
in_ns tc class show dev lo

say "sync at $T0: three new slices (pl_alice is xid 257 = 0x101 → class 1:1101)"
bw -v --now "$T0" sync <"$WORK/slivers.json"

say "bwmon's nftables table maps each slice's uid to its classes"
in_ns nft list map inet bwmon low
say "pl_alice (uid 257) sends 900 KB of real UDP packets; nothing marks them but bwmon's table"
in_ns setpriv --reuid 257 --regid 257 --clear-groups "$SEND" 257 900000 none
show_class 1:1101

say "sync at 23:00: pl_alice is past her 800 KiB threshold (quota 10 MiB a day)"
echo "expected ceil: (10 MiB - used) * 8 / 3600 s left in her period"
bw -v --now 2026-11-24T23:00:00Z sync <"$WORK/slivers.json"
echo "tc now says:"
show_class 1:1101
burst_test
echo "(bob, untouched:)"
show_class 1:1102

say "bwmon status at 23:00"
bw --now 2026-11-24T23:00:00Z status
echo "(and for Prometheus, pl_alice's lines:)"
bw --now 2026-11-24T23:00:00Z status --format prometheus | grep 'pl_alice'

say "the mail that went out"
for f in "$WORK"/mail/*.msg; do
    echo "argv: sendmail $(cat "${f%.msg}.argv")"
    cat "$f"
done

say "sync at 23:30: still capped (ceil recomputed for 30 minutes left), no second mail"
bw -v --now 2026-11-24T23:30:00Z sync <"$WORK/slivers.json"
show_class 1:1101
echo "mails sent so far: $(ls "$WORK"/mail/*.msg | wc -l)"

say "sync at the next day 00:01: a new period, the cap is lifted"
bw -v --now 2026-11-25T00:01:00Z sync <"$WORK/slivers.json"
show_class 1:1101
burst_test

say "state file ($WORK/state.yaml)"
cat "$WORK/state.yaml"
say "done: namespace $NS removed"
