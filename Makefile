# nsyncd: `make demo` and `make test` work on a fresh Debian machine with the
# Swift toolchain; everything else they need is installed here.
SWIFT ?= swift
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
BIN := .build/debug

.PHONY: deps build release test demo clean

# Install libuv/OpenSSL headers only when pkg-config cannot find them.
deps:
	@if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists libuv openssl; then \
		echo "installing libuv1-dev libssl-dev pkg-config ..."; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y libuv1-dev libssl-dev pkg-config openssl; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

demo: deps
	$(SWIFT) build -c release
	./scripts/demo.sh .build/release/nsyncd

clean:
	rm -rf .build demo
