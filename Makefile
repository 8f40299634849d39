# Kangyi: `make run` starts everything, `make test` proves it. See README.md.
SHELL := /bin/bash
.DEFAULT_GOAL := help

.PHONY: help build run test bench faults fuzz proto check-proto venv image clean-data

help:
	@echo "make run          build and start every service (kangyi dev) over an embedded PostgreSQL"
	@echo "make test         start a throwaway PostgreSQL, run swift test and the Python interop tests"
	@echo "make faults       the fault suite: database killed or slow, peers down, SIGTERM under load"
	@echo "make fuzz         fuzz every RPC over the wire (MINUTES=1 by default)"
	@echo "make bench        release build, durable PostgreSQL: service rates as ratios against baselines"
	@echo "make proto        regenerate Sources/KangyiAPI from proto/"
	@echo "make check-proto  fail if the committed generated code differs from proto/"
	@echo "make image        the container image (deploy/container/Containerfile), with podman or docker"

build:
	scripts/build-deps.sh
	swift build

run: build
	.build/debug/kangyi dev

test:
	scripts/test.sh

bench:
	scripts/bench.sh

faults:
	scripts/faults.sh

fuzz:
	scripts/fuzz.sh

proto:
	scripts/proto.sh

check-proto: proto
	@if [ -n "$$(git status --porcelain -- Sources/KangyiAPI Sources/kangyi-terminal/generated)" ]; then \
	  git status --short -- Sources/KangyiAPI Sources/kangyi-terminal/generated; \
	  git --no-pager diff --stat -- Sources/KangyiAPI Sources/kangyi-terminal/generated; \
	  echo "generated code is stale: run 'make proto' and commit the result"; exit 1; fi
	@echo "generated code matches proto/"

venv:
	scripts/venv.sh

image:
	scripts/image.sh

clean-data:
	-.build/debug/kangyi db stop --data .data/pg
	-.build/debug/kangyi db stop --data .data/test-pg
	-.build/debug/kangyi db stop --data .data/faults-pg
	rm -rf .data
