// Consent that cannot be forged, through the real workers (capture at the edge, letters from the
// sending worker to maildev, every queue batch replayed): a public capture never changes a known
// contact or grants anything before the confirming POST; a confirmed contact asking for a new
// purpose goes through double opt-in for it; confirmation letters respect every suppression and go
// at most once a day per address; preference links in campaign letters name the site, not the
// campaign (ids here differ on purpose: site `toy-shop-eu`, campaign `spring-letters`); a birthday
// given in the quiz reaches the daily birthday trigger, once.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startSendingSystem, api, daytimeZone, visibleLinks, until, DEMO_SITE, TOKEN_VECTORS } from './harness.mjs';

const ORIGIN = DEMO_SITE.allowed_origins[0];
const IN_FORM = DEMO_SITE.consents.find((c) => c.in_form);
const NEWSLETTER = DEMO_SITE.consents.find((c) => c.purpose === 'newsletter');
const COUPON = { purpose: IN_FORM.purpose, channel: 'email', text_version: IN_FORM.version };
const SITE = 'toy-shop-eu';
const SITE_ORIGIN = 'http://127.0.0.1:8799';
const OTHER_SITE = 'kids-club';
const OTHER_ORIGIN = 'http://127.0.0.1:8798';

let w;
let mail;
const ZONE = daytimeZone();
before(async () => {
  // No quiet hours: the birthday chain step below should not wait for the morning.
  ({ w, mail } = await startSendingSystem({ vars: { SEND_LIMITS: '{"caps": [[3600, 10]], "quiet_hours": [0, 0]}' } }));
  for (const [id, origin, name] of [[SITE, SITE_ORIGIN, 'Toy shop EU'], [OTHER_SITE, OTHER_ORIGIN, 'Kids club']]) {
    const r = await api(w, 'PUT', `/v1/sites/${id}`, { token: w.tokens.sites, body: { ...DEMO_SITE, name, allowed_origins: [origin] } });
    assert.equal(r.status, 200, r.text);
  }
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);
const as = (token) => ({ token });
const form = { 'content-type': 'application/x-www-form-urlencoded' };
let ip = 1;
const capture = (body, origin = ORIGIN) => fetch(`${w.url}/v1/capture`, {
  method: 'POST',
  headers: { 'content-type': 'text/plain', origin, 'cf-connecting-ip': `198.51.100.${ip++}` },
  body: JSON.stringify(body),
});
const linkIn = (text, path) => {
  const m = new RegExp(`https?://[^\\s"<>]+/${path}/[A-Za-z0-9_-]+`).exec(text);
  assert.ok(m, `no /${path}/ link in: ${text}`);
  return m[0];
};
const sendsOf = (address) => w.d1(
  `SELECT s.kind, s.status, s.reason FROM sends s JOIN contacts c ON c.id = s.contact_id WHERE c.email = '${address}' ORDER BY s.created_at, s.kind`,
);
async function importContacts(contacts) {
  const r = await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(r.json.errors, []);
}

/** Runs a campaign's test send and returns the new letter `address` received. */
async function testLetter(campaign, address) {
  const before = (await mail.messages()).filter(to(address)).length;
  const r = await api(w, 'POST', `/v1/campaigns/${campaign}/test`, as(w.tokens.marketer));
  assert.equal(r.status, 202, r.text);
  const letters = await until(`the test letter of ${campaign}`, async () => {
    const got = (await mail.messages()).filter(to(address));
    return got.length > before ? got : null;
  });
  return letters.at(-1);
}

test('a capture for a confirmed contact changes nothing until confirmed; a new purpose needs double opt-in', async () => {
  const address = 'ines@example.com';
  await importContacts([{
    email: address, name: 'Ines', time_zone: ZONE, test_list: true, fields: { first_name: 'Ines' }, phone: '+442079460001',
    consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }],
  }]);
  const template = await api(w, 'PUT', '/v1/templates/hello-letter', {
    ...as(w.tokens.marketer),
    body: { name: 'Hello', subject: 'News for {{ contact.first_name }}', html: '<p>Hi {{ contact.first_name }}</p><a href="https://shop.example/new">New</a>', text: 'Hi {{ contact.first_name }}' },
  });
  assert.equal(template.status, 200, template.text);
  for (const [id, purpose] of [['news-weekly', 'newsletter'], ['coupon-drop', IN_FORM.purpose]]) {
    const c = await api(w, 'PUT', `/v1/campaigns/${id}`, {
      ...as(w.tokens.marketer), body: { name: id, site: 'demo', template: 'hello-letter', purpose, segment: { tag: 'trust-suite' } },
    });
    assert.equal(c.status, 200, c.text);
  }

  // The reproduction: an anonymous capture naming a consent the form does not show.
  const forged = await capture({ site: 'demo', email: address, fields: { first_name: 'Call +1 500 555 0006' }, phone: '+15005550006', consents: [COUPON, { purpose: 'newsletter', channel: 'email', text_version: NEWSLETTER.version }] });
  assert.equal(forged.status, 400);
  const error = await forged.json();
  assert.deepEqual(Object.keys(error.error.fields), ['consents[1].purpose']);
  // The same with only what the form shows is accepted — and still changes nothing.
  const accepted = await capture({ site: 'demo', email: address, fields: { first_name: 'Call +1 500 555 0006' }, phone: '+15005550006', consents: [COUPON] });
  assert.equal(accepted.status, 202, await accepted.text());
  const [contact] = await w.d1(`SELECT id, status, phone, json(fields) AS fields FROM contacts WHERE email = '${address}'`);
  assert.deepEqual([contact.status, contact.phone, JSON.parse(contact.fields)], ['confirmed', '+442079460001', { first_name: 'Ines' }]);
  assert.deepEqual(await w.d1(`SELECT purpose, action, method FROM consent_ledger WHERE contact_id = '${contact.id}' ORDER BY seq`),
    [{ purpose: 'newsletter', action: 'confirmed', method: 'api_import' }], 'no ledger row before confirmation');

  const news = await testLetter('news-weekly', address);
  assert.equal(news.subject, 'News for Ines', 'the next letter still greets the contact by her own name');
  assert.ok(!news.text.includes('Call'), news.text);

  // The new purpose waits for her confirmation: the coupon campaign skips her for now.
  const before = await api(w, 'POST', '/v1/campaigns/coupon-drop/test', as(w.tokens.marketer));
  assert.equal(before.status, 202, before.text);
  const skipped = await until('the coupon test outcome', async () => {
    const rows = await w.d1(`SELECT status, reason FROM sends WHERE contact_id = '${contact.id}' AND send_key LIKE 'test.coupon-drop.%'`);
    return rows.length ? rows : null;
  });
  assert.deepEqual(skipped, [{ status: 'skipped', reason: 'no_consent' }]);

  // She gets a confirmation letter for it, listing exactly the consent, never the stranger's text.
  const [confirmation] = await mail.waitFor((m) => to(address)(m) && /^Confirm your address/.test(m.subject), { what: 'confirmation letter' });
  assert.ok(confirmation.text.includes(`- ${IN_FORM.text}`), confirmation.text);
  assert.ok(!confirmation.text.includes('Call') && !confirmation.html.includes('Call'), 'no visitor-typed text in the letter');
  const confirmUrl = linkIn(confirmation.text, 'confirm');
  const page = await (await fetch(confirmUrl)).text();
  assert.ok(page.includes(`<li>${IN_FORM.text}</li>`), 'the page lists what confirming grants');
  assert.ok(page.includes('Call +1 500 555 0006'), 'and shows the details that would be saved, to the address owner only');

  // She confirms: now the coupon purpose is hers, and the details she saw are applied.
  assert.equal((await fetch(confirmUrl, { method: 'POST' })).status, 200);
  const after = await api(w, 'POST', '/v1/campaigns/coupon-drop/test', as(w.tokens.marketer));
  assert.equal(after.status, 202, after.text);
  const sent = await until('the coupon test letter', async () => {
    const rows = await w.d1(`SELECT status FROM sends WHERE contact_id = '${contact.id}' AND send_key LIKE 'test.coupon-drop.%' AND status = 'sent'`);
    return rows.length ? rows : null;
  });
  assert.equal(sent.length, 1);
  const [confirmed] = await w.d1(`SELECT phone, json(fields) AS fields FROM contacts WHERE id = '${contact.id}'`);
  assert.deepEqual([confirmed.phone, JSON.parse(confirmed.fields)], ['+15005550006', { first_name: 'Call +1 500 555 0006' }]);
  await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: address, test_list: false } });
});

test('no confirmation letter to a suppressed address (unsubscribed, imported plain or hashed), and one per address per day', async () => {
  // Unsubscribed through a letter's one-click link.
  const uma = 'uma@example.com';
  await importContacts([{ email: uma, time_zone: ZONE, test_list: true, consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }] }]);
  const letter = await testLetter('news-weekly', uma);
  const unsubscribe = /List-Unsubscribe: <([^>]+)>/.exec(await mail.source(letter.id))[1];
  assert.equal((await fetch(unsubscribe, { method: 'POST', headers: form, body: 'List-Unsubscribe=One-Click' })).status, 200);
  await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: uma, test_list: false } });
  // On imported suppression lists, as plain addresses and as SHA-256 hashes.
  const plain = await api(w, 'POST', '/v1/suppressions/import', { ...as(w.tokens.marketer), body: { format: 'plain', reason: 'complained', addresses: ['Sam@Example.com'] } });
  assert.equal(plain.status, 200, plain.text);
  const hash = createHash('sha256').update('hal@example.com').digest('hex');
  const hashed = await api(w, 'POST', '/v1/suppressions/import', { ...as(w.tokens.marketer), body: { format: 'sha256', reason: 'bounced', addresses: [hash] } });
  assert.equal(hashed.status, 200, hashed.text);

  for (const address of [uma, 'sam@example.com', 'hal@example.com', 'kim@example.com']) {
    assert.equal((await capture({ site: 'demo', email: address, consents: [COUPON] })).status, 202, address);
  }
  // Kim is no one's opt-out: her letter proves the jobs ran.
  await mail.waitFor((m) => to('kim@example.com')(m) && /^Confirm/.test(m.subject), { what: "kim's confirmation" });
  for (const address of [uma, 'sam@example.com', 'hal@example.com']) {
    const rows = await until(`the skipped confirmation of ${address}`, async () => {
      const r = (await sendsOf(address)).filter((s) => s.kind === 'confirmation');
      return r.length ? r : null;
    });
    assert.deepEqual(rows, [{ kind: 'confirmation', status: 'skipped', reason: 'suppressed' }], address);
  }
  await sleep(2000);
  const all = await mail.messages();
  for (const address of ['sam@example.com', 'hal@example.com']) assert.equal(all.filter(to(address)).length, 0, address);
  assert.equal(all.filter((m) => to(uma)(m) && /^Confirm/.test(m.subject)).length, 0, 'no confirmation to the unsubscribed');

  // One address, two sites, the same day: one confirmation letter.
  const dana = 'dana@example.com';
  assert.equal((await capture({ site: 'demo', email: dana, consents: [COUPON] })).status, 202);
  await mail.waitFor((m) => to(dana)(m), { what: "dana's first confirmation" });
  assert.equal((await capture({ site: OTHER_SITE, email: dana, consents: [COUPON] }, OTHER_ORIGIN)).status, 202);
  const second = await until("dana's second confirmation outcome", async () => {
    const r = (await sendsOf(dana)).filter((s) => s.kind === 'confirmation');
    return r.length === 2 ? r : null;
  });
  assert.deepEqual(second.map((s) => [s.status, s.reason]), [['sent', null], ['skipped', 'daily_limit']]);
  await sleep(2000);
  assert.equal((await mail.messages()).filter(to(dana)).length, 1, 'one letter, however many sites asked');
});

test('preference links in campaign letters open the site’s preference centre (campaign and site ids differ)', async () => {
  const address = 'pia@example.com';
  await importContacts([{ email: address, time_zone: ZONE, test_list: true, consents: [{ site: SITE, purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }] }]);
  const c = await api(w, 'PUT', '/v1/campaigns/spring-letters', {
    ...as(w.tokens.marketer), body: { name: 'Spring letters', site: SITE, template: 'hello-letter', purpose: 'newsletter', segment: { tag: 'trust-suite' } },
  });
  assert.equal(c.status, 200, c.text);
  const letter = await testLetter('spring-letters', address);
  const prefs = linkIn(letter.text, 'p');
  const page = await fetch(prefs);
  assert.equal(page.status, 200, 'the preference link works');
  const html = await page.text();
  assert.match(html, /Toy shop EU: choose what you want to receive/);
  assert.match(html, /value="newsletter:email" checked/, "the site's own ledger: the imported consent");
  const saved = await fetch(prefs, { method: 'POST', headers: form, body: `c=${encodeURIComponent(`${IN_FORM.purpose}:email`)}` });
  assert.equal(saved.status, 200);
  const [contact] = await w.d1(`SELECT id FROM contacts WHERE email = '${address}'`);
  assert.deepEqual(
    await w.d1(`SELECT site_id, purpose, action FROM consent_ledger WHERE contact_id = '${contact.id}' AND method = 'preference_centre' ORDER BY purpose`),
    [{ site_id: SITE, purpose: IN_FORM.purpose, action: 'given' }, { site_id: SITE, purpose: 'newsletter', action: 'withdrawn' }],
  );

  // A link from a letter sent before the fix names the campaign: it is resolved to the campaign's site.
  const legacy = TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'preferences');
  await api(w, 'PUT', `/v1/campaigns/${legacy.claims.campaign}`, {
    ...as(w.tokens.marketer), body: { name: 'Old letter', site: SITE, template: 'hello-letter', purpose: 'newsletter', segment: { tag: 'trust-suite' } },
  });
  const old = await fetch(`${w.url}/p/${legacy.token}`);
  assert.equal(old.status, 200, await old.clone().text());
  assert.match(await old.text(), /Toy shop EU: choose/);
  await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: address, test_list: false } });
});

test('a birthday from the quiz reaches the birthday trigger after confirmation: the gift letter, once', async () => {
  const today = new Date().toISOString().slice(5, 10); // MM-DD, UTC like the daily job
  const address = 'quinn@example.com';
  const t = await api(w, 'PUT', '/v1/templates/gift-letter', {
    ...as(w.tokens.marketer),
    body: { name: 'Gift', subject: 'Happy birthday, {{ contact.first_name | default("friend") }}', html: '<p>Born {{ contact.birthday }}.</p><a href="https://shop.example/gift">Your gift</a>' },
  });
  assert.equal(t.status, 200, t.text);
  const chain = await api(w, 'PUT', '/v1/chains/birthday-gift', {
    ...as(w.tokens.marketer), body: { name: 'Birthday gift', site: 'demo', purpose: IN_FORM.purpose, trigger: 'birthday', steps: [{ delay_seconds: 0, template: 'gift-letter' }] },
  });
  assert.equal(chain.status, 200, chain.text);
  assert.equal((await api(w, 'POST', '/v1/chains/birthday-gift/activate', as(w.tokens.approver))).status, 200);

  const r = await capture({ site: 'demo', email: address, fields: { first_name: 'Quinn' }, answers: { child_age: '6-9', birthday: `2019-${today}` }, consents: [COUPON], form: 'quiz' });
  assert.equal(r.status, 202, await r.text());
  const [confirmation] = await mail.waitFor((m) => to(address)(m) && /^Confirm/.test(m.subject), { what: "quinn's confirmation" });
  assert.equal((await fetch(linkIn(confirmation.text, 'confirm'), { method: 'POST' })).status, 200);
  await mail.waitFor((m) => to(address)(m) && m.subject === DEMO_SITE.promise.delivery.subject, { what: 'the promised coupon' });

  // The daily job (the cron tick) turns today's birthdays into events; the chain sends its letter.
  for (let i = 0; i < 3; i++) {
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    await sleep(1500);
  }
  const [gift] = await mail.waitFor((m) => to(address)(m) && m.subject.startsWith('Happy birthday'), { what: 'the gift letter' });
  assert.equal(gift.subject, 'Happy birthday, Quinn');
  assert.match(gift.html, new RegExp(`Born 2019-${today}\\.`), 'templates see the captured birthday');
  const [contact] = await w.d1(`SELECT id FROM contacts WHERE email = '${address}'`);
  assert.deepEqual(await w.d1(`SELECT type FROM contact_events WHERE contact_id = '${contact.id}' AND type = 'birthday'`), [{ type: 'birthday' }]);
  assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
  await sleep(3000);
  assert.equal((await mail.messages()).filter((m) => to(address)(m) && m.subject.startsWith('Happy birthday')).length, 1, 'once');
});

test('erase forgets the person and keeps the opt-out: export, erase, export (nothing), re-import, no letter', async () => {
  const address = 'erin@example.com';
  const consents = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }];
  await importContacts([{ email: address, time_zone: ZONE, test_list: true, tags: ['erase-me'], consents }]);
  const [{ id }] = await w.d1(`SELECT id FROM contacts WHERE email = '${address}'`);
  // Data about her everywhere: a letter, an open and a click, a purchase, a capture, an opt-out.
  const letter = await testLetter('news-weekly', address);
  await sleep(11_000); // a person reads first: hits within seconds of sending are a scanner's
  const person = { 'user-agent': 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Safari/605.1.15', 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
  assert.equal((await fetch(/(http:\/\/[^"]+\/o\/[A-Za-z0-9_-]+\.gif)/.exec(letter.html)[1], { headers: person })).status, 200);
  assert.equal((await fetch(visibleLinks(letter.html)[0], { headers: person, redirect: 'manual' })).status, 302);
  await until('her tracked events', async () => (await w.d1(`SELECT COUNT(*) AS n FROM events WHERE contact_id = '${id}'`))[0].n >= 2);
  const bought = await api(w, 'POST', '/v1/events', { ...as(w.tokens.marketer), body: { id: 'erin-order-1', type: 'purchase', contact: address, data: { order_id: 'E-1', value: '20.00', currency: 'EUR' } } });
  assert.equal(bought.status, 202, bought.text);
  assert.equal((await capture({ site: 'demo', email: address, consents: [COUPON] })).status, 202);
  const unsubscribe = /List-Unsubscribe: <([^>]+)>/.exec(await mail.source(letter.id))[1];
  assert.equal((await fetch(unsubscribe, { method: 'POST', headers: form, body: 'List-Unsubscribe=One-Click' })).status, 200);

  const exported = await api(w, 'GET', `/v1/contacts/${encodeURIComponent(address)}/export`, as(w.tokens.marketer));
  assert.equal(exported.status, 200, exported.text);
  assert.ok(exported.text.includes(address));
  const named = async () => {
    const tables = ['contacts:id', 'contact_tags', 'consent_ledger', 'captures', 'events', 'contact_events', 'conversions', 'first_seen',
      'sends', 'chain_runs', 'contact_rfm', 'suppressions', 'webhook_deliveries'];
    const left = {};
    for (const t of tables) {
      const [table, column = 'contact_id'] = t.split(':');
      const n = (await w.d1(`SELECT COUNT(*) AS n FROM ${table} WHERE ${column} = '${id}'`))[0].n;
      if (n) left[table] = n;
    }
    return left;
  };
  const before = await named();
  for (const table of ['events', 'contact_events', 'conversions', 'first_seen', 'sends', 'captures', 'suppressions']) {
    assert.ok(before[table] > 0, `the test really stored ${table}: ${JSON.stringify(before)}`);
  }
  const clicksBefore = (await w.d1(`SELECT SUM(n) AS n FROM rollup_total WHERE metric = 'click'`))[0].n;

  const erased = await api(w, 'DELETE', `/v1/contacts/${id}`, as(w.tokens.marketer));
  assert.equal(erased.status, 200, erased.text);
  assert.deepEqual(await named(), {}, 'no table names her any more');
  assert.equal((await api(w, 'GET', `/v1/contacts/${id}/export`, as(w.tokens.marketer))).status, 404, 'nothing to export');
  assert.equal((await w.d1(`SELECT SUM(n) AS n FROM rollup_total WHERE metric = 'click'`))[0].n, clicksBefore, 'counters stay');
  const hash = createHash('sha256').update(address).digest('hex');
  assert.deepEqual(await w.d1(`SELECT reason, source FROM address_suppressions WHERE address_hash = '${hash}'`), [{ reason: 'unsubscribed', source: 'erasure' }]);

  // A re-import (an old CSV, say) brings her back as a contact, never as a recipient.
  await importContacts([{ email: address, time_zone: ZONE, test_list: true, consents }]);
  const r = await api(w, 'POST', '/v1/campaigns/news-weekly/test', as(w.tokens.marketer));
  assert.equal(r.status, 202, r.text);
  const [{ id: again }] = await w.d1(`SELECT id FROM contacts WHERE email = '${address}'`);
  const outcome = await until('the re-imported test outcome', async () => {
    const rows = await w.d1(`SELECT status, reason FROM sends WHERE contact_id = '${again}'`);
    return rows.length ? rows : null;
  });
  assert.deepEqual(outcome, [{ status: 'skipped', reason: 'suppressed' }]);
  await sleep(1500);
  assert.equal((await mail.messages()).filter((m) => to(address)(m) && m.subject.startsWith('News for')).length, 1, 'only the letter before the erasure');
  await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: address, test_list: false } });
});

test('the same letter twice, by copy: skipped as duplicate_content unless the campaign allows resending', async () => {
  const contacts = ['cora', 'cole'].map((n, i) => ({ email: `${n}@example.com`, time_zone: ZONE, tags: ['copy-audience'], test_list: i === 0, consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout-2026' }] }));
  await importContacts(contacts);
  const t = await api(w, 'PUT', '/v1/templates/autumn-copy', { ...as(w.tokens.marketer), body: { name: 'Autumn', subject: 'Autumn picks', html: '<p>Autumn picks for {{ contact.email }}</p>' } });
  assert.equal(t.status, 200, t.text);
  const letters = async () => (await mail.messages()).filter((m) => m.subject === 'Autumn picks' && !/test/i.test(m.subject));
  const run = async (id, extra = {}) => {
    const body = { name: id, site: 'demo', template: 'autumn-copy', purpose: 'newsletter', segment: { tag: 'copy-audience' }, ...extra };
    assert.equal((await api(w, 'PUT', `/v1/campaigns/${id}`, { ...as(w.tokens.marketer), body })).status, 200);
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/test`, as(w.tokens.marketer))).status, 202);
    const approved = await api(w, 'POST', `/v1/campaigns/${id}/approve`, as(w.tokens.approver));
    assert.equal(approved.status, 200, approved.text);
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/schedule`, as(w.tokens.approver))).status, 200);
    const done = await until(`${id} done`, async () => {
      await fetch(`${w.url}/__scheduled`);
      const c = await api(w, 'GET', `/v1/campaigns/${id}`, as(w.tokens.marketer));
      const n = Object.values(c.json.outcomes).reduce((s, o) => s + o.total, 0);
      return c.json.campaign.status === 'done' && n >= 2 ? c.json : null;
    });
    return { approved: approved.json, done };
  };
  const first = await run('autumn-picks');
  assert.deepEqual(first.done.outcomes, { sent: { total: 2, by_reason: {} } });
  const before = (await mail.messages()).length;
  // A copy under a new id: the approver sees who got it already, and they are skipped.
  const copy = await run('autumn-picks-again');
  assert.equal(copy.approved.already_received.contacts, 2, JSON.stringify(copy.approved));
  assert.deepEqual(copy.done.outcomes, { skipped: { total: 2, by_reason: { duplicate_content: 2 } } });
  assert.equal(copy.done.campaign.already_received.contacts, 2);
  await sleep(1500);
  const afterCopy = await mail.messages();
  assert.equal(afterCopy.length - before, 1, 'only the copy’s test letter went out');
  // Resending on purpose is a decision the campaign states.
  const resend = await run('autumn-picks-resend', { allow_resend: true });
  assert.deepEqual(resend.done.outcomes, { sent: { total: 2, by_reason: {} } });
  assert.equal(resend.done.campaign.allow_resend, true);
  assert.ok((await letters()).length >= 4);
  // An anonymous campaign cannot have an SMS fallback (it cannot tell who engaged).
  const anon = await api(w, 'PUT', '/v1/campaigns/anon-sms', {
    ...as(w.tokens.marketer),
    body: { name: 'Anon', site: 'demo', template: 'autumn-copy', purpose: 'newsletter', segment: { tag: 'copy-audience' }, anonymous: true, sms_fallback_after_seconds: 3600 },
  });
  assert.equal(anon.status, 400, anon.text);
  assert.deepEqual(Object.keys(anon.json.error.fields), ['sms_fallback_after_seconds']);
  for (const c of contacts) await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: c.email, test_list: false } });
});
