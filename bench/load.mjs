// Bounded load test of the whole events pipeline: pixel, click and capture requests at a fixed
// open-loop rate against both workers under `wrangler dev` (workerd with local D1 and Queues: the
// same runtime as production, plus the storage the count check needs), then a count check after the
// queue drains: every answered pixel and click must be in the rollups, every accepted capture in D1.
//
// Ramp: 10 s trials at rising rates; the highest with no error and p99 under 250 ms is run for 60 s
// (one step lower if it does not hold that long). Every answered request, at every rate, must be
// counted; an error (e.g. 503 "try again") is reported, and the count check shows nothing was
// half-written for it.
// Run: `node bench/load.mjs [seconds, default 60]` after scripts/build.sh.

import { startSendingSystem, api, signLinks, stats, DEMO_SITE } from '../tests/e2e/harness.mjs';

const SECONDS = Number(process.argv[2] ?? 60);
const RATES = [200, 400, 800, 1200, 1600];
const MIX = [['pixel', 0.7], ['click', 0.25], ['capture', 0.05]];
const PERSON = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const ORIGIN = DEMO_SITE.allowed_origins[0];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const { w, mail } = await startSendingSystem({ vars: { FAULT_REPLAY_BATCHES: '0' } });
let captureSeq = 0;
try {
  const messages = [];
  for (let i = 0; i < 200; i++) {
    messages.push(await signLinks(w, { campaign: 'load', contact: `k${i}`, links: [`https://shop.example/p/${i % 10}`] }));
  }
  const request = (kind, n) => {
    const m = messages[n % messages.length];
    const headers = { 'user-agent': PERSON, 'cf-connecting-ip': `198.51.${(n >> 8) & 255}.${n & 255}` };
    if (kind === 'pixel') return { url: m.pixel_url, init: { headers }, ok: 200 };
    if (kind === 'click') return { url: m.links[0].tracked_url, init: { headers: { ...headers, 'sec-fetch-mode': 'navigate' }, redirect: 'manual' }, ok: 302 };
    const seq = captureSeq++;
    return {
      url: `${w.url}/v1/capture`,
      init: {
        method: 'POST',
        headers: { ...headers, 'content-type': 'text/plain', origin: ORIGIN, 'cf-connecting-ip': `203.0.${(seq >> 8) & 255}.${seq & 255}` },
        body: JSON.stringify({ site: 'demo', email: `load${seq}@example.com`, consents: [{ purpose: 'birthday_coupon', channel: 'email', text_version: 'bc-2026-11' }] }),
      },
      ok: 202,
    };
  };

  /** Open-loop load: `rate` requests per second for `seconds`, whatever the answers take. */
  async function run(rate, seconds) {
    const latencies = [];
    const sent = { pixel: 0, click: 0, capture: 0 };
    const errors = [];
    const inflight = [];
    const start = performance.now();
    const total = rate * seconds;
    for (let i = 0; i < total; i++) {
      const due = start + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      let r = (i * 0.618033988749895) % 1; // a low-discrepancy walk through the mix
      const kind = MIX.find(([, share]) => (r -= share) < 0)?.[0] ?? 'pixel';
      const req = request(kind, i);
      const t0 = performance.now();
      inflight.push(fetch(req.url, req.init).then(async (res) => {
        await res.arrayBuffer();
        latencies.push(performance.now() - t0);
        if (res.status === req.ok) sent[kind]++;
        else errors.push(`${kind} ${res.status}`);
      }, (e) => errors.push(`${kind} ${e.message}`)));
    }
    await Promise.all(inflight);
    const elapsed = (performance.now() - start) / 1000;
    latencies.sort((a, b) => a - b);
    const q = (p) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
    return { rate, achieved: total / elapsed, sent, errors, p50: q(0.5), p99: q(0.99), max: latencies.at(-1) };
  }

  const show = (r) => `${r.rate} req/s offered, ${r.achieved.toFixed(0)} achieved; p50 ${r.p50.toFixed(1)} ms, p99 ${r.p99.toFixed(1)} ms, max ${r.max.toFixed(0)} ms; errors ${r.errors.length}`;
  const totals = { pixel: 0, click: 0, capture: 0 };
  const add = (r) => { for (const k of Object.keys(totals)) totals[k] += r.sent[k]; };
  const sustained = (r, rate) => !r.errors.length && r.p99 <= 250 && r.achieved >= rate * 0.95;
  let passed = -1;
  for (let i = 0; i < RATES.length; i++) {
    const r = await run(RATES[i], 10);
    add(r);
    console.log(`trial: ${show(r)}`);
    if (!sustained(r, RATES[i])) break;
    passed = i;
  }
  // The full run at the highest rate that passed its trial; if it does not hold for the whole run,
  // one step down.
  let main;
  for (let i = Math.max(passed, 0); i >= 0; i--) {
    main = await run(RATES[i], SECONDS);
    add(main);
    console.log(`load: ${SECONDS} s at ${show(main)}${sustained(main, RATES[i]) ? ' — sustained' : ' — not sustained'}`);
    if (main.errors.length) console.log(`  first errors: ${main.errors.slice(0, 5).join('; ')}`);
    if (sustained(main, RATES[i]) || i === 0 || i < passed - 1) break;
  }

  // Count check after the queue drains.
  const t0 = Date.now();
  let s;
  for (;;) {
    s = await stats(w, 'load');
    if (s.opens.total >= totals.pixel && s.clicks.total >= totals.click) break;
    if (Date.now() - t0 > 180_000) break;
    await sleep(1000);
  }
  const [{ n: captures }] = await w.d1(`SELECT COUNT(*) AS n FROM captures WHERE site_id = 'demo'`);
  console.log(`drained in ${((Date.now() - t0) / 1000).toFixed(0)} s: opens ${s.opens.total}/${totals.pixel}, clicks ${s.clicks.total}/${totals.click}, captures ${captures}/${totals.capture} (counted/answered)`);
  const exact = s.opens.total === totals.pixel && s.clicks.total === totals.click && captures === totals.capture;
  console.log(exact ? 'count check: every answered request is counted exactly once' : 'count check FAILED');
  if (!exact) process.exitCode = 1;
} finally {
  await w.stop();
  mail.stop();
}
