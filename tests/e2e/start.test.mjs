// The first hour, as a new user meets it: the root URL is a start page (not a JSON 404) with the
// links scripts/dev.sh configures, and a letter opened from the local letters page is a page of
// its own whose links open in a new tab and work — maildev's framed viewer cannot do that.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { startSendingSystem, api, launchBrowser, visibleLinks, daytimeZone, ROOT } from './harness.mjs';
import { serveStatic } from '../../scripts/static-server.mjs';
import { serveLetters } from '../../scripts/letters.mjs';

let w;
let mail;
let shop;
let letters;
before(async () => {
  ({ w, mail } = await startSendingSystem({
    vars: {
      START_LINKS: JSON.stringify([
        { label: 'Demo shop', url: 'http://127.0.0.1:8788', note: 'the <widget>' },
        { label: 'Evil', url: 'javascript:alert(1)' },
      ]),
    },
  }));
  shop = await serveStatic(join(ROOT, 'demo'), 0, w.url);
  letters = await serveLetters(0, mail.base);
});
after(async () => {
  shop?.close();
  letters?.close();
  await w?.stop();
  mail?.stop();
});

test('the root URL is a start page: the dashboard and the configured links, nothing else', async () => {
  const r = await fetch(`${w.url}/`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/html/);
  assert.match(r.headers.get('content-security-policy'), /frame-ancestors 'none'/);
  const html = await r.text();
  assert.match(html, /<a href="\/dashboard">Dashboard<\/a>/);
  assert.match(html, /<a href="http:\/\/127\.0\.0\.1:8788">Demo shop<\/a> — the &lt;widget&gt;/);
  assert.ok(!html.includes('javascript:'), html);
  const head = await fetch(`${w.url}/`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal((await head.text()).length, 0);
  const post = await fetch(`${w.url}/`, { method: 'POST' });
  assert.equal(post.status, 405);
  assert.equal(post.headers.get('allow'), 'GET, HEAD');
  assert.equal((await fetch(`${w.url}/no-such-page`)).status, 404);
});

test('a letter opened from the letters page is its own page: a link opens the shop in a new tab', async () => {
  const m = { token: w.tokens.marketer };
  const shopUrl = `http://127.0.0.1:${shop.address().port}/index.html`;
  const contact = await api(w, 'POST', '/v1/contacts', {
    ...m, body: { email: 'first.hour@example.org', name: 'Mira', test_list: true, time_zone: daytimeZone(),
      consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'test' }] },
  });
  assert.equal(contact.status, 200, contact.text);
  const t = await api(w, 'PUT', '/v1/templates/first-hour', {
    ...m, body: { name: 'First hour', subject: 'Toys for Mira', html: `<p>Hi {{ contact.name }}</p><p><a href="${shopUrl}">See the toys</a></p>` },
  });
  assert.equal(t.status, 200, t.text);
  const c = await api(w, 'PUT', '/v1/campaigns/winter-toys', {
    ...m, body: { name: 'Winter toys', site: 'demo', template: 'first-hour', purpose: 'newsletter', segment: { everyone: true } },
  });
  assert.equal(c.status, 200, c.text);
  assert.equal((await api(w, 'POST', '/v1/campaigns/winter-toys/test', m)).status, 202);
  const letter = await mail.waitFor((x) => x.subject === 'Toys for Mira', { what: 'the test letter' });

  const index = await (await fetch(`http://127.0.0.1:${letters.address().port}/`)).text();
  assert.ok(letter, "the letter reached the sink");
  assert.match(index, /<a href="\/letters\/[A-Za-z0-9_-]+">Toys for Mira<\/a>/, index);
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`http://127.0.0.1:${letters.address().port}/`);
    await Promise.all([page.waitForURL(/\/letters\//), page.click('text=Toys for Mira')]);
    const html = await page.content();
    const [link] = visibleLinks(html);
    assert.ok(link, html);
    const anchor = page.locator(`a[href="${link}"]`);
    assert.equal(await anchor.getAttribute('target'), '_blank');
    assert.equal(await anchor.getAttribute('rel'), 'noopener');
    await page.waitForTimeout(1500); // a person reads before clicking (an instant click is a scanner's)
    const [tab] = await Promise.all([page.context().waitForEvent('page'), anchor.click()]);
    await tab.waitForLoadState();
    assert.ok(tab.url().startsWith(shopUrl), `the tracked link redirected to the shop: ${tab.url()}`);
  } finally {
    await browser.close();
  }
});
