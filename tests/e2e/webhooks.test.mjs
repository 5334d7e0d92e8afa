// Outgoing webhooks to a CRM, end to end: a receiver that checks every Standard Webhooks signature
// with its own HMAC code (node:crypto), fails the first delivery, and sees it again, with the same
// webhook-id, after the retry delay. Every queue batch is replayed once: nothing is announced twice.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, signLinks, stats } from './harness.mjs';
import { startReceiver } from './webhook-receiver.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PERSON = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

test('signed webhooks reach the CRM once each, after a receiver failure too', async () => {
  const receiver = await startReceiver(1);
  const { w, mail } = await startSendingSystem();
  try {
    // Only the webhooks scope manages endpoints; a plain-http third-party URL is refused.
    const denied = await api(w, 'POST', '/v1/webhook-endpoints', { token: w.tokens.marketer, body: { url: receiver.url, events: ['*'] } });
    assert.equal(denied.status, 403);
    const bad = await api(w, 'POST', '/v1/webhook-endpoints', { token: w.tokens.hooks, body: { url: 'http://crm.example/h', events: ['email.bounced'] } });
    assert.equal(bad.status, 400);
    assert.deepEqual(Object.keys(bad.json.error.fields).sort(), ['events[0]', 'url']);
    const created = await api(w, 'POST', '/v1/webhook-endpoints', {
      token: w.tokens.hooks,
      body: { url: receiver.url, events: ['email.opened', 'email.clicked', 'contact.unsubscribed', 'conversion.created', 'consent.changed'] },
    });
    assert.equal(created.status, 201, created.text);
    assert.match(created.json.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    receiver.setSecret(created.json.secret);

    const consent = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'crm' }];
    const imported = await api(w, 'POST', '/v1/contacts', { token: w.tokens.marketer, body: { email: 'cy@example.com', name: 'Cy', consents: consent } });
    assert.ok([200, 201].includes(imported.status), imported.text);
    const contact = imported.json.id ?? imported.json.contact?.id;
    assert.ok(contact, imported.text);
    const signed = await signLinks(w, { campaign: 'crm-news', contact, links: ['https://shop.example/p/1'] });
    const opened = await fetch(signed.pixel_url, { headers: { 'user-agent': PERSON } });
    assert.equal(opened.status, 200);
    const clicked = await fetch(signed.links[0].tracked_url, { redirect: 'manual', headers: { 'user-agent': PERSON, 'sec-fetch-mode': 'navigate' } });
    assert.equal(clicked.status, 302);
    const s = await (async () => {
      for (let i = 0; ; i++) {
        const x = await stats(w, 'crm-news');
        if (x.opens.total === 1 && x.clicks.total === 1) return x;
        if (i > 80) throw new Error(JSON.stringify(x));
        await sleep(250);
      }
    })();
    assert.equal(s.clicks.human.total, 1, 'a person clicked');
    const bought = await api(w, 'POST', '/v1/events', {
      token: w.tokens.marketer,
      body: { id: 'order-77', type: 'purchase', contact, data: { order_id: '77', value: '15.50', currency: 'EUR' } },
    });
    assert.equal(bought.json.attributed, 1, bought.text);
    const unsub = await fetch(signed.unsubscribe_url, {
      method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'List-Unsubscribe=One-Click',
    });
    assert.equal(unsub.status, 200);
    await sleep(2500); // the unsubscribe event goes through the (replayed) queue

    // First tick: the first delivery fails (500), the rest arrive. Second tick after the 5 s
    // retry delay: the failed one arrives, with the same id.
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    for (let i = 0; receiver.seen().length < 5; i++) {
      if (i > 80) throw new Error(`deliveries missing: ${JSON.stringify(receiver.seen())}`);
      await sleep(250);
    }
    await sleep(5500);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    for (let i = 0; receiver.seen().length < 6; i++) {
      if (i > 80) throw new Error(`retry missing: ${JSON.stringify(receiver.seen())}`);
      await sleep(250);
    }
    await sleep(1500);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    await sleep(1500);

    const seen = receiver.seen();
    assert.ok(seen.every((d) => d.valid && d.fresh), 'every signature verifies');
    assert.equal(seen.length, 6, JSON.stringify(seen.map((d) => [d.status, d.body.type])));
    assert.equal(seen[0].status, 500);
    const accepted = seen.filter((d) => d.status === 204);
    assert.equal(accepted.length, 5);
    assert.equal(new Set(accepted.map((d) => d.id)).size, 5, 'each fact announced once');
    assert.ok(accepted.some((d) => d.id === seen[0].id), 'the failed delivery came back with its id');
    const byType = Object.fromEntries(accepted.map((d) => [d.body.type, d.body.data]));
    assert.deepEqual(Object.keys(byType).sort(), ['consent.changed', 'contact.unsubscribed', 'conversion.created', 'email.clicked', 'email.opened']);
    assert.equal(byType['email.clicked'].email, 'cy@example.com');
    assert.equal(byType['email.clicked'].url, 'https://shop.example/p/1');
    assert.equal(byType['email.clicked'].label, 'human');
    assert.deepEqual([byType['conversion.created'].value_minor, byType['conversion.created'].currency], [1550, 'EUR']);
    assert.equal(byType['consent.changed'].purpose, 'newsletter');

    const list = await api(w, 'GET', '/v1/webhook-endpoints', { token: w.tokens.hooks });
    assert.deepEqual(list.json.endpoints[0].deliveries, { delivered: 5 });
    assert.equal(list.json.endpoints[0].secret, undefined, 'the secret is shown only once');
    const off = await api(w, 'DELETE', `/v1/webhook-endpoints/${created.json.id}`, { token: w.tokens.hooks });
    assert.equal(off.status, 200);
  } finally {
    await w.stop();
    mail.stop();
    await receiver.stop();
  }
});

test('the outbox: overlapping ticks post once, slow receivers time out in parallel, redirects are not followed, disabled endpoints are marked', async () => {
  const { createServer } = await import('node:http');
  const hits = [];
  // /slow never answers in time; /redirect sends the delivery elsewhere (another scheme);
  // /ok answers at once, after a short pause, so two ticks overlap on its deliveries.
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      hits.push({ path: req.url, id: req.headers['webhook-id'], at: Date.now() });
      if (req.url === '/slow') setTimeout(() => res.writeHead(204).end(), 15_000);
      else if (req.url === '/redirect') res.writeHead(302, { location: 'ftp://files.example/hook' }).end();
      else setTimeout(() => res.writeHead(204).end(), 300);
    });
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const base = `http://127.0.0.1:${server.address().port}`;
  const { w, mail } = await startSendingSystem();
  try {
    const endpoint = async (path) => {
      const r = await api(w, 'POST', '/v1/webhook-endpoints', { token: w.tokens.hooks, body: { url: `${base}${path}`, events: ['email.opened'] } });
      assert.equal(r.status, 201, r.text);
      return r.json.id;
    };
    const ids = { ok: await endpoint('/ok'), slow1: await endpoint('/slow'), slow2: await endpoint('/slow'), slow3: await endpoint('/slow'), redirect: await endpoint('/redirect') };
    const signed = await signLinks(w, { campaign: 'outbox', contact: 'c-outbox', links: [] });
    assert.equal((await fetch(signed.pixel_url, { headers: { 'user-agent': PERSON } })).status, 200);
    for (let i = 0; ; i++) {
      const [row] = await w.d1("SELECT COUNT(*) AS n FROM webhook_deliveries WHERE status = 'pending'");
      if (row.n === 5) break;
      if (i > 80) throw new Error(`outbox not filled: ${row.n}`);
      await sleep(250);
    }
    // Two ticks at once: each delivery is claimed by one of them.
    const started = Date.now();
    const ticks = await Promise.all([fetch(`${w.url}/__scheduled`), fetch(`${w.url}/__scheduled`)]);
    assert.ok(ticks.every((t) => t.status === 200));
    const took = Date.now() - started;
    await sleep(1000);
    assert.equal(hits.filter((h) => h.path === '/ok').length, 1, 'posted once, not once per tick');
    assert.equal(hits.filter((h) => h.path === '/slow').length, 3);
    assert.ok(took < 25_000, `three 10 s timeouts ran side by side, not one after another (${took} ms)`);
    const rows = await w.d1('SELECT endpoint_id, status, attempts, last_error FROM webhook_deliveries ORDER BY endpoint_id');
    const by = Object.fromEntries(rows.map((r) => [r.endpoint_id, r]));
    assert.equal(by[ids.ok].status, 'delivered');
    assert.match(by[ids.slow1].last_error, /did not answer within 10 s/);
    assert.equal(by[ids.slow1].status, 'pending', 'retried later');
    assert.match(by[ids.redirect].last_error, /redirected \(302\); not followed/);
    assert.equal(hits.filter((h) => h.path !== '/ok' && h.path !== '/slow' && h.path !== '/redirect').length, 0, 'nothing followed the redirect');

    const off = await api(w, 'DELETE', `/v1/webhook-endpoints/${ids.slow2}`, { token: w.tokens.hooks });
    assert.equal(off.status, 200);
    assert.deepEqual(await w.d1(`SELECT status FROM webhook_deliveries WHERE endpoint_id = '${ids.slow2}'`), [{ status: 'endpoint_disabled' }]);
  } finally {
    await w.stop();
    mail.stop();
    server.close();
  }
});
