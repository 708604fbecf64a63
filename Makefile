# bosun: the two commands a newcomer needs are `make up` and `make test`.
PAUSE_TARGET := x86_64-unknown-linux-gnu
PAUSE_BINARY := target/$(PAUSE_TARGET)/release/pause
export BOSUN_PAUSE_BINARY := $(CURDIR)/$(PAUSE_BINARY)
export BOSUN_PROBE_TARGET := $(CURDIR)/target/$(PAUSE_TARGET)/release/probe-target
export BOSUN_IN_CLUSTER_CLIENT := $(CURDIR)/target/$(PAUSE_TARGET)/release/in-cluster-client

.PHONY: setup pause build release up down install test bench lint

## Install the runtime stack from Debian's packages (idempotent).
setup:
	bash scripts/setup.sh

## Our static pause binary (sandbox image), built with crt-static; and the
## static fixtures the tests put in images: probe-target (gRPC health +
## HTTPS) and in-cluster-client (a kube-rs client run in a pod).
pause:
	RUSTFLAGS="-C target-feature=+crt-static" cargo build -q -p bosun-pause -p bosun-probe-target -p bosun-in-cluster-client --release --target $(PAUSE_TARGET)

## The debug build, for tests and development.
build: setup pause
	cargo build -p bosun

## The optimized binary (the workspace's release profile) that `make up`
## and `make install` use.
release:
	cargo build --release -p bosun

## Bring up a one-node cluster (our containerd, control-lite, agent).
up: setup pause release
	./target/release/bosun up

down:
	./target/release/bosun down

## Install the binary, the systemd units and a default config below ROOT
## (default /; e.g. `make install ROOT=/tmp/staging`).
ROOT ?= /
install: release
	./target/release/bosun install --root $(ROOT)

## Everything: unit tests and integration tests on the real stack.
test: setup pause
	cargo test --workspace --no-fail-fast

## Benchmarks that print numbers (CRI floor, nftables sync, store).
bench: setup pause
	cargo bench --workspace

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings
