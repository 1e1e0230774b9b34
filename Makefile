# Sluice: one entry point for people and CI. `make demo` and `make test` are the README's quick start.
# Each target installs what is missing first (scripts/ensure-deps.sh).

FUZZ_SECONDS ?= 30

.PHONY: all deps build test test-xen demo frame-demo bench soak fuzz fuzz-long tsan asan format lint clean

all: build

deps:
	@scripts/ensure-deps.sh

build: deps
	scripts/build-checked.sh debug

## The test suite: a warning-free debug build, then every Swift Testing suite. Suites run one after another:
## several count the process's descriptors or time a child, which parallel suites would disturb.
test: build
	swift test --skip-build --no-parallel

## Sluice on a real Xen 4.17 hypervisor under QEMU: static release binaries, sluiced in dom0, an agent in a domU,
## every call over libxenvchan (Tests/Xen/README.md). Not in CI yet: see docs/xen.md for why.
test-xen: deps
	Tests/Xen/test-xen.sh

## The demo: a local host with dom0, work, vault and untrusted; allowed, refused, asked, redirected calls.
demo: deps
	swift build
	scripts/demo.sh

## The frame demo: two real processes exchange frames, then the service side refuses hostile ones.
frame-demo: deps
	swift build --product frame-demo
	.build/debug/frame-demo

## Every promised figure next to its same-run baseline (release build).
bench: deps
	swift build -c release --product sluice-bench
	swift build -c release --product sluice-vchan-probe
	swift build -c release
	.build/release/sluice-bench

## 100 000 calls through sluice-host under a hostile background load; descriptors and memory must stay flat
## (SOAK_CALLS to change the count). Not in CI: about 5 minutes here.
SOAK_CALLS ?= 100000
soak: deps
	swift build -c release --product sluice-bench
	swift build -c release
	.build/release/sluice-bench soak $(SOAK_CALLS)

## Every libFuzzer target for FUZZ_SECONDS each (CI: 60).
fuzz: deps
	scripts/fuzz.sh $(FUZZ_SECONDS)

## The whole suite under ThreadSanitizer / AddressSanitizer, every program the tests start built with it too. Fails
## on a failed test or on any report from any process (scripts/sanitize.sh, docs/sanitizers.md).
tsan: deps
	scripts/sanitize.sh thread

asan: deps
	scripts/sanitize.sh address

## Every libFuzzer target for FUZZ_RUNS executions each (default 10 million; not in CI: about 1.5 hours here).
FUZZ_RUNS ?= 10000000
fuzz-long: deps
	FUZZ_RUNS=$(FUZZ_RUNS) scripts/fuzz.sh 0

format:
	swift format --in-place --recursive Sources Tests Examples Benchmarks Fuzz Package.swift

lint:
	swift format lint --strict --recursive Sources Tests Examples Benchmarks Fuzz Package.swift

clean:
	rm -rf .build Fuzz/.work
