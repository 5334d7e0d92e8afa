// Conversions and the dashboard, end to end: a real campaign letter, a click in a real browser
// (Debian Chromium) that lands on the demo shop with the attribution parameter, the order
// confirmation page's `epistola('convert')` beacon, a server-side `purchase` through the API, and
// the marketer reading it all in the dashboard (signed in with a stats token) and in CSV.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { startSendingSystem, api, stats, daytimeZone, launchBrowser, visibleLinks, honeypotLink, DEMO_SITE, ROOT } from './harness.mjs';
import { serveStatic } from '../../scripts/static-server.mjs';

const SHOTS = join(ROOT, 'tests/e2e/out');
// A person's browser, not a headless one (the classifier flags headless user agents as scanners).
const USER_AGENT = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';
const DAY = daytimeZone();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const to = (address) => (m) => m.envelope?.to?.some((t) => t.address === address);

let sys;
let shop;
let shopOrigin;
let browser;
let clickOfBo; // a tracked link from Bo's letter, for the rate-limit test
let letterOfBo; // Bo's letter as sent, for the honeypot test

before(async () => {
  sys = await startSendingSystem();
  shop = await serveStatic(join(ROOT, 'demo'), 0, sys.w.url);
  shopOrigin = `http://127.0.0.1:${shop.address().port}`;
  const site = { ...DEMO_SITE, allowed_origins: [shopOrigin] };
  const r = await api(sys.w, 'PUT', '/v1/sites/demo', { token: sys.w.tokens.sites, body: site });
  assert.equal(r.status, 200, r.text);
  browser = await launchBrowser();
  mkdirSync(SHOTS, { recursive: true });
});
after(async () => {
  await browser?.close();
  shop?.close();
  await sys?.w.stop();
  sys?.mail.stop();
});

/** Polls the stats until `done` holds. */
async function statsUntil(w, campaign, done, what) {
  for (let i = 0; ; i++) {
    const s = await stats(w, campaign);
    if (done(s)) return s;
    if (i > 120) throw new Error(`${what}: ${JSON.stringify(s)}`);
    await sleep(250);
  }
}

test('a click in a letter, a visit, an order: revenue on the campaign, per link and channel, once', async () => {
  const { w, mail } = sys;
  const consent = [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' }];
  const contacts = [
    { email: 'ada@example.com', name: 'Ada', consents: consent, test_list: true, tags: ['buyers'], time_zone: DAY },
    { email: 'bo@example.com', name: 'Bo', consents: consent, tags: ['buyers'], time_zone: DAY },
  ];
  const imported = await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts } });
  assert.equal(imported.json.upserted, 2, imported.text);
  const html = `<p>Hello {{ contact.name }}</p><p><a href="${shopOrigin}/product.html?id=7">See the toy</a>
<a href="${shopOrigin}/index.html">All toys</a> <a href="https://manuals.example/toy-7">Manual</a></p>`;
  const t = await api(w, 'PUT', '/v1/templates/toys', { token: w.tokens.marketer, body: { name: 'Toys', subject: 'New toys', html } });
  assert.equal(t.status, 200, t.text);
  const body = { name: 'Autumn toys', site: 'demo', template: 'toys', purpose: 'newsletter', segment: { tag: 'buyers' } };
  assert.equal((await api(w, 'PUT', '/v1/campaigns/autumn', { token: w.tokens.marketer, body })).status, 200);
  assert.equal((await api(w, 'POST', '/v1/campaigns/autumn/test', { token: w.tokens.marketer })).status, 202);
  assert.equal((await api(w, 'POST', '/v1/campaigns/autumn/approve', { token: w.tokens.approver, body: { confirm_audience: 2 } })).status, 200);
  assert.equal((await api(w, 'POST', '/v1/campaigns/autumn/schedule', { token: w.tokens.approver })).status, 200);
  assert.equal((await fetch(`${w.url}/__scheduled`)).status, 200);
  const sentAt = Date.now();
  const [letter] = await mail.waitFor((m) => to('bo@example.com')(m) && m.subject === 'New toys', { what: "Bo's letter" });
  const [clickUrl] = visibleLinks(letter.html);
  clickOfBo = clickUrl;
  letterOfBo = letter.html;
  // A person reads before clicking; link scanners follow links within seconds of delivery.
  await sleep(Math.max(0, sentAt + 11_000 - Date.now()));

  // The redirect carries the attribution token to the site.
  const redirect = await fetch(clickUrl, { redirect: 'manual', headers: { 'user-agent': USER_AGENT } });
  assert.equal(redirect.status, 302);
  const landing = new URL(redirect.headers.get('location'));
  assert.equal(`${landing.origin}${landing.pathname}`, `${shopOrigin}/product.html`);
  assert.equal(landing.searchParams.get('id'), '7', 'the original query is kept');
  const attribution = landing.searchParams.get('ep');
  assert.match(attribution, /^[A-Za-z0-9_-]{40,}$/);
  assert.equal(redirect.headers.get('referrer-policy'), 'no-referrer');
  // A third party the letter links to gets exactly the signed destination: no token leaks to it.
  const clickUrls = visibleLinks(letter.html);
  assert.equal(clickUrls.length, 3, 'three tracked links');
  const manual = await fetch(clickUrls[2], { method: 'HEAD', redirect: 'manual' });
  assert.equal(manual.headers.get('location'), 'https://manuals.example/toy-7');

  // Bo clicks in a real browser: lands on the shop, the widget keeps the token and tidies the URL.
  const context = await browser.newContext({ userAgent: USER_AGENT });
  const page = await context.newPage();
  await page.goto(clickUrl);
  await page.waitForURL((u) => u.pathname === '/product.html' && !u.searchParams.has('ep'), { timeout: 10_000 });
  assert.equal(new URL(page.url()).searchParams.get('id'), '7');
  // The order confirmation page reports the order; reloading it reports the same order again.
  await page.goto(`${shopOrigin}/thanks.html?order=A-1001&value=49.90`);
  await page.locator('#thanks').waitFor();
  let s = await statsUntil(w, 'autumn', (x) => x.conversions?.count === 1, 'the beacon conversion was not counted');
  assert.equal(s.conversions.unverified, 1, 'reported by the site only: unverified');
  await page.reload();
  await page.locator('#thanks').waitFor();
  await context.close();

  // A beacon for someone who never clicked (no token) counts nothing; a forged token is refused.
  const forged = await fetch(`${w.url}/v1/convert`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: shopOrigin },
    body: JSON.stringify({ site: 'demo', attribution: attribution.slice(0, -2) + 'AA', value: '10', currency: 'EUR', order_id: 'X-1' }),
  });
  assert.equal(forged.status, 400);
  assert.ok((await forged.json()).error.fields.attribution);
  const elsewhere = await fetch(`${w.url}/v1/convert`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: 'https://evil.example' },
    body: JSON.stringify({ site: 'demo', attribution, value: '10', currency: 'EUR', order_id: 'X-2' }),
  });
  assert.equal(elsewhere.status, 403);
  const badValue = await fetch(`${w.url}/v1/convert`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: shopOrigin },
    body: JSON.stringify({ site: 'demo', attribution, value: '12.345', currency: 'EURO', order_id: 'X-3' }),
  });
  assert.equal(badValue.status, 400);
  assert.deepEqual(Object.keys((await badValue.json()).error.fields).sort(), ['currency']);
  const huge = await fetch(`${w.url}/v1/convert`, {
    method: 'POST',
    headers: { 'content-type': 'text/plain', origin: shopOrigin },
    body: JSON.stringify({ site: 'demo', attribution, value: '25000.00', currency: 'EUR', order_id: 'X-4' }),
  });
  assert.equal(huge.status, 400, 'above the site-reported cap (CONVERSION_VALUE_CAP, default 10000)');
  assert.deepEqual(Object.keys((await huge.json()).error.fields), ['value']);

  // The shop's backend reports purchases too: the same order (counted once) and a new one.
  const purchases = await api(w, 'POST', '/v1/events', {
    token: w.tokens.marketer,
    body: {
      events: [
        // The shop's server knows better (a discount at checkout): its report replaces the site's.
        { id: 'p-A-1001', type: 'purchase', contact: 'bo@example.com', data: { order_id: 'A-1001', value: 45, currency: 'EUR' } },
        { id: 'p-B-2002', type: 'purchase', contact: 'bo@example.com', data: { order_id: 'B-2002', value: '20', currency: 'EUR' } },
        { id: 'p-C-3003', type: 'purchase', contact: 'ada@example.com', data: { order_id: 'C-3003', value: '5', currency: 'EUR' } },
        { id: 'p-bad', type: 'purchase', contact: 'ada@example.com', data: { order_id: 'D 4', value: 'lots', currency: 'EUR' } },
      ],
    },
  });
  assert.equal(purchases.status, 202, purchases.text);
  assert.equal(purchases.json.accepted, 3);
  assert.equal(purchases.json.rejected, 1, 'the malformed order is refused, by field');
  assert.ok(purchases.json.errors[0].fields['data.order_id'] && purchases.json.errors[0].fields['data.value']);
  assert.equal(purchases.json.attributed, 2, `Bo's two orders (Ada never clicked): ${JSON.stringify(await stats(w, 'autumn'))}`);

  await sleep(2500); // replayed queue batches must not count anything twice
  s = await statsUntil(w, 'autumn', (x) => x.conversions?.revenue?.EUR?.minor === 6500, 'the server report replaces the site report');
  assert.equal(s.conversions.count, 2, 'one order replaced, one added: counted once each');
  assert.equal(s.conversions.unverified, 0, 'both orders now confirmed by the shop');
  assert.deepEqual(s.conversions.revenue.EUR, { minor: 6500, amount: '65.00' });
  assert.equal(s.conversions.channels.email.count, 2);
  const link0 = s.clicks.links.find((l) => l.index === 0);
  assert.equal(link0.conversions.count, 2, 'both orders came through the first link');
  assert.equal(link0.conversions.revenue.EUR.amount, '65.00');
  assert.equal(s.series.reduce((n, p) => n + p.conversions, 0), 2, 'the series counts the replaced order once');
  assert.equal(s.delivery.email.sent, 2);
  assert.equal(s.clicks.human.unique, 1);
  // GDPR access: everything held about Bo in one JSON document.
  const exported = await api(w, 'GET', '/v1/contacts/bo@example.com/export', { token: w.tokens.marketer });
  assert.equal(exported.status, 200, exported.text);
  assert.match(exported.headers.get('content-disposition'), /attachment; filename="contact-c_[0-9a-f]+\.json"/);
  const bo = exported.json.contact;
  assert.equal(bo.email, 'bo@example.com');
  assert.deepEqual(bo.conversions.map((c) => c.order_id).sort(), ['A-1001', 'B-2002']);
  assert.ok(bo.tracked_events.some((e) => e.kind === 'click' && e.url.endsWith('/product.html?id=7') && e.label === 'human'));
  assert.ok(bo.events.some((e) => e.type === 'purchase' && e.data.order_id === 'B-2002'));
  assert.equal(bo.messages.filter((m) => m.campaign_id === 'autumn').length, 1);
  assert.ok(!JSON.stringify(exported.json).includes('ip_hash'), 'keyed hashes are not exported');
  assert.equal((await api(w, 'GET', '/v1/contacts/bo@example.com/export', { token: w.tokens.statsOnly })).status, 403);
});

test("the letter's honeypot link: nothing a person sees, hears or reaches with the keyboard", async () => {
  assert.ok(letterOfBo, 'the first test ran');
  const honeypot = honeypotLink(letterOfBo);
  assert.match(honeypot, /^http:\/\/127\.0\.0\.1:\d+\/c\/[A-Za-z0-9_-]+$/, 'a signed click link');
  const page = await (await browser.newContext({ viewport: { width: 390, height: 844 } })).newPage();
  await page.setContent(letterOfBo);
  const trap = page.locator('a[aria-hidden="true"]');
  assert.equal(await trap.count(), 1);
  assert.equal(await trap.getAttribute('href'), honeypot);
  assert.equal(await page.evaluate(() => document.body.firstElementChild.getAttribute('aria-hidden')), 'true', 'first in the body');
  assert.equal(await trap.isVisible(), false, 'not rendered');
  assert.equal(await trap.boundingBox(), null, 'no box in the layout');
  assert.equal(await trap.innerText(), '', 'no text, even where styles are stripped');
  // Not in what a screen reader gets: every link of the letter but this one.
  const tree = await page.locator('body').ariaSnapshot();
  const anchors = await page.locator('a').count();
  assert.equal((tree.match(/- link\b/g) ?? []).length, anchors - 1, tree);
  assert.match(tree, /link "See the toy"/);
  // Tab through every stop: the visible links are reached, the honeypot never.
  const reached = [];
  for (let i = 0; i < 12; i++) {
    await page.keyboard.press('Tab');
    reached.push(await page.evaluate(() => document.activeElement?.getAttribute('href') ?? ''));
  }
  assert.ok(reached.some((h) => visibleLinks(`<a href="${h}">`).length === 1), `visible links are reachable: ${reached}`);
  assert.ok(!reached.includes(honeypot), 'no tab stop on the honeypot');
  // With the letter's styles gone (a client that strips them), it still shows nothing.
  await page.evaluate(() => document.querySelectorAll('[style]').forEach((e) => e.removeAttribute('style')));
  assert.equal(await trap.boundingBox().then((b) => (b ? b.width * b.height : 0)), 0);
  await page.context().close();
});

test('dashboard: sign-in, numbers, chart, comparison and CSV that matches the JSON', async () => {
  const { w } = sys;
  const base = w.url.replace('127.0.0.1', 'localhost'); // Secure cookies are allowed on http://localhost
  // A second campaign, known only from tracking, to compare against.
  const signed = await api(w, 'POST', '/v1/track/links', {
    body: { campaign: 'tracked-b', contact: 'c-x', message: 'm-x', links: ['https://shop.example/b'], sent_at: Math.floor(Date.now() / 1000) - 3600 },
  });
  assert.equal(signed.status, 200, signed.text);
  await fetch(signed.json.pixel_url, { headers: { "user-agent": USER_AGENT } });
  await statsUntil(w, 'tracked-b', (x) => x.opens?.total === 1, 'open of tracked-b');

  const context = await browser.newContext({ userAgent: USER_AGENT });
  const page = await context.newPage();
  const dash = await page.goto(`${base}/dashboard`);
  assert.equal(dash.status(), 200);
  assert.match(dash.headers()['content-security-policy'], /frame-ancestors 'none'/);
  // A token without stats:read is refused, with the reason on the page.
  await page.fill('#token', w.tokens.signOnly);
  await page.click('button');
  await page.locator('.err').waitFor();
  assert.match(await page.locator('.err').innerText(), /stats:read/);
  await page.fill('#token', w.tokens.statsOnly);
  await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('button')]);
  const cookie = (await context.cookies()).find((c) => c.name === 'epistola_session');
  assert.ok(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', JSON.stringify(cookie));
  assert.ok(!cookie.value.includes(w.tokens.statsOnly), 'the session is a signed id, not the API token');
  // Ids may contain `:`; the dashboard's links encode it and its pages decode it.
  const colon = await api(w, 'POST', '/v1/track/links', {
    body: { campaign: 'news:2026-12', contact: 'c-y', message: 'm-y', links: [], sent_at: Math.floor(Date.now() / 1000) - 3600 },
  });
  assert.equal(colon.status, 200, colon.text);
  await fetch(colon.json.pixel_url, { headers: { 'user-agent': USER_AGENT } });
  await statsUntil(w, 'news:2026-12', (x) => x.opens?.total === 1, 'open of news:2026-12');
  await page.goto(`${base}/dashboard`);
  const colonLink = page.locator('a', { hasText: 'news:2026-12' }).first();
  assert.equal(await colonLink.getAttribute('href'), '/dashboard/campaigns/news%3A2026-12');
  const colonPage = await page.goto(`${base}/dashboard/campaigns/news%3A2026-12`);
  assert.equal(colonPage.status(), 200);
  assert.match(await page.locator('h1').innerText(), /news:2026-12/);
  await page.goto(`${base}/dashboard`);

  // The campaign list shows the campaign's numbers.
  const row = page.locator('tr', { has: page.locator('a', { hasText: 'Autumn toys' }) });
  const cells = await row.locator('td').allInnerTexts();
  const json = await stats(w, 'autumn');
  assert.equal(cells[2], String(json.delivery.email.sent + json.delivery.email.failed), 'sent');
  assert.equal(cells[4], String(json.opens.human.unique), 'human opens');
  assert.equal(cells[5], String(json.clicks.human.unique), 'human clicks');
  assert.equal(cells[7], '2', 'conversions');
  assert.equal(cells[8], '65.00 EUR', 'revenue');

  // The campaign page: funnel, chart with points, links with their revenue; a screenshot for the log.
  await row.locator('a').click();
  await page.waitForURL(`${base}/dashboard/campaigns/autumn`);
  assert.equal(await page.locator('[data-metric=revenue]').innerText(), '65.00 EUR');
  assert.equal(await page.locator('[data-metric=unverified]').innerText(), '0', 'both orders confirmed by the shop');
  assert.ok(await page.locator('svg.chart circle').count() >= 3, 'three lines with points');
  assert.match(await page.locator('svg.funnel').textContent(), /Orders2 \(100\.0%\)/);
  // Who opened, side by side with the estimated rate, as the API says.
  const e = json.open_estimate;
  const opened = await page.locator('table', { has: page.locator('th', { hasText: 'Opened, confirmed by a click' }) })
    .locator('tbody tr td').allInnerTexts();
  assert.deepEqual(opened.slice(0, 5), [e.sent, e.confirmed_human, e.inferred_from_clicks, e.privacy_proxy, e.scanner].map(String));
  assert.equal(opened[5], e.estimated_rate === null ? '–' : `${(e.estimated_rate * 100).toFixed(1)} %`);
  const linkRow = page.locator('tr', { hasText: '/product.html?id=7' });
  assert.deepEqual((await linkRow.locator('td').allInnerTexts()).slice(4), ['2', '65.00 EUR']);
  await page.screenshot({ path: join(SHOTS, 'dashboard-campaign.png'), fullPage: true });
  console.log(`# screenshot: ${join(SHOTS, 'dashboard-campaign.png')}`);

  // CSV downloads carry the same numbers as the JSON API.
  const summary = await page.request.get(`${base}/dashboard/campaigns/autumn/summary.csv`);
  assert.equal(summary.status(), 200);
  assert.match(summary.headers()['content-type'], /text\/csv/);
  const csv = await summary.text();
  assert.ok(csv.includes(`campaign,,,clicks,human,${json.clicks.human.total},${json.clicks.human.unique}\n`), csv);
  assert.ok(csv.includes(`campaign,,,conversions,all,${json.conversions.count},\n`), csv);
  assert.ok(csv.includes(`campaign,,,revenue_EUR,all,${json.conversions.revenue.EUR.amount},\n`), csv);
  assert.ok(csv.includes(`channel,,,sent,email,${json.delivery.email.sent},\n`), csv);
  const list = await (await page.request.get(`${base}/dashboard/campaigns.csv`)).text();
  assert.ok(list.includes('autumn,Autumn toys,done,2,2,'), list);

  // Side by side.
  await page.goto(`${base}/dashboard/compare?a=autumn&b=tracked-b`);
  const revenueRow = await page.locator('tr', { hasText: 'Revenue' }).locator('td').allInnerTexts();
  assert.deepEqual(revenueRow, ['Revenue', '65.00 EUR', '0']);
  // The chains and audience pages render (no chains in this run: an empty table).
  assert.equal((await page.goto(`${base}/dashboard/chains`)).status(), 200);
  assert.equal((await page.goto(`${base}/dashboard/audience`)).status(), 200);

  // Signing out ends the session; a cross-site sign-in POST is refused.
  await page.goto(`${base}/dashboard`);
  await Promise.all([page.waitForURL(`${base}/dashboard`), page.click('header button')]);
  assert.equal(await page.locator('#token').count(), 1, 'back at the sign-in form');
  const csrf = await fetch(`${base}/dashboard/session`, {
    method: 'POST',
    headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${w.tokens.statsOnly}`,
  });
  assert.equal(csrf.status, 403);
  const noHeaders = await fetch(`${base}/dashboard/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `token=${w.tokens.statsOnly}`,
  });
  assert.equal(noHeaders.status, 403, 'no Origin and no Sec-Fetch-Site: refused');
  assert.equal(csrf.headers.get('set-cookie'), null);
  await context.close();
});

test('site-reported orders are limited per person and campaign, however many fresh tokens the clicks mint', async () => {
  const { w } = sys;
  assert.ok(clickOfBo, 'the first test ran');
  // Every click mints a fresh token; the limit holds per person and campaign all the same.
  const statuses = [];
  const tokens = new Set();
  for (let i = 0; i < 10; i++) {
    const again = await fetch(clickOfBo, { redirect: 'manual', headers: { 'user-agent': USER_AGENT } });
    const fresh = new URL(again.headers.get('location')).searchParams.get('ep');
    tokens.add(fresh);
    const r = await fetch(`${w.url}/v1/convert`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain', origin: shopOrigin },
      body: JSON.stringify({ site: 'demo', attribution: fresh, value: '1.00', currency: 'EUR', order_id: `L-${i}` }),
    });
    statuses.push(r.status);
    await sleep(1100); // a new second, a new token
  }
  assert.ok(tokens.size >= 9, `fresh tokens: ${tokens.size}`);
  const first429 = statuses.indexOf(429);
  assert.ok(first429 > 0 && first429 <= 8, `the 11th order of the hour is refused: ${statuses}`);
  assert.ok(statuses.slice(0, first429).every((x) => x === 202) && statuses.slice(first429).every((x) => x === 429), `${statuses}`);
});
