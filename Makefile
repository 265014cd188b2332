# bwmon — build, test, install. Tests and the demo need root (network
# namespaces, tc); `make test` is what CI runs.
PREFIX ?= /usr/local
DESTDIR ?=
CARGO ?= cargo
BIN ?= target/release/bwmon

.PHONY: all build deps test stress demo man completions install bench clean fuzz

all: build

build:
	$(CARGO) build --release --locked

# What the tests and the demo need beyond Rust (tc, ip, nft, setpriv,
# systemd-analyze, bpftrace, prometheus_client): installed when missing, as root.
deps:
	@bash scripts/deps.sh
	@modprobe sch_htb 2>/dev/null || true

# Unit tests first, the real-kernel tests last; examples must build too.
test: deps
	$(CARGO) build --locked --examples
	$(CARGO) test --locked --lib --bins --tests

# Heavy tests: SIGKILL at random moments, overlapping runs (root, kernel).
stress: deps
	$(CARGO) test --locked --release --test stress -- --ignored --test-threads=1 --nocapture

demo: deps
	$(CARGO) build --locked --bin bwmon --example send_traffic
	bash demo/demo.sh

# The binary to install or generate from; built when missing.
$(BIN):
	$(CARGO) build --release --locked

# Generated from the clap definition of the current source (a test fails when
# the committed files are stale).
GEN = $(CARGO) run --quiet --locked --bin bwmon -- generate

man:
	$(GEN) man > man/bwmon.1

completions:
	$(GEN) completions bash > completions/bwmon.bash
	$(GEN) completions zsh > completions/_bwmon
	$(GEN) completions fish > completions/bwmon.fish

# DESTDIR for staging (packages), PREFIX for the tree; BIN=path installs a
# binary built elsewhere.
install: $(BIN)
	install -Dm755 $(BIN) $(DESTDIR)$(PREFIX)/bin/bwmon
	install -Dm644 man/bwmon.1 $(DESTDIR)$(PREFIX)/share/man/man1/bwmon.1
	install -Dm644 completions/bwmon.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/bwmon
	install -Dm644 completions/_bwmon $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_bwmon
	install -Dm644 completions/bwmon.fish $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/bwmon.fish
	install -Dm644 dist/bwmon.yaml $(DESTDIR)$(PREFIX)/share/doc/bwmon/bwmon.yaml.example
	install -d $(DESTDIR)$(PREFIX)/lib/systemd/system
	sed 's|/usr/local/bin/bwmon|$(PREFIX)/bin/bwmon|' dist/bwmon.service > $(DESTDIR)$(PREFIX)/lib/systemd/system/bwmon.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/bwmon.service
	install -Dm644 dist/bwmon.timer $(DESTDIR)$(PREFIX)/lib/systemd/system/bwmon.timer

# Fuzz campaigns, by hand: FUZZ_SECONDS per target (CI only replays the
# committed corpora, in tests/fuzz_corpus.rs). Needs cargo-fuzz; uses the
# nightly toolchain when there is one, else the stable one in bootstrap mode.
FUZZ_SECONDS ?= 600
FUZZ_TARGETS = netlink_dump slivers state
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	@if rustup toolchain list 2>/dev/null | grep -q nightly; then tc=+nightly; else tc=; export RUSTC_BOOTSTRAP=1; fi; \
	for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/work/$$t; \
		$(CARGO) $$tc fuzz run $$t fuzz/work/$$t fuzz/corpus/$$t -- -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 2>&1 | tee fuzz/work/$$t.log | tail -n 12 || exit 1; \
	done

# bwmon against the rtnetlink floor (examples/nl_floor), the tc dump and the
# tc batch at N = 100, 1000, 4000 slices (root; see bench/bench.py, which
# also compiles its launcher bench/launch.c with $(CC); needs strace).
bench: deps
	$(CARGO) build --release --locked --bin bwmon --example send_traffic --example nl_floor
	python3 bench/bench.py
	$(CARGO) build --release --locked --example slivers_parse
	for r in parse value derive with; do target/release/examples/slivers_parse 4000 101 rspec $$r || exit 1; done

clean:
	$(CARGO) clean
