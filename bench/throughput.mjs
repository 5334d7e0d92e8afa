// Pixel and click throughput of the release worker under bare `workerd serve` (no wrangler proxy),
// compared in the same run with a JS worker that only returns the GIF: the runtime's floor.
//
// Run: scripts/bench.sh (or `node bench/throughput.mjs [seconds]` after scripts/build.sh).
// Load comes from wrk on loopback; each case runs `rounds` times, interleaved, best round kept.

import { spawn, execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WORKERD, token, vectors, writeConfig } from './workerd.mjs';

const SECONDS = Number(process.argv[2] ?? 10);
const ROUNDS = 3;
const CONNECTIONS = 32;
const configPath = writeConfig('workerd.capnp', { epistola: 9181, floor: 9182, 'queue-sink': 9183, 'js-equivalent': 9184 });

const workerd = spawn(WORKERD, ['serve', configPath, '--experimental'], { stdio: ['ignore', 'inherit', 'pipe'] });
// Every failed enqueue is logged by the worker; count them instead of flooding the terminal.
let enqueueFailures = 0;
let lastFailure = '';
workerd.stderr.on('data', (d) => {
  for (const line of String(d).split('\n')) {
    if (line.includes('not enqueued')) {
      enqueueFailures++;
      lastFailure = line;
    } else if (line.trim()) process.stderr.write(line + '\n');
  }
});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const stop = () => workerd.kill('SIGTERM');
process.on('exit', stop);

async function waitUp(url) {
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(url, { redirect: 'manual' });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`workerd did not answer ${url}`);
}

const ua = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
function wrk(url) {
  const out = execFileSync('wrk', ['-t1', `-c${CONNECTIONS}`, `-d${SECONDS}s`, '--latency', '-H', `User-Agent: ${ua}`,
    '-H', 'Sec-Fetch-Mode: navigate', '-H', 'CF-Connecting-IP: 198.51.100.7', url], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const total = Number(/(\d+) requests in/.exec(out)[1]);
  const p99 = /99%\s+([\d.]+\w+)/.exec(out)?.[1] ?? '?';
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const errors = /Socket errors:.*/.exec(out)?.[0];
  return { rps, p99, non2xx, errors, total };
}

const cases = {
  'floor: JS GIF only': 'http://127.0.0.1:9182/o/x.gif',
  'epistola pixel (verify + classify + enqueue)': `http://127.0.0.1:9181/o/${token('open')}.gif`,
  'JS-equivalent pixel (verify + enqueue)': `http://127.0.0.1:9184/o/${token('open')}.gif`,
  'epistola click (verify + classify + enqueue, 302)': `http://127.0.0.1:9181/c/${token('click')}`,
  'epistola pixel, forged token (verify only)': `http://127.0.0.1:9181/o/${vectors.invalid[0].token}.gif`,
};

await waitUp('http://127.0.0.1:9182/');
await waitUp('http://127.0.0.1:9181/healthz');
// Sanity: the worker under test really answers what the contract says.
const px = await fetch(cases['epistola pixel (verify + classify + enqueue)']);
if (px.status !== 200 || (await px.arrayBuffer()).byteLength !== 43) throw new Error('pixel is not the GIF');
const cl = await fetch(cases['epistola click (verify + classify + enqueue, 302)'], { redirect: 'manual' });
if (cl.status !== 302) throw new Error(`click answered ${cl.status}`);

// Warm-up: let V8 tier up every path before anything is measured.
for (const url of Object.values(cases)) {
  for (let i = 0; i < 500; i++) await (await fetch(url, { redirect: 'manual' })).arrayBuffer();
}
const best = {};
let recorded = 0; // requests that must each have produced one enqueue
const sinkCount = async () => (await fetch('http://127.0.0.1:9183/count')).json();
const sinkBefore = await sinkCount();
// CPU time of the workerd process (all its workers, the queue sink too), in ms: Linux clock ticks.
const TICK_MS = 1000 / Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }));
const cpuMs = () => {
  const fields = readFileSync(`/proc/${workerd.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS; // utime + stime
};
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, url] of Object.entries(cases)) {
    const cpuBefore = cpuMs();
    const r = wrk(url);
    r.cpuUs = ((cpuMs() - cpuBefore) * 1000) / r.total;
    if (/^(epistola pixel \(|epistola click|JS-equivalent)/.test(name)) recorded += r.total;
    if (!best[name] || r.rps > best[name].rps) best[name] = r;
  }
}
await sleep(2000); // let the last waitUntil sends finish
const sinkAfter = await sinkCount();
const enqueued = sinkAfter.received - sinkBefore.received;
const sends = sinkAfter.sends - sinkBefore.sends;
stop();
const floor = best['floor: JS GIF only'].rps;
console.log(`\nbare workerd, wrk -t1 -c${CONNECTIONS} -d${SECONDS}s, best of ${ROUNDS} interleaved rounds`);
console.log(`${'case'.padEnd(52)} ${'req/s'.padStart(9)} ${'p99'.padStart(9)} ${'× floor'.padStart(8)} ${'CPU µs/req'.padStart(11)}`);
for (const [name, r] of Object.entries(best)) {
  const bad = r.non2xx && !name.includes('click') ? `  (${r.non2xx} non-2xx/3xx!)` : '';
  console.log(`${name.padEnd(52)} ${r.rps.toFixed(0).padStart(9)} ${r.p99.padStart(9)} ${(r.rps / floor).toFixed(2).padStart(8)} ${r.cpuUs.toFixed(0).padStart(11)}${bad}`);
}
console.log(`\nqueue sink received ${enqueued} events in ${sends} sends (${(enqueued / sends).toFixed(1)} per send) for ${recorded} genuine pixel/click requests (plus warm-up); ${enqueueFailures} enqueue failures logged`);
if (enqueueFailures) console.log(`last failure: ${lastFailure}`);
