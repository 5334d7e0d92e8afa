// Campaign letters in wasm (V8, the workers' release profile): render + rewrite + MIME of a ~100 KB
// newsletter with 30 links, against lol_html alone rewriting the same document in the same module
// (the floor), the two taking turns for 9 rounds (best of each). Target: ≥ 0.9× the floor's rate.
// Run: scripts/bench.sh, or after `cargo build -p epistola-bench-wasm --release --target wasm32-unknown-unknown`.

import { loadBenchWasm, nsPerOpInterleaved } from './wasm-load.mjs';

const x = await loadBenchWasm();
// A chunk of 250 letters compiles its template once (CAMPAIGN_CHUNK), as here.
const ITERS = 250;
const [floor, full] = nsPerOpInterleaved(
  [(n) => x.lol_html_floor_loop(n), (n) => x.compose_loop(n)], ITERS, 9,
).map((ns) => ns / 1000);
console.log(`${'case (wasm in V8)'.padEnd(40)} ${'µs/email'.padStart(10)} ${'emails/s'.padStart(10)} ${'× floor'.padStart(8)}`);
for (const [name, us] of [['lol_html alone (floor)', floor], ['compose: render + rewrite + MIME', full]]) {
  console.log(`${name.padEnd(40)} ${us.toFixed(0).padStart(10)} ${(1e6 / us).toFixed(0).padStart(10)} ${(floor / us).toFixed(2).padStart(8)}`);
}
