// Campaign fan-out at scale: 100,000 contacts imported through the API into local D1, one campaign
// to all of them, scheduled and fanned out by the cron tick under wrangler dev. Prints contacts
// scheduled per D1 write statement (target: at least 100, i.e. ≤ 1 write per 100 contacts) and
// the time the fan-out took. Send-time work (guardrails, one outcome row per recipient) is not part
// of scheduling and is not counted here.
// Run: scripts/bench.sh, or `node bench/fanout.mjs [contacts]` after scripts/build.sh.

import { startWorker, api } from '../tests/e2e/harness.mjs';

const TOTAL = Number(process.argv[2] ?? 100_000);
const BATCH = 5000;
const w = await startWorker({ logLevel: 'log' });
try {
  const token = w.tokens.marketer;
  const site = { name: 'Bench', allowed_origins: ['https://bench.example'], from_email: 'hi@bench.example', locale: 'en',
    trigger: { product_views: 2 }, promise: { title: 'x', description: 'x', delivery: { subject: 'x', text: 'x', url: 'https://bench.example/x' } },
    consents: [{ purpose: 'news', channel: 'email', version: 'n1', text: 'News', in_form: true }] };
  const s = await api(w, 'PUT', '/v1/sites/bench', { token: w.tokens.sites, body: site });
  if (s.status !== 200) throw new Error(s.text);
  let t0 = Date.now();
  for (let start = 0; start < TOTAL; start += BATCH) {
    const contacts = Array.from({ length: Math.min(BATCH, TOTAL - start) }, (_, i) => ({
      email: `c${start + i}@bench.example`, tags: [(start + i) % 2 ? 'odd' : 'even'], test_list: start + i === 0,
    }));
    const r = await api(w, 'POST', '/v1/contacts/import', { token, body: { contacts } });
    if (r.status !== 200 || r.json.upserted !== contacts.length) throw new Error(`import: ${r.status} ${r.text.slice(0, 300)}`);
  }
  const importSeconds = (Date.now() - t0) / 1000;
  const tpl = await api(w, 'PUT', '/v1/templates/bench', { token, body: { name: 'b', subject: 'b', html: '<p>b</p>' } });
  if (tpl.status !== 200) throw new Error(tpl.text);
  const body = { name: 'Bench', site: 'bench', template: 'bench', purpose: 'news', segment: { everyone: true } };
  for (const [method, path, tok, b] of [['PUT', '/v1/campaigns/bench', token, body], ['POST', '/v1/campaigns/bench/test', token],
    ['POST', '/v1/campaigns/bench/approve', w.tokens.approver], ['POST', '/v1/campaigns/bench/schedule', w.tokens.approver]]) {
    const r = await api(w, method, path, { token: tok, body: b });
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${r.text}`);
  }
  t0 = Date.now();
  let queued = 0;
  let read = 0;
  let writes = 0;
  let ticks = 0;
  for (;;) {
    // The tick's report is in the log of the edge worker's cron.
    const before = w.log.length;
    const r = await fetch(`${w.url}/__scheduled`);
    if (r.status !== 200) throw new Error(`tick ${r.status}`);
    ticks++;
    let report;
    for (let i = 0; i < 100 && !report; i++) {
      const line = w.log.slice(before).join('').match(/cron: sender tick (\{.*?\})\s*$/m);
      if (line) report = JSON.parse(line[1]);
      else await new Promise((ok) => setTimeout(ok, 100));
    }
    if (!report) throw new Error(`no tick report in the log:\n${w.log.slice(before).join('').slice(0, 2000)}`);
    queued += report.queued;
    read += report.contacts_read;
    writes += report.fanout_write_statements;
    if (report.finished.includes('bench')) break;
    if (ticks > 50) throw new Error('fan-out did not finish');
  }
  const seconds = (Date.now() - t0) / 1000;
  console.log(`imported ${TOTAL} contacts in ${importSeconds.toFixed(1)} s (${(TOTAL / importSeconds).toFixed(0)} contacts/s)`);
  console.log(`fan-out: ${ticks} ticks, ${read} contacts read, ${queued} scheduled in ${Math.ceil(queued / 100)} queue messages, ${seconds.toFixed(1)} s`);
  console.log(`D1 write statements: ${writes} → ${(queued / writes).toFixed(0)} contacts per write statement (target ≥ 100)`);
  if (queued !== TOTAL) throw new Error(`scheduled ${queued} of ${TOTAL}`);
} finally {
  await w.stop();
}
