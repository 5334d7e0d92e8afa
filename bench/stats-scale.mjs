// Stats at scale: one campaign with 1,000 events and one with 1,000,000, over the same 30 days and
// links, seeded straight into local D1 (the triggers count them as the queue consumer's inserts
// would). Reads GET /v1/stats/campaigns/{id} for each and prints D1 rows read (Server-Timing) and
// latency, big vs small: target within 1.5×. Measured before and after the hourly maintenance
// folds series hours older than two days into days.
// Run: scripts/bench.sh, or `node bench/stats-scale.mjs [big events]` after scripts/build.sh.

import { startWorker, api } from '../tests/e2e/harness.mjs';

const BIG = Number(process.argv[2] ?? 1_000_000);
const SMALL = 1_000;
const LINKS = 10;
const SPAN = 30 * 86_400;
const CHUNK = 100_000;
const REQUESTS = 40;

function seedSql(campaign, total, contacts, start, end) {
  const t0 = Math.floor(Date.now() / 1000) - SPAN - 3600;
  return `WITH RECURSIVE n(i) AS (SELECT ${start} UNION ALL SELECT i + 1 FROM n WHERE i < ${end - 1})
INSERT INTO events (id, kind, campaign_id, contact_id, message_id, link_index, label, reason, occurred_at, hour, ip_hash, received_at)
SELECT '${campaign}-' || i,
  CASE WHEN i % 3 = 0 THEN 'click' WHEN i % 997 = 1 THEN 'unsubscribe' ELSE 'open' END,
  '${campaign}', 'k' || (i * 7919 % ${contacts}), 'm' || (i * 7919 % ${contacts}),
  CASE WHEN i % 3 = 0 THEN (i / 3) % ${LINKS} ELSE -1 END,
  CASE WHEN i % 997 = 1 AND i % 3 <> 0 THEN '' WHEN i % 10 < 7 THEN 'human' WHEN i % 10 < 9 AND i % 3 <> 0 THEN 'privacy_proxy' ELSE 'scanner' END,
  'no_signal', ${t0} + i * ${SPAN} / ${total}, (${t0} + i * ${SPAN} / ${total}) / 3600, NULL, ${t0} + i * ${SPAN} / ${total}
FROM n`;
}

async function seed(w, campaign, total, contacts) {
  const t = Date.now();
  for (let start = 0; start < total; start += CHUNK) {
    await w.d1(seedSql(campaign, total, contacts, start, Math.min(total, start + CHUNK)));
  }
  const [{ n }] = await w.d1(`SELECT COUNT(*) AS n FROM events WHERE campaign_id = '${campaign}'`);
  if (n !== total) throw new Error(`seeded ${n} of ${total}`);
  return (Date.now() - t) / 1000;
}

async function measure(w, campaign) {
  const times = [];
  let rows;
  let body;
  for (let i = 0; i < REQUESTS; i++) {
    const t = performance.now();
    const r = await api(w, 'GET', `/v1/stats/campaigns/${campaign}`, { token: w.tokens.statsOnly });
    times.push(performance.now() - t);
    if (r.status !== 200) throw new Error(`${campaign}: ${r.status} ${r.text}`);
    rows = Number(/rows read (\d+)/.exec(r.headers.get('server-timing'))[1]);
    body = r.json;
  }
  times.sort((a, b) => a - b);
  const events = body.opens.total + body.clicks.total + body.series.reduce((s, p) => s + p.unsubscribes, 0);
  return { rows, median: times[Math.floor(times.length / 2)], p95: times[Math.floor(times.length * 0.95)], events, points: body.series.length };
}

function report(label, small, big) {
  const row = (name, m) => `  ${name.padEnd(8)} ${String(m.events).padStart(9)} events counted, ${String(m.rows).padStart(6)} D1 rows read, ${String(m.points).padStart(4)} series points, median ${m.median.toFixed(1)} ms, p95 ${m.p95.toFixed(1)} ms`;
  console.log(label);
  console.log(row('small', small));
  console.log(row('big', big));
  console.log(`  big / small: rows read ${(big.rows / small.rows).toFixed(2)}×, median latency ${(big.median / small.median).toFixed(2)}× (target ≤ 1.5×)`);
}

const w = await startWorker({ logLevel: 'log' });
try {
  const seconds = await seed(w, 'small', SMALL, 200) + await seed(w, 'big', BIG, 50_000);
  console.log(`seeded ${SMALL + BIG} events in ${seconds.toFixed(0)} s (counted by the same triggers as live events)`);
  report('before maintenance (every hour of 30 days kept hourly):', await measure(w, 'small'), await measure(w, 'big'));
  const before = w.log.length;
  if ((await fetch(`${w.url}/__scheduled`)).status !== 200) throw new Error('cron failed');
  for (let i = 0; i < 300 && !/cron: maintenance/.test(w.log.slice(before).join('')); i++) await new Promise((ok) => setTimeout(ok, 100));
  console.log(`  ${(/cron: maintenance[^\n]*/.exec(w.log.slice(before).join('')) ?? ['(no maintenance report)'])[0]}`);
  report('after maintenance (older than 48 h: one row per day):', await measure(w, 'small'), await measure(w, 'big'));
} finally {
  await w.stop();
}
