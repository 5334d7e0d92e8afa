// Workspace people: users created by scripts/create-user.sh sign in to the dashboard in Chromium
// with a one-time link mailed through the real transport (maildev). A mail scanner's GET signs no
// one in, a link works once and never after it expires, another origin cannot use it, nobody learns
// which addresses have accounts, links per user are limited, and disabling a user ends the session.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startSendingSystem, launchBrowser, api, ROOT } from './harness.mjs';

const run = promisify(execFile);
let w;
let mail;
let script;
before(async () => {
  ({ w, mail } = await startSendingSystem());
  const env = { ...process.env, EPISTOLA_PERSIST_TO: w.persist };
  script = (...args) => run(`${ROOT}/scripts/create-user.sh`, args, { env, cwd: ROOT });
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.to?.some((t) => t.address === address) && m.subject === 'Your Epistola sign-in link';
const linkIn = (m) => {
  const found = /https?:\/\/[^\s"<>]+\/dashboard\/sign-in\/[A-Za-z0-9_-]+/.exec(m.text);
  assert.ok(found, m.text);
  return w.url + new URL(found[0]).pathname; // the worker this test started
};
/** Asks for a link as the sign-in form does (same-origin POST). */
const askFor = (email, ip = '192.0.2.40') => fetch(`${w.url}/dashboard/sign-in-link`, {
  method: 'POST', redirect: 'manual',
  headers: { 'content-type': 'application/x-www-form-urlencoded', origin: w.url, 'cf-connecting-ip': ip },
  body: `email=${encodeURIComponent(email)}`,
});
const signedIn = async (cookie) => !(await (await fetch(`${w.url}/dashboard`, { headers: { cookie } })).text()).includes('id="email"');

test('a user signs in with a mailed one-time link; a scanner, a second use, another origin and an expired link do not', async () => {
  await assert.rejects(script('boss@team.example', 'owner'), /unknown role/);
  await assert.rejects(script('not an address', 'admin'), /not an e-mail address/);
  assert.match((await script('Ann.Admin@Team.Example', 'admin')).stdout, /ann\.admin@team\.example \(admin\)/);
  await script('ivo@team.example', 'analyst');

  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${w.url}/dashboard`);
    await page.fill('#email', '  ANN.admin@team.example ');
    await page.click('text=Email me a sign-in link');
    await page.waitForSelector('text=Check your mail');
    assert.match(await page.textContent('main'), /ann\.admin@team\.example belongs to a workspace user, a sign-in link is on its way\. It works once, for 15 minutes/);
    const [letter] = await mail.waitFor(to('ann.admin@team.example'), { what: 'the sign-in letter' });
    const link = linkIn(letter);
    assert.match(letter.html, /Sign in/);

    // A mail scanner follows the link: GET and HEAD show a button and use nothing.
    const scanned = await fetch(link, { headers: { 'user-agent': 'Mozilla/5.0 (compatible; SafeLinks scanner)' } });
    assert.equal(scanned.status, 200);
    assert.match(await scanned.text(), /Sign in as <strong>ann\.admin@team\.example<\/strong>/);
    assert.equal((await fetch(link, { method: 'HEAD' })).status, 200);
    // Another site's page posting to the link is refused, and the link still works after it.
    const forged = await fetch(link, { method: 'POST', redirect: 'manual', headers: { origin: 'https://evil.example' } });
    assert.equal(forged.status, 403);
    assert.equal(forged.headers.get('set-cookie'), null);
    const [unused] = await w.d1('SELECT COUNT(*) AS n FROM sign_in_links WHERE used_at IS NULL');
    assert.equal(unused.n, 1, 'neither the scanner nor the forged POST used the link');

    // The person clicks the button: signed in, on the campaign list.
    await page.goto(link);
    await Promise.all([page.waitForURL(`${w.url}/dashboard`), page.click('button:has-text("Sign in")')]);
    assert.equal(await page.locator('#email').count(), 0);
    assert.ok(await page.locator('text=Sign out').count());
    const [session] = (await context.cookies()).filter((c) => c.name === 'epistola_session');
    assert.ok(session.httpOnly && session.secure && session.sameSite === 'Strict', JSON.stringify(session));
    const cookie = `epistola_session=${session.value}`;
    assert.ok(await signedIn(cookie));
    const audit = await w.d1("SELECT actor, action, subject FROM audit_log WHERE action LIKE 'user.%' ORDER BY seq");
    assert.deepEqual(audit.map((a) => a.action), ['user.created', 'user.created', 'user.signed_in']);
    assert.equal(audit[2].actor, audit[2].subject);
    assert.match(audit[2].actor, /^user:u_/);

    // The same link again, in another browser: refused.
    const other = await (await browser.newContext()).newPage();
    const again = await other.goto(link);
    assert.equal(again.status(), 400);
    assert.match(await other.textContent('main'), /does not work/);
    const reuse = await fetch(link, { method: 'POST', redirect: 'manual', headers: { origin: w.url } });
    assert.equal(reuse.status, 400);
    assert.equal(reuse.headers.get('set-cookie'), null);

    // An expired link: refused on GET and POST.
    assert.equal((await askFor('ivo@team.example')).status, 200);
    const [ivoLetter] = await mail.waitFor(to('ivo@team.example'), { what: "Ivo's letter" });
    const ivoLink = linkIn(ivoLetter);
    assert.equal((await fetch(ivoLink)).status, 200);
    await w.d1("UPDATE sign_in_links SET expires_at = unixepoch() - 1 WHERE used_at IS NULL");
    assert.equal((await fetch(ivoLink)).status, 400);
    assert.equal((await fetch(ivoLink, { method: 'POST', redirect: 'manual', headers: { origin: w.url } })).status, 400);
    // A tampered token is no link.
    assert.equal((await fetch(link.slice(0, -2) + 'AA')).status, 400);

    // Every queue batch is delivered twice in these tests: still one letter per link.
    await sleep(2000);
    assert.equal((await mail.messages()).filter(to('ann.admin@team.example')).length, 1);
    assert.equal((await mail.messages()).filter(to('ivo@team.example')).length, 1);
    assert.match(w.log.join(''), /fault injection: replaying \d+ finished messages/, 'batches really were replayed');

    // Disabling the user ends her session at its next request.
    assert.match((await script('--disable', 'ann.admin@team.example')).stdout, /disabled/);
    assert.ok(!(await signedIn(cookie)), 'a disabled user is signed out');
    await page.goto(`${w.url}/dashboard`);
    assert.equal(await page.locator('#email').count(), 1);
  } finally {
    await browser.close();
  }
});

test('asking for a link tells no one who has an account, and floods no mailbox', async () => {
  await script('zoe@team.example', 'author');
  const before = (await mail.messages()).length;
  for (const email of ['nobody@team.example', 'zoe@team.example']) {
    const r = await askFor(email, '192.0.2.77');
    assert.equal(r.status, 200);
    assert.match(await r.text(), new RegExp(`If <strong>${email.replace('.', '\\.')}</strong> belongs to a workspace user`));
  }
  await mail.waitFor(to('zoe@team.example'), { what: "Zoe's letter" });
  // Three links per user per 15 minutes; the fourth request answers the same and sends nothing.
  for (let i = 0; i < 3; i++) assert.equal((await askFor('zoe@team.example', `192.0.2.${80 + i}`)).status, 200);
  await sleep(3000);
  const all = await mail.messages();
  assert.equal(all.filter(to('zoe@team.example')).length, 3, 'three letters, not four');
  assert.equal(all.filter((m) => m.to?.some((t) => t.address === 'nobody@team.example')).length, 0);
  assert.equal(all.length - before, 3);
  // Bad input and the wrong method.
  const bad = await askFor('not-an-address', '192.0.2.90');
  assert.equal(bad.status, 400);
  assert.match(await bad.text(), /That is not an e-mail address/);
  const cross = await fetch(`${w.url}/dashboard/sign-in-link`, {
    method: 'POST', redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
    body: 'email=zoe%40team.example',
  });
  assert.equal(cross.status, 403);
  assert.equal((await fetch(`${w.url}/dashboard/sign-in-link`)).status, 405);
});

/** Signs a user in the way the mailed link does, without a browser: the session cookie. */
async function userCookie(email) {
  const before = (await mail.messages()).filter(to(email)).length;
  assert.equal((await askFor(email, `198.51.100.${Math.floor(Math.random() * 200)}`)).status, 200);
  const letters = await mail.waitFor((m) => to(email)(m), { what: `${email}'s letter` });
  assert.ok(letters.length > before);
  const link = linkIn(letters.sort((a, b) => new Date(b.time) - new Date(a.time))[0]);
  const r = await fetch(link, { method: 'POST', redirect: 'manual', headers: { origin: w.url } });
  assert.equal(r.status, 303, await r.text());
  return r.headers.get('set-cookie').split(';')[0];
}

test('roles in the dashboard: an author reads and searches contacts, an analyst sees numbers only', async () => {
  await script('ava@team.example', 'author');
  await script('ivy@team.example', 'analyst');
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    token: w.tokens.marketer,
    body: { contacts: [
      { email: 'kira@example.org', name: 'Kira <Lee>', tags: ['vip'] },
      { email: 'lev@example.org', name: 'Lev', tags: ['new'] },
    ] },
  });
  assert.equal(imported.status, 200, imported.text);
  const page = async (cookie, path) => {
    const r = await fetch(`${w.url}${path}`, { headers: { cookie }, redirect: 'manual' });
    return { status: r.status, html: await r.text() };
  };
  const author = await userCookie('ava@team.example');
  const home = await page(author, '/dashboard');
  assert.match(home.html, /ava@team\.example · author/);
  assert.match(home.html, /href="\/dashboard\/contacts"/);
  const vip = await page(author, '/dashboard/contacts?query=tag%3Avip');
  assert.equal(vip.status, 200);
  assert.match(vip.html, /kira@example\.org/);
  assert.match(vip.html, /Kira &lt;Lee&gt;/, 'names are escaped');
  assert.doesNotMatch(vip.html, /lev@example\.org/);
  const bad = await page(author, '/dashboard/contacts?query=tag%3A');
  assert.equal(bad.status, 200);
  assert.match(bad.html, /id="query-error"[^>]*>tag: needs a tag \(tag:vip\)/);
  assert.doesNotMatch(bad.html, /No contact matches/);
  assert.match((await page(author, '/dashboard/contacts?query=nobody-at-all')).html, /No contact matches/);

  const analyst = await userCookie('ivy@team.example');
  const numbers = await page(analyst, '/dashboard');
  assert.equal(numbers.status, 200);
  assert.match(numbers.html, /ivy@team\.example · analyst/);
  assert.doesNotMatch(numbers.html, /\/dashboard\/contacts/);
  const refused = await page(analyst, '/dashboard/contacts');
  assert.equal(refused.status, 403);
  assert.doesNotMatch(refused.html, /kira@example\.org/);
});
