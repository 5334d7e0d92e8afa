// Send throughput end to end: N recipients (default 100,000) imported through the API, one
// campaign to all of them — a realistic newsletter with personalisation and tracked links —
// tested, approved, scheduled, fanned out by the cron tick and delivered by the sending worker
// under wrangler dev (local D1 and Queues) into an SMTP sink that only counts.
//
// Floor, in the same run: a plain SMTP client (Python's smtplib, bench/smtp-floor.py) sending the
// same letters (samples the sink kept) to the same sink over the same number of connections, with
// as many open at once as the workers had. Prints letters/s for both and the ratio, D1 statements
// per letter (reading, planning and claiming; outcome records apart), and the p50/p99 time from
// scheduling to SMTP acceptance.
// Run: scripts/bench.sh, or `node bench/send-throughput.mjs [letters]` after scripts/build.sh.

import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { startWorker, api, ROOT } from '../tests/e2e/harness.mjs';
import { startCountingSink } from './smtp-count-sink.mjs';
import { startProfile } from './cpu-profile.mjs';

const TOTAL = Number(process.argv[2] ?? 100_000);
// PROFILE=1: a CPU profile of the sending worker while it sends (top functions by self time).
const PROFILE = process.env.PROFILE === '1';
const INSPECTOR = 9330;
const IMPORT_BATCH = 5000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// A promotional newsletter as e-mail HTML is written: table layout, inline styles, a greeting and
// product blocks with personalisation, ten tracked links, about 14 KB.
function newsletter() {
  const products = Array.from({ length: 8 }, (_, i) => `
<tr><td style="padding:16px 24px;border-top:1px solid #eeeeee">
<table role="presentation" width="100%"><tr>
<td width="120" valign="top"><img src="https://cdn.bench.example/p/${i}.jpg" width="110" height="110" alt="Toy ${i}" style="display:block;border:0"></td>
<td valign="top" style="padding-left:16px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#222222">
<h2 style="margin:0 0 8px 0;font-size:19px">Wooden toy ${i}</h2>
<p style="margin:0 0 12px 0">Crafted from sustainably sourced beech wood and finished with water-based paints that are safe for little hands; tested to European toy safety standards.</p>
<p style="margin:0"><a href="https://shop.bench.example/toys/${i}?utm_source=newsletter&amp;utm_medium=email" class="btn" style="display:inline-block;padding:10px 18px;background:#222222;color:#ffffff;text-decoration:none;border-radius:4px">See toy ${i}</a></p>
</td></tr></table></td></tr>`).join('');
  return `<!doctype html><html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Spring picks</title></head><body style="margin:0;padding:0;background:#f4f4f4">
<table role="presentation" width="100%" style="background:#f4f4f4"><tr><td align="center">
<table role="presentation" width="600" style="background:#ffffff">
<tr><td style="padding:24px"><a href="https://shop.bench.example/"><img src="https://cdn.bench.example/logo.png" width="120" alt="Toy shop"></a></td></tr>
<tr><td style="padding:0 24px 24px 24px;font-family:Helvetica,Arial,sans-serif;font-size:18px;line-height:26px">Hello {{ contact.name | default("friend") }}, spring is here and so are new toys for {{ contact.attributes.child_age | default("every age") }}.</td></tr>
${products}
<tr><td style="padding:24px;font-family:Helvetica,Arial,sans-serif;font-size:12px;color:#666666">You get this because you subscribed at shop.bench.example. <a href="https://shop.bench.example/help">Help</a></td></tr>
</table></td></tr></table></body></html>`;
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];
}

const sink = await startCountingSink();
const w = await startWorker({
  logLevel: 'log',
  inspectorPort: PROFILE ? INSPECTOR : 0,
  vars: {
    SMTP_HOST: '127.0.0.1', SMTP_PORT: String(sink.port), SMTP_STARTTLS: 'off',
    // Every recipient is due now: no quiet hours in the way of the measurement.
    SEND_LIMITS: '{"quiet_hours": [0, 0]}',
  },
});
try {
  const token = w.tokens.marketer;
  const site = { name: 'Bench shop', allowed_origins: ['https://shop.bench.example'], from_email: 'hi@bench.example', locale: 'en',
    trigger: { product_views: 2 }, promise: { title: 'x', description: 'x', delivery: { subject: 'x', text: 'x', url: 'https://shop.bench.example/x' } },
    consents: [{ purpose: 'news', channel: 'email', version: 'n1', text: 'News', in_form: true }] };
  const s = await api(w, 'PUT', '/v1/sites/bench-shop', { token: w.tokens.sites, body: site });
  if (s.status !== 200) throw new Error(s.text);
  const consents = [{ site: 'bench-shop', purpose: 'news', channel: 'email', source: 'checkout' }];
  for (let start = 0; start < TOTAL + 1; start += IMPORT_BATCH) {
    const n = Math.min(IMPORT_BATCH, TOTAL + 1 - start);
    const contacts = Array.from({ length: n }, (_, i) => {
      const k = start + i;
      // Contact 0 is the test list, outside the campaign's segment.
      return k === 0
        ? { email: 'tester@bench.example', test_list: true, consents }
        : { email: `c${k}@bench.example`, name: `Reader ${k}`, tags: ['readers'], fields: { child_age: '3-5' }, consents };
    });
    const r = await api(w, 'POST', '/v1/contacts/import', { token, body: { contacts } });
    if (r.status !== 200 || r.json.upserted !== contacts.length) throw new Error(`import: ${r.status} ${r.text.slice(0, 300)}`);
  }
  const tpl = await api(w, 'PUT', '/v1/templates/spring-news', { token, body: { name: 'Spring', subject: 'Spring picks for {{ contact.name | default("you") }}', html: newsletter(), text: 'Hello {{ contact.name }}: https://shop.bench.example/' } });
  if (tpl.status !== 200) throw new Error(tpl.text);
  const body = { name: 'Spring newsletter', site: 'bench-shop', template: 'spring-news', purpose: 'news', segment: { tag: 'readers' } };
  for (const [method, path, tok, b] of [['PUT', '/v1/campaigns/spring-2027', token, body], ['POST', '/v1/campaigns/spring-2027/test', token],
    ['POST', '/v1/campaigns/spring-2027/approve', w.tokens.approver, { confirm_audience: TOTAL + 1 }]]) {
    const r = await api(w, method, path, { token: tok, body: b });
    if (r.status >= 300) throw new Error(`${path}: ${r.status} ${r.text}`);
  }
  for (let i = 0; i < 50 && sink.accepted.length < 1; i++) await sleep(100); // the test letter
  sink.reset();
  const logFrom = w.log.length;
  const profile = PROFILE ? await startProfile(INSPECTOR, 'epistola-sender') : null;
  const t0 = Date.now();
  const sched = await api(w, 'POST', '/v1/campaigns/spring-2027/schedule', { token: w.tokens.approver });
  if (sched.status !== 200) throw new Error(sched.text);
  // The cron would tick every minute; tick every second so the fan-out is not what is measured.
  let lastCount = -1;
  let stalled = 0;
  while (sink.accepted.length < TOTAL) {
    const r = await fetch(`${w.url}/__scheduled`);
    if (r.status !== 200) throw new Error(`tick ${r.status}`);
    await sleep(1000);
    stalled = sink.accepted.length === lastCount ? stalled + 1 : 0;
    lastCount = sink.accepted.length;
    if (stalled > 120) throw new Error(`stalled at ${lastCount} of ${TOTAL} letters`);
  }
  const seconds = (Math.max(...sink.accepted) - t0) / 1000;
  const latencies = sink.accepted.map((t) => (t - t0) / 1000).sort((a, b) => a - b);
  const { connections, maxOpen } = sink.stats();
  if (profile) console.log(JSON.stringify(await profile(), null, 1));
  await sleep(2000);
  let statements = 0;
  let outcomeStatements = 0;
  let chunks = 0;
  for (const m of w.log.slice(logFrom).join('').matchAll(/chunk spring-2027: (\d+) recipients, (\d+) sent, (\d+) statements, (\d+) outcome statements/g)) {
    chunks++;
    statements += Number(m[3]);
    outcomeStatements += Number(m[4]);
  }
  // The same letters through a plain client, same sink, same connections and parallelism.
  const dir = mkdtempSync(join(tmpdir(), 'epistola-floor-'));
  sink.samples.forEach((m, i) => writeFileSync(join(dir, `${String(i).padStart(3, '0')}.eml`), m, 'latin1'));
  const bytes = sink.samples.reduce((n, m) => n + m.length, 0) / Math.max(1, sink.samples.length);
  sink.reset();
  const { stdout } = await promisify(execFile)('python3', [join(ROOT, 'bench/smtp-floor.py'), String(sink.port), dir, String(TOTAL), String(connections), String(maxOpen)]);
  rmSync(dir, { recursive: true, force: true });
  const floor = JSON.parse(stdout);
  const rate = TOTAL / seconds;
  const floorRate = floor.letters / floor.seconds;
  console.log(`letters: ${TOTAL} of ${(bytes / 1024).toFixed(1)} KB each over ${connections} SMTP connections, at most ${maxOpen} at once`);
  console.log(`| | letters/s | × floor |`);
  console.log(`|---|---:|---:|`);
  console.log(`| floor: smtplib, same letters, sink, connections | ${floorRate.toFixed(0)} | 1.00 |`);
  console.log(`| Epistola: schedule → fan-out → plan → claim → compose → SMTP → record | ${rate.toFixed(0)} | ${(rate / floorRate).toFixed(2)} |`);
  console.log(`targets: ≥ 0.5× the floor, ≥ 278 letters/s (a million an hour): ${rate / floorRate >= 0.5 ? 'met' : 'MISSED'}, ${rate >= 278 ? 'met' : 'MISSED'}`);
  console.log(`D1 statements per letter: ${(statements / TOTAL).toFixed(3)} reading, planning and claiming (target ≤ 0.05), ${(outcomeStatements / TOTAL).toFixed(3)} recording outcomes; ${chunks} chunks`);
  console.log(`schedule → SMTP acceptance: first ${latencies[0].toFixed(1)} s, p50 ${percentile(latencies, 50).toFixed(1)} s, p99 ${percentile(latencies, 99).toFixed(1)} s, last ${seconds.toFixed(1)} s`);
  const steady = (0.8 * TOTAL) / (percentile(latencies, 90) - percentile(latencies, 10));
  console.log(`steady rate (10th to 90th percentile letter): ${steady.toFixed(0)} letters/s = ${(steady / floorRate).toFixed(2)} × floor`);
} finally {
  await w.stop();
  await sink.stop();
}
