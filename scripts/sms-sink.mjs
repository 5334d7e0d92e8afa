// A local SMS provider sink speaking the Twilio Messages API: POST
// /2010-04-01/Accounts/{account}/Messages.json with Basic auth and To/From/Body form fields answers
// 201 like the real API; GET /messages lists what arrived (for tests and the local run).
// Usage: node scripts/sms-sink.mjs PORT ACCOUNT TOKEN   (or import { startSmsSink }).

import { createServer } from 'node:http';
import { fileURLToPath } from 'node:url';

export function startSmsSink({ port = 0, account = 'AC_local', token = 'local-token' } = {}) {
  const messages = [];
  let failNext = 0;
  let answerAll = null; // e.g. 401: every request refused, as with revoked credentials
  const server = createServer((req, res) => {
    const send = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url === '/messages') return send(200, messages);
    const path = `/2010-04-01/Accounts/${account}/Messages.json`;
    if (req.method !== 'POST' || req.url !== path) return send(404, { code: 20404, message: 'not found' });
    if (answerAll) return send(answerAll, { code: 20003, message: `answering ${answerAll}` });
    const expected = 'Basic ' + Buffer.from(`${account}:${token}`).toString('base64');
    if (req.headers.authorization !== expected) return send(401, { code: 20003, message: 'authenticate' });
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        return send(503, { code: 20503, message: 'service unavailable' });
      }
      const form = new URLSearchParams(body);
      const to = form.get('To');
      if (!/^\+\d{8,15}$/.test(to ?? '')) return send(400, { code: 21211, message: `invalid 'To' number ${to}` });
      const sid = `SM${String(messages.length + 1).padStart(32, '0')}`;
      messages.push({ sid, to, from: form.get('From'), body: form.get('Body'), at: Date.now() });
      send(201, { sid, status: 'queued', to });
    });
  });
  return new Promise((ok) => {
    server.listen(port, '127.0.0.1', () => ok({
      port: server.address().port,
      account,
      token,
      messages: () => messages.slice(),
      failNext: (n) => { failNext = n; },
      answerAll: (status) => { answerAll = status; },
      stop: () => new Promise((done) => server.close(done)),
    }));
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, account, token] = process.argv.slice(2);
  const sink = await startSmsSink({ port: Number(port ?? 1081), account, token });
  console.log(`SMS sink on http://127.0.0.1:${sink.port} (GET /messages)`);
}
