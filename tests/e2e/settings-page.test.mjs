// The settings page in the browser (Debian Chromium), as the person who runs the workspace uses it
// on the first day: see the mail transport as configured (never its password), send a test letter
// and find it in the mail sink; with a relay that is not there, the test says why beside the
// field, and what a transport failure paused is listed. Only admins open it; another origin
// sends nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { startSendingSystem, launchBrowser, api, signInByMail, createUser } from './harness.mjs';

const closedPort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, '127.0.0.1', () => {
    const { port } = s.address();
    s.close(() => resolve(port));
  });
});

test('an admin sees the transport and sends a test letter that arrives; authors and other origins cannot', async () => {
  const { w, mail } = await startSendingSystem();
  const browser = await launchBrowser();
  try {
    const hook = await api(w, 'POST', '/v1/webhook-endpoints', { token: w.tokens.hooks, body: { url: 'https://crm.shop.example/epistola-hooks', events: ['email.opened', 'email.clicked'] } });
    assert.equal(hook.status, 201, hook.text);
    await createUser(w, 'ada.ops@team.example', 'admin');
    await createUser(w, 'ola.author@team.example', 'author');
    const context = await browser.newContext();
    const page = await context.newPage();
    const ada = await signInByMail(page, w, mail, 'ada.ops@team.example');
    await Promise.all([page.waitForURL(`${w.url}/dashboard/settings`), page.click('header a:has-text("Settings")')]);
    const facts = Object.fromEntries(await page.$$eval('h2:has-text("Mail transport") + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t'))));
    assert.deepEqual(facts, { Transport: 'SMTP relay', Host: '127.0.0.1', Port: String(mail.smtpPort), STARTTLS: 'off (plain connection)', Login: 'not set', Password: 'not set' });
    assert.match(await page.textContent('main'), /Nothing is paused/);
    const hooks = await page.$$eval('h2:has-text("Webhook endpoints") + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t')));
    assert.deepEqual(hooks, [['https://crm.shop.example/epistola-hooks', 'email.opened, email.clicked', 'active', 'none yet']]);
    assert.ok(!(await page.content()).includes(hook.json.secret), 'the signing secret is never shown again');
    assert.equal(await page.inputValue('#to'), 'ada.ops@team.example', 'her own address to start with');

    await page.fill('#to', 'Ops.Inbox@Team.example');
    await Promise.all([page.waitForResponse((r) => r.url().endsWith('/test-letter') && r.status() === 200), page.click('button:has-text("Send a test letter now")')]);
    assert.match(await page.textContent('#test-letter + [role=status]'), /The transport took the test letter for ops\.inbox@team\.example/);
    const [letter] = await mail.waitFor((m) => m.to?.some((t) => t.address === 'ops.inbox@team.example'), { what: 'the test letter' });
    assert.equal(letter.subject, 'Epistola test letter: the mail transport works');
    assert.match(letter.text, /sent at the request of ada\.ops@team\.example/);
    const [row] = await w.d1("SELECT actor, subject, detail FROM audit_log WHERE action = 'transport.test'");
    assert.deepEqual([row.actor, row.subject, JSON.parse(row.detail).status], [`user:${ada}`, 'transport', 200]);
    assert.ok(!row.detail.includes('ops.inbox'), 'the log keeps no address');

    // Not an address: refused beside the field, nothing sent.
    const before = (await mail.messages()).length;
    await page.evaluate(() => { document.querySelector('#to').type = 'text'; });
    await page.fill('#to', 'ops at team');
    const bad = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/test-letter')), page.click('button:has-text("Send a test letter now")')]);
    assert.equal(bad[0].status(), 400);
    assert.match(await page.textContent('#to-error'), /e-mail address/);

    // Another origin with her session, and an author with his own: nothing is sent.
    const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const forged = await fetch(`${w.url}/dashboard/settings/test-letter`, {
      method: 'POST', redirect: 'manual',
      headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: 'to=victim%40elsewhere.example',
    });
    assert.equal(forged.status, 403);
    const olaPage = await (await browser.newContext()).newPage();
    await signInByMail(olaPage, w, mail, 'ola.author@team.example');
    assert.equal(await olaPage.$('header a:has-text("Settings")'), null, 'not in an author\'s header');
    assert.equal((await olaPage.goto(`${w.url}/dashboard/settings`)).status(), 403);
    const olaCookie = (await olaPage.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const authorPost = await fetch(`${w.url}/dashboard/settings/test-letter`, {
      method: 'POST', redirect: 'manual',
      headers: { cookie: olaCookie, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'to=victim%40elsewhere.example',
    });
    assert.equal(authorPost.status, 403);
    await new Promise((r) => setTimeout(r, 1_000));
    const after = await mail.messages();
    // Only the author's own sign-in link arrived meanwhile.
    assert.deepEqual(after.slice(before).map((m) => m.to[0].address), ['ola.author@team.example']);
  } finally {
    await browser.close();
    await w.stop();
    mail.stop();
  }
});

test('with a relay that is not there: the test letter says why, the password is never shown, paused sending is listed', async () => {
  const port = await closedPort();
  const { w, mail } = await startSendingSystem({ vars: { SMTP_PORT: String(port), SMTP_USERNAME: 'relay-user', SMTP_PASSWORD: 'hunter2-relay-secret' } });
  const browser = await launchBrowser();
  try {
    const tpl = await api(w, 'PUT', '/v1/templates/winter-letter', { token: w.tokens.admin, body: { name: 'Winter letter', subject: 'Winter', html: '<p>Hello</p>' } });
    assert.equal(tpl.status, 200, tpl.text);
    const put = await api(w, 'PUT', '/v1/campaigns/winter-sale', { token: w.tokens.admin, body: { name: 'Winter sale', site: 'demo', template: 'winter-letter', purpose: 'newsletter', segment: { tag: 'winter' } } });
    assert.equal(put.status, 200, put.text);
    // As the sending consumer pauses a campaign whose relay refused it (the whole path is
    // tests/e2e/transport-failures.test.mjs).
    await w.d1(`UPDATE campaigns SET paused_reason = 'connection: connection refused', paused_at = ${Math.floor(Date.now() / 1000)} WHERE id = 'winter-sale'`);

    // No sign-in link can arrive through this relay: the admin signs in with an API token.
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${w.url}/dashboard`);
    await page.fill('#token', w.tokens.admin);
    await Promise.all([page.waitForURL(`${w.url}/dashboard`), page.click('button:has-text("Sign in")')]);
    const shown = await page.goto(`${w.url}/dashboard/settings`);
    assert.equal(shown.status(), 200);
    const html = await page.content();
    assert.ok(!html.includes('hunter2-relay-secret'), 'the password is never on the page');
    assert.match(await page.textContent('main'), /Loginrelay-user/);
    assert.match(await page.textContent('main'), /Passwordset/);
    const paused = await page.$$eval('h2:has-text("Paused by a transport failure") + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t')));
    assert.equal(paused.length, 1);
    assert.deepEqual(paused[0].slice(0, 2), ['campaign Winter sale', 'connection: connection refused']);
    assert.equal(await page.getAttribute('a:has-text("campaign Winter sale")', 'href'), '/dashboard/campaigns/winter-sale');

    await page.fill('#to', 'ops@team.example');
    const failed = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/test-letter')), page.click('button:has-text("Send a test letter now")')]);
    assert.equal(failed[0].status(), 502);
    assert.match(await page.textContent('#to-error'), /the transport did not take it: connection/);
    assert.equal(await page.inputValue('#to'), 'ops@team.example', 'what was typed stays');
    const [row] = await w.d1("SELECT detail FROM audit_log WHERE action = 'transport.test'");
    assert.equal(JSON.parse(row.detail).status, 502);
  } finally {
    await browser.close();
    await w.stop();
    mail.stop();
  }
});
