#!/usr/bin/env bash
# Creates an API token and stores only its SHA-256 hash in D1. Prints the token once.
# Usage: scripts/create-token.sh NAME "SCOPE [SCOPE…]" [--local|--remote]
#        scripts/create-token.sh --revoke ID [--local|--remote]
# Scopes (core/src/auth.rs): track:sign stats:read sites:write contacts:read contacts:write
#         campaigns:write campaigns:approve events:write webhooks:write tokens:write audit:read
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
SCOPES="track:sign stats:read sites:write contacts:read contacts:write campaigns:write campaigns:approve events:write webhooks:write tokens:write audit:read"

if [ "${1:-}" = --revoke ]; then
  id="${2:?usage: create-token.sh --revoke ID [--local|--remote]}"; where="${3:---local}"; d1_where_ok "$where"
  [[ "$id" =~ ^[A-Za-z0-9_-]{1,64}$ ]] || { echo "id: 1-64 letters, digits, _ -" >&2; exit 2; }
  out="$(wrangler d1 execute DB "$where" "${D1_PERSIST[@]}" --json --command \
    "UPDATE api_tokens SET revoked_at = unixepoch() WHERE id = '$id' AND revoked_at IS NULL RETURNING id")"
  if printf '%s' "$out" | grep -q "\"id\": *\"$id\""; then
    echo "revoked: $id"
  else
    echo "no live token with id $id" >&2; exit 1
  fi
  exit 0
fi

name="${1:?usage: create-token.sh NAME \"SCOPES\" [--local|--remote]}"; scopes="${2:?scopes}"; where="${3:---local}"
d1_where_ok "$where"
for s in $scopes; do
  case " $SCOPES " in *" $s "*) ;; *) echo "unknown scope: $s (known: $SCOPES)" >&2; exit 2;; esac
done
[[ "$name" =~ ^[A-Za-z0-9\ ._:-]{1,64}$ ]] || { echo "name: 1-64 letters, digits, spaces, . _ : -" >&2; exit 2; }
token="ep_$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))')"
id="tok_$(node -e 'process.stdout.write(require("crypto").randomBytes(8).toString("hex"))')"
hash="$(printf '%s' "$token" | sha256sum | cut -d' ' -f1)"
wrangler d1 execute DB "$where" "${D1_PERSIST[@]}" --command \
  "INSERT INTO api_tokens (id, token_hash, name, scopes, created_at) VALUES ('$id', '$hash', '$name', '$scopes', unixepoch())" >/dev/null
echo "id:    $id"
echo "token: $token"
