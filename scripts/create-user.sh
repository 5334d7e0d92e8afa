#!/usr/bin/env bash
# Creates (or re-enables, with a new role) a workspace user, who then signs in at /dashboard with a
# one-time link mailed to the address. Bootstraps the first admin.
# Usage: scripts/create-user.sh EMAIL ROLE [--local|--remote]
#        scripts/create-user.sh --disable EMAIL [--local|--remote]
# Roles (core/src/roles.rs): admin author approver analyst
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
ROLES="admin author approver analyst"
# Addresses as the worker stores them: trimmed, lower-case; only characters that need no quoting.
address() {
  local e; e="$(printf '%s' "$1" | tr '[:upper:]' '[:lower:]' | tr -d '[:space:]')"
  [[ "$e" =~ ^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$ ]] || { echo "not an e-mail address: $1" >&2; exit 2; }
  printf '%s' "$e"
}

if [ "${1:-}" = --disable ]; then
  email="$(address "${2:?usage: create-user.sh --disable EMAIL [--local|--remote]}")"; where="${3:---local}"; d1_where_ok "$where"
  out="$(wrangler d1 execute DB "$where" "${D1_PERSIST[@]}" --json --command \
    "UPDATE users SET disabled_at = unixepoch() WHERE email = '$email' AND disabled_at IS NULL RETURNING id;
     INSERT INTO audit_log (actor, action, subject, at) SELECT 'script', 'user.disabled', 'user:' || id, unixepoch()
       FROM users WHERE email = '$email' AND disabled_at = unixepoch()")"
  if printf '%s' "$out" | grep -q '"id"'; then echo "disabled: $email"; else echo "no active user $email" >&2; exit 1; fi
  exit 0
fi

email="$(address "${1:?usage: create-user.sh EMAIL ROLE [--local|--remote]}")"; role="${2:?role: $ROLES}"; where="${3:---local}"
d1_where_ok "$where"
case " $ROLES " in *" $role "*) ;; *) echo "unknown role: $role (known: $ROLES)" >&2; exit 2;; esac
id="u_$(node -e 'process.stdout.write(require("crypto").randomBytes(12).toString("hex"))')"
wrangler d1 execute DB "$where" "${D1_PERSIST[@]}" --command \
  "INSERT INTO users (id, email, role, created_at) VALUES ('$id', '$email', '$role', unixepoch())
     ON CONFLICT (email) DO UPDATE SET role = excluded.role, disabled_at = NULL;
   INSERT INTO audit_log (actor, action, subject, detail, at) SELECT 'script', 'user.created', 'user:' || id,
     json_object('role', role), unixepoch() FROM users WHERE email = '$email'" >/dev/null
echo "user:  $email ($role)"
echo "sign in at /dashboard with a link mailed to that address"
