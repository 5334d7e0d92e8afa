// End-to-end harness: runs the real, release-built workers (edge and sending) under `wrangler dev --local` (workerd with
// local D1 and Queues) in a throw-away state directory, with API tokens seeded into D1.
//
// The worker must be built first (scripts/test.sh does it): this harness never builds, so a test run
// measures exactly the bundle that would be deployed.

import { spawn, execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { startSmsSink } from '../../scripts/sms-sink.mjs';

const run = promisify(execFile);
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const WRANGLER = join(ROOT, 'node_modules/.bin/wrangler');
export const TOKEN_VECTORS = JSON.parse(readFileSync(join(ROOT, 'tests/vectors/tokens.json'), 'utf8'));
export const DEMO_SITE = JSON.parse(readFileSync(join(ROOT, 'tests/vectors/site.json'), 'utf8'));
export const CLASSIFY_VECTORS = JSON.parse(readFileSync(join(ROOT, 'tests/vectors/classify.json'), 'utf8'));

const ENV = {
  ...process.env,
  WRANGLER_SEND_METRICS: 'false',
  CLOUDFLARE_CF_FETCH_ENABLED: 'false',
  NO_COLOR: '1',
};

// Ports this process handed out: the OS may give a just-closed port again at once, and two
// servers told the same port (maildev's SMTP and web) fail with EADDRINUSE.
const handedOut = new Set();

async function freePort() {
  for (;;) {
    const port = await new Promise((ok, fail) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', fail);
      srv.listen(0, '127.0.0.1', () => {
        const { port: p } = srv.address();
        srv.close(() => ok(p));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
}

export function apiToken() {
  return 'ep_' + randomBytes(24).toString('base64url');
}

const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * Starts a worker. Options: `vars` (extra wrangler vars, e.g. fault switches), `withoutSecrets`
 * (secret names left unset, to test a misconfiguration), `inspectorPort` (DevTools, for profiling), `senderFirst` (the sending worker answers
 * on the port instead of the edge, to test what only the service binding should reach). `GET /__scheduled`
 * runs the cron handler (wrangler's --test-scheduled).
 * Returns { url, tokens: {full, statsOnly, revoked}, d1(sql), stop() }.
 */
export async function startWorker({ vars = {}, logLevel = 'warn', withoutSecrets = [], senderFirst = false, inspectorPort = 0 } = {}) {
  const shim = join(ROOT, 'worker/build/worker/shim.mjs');
  const senderShim = join(ROOT, 'send-worker/build/worker/shim.mjs');
  for (const f of [shim, senderShim]) {
    if (!existsSync(f)) throw new Error(`${f} is missing: run scripts/build.sh first`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'epistola-e2e-'));
  const varLines = Object.entries({ PUBLIC_BASE_URL: '', ...vars })
    .map(([k, v]) => `${k} = ${JSON.stringify(String(v))}`)
    .join('\n');
  const storage = `[[d1_databases]]
binding = "DB"
database_name = "epistola"
database_id = "00000000-0000-0000-0000-000000000000"
migrations_dir = ${JSON.stringify(join(ROOT, 'migrations'))}
[[kv_namespaces]]
binding = "CONFIG"
id = "00000000000000000000000000000000"
[[queues.producers]]
binding = "SENDS"
queue = "epistola-sends"
`;
  // Both workers in one wrangler dev process: they share D1, KV and the queues, and the edge
  // reaches the sending worker through its service binding, as deployed.
  const config = join(dir, 'edge', 'wrangler.toml');
  const senderConfig = join(dir, 'sender', 'wrangler.toml');
  const secrets = Object.entries({ SIGNING_KEYS: TOKEN_VECTORS.signing_keys, IP_HASH_KEY: randomBytes(32).toString('base64url') })
    .filter(([name]) => !withoutSecrets.includes(name))
    .map(([name, value]) => `${name}="${value}"\n`)
    .join('');
  for (const [file, body] of [
    [config, `name = "epistola-e2e"
main = ${JSON.stringify(shim)}
compatibility_date = "2026-04-01"
[vars]
${varLines}
${storage}
[[queues.producers]]
binding = "EVENTS"
queue = "epistola-events"
[[queues.consumers]]
queue = "epistola-events"
max_batch_size = 100
max_batch_timeout = 1
max_retries = 5
dead_letter_queue = "epistola-events-dlq"
[[services]]
binding = "SENDER"
service = "epistola-sender"
`],
    [senderConfig, `name = "epistola-sender"
main = ${JSON.stringify(senderShim)}
compatibility_date = "2026-04-01"
[vars]
${varLines}
${storage}
[[queues.consumers]]
queue = "epistola-sends"
max_batch_size = 10
max_batch_timeout = 1
max_retries = 5
dead_letter_queue = "epistola-sends-dlq"
`],
  ]) {
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(file, body);
    writeFileSync(join(dirname(file), '.dev.vars'), secrets);
  }
  const persist = join(dir, 'state');
  const common = ['--config', config, '--persist-to', persist];
  const wr = (args) => run(WRANGLER, args, { env: ENV, cwd: dir, maxBuffer: 64 << 20 });
  await wr(['d1', 'migrations', 'apply', 'DB', '--local', ...common]);

  const tokens = {
    full: apiToken(), statsOnly: apiToken(), signOnly: apiToken(), revoked: apiToken(), sites: apiToken(),
    marketer: apiToken(), approver: apiToken(), hooks: apiToken(), admin: apiToken(),
  };
  const now = Math.floor(Date.now() / 1000);
  const rows = [
    ['full', tokens.full, 'track:sign stats:read', 'NULL'],
    ['stats', tokens.statsOnly, 'stats:read', 'NULL'],
    ['sign', tokens.signOnly, 'track:sign', 'NULL'],
    ['revoked', tokens.revoked, 'track:sign stats:read', String(now)],
    ['sites', tokens.sites, 'sites:write', 'NULL'],
    ['marketer', tokens.marketer, 'contacts:read contacts:write campaigns:write events:write stats:read', 'NULL'],
    ['approver', tokens.approver, 'campaigns:approve', 'NULL'],
    ['hooks', tokens.hooks, 'webhooks:write', 'NULL'],
    // The workspace admin's: every scope.
    ['admin', tokens.admin, 'track:sign stats:read sites:write contacts:read contacts:write campaigns:write campaigns:approve events:write webhooks:write tokens:write audit:read', 'NULL'],
  ]
    .map(([id, t, scopes, revoked]) => `('${id}', '${sha256(t)}', '${id} test token', '${scopes}', ${now}, ${revoked})`)
    .join(', ');
  // Reads the worker's local D1 from a second process. SQLite answers BUSY while the running worker
  // holds its write lock for a moment: wait and try again (other errors are real and thrown).
  const d1 = async (sql) => {
    for (let attempt = 1; ; attempt++) {
      try {
        const { stdout } = await wr(['d1', 'execute', 'DB', '--local', ...common, '--json', '--command', sql]);
        return JSON.parse(stdout)[0].results;
      } catch (e) {
        const busy = /SQLITE_BUSY|database is locked/.test(`${e.message}${e.stdout ?? ''}${e.stderr ?? ''}`); // --json reports errors on stdout
        if (!busy || attempt >= 10) {
          e.message += `\n${e.stdout ?? ''}${e.stderr ?? ''}`;
          throw e;
        }
        await sleep(200 * attempt);
      }
    }
  };
  await d1(`INSERT INTO api_tokens (id, token_hash, name, scopes, created_at, revoked_at) VALUES ${rows}`);

  const port = await freePort();
  const log = [];
  const child = spawn(
    WRANGLER,
    ['dev', '--local', ...(senderFirst ? ['--config', senderConfig, '--persist-to', persist, '--config', config] : [...common, '--config', senderConfig]), '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', String(inspectorPort),
      '--show-interactive-dev-session=false', '--log-level', logLevel, '--test-scheduled'],
    { env: ENV, cwd: dir, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`wrangler dev exited:\n${log.join('')}`);
    try {
      const r = await fetch(`${url}/healthz`);
      // The sending worker has no health route: any answer of its own means it is up.
      if (r.status === 200 || (senderFirst && r.status === 404)) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`worker did not start:\n${log.join('')}`);
    await sleep(200);
  }
  const stop = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await sleep(300);
    rmSync(dir, { recursive: true, force: true });
  };
  return { url, tokens, d1, stop, log, persist };
}

/**
 * The sending system: an SMTP sink, an SMS provider sink, both workers delivering to them with
 * every queue batch replayed once (FAULT_REPLAY_BATCHES), and the demo site configured.
 * Returns { w, mail, sms }; w.stop() also stops the SMS sink.
 */
export async function startSendingSystem({ vars = {} } = {}) {
  const mail = await startMailSink();
  const sms = await startSmsSink();
  const w = await startWorker({
    vars: {
      SMTP_HOST: '127.0.0.1', SMTP_PORT: String(mail.smtpPort), SMTP_STARTTLS: 'off', FAULT_REPLAY_BATCHES: '1',
      SMS_API_URL: `http://127.0.0.1:${sms.port}`, SMS_ACCOUNT: sms.account, SMS_TOKEN: sms.token, SMS_FROM: '+15005550006',
      ...vars,
    },
  });
  const r = await api(w, 'PUT', '/v1/sites/demo', { token: w.tokens.sites, body: DEMO_SITE });
  if (r.status !== 200) throw new Error(`site setup failed: ${r.status} ${r.text}`);
  const stop = w.stop;
  w.stop = async () => {
    await stop();
    await sms.stop();
  };
  return { w, mail, sms };
}

/**
 * Starts a real SMTP sink (maildev: SMTP + REST API) on free loopback ports.
 * Returns { smtpPort, messages(), source(id), waitFor(predicate), stop() }.
 */
export async function startMailSink({ smtpPort: fixedSmtp, webPort: fixedWeb } = {}) {
  const smtpPort = fixedSmtp ?? (await freePort());
  const webPort = fixedWeb ?? (await freePort());
  const child = spawn(join(ROOT, 'node_modules/.bin/maildev'),
    ['--smtp', String(smtpPort), '--web', String(webPort), '--ip', '127.0.0.1', '--web-ip', '127.0.0.1'],
    { env: ENV, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const log = [];
  child.stdout.on('data', (d) => log.push(String(d)));
  child.stderr.on('data', (d) => log.push(String(d)));
  const base = `http://127.0.0.1:${webPort}`;
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`${base}/api/healthz`)).ok) break;
    } catch {
      // not up yet
    }
    if (i > 150) throw new Error(`maildev did not start:\n${log.join('')}`);
    await sleep(100);
  }
  const messages = async () => {
    const r = await fetch(`${base}/api/email?limit=1000`);
    const body = await r.json();
    return Array.isArray(body) ? body : body.emails ?? body.items ?? body.data ?? [];
  };
  // The raw message as received (headers the JSON view leaves out, e.g. List-Unsubscribe).
  const source = async (id) => (await fetch(`${base}/api/email/${id}/source`)).text();
  const waitFor = async (predicate, { timeoutMs = 30_000, what = 'a message' } = {}) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = (await messages()).filter(predicate);
      if (found.length) return found;
      if (Date.now() > deadline) throw new Error(`no ${what} arrived; have ${JSON.stringify((await messages()).map((m) => m.subject))}`);
      await sleep(250);
    }
  };
  const stop = () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  return { smtpPort, webPort, base, messages, source, waitFor, stop, log };
}

/** Calls the JSON API. */
export async function api(w, method, path, { token = w.tokens.full, body, headers = {} } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && typeof body !== 'string') {
    payload = JSON.stringify(body);
    h['content-type'] ??= 'application/json';
  }
  const res = await fetch(w.url + path, { method, headers: h, body: payload, redirect: 'manual' });
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** Signs the tracking URLs for one message; `sentAgo` seconds in the past (default 1 h). */
export async function signLinks(w, { campaign, contact, message = 'm1', links = [], sentAgo = 3600 }) {
  const sent_at = Math.floor(Date.now() / 1000) - sentAgo;
  const r = await api(w, 'POST', '/v1/track/links', { body: { campaign, contact, message, links, sent_at } });
  if (r.status !== 200) throw new Error(`sign failed: ${r.status} ${r.text}`);
  return r.json;
}

/** Stats JSON for a campaign. */
export async function stats(w, campaign) {
  const r = await api(w, 'GET', `/v1/stats/campaigns/${campaign}`, { token: w.tokens.statsOnly });
  if (r.status !== 200) throw new Error(`stats failed: ${r.status} ${r.text}`);
  return r.json;
}

/**
 * Polls stats until `done(stats)` holds (the queue is asynchronous), then keeps polling for
 * `settleMs` to prove nothing more arrives (e.g. a replayed batch counted twice).
 */
export async function settledStats(w, campaign, done, { timeoutMs = 30_000, settleMs = 4_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let s = await stats(w, campaign);
  while (!done(s)) {
    if (Date.now() > deadline) throw new Error(`stats never reached the expected state: ${JSON.stringify(s)}`);
    await sleep(250);
    s = await stats(w, campaign);
  }
  await sleep(settleMs);
  return stats(w, campaign);
}

/**
 * The tracked links of a letter a person can see and follow, in order: every `/c/` link except the
 * hidden honeypot (the one `<a>` marked `aria-hidden`).
 */
export function visibleLinks(html) {
  return [...html.matchAll(/<a\b[^>]*>/g)]
    .filter((m) => !/aria-hidden="true"/.test(m[0]))
    .map((m) => /href="(https?:\/\/[^"]+\/c\/[A-Za-z0-9_-]+)"/.exec(m[0])?.[1])
    .filter(Boolean);
}

/** The letter's hidden honeypot link (`undefined` if it has none). */
export function honeypotLink(html) {
  const tag = [...html.matchAll(/<a\b[^>]*>/g)].find((m) => /aria-hidden="true"/.test(m[0]));
  return tag && /href="([^"]+)"/.exec(tag[0])?.[1];
}

/** Signs in to the dashboard with an API token (a same-origin form POST); returns the `cookie` header. */
export async function dashboardCookie(w, token) {
  const session = await fetch(`${w.url}/dashboard/session`, {
    method: 'POST', redirect: 'manual',
    headers: { origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${token}`,
  });
  if (session.status !== 303) throw new Error(`dashboard sign-in answered ${session.status}: ${await session.text()}`);
  return session.headers.get('set-cookie').split(';')[0];
}

/** The path of a URL the API returned, so tests can call the worker they started. */
export function pathOf(u) {
  const x = new URL(u);
  return x.pathname + x.search;
}

// Quiet hours are 21:00-09:00 in the recipient's zone whatever the time the suite runs: tests pick
// zones where it is now mid-day or mid-night.
const ZONES = ['UTC', 'Europe/Kyiv', 'Asia/Tokyo', 'Pacific/Auckland', 'America/New_York', 'America/Los_Angeles',
  'Asia/Kolkata', 'Pacific/Honolulu', 'Asia/Dubai', 'America/Sao_Paulo', 'Pacific/Kiritimati', 'Pacific/Pago_Pago'];
const localHour = (zone) => Number(new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: 'numeric', hourCycle: 'h23' }).format(new Date()));

/** An IANA zone whose current local hour satisfies `ok(hour)`. */
export function zoneWhere(ok) {
  const z = ZONES.find((zone) => ok(localHour(zone)));
  if (!z) throw new Error('no zone in the wanted part of the day');
  return z;
}

/** A zone where it is day now (10:00-19:59): no quiet hours. */
export const daytimeZone = () => zoneWhere((h) => h >= 10 && h <= 19);

/** Polls `check` until it returns something truthy (returned), or throws after `timeoutMs`. */
export async function until(what, check, { timeoutMs = 30_000, everyMs = 300 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A workspace user made as an operator makes one: `scripts/create-user.sh EMAIL ROLE`. */
export async function createUser(w, email, role) {
  const env = { ...process.env, EPISTOLA_PERSIST_TO: w.persist };
  await run(`${ROOT}/scripts/create-user.sh`, [email, role], { env, cwd: ROOT });
}

/** Debian Chromium, headless, driven by playwright-core. */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run', '--disable-quic'],
  });
}

/**
 * Signs `page` in to the dashboard as the workspace user `email`, as a person does: the address,
 * the mailed link (read from the mail sink), the one button. Returns the user's id.
 */
export async function signInByMail(page, w, mail, email) {
  await page.goto(`${w.url}/dashboard`);
  await page.fill('#email', email);
  await page.click('text=Email me a sign-in link');
  await page.waitForSelector('text=Check your mail');
  const letters = await mail.waitFor((m) => m.to?.some((t) => t.address === email) && /sign-in/i.test(m.text ?? ''), { what: `the sign-in letter to ${email}` });
  const letter = letters[letters.length - 1];
  const link = w.url + new URL(/https?:\/\/[^\s"<>]+\/dashboard\/sign-in\/[A-Za-z0-9_-]+/.exec(letter.text)[0]).pathname;
  await page.goto(link);
  await Promise.all([page.waitForURL(`${w.url}/dashboard`), page.click('button:has-text("Sign in")')]);
  const [{ id }] = await w.d1(`SELECT id FROM users WHERE email = '${email.replaceAll("'", "''")}'`);
  return id;
}
