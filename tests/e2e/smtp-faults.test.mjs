// SMTP faults during a campaign, with every queue batch replayed: a slow server, a recipient the
// server refuses for now (451, once) and one it refuses for good (550). Each deliverable letter
// arrives exactly once, the refused one is a bounce that suppresses, and the counters are exact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, daytimeZone } from './harness.mjs';
import { startSmtpFaultSink } from './smtp-fault-sink.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('slow, temporarily and permanently refusing SMTP: nothing lost, nothing doubled, counts exact', async () => {
  const smtp = await startSmtpFaultSink({ tempFailures: 1, delayMs: 300 });
  const { w, mail } = await startSendingSystem({ vars: { SMTP_PORT: String(smtp.port) } });
  try {
    const zone = daytimeZone();
    const consent = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'shop' }];
    const contacts = ['ok1', 'temp1', 'bounce1', 'ok2'].map((n) => ({ email: `${n}@example.com`, name: n, consents: consent, time_zone: zone, tags: ['smtp'] }));
    contacts[0].test_list = true;
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } })).json.upserted, 4);
    const t = await api(w, 'PUT', '/v1/templates/faults', { token: w.tokens.marketer, body: { name: 'F', subject: 'Hello {{ contact.name }}', html: '<p>Hi</p>' } });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'Faults', site: 'demo', template: 'faults', purpose: 'newsletter', segment: { tag: 'smtp' } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/faults', { token: w.tokens.marketer, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/faults/test', { token: w.tokens.marketer })).status, 202);
    for (let i = 0; !smtp.accepted().some((m) => m.to === 'ok1@example.com'); i++) {
      if (i > 120) throw new Error('test letter not delivered');
      await sleep(250);
    }
    assert.equal((await api(w, 'POST', '/v1/campaigns/faults/approve', { token: w.tokens.approver })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/faults/schedule', { token: w.tokens.approver })).status, 200);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);

    // temp1 is refused once (451) and retried with backoff; the others are settled at once.
    let c;
    for (let i = 0; ; i++) {
      c = await api(w, 'GET', '/v1/campaigns/faults', { token: w.tokens.marketer });
      const o = c.json.outcomes;
      if ((o.sent?.total ?? 0) >= 3 && (o.failed?.total ?? 0) >= 1) break;
      if (i > 240) throw new Error(`campaign did not settle: ${c.text} ${JSON.stringify(smtp.refused())}`);
      await sleep(250);
    }
    await sleep(4000); // replayed batches come back: they must send nothing
    const campaignLetters = smtp.accepted().filter((m) => /Subject: Hello/.test(m.data));
    const count = (to) => campaignLetters.filter((m) => m.to === to).length;
    assert.equal(count('ok1@example.com'), 2, 'ok1: the test letter and the campaign letter');
    assert.equal(count('ok2@example.com'), 1);
    assert.equal(count('temp1@example.com'), 1, 'temp1: delivered once, after the refusal');
    assert.equal(count('bounce1@example.com'), 0);
    assert.equal(smtp.refused().filter((r) => r.to === 'temp1@example.com').length, 1);
    assert.equal(smtp.refused().filter((r) => r.to === 'bounce1@example.com').length, 1, 'a permanent refusal is not retried');

    const stats = await api(w, 'GET', '/v1/stats/campaigns/faults', { token: w.tokens.statsOnly });
    assert.equal(stats.json.delivery.email.sent, 3);
    assert.equal(stats.json.delivery.email.failed, 1);
    const bounced = await api(w, 'GET', '/v1/contacts/bounce1@example.com', { token: w.tokens.marketer });
    assert.equal(bounced.json.contact.suppression.reason, 'bounced');
    assert.equal((await mail.messages()).length, 0, 'everything went to the fault sink');
  } finally {
    await w.stop();
    mail.stop();
    await smtp.stop();
  }
});
