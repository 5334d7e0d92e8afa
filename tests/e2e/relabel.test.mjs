// Clicks relabelled after the fact, through the real worker: every case of
// tests/vectors/relabel.json (the vectors core's reference `relabel_clicks` is tested with) is
// replayed in real time, with the consumer replaying every batch once, and the stored labels and
// reasons and every counter the stats read (totals, uniques per label and per link, the honeypot
// hits, the opens inferred from clicks, the series) must come out exactly as if each click had been
// labelled right the first time.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import { startWorker, signLinks, settledStats, pathOf, ROOT } from './harness.mjs';

const VECTORS = JSON.parse(readFileSync(join(ROOT, 'tests/vectors/relabel.json'), 'utf8'));
const CHROME = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const BROWSER = { 'user-agent': CHROME, 'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document' };
const HONEYPOT_LINK = 65535;
const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

let w;
before(async () => {
  w = await startWorker({ vars: { FAULT_REPLAY_BATCHES: '1' } });
});
after(async () => {
  await w?.stop();
});

function raw(method, path, headers) {
  return new Promise((ok, fail) => {
    // A fresh connection each time: requests seconds apart must not reuse one the server closed.
    const req = httpRequest(w.url + path, { method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => ok(res.statusCode));
    });
    req.on('error', (e) => fail(new Error(`${method} ${path}: ${e.message}`)));
    req.end();
  });
}

/** What the edge labels a vector's click as, and the request that gets that label. */
function initial(click) {
  if (click.link === 'honeypot') return { method: 'GET', label: 'scanner', reason: 'honeypot' };
  if (click.label === 'scanner') return { method: 'HEAD', label: 'scanner', reason: 'head_request' };
  return { method: 'GET', label: 'human', reason: 'no_signal' };
}

test('every relabel vector, replayed in real time, ends with the reference labels and exact counters', async () => {
  const runs = await Promise.all(VECTORS.cases.map(async (c, i) => {
    const campaign = `relabel-${i}`;
    const links = Array.from({ length: c.links }, (_, j) => `https://shop.example/p/${i}/${j}`);
    const signed = await signLinks(w, { campaign, contact: `reader-${i}`, message: `letter-${i}`, links });
    assert.ok(signed.honeypot_url, 'a message with an id gets a honeypot link');
    assert.match(signed.honeypot_html, /^<a href="[^"]+" aria-hidden="true" tabindex="-1" style="display:none!important;/);
    return { c, campaign, signed };
  }));
  const start = Date.now() + 300;
  await Promise.all(runs.flatMap(({ c, signed }) => c.clicks.map(async (click) => {
    await sleep(start + click.at * 1000 - Date.now());
    const url = click.link === 'honeypot' ? signed.honeypot_url : signed.links[click.link].tracked_url;
    const status = await raw(initial(click).method, pathOf(url), BROWSER);
    assert.equal(status, click.link === 'honeypot' ? 200 : 302, `${c.name}: the honeypot answers a page, links redirect`);
  })));

  for (const { c, campaign } of runs) {
    const n = c.clicks.length;
    const s = await settledStats(w, campaign, (s) => s.clicks.total >= n, { settleMs: 0 });
    const want = c.clicks.map((click, j) => {
      const first = initial(click);
      const index = click.link === 'honeypot' ? HONEYPOT_LINK : click.link;
      return c.relabel[j] ? { index, label: 'scanner', reason: c.relabel[j] } : { index, label: first.label, reason: first.reason };
    });
    const order = (a, b) => a.index - b.index || a.label.localeCompare(b.label) || a.reason.localeCompare(b.reason);
    const rows = await w.d1(`SELECT link_index AS "index", label, reason FROM events WHERE campaign_id = '${campaign}'`);
    assert.deepEqual(rows.sort(order), want.slice().sort(order), c.name);

    const count = (pred) => want.filter(pred).length;
    const any = (pred) => (want.some(pred) ? 1 : 0);
    const human = (x) => x.label === 'human';
    const scanner = (x) => x.label === 'scanner';
    assert.equal(s.clicks.total, n, c.name);
    assert.deepEqual([s.clicks.human.total, s.clicks.human.unique], [count(human), any(human)], `${c.name}: human clicks`);
    assert.deepEqual([s.clicks.scanner.total, s.clicks.scanner.unique], [count(scanner), any(scanner)], `${c.name}: scanner clicks`);
    assert.equal(s.clicks.unique, 1, `${c.name}: one contact clicked`);
    assert.equal(s.clicks.honeypot_hits, count((x) => x.index === HONEYPOT_LINK), `${c.name}: honeypot hits`);
    for (const link of s.clicks.links) {
      const on = (pred) => (x) => x.index === link.index && pred(x);
      assert.deepEqual(
        [link.human.total, link.human.unique, link.scanner.total, link.scanner.unique],
        [count(on(human)), any(on(human)), count(on(scanner)), any(on(scanner))],
        `${c.name}: link ${link.index}`,
      );
    }
    assert.ok(s.clicks.links.every((l) => l.index < c.links), `${c.name}: the honeypot is no link of the letter`);
    assert.equal(s.open_estimate.inferred_from_clicks, any(human), `${c.name}: only a person's click implies an open`);
    const series = s.series.reduce((t, p) => [t[0] + p.clicks.human, t[1] + p.clicks.scanner], [0, 0]);
    assert.deepEqual(series, [count(human), count(scanner)], `${c.name}: the series agrees`);
  }
  assert.match(w.log.join(''), /fault injection: replaying \d+ finished messages/, 'the consumer really replayed batches');
});

test("a honeypot hit relabels the clicks of its own letter, not the same person's other letter", async () => {
  const links = ['https://shop.example/x', 'https://shop.example/y'];
  const late = await signLinks(w, { campaign: 'honeypot-late', contact: 'pat', message: 'letter-late', links });
  const other = await signLinks(w, { campaign: 'honeypot-late', contact: 'pat', message: 'letter-other', links });
  assert.equal(await raw('GET', pathOf(late.links[0].tracked_url), BROWSER), 302);
  assert.equal(await raw('GET', pathOf(other.links[1].tracked_url), BROWSER), 302);
  assert.equal(await raw('GET', pathOf(late.honeypot_url), BROWSER), 200);
  const s = await settledStats(w, 'honeypot-late', (s) => s.clicks.total >= 3 && s.clicks.scanner.total >= 2, { settleMs: 4_000 });
  const rows = await w.d1(`SELECT message_id, link_index, label, reason FROM events WHERE campaign_id = 'honeypot-late' ORDER BY message_id, link_index`);
  assert.deepEqual(rows, [
    { message_id: 'letter-late', link_index: 0, label: 'scanner', reason: 'honeypot' },
    { message_id: 'letter-late', link_index: HONEYPOT_LINK, label: 'scanner', reason: 'honeypot' },
    { message_id: 'letter-other', link_index: 1, label: 'human', reason: 'no_signal' },
  ]);
  assert.deepEqual([s.clicks.human.total, s.clicks.human.unique, s.clicks.scanner.total, s.clicks.honeypot_hits], [1, 1, 2, 1]);
  assert.equal(s.open_estimate.inferred_from_clicks, 1, "the other letter's click is still a person's");
});
