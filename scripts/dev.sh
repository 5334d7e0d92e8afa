#!/usr/bin/env bash
# Installs what is missing, builds, and runs Epistola locally: the worker under `wrangler dev` with
# local D1 and Queues (state in .wrangler/), migrations applied, a fresh demo API token and a
# signed demo campaign printed. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
PORT="${PORT:-8787}"
BASE="http://127.0.0.1:$PORT"

scripts/setup.sh
scripts/build.sh

rand() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))'; }
if [ ! -f .dev.vars ]; then
  echo "creating .dev.vars with fresh local secrets"
  printf 'SIGNING_KEYS="1:%s"\nIP_HASH_KEY="%s"\n' "$(rand)" "$(rand)" > .dev.vars
fi

wrangler d1 migrations apply DB --local >/dev/null
TOKEN="ep_$(rand)"
HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
NOW="$(date +%s)"
wrangler d1 execute DB --local --command \
  "DELETE FROM api_tokens WHERE id = 'demo'; INSERT INTO api_tokens (id, token_hash, name, scopes, created_at) VALUES ('demo', '$HASH', 'local demo token', 'track:sign stats:read', $NOW);" >/dev/null

wrangler dev --local --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false &
WRANGLER_PID=$!
trap 'kill $WRANGLER_PID 2>/dev/null || true' EXIT INT TERM
until node -e "fetch('$BASE/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do sleep 0.3; done

SIGNED="$(node -e '
  const [base, token] = process.argv.slice(1);
  fetch(base + "/v1/track/links", {
    method: "POST",
    headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: JSON.stringify({ campaign: "demo", contact: "demo-reader", message: "welcome-1",
      links: ["https://example.com/", "https://example.org/offer"], sent_at: Math.floor(Date.now() / 1000) - 60 }),
  }).then(r => r.json()).then(j => {
    console.log("  pixel:        " + j.pixel_url);
    j.links.forEach(l => console.log("  link " + l.index + ":       " + l.tracked_url + "  ->  " + l.url));
    console.log("  unsubscribe:  " + j.unsubscribe_url);
  });' "$BASE" "$TOKEN")"

cat <<INFO

Epistola is running at $BASE

Demo API token (scopes track:sign stats:read):
  $TOKEN

A demo campaign "demo" was signed for contact "demo-reader":
$SIGNED

Open the pixel or a link in your browser, then watch the stats change:
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/stats/campaigns/demo
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/stats/campaigns/demo?format=csv"

Sign links for your own message:
  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{"campaign":"spring","contact":"c-1","links":["https://example.com/"]}' $BASE/v1/track/links

Ctrl-C to stop.
INFO
wait $WRANGLER_PID
