#!/usr/bin/env bash
# `make image`: builds deploy/container/Containerfile with podman or docker, whichever can build here.
# IMAGE=name:tag to name it (default localhost/kangyi:dev, what the dev overlay runs).
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-localhost/kangyi:dev}
for engine in podman docker; do
  if command -v "$engine" >/dev/null && "$engine" info >/dev/null 2>&1; then
    exec "$engine" build -f deploy/container/Containerfile -t "$IMAGE" .
  fi
done
echo "make image: no container engine can build here (podman or docker with a running daemon)." >&2
echo "The Containerfile is deploy/container/Containerfile; build it where one runs." >&2
exit 1
