// Campaign letters in wasm (V8, the workers' release profile): render + rewrite + MIME of a ~100 KB
// newsletter with 30 links, against lol_html alone rewriting the same document in the same module
// (the floor). Target: ≥ 50 % of the floor's rate.
// Run: scripts/bench.sh, or after `cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown`.

import { loadBenchWasm, nsPerOp } from './wasm-load.mjs';

const x = await loadBenchWasm();
const ITERS = 100;
const usPerOp = (fn) => nsPerOp(fn, ITERS) / 1000;

const floor = usPerOp((n) => x.lol_html_floor_loop(n));
const full = usPerOp((n) => x.compose_loop(n));
console.log(`${'case (wasm in V8)'.padEnd(40)} ${'µs/email'.padStart(10)} ${'emails/s'.padStart(10)} ${'× floor'.padStart(8)}`);
for (const [name, us] of [['lol_html alone (floor)', floor], ['compose: render + rewrite + MIME', full]]) {
  console.log(`${name.padEnd(40)} ${us.toFixed(0).padStart(10)} ${(1e6 / us).toFixed(0).padStart(10)} ${(floor / us).toFixed(2).padStart(8)}`);
}
