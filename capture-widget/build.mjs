// Builds the widget: minified dist/w.js plus dist/w.js.etag, and enforces the size budget
// (4 KiB gzip for the whole widget). Run: node capture-widget/build.mjs
import { build } from 'esbuild';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const BUDGET = 4096;
const out = join(here, 'dist/w.js');
mkdirSync(dirname(out), { recursive: true });
await build({
  entryPoints: [join(here, 'src/widget.js')],
  outfile: out,
  bundle: false,
  minify: true,
  target: 'es2020',
  legalComments: 'none',
  logLevel: 'warning',
});
const code = readFileSync(out);
writeFileSync(`${out}.etag`, createHash('sha256').update(code).digest('hex').slice(0, 20));
const gz = gzipSync(code, { level: 9 }).length;
console.log(`widget w.js: ${code.length} bytes, ${gz} bytes gzip (budget ${BUDGET})`);
if (gz > BUDGET) {
  console.error(`the widget is ${gz - BUDGET} bytes over its ${BUDGET}-byte gzip budget`);
  process.exit(1);
}
