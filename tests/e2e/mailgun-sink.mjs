// A local stand-in for Mailgun's sending API: POST /v3/{domain}/messages.mime with Basic auth
// (api:KEY) and multipart fields `to` and `message` (the raw MIME file). `failNext(n)` answers the
// next n requests with 503, as a provider outage would; `answerAll(status)` answers every request
// with that status (e.g. 401, as after a revoked key) until `answerAll(null)`.

import { createServer } from 'node:http';

export function startMailgunSink({ domain = 'mg.test', key = 'key-test' } = {}) {
  const messages = [];
  let failNext = 0;
  let answerAll = null;
  let attempts = 0;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (d) => chunks.push(d));
    req.on('end', async () => {
      const send = (status, body) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== `/v3/${domain}/messages.mime`) return send(404, { message: 'not found' });
      if (req.headers.authorization !== 'Basic ' + Buffer.from(`api:${key}`).toString('base64')) return send(401, { message: 'Forbidden' });
      attempts++;
      if (answerAll) return send(answerAll, { message: `answering ${answerAll}` });
      if (failNext > 0) {
        failNext--;
        return send(503, { message: 'try later' });
      }
      const form = await new Response(Buffer.concat(chunks), { headers: { 'content-type': req.headers['content-type'] } }).formData();
      const file = form.get('message');
      messages.push({ to: form.get('to'), mime: typeof file === 'string' ? file : await file.text() });
      send(200, { id: `<${messages.length}@${domain}>`, message: 'Queued. Thank you.' });
    });
  });
  return new Promise((ok) => {
    server.listen(0, '127.0.0.1', () => ok({
      url: `http://127.0.0.1:${server.address().port}`,
      domain,
      key,
      messages: () => messages.slice(),
      attempts: () => attempts,
      failNext: (n) => { failNext = n; },
      answerAll: (status) => { answerAll = status; },
      stop: () => new Promise((done) => server.close(done)),
    }));
  });
}
