// A tiny static server for the demo shop and the browser-test fixtures: serves DIR on PORT and
// replaces {{WORKER}} in HTML with the worker's URL, so the same pages work on any port.
// Usage: node scripts/static-server.mjs DIR PORT WORKER_URL
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { extname, join, normalize, resolve } from 'node:path';

export function serveStatic(dir, port, workerUrl, host = '127.0.0.1') {
  const root = resolve(dir);
  const types = { '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'application/javascript', '.svg': 'image/svg+xml' };
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    const file = normalize(join(root, path === '/' ? 'index.html' : path));
    if (!file.startsWith(root)) {
      res.writeHead(403).end();
      return;
    }
    try {
      let body = await readFile(file);
      if (extname(file) === '.html') body = Buffer.from(String(body).replaceAll('{{WORKER}}', workerUrl));
      res.writeHead(200, { 'content-type': types[extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  return new Promise((ok) => server.listen(port, host, () => ok(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [dir, port, workerUrl] = process.argv.slice(2);
  await serveStatic(dir, Number(port), workerUrl);
  console.log(`demo site on http://127.0.0.1:${port} (widget from ${workerUrl})`);
}
