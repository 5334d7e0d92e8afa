// Cold start of the edge worker under bare `workerd serve`: from spawning workerd to the first
// answered pixel (wasm compile + instantiate + the first request), against the JS worker that only
// returns the GIF started the same way (workerd's own start-up), interleaved, median of 7 each.
// Target: Epistola's first pixel ≤ 100 ms after workerd starts, i.e. (Epistola − floor) ≤ 100 ms.
//
// Run: scripts/bench.sh (or `node bench/cold-start.mjs` after scripts/build.sh).

import { spawn } from 'node:child_process';
import { WORKERD, token, writeConfig } from './workerd.mjs';

const RUNS = 7;
const PORT = 9191;
const cases = {
  'floor: JS GIF only': { service: 'floor', path: '/o/x.gif' },
  'Epistola edge worker, first pixel': { service: 'epistola', path: `/o/${token('open')}.gif` },
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Milliseconds from spawning workerd to the first 200 on `path`. */
async function coldStart({ service, path }) {
  const config = writeConfig(`cold-${service}.capnp`, { [service]: PORT });
  const started = performance.now();
  const workerd = spawn(WORKERD, ['serve', config, '--experimental'], { stdio: 'ignore' });
  try {
    for (;;) {
      try {
        const r = await fetch(`http://127.0.0.1:${PORT}${path}`, { headers: { 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0.0.0' } });
        await r.arrayBuffer();
        if (r.status === 200) return performance.now() - started;
        throw new Error(`${service} answered ${r.status}`);
      } catch (e) {
        if (!String(e.cause?.code ?? e.message).includes('ECONNREFUSED')) throw e;
        if (performance.now() - started > 20_000) throw new Error(`${service} never answered`);
        await sleep(2);
      }
    }
  } finally {
    workerd.kill('SIGKILL');
    await new Promise((r) => workerd.once('exit', r));
  }
}

const times = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
for (let run = 0; run < RUNS; run++) {
  for (const [name, c] of Object.entries(cases)) times[name].push(await coldStart(c));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const floor = median(times['floor: JS GIF only']);
console.log(`workerd spawn → first 200, median of ${RUNS} interleaved runs`);
console.log(`${'case'.padEnd(40)} ${'median'.padStart(9)} ${'min'.padStart(9)} ${'− floor'.padStart(9)}`);
for (const [name, xs] of Object.entries(times)) {
  const m = median(xs);
  console.log(`${name.padEnd(40)} ${m.toFixed(0).padStart(7)}ms ${Math.min(...xs).toFixed(0).padStart(7)}ms ${(m - floor).toFixed(0).padStart(7)}ms`);
}
