#!/usr/bin/env bash
# Installs Debian packages that are missing. Each argument is PACKAGE:PROBE, where PROBE is a command
# name or an absolute path whose presence proves the package is installed. Idempotent and quiet.
set -euo pipefail
missing=()
for spec in "$@"; do
  pkg=${spec%%:*}; probe=${spec#*:}
  if [[ $probe == /* ]]; then [[ -e $probe ]] && continue
  else command -v "$probe" >/dev/null 2>&1 && continue; fi
  missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
SUDO=; [[ $(id -u) -ne 0 ]] && SUDO=sudo
echo "installing: ${missing[*]}" >&2
if ! $SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
  $SUDO apt-get update -q >/dev/null
  $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
fi
