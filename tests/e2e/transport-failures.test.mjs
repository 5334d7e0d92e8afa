// A relay, account or configuration failure is not the recipient's fault. Against a scripted SMTP
// server that fails as broken relays do — 554 at the greeting, 535 to AUTH, 452 quota and 550 to
// MAIL FROM — and a relay without STARTTLS when it is required: no one is suppressed, the campaign
// pauses with the reason (API and a `transport.failed` webhook), and once the relay works again
// every letter is delivered exactly once and the campaign resumes. Every queue batch is replayed.
// A recipient-level refusal (550 5.1.1) is still a bounce, and lifting that suppression is audited.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, daytimeZone, until as untilWithin } from './harness.mjs';
import { startSmtpFaultSink } from './smtp-fault-sink.mjs';
import { startReceiver } from './webhook-receiver.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// A paused campaign resumes on the next tick: give each wait a minute and a half.
const until = (what, check) => untilWithin(what, check, { timeoutMs: 90_000 });
const ZONE = daytimeZone();
const CONSENT = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'shop' }];

test('broken relay, account or configuration: nobody suppressed, the campaign pauses, every letter goes once after the fix', async () => {
  const smtp = await startSmtpFaultSink();
  const receiver = await startReceiver(0);
  const { w, mail } = await startSendingSystem({
    vars: { SMTP_PORT: String(smtp.port), SMTP_USERNAME: 'epistola', SMTP_PASSWORD: 'secret-pw' },
  });
  const m = { token: w.tokens.marketer };
  try {
    const hook = await api(w, 'POST', '/v1/webhook-endpoints', { token: w.tokens.hooks, body: { url: receiver.url, events: ['transport.failed'] } });
    assert.equal(hook.status, 201, hook.text);
    receiver.setSecret(hook.json.secret);
    const scenarios = [
      ['greeting', /permanent failure 554 at greeting/],
      ['auth', /permanent failure 535 at AUTH/],
      ['quota', /temporary failure 452 at MAIL FROM/],
      ['mailfrom', /permanent failure 550 at MAIL FROM/],
    ];
    const contacts = [{ email: 'tester@example.com', test_list: true, time_zone: ZONE, consents: CONSENT }];
    for (const [mode] of scenarios) {
      for (const n of [1, 2]) contacts.push({ email: `${mode}-${n}@example.com`, time_zone: ZONE, tags: [mode], consents: CONSENT });
    }
    contacts.push({ email: 'bounce-1@example.com', time_zone: ZONE, tags: ['bounce'], consents: CONSENT });
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { ...m, body: { contacts } })).json.upserted, contacts.length);
    const t = await api(w, 'PUT', '/v1/templates/relay-news', { ...m, body: { name: 'Relay news', subject: 'Relay news', html: '<p>Hi</p>' } });
    assert.equal(t.status, 200, t.text);

    for (const [mode, reason] of scenarios) {
      const id = `relay-${mode}`;
      const body = { name: id, site: 'demo', template: 'relay-news', purpose: 'newsletter', segment: { tag: mode } };
      assert.equal((await api(w, 'PUT', `/v1/campaigns/${id}`, { ...m, body })).status, 200);
      assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/test`, m)).status, 202);
      await until(`${id}: test letter`, async () => smtp.accepted().filter((x) => x.to === 'tester@example.com').length >= scenarios.findIndex(([s]) => s === mode) + 1);

      smtp.setMode(mode); // the relay breaks
      assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/approve`, { token: w.tokens.approver })).status, 200);
      assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/schedule`, { token: w.tokens.approver })).status, 200);
      assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
      const paused = await until(`${id} paused`, async () => {
        const c = await api(w, 'GET', `/v1/campaigns/${id}`, m);
        return c.json.campaign.paused ? c.json.campaign : null;
      });
      assert.match(paused.paused.reason, reason, mode);
      if (mode === 'auth') {
        // The marketer sees why on the dashboard too.
        const session = await fetch(`${w.url}/dashboard/session`, {
          method: 'POST', redirect: 'manual',
          headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
          body: `token=${encodeURIComponent(w.tokens.statsOnly)}`,
        });
        assert.equal(session.status, 303, await session.text());
        const cookie = session.headers.get('set-cookie').split(';')[0];
        const page = await (await fetch(`${w.url}/dashboard/campaigns/${id}`, { headers: { cookie } })).text();
        assert.match(page, /status \w+ · paused: permanent failure 535 at AUTH/);
      }
      const waiting = await w.d1(`SELECT status, reason FROM sends WHERE campaign_id = '${id}' ORDER BY send_key`);
      assert.ok(waiting.length >= 1 && waiting.every((s) => s.status === 'retrying' && s.reason === 'transport'), JSON.stringify(waiting));
      assert.equal((await w.d1(`SELECT COUNT(*) AS n FROM suppressions`))[0].n, 0, `${mode}: nobody suppressed`);

      smtp.setMode('ok'); // fixed
      await until(`${id}: both letters after the fix`, async () =>
        [1, 2].every((n) => smtp.accepted().some((x) => x.to === `${mode}-${n}@example.com`)));
      const resumed = await until(`${id} resumed and done`, async () => {
        await fetch(`${w.url}/__scheduled`);
        const c = await api(w, 'GET', `/v1/campaigns/${id}`, m);
        return !c.json.campaign.paused && c.json.campaign.status === 'done' && c.json.outcomes.sent?.total === 2 ? c.json : null;
      });
      assert.deepEqual(Object.keys(resumed.outcomes), ['sent'], JSON.stringify(resumed.outcomes));
    }
    await sleep(3000); // replayed batches come back: they must send nothing
    for (const [mode] of scenarios) {
      for (const n of [1, 2]) {
        assert.equal(smtp.accepted().filter((x) => x.to === `${mode}-${n}@example.com`).length, 1, `${mode}-${n}: exactly once`);
      }
    }
    assert.deepEqual([...new Set(smtp.refused().map((r) => r.stage))].sort(), ['auth', 'greeting', 'mail']);
    assert.equal((await w.d1(`SELECT COUNT(*) AS n FROM suppressions`))[0].n, 0);

    // The CRM heard of each pause once, signed.
    const announced = await until('transport.failed webhooks', async () => {
      await fetch(`${w.url}/__scheduled`);
      const seen = receiver.seen().filter((s) => s.body.type === 'transport.failed');
      return seen.length >= scenarios.length ? seen : null;
    });
    assert.deepEqual(announced.map((s) => s.body.data.campaign).sort(), scenarios.map(([mode]) => `relay-${mode}`).sort());
    assert.ok(announced.every((s) => s.valid), 'signed');

    // A recipient-level refusal is still a bounce; lifting it is an audited act.
    const body = { name: 'bounce', site: 'demo', template: 'relay-news', purpose: 'newsletter', segment: { tag: 'bounce' } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/relay-bounce', { ...m, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/relay-bounce/test', m)).status, 202);
    assert.equal((await api(w, 'POST', '/v1/campaigns/relay-bounce/approve', { token: w.tokens.approver })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/relay-bounce/schedule', { token: w.tokens.approver })).status, 200);
    await fetch(`${w.url}/__scheduled`);
    const bounced = await until('the bounce', async () => (await api(w, 'GET', '/v1/contacts/bounce-1@example.com', m)).json.contact.suppression);
    assert.equal(bounced.reason, 'bounced');
    const noReason = await api(w, 'DELETE', '/v1/suppressions/bounce-1%40example.com', { ...m, body: { reason: ' ' } });
    assert.equal(noReason.status, 400);
    assert.ok(noReason.json.error.fields.reason);
    const lifted = await api(w, 'DELETE', '/v1/suppressions/bounce-1%40example.com', { ...m, body: { reason: 'the relay misreported this bounce (ticket 4711)' } });
    assert.equal(lifted.status, 200, lifted.text);
    assert.deepEqual(lifted.json, { lifted: true, previous_reason: 'bounced' });
    assert.equal((await api(w, 'GET', '/v1/contacts/bounce-1%40example.com', m)).json.contact.suppression, null);
    assert.deepEqual(await w.d1('SELECT action, reason, previous_reason, actor FROM suppression_ledger'),
      [{ action: 'lifted', reason: 'the relay misreported this bounce (ticket 4711)', previous_reason: 'bounced', actor: 'marketer' }]);
    assert.equal((await api(w, 'DELETE', '/v1/suppressions/bounce-1%40example.com', { ...m, body: { reason: 'again' } })).status, 404);
    assert.equal((await mail.messages()).length, 0, 'everything went to the scripted relay');
  } finally {
    await w.stop();
    mail.stop();
    await smtp.stop();
    await receiver.stop();
  }
});

test('STARTTLS required but not offered: nothing is sent in clear, nobody is suppressed, the letters wait', async () => {
  const smtp = await startSmtpFaultSink();
  const { w, mail } = await startSendingSystem({ vars: { SMTP_PORT: String(smtp.port), SMTP_STARTTLS: 'required' } });
  try {
    const contacts = ['tls-1', 'tls-2'].map((n) => ({ email: `${n}@example.com`, time_zone: ZONE, test_list: true, consents: CONSENT }));
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } })).json.upserted, 2);
    const t = await api(w, 'PUT', '/v1/templates/tls', { token: w.tokens.marketer, body: { name: 'TLS', subject: 'TLS', html: '<p>x</p>' } });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'TLS', site: 'demo', template: 'tls', purpose: 'newsletter', segment: { everyone: true } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/tls-check', { token: w.tokens.marketer, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/tls-check/test', { token: w.tokens.marketer })).status, 202);
    const paused = await until('the campaign paused', async () => {
      const c = await api(w, 'GET', '/v1/campaigns/tls-check', { token: w.tokens.marketer });
      return c.json.campaign.paused;
    });
    assert.equal(paused.reason, 'STARTTLS unavailable');
    await sleep(6000); // a retry or two
    assert.equal(smtp.accepted().length, 0, 'nothing sent without TLS');
    assert.ok(smtp.connections() >= 1);
    const sends = await w.d1("SELECT status FROM sends WHERE kind = 'test'");
    assert.deepEqual(sends.map((s) => s.status), ['retrying', 'retrying'], 'waiting, not lost, not failed');
    assert.equal((await w.d1('SELECT COUNT(*) AS n FROM suppressions'))[0].n, 0);
  } finally {
    await w.stop();
    mail.stop();
    await smtp.stop();
  }
});
