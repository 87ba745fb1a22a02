# The two entry points of README.md. Everything else is plain cargo.
CARGO ?= cargo

.PHONY: deps build demo test
deps:
	./scripts/install-deps

build: deps
	$(CARGO) build --release

# Builds a throw-away namespace lab, bridges it, taps and records real traffic, removes it.
# The capture goes to ./ethertap-demo.pcap (DEMO_FLAGS=--out-dir=DIR to change).
demo: build
	./target/release/ethertap demo $(DEMO_FLAGS)

# The whole test suite (as root: the integration tests build namespace labs).
test: deps
	$(CARGO) test --release -- --test-threads=2
