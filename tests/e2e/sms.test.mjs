// SMS as a fallback channel: a campaign sends its SMS version, through a provider API (Twilio's
// format, a local sink here), only to recipients with SMS consent and a phone who did not open or
// click the e-mail as a person within the set time. An Apple privacy-proxy open does not count as
// engagement; a person's open does. Every queue batch is replayed once: nobody gets two texts.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, daytimeZone } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);
const DAY = daytimeZone();
const FALLBACK_SECONDS = 12;

test('SMS fallback only where no person engaged with the e-mail', async () => {
  const { w, mail, sms } = await startSendingSystem();
  try {
    const both = (site) => [
      { site, purpose: 'newsletter', channel: 'email', source: 'checkout' },
      { site, purpose: 'newsletter', channel: 'sms', source: 'checkout' },
    ];
    const contacts = [
      { email: 'lea@example.com', name: 'Lea', phone: '+447700900001', consents: both('demo'), test_list: true }, // never opens: SMS
      { email: 'max@example.com', name: 'Max', phone: '+447700900002', consents: both('demo') }, // opens: no SMS
      { email: 'ola@example.com', name: 'Ola', phone: '+447700900003', consents: both('demo') }, // Apple proxy only: SMS
      { email: 'ned@example.com', name: 'Ned', phone: '+447700900004', consents: both('demo').slice(0, 1) }, // no SMS consent
      { email: 'pia@example.com', name: 'Pia', consents: both('demo').slice(0, 1) }, // no phone
    ].map((c) => ({ ...c, time_zone: DAY, tags: ['sms-test'] }));
    const imported = await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } });
    assert.equal(imported.json.upserted, 5, imported.text);
    const t = await api(w, 'PUT', '/v1/templates/flash', {
      token: w.tokens.marketer,
      body: { name: 'Flash sale', subject: 'Flash sale, {{ contact.name }}', html: '<p>24 hours only</p>', sms: 'Flash sale for {{ contact.name }}: 24 h only. Reply STOP to opt out.' },
    });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'Flash', site: 'demo', template: 'flash', purpose: 'newsletter', segment: { tag: 'sms-test' }, sms_fallback_after_seconds: FALLBACK_SECONDS };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/flash', { token: w.tokens.marketer, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/flash/test', { token: w.tokens.marketer })).status, 202);
    assert.equal((await api(w, 'POST', '/v1/campaigns/flash/approve', { token: w.tokens.approver, body: { confirm_audience: 5 } })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/flash/schedule', { token: w.tokens.approver })).status, 200);
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    const sentAt = Date.now();

    const pixelOf = async (address) => {
      const [m] = await mail.waitFor(to(address), { what: `the e-mail to ${address}` });
      return /src="(http:\/\/127\.0\.0\.1:\d+\/o\/[A-Za-z0-9_-]+\.gif)"/.exec(m.html)[1];
    };
    const maxPixel = await pixelOf('max@example.com');
    const olaPixel = await pixelOf('ola@example.com');
    await sleep(Math.max(0, sentAt + 3000 - Date.now())); // a person takes longer than a scanner
    const human = await fetch(maxPixel, { headers: { 'user-agent': 'Microsoft Outlook 16.0.17928; ms-office; MSOffice 16', 'cf-connecting-ip': '198.51.100.7' } });
    assert.equal(human.status, 200);
    const proxy = await fetch(olaPixel, { headers: { 'user-agent': 'Mozilla/5.0', 'cf-connecting-ip': '17.58.1.20' } });
    assert.equal(proxy.status, 200);
    // Wait until both opens are counted, as the person and as the proxy they are.
    for (let i = 0; ; i++) {
      const s = await api(w, 'GET', '/v1/stats/campaigns/flash', { token: w.tokens.marketer });
      if (s.json?.opens?.human?.total === 1 && s.json?.opens?.privacy_proxy?.total === 1) break;
      if (i > 60) throw new Error(`opens not counted: ${s.text}`);
      await sleep(250);
    }
    assert.equal(sms.messages().length, 0, 'nothing by SMS before the fallback time');

    await sleep(Math.max(0, sentAt + (FALLBACK_SECONDS + 2) * 1000 - Date.now()));
    assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
    for (let i = 0; sms.messages().length < 2; i++) {
      if (i > 80) throw new Error(`SMS fallback not sent: ${JSON.stringify(sms.messages())}`);
      await sleep(250);
    }
    await sleep(2500); // replayed chunks come back: they must send nothing
    await fetch(`${w.url}/__scheduled`);
    await sleep(1500);
    const texts = sms.messages();
    assert.deepEqual(texts.map((m) => m.to).sort(), ['+447700900001', '+447700900003'], 'Lea and Ola, once each');
    assert.equal(texts.find((m) => m.to === '+447700900001').body, 'Flash sale for Lea: 24 h only. Reply STOP to opt out.');
    assert.equal(texts[0].from, '+15005550006');

    const c = await api(w, 'GET', '/v1/campaigns/flash', { token: w.tokens.marketer });
    assert.deepEqual(c.json.outcomes.sent, { total: 5, by_reason: {} });
    assert.deepEqual(c.json.outcomes.sms_sent, { total: 2, by_reason: {} });
    assert.deepEqual(c.json.outcomes.sms_skipped, { total: 3, by_reason: { engaged: 1, no_consent: 1, no_phone: 1 } });
  } finally {
    await w.stop();
    mail.stop();
  }
});

test('SMS provider refusing our credentials (401): nobody suppressed or failed, the campaign pauses, the texts go once after the fix', async () => {
  const { w, mail, sms } = await startSendingSystem();
  try {
    const consents = [
      { site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' },
      { site: 'demo', purpose: 'newsletter', channel: 'sms', source: 'checkout' },
    ];
    const contacts = ['+447700900011', '+447700900012'].map((phone, i) => ({
      email: `sms-key-${i}@example.com`, phone, consents, time_zone: DAY, tags: ['sms-key'], test_list: i === 0,
    }));
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } })).json.upserted, 2);
    const t = await api(w, 'PUT', '/v1/templates/sms-key', { token: w.tokens.marketer, body: { name: 'Key', subject: 'Key', html: '<p>Hi</p>', sms: 'Our sale starts now.' } });
    assert.equal(t.status, 200, t.text);
    const body = { name: 'Key', site: 'demo', template: 'sms-key', purpose: 'newsletter', segment: { tag: 'sms-key' }, sms_fallback_after_seconds: 5 };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/sms-key', { token: w.tokens.marketer, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/sms-key/test', { token: w.tokens.marketer })).status, 202);
    assert.equal((await api(w, 'POST', '/v1/campaigns/sms-key/approve', { token: w.tokens.approver })).status, 200);
    sms.answerAll(401); // the provider account's token was rotated and ours is stale
    assert.equal((await api(w, 'POST', '/v1/campaigns/sms-key/schedule', { token: w.tokens.approver })).status, 200);
    await fetch(`${w.url}/__scheduled`);
    await mail.waitFor((m) => to('sms-key-1@example.com')(m), { what: 'the e-mail' });
    let paused;
    for (let i = 0; !paused; i++) {
      if (i > 160) throw new Error('the campaign never paused');
      await sleep(500);
      if (i % 4 === 0) await fetch(`${w.url}/__scheduled`);
      paused = (await api(w, 'GET', '/v1/campaigns/sms-key', { token: w.tokens.marketer })).json.campaign.paused;
    }
    assert.match(paused.reason, /provider answered 401/);
    const waiting = await w.d1("SELECT status FROM sends WHERE campaign_id = 'sms-key' AND channel = 'sms'");
    assert.ok(waiting.length >= 1 && waiting.every((r) => ['retrying', 'waiting'].includes(r.status)), JSON.stringify(waiting));
    assert.equal((await w.d1('SELECT COUNT(*) AS n FROM suppressions'))[0].n, 0);
    sms.answerAll(null);
    for (let i = 0; sms.messages().filter((m) => m.body === 'Our sale starts now.').length < 2; i++) {
      if (i > 240) throw new Error(`texts missing: ${JSON.stringify(await w.d1("SELECT send_key, status, reason FROM sends WHERE campaign_id = 'sms-key'"))}`);
      await sleep(500);
      if (i % 6 === 0) await fetch(`${w.url}/__scheduled`);
    }
    await sleep(3000);
    assert.equal(sms.messages().filter((m) => m.body === 'Our sale starts now.').length, 2, 'each text once');
    const c = (await api(w, 'GET', '/v1/campaigns/sms-key', { token: w.tokens.marketer })).json;
    assert.equal(c.campaign.paused, null, 'resumed');
    assert.equal(c.outcomes.sms_sent?.total, 2, JSON.stringify(c.outcomes));
    assert.equal(c.outcomes.sms_failed, undefined);
  } finally {
    await w.stop();
    mail.stop();
  }
});
