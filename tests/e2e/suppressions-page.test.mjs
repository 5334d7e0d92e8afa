// The suppression list in the browser (Debian Chromium), as the person who keeps the lists uses
// it: read who gets no letters and why, page through our own suppressions, import another
// sender's list (pasted, then a CSV file of hashes) with its refused lines named, look an address
// up and lift its suppression with a reason the ledger keeps. Each change is audited as that
// person and names no address; a reader and another origin change nothing.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startSendingSystem, launchBrowser, api, dashboardCookie, signInByMail, createUser } from './harness.mjs';

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

const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const count = async (sql) => (await w.d1(sql))[0].n;

test('the suppression list: counts, pages, an import with refused lines, a lookup and an audited lift', async () => {
  // 55 customers whose letters bounced in the winter sale. Their contacts come in through the
  // API; the bounces are written as the feedback consumer writes them (55 real bounces would be
  // 55 misbehaving mail servers).
  const customers = Array.from({ length: 55 }, (_, i) => ({ email: `customer${String(i).padStart(2, '0')}@shop.example`, name: `Customer ${i}` }));
  const imported = await api(w, 'POST', '/v1/contacts/import', { token: w.tokens.marketer, body: { contacts: customers } });
  assert.equal(imported.status, 200, imported.text);
  const base = Math.floor(Date.now() / 1000) - 86_400;
  await w.d1(`INSERT INTO suppressions (contact_id, reason, campaign_id, created_at)
    SELECT id, 'bounced', 'winter-sale', ${base} + CAST(substr(email, 9, 2) AS INTEGER) FROM contacts WHERE email LIKE 'customer%'`);
  await createUser(w, 'mila.lists@team.example', 'author');

  const context = await browser.newContext();
  const page = await context.newPage();
  const mila = await signInByMail(page, w, mail, 'mila.lists@team.example');
  await page.goto(`${w.url}/dashboard/contacts`);
  await Promise.all([page.waitForURL(`${w.url}/dashboard/suppressions`), page.click('header a:has-text("Suppressions")')]);
  const counts = await page.$$eval('h2:has-text("Who gets no marketing letters") + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t')));
  assert.deepEqual(counts, [['ours', 'bounced (the address does not take mail)', '55']]);

  // Newest first, 50 a page; the next page holds the oldest five.
  const newest = () => page.$$eval('h2:has-text("Newest of ours") + .wrap tbody tr td:first-child', (cells) => cells.map((c) => c.innerText));
  const first = await newest();
  assert.equal(first.length, 50);
  assert.deepEqual(first.slice(0, 2), ['customer54@shop.example', 'customer53@shop.example']);
  await page.click('a:has-text("Older")');
  assert.deepEqual(await newest(), ['customer04@shop.example', 'customer03@shop.example', 'customer02@shop.example', 'customer01@shop.example', 'customer00@shop.example']);
  assert.equal(await page.$('a:has-text("Older")'), null, 'the last page has no next');

  // An empty import is refused beside the field, and writes nothing.
  await page.goto(`${w.url}/dashboard/suppressions`);
  const empty = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/import')), page.click('button:has-text("Import")')]);
  assert.equal(empty[0].status(), 400);
  assert.match(await page.textContent('#addresses-error'), /paste at least one address/);
  assert.equal(await count('SELECT count(*) AS n FROM address_suppressions'), 0);

  // A pasted CSV export: its header is skipped, a repeat is one address, a bad line is named.
  await page.fill('#addresses', 'email,reason\n"Old.Customer@Example.org",spam\nnot an address\nold.customer@example.org;spam\n');
  await page.selectOption('#import-reason', 'complained');
  await page.fill('#source', 'Old ESP');
  await Promise.all([page.waitForResponse((r) => r.url().endsWith('/import') && r.status() === 200), page.click('button:has-text("Import")')]);
  assert.match(await page.textContent('#import + [role=status]'), /3 lines read: 1 addresses newly suppressed, 1 repeated or suppressed already, 1 refused\./);
  const refused = await page.$$eval('#import + [role=status] + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t')));
  assert.equal(refused.length, 1);
  assert.equal(refused[0][0], '3', 'line 3 is refused, by its number in the pasted text');
  assert.deepEqual(await w.d1('SELECT address_hash, reason, source FROM address_suppressions'),
    [{ address_hash: sha256('old.customer@example.org'), reason: 'complained', source: 'Old ESP' }]);
  assert.equal(await page.inputValue('#addresses'), '', 'an imported list is not kept in the form');

  // A file of hashes, as another sender exports them.
  await page.selectOption('#format', 'sha256');
  await page.setInputFiles('#file', { name: 'hashes.csv', mimeType: 'text/csv', buffer: Buffer.from(`sha256\n${sha256('sam@elsewhere.example').toUpperCase()}\nnot-a-hash\n`) });
  await Promise.all([page.waitForResponse((r) => r.url().endsWith('/import') && r.status() === 200), page.click('button:has-text("Import")')]);
  assert.match(await page.textContent('#import + [role=status]'), /2 lines read: 1 addresses newly suppressed, 0 repeated or suppressed already, 1 refused\./);
  assert.equal(await count(`SELECT count(*) AS n FROM address_suppressions WHERE address_hash = '${sha256('sam@elsewhere.example')}'`), 1);
  const imports = await w.d1("SELECT actor, subject FROM audit_log WHERE action = 'suppressions.import'");
  assert.deepEqual(imports, [{ actor: `user:${mila}`, subject: 'suppressions' }, { actor: `user:${mila}`, subject: 'suppressions' }]);

  // Looked up in any case: why it gets no letters, and where from.
  await page.fill('#address', 'OLD.customer@example.org');
  await page.click('button:has-text("Look up")');
  assert.match(await page.textContent('main'), /No marketing letter goes to old\.customer@example\.org\./);
  assert.match(await page.textContent('main'), /imported from Old ESP\s*marked a letter as spam/);
  // Lifting needs a reason; then the ledger keeps it, with her name and without the address.
  await page.fill('#reason', ' ');
  const blank = await Promise.all([page.waitForResponse((r) => r.url().endsWith('/lift')), page.click('button:has-text("Lift the suppression")')]);
  assert.equal(blank[0].status(), 400);
  assert.match(await page.textContent('#reason-error'), /say why/);
  assert.equal(await count('SELECT count(*) AS n FROM address_suppressions'), 2, 'nothing lifted without a reason');
  await page.fill('#reason', 'The old ESP flagged its own test complaint');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/suppressions?lifted=1`), page.click('button:has-text("Lift the suppression")')]);
  assert.match(await page.textContent('[role=status]'), /The suppression was lifted/);
  const lifted = await page.$$eval('h2:has-text("Lifted suppressions") + .wrap tbody tr', (rows) => rows.map((r) => r.innerText.split('\t')));
  assert.equal(lifted.length, 1);
  assert.match(lifted[0][1], new RegExp(`no contact · hash ${sha256('old.customer@example.org').slice(0, 12)}`));
  assert.deepEqual(lifted[0].slice(2), ['marked a letter as spam', 'The old ESP flagged its own test complaint', `user:${mila}`]);
  assert.equal(await count(`SELECT count(*) AS n FROM address_suppressions WHERE address_hash = '${sha256('old.customer@example.org')}'`), 0);
  const [liftRow] = await w.d1("SELECT actor, subject, detail FROM audit_log WHERE action = 'suppression.lift'");
  assert.deepEqual([liftRow.actor, liftRow.subject], [`user:${mila}`, 'an address']);
  assert.ok(!liftRow.detail.includes('old.customer'), 'the audit log names no address');
  // Lifting again: it is not suppressed any more; the page says so, and the ledger has one row.
  await page.goto(`${w.url}/dashboard/suppressions?address=old.customer%40example.org`);
  assert.match(await page.textContent('main'), /old\.customer@example\.org is not suppressed/);
  assert.equal((await page.$$('h3:has-text("Lifted before") + .wrap tbody tr')).length, 1);

  // One of ours, with its campaign and contact; a broken address is refused beside the field.
  await page.goto(`${w.url}/dashboard/suppressions?address=customer07%40shop.example`);
  assert.ok(await page.$('main a[href="/dashboard/campaigns/winter-sale"]'));
  assert.match(await page.textContent('main'), /ours\s*bounced/);
  await page.goto(`${w.url}/dashboard/suppressions?address=not-an-address`);
  assert.match(await page.textContent('#address-error'), /e-mail address/);

  // Another origin cannot use her session; a reader sees the list without its forms.
  const cookie = (await context.cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(`${w.url}/dashboard/suppressions/lift`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'address=customer07%40shop.example&reason=because',
  });
  assert.equal(forged.status, 403);
  const minted = await api(w, 'POST', '/v1/tokens', { token: w.tokens.admin, body: { name: 'list reader', scopes: ['stats:read', 'contacts:read'] } });
  assert.equal(minted.status, 201, minted.text);
  const reader = await dashboardCookie(w, minted.json.token);
  const read = await fetch(`${w.url}/dashboard/suppressions?address=customer07%40shop.example`, { headers: { cookie: reader } });
  assert.equal(read.status, 200);
  const readHtml = await read.text();
  assert.match(readHtml, /No marketing letter goes to customer07@shop\.example/);
  assert.doesNotMatch(readHtml, /Lift the suppression|Import a list/);
  const readerPost = await fetch(`${w.url}/dashboard/suppressions/lift`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: reader, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'address=customer07%40shop.example&reason=because',
  });
  assert.equal(readerPost.status, 403);
  assert.equal(await count('SELECT count(*) AS n FROM suppressions'), 55, 'none of ours was lifted');
  const numbersOnly = await dashboardCookie(w, w.tokens.statsOnly);
  assert.equal((await fetch(`${w.url}/dashboard/suppressions`, { headers: { cookie: numbersOnly } })).status, 403);
  await context.close();
});
