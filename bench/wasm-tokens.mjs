// Token sign/verify in wasm (V8, the worker's release profile), against a bare HMAC-SHA256 of the
// same length in the same wasm module (the floor) and Node's native HMAC for reference.
// Run: scripts/bench.sh, or after `cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown`.

import { readFileSync } from 'node:fs';
import { createHmac } from 'node:crypto';
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
const ITERS = 100_000;

function nsPerOp(fn) {
  fn(ITERS / 10); // warm-up: let V8 tier up
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const t = process.hrtime.bigint();
    const done = fn(ITERS);
    const ns = Number(process.hrtime.bigint() - t) / ITERS;
    if (done !== ITERS) throw new Error(`only ${done} of ${ITERS} operations succeeded`);
    best = Math.min(best, ns);
  }
  return best;
}

console.log(`${'case (wasm in V8)'.padEnd(28)} ${'token B'.padStart(8)} ${'ns/op'.padStart(9)} ${'× floor'.padStart(8)}`);
for (const [name, click] of [['open', 0], ['click', 1]]) {
  const len = x.token_len(click);
  const floor = nsPerOp((n) => x.hmac_floor_loop(click, n));
  const verify = nsPerOp((n) => x.verify_loop(click, n));
  const sign = nsPerOp((n) => x.sign_loop(click, n));
  const body = Buffer.alloc(Math.floor((len * 3) / 4) - 16, 0x5a);
  const node = nsPerOp((n) => {
    for (let i = 0; i < n; i++) createHmac('sha256', Buffer.alloc(32, 7)).update(body).digest();
    return n;
  });
  const row = (c, ns, f = floor) => console.log(`${c.padEnd(28)} ${String(len).padStart(8)} ${ns.toFixed(0).padStart(9)} ${(ns / f).toFixed(2).padStart(8)}`);
  row(`hmac floor (${name})`, floor);
  row(`verify ${name}`, verify);
  row(`sign ${name}`, sign);
  row(`node:crypto hmac (${name})`, node);
}
