#!/usr/bin/env bash
# What `swift build` needs beyond Swift itself: the C libraries of kangyi-terminal (found by pkg-config).
# Idempotent; every script that builds calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ensure-apt.sh pkg-config:pkg-config libnghttp2-dev:/usr/include/nghttp2/nghttp2.h \
  libprotobuf-c-dev:/usr/include/protobuf-c/protobuf-c.h libssl-dev:/usr/include/openssl/ssl.h
