#!/usr/bin/env bash
# `make deps`: what `make demo` and `make test` need beyond the Rust toolchain.
# As root, installs whatever is missing (Debian packages, then the Python
# package, then promtool); as anyone else, says in one line what to install
# and fails. It never lets a run go on without a tool a test or the demo
# relies on.
set -euo pipefail

# command → Debian package that provides it.
tools=(
    "tc iproute2"              # looking at classes (tests, demo, operators)
    "ip iproute2"              # private network namespaces
    "nft nftables"             # classify: uid|mark (bwmon's own table)
    "setpriv util-linux"       # sending as a slice's uid
    "python3 python3"          # bench, Prometheus reference parser
    "systemd-analyze systemd"  # the unit's verify and security checks
    "modprobe kmod"            # loading sch_htb where it is a module
    "strace strace"            # the benchmark counts the processes a run starts
    "cc gcc"                   # the benchmark's launcher (bench/launch.c)
    "bpftrace bpftrace"        # the kernel's record of rtnetlink requests (make stress)
)

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }

missing=()
for t in "${tools[@]}"; do
    read -r cmd pkg <<<"$t"
    have "$cmd" || missing+=("$pkg")
done
# One entry per package, in order.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk 'NF && !seen[$0]++')

py_missing=
if ! have python3 || ! python3 -c 'import prometheus_client' 2>/dev/null; then
    py_missing=prometheus_client
fi

# promtool (`promtool check metrics`, the metrics tests) comes with Debian's
# prometheus package, a whole server with a system user and a unit: only
# the one static binary is taken out of it, into /usr/local/bin.
prom_missing=
have promtool || prom_missing=promtool

if [ ${#missing[@]} -eq 0 ] && [ -z "$py_missing" ] && [ -z "$prom_missing" ]; then
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    what="${missing[*]}"
    [ -n "$py_missing" ] && what="${what:+$what and }the Python package prometheus_client"
    [ -n "$prom_missing" ] && what="${what:+$what and }promtool (Debian package prometheus)"
    echo "make deps: missing $what: as root run \`make deps\`, or \`apt-get install ${missing[*]:-python3-prometheus-client}${prom_missing:+ prometheus}\`${py_missing:+ and \`pip install prometheus_client\`}" >&2
    exit 1
fi

if [ ${#missing[@]} -gt 0 ]; then
    echo "make deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [ -n "$py_missing" ] && ! python3 -c 'import prometheus_client' 2>/dev/null; then
    echo "make deps: installing the Python package prometheus_client" >&2
    python3 -m pip install --quiet prometheus_client 2>/dev/null ||
        { apt-get update -qq && apt-get install -y -qq python3-prometheus-client >/dev/null; }
fi

if [ -n "$prom_missing" ]; then
    echo "make deps: installing promtool (from the Debian package prometheus)" >&2
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    # apt's sandbox user cannot write into root's mktemp directory.
    chmod 755 "$work"
    ( cd "$work" && { apt-get download prometheus >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get download prometheus >/dev/null 2>&1; }; } ) &&
        dpkg -x "$work"/prometheus_*.deb "$work/x" &&
        install -m755 "$work/x/usr/bin/promtool" /usr/local/bin/promtool ||
        { echo "make deps: could not get promtool out of the prometheus package" >&2; exit 1; }
fi

# Checked again: an install that "worked" but left a tool missing must not
# let the tests run and fail somewhere far from the cause.
still=()
for t in "${tools[@]}"; do
    read -r cmd pkg <<<"$t"
    have "$cmd" || still+=("$cmd ($pkg)")
done
python3 -c 'import prometheus_client' 2>/dev/null || still+=("prometheus_client (Python)")
have promtool || still+=("promtool (prometheus)")
if [ ${#still[@]} -gt 0 ]; then
    echo "make deps: still missing after installing: ${still[*]}" >&2
    exit 1
fi
