#!/usr/bin/env bash
# Installs what is missing, builds, and runs Epistola locally: both workers under `wrangler dev` with
# local D1, KV and Queues (state in .wrangler/), a real SMTP sink with a web UI (maildev), and the
# demo shop on another origin with the widget embedded. Prints a fresh demo API token and a signed
# demo campaign. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
PORT="${PORT:-8787}"
BASE="http://127.0.0.1:$PORT"
SHOP_PORT=8788
MAIL_SMTP=1025
MAIL_WEB=1080

scripts/setup.sh
scripts/build.sh

rand() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))'; }
if [ ! -f .dev.vars ]; then
  echo "creating .dev.vars with fresh local secrets"
  printf 'SIGNING_KEYS="1:%s"\nIP_HASH_KEY="%s"\n' "$(rand)" "$(rand)" > .dev.vars
fi
# The sending worker signs with the same key ring and delivers to the local sink.
{ grep '^SIGNING_KEYS=' .dev.vars
  printf 'SMTP_HOST="127.0.0.1"\nSMTP_PORT="%s"\nSMTP_STARTTLS="off"\n' "$MAIL_SMTP"; } > send-worker/.dev.vars

wrangler d1 migrations apply DB --local >/dev/null
TOKEN="ep_$(rand)"
HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
NOW="$(date +%s)"
wrangler d1 execute DB --local --command \
  "DELETE FROM api_tokens WHERE id = 'demo'; INSERT INTO api_tokens (id, token_hash, name, scopes, created_at) VALUES ('demo', '$HASH', 'local demo token', 'track:sign stats:read sites:write', $NOW);" >/dev/null

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT INT TERM
maildev --smtp "$MAIL_SMTP" --web "$MAIL_WEB" --ip 127.0.0.1 --web-ip 127.0.0.1 >/dev/null &
PIDS+=($!)
node scripts/static-server.mjs demo "$SHOP_PORT" "$BASE" &
PIDS+=($!)
# Both workers in one process (shared local D1, KV and queues; the edge reaches the sending worker
# through its service binding).
wrangler dev -c wrangler.toml -c send-worker/wrangler.toml --local --persist-to .wrangler/state \
  --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false &
PIDS+=($!)
until node -e "fetch('$BASE/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do sleep 0.3; done

# The demo shop's site: widget triggers, quiz, promise and consent texts (tests/vectors/site.json).
node -e '
  const [base, token, file] = process.argv.slice(1);
  fetch(base + "/v1/sites/demo", { method: "PUT", headers: { authorization: "Bearer " + token, "content-type": "application/json" },
    body: require("fs").readFileSync(file) }).then(async r => { if (!r.ok) { console.error(await r.text()); process.exit(1); } });
' "$BASE" "$TOKEN" tests/vectors/site.json

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

  Demo shop (widget embedded):  http://127.0.0.1:$SHOP_PORT  — view two toys, the form appears
  Mail sink (maildev):          http://127.0.0.1:$MAIL_WEB  — the confirmation e-mail lands here

Demo API token (scopes track:sign stats:read sites:write):
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
wait "${PIDS[@]}"
