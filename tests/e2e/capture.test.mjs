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
  // Site texts become mail headers: a line break would smuggle in headers of its own.
  const injected = { ...DEMO_SITE, promise: { ...DEMO_SITE.promise, title: 'A gift\r\nBcc: everyone@example.com' } };
  const header = await api(w, 'PUT', '/v1/sites/demo2', { token: w.tokens.sites, body: injected });
  assert.equal(header.status, 400, header.text);
  assert.deepEqual(Object.keys(header.json.error.fields), ['promise.title']);
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

test('a capture keeps everything it carries on the capture: the contact and the ledger wait for confirmation', async () => {
  const r = await capture({
    site: 'demo', email: ' Ann.Lee@Example.COM ', phone: '+44 20 7946 0958', fields: { first_name: 'Ann' },
    answers: { child_age: '3-5', birthday: '2027-03-14' }, consents: [CONSENT], form: 'quiz',
  }, { ip: '198.51.100.23' });
  assert.equal(r.status, 202);
  assert.deepEqual(await r.json(), { status: 'pending_confirmation' });
  assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);

  const [contact] = await w.d1(`SELECT id, status, phone, fields, origin FROM contacts WHERE email = 'ann.lee@example.com'`);
  assert.deepEqual([contact.status, contact.phone, JSON.parse(contact.fields), contact.origin], ['pending', null, {}, 'capture'],
    'a new contact is created empty: nothing is applied before the confirming POST');
  const [cap] = await w.d1(`SELECT site_id, form, status, ip_hash, user_agent, phone, fields, consents FROM captures WHERE contact_id = '${contact.id}'`);
  assert.equal(cap.site_id, 'demo');
  assert.equal(cap.form, 'quiz');
  assert.equal(cap.status, 'pending_confirmation');
  assert.equal(cap.phone, '+442079460958');
  assert.deepEqual(JSON.parse(cap.fields), { first_name: 'Ann', child_age: '3-5', birthday: '2027-03-14' });
  assert.deepEqual(JSON.parse(cap.consents), [[IN_FORM.purpose, 'email', IN_FORM.version]]);
  assert.match(cap.ip_hash, /^[0-9a-f]{16}$/, 'a keyed hash');
  assert.ok(!JSON.stringify(await w.d1('SELECT * FROM captures')).includes('198.51.100.23'), 'never the raw IP');
  assert.ok(!JSON.stringify(await w.d1('SELECT * FROM rate_limits')).includes('198.51.100.23'), 'not even as a rate-limit key');
  assert.equal(await count(`SELECT COUNT(*) AS n FROM consent_ledger WHERE contact_id = '${contact.id}'`), 0,
    'no consent row counts, or even exists, before confirmation');
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
  const [row] = await w.d1(`SELECT p.user_agent FROM captures p JOIN contacts c ON c.id = p.contact_id WHERE c.email = 'long-ua@example.com'`);
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
    // Only what the form shows can be asked for: the newsletter is offered after confirmation.
    ['consent the form does not show', { body: { ...good, consents: [CONSENT, { purpose: 'newsletter', channel: 'email', text_version: 'nl-2026-11' }] } }, 400, 'consents[1].purpose'],
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
    assert.ok(!JSON.stringify(body).includes(IN_FORM.version), `${name}: the current text version is not echoed`);
    if (field) assert.ok(field in body.error.fields, `${name}: ${JSON.stringify(body)}`);
    if (status === 403) assert.equal(r.headers.get('access-control-allow-origin'), null, name);
  }
  assert.equal(await contactsWith('bad-input@example.com'), 0, 'nothing stored for any rejected request');

  // A chunked upload declares no length: it is cut off at the limit all the same. (On a
  // connection of its own: wrangler dev's proxy drops a kept-alive connection whose upload was
  // cut short, which would fail the next request on it.)
  const big = JSON.stringify({ ...good, fields: { first_name: 'x'.repeat(40_000) } });
  const { request } = await import('node:http');
  const chunked = await new Promise((resolve, reject) => {
    const req = request(`${w.url}/v1/capture`, {
      method: 'POST', agent: false,
      headers: { 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': '203.0.113.251', 'transfer-encoding': 'chunked' },
    }, (res) => { res.resume(); res.on('end', () => resolve({ status: res.statusCode })); });
    req.on('error', reject);
    for (let i = 0; i < big.length; i += 4096) req.write(big.slice(i, i + 4096));
    req.end();
  });
  assert.equal(chunked.status, 413, 'chunked body over 16 KiB');
  assert.equal(await contactsWith('bad-input@example.com'), 0);

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

test('IPv6 clients are limited per /64: rotating the interface id does not buy more captures', async () => {
  const statuses = [];
  for (let i = 0; i < 25; i++) {
    const r = await capture({ site: 'demo', email: `v6-${i}@example.com`, consents: [CONSENT] }, { ip: `2001:db8:77:1:${(i + 1).toString(16)}::${i}` });
    statuses.push(r.status);
  }
  assert.equal(statuses.filter((s) => s === 202).length, 20, statuses.join(','));
  assert.deepEqual(statuses.slice(20), [429, 429, 429, 429, 429]);
  const neighbour = await capture({ site: 'demo', email: 'v6-neighbour@example.com', consents: [CONSENT] }, { ip: '2001:db8:77:2::1' });
  assert.equal(neighbour.status, 202, 'the next /64 is another subscriber');
});

test('unconfirmed sign-ups are deleted after the retention period (30 days); confirmed and imported contacts stay', async () => {
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    token: w.tokens.marketer,
    body: { contacts: [
      { email: 'imported-quiet@example.com' },
      { email: 'known-reader@example.com', consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }] },
    ] },
  });
  assert.equal(imported.status, 200, imported.text);
  for (const email of ['stale@example.com', 'fresh@example.com', 'known-reader@example.com']) {
    assert.equal((await capture({ site: 'demo', email, consents: [CONSENT] })).status, 202, email);
  }
  // The clock cannot be moved in the worker: the rows are made 31 days old instead.
  const old = Math.floor(Date.now() / 1000) - 31 * 86_400;
  await w.d1(`UPDATE contacts SET created_at = ${old} WHERE email IN ('stale@example.com', 'imported-quiet@example.com', 'known-reader@example.com')`);
  await w.d1(`UPDATE captures SET created_at = ${old} WHERE contact_id IN (SELECT id FROM contacts WHERE email IN ('stale@example.com', 'known-reader@example.com'))`);
  const [stale] = await w.d1(`SELECT id FROM contacts WHERE email = 'stale@example.com'`);

  const r = await fetch(`${w.url}/__scheduled`);
  assert.equal(r.status, 200);
  const left = await w.d1(`SELECT email, status FROM contacts WHERE email IN ('stale@example.com', 'fresh@example.com', 'imported-quiet@example.com', 'known-reader@example.com') ORDER BY email`);
  assert.deepEqual(left.map((c) => c.email), ['fresh@example.com', 'imported-quiet@example.com', 'known-reader@example.com']);
  assert.equal(await count(`SELECT COUNT(*) AS n FROM captures WHERE contact_id = '${stale.id}'`), 0);
  assert.equal(await count(`SELECT COUNT(*) AS n FROM captures c JOIN contacts k ON k.id = c.contact_id WHERE k.email = 'known-reader@example.com'`), 0,
    "a known contact's expired capture goes, the contact stays");
  assert.equal(await count(`SELECT COUNT(*) AS n FROM captures c JOIN contacts k ON k.id = c.contact_id WHERE k.email = 'fresh@example.com'`), 1);
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

test('without IP_HASH_KEY a capture is refused (503) rather than stored with a raw address', async () => {
  const bare = await startWorker({ withoutSecrets: ['IP_HASH_KEY'] });
  try {
    assert.equal((await api(bare, 'PUT', '/v1/sites/demo', { token: bare.tokens.sites, body: DEMO_SITE })).status, 200);
    const r = await fetch(`${bare.url}/v1/capture`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': '203.0.113.99' },
      body: JSON.stringify({ site: 'demo', email: 'no-key@example.com', consents: [CONSENT] }),
    });
    assert.equal(r.status, 503, await r.text());
    assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);
    const stored = JSON.stringify(await bare.d1('SELECT * FROM rate_limits')) + JSON.stringify(await bare.d1('SELECT * FROM captures'))
      + JSON.stringify(await bare.d1('SELECT * FROM contacts'));
    assert.ok(!stored.includes('203.0.113.99'), stored);
    assert.equal((await bare.d1(`SELECT COUNT(*) AS n FROM contacts`))[0].n, 0, 'nothing half-written');
    assert.match(bare.log.join(''), /IP_HASH_KEY is not configured/);
  } finally {
    await bare.stop();
  }
});
