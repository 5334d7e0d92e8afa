// The capture widget in a real browser (Debian Chromium driven by playwright-core), on the demo
// shop served from another origin than the worker, talking to the real worker.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startWorker, startMailSink, api, launchBrowser, DEMO_SITE, ROOT } from './harness.mjs';
import { serveStatic } from '../../scripts/static-server.mjs';

const SHOTS = join(ROOT, 'tests/e2e/out');
let w;
let mail;
let shop;
let other;
let browser;
let fixtures;
let shopOrigin;
let otherOrigin;
let fixtureOrigin;

before(async () => {
  mail = await startMailSink();
  w = await startWorker({ vars: { SMTP_HOST: '127.0.0.1', SMTP_PORT: String(mail.smtpPort), SMTP_STARTTLS: 'off' } });
  shop = await serveStatic(join(ROOT, 'demo'), 0, w.url);
  other = await serveStatic(join(ROOT, 'demo'), 0, w.url);
  fixtures = await serveStatic(join(ROOT, 'tests/e2e/fixtures'), 0, w.url);
  fixtureOrigin = `http://127.0.0.1:${fixtures.address().port}`;
  shopOrigin = `http://127.0.0.1:${shop.address().port}`;
  otherOrigin = `http://127.0.0.1:${other.address().port}`;
  const site = { ...DEMO_SITE, allowed_origins: [shopOrigin] };
  const r = await api(w, 'PUT', '/v1/sites/demo', { token: w.tokens.sites, body: site });
  assert.equal(r.status, 200, r.text);
  const timed = {
    ...DEMO_SITE, allowed_origins: [fixtureOrigin], locale: 'uk', quiz: [],
    trigger: { seconds_on_site: 3, custom_event: 'quiz_start', scroll_percent: 90 },
  };
  const t = await api(w, 'PUT', '/v1/sites/timed', { token: w.tokens.sites, body: timed });
  assert.equal(t.status, 200, t.text);
  browser = await launchBrowser();
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  shop?.close();
  fixtures?.close();
  other?.close();
  await w?.stop();
  mail?.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const dialog = (page) => page.locator('[data-epistola] [role=dialog]');

async function viewTwoProducts(page, origin) {
  await page.goto(`${origin}/`);
  await page.goto(`${origin}/product.html?id=1`);
  await page.goto(`${origin}/product.html?id=2`);
}

test('GET /w.js: the widget script, cacheable, revalidated by ETag', async () => {
  const r = await fetch(`${w.url}/w.js`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^application\/javascript/);
  assert.match(r.headers.get('cache-control'), /max-age=\d+/);
  const etag = r.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{20}"$/);
  assert.ok((await r.text()).includes('/v1/capture'));
  const again = await fetch(`${w.url}/w.js`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
});

test('the form never shows on entry, and shows after the second product view', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  const sent = [];
  page.on('request', (req) => req.url().startsWith(w.url) && sent.push(`${req.method()} ${new URL(req.url()).pathname}`));
  await page.goto(`${shopOrigin}/`);
  await sleep(1500);
  assert.equal(await dialog(page).count(), 0, 'not on entry');
  await page.goto(`${shopOrigin}/product.html?id=1`);
  await sleep(1000);
  assert.equal(await dialog(page).count(), 0, 'not after one view');
  await page.goto(`${shopOrigin}/product.html?id=2`);
  await dialog(page).waitFor({ timeout: 10_000 });
  assert.match(await dialog(page).innerText(), new RegExp(DEMO_SITE.promise.title));
  assert.ok(sent.every((s) => s === 'GET /w.js' || s === 'GET /v1/sites/demo/widget'), `nothing sent about the visitor: ${sent}`);
  assert.equal((await context.cookies()).length, 0, 'no cookies');
  await page.screenshot({ path: join(SHOTS, 'widget-quiz.png') });
  await context.close();
});

test('keyboard only: the quiz, the address and the consent, submitted; answers arrive as fields', async () => {
  const context = await browser.newContext({ locale: 'en-US' });
  const page = await context.newPage();
  await viewTwoProducts(page, shopOrigin);
  await dialog(page).waitFor();
  const kb = page.keyboard;
  // Step 1: a choice. Focus starts in the dialog, on the first control.
  await kb.type('6');
  await kb.press('Tab');
  await kb.press('Enter');
  // Step 2: a date (en-US order: month, day, year); Enter in a field submits the step.
  await dialog(page).locator('input[type=date]').waitFor();
  await kb.type('03142027');
  await kb.press('Enter');
  // Step 3: address, first name, consent, submit.
  await dialog(page).locator('input[type=email]').waitFor();
  await kb.type('keyboard.user@example.com');
  await kb.press('Tab');
  await kb.type('Kim');
  await kb.press('Tab');
  await kb.press('Space');
  await kb.press('Tab'); // the hidden honeypot is not in the tab order: this is the submit button
  await kb.press('Enter');
  await dialog(page).getByText('Thank you').waitFor({ timeout: 10_000 });
  await page.screenshot({ path: join(SHOTS, 'widget-thanks.png') });
  // Everything the form carried waits on the capture until the address is confirmed.
  const [captured] = await w.d1(
    `SELECT p.fields, p.consents FROM captures p JOIN contacts c ON c.id = p.contact_id WHERE c.email = 'keyboard.user@example.com'`,
  );
  assert.deepEqual(JSON.parse(captured.fields), { child_age: '6-9', birthday: '2027-03-14', first_name: 'Kim' });
  const inForm = DEMO_SITE.consents.find((c) => c.in_form);
  assert.deepEqual(JSON.parse(captured.consents), [[inForm.purpose, inForm.channel, inForm.version]]);
  await mail.waitFor((m) => m.envelope?.to?.some((t) => t.address === 'keyboard.user@example.com'), { what: 'confirmation' });
  await context.close();
});

test('on a phone: steps numbered, the button says what it does, errors stand by their field and go when fixed', async () => {
  const context = await browser.newContext({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true, locale: 'en-US' });
  const page = await context.newPage();
  await viewTwoProducts(page, shopOrigin);
  await dialog(page).waitFor();
  const steps = DEMO_SITE.quiz.length + 1;
  assert.match(await dialog(page).locator('p.s').innerText(), new RegExp(`^Step 1 of ${steps}$`));
  // A quiz step without an answer: the error is next to the question.
  await dialog(page).locator('form button:not([type])').click();
  const q = dialog(page).locator('#q');
  assert.equal(await q.getAttribute('aria-invalid'), 'true');
  assert.equal(await dialog(page).locator(`#${await q.getAttribute('aria-describedby')}`).innerText(), 'Choose an answer.');
  await q.selectOption({ index: 1 });
  assert.equal(await dialog(page).locator('.fe').count(), 0, 'gone once answered');
  await dialog(page).locator('form button:not([type])').click();
  await dialog(page).locator('input[type=date]').fill('2027-03-14');
  await dialog(page).locator('form button:not([type])').click();
  // The last step: numbered, and its button says what it does (not the headline).
  await dialog(page).locator('input[type=email]').waitFor();
  assert.match(await dialog(page).locator('p.s').innerText(), new RegExp(`^Step ${steps} of ${steps}$`));
  const submit = dialog(page).locator('form button:not([type])');
  assert.equal(await submit.innerText(), 'Sign up');
  // Back and submit never touch on a phone.
  const [a, b] = [await submit.boundingBox(), await dialog(page).locator('form button[type=button]').boundingBox()];
  const apart = Math.max(b.x - (a.x + a.width), a.x - (b.x + b.width), b.y - (a.y + a.height), a.y - (b.y + b.height));
  assert.ok(apart >= 8, `buttons ${apart}px apart`);
  // Submitted with a bad address and no consent: two errors, each by its field, nothing sent.
  await dialog(page).locator('#em').fill('not-an-address');
  const posted = [];
  page.on('request', (r) => r.url().endsWith('/v1/capture') && posted.push(r.url()));
  await submit.click();
  const errors = dialog(page).locator('.fe');
  assert.equal(await errors.count(), 2);
  assert.equal(await dialog(page).locator('#em').getAttribute('aria-describedby'), 'eem');
  assert.match(await dialog(page).locator('#eem').innerText(), /e-mail address/);
  assert.equal(await page.evaluate(() => document.querySelector('[data-epistola]').shadowRoot.activeElement?.id), 'em', 'focus on the first error');
  await dialog(page).locator('#em').fill('phone.user@example.com');
  assert.equal(await dialog(page).locator('#eem').count(), 0, 'the address error goes as the address is fixed');
  assert.equal(await dialog(page).locator('#em').getAttribute('aria-invalid'), null);
  await dialog(page).locator('#c0').check();
  assert.equal(await errors.count(), 0, 'the consent error goes once ticked');
  assert.equal(await dialog(page).locator('p[role=status]').innerText(), '', 'and the form-level message with it');
  assert.deepEqual(posted, [], 'nothing was sent while the form had errors');
  await page.screenshot({ path: join(SHOTS, 'widget-phone-errors.png') });
  await context.close();
});

test('Tab stays inside the dialog; Escape dismisses it and the display cap keeps it away', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${shopOrigin}/`);
  await page.locator('#p1').focus();
  await viewTwoProducts(page, shopOrigin);
  await dialog(page).waitFor();
  for (let i = 0; i < 8; i++) {
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate(() => document.activeElement?.hasAttribute('data-epistola')), true, `tab ${i} left the dialog`);
  }
  await page.keyboard.press('Escape');
  assert.equal(await dialog(page).count(), 0);
  await page.goto(`${shopOrigin}/product.html?id=1`);
  await sleep(1500);
  assert.equal(await dialog(page).count(), 0, 'dismissed: not shown again within the cap');
  await context.close();
});

test('a disallowed origin gets no form and cannot capture', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // The config request is refused (403, no CORS header): the browser reports it as failed.
  const outcomes = [];
  page.on('requestfailed', (r) => r.url().includes('/v1/sites/demo/widget') && outcomes.push('failed'));
  page.on('response', (r) => r.url().includes('/v1/sites/demo/widget') && outcomes.push(r.status()));
  await viewTwoProducts(page, otherOrigin);
  await sleep(1000);
  assert.ok(outcomes.length > 0 && outcomes.every((o) => o === 'failed' || o === 403), `config answers: ${outcomes}`);
  assert.equal(await dialog(page).count(), 0);
  const result = await page.evaluate(async (url) => {
    try {
      const r = await fetch(`${url}/v1/capture`, {
        method: 'POST', headers: { 'content-type': 'text/plain' },
        body: JSON.stringify({ site: 'demo', email: 'intruder@example.com', consents: [] }),
      });
      return `status ${r.status}`;
    } catch (e) {
      return 'blocked';
    }
  }, w.url);
  assert.equal(result, 'blocked', 'the browser may not read the answer');
  const stored = await w.d1(`SELECT COUNT(*) AS n FROM contacts WHERE email = 'intruder@example.com'`);
  assert.equal(stored[0].n, 0);
  await context.close();
});

test('time on site, scroll depth and a custom event trigger the form; texts follow the site locale', async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
  const page = await context.newPage();
  await page.goto(`${fixtureOrigin}/timed.html`);
  await sleep(1500);
  assert.equal(await dialog(page).count(), 0, 'not before 3 seconds on site');
  await dialog(page).waitFor({ timeout: 10_000 });
  assert.match(await dialog(page).innerText(), /E-mail/);
  assert.equal(await dialog(page).locator('[aria-label="Закрити"]').count(), 1, 'Ukrainian texts');
  const box = await dialog(page).boundingBox();
  assert.ok(box.width <= 390, `fits a phone screen: ${box.width}px`);
  await page.screenshot({ path: join(SHOTS, 'widget-mobile-uk.png') });
  await page.keyboard.press('Escape');
  await context.close();

  const fresh = await browser.newContext();
  const p2 = await fresh.newPage();
  await p2.goto(`${fixtureOrigin}/timed.html`);
  await sleep(500);
  await p2.click('#start');
  await dialog(p2).waitFor({ timeout: 2_000 });
  await fresh.close();

  const scroller = await browser.newContext();
  const p3 = await scroller.newPage();
  await p3.goto(`${fixtureOrigin}/timed.html`);
  await sleep(500);
  assert.equal(await dialog(p3).count(), 0);
  await p3.locator('#end').scrollIntoViewIfNeeded();
  await dialog(p3).waitFor({ timeout: 2_000 });
  await scroller.close();
});
