// Rights that hold: API tokens created (only with scopes their maker holds), shown once, listed
// without secrets and revoked at once, over the API and in the dashboard (Chromium, signed in as a
// workspace admin by a mailed link); every change by a token or a user in the audit log with each
// changed field before → after, readable by the admin only, exportable as CSV, no addresses in it;
// and above APPROVAL_CONFIRM_ABOVE a campaign's last editor cannot approve it.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startSendingSystem, launchBrowser, api, dashboardCookie, daytimeZone, signInByMail, createUser } from './harness.mjs';

let w;
let mail;
before(async () => {
  ({ w, mail } = await startSendingSystem({ vars: { APPROVAL_CONFIRM_ABOVE: '1' } }));
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const as = (token) => ({ token });
const asAdmin = (extra = {}) => ({ token: w.tokens.admin, ...extra });
const sha256 = (s) => createHash('sha256').update(s).digest('hex');
const auditOf = async (query) => {
  const r = await api(w, 'GET', `/v1/audit?${query}`, asAdmin());
  assert.equal(r.status, 200, r.text);
  return r.json.entries;
};

test('API tokens: only scopes the maker holds, the secret once, revoked at once, each change audited', async () => {
  const made = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: ' Shop backend: contacts ', scopes: ['contacts:read', 'contacts:read'] } }));
  assert.equal(made.status, 201, made.text);
  assert.match(made.json.token, /^ep_[0-9a-f]{64}$/);
  assert.match(made.json.id, /^tok_[0-9a-f]{24}$/);
  assert.deepEqual([made.json.name, made.json.scopes, made.json.created_by], ['Shop backend: contacts', ['contacts:read'], 'token:admin']);
  const fresh = made.json.token;

  // It does what it was given, and nothing more.
  assert.equal((await api(w, 'GET', '/v1/contacts', as(fresh))).status, 200);
  assert.equal((await api(w, 'GET', '/v1/campaigns', as(fresh))).status, 403);

  // The list never shows a secret, nor its hash.
  const listed = await api(w, 'GET', '/v1/tokens', asAdmin());
  assert.equal(listed.status, 200, listed.text);
  const row = listed.json.tokens.find((t) => t.id === made.json.id);
  assert.deepEqual(row.scopes, ['contacts:read']);
  assert.equal(row.revoked_at, null);
  assert.ok(!listed.text.includes(fresh) && !listed.text.includes(sha256(fresh)), 'no secret, no hash');
  assert.ok(listed.json.tokens.every((t) => !('token' in t) && !('token_hash' in t)));

  // Without tokens:write: no token routes at all.
  assert.equal((await api(w, 'GET', '/v1/tokens', as(w.tokens.marketer))).status, 403);
  assert.equal((await api(w, 'POST', '/v1/tokens', { ...as(w.tokens.marketer), body: { name: 'x', scopes: ['stats:read'] } })).status, 403);

  // A token that may mint tokens cannot mint one above itself.
  const minter = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: 'minter', scopes: ['tokens:write', 'stats:read'] } }));
  assert.equal(minter.status, 201, minter.text);
  const [{ n: before }] = await w.d1('SELECT COUNT(*) AS n FROM api_tokens');
  const above = await api(w, 'POST', '/v1/tokens', { ...as(minter.json.token), body: { name: 'escalate', scopes: ['stats:read', 'campaigns:approve', 'tokens:write'] } });
  assert.equal(above.status, 403, above.text);
  assert.equal(above.json.error.fields.scopes, 'beyond your own: campaigns:approve');
  // Bad input names each field, and writes nothing.
  const bad = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: '  ', scopes: [] } }));
  assert.equal(bad.status, 400, bad.text);
  assert.deepEqual(Object.keys(bad.json.error.fields).sort(), ['name', 'scopes']);
  const unknown = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: 'x', scopes: ['stats:read', 'root'] } }));
  assert.equal(unknown.status, 400);
  assert.match(unknown.json.error.fields.scopes, /^unknown: root \(known: track:sign/);
  assert.equal((await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: 'x', scopes: ['stats:read'], admin: true } }))).status, 400);
  assert.equal((await api(w, 'POST', '/v1/tokens', asAdmin({ body: 'name=x', headers: { 'content-type': 'text/plain' } }))).status, 415);
  const [{ n: afterBad }] = await w.d1('SELECT COUNT(*) AS n FROM api_tokens');
  assert.equal(afterBad, before, 'nothing half-written');

  // Revoked: refused at its next request; a second revoke finds no live token.
  const revoked = await api(w, 'DELETE', `/v1/tokens/${made.json.id}`, asAdmin());
  assert.equal(revoked.status, 200, revoked.text);
  assert.equal((await api(w, 'GET', '/v1/contacts', as(fresh))).status, 401);
  assert.equal((await api(w, 'DELETE', `/v1/tokens/${made.json.id}`, asAdmin())).status, 404);
  assert.equal((await api(w, 'DELETE', '/v1/tokens/tok_nope', asAdmin())).status, 404);

  // The log: newest first, by whom, with before → after; the admin reads it, others do not.
  const entries = await auditOf(`subject=token:${made.json.id}`);
  assert.deepEqual(entries.map((e) => [e.action, e.actor]), [['token.revoke', 'token:admin'], ['token.create', 'token:admin']]);
  assert.deepEqual(entries[1].detail.changes, { name: [null, 'Shop backend: contacts'], scopes: [null, 'contacts:read'] });
  assert.equal(entries[0].detail.changes.revoked_at[0], null);
  assert.deepEqual(entries.map((e) => e.detail.status), [200, 201]);
  assert.ok(!JSON.stringify(entries).includes(fresh), 'the log keeps no secret');
  assert.equal((await api(w, 'GET', '/v1/audit', as(w.tokens.marketer))).status, 403);
  // Pages by cursor, and bad parameters are named.
  const first = await api(w, 'GET', '/v1/audit?actor=token:admin&limit=1', asAdmin());
  assert.equal(first.json.entries.length, 1);
  assert.ok(first.json.next_cursor);
  const second = await api(w, 'GET', `/v1/audit?actor=token:admin&limit=1&cursor=${first.json.next_cursor}`, asAdmin());
  assert.ok(second.json.entries[0].seq < first.json.entries[0].seq);
  const wrong = await api(w, 'GET', '/v1/audit?cursor=abc&limit=0', asAdmin());
  assert.equal(wrong.status, 400);
  assert.deepEqual(Object.keys(wrong.json.error.fields).sort(), ['cursor', 'limit']);
});

test('every change is logged before → after; above the threshold its last editor cannot approve a campaign', async () => {
  const zone = daytimeZone();
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    ...as(w.tokens.marketer),
    body: {
      contacts: [
        { email: 'tess.tester@example.net', name: 'Tess', time_zone: zone, tags: ['winter'], test_list: true, consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'staff list' }] },
        { email: 'rita@example.net', name: 'Rita', time_zone: zone, tags: ['winter'], consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' }] },
        { email: 'omar@example.net', name: 'Omar', time_zone: zone, tags: ['winter'], consents: [{ site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' }] },
      ],
    },
  });
  assert.equal(imported.status, 200, imported.text);
  assert.equal(imported.json.upserted, 3, imported.text);

  // One person holding both duties in one token.
  const solo = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: 'one person', scopes: ['campaigns:write', 'campaigns:approve'] } }));
  assert.equal(solo.status, 201, solo.text);
  const by = as(solo.json.token);
  const actor = `token:${solo.json.id}`;

  const tpl = { name: 'Winter letter', subject: 'Winter is here', html: '<p>Hello {{ contact.name }}</p><a href="https://shop.example/winter">Shop</a>' };
  assert.equal((await api(w, 'PUT', '/v1/templates/winter-letter', { ...by, body: tpl })).status, 200);
  assert.equal((await api(w, 'PUT', '/v1/templates/winter-letter', { ...by, body: { ...tpl, subject: 'Winter is coming' } })).status, 200);
  const put = await api(w, 'PUT', '/v1/campaigns/winter-drop', { ...by, body: { name: 'Winter drop', site: 'demo', template: 'winter-letter', purpose: 'newsletter', segment: { tag: 'winter' } } });
  assert.equal(put.status, 200, put.text);
  const tested = await api(w, 'POST', '/v1/campaigns/winter-drop/test', by);
  assert.equal(tested.status, 202, tested.text);

  // The editor approving her own campaign of more than one contact: refused, nothing moves.
  const self = await api(w, 'POST', '/v1/campaigns/winter-drop/approve', { ...by, body: { confirm_audience: 3 } });
  assert.equal(self.status, 409, self.text);
  assert.equal(self.json.error.code, 'second_approver_required');
  assert.match(self.json.error.message, new RegExp(`someone other than its last editor \\(${actor}\\)`));
  // Someone else approves (repeating the audience, as above the threshold).
  const ask = await api(w, 'POST', '/v1/campaigns/winter-drop/approve', as(w.tokens.approver));
  assert.equal(ask.json.error.code, 'confirmation_required', ask.text);
  const reach = Number(/confirm_audience: (\d+)/.exec(ask.json.error.message)[1]);
  const ok = await api(w, 'POST', '/v1/campaigns/winter-drop/approve', { ...as(w.tokens.approver), body: { confirm_audience: reach } });
  assert.equal(ok.status, 200, ok.text);

  const campaign = await auditOf('subject=winter-drop');
  assert.deepEqual(campaign.map((e) => [e.action, e.actor]), [
    ['campaign.approve', 'token:approver'],
    ['campaign.test', actor],
    ['campaign.put', actor],
  ], 'refused requests change nothing and are not logged');
  assert.deepEqual(campaign[0].detail.changes, { status: ['tested', 'approved'], audience_size: [null, reach] });
  assert.deepEqual(campaign[1].detail.changes, { status: ['draft', 'tested'] });
  assert.deepEqual(campaign[2].detail.changes.name, [null, 'Winter drop']);
  assert.equal(campaign[2].detail.status, 200);
  const template = await auditOf('subject=winter-letter');
  assert.deepEqual(template.map((e) => e.action), ['template.put', 'template.put']);
  assert.deepEqual(template[0].detail.changes, { subject: ['Winter is here', 'Winter is coming'] }, 'only what changed');

  // Erasing a contact by address: logged, and the address is nowhere in the log.
  const erased = await api(w, 'DELETE', '/v1/contacts/rita%40example.net', as(w.tokens.marketer));
  assert.equal(erased.status, 200, erased.text);
  const [erase] = await auditOf('actor=token:marketer&limit=1');
  assert.deepEqual([erase.action, erase.subject], ['contact.erase', 'an address']);
  const leaks = await w.d1("SELECT COUNT(*) AS n FROM audit_log WHERE detail LIKE '%rita@%' OR subject LIKE '%rita%'");
  assert.equal(leaks[0].n, 0);
});

test('the dashboard: an admin makes and revokes a token and reads the log; others cannot, nor can another site', async () => {
  await createUser(w, 'dana.admin@team.example', 'admin');
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext({ acceptDownloads: true });
    const page = await context.newPage();
    const userId = await signInByMail(page, w, mail, 'dana.admin@team.example');

    // Tokens: from the header, a name and a scope, the secret shown once.
    await page.click('header >> text=Tokens');
    await page.fill('#name', 'Newsletter export');
    await page.check('#scope-stats-read');
    await page.click('text=Create token');
    const secret = (await page.textContent('#new-token')).trim();
    assert.match(secret, /^ep_[0-9a-f]{64}$/);
    assert.equal((await api(w, 'GET', '/v1/stats/campaigns/winter-drop', as(secret))).status, 200, 'the new token works');
    await page.goto(`${w.url}/dashboard/tokens`);
    assert.equal(await page.locator('#new-token').count(), 0, 'shown once');
    assert.ok(!(await page.content()).includes(secret));
    // A form without a scope: the error beside the field, nothing made.
    await page.fill('#name', 'No scopes');
    await page.click('text=Create token');
    assert.match(await page.textContent('#scopes-error'), /choose at least one scope/);
    // Revoke: the token stops working at once.
    await page.click('button[aria-label="Revoke Newsletter export"]');
    await page.waitForSelector('text=revoked');
    assert.equal((await api(w, 'GET', '/v1/stats/campaigns/winter-drop', as(secret))).status, 401);

    // The audit page names the user, with the change; its CSV has every row of the filter.
    await page.click('header >> text=Audit');
    await page.fill('#actor', `user:${userId}`);
    await page.click('text=Filter');
    const text = await page.textContent('main');
    for (const action of ['token.revoke', 'token.create', 'user.signed_in']) assert.ok(text.includes(action), `${action} in ${text}`);
    assert.match(text, /scopes: — → stats:read/);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=audit.csv')]);
    const csv = await (await import('node:fs/promises')).readFile(await download.path(), 'utf8');
    const lines = csv.trim().split('\n');
    assert.equal(lines[0], 'seq,at_utc,actor,action,subject,detail');
    assert.equal(lines.length, 4, csv);
    assert.ok(lines.slice(1).every((l) => l.includes(`user:${userId}`)));
  } finally {
    await browser.close();
  }

  // Another site's page cannot make a token with the admin's session; a reader cannot see tokens.
  const cookie = await dashboardCookie(w, w.tokens.admin);
  const [{ n: tokensBefore }] = await w.d1('SELECT COUNT(*) AS n FROM api_tokens');
  const forged = await fetch(`${w.url}/dashboard/tokens`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=evil&scope=tokens:write',
  });
  assert.equal(forged.status, 403);
  const [{ n: tokensAfter }] = await w.d1('SELECT COUNT(*) AS n FROM api_tokens');
  assert.equal(tokensAfter, tokensBefore);
  const reader = await dashboardCookie(w, w.tokens.statsOnly);
  for (const path of ['/dashboard/tokens', '/dashboard/audit', '/dashboard/audit.csv']) {
    assert.equal((await fetch(`${w.url}${path}`, { headers: { cookie: reader } })).status, 403, path);
  }
  const home = await (await fetch(`${w.url}/dashboard`, { headers: { cookie: reader } })).text();
  assert.ok(!home.includes('/dashboard/tokens') && !home.includes('/dashboard/audit'));
  const readerPost = await fetch(`${w.url}/dashboard/tokens`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: reader, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'name=mine&scope=stats:read',
  });
  assert.equal(readerPost.status, 403);
});

test('users in the dashboard: an admin adds, re-roles and disables a person; roles stay within the giver\'s duties; nobody locks themself out', async () => {
  const admin = await (await launchBrowser());
  try {
    const page = await (await admin.newContext()).newPage();
    await createUser(w, 'fay.admin@team.example', 'admin');
    const fayId = await signInByMail(page, w, mail, 'fay.admin@team.example');
    await Promise.all([page.waitForURL(`${w.url}/dashboard/users`), page.click('header >> text=Users')]);
    assert.equal(await page.locator('button[aria-label="Disable fay.admin@team.example"]').count(), 0, 'no button against oneself');

    // A bad address is named beside the field; a good one adds the user as an analyst.
    await page.fill('#email', 'not-an-address');
    await page.evaluate(() => document.querySelector('#email').setAttribute('type', 'text'));
    const [bad] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('text=Add the user')]);
    assert.equal(bad.status(), 400);
    assert.ok((await page.textContent('#email-error')).length > 0);
    await page.fill('#email', 'Eve.Analyst@Team.example');
    await page.selectOption('#role', 'analyst');
    await Promise.all([page.waitForURL(`${w.url}/dashboard/users`), page.click('text=Add the user')]);
    const [{ id: eveId, role }] = await w.d1("SELECT id, role FROM users WHERE email = 'eve.analyst@team.example'");
    assert.equal(role, 'analyst');

    // Eve signs in with a mailed link, as an analyst; then her role changes under her.
    const eve = await (await admin.newContext()).newPage();
    await signInByMail(eve, w, mail, 'eve.analyst@team.example');
    assert.match(await eve.textContent('header'), /eve\.analyst@team\.example · analyst/);
    await page.selectOption('select[aria-label="Role of eve.analyst@team.example"]', 'author');
    await Promise.all([page.waitForURL(`${w.url}/dashboard/users`), page.click('button[aria-label="Change the role of eve.analyst@team.example"]')]);
    await eve.goto(`${w.url}/dashboard`);
    assert.match(await eve.textContent('header'), /· author/);
    // Disabled: her session ends at her next request.
    await Promise.all([page.waitForURL(`${w.url}/dashboard/users`), page.click('button[aria-label="Disable eve.analyst@team.example"]')]);
    await eve.goto(`${w.url}/dashboard/campaigns.csv`);
    assert.equal(await eve.locator('#email').count(), 1, 'back at the sign-in page');

    const log = await auditOf(`subject=user:${eveId}`);
    assert.deepEqual(log.map((e) => [e.action, e.actor]).slice(0, 3), [
      ['user.disabled', `user:${fayId}`], ['user.role_changed', `user:${fayId}`], ['user.signed_in', `user:${eveId}`],
    ]);
    assert.deepEqual(log[0].detail.changes, { disabled: [false, true] });
    assert.deepEqual(log[1].detail.changes, { role: ['analyst', 'author'] });
    assert.deepEqual(log.at(-1).detail.changes, { role: [null, 'analyst'] });

    // Oneself: refused even when forced.
    const cookie = (await page.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
    const self = await fetch(`${w.url}/dashboard/users/${fayId}/disable`, { method: 'POST', redirect: 'manual', headers: { cookie, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' }, body: '' });
    assert.equal(self.status, 409);
    assert.equal((await w.d1(`SELECT disabled_at FROM users WHERE id = '${fayId}'`))[0].disabled_at, null);
  } finally {
    await admin.close();
  }

  // A token that manages access but holds only stats:read gives only the analyst role.
  const made = await api(w, 'POST', '/v1/tokens', asAdmin({ body: { name: 'access desk', scopes: ['tokens:write', 'stats:read'] } }));
  assert.equal(made.status, 201, made.text);
  const desk = await dashboardCookie(w, made.json.token);
  const listing = await (await fetch(`${w.url}/dashboard/users`, { headers: { cookie: desk } })).text();
  assert.ok(listing.includes('<option value="analyst"') && !listing.includes('<option value="admin"'), 'only roles within its duties');
  const escalate = await fetch(`${w.url}/dashboard/users`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: desk, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'email=mallory%40team.example&role=admin',
  });
  assert.equal(escalate.status, 403);
  assert.match(await escalate.text(), /you can only give roles whose duties you hold, not admin/);
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM users WHERE email = 'mallory@team.example'"))[0].n, 0);
  // Nor can it disable (or re-role) someone whose duties it lacks.
  const [{ id: fay }] = await w.d1("SELECT id FROM users WHERE email = 'fay.admin@team.example'");
  const demote = await fetch(`${w.url}/dashboard/users/${fay}/disable`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: desk, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' }, body: '',
  });
  assert.equal(demote.status, 403);
  assert.equal((await w.d1(`SELECT disabled_at FROM users WHERE id = '${fay}'`))[0].disabled_at, null);
});
