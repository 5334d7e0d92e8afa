// One contact's page in the browser (Debian Chromium), as an author uses it: find the person in
// the list, put them on the test list (then the campaign page's test goes to them), read their
// timeline (sign-up consent, the test letter, their click as a person), lift a suppression that
// an imported list put on their address (a reason is required and kept), download their data, and
// erase them (the address typed to confirm; a wrong one is refused and nothing is lost). Each
// change is in the audit log as that person; a read-only viewer and another origin change nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startSendingSystem, launchBrowser, api, dashboardCookie, daytimeZone, signInByMail, visibleLinks, until, createUser } from './harness.mjs';

let w;
let mail;
let browser;
before(async () => {
  ({ w, mail } = await startSendingSystem());
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await w?.stop();
  mail?.stop();
});

const PERSON = {
  'user-agent': 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36',
  accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
  'accept-language': 'uk-UA,uk;q=0.9,en;q=0.8',
  'sec-fetch-mode': 'navigate', 'sec-fetch-dest': 'document', 'sec-fetch-site': 'cross-site',
};

test('an author runs a contact from the page: test list, timeline, lift, export, erase; each audited', async () => {
  const zone = daytimeZone();
  const consent = { site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' };
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    token: w.tokens.marketer,
    body: {
      contacts: [
        { email: 'nina.kovalenko@example.net', name: 'Nina', time_zone: zone, tags: ['toys'], fields: { city: 'Lviv' }, consents: [consent] },
        { email: 'petro@example.net', name: 'Petro', time_zone: zone, tags: ['toys'], consents: [consent] },
      ],
    },
  });
  assert.equal(imported.status, 200, imported.text);
  const tpl = { name: 'Toy news', subject: 'New toys, {{ contact.name }}', html: '<p>Hello {{ contact.name }}</p><a href="https://toys.example/lego">See the new sets</a>' };
  assert.equal((await api(w, 'PUT', '/v1/templates/toy-news', { token: w.tokens.admin, body: tpl })).status, 200);
  const put = await api(w, 'PUT', '/v1/campaigns/december-toys', {
    token: w.tokens.admin,
    body: { name: 'December toys', site: 'demo', template: 'toy-news', purpose: 'newsletter', segment: { tag: 'toys' } },
  });
  assert.equal(put.status, 200, put.text);
  await createUser(w, 'ola.author@team.example', 'author');
  const [{ id: nina }] = await w.d1("SELECT id FROM contacts WHERE email = 'nina.kovalenko@example.net'");
  const contactUrl = `${w.url}/dashboard/contacts/${nina}`;

  const context = await browser.newContext();
  const page = await context.newPage();
  const ola = await signInByMail(page, w, mail, 'ola.author@team.example');
  await page.goto(`${w.url}/dashboard/contacts?query=nina`);
  await Promise.all([page.waitForURL(contactUrl), page.click('a:has-text("nina.kovalenko@example.net")')]);
  assert.match(await page.textContent('h1'), /nina\.kovalenko@example\.net/);
  assert.match(await page.textContent('main'), /Field cityLviv/);
  assert.match(await page.textContent('main'), /Not on the test list\./);
  assert.match(await page.textContent('main'), /Consent confirmed: newsletter by email on demo · imported \(source: checkout\)/);

  // On the test list: the campaign page's test goes to her, and only to her.
  await Promise.all([page.waitForURL(contactUrl), page.click('button:has-text("Put on the test list")')]);
  assert.match(await page.textContent('main'), /On the test list: test sends of every campaign go to this address\./);
  assert.deepEqual(await w.d1(`SELECT test_list FROM contacts WHERE id = '${nina}'`), [{ test_list: 1 }]);
  const [row] = await w.d1("SELECT actor, subject, detail FROM audit_log WHERE action = 'contact.test_list'");
  assert.deepEqual([row.actor, row.subject, JSON.parse(row.detail).changes], [`user:${ola}`, nina, { test_list: [false, true] }]);
  await page.goto(`${w.url}/dashboard/campaigns/december-toys`);
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/december-toys`), page.click('button:has-text("Send a test to the test list (1 contact)")')]);
  const [letter] = await mail.waitFor((m) => m.to?.some((t) => t.address === 'nina.kovalenko@example.net') && m.subject === 'New toys, Nina', { what: 'the test letter' });
  assert.equal((await mail.messages()).filter((m) => m.to?.some((t) => t.address === 'petro@example.net')).length, 0, 'a test goes to the test list only');

  // She follows the letter's link, a while after it came (within seconds of sending only
  // scanners click); her timeline says so, as a person.
  await new Promise((r) => setTimeout(r, 11_000));
  const [tracked] = visibleLinks(letter.html);
  const click = await fetch(tracked, { redirect: 'manual', headers: PERSON });
  assert.equal(click.status, 302);
  assert.equal(click.headers.get('location').split('?')[0], 'https://toys.example/lego');
  let shown = '';
  const timeline = await until('the click on the timeline', async () => {
    await page.goto(contactUrl);
    shown = await page.textContent('main');
    return /Clicked https:\/\/toys\.example\/lego in a test letter as a person/.test(shown) && shown;
  }).catch((e) => assert.fail(`${e.message}; the page said: ${shown}`));
  assert.match(timeline, /Test letter of december-toys: sent/);

  // An imported list suppresses her address: the page says so; lifting needs a reason.
  const sup = await api(w, 'POST', '/v1/suppressions/import', {
    token: w.tokens.marketer,
    body: { format: 'plain', reason: 'unsubscribed', source: 'old-esp', addresses: ['Nina.Kovalenko@example.net'] },
  });
  assert.equal(sup.status, 200, sup.text);
  await page.goto(contactUrl);
  assert.match(await page.textContent('main'), /No marketing letter goes to this address: unsubscribed \(on a list imported from old-esp\)/);
  await page.fill('#reason', '   ');
  const blank = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/lift')), page.click('button:has-text("Lift the suppression")')]);
  assert.equal(blank[0].status(), 400);
  assert.match(await page.textContent('#reason-error'), /say why/);
  assert.equal((await w.d1('SELECT count(*) AS n FROM address_suppressions'))[0].n, 1, 'nothing lifted without a reason');
  await page.fill('#reason', 'She asked on the phone to get our letters again');
  await Promise.all([page.waitForURL(contactUrl), page.click('button:has-text("Lift the suppression")')]);
  assert.doesNotMatch(await page.textContent('main'), /No marketing letter goes/);
  assert.equal((await w.d1('SELECT count(*) AS n FROM address_suppressions'))[0].n, 0);
  const [ledger] = await w.d1("SELECT action, reason, previous_reason, actor FROM suppression_ledger WHERE action = 'lifted'");
  assert.deepEqual(ledger, { action: 'lifted', reason: 'She asked on the phone to get our letters again', previous_reason: 'unsubscribed', actor: `user:${ola}` });
  const [lift] = await w.d1("SELECT actor, subject FROM audit_log WHERE action = 'suppression.lift'");
  assert.deepEqual(lift, { actor: `user:${ola}`, subject: nina });

  // Her data, as the export gives it to her.
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download everything held about them (JSON)')]);
  assert.equal(download.suggestedFilename(), `contact-${nina}.json`);
  const exported = JSON.parse(await readFile(await download.path(), 'utf8'));
  assert.equal(exported.format, 'epistola.contact-export.v1');
  assert.equal(exported.contact.email, 'nina.kovalenko@example.net');
  assert.ok(exported.contact.tracked_events.some((e) => e.kind === 'click' && e.label === 'human'));

  // Another origin cannot use her session; a reader sees the page without its buttons.
  const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(`${contactUrl}/test-list`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'on=0',
  });
  assert.equal(forged.status, 403);
  assert.deepEqual(await w.d1(`SELECT test_list FROM contacts WHERE id = '${nina}'`), [{ test_list: 1 }]);
  const minted = await api(w, 'POST', '/v1/tokens', { token: w.tokens.admin, body: { name: 'support desk', scopes: ['stats:read', 'contacts:read'] } });
  assert.equal(minted.status, 201, minted.text);
  const reader = await dashboardCookie(w, minted.json.token);
  const read = await fetch(contactUrl, { headers: { cookie: reader } });
  assert.equal(read.status, 200);
  const readHtml = await read.text();
  assert.match(readHtml, /Download everything held/);
  assert.doesNotMatch(readHtml, /Put on the test list|Take off the test list|Erase this person/);
  const readerPost = await fetch(`${contactUrl}/erase`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: reader, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'confirm=nina.kovalenko%40example.net',
  });
  assert.equal(readerPost.status, 403);
  const numbersOnly = await dashboardCookie(w, w.tokens.statsOnly);
  assert.equal((await fetch(contactUrl, { headers: { cookie: numbersOnly } })).status, 403);

  // Erasing: a wrong address is refused beside the field; the right one (any case) erases.
  await page.goto(contactUrl);
  await page.fill('#confirm', 'petro@example.net');
  const wrong = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/erase')), page.click('button:has-text("Erase this person")')]);
  assert.equal(wrong[0].status(), 400);
  assert.match(await page.textContent('#confirm-error'), /type the contact's address exactly/);
  assert.equal((await w.d1(`SELECT count(*) AS n FROM contacts WHERE id = '${nina}'`))[0].n, 1, 'nothing erased');
  await page.fill('#confirm', 'NINA.Kovalenko@example.net');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/contacts?erased=1`), page.click('button:has-text("Erase this person")')]);
  assert.match(await page.textContent('[role=status]'), /The contact was erased/);
  assert.equal((await w.d1(`SELECT count(*) AS n FROM contacts WHERE id = '${nina}'`))[0].n, 0);
  assert.equal((await w.d1("SELECT count(*) AS n FROM contacts WHERE email = 'petro@example.net'"))[0].n, 1, 'only she is erased');
  const [erased] = await w.d1("SELECT actor, subject FROM audit_log WHERE action = 'contact.erase'");
  assert.deepEqual(erased, { actor: `user:${ola}`, subject: nina });
  assert.equal((await page.goto(contactUrl)).status(), 404);
  await context.close();
});
