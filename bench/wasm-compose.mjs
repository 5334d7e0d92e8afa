// Campaign letters in wasm (V8, the workers' release profile): render + rewrite + MIME of a ~100 KB
// newsletter with 30 links, against lol_html alone rewriting the same document in the same module
// (the floor). Target: ≥ 50 % of the floor's rate.
// Run: scripts/bench.sh, or after `cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown`.

import { readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const wasm = readFileSync(join(ROOT, 'target/wasm32-unknown-unknown/release/epistola_bench_wasm.wasm'));
// mail-builder links web-time's JS clock import; letters get their date passed in, so nothing may
// call an import: each stub throws, which would fail the benchmark loudly.
const module = await WebAssembly.compile(wasm);
const imports = {};
for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
  if (kind !== 'function') throw new Error(`unexpected ${kind} import ${m}.${name}`);
  (imports[m] ??= {})[name] = () => { throw new Error(`wasm called the import ${m}.${name}`); };
}
const instance = await WebAssembly.instantiate(module, imports);
const x = instance.exports;
const ITERS = 100;

function usPerOp(fn) {
  fn(ITERS / 10); // warm-up: let V8 tier up
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = process.hrtime.bigint();
    const done = fn(ITERS);
    const us = Number(process.hrtime.bigint() - t) / 1000 / ITERS;
    if (done !== ITERS) throw new Error(`only ${done} of ${ITERS} operations succeeded`);
    best = Math.min(best, us);
  }
  return best;
}

const floor = usPerOp((n) => x.lol_html_floor_loop(n));
const full = usPerOp((n) => x.compose_loop(n));
console.log(`${'case (wasm in V8)'.padEnd(40)} ${'µs/email'.padStart(10)} ${'emails/s'.padStart(10)} ${'× floor'.padStart(8)}`);
for (const [name, us] of [['lol_html alone (floor)', floor], ['compose: render + rewrite + MIME', full]]) {
  console.log(`${name.padEnd(40)} ${us.toFixed(0).padStart(10)} ${(1e6 / us).toFixed(0).padStart(10)} ${(floor / us).toFixed(2).padStart(8)}`);
}
