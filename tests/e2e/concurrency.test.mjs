// Parallel sending stays correct. The sends queue has no one-batch-at-a-time limit, and the jobs of
// one batch run concurrently; several campaigns to the same people, fanned out by one tick, land
// in one batch and are planned at the same moment, each seeing room under the cap. Only the claim
// — one statement that takes the key and re-checks the caps, run by D1 alone — decides who gets
// the slot. Every batch is replayed once on top (FAULT_REPLAY_BATCHES), so redelivery races too.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api, zoneWhere } from './harness.mjs';

let w;
let mail;
before(async () => {
  ({ w, mail } = await startSendingSystem({
    vars: {
      APPROVAL_CONFIRM_ABOVE: '1000',
      DOMAIN_THROTTLES: '{"mx-busy.example": 7}',
      // One letter per contact per 16 hours, as by default; no quiet hours in the way.
      SEND_LIMITS: '{"caps": [[57600, 1]], "quiet_hours": [0, 0]}',
    },
  }));
  // Campaigns are tested before approval; the test list is one tester outside every segment.
  const r = await api(w, 'POST', '/v1/contacts', { token: w.tokens.marketer, body: { email: 'tess@tests.example', test_list: true } });
  assert.equal(r.status, 200, r.text);
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const as = (token) => ({ token });
const DAY = zoneWhere((h) => h >= 10 && h <= 19);

async function tick() {
  assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
}

async function outcomesOf(id) {
  const r = await api(w, 'GET', `/v1/campaigns/${id}`, as(w.tokens.marketer));
  assert.equal(r.status, 200, r.text);
  return r.json.outcomes;
}

const total = (o) => Object.values(o).reduce((n, x) => n + x.total, 0);

async function launch(ids, { tagOf, template, purpose, audience }) {
  for (const id of ids) {
    const body = { name: `Offer ${id}`, site: 'demo', template, purpose, segment: { tag: tagOf(id) }, allow_resend: true };
    assert.equal((await api(w, 'PUT', `/v1/campaigns/${id}`, { ...as(w.tokens.marketer), body })).status, 200);
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/test`, as(w.tokens.marketer))).status, 202);
    const a = await api(w, 'POST', `/v1/campaigns/${id}/approve`, { ...as(w.tokens.approver), body: { confirm_audience: audience } });
    assert.equal(a.status, 200, a.text);
  }
  // Scheduled together, so one tick fans them all out and their chunks share a queue batch.
  for (const id of ids) {
    assert.equal((await api(w, 'POST', `/v1/campaigns/${id}/schedule`, as(w.tokens.approver))).status, 200);
  }
  await tick();
}

async function settle(ids, each, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = await Promise.all(ids.map(outcomesOf));
    if (all.every((o) => total(o) >= each)) {
      await sleep(3000); // replays and re-planned claims land
      return Promise.all(ids.map(outcomesOf));
    }
    if (Date.now() > deadline) throw new Error(`not settled: ${JSON.stringify(all)}`);
    await sleep(500);
  }
}

test('six campaigns to the same 40 people at once: exactly one letter each, the rest deferred', async () => {
  const consents = [{ site: 'demo', purpose: 'flash', channel: 'email', source: 'checkout' }];
  const people = Array.from({ length: 40 }, (_, i) => `p${String(i).padStart(2, '0')}@parallel.example`);
  const contacts = people.map((email) => ({ email, time_zone: DAY, tags: ['flash'], consents }));
  assert.equal((await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } })).json.upserted, 40);
  const t = await api(w, 'PUT', '/v1/templates/flash', { ...as(w.tokens.marketer), body: { name: 'Flash', subject: 'Flash {{ campaign.name }}', html: '<p>Now</p>' } });
  assert.equal(t.status, 200, t.text);
  const ids = ['flash-mon', 'flash-tue', 'flash-wed', 'flash-thu', 'flash-fri', 'flash-sat'];
  await launch(ids, { tagOf: () => 'flash', template: 'flash', purpose: 'flash', audience: 40 });
  const outcomes = await settle(ids, 40);
  const sum = (metric, reason) => outcomes.reduce((n, o) => n + (reason ? o[metric]?.by_reason?.[reason] ?? 0 : o[metric]?.total ?? 0), 0);
  assert.equal(sum('sent'), 40, `one letter per person: ${JSON.stringify(outcomes)}`);
  assert.equal(sum('deferred', 'frequency_cap'), 200, 'every other letter waits for the cap');
  assert.equal(outcomes.map(total).reduce((a, b) => a + b), 240, 'nothing dropped, nothing counted twice');
  // The sink agrees: one letter per person, whichever campaign won.
  const letters = (await mail.messages()).filter((m) => m.envelope?.to?.some((t) => t.address.endsWith('@parallel.example')));
  const per = new Map();
  for (const m of letters) for (const t of m.envelope.to) per.set(t.address, (per.get(t.address) ?? 0) + 1);
  assert.equal(per.size, 40);
  assert.ok([...per.values()].every((n) => n === 1), JSON.stringify([...per]));
  const rows = await w.d1("SELECT COUNT(*) AS n FROM sends WHERE status = 'sent' AND kind = 'campaign' AND campaign_id LIKE 'flash-%'");
  assert.equal(rows[0].n, 40);
});

test('three campaigns to one busy mailbox provider at once: exactly its hourly share goes out', async () => {
  const toNextHour = 3600 - (Math.floor(Date.now() / 1000) % 3600);
  if (toNextHour < 90) await sleep((toNextHour + 2) * 1000);
  const groups = ['red', 'green', 'blue'];
  for (const g of groups) {
    const consents = [{ site: 'demo', purpose: 'busy', channel: 'email', source: 'checkout' }];
    const contacts = Array.from({ length: 6 }, (_, i) => ({ email: `${g}${i}@mx-busy.example`, time_zone: DAY, tags: [`busy-${g}`], consents }));
    assert.equal((await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts } })).json.upserted, 6);
  }
  const t = await api(w, 'PUT', '/v1/templates/busy', { ...as(w.tokens.marketer), body: { name: 'Busy', subject: 'Hello', html: '<p>Hi</p>' } });
  assert.equal(t.status, 200, t.text);
  const ids = groups.map((g) => `drop-${g}`);
  await launch(ids, { tagOf: (id) => `busy-${id.slice(5)}`, template: 'busy', purpose: 'busy', audience: 6 });
  const outcomes = await settle(ids, 6);
  const sum = (metric, reason) => outcomes.reduce((n, o) => n + (reason ? o[metric]?.by_reason?.[reason] ?? 0 : o[metric]?.total ?? 0), 0);
  assert.equal(sum('sent'), 7, `the provider's share of the hour, not more: ${JSON.stringify(outcomes)}`);
  assert.equal(sum('deferred', 'domain_throttle'), 11, 'the rest waits for the next hour');
  const [row] = await w.d1("SELECT n FROM rate_limits WHERE key = 'domain:mx-busy.example' ORDER BY window DESC LIMIT 1");
  assert.equal(row.n, 7, 'the hourly counter holds exactly what was sent');
});
