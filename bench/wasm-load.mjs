// Loads the benchmark module (`cargo build -p epistola-bench-wasm --release --target
// wasm32-unknown-unknown`) and a best-of-5 timer, for bench/wasm-*.mjs.

import { readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export async function loadBenchWasm() {
  const wasm = readFileSync(join(ROOT, 'target/wasm32-unknown-unknown/release/epistola_bench_wasm.wasm'));
  // mail-builder links web-time's JS clock import; letters get their date passed in, so nothing
  // may call an import: each stub throws, which would fail the benchmark loudly.
  const module = await WebAssembly.compile(wasm);
  const imports = {};
  for (const { module: m, name, kind } of WebAssembly.Module.imports(module)) {
    if (kind !== 'function') throw new Error(`unexpected ${kind} import ${m}.${name}`);
    (imports[m] ??= {})[name] = () => { throw new Error(`wasm called the import ${m}.${name}`); };
  }
  return (await WebAssembly.instantiate(module, imports)).exports;
}

/** Best of 5 rounds of `fn(iters)` (which returns how many operations succeeded), in ns per op. */
export function nsPerOp(fn, iters) {
  return nsPerOpInterleaved([fn], iters)[0];
}

/**
 * Best of `rounds` rounds of each `fn(iters)`, in ns per op, with the cases taking turns round by
 * round: a noisy neighbour then slows every case alike and the ratios between them stay honest.
 */
export function nsPerOpInterleaved(fns, iters, rounds = 5) {
  for (const fn of fns) fn(Math.max(1, iters / 10)); // warm-up: let V8 tier up
  const best = fns.map(() => Infinity);
  for (let round = 0; round < rounds; round++) {
    fns.forEach((fn, i) => {
      const t = process.hrtime.bigint();
      const done = fn(iters);
      const ns = Number(process.hrtime.bigint() - t) / iters;
      if (done !== iters) throw new Error(`only ${done} of ${iters} operations succeeded`);
      best[i] = Math.min(best[i], ns);
    });
  }
  return best;
}
