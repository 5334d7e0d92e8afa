// A CRM's webhook receiver for the tests: checks every Standard Webhooks signature with its own
// HMAC code (node:crypto) and records what arrived.

import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

/** A CRM's webhook receiver: verifies each request, answers 500 to the first `failFirst`. */
export function startReceiver(failFirst) {
  const seen = [];
  let secret;
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      const id = req.headers['webhook-id'];
      const ts = req.headers['webhook-timestamp'];
      const key = Buffer.from(secret.slice('whsec_'.length), 'base64');
      const expected = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest();
      const valid = (req.headers['webhook-signature'] ?? '').split(' ').some((s) => {
        const tag = Buffer.from(s.replace(/^v1,/, ''), 'base64');
        return s.startsWith('v1,') && tag.length === expected.length && timingSafeEqual(tag, expected);
      });
      const fresh = Math.abs(Date.now() / 1000 - Number(ts)) < 300;
      const status = seen.length < failFirst ? 500 : valid && fresh ? 204 : 401;
      seen.push({ id, valid, fresh, status, body: JSON.parse(body) });
      res.writeHead(status).end();
    });
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok({
    url: `http://127.0.0.1:${server.address().port}/hooks`,
    setSecret: (s) => { secret = s; },
    seen: () => seen.slice(),
    stop: () => new Promise((done) => server.close(done)),
  })));
}

