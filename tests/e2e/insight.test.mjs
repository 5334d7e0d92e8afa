// Audience insight, end to end: purchases through the API become daily RFM scores (a segment rule
// picks the champions), a repeat buyer whose rhythm stopped gets a `churn.risk` event that starts a
// win-back chain, and the dashboard's audience page shows the segments and the capture answers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, daytimeZone, DEMO_SITE, dashboardCookie } from './harness.mjs';

const DAY = 86_400;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);

test('RFM segments pick the audience; a stopped buying rhythm starts a win-back chain', async () => {
  const { w, mail } = await startSendingSystem();
  try {
    const zone = daytimeZone();
    const consent = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'shop' }];
    const contacts = ['ann', 'ben', 'cal'].map((name) => ({
      email: `${name}@example.com`, name, consents: consent, time_zone: zone, test_list: name === 'ann',
    }));
    const imported = await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } });
    assert.equal(imported.json.upserted, 3, imported.text);
    const now = Math.floor(Date.now() / 1000);
    const order = (who, n, daysAgo, value) => ({
      id: `${who}-${n}`, type: 'purchase', contact: `${who}@example.com`, at: now - Math.round(daysAgo * DAY),
      data: { order_id: `${who}-${n}`, value, currency: 'EUR' },
    });
    const events = [
      // Ann: five orders in nine days, the last an hour ago — a champion.
      ...[9, 7, 5, 3, 1 / 24].map((d, i) => order('ann', i, d, '120.00')),
      // Ben: one small order yesterday — new.
      order('ben', 0, 1, '20.00'),
      // Cal: every two days, then nothing for 25 days — the rhythm stopped.
      ...[29, 27, 25].map((d, i) => order('cal', i, d, '20.00')),
      // The same order reported twice counts once.
      { ...order('cal', 2, 25, '20.00'), id: 'cal-2-again' },
    ];
    const posted = await api(w, 'POST', '/v1/events', { token: w.tokens.marketer, body: { events } });
    assert.equal(posted.json.accepted, 10, posted.text);

    for (const [id, subject] of [['winback', 'We miss you, {{ contact.name }}'], ['vip', 'For our best customers']]) {
      const t = await api(w, 'PUT', `/v1/templates/${id}`, { token: w.tokens.marketer, body: { name: id, subject, html: '<p>Hello</p>' } });
      assert.equal(t.status, 200, t.text);
    }
    const chain = { name: 'Win-back', site: 'demo', purpose: 'newsletter', trigger: 'churn.risk', steps: [{ delay_seconds: 0, template: 'winback' }] };
    assert.equal((await api(w, 'PUT', '/v1/chains/winback', { token: w.tokens.marketer, body: chain })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/chains/winback/activate', { token: w.tokens.approver })).status, 200);
    const bad = await api(w, 'PUT', '/v1/campaigns/vip', {
      token: w.tokens.marketer, body: { name: 'VIP', site: 'demo', template: 'vip', purpose: 'newsletter', segment: { rfm: ['vips'] } },
    });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.fields.segment, /unknown RFM segment/);

    // The daily scoring runs on the first tick of the day; the churn-risk event enrols Cal at once.
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    const [winback] = await mail.waitFor((m) => to('cal@example.com')(m) && m.subject === 'We miss you, cal', { what: 'the win-back letter' });
    assert.ok(winback);
    const runs = await api(w, 'GET', '/v1/chains/winback', { token: w.tokens.marketer });
    assert.deepEqual(runs.json.runs, { done: 1 }, 'only Cal was enrolled, once');

    const vip = { name: 'VIP', site: 'demo', template: 'vip', purpose: 'newsletter', segment: { rfm: ['champions'] } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/vip', { token: w.tokens.marketer, body: vip })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/vip/test', { token: w.tokens.marketer })).status, 202);
    const approved = await api(w, 'POST', '/v1/campaigns/vip/approve', { token: w.tokens.approver });
    assert.equal(approved.status, 200, approved.text);
    assert.equal((await api(w, 'POST', '/v1/campaigns/vip/schedule', { token: w.tokens.approver })).status, 200);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    for (let i = 0; ; i++) {
      const c = await api(w, 'GET', '/v1/campaigns/vip', { token: w.tokens.marketer });
      if (c.json?.campaign?.status === 'done' || c.json?.status === 'done') break;
      if (i > 80) throw new Error(`campaign not done: ${c.text}`);
      await sleep(250);
    }
    await sleep(1500);
    const vipLetters = (await mail.messages()).filter((m) => m.subject === 'For our best customers');
    // Ann twice: the test send and the campaign; nobody else.
    assert.deepEqual([...new Set(vipLetters.flatMap((m) => m.envelope.to.map((t) => t.address)))], ['ann@example.com']);

    // A capture with a quiz answer, for the portrait.
    const capture = await fetch(`${w.url}/v1/capture`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: DEMO_SITE.allowed_origins[0] },
      body: JSON.stringify({
        site: 'demo', email: 'dee@example.com', answers: { child_age: '3-5' },
        consents: [{ purpose: 'birthday_coupon', channel: 'email', text_version: 'bc-2026-11' }],
      }),
    });
    assert.equal(capture.status, 202, await capture.text());

    // The dashboard's audience page, signed in with a stats token.
    const cookie = await dashboardCookie(w, w.tokens.statsOnly);
    const page = await (await fetch(`${w.url}/dashboard/audience`, { headers: { cookie } })).text();
    const row = (name) => new RegExp(`<tr><td>${name}</td><td>(\\d+)</td><td>[^<]+</td><td>(\\d+)</td></tr>`).exec(page)?.slice(1).map(Number);
    assert.deepEqual(row('champions'), [1, 0]);
    assert.deepEqual(row('new'), [1, 0]);
    assert.deepEqual(row('promising'), [1, 1], 'Cal: recent enough, but at churn risk');
    const segmentsCsv = await (await fetch(`${w.url}/dashboard/segments.csv`, { headers: { cookie } })).text();
    assert.ok(segmentsCsv.includes('promising,1,33.3%,1\n'), segmentsCsv);
    const csv = await (await fetch(`${w.url}/dashboard/audience.csv`, { headers: { cookie } })).text();
    assert.ok(csv.includes('demo,child_age,3-5,1,100.0%\n'), csv);
  } finally {
    await w.stop();
    mail.stop();
  }
});
