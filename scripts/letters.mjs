// The letters in the local mail sink, each opened as a page of its own (for scripts/dev.sh).
// maildev's viewer shows a letter in a sandboxed frame that may neither open a new tab nor submit
// a form, and Epistola's pages refuse to be framed: a "Confirm" followed there shows a browser
// error. Opened here, a letter is the top-level page, as in a mail client, and its links work.
// Usage: node scripts/letters.mjs PORT MAILDEV_WEB_URL
import { createServer } from 'node:http';

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function serveLetters(port, maildev, host = '127.0.0.1') {
  const server = createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    try {
      const one = /^\/letters\/([A-Za-z0-9_-]+)$/.exec(path);
      if (one) {
        const r = await fetch(`${maildev}/api/email/${one[1]}/html`);
        if (!r.ok) throw new Error(`maildev answered ${r.status}`);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
        res.end(await r.text());
        return;
      }
      if (path !== '/') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
        return;
      }
      const mails = await (await fetch(`${maildev}/api/email?limit=50`)).json();
      const list = (Array.isArray(mails) ? mails : mails.emails ?? mails.items ?? mails.data ?? [])
        .slice().sort((a, b) => Date.parse(b.time ?? b.date ?? 0) - Date.parse(a.time ?? a.date ?? 0));
      const rows = list.map((m) => `<li><a href="/letters/${esc(m.id)}">${esc(m.subject || '(no subject)')}</a>
 <small>to ${esc((m.to ?? []).map((t) => t.address).join(', '))} · ${esc(String(m.time ?? m.date ?? '').replace('T', ' ').replace(/\.\d+Z$/, ' UTC'))}</small></li>`).join('');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(`<!doctype html><html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>Letters</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem}li{margin:.5rem 0}</style>
<h1>Letters in the local mail sink</h1><p>Newest first. Each opens as its own page, so its links work as in a mail client.
Also in <a href="${esc(maildev)}">maildev</a>.</p><ul>${rows || '<li>No letters yet.</li>'}</ul></html>`);
    } catch (e) {
      res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' }).end(`the mail sink did not answer: ${e.message}`);
    }
  });
  return new Promise((ok) => server.listen(port, host, () => ok(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [port, maildev] = process.argv.slice(2);
  await serveLetters(Number(port), maildev);
}
