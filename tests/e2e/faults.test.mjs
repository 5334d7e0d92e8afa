// Fault injection on the events path: every batch's first D1 transaction fails (a statement on a
// missing table after all the real writes, so D1 rolls the whole batch back) and every finished
// batch is delivered twice. Opens, clicks and a conversion must still be counted exactly once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, api, signLinks, settledStats, DEMO_SITE } from './harness.mjs';

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
