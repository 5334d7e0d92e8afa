#!/usr/bin/env bash
# Creates an API token and stores only its SHA-256 hash in D1. Prints the token once.
# Usage: scripts/create-token.sh NAME "SCOPE [SCOPE…]" [--remote]
# Scopes: track:sign stats:read sites:write contacts:read contacts:write campaigns:write
#         campaigns:approve events:write
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
name="${1:?name}"; scopes="${2:?scopes}"; where="${3:---local}"
case "$where" in --local|--remote) ;; *) echo "third argument must be --local or --remote" >&2; exit 2;; esac
for s in $scopes; do
  case "$s" in track:sign|stats:read) ;; *) echo "unknown scope: $s" >&2; exit 2;; esac
done
[[ "$name" =~ ^[A-Za-z0-9\ ._:-]{1,64}$ ]] || { echo "name: 1-64 letters, digits, spaces, . _ : -" >&2; exit 2; }
token="ep_$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
id="tok_$(node -e 'process.stdout.write(require("crypto").randomBytes(8).toString("hex"))')"
hash="$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
wrangler d1 execute DB "$where" --command \
  "INSERT INTO api_tokens (id, token_hash, name, scopes, created_at) VALUES ('$id', '$hash', '$name', '$scopes', unixepoch())" >/dev/null
echo "id:    $id"
echo "token: $token"
