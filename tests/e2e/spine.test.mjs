// The spine end to end: the real worker under wrangler dev, local D1 and Queues. Every test runs with
// the consumer replaying each batch once (FAULT_REPLAY_BATCHES), so every exact count below also
// proves that a replayed batch changes nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import {
  startWorker, api, signLinks, stats, settledStats, pathOf, TOKEN_VECTORS, CLASSIFY_VECTORS,
} from './harness.mjs';

const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const BROWSER = { 'user-agent': CHROME, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };

let w;
before(async () => {
  w = await startWorker({ vars: { FAULT_REPLAY_BATCHES: '1' } });
});
after(async () => {
  await w?.stop();
});

/** A raw HTTP request with exactly the given headers (fetch would add its own User-Agent). */
function raw(method, path, headers = {}, body) {
  return new Promise((ok, fail) => {
    const req = httpRequest(w.url + path, { method, headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', fail);
    if (body) req.write(body);
    req.end();
  });
}

/** Invalid vectors for a route: a "wrong purpose" vector is only wrong for the purpose it names. */
const invalidFor = (purpose) =>
  TOKEN_VECTORS.invalid.filter((v) => v.error !== 'wrong_purpose' || v.purpose === purpose);

const eventsOf = async (campaign) =>
  (await w.d1(`SELECT COUNT(*) AS n FROM events WHERE campaign_id = '${campaign}'`))[0].n;

test('healthz answers', async () => {
  const r = await raw('GET', '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { status: 'ok' });
});

test('the pixel is always the 43-byte GIF, and only genuine tokens are recorded', async () => {
  const valid = TOKEN_VECTORS.valid.filter((v) => v.claims.purpose === 'open');
  assert.equal(valid.length, 2, 'an open signed by the newest key and one by the previous key');
  const attempts = [
    ...valid.map((v) => `/o/${v.token}.gif`),
    ...invalidFor('open').map((v) => `/o/${v.token}.gif`),
    `/o/${TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'click').token}`, // click token as pixel
    '/o/',
    '/o/.gif',
    // Paths a mail client or proxy mangled: still an image (never a broken one), never counted.
    `/o/${valid[0].token}.gif/x`,
    `/o/${valid[0].token}/`,
    '/o/a/b/c.gif',
  ];
  for (const path of attempts) {
    const r = await raw('GET', path, BROWSER);
    assert.equal(r.status, 200, path);
    assert.equal(r.headers['content-type'], 'image/gif', path);
    assert.match(r.headers['cache-control'], /no-store/, path);
    assert.equal(r.body.length, 43, path);
    assert.equal(r.body.subarray(0, 6).toString(), 'GIF89a');
  }
  const head = await raw('HEAD', '/o/a/b/c.gif', BROWSER);
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-type'], 'image/gif');
  assert.equal((await raw('POST', '/o/a/b', BROWSER)).status, 405, 'no state change on any method');
  // Without the .gif suffix too.
  const plain = await raw('GET', `/o/${valid[0].token}`, BROWSER);
  assert.equal(plain.status, 200);
  assert.equal(plain.body.length, 43);

  const s = await settledStats(w, 'vec-campaign', (s) => s.opens.total >= 3);
  assert.equal(s.opens.total, 3, 'two opens of one token + one by the rotated-out-but-kept key');
  assert.equal(s.opens.human.total, 3);
  assert.equal(s.opens.unique, 1, 'one contact');
  assert.equal(await eventsOf('vec-campaign'), 3);
});

test('click: a genuine token redirects to its signed destination; anything else is a 400 page without Location', async () => {
  const click = TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'click');
  const ok = await raw('GET', `/c/${click.token}`, BROWSER);
  assert.equal(ok.status, 302);
  assert.equal(ok.headers.location, click.claims.link.url);
  assert.equal(ok.headers['referrer-policy'], 'no-referrer');

  const bad = [
    ...invalidFor('click').map((v) => v.token),
    TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'open').token, // wrong purpose
    TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'unsubscribe').token,
    'x'.repeat(10 * 1024),
    '',
  ];
  for (const token of bad) {
    for (const method of ['GET', 'HEAD']) {
      const r = await raw(method, `/c/${token}`, BROWSER);
      assert.equal(r.status, 400, `${method} ${token.slice(0, 40)}`);
      assert.equal(r.headers.location, undefined);
      assert.match(r.headers['content-type'], /^text\/html/);
    }
  }
  for (const method of ['POST', 'PUT', 'DELETE']) {
    const r = await raw(method, `/c/${click.token}`, BROWSER);
    assert.equal(r.status, 405, method);
    assert.equal(r.headers.location, undefined);
  }

  const s = await settledStats(w, 'vec-campaign', (s) => s.clicks.total >= 1);
  assert.equal(s.clicks.total, 1, 'only the genuine GET was recorded');
  assert.equal(s.clicks.human.total, 1);
  const link = s.clicks.links.find((l) => l.index === click.claims.link.index);
  assert.equal(link.total, 1);
});

test('HEAD on a click redirects but is recorded as a scanner, never a person', async () => {
  const signed = await signLinks(w, { campaign: 'head-check', contact: 'k1', links: ['https://shop.example/h'] });
  const r = await raw('HEAD', pathOf(signed.links[0].tracked_url), BROWSER);
  assert.equal(r.status, 302);
  assert.equal(r.headers.location, 'https://shop.example/h');
  const s = await settledStats(w, 'head-check', (s) => s.clicks.total >= 1);
  assert.equal(s.clicks.total, 1);
  assert.equal(s.clicks.scanner.total, 1);
  assert.equal(s.clicks.human.total, 0);
});

test('every classification vector without an ASN gets its label through the real worker', async () => {
  const cases = CLASSIFY_VECTORS.cases.filter((c) => c.asn === null);
  assert.ok(cases.length >= 15);
  const sent = [];
  for (const [i, c] of cases.entries()) {
    const campaign = `cls-${i}`;
    // "Too soon" cases are signed now, so the request lands within the threshold whatever the clock.
    const sentAgo = c.seconds_since_send < 60 ? 0 : c.seconds_since_send;
    const signed = await signLinks(w, { campaign, contact: 'k1', links: ['https://shop.example/x'], sentAgo });
    const headers = {};
    if (c.user_agent !== null) headers['user-agent'] = c.user_agent;
    if (c.ip !== null) headers['cf-connecting-ip'] = c.ip;
    if (c.fetch_metadata) {
      headers['sec-fetch-mode'] = c.interaction === 'click' ? 'navigate' : 'no-cors';
      headers['sec-fetch-dest'] = c.interaction === 'click' ? 'document' : 'image';
    }
    const click = c.honeypot ? signed.honeypot_url : signed.links[0].tracked_url;
    const path = c.interaction === 'open' ? pathOf(signed.pixel_url) : pathOf(click);
    const r = await raw(c.method, path, headers);
    assert.equal(r.status, c.interaction === 'open' || c.honeypot ? 200 : 302, c.name);
    sent.push({ campaign, c });
  }
  for (const { campaign, c } of sent) {
    const key = c.interaction === 'open' ? 'opens' : 'clicks';
    const s = await settledStats(w, campaign, (s) => s[key].total >= 1, { settleMs: 0 });
    assert.equal(s[key].total, 1, c.name);
    assert.equal(s[key][c.label].total, 1, `${c.name}: expected ${c.label}, got ${JSON.stringify(s[key])}`);
  }
  // The stored reason matches the vector as well.
  for (const { campaign, c } of sent) {
    const [row] = await w.d1(`SELECT label, reason FROM events WHERE campaign_id = '${campaign}'`);
    assert.deepEqual(row, { label: c.label, reason: c.reason }, c.name);
  }
});

test('replayed batches change no counter', async () => {
  const signed = await signLinks(w, { campaign: 'replay', contact: 'k1', links: ['https://shop.example/r1', 'https://shop.example/r2'] });
  const signed2 = await signLinks(w, { campaign: 'replay', contact: 'k2', links: ['https://shop.example/r1', 'https://shop.example/r2'] });
  const requests = [];
  for (let i = 0; i < 20; i++) requests.push(raw('GET', pathOf(signed.pixel_url), BROWSER));
  for (let i = 0; i < 5; i++) requests.push(raw('GET', pathOf(signed2.pixel_url), BROWSER));
  for (let i = 0; i < 7; i++) requests.push(raw('GET', pathOf(signed.links[1].tracked_url), BROWSER));
  requests.push(raw('GET', pathOf(signed2.links[0].tracked_url), BROWSER));
  await Promise.all(requests);
  const s = await settledStats(w, 'replay', (s) => s.opens.total >= 25 && s.clicks.total >= 8, { settleMs: 6_000 });
  assert.equal(s.opens.total, 25);
  assert.equal(s.opens.unique, 2);
  assert.equal(s.clicks.total, 8);
  assert.equal(s.clicks.unique, 2);
  assert.deepEqual(s.clicks.links.map((l) => [l.index, l.url, l.total, l.unique]), [
    [0, 'https://shop.example/r1', 1, 1],
    [1, 'https://shop.example/r2', 7, 1],
  ]);
  assert.equal(await eventsOf('replay'), 33);
  assert.match(w.log.join(''), /fault injection: replaying \d+ finished messages/, 'the consumer really replayed batches');
  const series = s.series.reduce((n, p) => n + p.opens.human + p.clicks.human, 0);
  assert.equal(series, 33, 'the hourly series adds up to the totals');
});

test('thousands of concurrent opens, their queue sends coalesced per isolate, are each counted once', async () => {
  // The edge coalesces the events of concurrent requests into one sendBatch (worker/js/coalesce.js);
  // every batch is replayed by the consumer too.
  const readers = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    signLinks(w, { campaign: 'many-opens', contact: `reader-${i}`, message: `letter-${i}` })));
  const OPENS = 3000;
  let next = 0;
  await Promise.all(Array.from({ length: 64 }, async () => {
    while (next < OPENS) {
      const i = next++;
      const r = await fetch(w.url + pathOf(readers[i % readers.length].pixel_url), { headers: { 'user-agent': CHROME } });
      assert.equal(r.status, 200);
      await r.arrayBuffer();
    }
  }));
  const s = await settledStats(w, 'many-opens', (s) => s.opens.total >= OPENS, { timeoutMs: 120_000, settleMs: 6_000 });
  assert.equal(s.opens.total, OPENS);
  assert.equal(s.opens.unique, readers.length);
  assert.equal(s.series.reduce((n, p) => n + p.opens.human + p.opens.privacy_proxy + p.opens.scanner, 0), OPENS);
  assert.equal(await eventsOf('many-opens'), OPENS);
  const log = w.log.join('');
  assert.doesNotMatch(log, /different request context|not enqueued/, 'no cross-request promise, no lost send');
});

test('clicks imply opens: a person who clicks without fetching the pixel opened, counted once', async () => {
  // Three links: two of them clicked at once is a person in a hurry, every link at once a scanner's
  // burst (relabel.test.mjs).
  const links = ['https://shop.example/a', 'https://shop.example/b', 'https://shop.example/c'];
  const sign = (contact) => signLinks(w, { campaign: 'images-off', contact, links });
  const [ann, bo, cy, dee] = await Promise.all(['ann', 'bo', 'cy', 'dee'].map(sign));
  const image = { ...BROWSER, 'sec-fetch-mode': 'no-cors', 'sec-fetch-dest': 'image' };
  // Ann reads with images off and clicks twice; Bo clicks, then turns images on; Cy opens, then
  // clicks; Dee's letter is only touched by a link checker.
  await raw('GET', pathOf(ann.links[0].tracked_url), BROWSER);
  await raw('GET', pathOf(ann.links[1].tracked_url), BROWSER);
  await raw('GET', pathOf(bo.links[0].tracked_url), BROWSER);
  await settledStats(w, 'images-off', (s) => s.clicks.human.unique >= 2, { settleMs: 0 });
  await raw('GET', pathOf(bo.pixel_url), image);
  await raw('GET', pathOf(cy.pixel_url), image);
  await raw('GET', pathOf(cy.links[1].tracked_url), BROWSER);
  await raw('HEAD', pathOf(dee.links[0].tracked_url), BROWSER);
  const s = await settledStats(w, 'images-off', (s) => s.opens.human.unique >= 2 && s.clicks.total >= 5, { settleMs: 6_000 });
  const e = s.open_estimate;
  assert.deepEqual([e.confirmed_human, e.inferred_from_clicks, e.privacy_proxy, e.scanner], [2, 1, 0, 0],
    'Bo and Cy opened; Ann opened, confirmed by her click; replayed batches counted nothing twice');
  assert.equal(e.sent, 0);
  assert.equal(e.estimated_rate, null, 'no rate without sends');
  assert.match(e.method, /clicked as a person without fetching it/);
  const csv = await api(w, 'GET', '/v1/stats/campaigns/images-off?format=csv', { token: w.tokens.statsOnly });
  assert.match(csv.text, /\ncampaign,,,opens_inferred_from_clicks,human,,1\n/);
});

test('unsubscribe: GET shows a button and changes nothing; POST One-Click suppresses', async () => {
  const signed = await signLinks(w, { campaign: 'unsub', contact: 'leaver', links: [] });
  assert.equal(signed.headers['List-Unsubscribe'], `<${signed.unsubscribe_url}>`);
  assert.equal(signed.headers['List-Unsubscribe-Post'], 'List-Unsubscribe=One-Click');
  const path = pathOf(signed.unsubscribe_url);
  const suppressed = async () => (await w.d1(`SELECT reason FROM suppressions WHERE contact_id = 'leaver'`)).length;

  const page = await raw('GET', path, BROWSER);
  assert.equal(page.status, 200);
  assert.match(page.body.toString(), /<form method="post">/);
  assert.match(page.headers['content-security-policy'], /frame-ancestors 'none'/);
  assert.equal(await suppressed(), 0, 'GET must not unsubscribe');

  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const noBody = await raw('POST', path, form, '');
  assert.equal(noBody.status, 400);
  const wrongBody = await raw('POST', path, form, 'List-Unsubscribe=Maybe');
  assert.equal(wrongBody.status, 400);
  const json = await raw('POST', path, { 'content-type': 'application/json' }, '{"List-Unsubscribe":"One-Click"}');
  assert.equal(json.status, 400);
  assert.equal(await suppressed(), 0, 'rejected requests store nothing');

  const bad = await raw('POST', `/u/${TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'click').token}`, form, 'List-Unsubscribe=One-Click');
  assert.equal(bad.status, 400, 'a click token is never an unsubscribe token');
  const expired = await raw('POST', `/u/${TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'unsubscribe').token}`, form, 'List-Unsubscribe=One-Click');
  assert.equal(expired.status, 400, 'the vector unsubscribe token has expired');
  assert.match(expired.body.toString(), /expired/);

  // RFC 8058: no cookies, form-encoded body.
  const ok = await raw('POST', path, form, 'List-Unsubscribe=One-Click');
  assert.equal(ok.status, 200);
  assert.equal(await suppressed(), 1);
  // Again, as multipart (also allowed by RFC 8058): still one suppression, still one unsubscriber.
  const boundary = 'XyZ123';
  const multipart = `--${boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\nOne-Click\r\n--${boundary}--\r\n`;
  const again = await raw('POST', path, { 'content-type': `multipart/form-data; boundary=${boundary}` }, multipart);
  assert.equal(again.status, 200);
  assert.equal(await suppressed(), 1);
  const s = await settledStats(w, 'unsub', (s) => s.unsubscribes >= 1);
  assert.equal(s.unsubscribes, 1);
  assert.equal(await eventsOf('unsub'), 2, 'both requests are kept as events');

  for (const method of ['PUT', 'DELETE']) assert.equal((await raw(method, path)).status, 405);
});

test('the signing API needs a live token with the right scope', async () => {
  const body = { campaign: 'auth', contact: 'k1', links: ['https://shop.example/'] };
  const cases = [
    [undefined, 401],
    ['ep_notarealtokenatallxxxxxxxx', 401],
    [w.tokens.revoked, 401],
    [w.tokens.statsOnly, 403],
    [w.tokens.signOnly, 200],
  ];
  for (const [token, status] of cases) {
    const r = await api(w, 'POST', '/v1/track/links', { token: token ?? null, body });
    assert.equal(r.status, status, `token ${token}`);
    if (status !== 200) {
      assert.ok(r.json.error.code, r.text);
      assert.equal(r.headers.get('location'), null);
    }
  }
  const malformedHeader = await api(w, 'POST', '/v1/track/links', { token: null, body, headers: { authorization: 'Basic abc' } });
  assert.equal(malformedHeader.status, 401);
  assert.equal(malformedHeader.headers.get('www-authenticate'), 'Bearer');
  const statsWithSignOnly = await api(w, 'GET', '/v1/stats/campaigns/auth', { token: w.tokens.signOnly });
  assert.equal(statsWithSignOnly.status, 403);
  const statsNoToken = await api(w, 'GET', '/v1/stats/campaigns/auth', { token: null });
  assert.equal(statsNoToken.status, 401);
});

test('the signing API rejects bad input with a clear error and stores nothing', async () => {
  const post = (body, headers) => api(w, 'POST', '/v1/track/links', { body, headers });
  const wrongType = await post('{"campaign":"bad-input"}', { 'content-type': 'text/plain' });
  assert.equal(wrongType.status, 415);
  const json = { 'content-type': 'application/json' };
  const huge = await post(JSON.stringify({ campaign: 'bad-input', contact: 'k', links: ['https://a.example/' + 'x'.repeat(70_000)] }), json);
  assert.equal(huge.status, 413);
  const malformed = await post('{"campaign": "bad-input",', json);
  assert.equal(malformed.status, 400);
  assert.equal(malformed.json.error.code, 'invalid_request');
  const unknown = await post({ campaign: 'bad-input', contact: 'k', colour: 'red' });
  assert.equal(unknown.status, 400);
  assert.ok('colour' in unknown.json.error.fields, unknown.text);
  const missing = await post({ campaign: 'bad-input' });
  assert.equal(missing.status, 400);
  assert.ok('contact' in missing.json.error.fields, missing.text);

  const links = ['https://ok.example/', 'javascript:alert(1)', '//evil.example/', 'data:text/html,x', 'https://good.example@evil.example/'];
  const r = await post({ campaign: 'bad-input', contact: 'ann@example.com', links });
  assert.equal(r.status, 400);
  assert.deepEqual(Object.keys(r.json.error.fields).sort(), ['contact', 'links[1]', 'links[2]', 'links[3]', 'links[4]']);
  assert.match(r.json.error.fields['links[1]'], /http/);

  const rows = await w.d1(`SELECT COUNT(*) AS n FROM campaign_links WHERE campaign_id = 'bad-input'`);
  assert.equal(rows[0].n, 0, 'nothing half-written');
  assert.equal((await api(w, 'GET', '/v1/track/links')).status, 405);
  assert.equal((await api(w, 'GET', '/v1/nothing-here')).status, 404);
});

test('stats: CSV matches JSON; bad parameters are named', async () => {
  const signed = await signLinks(w, { campaign: 'csv', contact: 'k1', links: ['https://shop.example/a,b'] });
  await raw('GET', pathOf(signed.pixel_url), BROWSER);
  await raw('GET', pathOf(signed.pixel_url), { ...BROWSER, 'cf-connecting-ip': '17.0.0.9', 'user-agent': 'Mozilla/5.0' });
  await raw('GET', pathOf(signed.links[0].tracked_url), BROWSER);
  const s = await settledStats(w, 'csv', (s) => s.opens.total >= 2 && s.clicks.total >= 1);
  const csv = await api(w, 'GET', '/v1/stats/campaigns/csv?format=csv', { token: w.tokens.statsOnly });
  assert.equal(csv.status, 200);
  assert.match(csv.headers.get('content-type'), /^text\/csv/);
  const lines = csv.text.trim().split('\n');
  assert.equal(lines[0], 'scope,link_index,url,metric,label,total,unique');
  assert.ok(lines.includes(`campaign,,,opens,all,${s.opens.total},${s.opens.unique}`), csv.text);
  assert.ok(lines.includes(`campaign,,,opens,privacy_proxy,${s.opens.privacy_proxy.total},${s.opens.privacy_proxy.unique}`), csv.text);
  assert.ok(lines.includes(`link,0,"https://shop.example/a,b",clicks,human,1,1`), csv.text);
  const series = await api(w, 'GET', '/v1/stats/campaigns/csv?format=csv&view=series', { token: w.tokens.statsOnly });
  assert.equal(series.status, 200);
  assert.match(series.text, /^hour,opens_human,/);
  assert.equal(series.text.trim().split('\n').length, 1 + s.series.length);

  const badFormat = await api(w, 'GET', '/v1/stats/campaigns/csv?format=xml', { token: w.tokens.statsOnly });
  assert.equal(badFormat.status, 400);
  assert.ok('format' in badFormat.json.error.fields);
  const badId = await api(w, 'GET', '/v1/stats/campaigns/bad%20id', { token: w.tokens.statsOnly });
  assert.equal(badId.status, 400);
  assert.ok('campaign' in badId.json.error.fields);
  const empty = await stats(w, 'never-sent');
  assert.equal(empty.opens.total, 0);
  assert.deepEqual(empty.series, []);
});
