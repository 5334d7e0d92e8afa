// Trigger chains end to end: server-side events enrol contacts (idempotently), each step waits,
// checks its condition and sends through the same guardrails as campaigns; a purchase takes a
// contact out of an abandoned-cart chain; overlapping chains that would flood one person deliver
// within the cross-campaign frequency cap and defer the rest. Every queue batch is replayed once.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, daytimeZone } from './harness.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);
const DAY = daytimeZone();

async function setUp(w, contacts, templates) {
  const m = w.tokens.marketer;
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    token: m,
    body: { contacts: contacts.map((email) => ({ email, name: email.split('@')[0], time_zone: DAY, consents: [{ site: 'demo', purpose: 'offers', channel: 'email', source: 'checkout' }] })) },
  });
  assert.equal(imported.json.upserted, contacts.length, imported.text);
  for (const [id, subject] of Object.entries(templates)) {
    const t = await api(w, 'PUT', `/v1/templates/${id}`, { token: m, body: { name: id, subject, html: `<p>${subject}</p><a href="https://shop.example/cart">Cart</a>` } });
    assert.equal(t.status, 200, t.text);
  }
}

async function chain(w, id, trigger, steps) {
  const put = await api(w, 'PUT', `/v1/chains/${id}`, {
    token: w.tokens.marketer, body: { name: id, site: 'demo', purpose: 'offers', trigger, steps },
  });
  assert.equal(put.status, 200, put.text);
  assert.equal(put.json.chain.status, 'draft');
  assert.equal((await api(w, 'POST', `/v1/chains/${id}/activate`, { token: w.tokens.marketer })).status, 403, 'activation needs campaigns:approve');
  const on = await api(w, 'POST', `/v1/chains/${id}/activate`, { token: w.tokens.approver });
  assert.equal(on.status, 200, on.text);
}

const tick = async (w) => assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);

test('abandoned cart: events enrol once, each step goes once, a purchase leaves the chain', async () => {
  const { w, mail } = await startSendingSystem({ vars: { SEND_LIMITS: '{"caps": [[3600, 10]], "quiet_hours": [0, 0]}' } });
  try {
    await setUp(w, ['ivy@example.com', 'jon@example.com'], { 'cart-1': 'You left something', 'cart-2': 'Still thinking about it?' });
    await chain(w, 'cart', 'cart.abandoned', [
      { delay_seconds: 0, template: 'cart-1', condition: { no_event_since_entry: 'purchase' } },
      { delay_seconds: 3, template: 'cart-2', condition: { no_event_since_entry: 'purchase' } },
    ]);
    // The active chain's letters are what the approver activated: their templates are locked.
    const edit = await api(w, 'PUT', '/v1/templates/cart-2', { token: w.tokens.marketer, body: { name: 'cart-2', subject: 'Changed after approval', html: '<p>x</p>' } });
    assert.equal(edit.status, 409, edit.text);
    assert.equal(edit.json.error.code, 'locked');
    const events = await api(w, 'POST', '/v1/events', {
      token: w.tokens.marketer,
      body: { events: [
        { id: 'cart-ivy-1', type: 'cart.abandoned', contact: 'IVY@example.com', data: { items: 2 } },
        { id: 'cart-ivy-1', type: 'cart.abandoned', contact: 'ivy@example.com' },
        { id: 'cart-jon-1', type: 'cart.abandoned', contact: 'jon@example.com' },
        { type: 'Cart', contact: 'nobody@example.com' },
      ] },
    });
    assert.equal(events.status, 202, events.text);
    assert.equal(events.json.enrolled, 2, 'the repeated event enrols once');
    assert.deepEqual(events.json.errors, [{ row: 4, fields: { type: 'must be 1-64 of a-z 0-9 . _ -, starting with a letter, e.g. cart.abandoned' } }]);
    const again = await api(w, 'POST', '/v1/events', { token: w.tokens.marketer, body: { id: 'cart-jon-1', type: 'cart.abandoned', contact: 'jon@example.com' } });
    assert.equal(again.json.enrolled, 0, 'a resent event enrols nobody');

    await tick(w);
    await mail.waitFor(to('ivy@example.com'), { what: 'step 1 to Ivy' });
    await mail.waitFor(to('jon@example.com'), { what: 'step 1 to Jon' });
    const bought = await api(w, 'POST', '/v1/events', { token: w.tokens.marketer, body: { type: 'purchase', contact: 'jon@example.com', data: { value: 42 } } });
    assert.equal(bought.status, 202, bought.text);

    await sleep(3500);
    await tick(w);
    await mail.waitFor((m) => to('ivy@example.com')(m) && m.subject === 'Still thinking about it?', { what: 'step 2 to Ivy' });
    await sleep(2500);
    await tick(w);
    await sleep(1500);
    const all = await mail.messages();
    assert.deepEqual(all.filter(to('ivy@example.com')).map((m) => m.subject).sort(), ['Still thinking about it?', 'You left something']);
    assert.deepEqual(all.filter(to('jon@example.com')).map((m) => m.subject), ['You left something'], 'Jon bought: no reminder');
    const c = await api(w, 'GET', '/v1/chains/cart', { token: w.tokens.marketer });
    assert.deepEqual(c.json.runs, { done: 1, exited: 1 });
    assert.deepEqual(c.json.chain.step_stats_ids, ['cart.1', 'cart.2']);
    const [exit] = await w.d1("SELECT exit_reason FROM chain_runs WHERE status = 'exited'");
    assert.equal(exit.exit_reason, 'event_since_entry');
    assert.match(w.log.join(''), /fault injection: replaying \d+ finished messages/, 'chunks really were delivered twice');

    // Purchase data in segments: a campaign to those who bought in the last day reaches Jon only.
    const m = w.tokens.marketer;
    await api(w, 'POST', '/v1/contacts', { token: m, body: { email: 'ivy@example.com', test_list: true } });
    assert.equal((await api(w, 'PUT', '/v1/templates/thanks', { token: m, body: { name: 't', subject: 'Thanks', html: '<p>Thanks</p>' } })).status, 200);
    const body = { name: 'Buyers', site: 'demo', template: 'thanks', purpose: 'offers', segment: { purchased_within_days: 1 } };
    assert.equal((await api(w, 'PUT', '/v1/campaigns/buyers', { token: m, body })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/buyers/test', { token: m })).status, 202);
    assert.equal((await api(w, 'POST', '/v1/campaigns/buyers/approve', { token: w.tokens.approver })).status, 200);
    assert.equal((await api(w, 'POST', '/v1/campaigns/buyers/schedule', { token: w.tokens.approver })).status, 200);
    await tick(w);
    await mail.waitFor((x) => to('jon@example.com')(x) && x.subject === 'Thanks', { what: 'the buyers campaign to Jon' });
    await sleep(2000);
    const thanks = (await mail.messages()).filter((x) => x.subject === 'Thanks');
    assert.deepEqual(thanks.map((x) => x.envelope.to[0].address).sort(), ['ivy@example.com', 'jon@example.com'], 'Ivy got the test only, Jon the campaign');
    const outcomes = (await api(w, 'GET', '/v1/campaigns/buyers', { token: m })).json.outcomes;
    assert.deepEqual(outcomes, { sent: { total: 1, by_reason: {} } });
  } finally {
    await w.stop();
    mail.stop();
  }
});

test('two overlapping chains that would send 11 letters deliver within the cap and defer the rest', async () => {
  const { w, mail } = await startSendingSystem();
  try {
    await setUp(w, ['kim@example.com'], { 'promo-a': 'Promo A', 'promo-b': 'Promo B' });
    await chain(w, 'promo-a', 'promo.start', Array.from({ length: 6 }, () => ({ delay_seconds: 1, template: 'promo-a' })));
    await chain(w, 'promo-b', 'promo.start', Array.from({ length: 5 }, () => ({ delay_seconds: 1, template: 'promo-b' })));
    const e = await api(w, 'POST', '/v1/events', { token: w.tokens.marketer, body: { id: 'promo-kim', type: 'promo.start', contact: 'kim@example.com' } });
    assert.equal(e.json.enrolled, 2, e.text);
    for (let i = 0; i < 8; i++) {
      await sleep(1200);
      await tick(w);
    }
    await sleep(2000);
    const letters = (await mail.messages()).filter(to('kim@example.com'));
    assert.equal(letters.length, 1, `one letter within 16 h, not 11: ${letters.map((m) => m.subject)}`);
    const runs = await w.d1("SELECT chain_id, status, step, due_at FROM chain_runs ORDER BY chain_id");
    assert.deepEqual(runs.map((r) => r.status), ['active', 'active'], 'nobody dropped out: the rest waits');
    const now = Date.now() / 1000;
    for (const r of runs) assert.ok(r.due_at > now + 15 * 3600, `${r.chain_id} waits for the cap (${r.due_at - now} s)`);
    // The two chains' first steps run concurrently and one of them wins the cap's only slot; the
    // next letter of each chain waits for the cap: the winner's second and the other's first.
    const sent = await w.d1("SELECT send_key FROM sends WHERE status = 'sent' AND kind = 'chain'");
    assert.equal(sent.length, 1);
    const winner = sent[0].send_key.split('.')[1];
    assert.match(sent[0].send_key, /^chain\.promo-[ab]\.1\./);
    const loser = winner === 'promo-a' ? 'promo-b' : 'promo-a';
    const deferred = await w.d1("SELECT send_key, reason FROM sends WHERE status = 'deferred' ORDER BY send_key");
    assert.deepEqual(deferred.map((d) => [d.send_key.split('.').slice(0, 3).join('.'), d.reason]).sort(),
      [[`chain.${winner}.2`, 'frequency_cap'], [`chain.${loser}.1`, 'frequency_cap']].sort());
  } finally {
    await w.stop();
    mail.stop();
  }
});

test('inactivity: a win-back chain reaches those quiet for N days, once per quiet spell', async () => {
  const { w, mail } = await startSendingSystem();
  try {
    await setUp(w, ['rae@example.com', 'sol@example.com'], { 'win-back': 'We miss you' });
    // Rae joined 40 days ago and has not opened anything since; Sol joined today.
    await w.d1(`UPDATE contacts SET created_at = unixepoch() - 40 * 86400 WHERE email = 'rae@example.com'`);
    await chain(w, 'win-back', 'inactive.30d', [{ delay_seconds: 0, template: 'win-back' }]);
    await tick(w); // the daily inactivity job enrols Rae
    await tick(w); // … and her first step is due now
    await mail.waitFor(to('rae@example.com'), { what: 'the win-back letter' });
    await sleep(1500);
    await tick(w);
    await sleep(1500);
    const all = await mail.messages();
    assert.equal(all.filter(to('rae@example.com')).length, 1, 'once');
    assert.equal(all.filter(to('sol@example.com')).length, 0, 'Sol is new, not inactive');
    const c = await api(w, 'GET', '/v1/chains/win-back', { token: w.tokens.marketer });
    assert.deepEqual(c.json.runs, { done: 1 });
  } finally {
    await w.stop();
    mail.stop();
  }
});
