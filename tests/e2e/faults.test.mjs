// Fault injection on the events path: every batch's first D1 transaction fails (a statement on a
// missing table after all the real writes, so D1 rolls the whole batch back) and every finished
// batch is delivered twice. Opens, clicks and a conversion must still be counted exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, api, signLinks, settledStats, DEMO_SITE } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PERSON = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

test('a failed D1 transaction and replayed batches lose nothing and double nothing', async () => {
  const w = await startWorker({ vars: { FAULT_D1_FAIL_ONCE: '1', FAULT_REPLAY_BATCHES: '1' } });
  try {
    const site = { ...DEMO_SITE, allowed_origins: ['https://shop.example'] };
    assert.equal((await api(w, 'PUT', '/v1/sites/demo', { token: w.tokens.sites, body: site })).status, 200);
    const people = ['p1', 'p2', 'p3'];
    const signed = [];
    for (const contact of people) {
      signed.push(await signLinks(w, { campaign: 'faulty', contact, links: ['https://shop.example/p/1', 'https://elsewhere.example/'] }));
    }
    for (const s of signed) {
      assert.equal((await fetch(s.pixel_url, { headers: { 'user-agent': PERSON } })).status, 200);
    }
    const clicks = await Promise.all(signed.map((s) => fetch(s.links[0].tracked_url, { redirect: 'manual', headers: { 'user-agent': PERSON, 'sec-fetch-mode': 'navigate' } })));
    assert.ok(clicks.every((r) => r.status === 302));
    const attribution = new URL(clicks[0].headers.get('location')).searchParams.get('ep');
    assert.ok(attribution, 'first-party destination carries the attribution token');
    const convert = await fetch(`${w.url}/v1/convert`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: 'https://shop.example' },
      body: JSON.stringify({ site: 'demo', attribution, value: '30', currency: 'EUR', order_id: 'F-1' }),
    });
    assert.equal(convert.status, 202);

    const s = await settledStats(w, 'faulty', (x) => x.opens.total >= 3 && x.clicks.total >= 3 && x.conversions.count >= 1,
      { timeoutMs: 60_000, settleMs: 8_000 });
    assert.equal(s.opens.total, 3);
    assert.equal(s.opens.unique, 3);
    assert.equal(s.clicks.total, 3);
    assert.equal(s.clicks.links.find((l) => l.index === 0).total, 3, 'all on the first link');
    assert.equal(s.conversions.count, 1);
    assert.equal(s.conversions.revenue.EUR.amount, '30.00');
    const log = w.log.join('');
    assert.match(log, /storing \d+ events and \d+ conversions failed, retrying the batch/, 'the injected failure happened');
  } finally {
    await w.stop();
  }
});

test('a D1 failure between deciding and delivering loses no letter and leaves none outcome_unknown', async () => {
  const { startSendingSystem, daytimeZone } = await import('./harness.mjs');
  const { w, mail } = await startSendingSystem({ vars: { FAULT_SEND_D1_FAIL_ONCE: '1' } });
  try {
    const consents = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'shop' }];
    const contacts = ['dora', 'dan', 'dee'].map((n, i) => ({ email: `${n}@example.com`, time_zone: daytimeZone(), tags: ['d1'], test_list: i === 0, consents }));
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } })).json.upserted, 3);
    const t = await api(w, 'PUT', '/v1/templates/d1-letter', { token: w.tokens.marketer, body: { name: 'D1', subject: 'Hello from D1', html: '<p><a href="https://shop.example/d1">Shop</a></p>' } });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'D1 outage', site: 'demo', template: 'd1-letter', purpose: 'newsletter', segment: { tag: 'd1' } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/d1-outage', { token: w.tokens.marketer, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/d1-outage/test', { token: w.tokens.marketer })).status, 202);
    await mail.waitFor((m) => m.subject === 'Hello from D1', { what: 'the test letter' });
    assert.equal((await api(w, 'POST', '/v1/campaigns/d1-outage/approve', { token: w.tokens.approver })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/d1-outage/schedule', { token: w.tokens.approver })).status, 200);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    // The chunk's first write of the link registry fails; the chunk is retried and then delivers.
    for (let i = 0; ; i++) {
      const got = (await mail.messages()).filter((m) => m.subject === 'Hello from D1').length;
      if (got >= 4) break; // the test letter and three campaign letters
      if (i > 240) throw new Error(`letters missing: ${got} ${JSON.stringify(await w.d1("SELECT send_key, status, reason FROM sends WHERE campaign_id = 'd1-outage'"))}`);
      await sleep(250);
    }
    await sleep(3000);
    assert.equal((await mail.messages()).filter((m) => m.subject === 'Hello from D1').length, 4, 'each once');
    const rows = await w.d1("SELECT status, reason FROM sends WHERE campaign_id = 'd1-outage'");
    assert.deepEqual(rows.map((r) => r.status), ['sent', 'sent', 'sent'], JSON.stringify(rows));
    assert.match(w.log.join(''), /fault_injection_missing_table|no such table/, 'the injected failure happened');
  } finally {
    await w.stop();
    mail.stop();
  }
});
