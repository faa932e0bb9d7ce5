# Sentinel's build. `make demo` and `make test` are the two commands a
# newcomer needs; both install what is missing first.

GO      ?= go
# The mochi fork is tested, vetted and gofmt-checked like our own modules;
# check-boundaries.sh keeps its own list (the fork is no service module).

MODULES := proto quantile credentials mqttconn cohortstat warehouse broker simulator ingestor recoverer analytics bench cmd/sentinel third_party/mochi-mqtt-server
PKGS    := $(addsuffix /...,$(addprefix ./,$(MODULES)))
BIN     := bin/sentinel

.PHONY: all build setup demo report test check fmt vet boundaries standalone docpaths unit fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/sentinel

# Install libchdb (the embedded ClickHouse engine) into the user cache.
# Idempotent: a no-op when the verified library is already there.
setup: build
	$(BIN) setup

# The whole pipeline on loopback for a minute, ending with the ranking.
demo: setup
	$(BIN) run --devices 1000 --duration 60s

# The charts report of the demo's data, and a screenshot of it in headless
# Chromium (apt-get install chromium) to look at: data/report.html, data/report.png.
report: build
	$(BIN) report --html data/report.html
	chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
		--disable-background-networking --disable-component-update --disable-sync --hide-scrollbars \
		--user-data-dir=$$(mktemp -d) --window-size=1200,4200 --screenshot=data/report.png file://$(CURDIR)/data/report.html
	@echo "report: data/report.html, screenshot: data/report.png"

# Formatting, vet, then every module's tests with the race detector, then
# a few seconds of the warehouse server's escape fuzzer (issue 20).
ESCAPEFUZZTIME ?= 10s
test: setup check
	$(GO) test -race -count=1 -timeout 15m $(PKGS)
	$(GO) test -run '^$$' -fuzz '^FuzzEscapes$$' -fuzztime $(ESCAPEFUZZTIME) -parallel 1 ./warehouse/httpserver

check: fmt vet boundaries standalone docpaths

# DESIGN.md's module rule: no service module imports another.
boundaries:
	./scripts/check-boundaries.sh

# Every file docs/ARCHITECTURE.md names exists (half a second).
docpaths:
	./scripts/check-doc-paths.sh

# Every module in go.work builds alone (GOWORK=off), test imports resolved.
standalone:
	GO=$(GO) ./scripts/check-standalone.sh

fmt:
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

# Tests without the race detector, for a quick loop.
unit:
	$(GO) test -count=1 $(PKGS)

# A short run of every fuzz target (the seed corpora run in `make test`).
FUZZTIME ?= 15s
FUZZPKGS ?= ./proto ./broker ./warehouse/httpserver
fuzz:
	@for p in $(FUZZPKGS); do for t in $$($(GO) test -list '^Fuzz' $$p | grep ^Fuzz); do \
		echo "== $$p $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
	done; done

clean:
	rm -rf bin data
