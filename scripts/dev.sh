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
SMS_PORT=1081
LETTERS_PORT=1082

scripts/setup.sh
scripts/build.sh

rand() { node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64url"))'; }
if [ ! -f .dev.vars ]; then
  echo "creating .dev.vars with fresh local secrets"
  printf 'SIGNING_KEYS="1:%s"\nIP_HASH_KEY="%s"\n' "$(rand)" "$(rand)" > .dev.vars
fi
# The sending worker signs with the same key ring, hashes IPs (confirm and preference pages) with the
# same key, and delivers to the local sinks (mail and SMS).
{ grep -E '^(SIGNING_KEYS|IP_HASH_KEY)=' .dev.vars
  printf 'SMTP_HOST="127.0.0.1"\nSMTP_PORT="%s"\nSMTP_STARTTLS="off"\n' "$MAIL_SMTP"
  printf 'SMS_API_URL="http://127.0.0.1:%s"\nSMS_ACCOUNT="AC_local"\nSMS_TOKEN="local-token"\nSMS_FROM="+15005550006"\n' "$SMS_PORT"
  # The start page at $BASE/ links to the local sinks and the demo shop.
  printf "START_LINKS='%s'\n" "[{\"label\":\"Demo shop\",\"url\":\"http://127.0.0.1:$SHOP_PORT\",\"note\":\"the widget: view two toys, the form appears\"},{\"label\":\"Letters\",\"url\":\"http://127.0.0.1:$LETTERS_PORT\",\"note\":\"the local mail sink, each letter as its own page (its links work)\"},{\"label\":\"maildev\",\"url\":\"http://127.0.0.1:$MAIL_WEB\",\"note\":\"the same letters with headers and source\"},{\"label\":\"SMS sink\",\"url\":\"http://127.0.0.1:$SMS_PORT/messages\",\"note\":\"SMS fallbacks\"}]"; } > send-worker/.dev.vars

wrangler d1 migrations apply DB --local >/dev/null
TOKEN="ep_$(rand)"
HASH="$(printf '%s' "$TOKEN" | sha256sum | cut -d' ' -f1)"
NOW="$(date +%s)"
wrangler d1 execute DB --local --command \
  "DELETE FROM api_tokens WHERE id = 'demo'; INSERT INTO api_tokens (id, token_hash, name, scopes, created_at) VALUES ('demo', '$HASH', 'local demo token', 'track:sign stats:read sites:write contacts:read contacts:write campaigns:write campaigns:approve events:write webhooks:write tokens:write audit:read', $NOW);" >/dev/null
# A workspace admin to sign in as: the sign-in link lands in the local mail sink.
./scripts/create-user.sh admin@epistola.localhost admin >/dev/null

PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true' EXIT INT TERM
maildev --smtp "$MAIL_SMTP" --web "$MAIL_WEB" --ip 127.0.0.1 --web-ip 127.0.0.1 >/dev/null &
PIDS+=($!)
node scripts/static-server.mjs demo "$SHOP_PORT" "$BASE" &
PIDS+=($!)
node scripts/sms-sink.mjs "$SMS_PORT" AC_local local-token &
PIDS+=($!)
node scripts/letters.mjs "$LETTERS_PORT" "http://127.0.0.1:$MAIL_WEB" &
PIDS+=($!)
# Both workers in one process (shared local D1, KV and queues; the edge reaches the sending worker
# through its service binding).
wrangler dev -c wrangler.toml -c send-worker/wrangler.toml --local --persist-to .wrangler/state \
  --ip 127.0.0.1 --port "$PORT" --show-interactive-dev-session=false --test-scheduled &
PIDS+=($!)
until node -e "fetch('$BASE/healthz').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"; do sleep 0.3; done
# `wrangler dev` does not run cron triggers by itself: this is the per-minute cron of wrangler.toml
# (scheduled campaigns, deferred letters, chains, webhooks, housekeeping).
node -e '
  const tick = () => fetch(process.argv[1] + "/__scheduled").catch((e) => console.error("cron tick failed:", e.message));
  tick(); setInterval(tick, 60_000);' "$BASE" &
PIDS+=($!)

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

Epistola is running at http://localhost:$PORT/  (a start page with every link below)

  Demo shop (widget embedded):  http://127.0.0.1:$SHOP_PORT  — view two toys, the form appears
  Letters:                      http://127.0.0.1:$LETTERS_PORT  — each letter as its own page: its links work
  Mail sink (maildev):          http://127.0.0.1:$MAIL_WEB  — the confirmation e-mail lands here
                                (maildev's viewer frames letters: links followed there show an error)
  Cron:                         the tick runs every minute; run it now with curl $BASE/__scheduled
  SMS sink:                     http://127.0.0.1:$SMS_PORT/messages  — SMS fallbacks land here

Demo API token (all scopes):
  $TOKEN

Dashboard: http://localhost:$PORT/dashboard (localhost, so the Secure session cookie is accepted)
  sign in as admin@epistola.localhost: the one-time link lands in Letters (above);
  or with the token above

A demo campaign "demo" was signed for contact "demo-reader":
$SIGNED

Open the pixel or a link in your browser, then watch the stats change:
  curl -s -H "Authorization: Bearer $TOKEN" $BASE/v1/stats/campaigns/demo
  curl -s -H "Authorization: Bearer $TOKEN" "$BASE/v1/stats/campaigns/demo?format=csv"

Sign links for your own message:
  curl -s -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
    -d '{"campaign":"spring","contact":"c-1","links":["https://example.com/"]}' $BASE/v1/track/links

Send a campaign (the test letter lands in maildev; see README "Templates and campaigns"):
  AUTH="Authorization: Bearer $TOKEN"; JSON='content-type: application/json'
  curl -s -H "\$AUTH" -H "\$JSON" -d '{"email":"you@example.com","name":"You","test_list":true,"consents":[{"site":"demo","purpose":"newsletter","channel":"email","source":"demo"}]}' $BASE/v1/contacts
  curl -s -X PUT -H "\$AUTH" -H "\$JSON" -d '{"name":"Hello","subject":"Hello {{ contact.name }}","html":"<p>Hi!</p><a href=\"https://example.com/\">Shop</a>"}' $BASE/v1/templates/hello
  curl -s -X PUT -H "\$AUTH" -H "\$JSON" -d '{"name":"Hello","site":"demo","template":"hello","purpose":"newsletter","segment":{"everyone":true}}' $BASE/v1/campaigns/hello
  curl -s -X POST -H "\$AUTH" $BASE/v1/campaigns/hello/test

Ctrl-C to stop.
INFO
wait "${PIDS[@]}"
