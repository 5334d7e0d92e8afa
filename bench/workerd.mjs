// A `workerd serve` config for the benchmarks: the release edge worker, a JS worker that only returns
// the GIF (the runtime's floor), a plain JS pixel doing the same work, and a queue sink that counts.
// Used by bench/throughput.mjs and bench/cold-start.mjs.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = join(ROOT, 'bench/out');
export const WORKERD = join(ROOT, 'node_modules/@cloudflare/workerd-linux-64/bin/workerd');
export const vectors = JSON.parse(readFileSync(join(ROOT, 'tests/vectors/tokens.json'), 'utf8'));
export const token = (purpose) => vectors.valid.find((v) => v.claims.purpose === purpose).token;

const build = join(ROOT, 'worker/build');
const embed = (path) => relative(OUT, path);
const WORKERS = {
  epistola: `(
  modules = [
    (name = "index.js", esModule = embed "${embed(join(build, 'index.js'))}"),
    (name = "index_bg.wasm", wasm = embed "${embed(join(build, 'index_bg.wasm'))}"),
  ],
  compatibilityDate = "2026-04-01",
  bindings = [
    (name = "SIGNING_KEYS", text = "${vectors.signing_keys}"),
    (name = "IP_HASH_KEY", text = "bench-only-ip-hash-key"),
    (name = "PUBLIC_BASE_URL", text = ""),
    (name = "EVENTS", queue = "queue-sink"),
  ],
)`,
  floor: `(
  modules = [(name = "floor.js", esModule = embed "${embed(join(ROOT, 'bench/floor-worker.js'))}")],
  compatibilityDate = "2026-04-01",
)`,
  'js-equivalent': `(
  modules = [(name = "js.js", esModule = embed "${embed(join(ROOT, 'bench/js-equivalent-worker.js'))}")],
  compatibilityDate = "2026-04-01",
  bindings = [
    (name = "SIGNING_KEYS", text = "${vectors.signing_keys}"),
    (name = "EVENTS", queue = "queue-sink"),
  ],
)`,
  'queue-sink': `(
  modules = [(name = "sink.js", esModule = embed "${embed(join(ROOT, 'bench/queue-sink.js'))}")],
  compatibilityDate = "2026-04-01",
)`,
};

/**
 * Writes a config serving `sockets` ({ service name: port }); the queue sink is always there (the
 * pixels' queue binding points at it). Returns the config's path.
 */
export function writeConfig(file, sockets) {
  mkdirSync(OUT, { recursive: true });
  const names = [...new Set([...Object.keys(sockets), 'queue-sink'])];
  const ident = (name) => name.replace(/-(\w)/g, (_, c) => c.toUpperCase());
  const text = `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
${names.map((n) => `    (name = "${n}", worker = .${ident(n)}),`).join('\n')}
  ],
  sockets = [
${Object.entries(sockets).map(([n, port]) => `    (name = "${n}", address = "127.0.0.1:${port}", http = (), service = "${n}"),`).join('\n')}
  ],
);
${names.map((n) => `const ${ident(n)} :Workerd.Worker = ${WORKERS[n]};`).join('\n')}
`;
  const path = join(OUT, file);
  writeFileSync(path, text);
  return path;
}
