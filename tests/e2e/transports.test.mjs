// The HTTP e-mail transport (Mailgun's messages.mime API, a local stand-in here) and the provider's
// bounce/complaint webhook: letters go out as the same MIME message, a provider outage is retried
// and delivered once, and only a correctly signed, fresh webhook suppresses an address.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { startSendingSystem, api } from './harness.mjs';
import { startMailgunSink } from './mailgun-sink.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function webhook(key, { event = 'failed', severity = 'permanent', recipient, age = 0 }) {
  const timestamp = String(Math.floor(Date.now() / 1000) - age);
  const token = randomBytes(25).toString('hex');
  const signature = createHmac('sha256', key).update(timestamp + token).digest('hex');
  return { signature: { timestamp, token, signature }, 'event-data': { event, severity, recipient } };
}

test('Mailgun transport with retry, and signed bounce webhooks that suppress', async () => {
  const mg = await startMailgunSink();
  const { w, mail } = await startSendingSystem({
    vars: {
      EMAIL_TRANSPORT: 'mailgun', MAILGUN_API_URL: mg.url, MAILGUN_DOMAIN: mg.domain, MAILGUN_API_KEY: mg.key,
      MAILGUN_WEBHOOK_KEYS: 'whk-new,whk-old',
    },
  });
  try {
    const contact = { email: 'quinn@example.com', name: 'Quinn', test_list: true, consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' }] };
    assert.equal((await api(w, 'POST', '/v1/contacts', { token: w.tokens.marketer, body: contact })).status, 200);
    const t = await api(w, 'PUT', '/v1/templates/news', { token: w.tokens.marketer, body: { name: 'News', subject: 'News for {{ contact.name }}', html: '<p>News</p>' } });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'News', site: 'demo', template: 'news', purpose: 'newsletter', segment: { everyone: true } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/news', { token: w.tokens.marketer, body })).status, 200);

    mg.failNext(1); // the provider is down for the first attempt
    assert.equal((await api(w, 'POST', '/v1/campaigns/news/test', { token: w.tokens.marketer })).status, 202);
    for (let i = 0; mg.messages().length < 1; i++) {
      if (i > 200) throw new Error(`not delivered after a provider outage (${mg.attempts()} attempts)`);
      await sleep(250);
    }
    await sleep(2500); // the replayed batch must not send again
    assert.equal(mg.messages().length, 1, 'delivered once');
    assert.ok(mg.attempts() >= 2, 'the outage was retried');
    const [sent] = mg.messages();
    assert.equal(sent.to, 'quinn@example.com');
    assert.match(sent.mime, /\r\nSubject: News for Quinn\r\n/);
    assert.match(sent.mime, /\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n/);
    assert.equal((await mail.messages()).length, 0, 'nothing went over SMTP');

    // The provider refuses our key (401), then it is fixed: no one is suppressed, the campaign
    // shows why it paused, and the letter goes out once.
    mg.answerAll(401);
    assert.equal((await api(w, 'POST', '/v1/campaigns/news/test', { token: w.tokens.marketer })).status, 202);
    for (let i = 0; ; i++) {
      const c = await api(w, 'GET', '/v1/campaigns/news', { token: w.tokens.marketer });
      if (c.json.campaign.paused) {
        assert.match(c.json.campaign.paused.reason, /permanent failure 401 at AUTH/);
        break;
      }
      if (i > 120) throw new Error(`not paused: ${c.text}`);
      await sleep(250);
    }
    assert.equal((await api(w, 'GET', '/v1/contacts/quinn@example.com', { token: w.tokens.marketer })).json.contact.suppression, null, 'a 401 suppresses no one');
    mg.answerAll(null);
    for (let i = 0; mg.messages().length < 2; i++) {
      if (i > 360) throw new Error(`not delivered after the key was fixed (${mg.attempts()} attempts)`);
      await sleep(250);
    }
    await sleep(2500);
    assert.equal(mg.messages().length, 2, 'the second test letter, once');
    assert.equal((await api(w, 'GET', '/v1/campaigns/news', { token: w.tokens.marketer })).json.campaign.paused, null, 'resumed');

    const post = (payload) => api(w, 'POST', '/v1/webhooks/mailgun', { token: null, body: payload });
    const forged = await post(webhook('whk-wrong', { recipient: 'quinn@example.com' }));
    assert.equal(forged.status, 401);
    const stale = await post(webhook('whk-new', { recipient: 'quinn@example.com', age: 3600 }));
    assert.equal(stale.status, 401);
    const temporaryPayload = webhook('whk-new', { severity: 'temporary', recipient: 'quinn@example.com' });
    const temporary = await post(temporaryPayload);
    assert.deepEqual(temporary.json, { status: 'ignored' });
    let k = (await api(w, 'GET', '/v1/contacts/quinn@example.com', { token: w.tokens.marketer })).json.contact;
    assert.equal(k.suppression, null, 'nothing unverified or temporary suppresses');

    const bouncePayload = webhook('whk-old', { recipient: 'Quinn@Example.com' }); // a key being rotated out still verifies
    const bounce = await post(bouncePayload);
    assert.equal(bounce.status, 200, bounce.text);
    assert.deepEqual(bounce.json, { status: 'suppressed', reason: 'bounced' });
    // The same signed request again, within the freshness window: a replay, refused.
    const replayed = await post(bouncePayload);
    assert.equal(replayed.status, 401, replayed.text);
    assert.match(replayed.json.error.message, /used already/);
    const replayedTemporary = await post(temporaryPayload);
    assert.equal(replayedTemporary.status, 401, 'an ignored event is not a free replay either');
    const complaint = await post(webhook('whk-new', { event: 'complained', recipient: 'someone-else@example.com' }));
    assert.deepEqual(complaint.json, { status: 'suppressed', reason: 'complained' });
    k = (await api(w, 'GET', '/v1/contacts/quinn@example.com', { token: w.tokens.marketer })).json.contact;
    assert.equal(k.suppression.reason, 'bounced');

    // Suppressed for every later send: a second test send reaches nobody.
    assert.equal((await api(w, 'POST', '/v1/campaigns/news/test', { token: w.tokens.marketer })).status, 202);
    await sleep(3000);
    assert.equal(mg.messages().length, 2);
    const [skipped] = await w.d1("SELECT reason FROM sends WHERE kind = 'test' AND status = 'skipped'");
    assert.equal(skipped?.reason, 'suppressed');
  } finally {
    await w.stop();
    mail.stop();
    await mg.stop();
  }
});
