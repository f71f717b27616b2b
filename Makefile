# sliceedge — make run (demo), make test (what CI runs).
GO          ?= go
BIN         := bin/sliceedge
STATICCHECK := $(shell $(GO) env GOPATH)/bin/staticcheck
STATICCHECK_VERSION := v0.8.2
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT      ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS     := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
DISTDIR     ?= dist

# Packages whose tests also run under the race detector (collapsing,
# streaming, fills and purges racing each other).
RACE_PKGS   := ./origin/... ./edge/... ./segstore/... ./cluster/...

.PHONY: all build run pop test lint unit race invariants fuzz soak pop-soak dist docker clean real-origins conformance

all: build

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/sliceedge

# Starts the demo origin on 127.0.0.1:9000 and the edge on 127.0.0.1:8080
# (embedded defaults, store in ./sliceedge-data) and prints curl commands.
run: build
	./scripts/run-demo.sh $(BIN)

# Starts the demo origin and a POP of three nodes on this machine (configs,
# stores and logs in ./pop-demo) and prints commands that show it at work.
pop: build
	./scripts/pop-demo.sh $(BIN)

test: lint unit race invariants

lint: $(STATICCHECK)
	@echo '== gofmt'; out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@echo '== go vet'; $(GO) vet ./...
	@echo '== staticcheck'; $(STATICCHECK) ./...

$(STATICCHECK):
	$(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

unit:
	@echo '== go test'
	$(GO) test -count=1 -timeout 10m ./...

# One package at a time (-p 1): segstore's budget tests depend on Pebble's
# background compactions keeping up, which the edge's race run, sharing the
# two cores, starved once (disk 1.151x the budget in TestChurnDiskWithinBudget).
race:
	@echo '== go test -race'
	$(GO) test -race -short -p 1 -count=1 -timeout 10m $(RACE_PKGS)

# The packages that keep state, with the checks of internal/invariants on:
# they panic when the slice index, a read's checksums or a fill disagree
# with themselves. The edge's tests drive the store and fills for real.
invariants:
	@echo '== go test -tags invariants'
	$(GO) test -tags invariants -count=1 -timeout 10m ./edge/... ./segstore/... ./origin/...

# Longer fuzzing than the seed corpora run in `test`: the Range parser, and
# a fuzzed origin in front of a real edge on a real store (FuzzOriginAnswer).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRange -fuzztime 60s ./slicer/
	$(GO) test -run '^$$' -fuzz FuzzContentRange -fuzztime 30s ./slicer/
	$(GO) test -run '^$$' -fuzz FuzzOriginAnswer -fuzztime 120s ./edge/

# Crash soak: runs `sliceedge serve` as a child process under mixed load,
# kill -9s it at random moments 100 times, restarts it on the same store
# and verifies every byte served; it logs a summary line ("soak: 100
# kills survived, ..., 0 wrong bytes"). `make test` runs 5 cycles.
soak:
	$(GO) test -count=1 -run '^TestCrashSoak$$' -timeout 30m -v ./cmd/sliceedge/ -soak.cycles 100

# The POP's long crash soak: 5 nodes as child processes behind a balancer,
# 100 kill -9s of a random node under load, every byte verified.
pop-soak:
	$(GO) test -count=1 -run '^TestPOPSoak$$' -timeout 30m -v ./cmd/sliceedge/ -popsoak.nodes 5 -popsoak.kills 100

# Release binary: static (no cgo; Pebble then uses its pure-Go zstd/snappy
# and Go-heap allocations), no build paths (-trimpath), stamped with VERSION
# and COMMIT ("dev"/"unknown" without git). -buildvcs=false: the stamp is the
# version, and Go's own VCS stamping fails the build where git refuses the
# checkout (owned by another user). The stamp is checked by running the
# binary, since -X on a renamed variable is silently ignored; a cross build
# (make dist GOOS=linux GOARCH=arm64) is not run. Then scripts/dist.sh packs
# it into $(DISTDIR)/sliceedge-VERSION-OS-ARCH.tar.gz with the systemd files,
# the sample config, shell completion and the man page, and SHA256SUMS.
# VERSION is the git tag when HEAD has one (git describe).
dist:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' -o dist/sliceedge ./cmd/sliceedge
	@if [ "$$($(GO) env GOOS GOARCH)" != "$$($(GO) env GOHOSTOS GOHOSTARCH)" ]; then \
		echo "dist/sliceedge: built for $$($(GO) env GOOS)/$$($(GO) env GOARCH), not run here"; \
	else \
		out=$$(./dist/sliceedge version) && echo "$$out" && case "$$out" in \
		*" $(VERSION) (commit $(COMMIT))") ;; \
		*) echo "dist: dist/sliceedge is not stamped with $(VERSION) / $(COMMIT) (main.version or main.commit renamed?)" >&2; exit 1 ;; \
		esac; \
	fi
	./scripts/dist.sh dist/sliceedge $(VERSION) $$($(GO) env GOOS) $$($(GO) env GOARCH) $(DISTDIR)

# Builds the container image when docker answers, else checks the
# Dockerfile (scripts/check-dockerfile.sh says what).
docker:
	./scripts/check-dockerfile.sh

clean:
	rm -rf bin dist

# sliceedge in front of three origins we did not write (nginx, Apache,
# python3 -m http.server), each on 127.0.0.1: prints, per client request,
# the edge's status, X-Cache and Cache-Status and what the origin's access
# log recorded. Fails only on a wrong body. Installs what is missing with
# apt-get; about a minute.
real-origins:
	./scripts/real-origins.sh

# The HTTP caching test suite of cache-tests.fyi (npm http-cache-tests,
# pinned) against sliceedge (defaults, and forwarding the suite's Req-Num),
# nginx proxy_cache and Varnish in one run, all on 127.0.0.1: tests passed
# per cache. Installs npm, nginx and varnish when missing; about a minute.
conformance:
	./scripts/conformance.sh
