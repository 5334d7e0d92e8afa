// Sites and lead capture end to end: the real worker under wrangler dev with local KV and D1.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, api, DEMO_SITE } from './harness.mjs';

const ORIGIN = DEMO_SITE.allowed_origins[0];
const IN_FORM = DEMO_SITE.consents.find((c) => c.in_form);
const CONSENT = { purpose: IN_FORM.purpose, channel: IN_FORM.channel, text_version: IN_FORM.version };

let w;
before(async () => {
  w = await startWorker();
  const r = await api(w, 'PUT', '/v1/sites/demo', { token: w.tokens.sites, body: DEMO_SITE });
  assert.equal(r.status, 200, r.text);
});
after(async () => {
  await w?.stop();
});

let ipCounter = 0;
/** Posts a capture the way the widget does: text/plain JSON from the site's origin. */
function capture(body, { origin = ORIGIN, contentType = 'text/plain;charset=UTF-8', ip, raw } = {}) {
  const headers = { 'content-type': contentType, 'user-agent': 'Mozilla/5.0 (e2e) Chrome/131.0' };
  if (origin) headers.origin = origin;
  headers['cf-connecting-ip'] = ip ?? `203.0.113.${(ipCounter++ % 200) + 1}`;
  return fetch(`${w.url}/v1/capture`, { method: 'POST', headers, body: raw ?? JSON.stringify(body) });
}

const count = async (sql) => (await w.d1(sql))[0].n;
const contactsWith = (email) => count(`SELECT COUNT(*) AS n FROM contacts WHERE email = '${email}'`);

test('site config: marketers need sites:write; invalid configs are refused field by field', async () => {
  assert.equal((await api(w, 'PUT', '/v1/sites/demo2', { token: null, body: DEMO_SITE })).status, 401);
  assert.equal((await api(w, 'PUT', '/v1/sites/demo2', { token: w.tokens.statsOnly, body: DEMO_SITE })).status, 403);
  const bad = { ...DEMO_SITE, allowed_origins: ['https://shop.example/path'], trigger: {} };
  const r = await api(w, 'PUT', '/v1/sites/demo2', { token: w.tokens.sites, body: bad });
  assert.equal(r.status, 400);
  assert.deepEqual(Object.keys(r.json.error.fields).sort(), ['allowed_origins[0]', 'trigger']);
  const unknownKey = await api(w, 'PUT', '/v1/sites/demo2', { token: w.tokens.sites, body: { ...DEMO_SITE, colour: 'red' } });
  assert.equal(unknownKey.status, 400);
  assert.ok('colour' in unknownKey.json.error.fields, unknownKey.text);
  const notStored = await fetch(`${w.url}/v1/sites/demo2/widget`);
  assert.equal(notStored.status, 404, 'a refused config is not stored');
});

test('widget config: CORS only for the site origins, and the promised item stays secret', async () => {
  const ok = await fetch(`${w.url}/v1/sites/demo/widget`, { headers: { origin: ORIGIN } });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('access-control-allow-origin'), ORIGIN);
  const config = await ok.json();
  assert.deepEqual(config.trigger, DEMO_SITE.trigger);
  assert.deepEqual(config.quiz.map((q) => q.id), ['child_age', 'birthday']);
  assert.deepEqual(config.consents.map((c) => c.version), [IN_FORM.version], 'only the consents asked in the form');
  assert.ok(!JSON.stringify(config).includes(DEMO_SITE.promise.delivery.url), 'the delivery link is never sent to the browser');

  const evil = await fetch(`${w.url}/v1/sites/demo/widget`, { headers: { origin: 'https://evil.example' } });
  assert.equal(evil.status, 403);
  assert.equal(evil.headers.get('access-control-allow-origin'), null);
  const pre = await fetch(`${w.url}/v1/sites/demo/widget`, { method: 'OPTIONS', headers: { origin: ORIGIN } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), ORIGIN);
  assert.equal((await fetch(`${w.url}/v1/sites/nope/widget`, { headers: { origin: ORIGIN } })).status, 404);
});

test('a capture stores the contact, the answers and a consent ledger entry, all pending confirmation', async () => {
  const r = await capture({
    site: 'demo', email: ' Ann.Lee@Example.COM ', fields: { first_name: 'Ann' },
    answers: { child_age: '3-5', birthday: '2027-03-14' }, consents: [CONSENT], form: 'quiz',
  }, { ip: '198.51.100.23' });
  assert.equal(r.status, 202);
  assert.deepEqual(await r.json(), { status: 'pending_confirmation' });
  assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);

  const [contact] = await w.d1(`SELECT id, status, fields FROM contacts WHERE email = 'ann.lee@example.com'`);
  assert.equal(contact.status, 'pending');
  assert.deepEqual(JSON.parse(contact.fields), { first_name: 'Ann', child_age: '3-5', birthday: '2027-03-14' });
  const [cap] = await w.d1(`SELECT site_id, form, status, ip_hash, user_agent FROM captures WHERE contact_id = '${contact.id}'`);
  assert.equal(cap.site_id, 'demo');
  assert.equal(cap.form, 'quiz');
  assert.equal(cap.status, 'pending_confirmation');
  assert.match(cap.ip_hash, /^[0-9a-f]{16}$/, 'a keyed hash');
  assert.ok(!JSON.stringify(await w.d1('SELECT * FROM captures')).includes('198.51.100.23'), 'never the raw IP');
  const ledger = await w.d1(`SELECT purpose, channel, action, text_version, method FROM consent_ledger WHERE contact_id = '${contact.id}'`);
  assert.deepEqual(ledger, [{ purpose: IN_FORM.purpose, channel: 'email', action: 'given', text_version: IN_FORM.version, method: 'widget_form' }]);
  await assert.rejects(
    w.d1(`UPDATE consent_ledger SET action = 'withdrawn'`),
    (e) => /append-only/.test(`${e.message}${e.stdout}${e.stderr}`),
    'the ledger is append-only',
  );
});

test('a long non-ASCII User-Agent is stored clipped on a character boundary, not a crash', async () => {
  // Sent as Latin-1 bytes; the runtime turns each non-UTF-8 byte into U+FFFD (3 bytes in UTF-8),
  // so byte 512 of the string the worker sees falls inside a character.
  const ua = 'x' + 'é'.repeat(400);
  const r = await fetch(`${w.url}/v1/capture`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: ORIGIN, 'user-agent': ua, 'cf-connecting-ip': '203.0.113.250' },
    body: JSON.stringify({ site: 'demo', email: 'long-ua@example.com', consents: [CONSENT] }),
  });
  assert.equal(r.status, 202, await r.text());
  const [row] = await w.d1(`SELECT l.user_agent FROM consent_ledger l JOIN contacts c ON c.id = l.contact_id WHERE c.email = 'long-ua@example.com'`);
  assert.equal(row.user_agent, 'x' + '\uFFFD'.repeat(170), 'the longest whole-character prefix within 512 bytes');
});

test('bad captures get the right status, name the field, and store nothing', async () => {
  const good = { site: 'demo', email: 'bad-input@example.com', consents: [CONSENT] };
  const cases = [
    ['malformed JSON', { raw: '{"site": "demo",' }, 400, 'body'],
    ['wrong content type', { raw: 'email=x', contentType: 'application/x-www-form-urlencoded' }, 415],
    ['body over 16 KiB', { raw: JSON.stringify({ ...good, fields: { first_name: 'x'.repeat(17_000) } }) }, 413],
    ['invalid email', { body: { ...good, email: 'not-an-address' } }, 400, 'email'],
    ['missing consent text version', { body: { ...good, consents: [{ purpose: CONSENT.purpose, channel: 'email' }] } }, 400, 'text_version'],
    ['outdated consent text version', { body: { ...good, consents: [{ ...CONSENT, text_version: 'old' }] } }, 400, 'consents[0].text_version'],
    ['no consent', { body: { ...good, consents: [] } }, 400, 'consents'],
    ['unknown site', { body: { ...good, site: 'nope' } }, 400, 'site'],
    ['unknown field', { body: { ...good, password: 'x' } }, 400, 'password'],
    ['disallowed origin', { body: good, origin: 'https://evil.example' }, 403],
    ['no origin (not a browser)', { body: good, origin: null }, 403],
  ];
  for (const [name, opts, status, field] of cases) {
    const r = await capture(opts.body, opts);
    assert.equal(r.status, status, name);
    const body = await r.json();
    assert.ok(body.error?.code, `${name}: ${JSON.stringify(body)}`);
    if (field) assert.ok(field in body.error.fields, `${name}: ${JSON.stringify(body)}`);
    if (status === 403) assert.equal(r.headers.get('access-control-allow-origin'), null, name);
  }
  assert.equal(await contactsWith('bad-input@example.com'), 0, 'nothing stored for any rejected request');

  const bot = await capture({ ...good, email: 'bot@example.com', hp: 'https://spam.example' });
  assert.equal(bot.status, 202, 'a filled honeypot looks accepted');
  assert.equal(await contactsWith('bot@example.com'), 0, '…and stores nothing');
});

test('50 rapid submissions from one IP: the first 20 are kept, the rest are 429 and stored nowhere', async () => {
  const results = await Promise.all(
    Array.from({ length: 50 }, (_, i) =>
      capture({ site: 'demo', email: `burst-${i}@example.com`, consents: [CONSENT] }, { ip: '192.0.2.77' })),
  );
  const statuses = results.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 202).length, 20, statuses.join(','));
  assert.equal(statuses.filter((s) => s === 429).length, 30, statuses.join(','));
  const limited = results.find((r) => r.status === 429);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.equal(limited.headers.get('access-control-allow-origin'), ORIGIN, 'the widget can read why');
  const accepted = results.map((r, i) => (r.status === 202 ? `burst-${i}@example.com` : null)).filter(Boolean);
  const stored = await w.d1(`SELECT email FROM contacts WHERE email LIKE 'burst-%' ORDER BY email`);
  assert.deepEqual(stored.map((r) => r.email), accepted.sort(), 'every accepted capture is stored, no other');
});

test('list-bombing one address from many IPs stops after 3 per hour', async () => {
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    const r = await capture({ site: 'demo', email: 'victim@example.com', consents: [CONSENT] }, { ip: `198.18.0.${i + 1}` });
    statuses.push(r.status);
  }
  assert.deepEqual(statuses, [202, 202, 202, 429, 429]);
  assert.equal(await count(`SELECT COUNT(*) AS n FROM captures c JOIN contacts k ON k.id = c.contact_id WHERE k.email = 'victim@example.com'`), 3);
  assert.equal(await contactsWith('victim@example.com'), 1, 'one contact, however often captured');
});

test('cron deletes ended rate-limit windows and keeps the live ones', async () => {
  await w.d1(`INSERT INTO rate_limits (key, window, n, expires_at) VALUES ('ip:ended', 1, 5, 600)`);
  const live = await count(`SELECT COUNT(*) AS n FROM rate_limits WHERE expires_at > unixepoch()`);
  assert.ok(live > 0, 'the captures above left live windows');
  const r = await fetch(`${w.url}/__scheduled?cron=*/15+*+*+*+*`);
  assert.equal(r.status, 200);
  assert.equal(await count(`SELECT COUNT(*) AS n FROM rate_limits WHERE key = 'ip:ended'`), 0);
  assert.equal(await count(`SELECT COUNT(*) AS n FROM rate_limits WHERE expires_at > unixepoch()`), live);
});
