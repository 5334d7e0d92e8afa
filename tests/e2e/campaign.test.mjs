// The sending module end to end: contacts imported over the API (CSV with a per-row error report),
// a suppression list imported, a template with personalisation and audience tags, a campaign that
// is tested (only the test list receives it), approved with a second confirmation, scheduled, fanned
// out by the cron tick and delivered over SMTP to maildev — with every queue batch replayed once, so
// "nothing twice" is proven, not assumed. Then overlapping campaigns against the frequency cap and
// quiet hours, and bad input.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, startMailSink, api, zoneWhere, settledStats, stats, visibleLinks, dashboardCookie } from './harness.mjs';

let w;
let mail;
before(async () => {
  ({ w, mail } = await startSendingSystem({ vars: { APPROVAL_CONFIRM_ABOVE: '3', DOMAIN_THROTTLES: '{"throttled.example": 2}' } }));
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);
const as = (token) => ({ token });

const DAY = zoneWhere((h) => h >= 11 && h <= 18); // quiet hours are 21:00-09:00 locally
const NIGHT = zoneWhere((h) => h >= 23 || h <= 6);

async function tick() {
  const r = await fetch(`${w.url}/__scheduled`);
  assert.equal(r.status, 200);
}

async function campaignOf(id) {
  const r = await api(w, 'GET', `/v1/campaigns/${id}`, as(w.tokens.marketer));
  assert.equal(r.status, 200, r.text);
  return r.json;
}

// Polls a campaign until it has `total` outcomes, running the cron tick now and then as the
// per-minute cron would (one tick fans out at most ten campaigns).
async function waitForOutcomes(id, total, { timeoutMs = 30_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 1; ; i++) {
    if (i % 5 === 0) await tick();
    const c = await campaignOf(id);
    const n = Object.values(c.outcomes).reduce((s, o) => s + o.total, 0);
    if (n >= total) return c;
    if (Date.now() > deadline) throw new Error(`campaign ${id}: ${n} of ${total} outcomes: ${JSON.stringify(c)}`);
    await sleep(300);
  }
}

test('a campaign to a segment: CSV import, test list only, approval, personalised delivery, exactly once', async () => {
  const csv = [
    'email,name,gender,locale,time_zone,tags,test_list,consent:demo:newsletter:email,favourite_toy',
    `tess@example.com,Tess,female,en,${DAY},,true,staff-2026,`,
    `ann@example.com,Ann,female,en,${DAY},vip;new,,checkout-2026,kite`,
    `bo@example.com,Bo,male,en,${DAY},vip,,checkout-2026,`,
    `cy@example.com,Cy,female,en,${DAY},,,checkout-2026,`,
    `dee@example.com,Dee,female,en,${DAY},vip,,,`,
    `eve@example.com,Eve,female,en,${DAY},vip,,checkout-2026,`,
    'not-an-address,Nobody,,,,,,,',
    `fay@example.com,,female,en,${DAY},vip,,checkout-2026,`,
    `gus@example.com,Gus,male,en,Mars/Base,vip,,checkout-2026,`,
  ].join('\n');
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    ...as(w.tokens.marketer), body: csv, headers: { 'content-type': 'text/csv' },
  });
  assert.equal(imported.status, 200, imported.text);
  assert.equal(imported.json.received, 9);
  assert.equal(imported.json.upserted, 7);
  assert.deepEqual(imported.json.errors, [
    { row: 7, fields: { email: 'must be an e-mail address like name@example.com' } },
    { row: 9, fields: { time_zone: 'must be an IANA time zone like Europe/Kyiv' } },
  ]);
  // Eve unsubscribed through another tool: her address arrives on an imported suppression list.
  const sup = await api(w, 'POST', '/v1/suppressions/import', {
    ...as(w.tokens.marketer), body: { format: 'plain', reason: 'unsubscribed', source: 'old-esp', addresses: ['EVE@example.com ', 'bad'] },
  });
  assert.equal(sup.status, 200, sup.text);
  assert.deepEqual([sup.json.stored, sup.json.rejected], [1, 1]);

  const broken = await api(w, 'PUT', '/v1/templates/spring', {
    ...as(w.tokens.marketer),
    body: { name: 'Spring', subject: 'Hi', html: '<p>one</p>\n<p>two</p>\n<p>{{ contact.name </p>' },
  });
  assert.equal(broken.status, 400);
  assert.match(broken.json.error.fields.html, /^line 3: syntax error/);

  const template = await api(w, 'PUT', '/v1/templates/spring', {
    ...as(w.tokens.marketer),
    body: {
      name: 'Spring picks',
      subject: 'Spring picks for {{ contact.name | default("you") }}',
      html: '<html><body><p>Hello {{ contact.name | default("friend") }}, your {{ contact.attributes.favourite_toy | default("next toy") }} awaits.</p>'
        + '<a href="https://shop.example/spring?utm=mail&amp;x=1">Shop</a> <a href="https://shop.example/help" data-epistola-track="off">Help</a></body></html>',
      text: 'Hello {{ contact.name | default("friend") }}: https://shop.example/spring',
      audience: { gender: 'female' },
    },
  });
  assert.equal(template.status, 200, template.text);

  const body = { name: 'Spring for VIPs', site: 'demo', template: 'spring', purpose: 'newsletter', segment: { tag: 'vip' } };
  const created = await api(w, 'PUT', '/v1/campaigns/spring', { ...as(w.tokens.marketer), body });
  assert.equal(created.status, 200, created.text);
  assert.equal(created.json.campaign.status, 'draft');

  // Nothing reaches the real audience without a test and an approval, by someone allowed to.
  const early = await api(w, 'POST', '/v1/campaigns/spring/approve', as(w.tokens.approver));
  assert.equal(early.status, 409, early.text);
  assert.match(early.json.error.message, /cannot approve a campaign that is draft/);

  const tested = await api(w, 'POST', '/v1/campaigns/spring/test', as(w.tokens.marketer));
  assert.equal(tested.status, 202, tested.text);
  assert.equal(tested.json.test_recipients, 1);
  const [testMail] = await mail.waitFor(to('tess@example.com'), { what: 'the test letter' });
  assert.equal(testMail.subject, 'Spring picks for Tess');
  // A colleague reads the test letter: counted under the test run, not the campaign.
  const browser = {
    'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
    'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'accept-language': 'en-GB,en;q=0.9',
  };
  assert.equal(tested.json.test_stats, `/v1/stats/campaigns/test:${tested.json.test_run}`);
  const testPixel = /src="(http:\/\/127\.0\.0\.1:\d+\/o\/[A-Za-z0-9_-]+\.gif)"/.exec(testMail.html)[1];
  assert.equal((await fetch(testPixel, { headers: browser })).status, 200);
  const [testClick] = visibleLinks(testMail.html);
  assert.equal((await fetch(testClick, { redirect: 'manual', headers: browser })).status, 302);
  const testRun = await settledStats(w, `test:${tested.json.test_run}`, (s) => s.opens.total >= 1 && s.clicks.total >= 1);
  // (Labelled scanner here: a human needs more than a second after the send.)
  assert.deepEqual([testRun.opens.total, testRun.clicks.total], [1, 1], JSON.stringify(testRun));
  assert.equal(testRun.clicks.links[0]?.url, 'https://shop.example/spring?utm=mail&x=1', 'the test run knows its links');
  const untouched = await stats(w, 'spring');
  assert.deepEqual([untouched.opens.total, untouched.clicks.total], [0, 0], 'the campaign counts no test reader');

  const wrongScope = await api(w, 'POST', '/v1/campaigns/spring/approve', as(w.tokens.marketer));
  assert.equal(wrongScope.status, 403);
  const unconfirmed = await api(w, 'POST', '/v1/campaigns/spring/approve', as(w.tokens.approver));
  assert.equal(unconfirmed.status, 409, unconfirmed.text);
  assert.equal(unconfirmed.json.error.code, 'confirmation_required');
  const reach = Number(/must be (\d+)/.exec(unconfirmed.json.error.fields.confirm_audience)[1]);
  assert.equal(reach, 6, 'confirmed, consenting, not unsubscribed here: tess ann bo cy eve fay');
  const approved = await api(w, 'POST', '/v1/campaigns/spring/approve', { ...as(w.tokens.approver), body: { confirm_audience: reach } });
  assert.equal(approved.status, 200, approved.text);
  const scheduled = await api(w, 'POST', '/v1/campaigns/spring/schedule', as(w.tokens.approver));
  assert.equal(scheduled.status, 200, scheduled.text);
  const locked = await api(w, 'PUT', '/v1/campaigns/spring', { ...as(w.tokens.marketer), body });
  assert.equal(locked.status, 409, 'an approved campaign cannot be edited');

  await tick();
  const c = await waitForOutcomes('spring', 5);
  await sleep(2000); // replayed chunks come back: give them time to (not) send again
  await tick();
  await sleep(1500);
  const after = await campaignOf('spring');
  assert.equal(after.campaign.status, 'done');
  assert.deepEqual(after.outcomes, {
    sent: { total: 2, by_reason: {} },
    skipped: { total: 3, by_reason: { audience_mismatch: 1, no_consent: 1, suppressed: 1 } },
  }, JSON.stringify(c));

  const all = await mail.messages();
  const campaignMail = all.filter((m) => m.subject.startsWith('Spring picks') && !to('tess@example.com')(m));
  assert.deepEqual(campaignMail.map((m) => m.envelope.to[0].address).sort(), ['ann@example.com', 'fay@example.com'],
    'VIP women with consent, once each: not Bo (male), Cy (not VIP), Dee (no consent), Eve (suppressed)');
  assert.equal(all.filter(to('tess@example.com')).length, 1, 'the test list got the test only');
  assert.match(w.log.join(''), /fault injection: replaying \d+ finished messages/, 'chunks really were delivered twice');

  const ann = campaignMail.find(to('ann@example.com'));
  assert.equal(ann.subject, 'Spring picks for Ann');
  assert.match(ann.html, /Hello Ann, your kite awaits\./);
  assert.ok(!ann.html.includes('https://shop.example/spring'), 'the tracked link is rewritten');
  assert.match(ann.html, /href="https:\/\/shop\.example\/help"/, 'the opted-out link is left alone');
  assert.match(ann.html, /\/o\/[A-Za-z0-9_-]+\.gif/, 'the pixel is in');
  assert.match(ann.html, />Unsubscribe</, 'a visible unsubscribe link');
  const raw = await mail.source(ann.id);
  assert.match(raw, /\r?\nList-Unsubscribe: <http:\/\/127\.0\.0\.1:\d+\/u\/[A-Za-z0-9_-]+>\r?\n/);
  assert.match(raw, /\r?\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r?\n/);
  const fay = campaignMail.find(to('fay@example.com'));
  assert.equal(fay.subject, 'Spring picks for you', 'a missing name falls back');

  // The click goes where the template said, and is counted against the campaign's link.
  const [click] = visibleLinks(ann.html);
  const redirect = await fetch(click, { redirect: 'manual', headers: { 'user-agent': 'Mozilla/5.0 (Macintosh) Firefox/130.0' } });
  assert.equal(redirect.status, 302);
  assert.equal(redirect.headers.get('location'), 'https://shop.example/spring?utm=mail&x=1');
  const deadline = Date.now() + 20_000;
  for (;;) {
    const s = await api(w, 'GET', '/v1/stats/campaigns/spring', as(w.tokens.marketer));
    if (s.json?.clicks?.links?.[0]?.total === 1) {
      assert.equal(s.json.clicks.links[0].url, 'https://shop.example/spring?utm=mail&x=1');
      break;
    }
    if (Date.now() > deadline) throw new Error(`click not counted: ${s.text}`);
    await sleep(300);
  }

  // The contact record: attributes, tags, the imported consent, and the message.
  const record = await api(w, 'GET', '/v1/contacts/ann@example.com', as(w.tokens.marketer));
  assert.equal(record.status, 200, record.text);
  const k = record.json.contact;
  assert.deepEqual([k.name, k.gender, k.time_zone, k.fields.favourite_toy, k.tags], ['Ann', 'female', DAY, 'kite', ['new', 'vip']]);
  assert.deepEqual(k.consent_ledger.map((e) => [e.site_id, e.purpose, e.action, e.method, e.text_version]),
    [['demo', 'newsletter', 'confirmed', 'api_import', 'checkout-2026']]);
  assert.deepEqual(k.messages.map((m) => [m.kind, m.campaign_id, m.status]), [['campaign', 'spring', 'sent']]);

  // Erasure: the person is gone, the campaign's counts are not.
  const erased = await api(w, 'DELETE', `/v1/contacts/${k.id}`, as(w.tokens.marketer));
  assert.equal(erased.status, 200, erased.text);
  assert.equal((await api(w, 'GET', `/v1/contacts/${k.id}`, as(w.tokens.marketer))).status, 404);
  assert.deepEqual((await w.d1(`SELECT COUNT(*) AS n FROM consent_ledger WHERE contact_id = '${k.id}'`))[0].n, 0);
  assert.equal((await campaignOf('spring')).outcomes.sent.total, 2);
});

test('overlapping campaigns: the frequency cap and quiet hours defer, nothing is dropped or doubled', async () => {
  const contacts = [
    { email: 'gil@example.com', name: 'Gil', time_zone: DAY, tags: ['burst'], consents: [{ site: 'demo', purpose: 'offers', channel: 'email', source: 'checkout' }] },
    { email: 'hal@example.com', name: 'Hal', time_zone: NIGHT, tags: ['burst'], consents: [{ site: 'demo', purpose: 'offers', channel: 'email', source: 'checkout' }] },
  ];
  const imported = await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } });
  assert.equal(imported.status, 200, imported.text);
  assert.equal(imported.json.upserted, 2);
  const t = await api(w, 'PUT', '/v1/templates/burst', {
    ...as(w.tokens.marketer), body: { name: 'Burst', subject: 'Offer {{ campaign.name }}', html: '<p>Offer</p>' },
  });
  assert.equal(t.status, 200, t.text);
  const ids = Array.from({ length: 11 }, (_, i) => `burst-${i + 1}`);
  for (const id of ids) {
    // Eleven offers sharing one template: distinct campaigns on purpose (allow_resend), so the
    // frequency cap, not the duplicate-content rule, is what holds them back.
    const body = { name: id, site: 'demo', template: 'burst', purpose: 'offers', segment: { tag: 'burst' }, allow_resend: true };
    assert.equal((await api(w, 'PUT', `/v1/campaigns/${id}`, { ...as(w.tokens.marketer), body })).status, 200);
    // The test list (Tess) may receive tests at night: tests are not subject to quiet hours.
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/test`, as(w.tokens.marketer))).status, 202);
    const a = await api(w, 'POST', `/v1/campaigns/${id}/approve`, { ...as(w.tokens.approver), body: { confirm_audience: 2 } });
    assert.equal(a.status, 200, a.text);
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/schedule`, as(w.tokens.approver))).status, 200);
  }
  await tick();
  const outcomes = [];
  for (const id of ids) outcomes.push((await waitForOutcomes(id, 2)).outcomes);
  await sleep(2000);
  await tick();
  await sleep(1500);
  const sum = (metric, reason) => outcomes.reduce((n, o) => n + (reason ? o[metric]?.by_reason?.[reason] ?? 0 : o[metric]?.total ?? 0), 0);
  assert.equal(sum('sent'), 1, 'one letter within the cap');
  assert.equal(sum('deferred', 'frequency_cap'), 10, 'the other ten wait for the cap');
  assert.equal(sum('deferred', 'quiet_hours'), 11, 'nothing at night');
  const all = await mail.messages();
  assert.equal(all.filter(to('gil@example.com')).length, 1);
  assert.equal(all.filter(to('hal@example.com')).length, 0);
  const [row] = await w.d1("SELECT MIN(due_at) AS due FROM sends WHERE status = 'deferred' AND contact_id = (SELECT id FROM contacts WHERE email = 'hal@example.com')");
  assert.ok(row.due > Date.now() / 1000, 'deferred to a later slot, not dropped');

  // A campaign that sent nothing yet says so, why, and when it tries next, at the top.
  const idle = ids[outcomes.findIndex((o) => !o.sent?.total)];
  const c = await campaignOf(idle);
  assert.equal(c.campaign.status, 'done', 'the fan-out is over');
  assert.equal(c.delivery.state, 'waiting', JSON.stringify(c.delivery));
  assert.equal(c.delivery.waiting, 2);
  assert.deepEqual(c.delivery.groups.map((g) => [g.state, g.reason, g.letters]).sort(),
    [['deferred', 'frequency_cap', 1], ['deferred', 'quiet_hours', 1]]);
  assert.ok(c.delivery.next_attempt_at > Date.now() / 1000, 'the next attempt is ahead');
  assert.match(c.delivery.summary, /^0 sent so far; 2 letters are waiting: 1 (in the recipient's quiet hours|over the frequency cap).*\. Next attempt in \d+ (minute|hour|day)s?\.$/, c.delivery.summary);
  const cookie = await dashboardCookie(w, w.tokens.full);
  const page = await (await fetch(`${w.url}/dashboard/campaigns/${idle}`, { headers: { cookie } })).text();
  assert.match(page, /status waiting<\/p><p class="notice" role="status" data-metric="waiting">0 sent so far; 2 letters are waiting: /, page);
  const list = await (await fetch(`${w.url}/dashboard`, { headers: { cookie } })).text();
  assert.match(list, new RegExp(`>${idle}</a></td><td>waiting</td>`), 'the campaign list says waiting too');
  // One that sent its letter and has nothing left is complete.
  const gil = await api(w, 'GET', `/v1/campaigns/${ids[outcomes.findIndex((o) => o.sent?.total)]}`, as(w.tokens.marketer));
  assert.equal(gil.json.delivery.waiting, 1, 'Hal is still in his night');
});

test('a per-domain throttle defers what is over the hourly share of one mailbox provider', async () => {
  const consents = [{ site: 'demo', purpose: 'news-throttle', channel: 'email', source: 'checkout' }];
  const contacts = ['a@throttled.example', 'b@throttled.example', 'c@throttled.example', 'd@throttled.example', 'e@example.com']
    .map((email) => ({ email, time_zone: DAY, tags: ['throttle'], consents }));
  assert.equal((await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } })).json.upserted, 5);
  const t = await api(w, 'PUT', '/v1/templates/throttle', { ...as(w.tokens.marketer), body: { name: 't', subject: 'Throttled', html: '<p>x</p>' } });
  assert.equal(t.status, 200, t.text);
  const body = { name: 'Throttle', site: 'demo', template: 'throttle', purpose: 'news-throttle', segment: { tag: 'throttle' } };
  assert.equal((await api(w, 'PUT', '/v1/campaigns/throttle', { ...as(w.tokens.marketer), body })).status, 200);
  assert.equal((await api(w, 'POST', '/v1/campaigns/throttle/test', as(w.tokens.marketer))).status, 202);
  const a = await api(w, 'POST', '/v1/campaigns/throttle/approve', { ...as(w.tokens.approver), body: { confirm_audience: 5 } });
  assert.equal(a.status, 200, a.text);
  // The throttle counts per clock hour: a run that straddles the hour would see the deferred
  // letters fall due. Start after the boundary when it is close.
  const toNextHour = 3600 - (Math.floor(Date.now() / 1000) % 3600);
  if (toNextHour < 60) await sleep((toNextHour + 2) * 1000);
  assert.equal((await api(w, 'POST', '/v1/campaigns/throttle/schedule', as(w.tokens.approver))).status, 200);
  await tick();
  const c = await waitForOutcomes('throttle', 5);
  assert.deepEqual(c.outcomes, {
    sent: { total: 3, by_reason: {} },
    deferred: { total: 2, by_reason: { domain_throttle: 2 } },
  });
  await sleep(1500);
  const got = (await mail.messages()).filter((m) => m.subject === 'Throttled').map((m) => m.envelope.to[0].address.split('@')[1]);
  assert.deepEqual(got.sort(), ['example.com', 'throttled.example', 'throttled.example']);
  const [due] = await w.d1("SELECT MIN(due_at) AS t FROM sends WHERE campaign_id = 'throttle' AND status = 'deferred'");
  assert.equal(due.t % 3600, 0, 'deferred to the start of the next hour');
});

test('bad input: every field named, nothing half-written', async () => {
  const bad = await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: 'x', birthday: '1990-02-31x', tags: ['a b'] } });
  assert.equal(bad.status, 400);
  assert.deepEqual(Object.keys(bad.json.error.fields).sort(), ['birthday', 'email', 'tags[0]']);
  const unknown = await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: 'a@b.co', shoe: 1 } });
  assert.equal(unknown.status, 400);
  assert.ok(unknown.json.error.fields.shoe, unknown.text);
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM contacts WHERE email = 'a@b.co'"))[0].n, 0);
  const noAuth = await api(w, 'POST', '/v1/contacts', { token: null, body: { email: 'a@b.co' } });
  assert.equal(noAuth.status, 401);
  const wrongType = await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: 'email\na@b.co', headers: { 'content-type': 'text/plain' } });
  assert.equal(wrongType.status, 415);
  const segment = await api(w, 'PUT', '/v1/campaigns/bad', {
    ...as(w.tokens.marketer), body: { name: 'x', site: 'demo', template: 'nope', purpose: 'news', segment: { all: [] } },
  });
  assert.equal(segment.status, 400);
  assert.deepEqual(Object.keys(segment.json.error.fields), ['segment']);
  const template = await api(w, 'PUT', '/v1/campaigns/bad', {
    ...as(w.tokens.marketer), body: { name: 'x', site: 'demo', template: 'nope', purpose: 'news', segment: { everyone: true } },
  });
  assert.equal(template.status, 400);
  assert.equal(template.json.error.fields.template, 'no such template');
  // A misspelt variable would greet everyone with nothing: refused at save time, with the known ones.
  const typo = await api(w, 'PUT', '/v1/templates/typo', {
    ...as(w.tokens.marketer), body: { name: 'Typo', subject: 'Hi {{ contact.first_name }}', html: '<p>Hi {{ contcat.first_name }}</p>' },
  });
  assert.equal(typo.status, 400, typo.text);
  assert.match(typo.json.error.fields.html, /^line 1: unknown variable `contcat\.first_name`; known: contact\.\{attribute\}, contact\.fields\.\{attribute\}/, typo.text);
  assert.equal((await api(w, 'GET', '/v1/templates/typo', as(w.tokens.marketer))).status, 404, 'nothing stored');
  assert.equal((await api(w, 'GET', '/v1/campaigns/bad', as(w.tokens.marketer))).status, 404);
});

test('a partial update changes only what it names: the test list, name and fields stay', async () => {
  const m = as(w.tokens.marketer);
  const email = 'partial.update@example.net';
  const created = await api(w, 'POST', '/v1/contacts', {
    ...m, body: { email, name: 'Olena', test_list: true, tags: ['staff'], fields: { shoe_size: '38' } },
  });
  assert.equal(created.status, 200, created.text);
  assert.equal(created.json.contact.test_list, true);
  const tz = await api(w, 'POST', '/v1/contacts', { ...m, body: { email, time_zone: 'Europe/Kyiv' } });
  assert.equal(tz.status, 200, tz.text);
  const c = tz.json.contact;
  assert.equal(c.time_zone, 'Europe/Kyiv');
  assert.equal(c.test_list, true, 'a time-zone update must not take the contact off the test list');
  assert.equal(c.name, 'Olena');
  assert.deepEqual(c.fields, { shoe_size: '38' });
  assert.deepEqual(c.tags, ['staff']);

  // CSV: a file without the column keeps it; `no` clears it; anything else is a row error.
  const csv = async (body) => api(w, 'POST', '/v1/contacts/import', { ...m, body, headers: { 'content-type': 'text/csv' } });
  const keep = await csv(`email,locale\n${email},uk\n`);
  assert.equal(keep.status, 200, keep.text);
  const afterKeep = (await api(w, 'GET', `/v1/contacts/${encodeURIComponent(email)}`, m)).json.contact;
  assert.equal(afterKeep.test_list, true);
  assert.equal(afterKeep.locale, 'uk');
  const bad = await csv(`email,test_list\n${email},maybe\n`);
  assert.equal(bad.status, 200, bad.text);
  assert.deepEqual(bad.json.errors.map((e) => [e.row, Object.keys(e.fields)]), [[1, ['test_list']]], bad.text);
  assert.equal((await api(w, 'GET', `/v1/contacts/${encodeURIComponent(email)}`, m)).json.contact.test_list, true);
  const off = await csv(`email,test_list\n${email},no\n`);
  assert.equal(off.status, 200, off.text);
  assert.equal((await api(w, 'GET', `/v1/contacts/${encodeURIComponent(email)}`, m)).json.contact.test_list, false);

  // A new contact that does not mention it is not on the test list.
  const fresh = await api(w, 'POST', '/v1/contacts', { ...m, body: { email: 'fresh.partial@example.net' } });
  assert.equal(fresh.status, 200, fresh.text);
  assert.equal(fresh.json.contact.test_list, false);
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM contacts WHERE test_list NOT IN (0, 1)"))[0].n, 0);
});

test('SMTP server down for a while: every letter goes out once it is back, none twice', async () => {
  const ports = { smtpPort: mail.smtpPort, webPort: mail.webPort };
  mail.stop();
  await sleep(500);
  const consents = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' }];
  const contacts = ['una', 'val', 'wes'].map((n) => ({ email: `${n}@example.com`, name: n, time_zone: DAY, tags: ['outage'], consents }));
  assert.equal((await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } })).json.upserted, 3);
  const t = await api(w, 'PUT', '/v1/templates/outage', { ...as(w.tokens.marketer), body: { name: 'o', subject: 'Back soon', html: '<p>x</p>' } });
  assert.equal(t.status, 200, t.text);
  const body = { name: 'Outage', site: 'demo', template: 'outage', purpose: 'newsletter', segment: { tag: 'outage' } };
  assert.equal((await api(w, 'PUT', '/v1/campaigns/outage', { ...as(w.tokens.marketer), body })).status, 200);
  assert.equal((await api(w, 'POST', '/v1/campaigns/outage/test', as(w.tokens.marketer))).status, 202);
  // The approver repeats the reachable audience the first answer names.
  const ask = await api(w, 'POST', '/v1/campaigns/outage/approve', as(w.tokens.approver));
  assert.equal(ask.json.error.code, 'confirmation_required', ask.text);
  const reach = Number(/must be (\d+)/.exec(ask.json.error.fields.confirm_audience)[1]);
  const approved = await api(w, 'POST', '/v1/campaigns/outage/approve', { ...as(w.tokens.approver), body: { confirm_audience: reach } });
  assert.equal(approved.status, 200, approved.text);
  assert.equal((await api(w, 'POST', '/v1/campaigns/outage/schedule', as(w.tokens.approver))).status, 200);
  await tick();
  const retrying = async () => (await w.d1("SELECT COUNT(*) AS n FROM sends WHERE campaign_id = 'outage' AND status = 'retrying'"))[0].n;
  for (let i = 0; (await retrying()) < 3; i++) {
    assert.ok(i < 80, 'the failed attempts were never recorded');
    await sleep(250);
  }
  mail = await startMailSink(ports);
  for (let i = 0; ; i++) {
    const got = (await mail.messages()).filter((m) => m.subject === 'Back soon' && m.envelope.to[0].address !== 'tess@example.com');
    if (got.length >= 3) break;
    assert.ok(i < 240, `only ${got.length} of 3 letters after the server came back`);
    await sleep(250);
  }
  await sleep(3000); // replays and later retries must not send again
  const letters = (await mail.messages()).filter((m) => m.subject === 'Back soon');
  assert.deepEqual(letters.map((m) => m.envelope.to[0].address).sort(),
    ['tess@example.com', 'una@example.com', 'val@example.com', 'wes@example.com'], 'each once (Tess: the test)');
  const c = await campaignOf('outage');
  assert.deepEqual(c.outcomes.sent, { total: 3, by_reason: {} });
  const [attempts] = await w.d1("SELECT MIN(attempts) AS least FROM sends WHERE campaign_id = 'outage'");
  assert.ok(attempts.least >= 2, 'each letter was retried');
});
