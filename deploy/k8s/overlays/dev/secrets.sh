#!/usr/bin/env bash
# Writes the development overlay's secrets (.secrets/*.env, git-ignored) with fresh random values, once:
# existing files are kept, so re-running changes nothing. The TLS secret for the Ingress is yours to
# make (e.g. mkcert kangyi.localhost; kubectl -n kangyi-dev create secret tls kangyi-gateway-tls ...).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p .secrets
chmod 700 .secrets
write() {  # file, then KEY=VALUE lines
  local file=.secrets/$1; shift
  [[ -e $file ]] && return 0
  (umask 077; printf '%s\n' "$@" > "$file")
}
key() { openssl rand -base64 32; }
write identity.env "identity-key=$(key)"
write pii.env "sealing-key=$(key)" "index-key=$(key)" "retired-keys="
write db-owner.env "username=kangyi" "password=$(openssl rand -hex 24)"
for service in intake verification checkpoint pricewatch tracing gateway; do
  write "db-$service.env" "username=kangyi_$service" "password=$(openssl rand -hex 24)"
done
echo "secrets in $(pwd)/.secrets"
