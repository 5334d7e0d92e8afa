// The sending worker's tick is internal: the edge never forwards `/internal/*`, and the sending
// worker itself refuses a tick without the edge's signed, minute-long proof — so a routing mistake
// (or anything else that reaches it) cannot run it. Here the sending worker answers on the port.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startWorker, TOKEN_VECTORS } from './harness.mjs';

test('the tick needs the signed proof, even behind the service binding', async () => {
  const edge = await startWorker();
  try {
    const outside = await fetch(`${edge.url}/internal/tick`, { method: 'POST' });
    assert.equal(outside.status, 404, 'the edge has no such route');
    assert.equal((await fetch(`${edge.url}/__scheduled`)).status, 200);
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(!edge.log.join('').includes('sender tick answered'), `the cron with its proof is accepted: ${edge.log.join('')}`);
  } finally {
    await edge.stop();
  }
  const sender = await startWorker({ senderFirst: true });
  try {
    const bare = await fetch(`${sender.url}/internal/tick`, { method: 'POST' });
    assert.equal(bare.status, 401, await bare.text());
    // A token of another purpose (an open pixel's), however genuine, is no proof.
    const open = TOKEN_VECTORS.valid.find((v) => v.claims.purpose === 'open').token;
    const wrong = await fetch(`${sender.url}/internal/tick`, { method: 'POST', headers: { 'x-epistola-tick': open } });
    assert.equal(wrong.status, 401);
    assert.equal((await sender.d1("SELECT COUNT(*) AS n FROM daily_jobs"))[0].n, 0, 'no tick ran');
  } finally {
    await sender.stop();
  }
});

test('scripts/create-token.sh: every documented scope, and --revoke', async () => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const { ROOT, api } = await import('./harness.mjs');
  const run = promisify(execFile);
  const w = await startWorker();
  try {
    const env = { ...process.env, EPISTOLA_PERSIST_TO: w.persist };
    const all = 'track:sign stats:read sites:write contacts:read contacts:write campaigns:write campaigns:approve events:write webhooks:write';
    const { stdout } = await run(`${ROOT}/scripts/create-token.sh`, ['CRM sync', all], { env, cwd: ROOT });
    const id = /id: +(\S+)/.exec(stdout)[1];
    const token = /token: +(\S+)/.exec(stdout)[1];
    // The token works through the real API, with scopes beyond the two the script once knew.
    const hooks = await api(w, 'GET', '/v1/webhook-endpoints', { token });
    assert.equal(hooks.status, 200, hooks.text);
    await assert.rejects(run(`${ROOT}/scripts/create-token.sh`, ['x', 'admin:everything'], { env, cwd: ROOT }), /unknown scope/);
    // A dashboard session opened with it: a signed id in the cookie, never the token.
    const signIn = (t, ip = '192.0.2.10') => fetch(`${w.url}/dashboard/session`, {
      method: 'POST', redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin', 'cf-connecting-ip': ip },
      body: `token=${encodeURIComponent(t)}`,
    });
    const session = await signIn(token);
    assert.equal(session.status, 303);
    const cookie = session.headers.get('set-cookie').split(';')[0];
    assert.ok(!cookie.includes(token), 'the API token never goes into the cookie');
    const signedIn = async (c) => !(await (await fetch(`${w.url}/dashboard`, { headers: { cookie: c } })).text()).includes('id="token"');
    assert.ok(await signedIn(cookie), 'the session works');
    assert.ok(!(await signedIn(`epistola_session=${token}`)), 'the raw API token is no session');
    assert.ok(!(await signedIn(cookie.slice(0, -3) + 'AAA')), 'a tampered session is none');

    const revoked = await run(`${ROOT}/scripts/create-token.sh`, ['--revoke', id], { env, cwd: ROOT });
    assert.match(revoked.stdout, new RegExp(`revoked: ${id}`));
    assert.equal((await api(w, 'GET', '/v1/webhook-endpoints', { token })).status, 401, 'revoked at once');
    assert.ok(!(await signedIn(cookie)), 'revoking the token ends its sessions');

    // Guessing tokens: ten attempts per client per 15 minutes, then 429; another client is not held up.
    const guesses = [];
    for (let i = 0; i < 11; i++) guesses.push((await signIn(`ep_guess${i}`, '198.51.100.99')).status);
    assert.deepEqual(guesses, [...Array(10).fill(401), 429]);
    assert.equal((await signIn(w.tokens.statsOnly, '198.51.100.100')).status, 303);
    await assert.rejects(run(`${ROOT}/scripts/create-token.sh`, ['--revoke', id], { env, cwd: ROOT }), /no live token/);
  } finally {
    await w.stop();
  }
});
