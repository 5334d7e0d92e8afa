// Token sign/verify in wasm (V8, the worker's release profile), against a bare HMAC-SHA256 of the
// same length in the same wasm module (the floor) and Node's native HMAC for reference.
// Run: scripts/bench.sh, or after `cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown`.

import { createHmac } from 'node:crypto';
import { loadBenchWasm, nsPerOp as timed } from './wasm-load.mjs';

const x = await loadBenchWasm();
const ITERS = 100_000;
const nsPerOp = (fn) => timed(fn, ITERS);

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
