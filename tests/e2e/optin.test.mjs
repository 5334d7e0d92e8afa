// Double opt-in end to end: capture -> confirmation e-mail received by a real SMTP sink (maildev),
// sent by the worker's queue consumer over a TCP socket -> GET confirm changes nothing -> POST
// confirm -> the promised item arrives, once -> the preference centre gives and withdraws.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startMailSink, startSendingSystem, api, DEMO_SITE } from './harness.mjs';

const ORIGIN = DEMO_SITE.allowed_origins[0];
const IN_FORM = DEMO_SITE.consents.find((c) => c.in_form);
const CONSENT = { purpose: IN_FORM.purpose, channel: 'email', text_version: IN_FORM.version };

let w;
let mail;
let mailPorts;
before(async () => {
  ({ w, mail } = await startSendingSystem());
  mailPorts = { smtpPort: mail.smtpPort, webPort: mail.webPort };
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);
const linkIn = (text, path) => {
  const m = new RegExp(`https?://[^\\s"<>]+/${path}/[A-Za-z0-9_-]+`).exec(text);
  assert.ok(m, `no /${path}/ link in: ${text}`);
  return m[0];
};
const form = { 'content-type': 'application/x-www-form-urlencoded' };

test('capture -> confirmation e-mail -> POST confirm -> the promised item, exactly once', async () => {
  const address = 'doi-reader@example.com';
  const captured = await fetch(`${w.url}/v1/capture`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': '198.51.100.40' },
    body: JSON.stringify({ site: 'demo', email: address, answers: { child_age: '6-9' }, consents: [CONSENT] }),
  });
  assert.equal(captured.status, 202, await captured.text());

  const [confirmation] = await mail.waitFor(to(address), { what: 'confirmation e-mail' });
  assert.match(confirmation.subject, new RegExp(DEMO_SITE.promise.title));
  assert.ok(!confirmation.text.includes(DEMO_SITE.promise.delivery.url), 'the promise waits for confirmation');
  assert.ok(confirmation.text.includes(`By confirming you agree to:\n- ${IN_FORM.text}\n`), 'the letter lists exactly what confirming grants');
  const confirmUrl = new URL(linkIn(confirmation.text, 'confirm'));
  assert.equal(confirmUrl.origin, w.url, 'links point at the worker the capture came to');
  assert.match(confirmation.html, /href="http:\/\/127\.0\.0\.1:\d+\/confirm\//);

  // A mail scanner following the link confirms nothing.
  const page = await fetch(confirmUrl);
  assert.equal(page.status, 200);
  const pageHtml = await page.text();
  assert.match(pageHtml, /<form method="post">/);
  assert.ok(pageHtml.includes(`<li>${IN_FORM.text}</li>`), 'the page lists what confirming grants');
  assert.ok(pageHtml.includes('<li>How old is your child?: 6-9</li>'), 'and the details that will be saved');
  const head = await fetch(confirmUrl, { method: 'HEAD' });
  assert.equal(head.status, 200, 'HEAD answers like GET');
  assert.equal(head.headers.get('content-type'), page.headers.get('content-type'));
  assert.equal((await head.arrayBuffer()).byteLength, 0, 'without a body');
  const [pending] = await w.d1(`SELECT status, fields FROM contacts WHERE email = '${address}'`);
  assert.equal(pending.status, 'pending', 'GET on the confirm link confirms nothing');
  assert.deepEqual(JSON.parse(pending.fields), {}, '…and applies nothing');
  await sleep(1500);
  assert.equal((await mail.messages()).filter(to(address)).length, 1, 'no delivery before confirmation');

  const confirmed = await fetch(confirmUrl, { method: 'POST', headers: { 'cf-connecting-ip': '198.51.100.40' } });
  assert.equal(confirmed.status, 200);
  const confirmedPage = await confirmed.text();
  assert.match(confirmedPage, /confirmed/);
  assert.match(confirmedPage, /\/p\/[A-Za-z0-9_-]+/, 'the other purposes are offered, not subscribed');
  assert.ok(confirmedPage.includes(`<li>${IN_FORM.text}</li>`), 'the page says what was granted');
  const [contact] = await w.d1(`SELECT id, status, fields FROM contacts WHERE email = '${address}'`);
  assert.equal(contact.status, 'confirmed');
  assert.deepEqual(JSON.parse(contact.fields), { child_age: '6-9' }, 'the confirming POST applies the answers');
  const ledger = await w.d1(`SELECT purpose, action, method FROM consent_ledger WHERE contact_id = '${contact.id}' ORDER BY seq`);
  assert.deepEqual(ledger, [
    { purpose: IN_FORM.purpose, action: 'given', method: 'widget_form' },
    { purpose: IN_FORM.purpose, action: 'confirmed', method: 'double_opt_in' },
  ]);
  await assert.rejects(
    w.d1(`UPDATE consent_ledger SET action = 'withdrawn' WHERE contact_id = '${contact.id}'`),
    (e) => /append-only/.test(`${e.message}${e.stdout}${e.stderr}`),
    'the ledger is append-only',
  );

  const delivered = await mail.waitFor((m) => to(address)(m) && m.subject === DEMO_SITE.promise.delivery.subject, { what: 'delivery e-mail' });
  assert.ok(delivered[0].text.includes(DEMO_SITE.promise.delivery.url));

  // Pressing the button again (or a replayed queue batch) sends nothing twice and adds no ledger rows.
  assert.equal((await fetch(confirmUrl, { method: 'POST' })).status, 200);
  await sleep(4000);
  const all = (await mail.messages()).filter(to(address));
  assert.equal(all.length, 2, `one confirmation and one delivery: ${all.map((m) => m.subject)}`);
  assert.equal((await w.d1(`SELECT COUNT(*) AS n FROM consent_ledger WHERE contact_id = '${contact.id}'`))[0].n, 2);
  assert.match(w.log.join(''), /fault injection: replaying/, 'the consumer really replayed the mail jobs');
  const sends = await w.d1(`SELECT kind, status, attempts FROM sends WHERE contact_id = '${contact.id}' ORDER BY kind`);
  assert.deepEqual(sends, [
    { kind: 'confirmation', status: 'sent', attempts: 1 },
    { kind: 'delivery', status: 'sent', attempts: 1 },
  ]);

  // The preference centre: withdraw the coupon e-mails, take the newsletter; SMS needs a phone.
  const prefs = linkIn(delivered[0].text, 'p');
  const prefPage = await (await fetch(prefs)).text();
  const prefHead = await fetch(prefs, { method: 'HEAD' });
  assert.deepEqual([prefHead.status, (await prefHead.arrayBuffer()).byteLength], [200, 0], 'HEAD /p answers like GET, no body');
  const unsubscribe = /List-Unsubscribe: <([^>]+)>/.exec(await mail.source(delivered[0].id))[1];
  const unsubHead = await fetch(unsubscribe, { method: 'HEAD' });
  assert.deepEqual([unsubHead.status, (await unsubHead.arrayBuffer()).byteLength], [200, 0], 'HEAD /u answers like GET, no body');
  const big = await fetch(prefs, { method: 'POST', headers: form, body: `c=${'x'.repeat(20_000)}` });
  assert.equal(big.status, 413, 'a form over the limit is refused');
  assert.match(prefPage, new RegExp(`value="${IN_FORM.purpose}:email" checked`));
  assert.match(prefPage, /value="newsletter:email">/);
  assert.match(prefPage, /value="sms_offers:sms" disabled/);
  const saved = await fetch(prefs, { method: 'POST', headers: form, body: 'c=newsletter%3Aemail&c=sms_offers%3Asms' });
  assert.equal(saved.status, 200);
  const savedPage = await saved.text();
  assert.match(savedPage, /value="newsletter:email" checked/);
  assert.match(savedPage, new RegExp(`value="${IN_FORM.purpose}:email">`));
  const after = await w.d1(
    `SELECT purpose, action, text_version, method FROM consent_ledger WHERE contact_id = '${contact.id}' AND method = 'preference_centre' ORDER BY purpose`,
  );
  assert.deepEqual(after, [
    { purpose: IN_FORM.purpose, action: 'withdrawn', text_version: IN_FORM.version, method: 'preference_centre' },
    { purpose: 'newsletter', action: 'given', text_version: 'nl-2026-11', method: 'preference_centre' },
  ]);
});

test('confirm and preference links are purpose-bound and tamper-proof', async () => {
  const address = 'doi-forger@example.com';
  await fetch(`${w.url}/v1/capture`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': '198.51.100.41' },
    body: JSON.stringify({ site: 'demo', email: address, consents: [CONSENT] }),
  });
  const [confirmation] = await mail.waitFor(to(address), { what: 'confirmation e-mail' });
  const confirmUrl = linkIn(confirmation.text, 'confirm');
  const token = confirmUrl.split('/confirm/')[1];
  const tampered = token.slice(0, 20) + (token[20] === 'A' ? 'B' : 'A') + token.slice(21);
  for (const [method, path] of [['POST', `/confirm/${tampered}`], ['POST', `/p/${token}`], ['GET', `/p/${token}`], ['POST', `/u/${token}`]]) {
    const r = await fetch(w.url + path, { method, headers: form, body: method === 'POST' ? 'List-Unsubscribe=One-Click' : undefined });
    assert.equal(r.status, 400, `${method} ${path.slice(0, 12)}`);
  }
  const [contact] = await w.d1(`SELECT status FROM contacts WHERE email = '${address}'`);
  assert.equal(contact.status, 'pending');
});

test('SMTP sink down: the confirmation is retried with backoff and delivered once it is back', async () => {
  mail.stop();
  await sleep(500);
  const address = 'patient-reader@example.com';
  const r = await fetch(`${w.url}/v1/capture`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': '198.51.100.42' },
    body: JSON.stringify({ site: 'demo', email: address, consents: [CONSENT] }),
  });
  assert.equal(r.status, 202, 'the capture is accepted while the mail server is down');
  const sendOf = async () =>
    (await w.d1(`SELECT s.status, s.attempts, s.detail FROM sends s JOIN contacts c ON c.id = s.contact_id WHERE c.email = '${address}'`))[0];
  const deadline = Date.now() + 20_000;
  let failed;
  while (!(failed = await sendOf())) {
    assert.ok(Date.now() < deadline, 'the first attempt was never recorded');
    await sleep(300);
  }
  assert.equal(failed.status, 'retrying', JSON.stringify(failed));
  assert.match(failed.detail, /connection/);

  mail = await startMailSink(mailPorts);
  const [confirmation] = await mail.waitFor(to(address), { what: 'confirmation after the sink came back', timeoutMs: 45_000 });
  assert.match(confirmation.subject, new RegExp(DEMO_SITE.promise.title));
  const sent = await sendOf();
  assert.equal(sent.status, 'sent');
  assert.ok(sent.attempts >= 2, `retried: ${JSON.stringify(sent)}`);
  await sleep(3000);
  assert.equal((await mail.messages()).filter(to(address)).length, 1, 'delivered once');
});
