// A campaign's lifecycle in the browser (Debian Chromium), by the people signed in as they
// would be: an author sends the test letter to the test list (and only to it) from the campaign
// page; the admin who last edited the campaign cannot approve it above APPROVAL_CONFIRM_ABOVE; an
// approver reads the reach, types the number (a wrong one is refused beside the field), approves,
// schedules with a countdown and cancels before it starts. Each button is the API's rule, checked
// again on the server (roles, another origin), and each step is in the audit log as that person.
// Authors also create and edit drafts with the campaign form, and write templates in the editor
// with a preview as a real contact.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, launchBrowser, api, dashboardCookie, daytimeZone, signInByMail, createUser } from './harness.mjs';

let w;
let mail;
let browser;
before(async () => {
  ({ w, mail } = await startSendingSystem({ vars: { APPROVAL_CONFIRM_ABOVE: '2' } }));
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
  await w?.stop();
  mail?.stop();
});

const statusOf = async (id) => (await w.d1(`SELECT status FROM campaigns WHERE id = '${id}'`))[0].status;
const to = (m, address) => m.to?.some((t) => t.address === address);

test('author tests, the editor cannot approve, the approver approves with the number, schedules and cancels', async () => {
  const zone = daytimeZone();
  const consent = { site: 'demo', purpose: 'newsletter', channel: 'email', source: 'checkout' };
  const imported = await api(w, 'POST', '/v1/contacts/import', {
    token: w.tokens.marketer,
    body: {
      contacts: [
        { email: 'tess.tester@example.net', name: 'Tess', time_zone: zone, tags: ['spring'], test_list: true, consents: [consent] },
        { email: 'rita@example.net', name: 'Rita', time_zone: zone, tags: ['spring'], consents: [consent] },
        { email: 'omar@example.net', name: 'Omar', time_zone: zone, tags: ['spring'], consents: [consent] },
      ],
    },
  });
  assert.equal(imported.status, 200, imported.text);
  const tpl = { name: 'Spring letter', subject: 'Spring is here, {{ contact.name }}', html: '<p>Hello {{ contact.name }}</p><a href="https://shop.example/spring">Shop</a>' };
  assert.equal((await api(w, 'PUT', '/v1/templates/spring-letter', { token: w.tokens.admin, body: tpl })).status, 200);
  const put = await api(w, 'PUT', '/v1/campaigns/spring-sale', {
    token: w.tokens.admin,
    body: { name: 'Spring sale', site: 'demo', template: 'spring-letter', purpose: 'newsletter', segment: { tag: 'spring' } },
  });
  assert.equal(put.status, 200, put.text);
  await createUser(w, 'ada.author@team.example', 'author');
  await createUser(w, 'abe.approver@team.example', 'approver');
  const campaignUrl = `${w.url}/dashboard/campaigns/spring-sale`;

  // The author: a test to the test list, from the campaign page; no way to approve.
  const author = await (await browser.newContext()).newPage();
  const adaId = await signInByMail(author, w, mail, 'ada.author@team.example');
  await author.goto(campaignUrl);
  assert.equal(await author.locator('text=Review and approve').count(), 0, 'an author does not approve');
  await Promise.all([author.waitForURL(campaignUrl), author.click('button:has-text("Send a test to the test list (1 contact)")')]);
  assert.match(await author.textContent('main'), /status tested/);
  assert.match(await author.textContent('#last-test'), /Last test letters: \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  const [testLetter] = await mail.waitFor((m) => to(m, 'tess.tester@example.net') && m.subject === 'Spring is here, Tess', { what: 'the test letter' });
  assert.ok(testLetter);
  assert.equal((await author.goto(`${campaignUrl}/approve`)).status(), 403);

  // The admin who last edited it: above the threshold, someone else must approve.
  const admin = await (await browser.newContext()).newPage();
  await admin.goto(`${w.url}/dashboard`);
  await admin.fill('#token', w.tokens.admin);
  await Promise.all([admin.waitForURL(`${w.url}/dashboard`), admin.click('button:has-text("Sign in")')]);
  await admin.goto(campaignUrl);
  await Promise.all([admin.waitForURL(`${campaignUrl}/approve`), admin.click('text=Review and approve')]);
  assert.match(await admin.textContent('#second-approver'), /You last edited this campaign, and it can reach more than 2 contacts: someone else must approve it/);
  assert.equal(await admin.locator('button:has-text("Approve")').count(), 0);
  // Forcing the form anyway: the server's rule, not the page's.
  const adminCookie = await dashboardCookie(w, w.tokens.admin);
  const forced = await fetch(`${campaignUrl}/approve`, {
    method: 'POST', redirect: 'manual',
    headers: { cookie: adminCookie, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' },
    body: 'confirm_audience=3',
  });
  assert.equal(forced.status, 409);
  assert.match(await forced.text(), /someone other than its last editor \(token:admin\) must approve it/);
  assert.equal(await statusOf('spring-sale'), 'tested');

  // The approver: the reach, the number typed (a wrong one refused beside the field), approve.
  const approver = await (await browser.newContext()).newPage();
  const abeId = await signInByMail(approver, w, mail, 'abe.approver@team.example');
  await approver.goto(campaignUrl);
  assert.equal(await approver.locator('button:has-text("Send a test")').count(), 0, 'an approver does not send tests');
  await Promise.all([approver.waitForURL(`${campaignUrl}/approve`), approver.click('text=Review and approve')]);
  assert.equal((await approver.textContent('#reach')).trim(), '3');
  const facts = await approver.textContent('main');
  assert.match(facts, /Spring is here, \{\{ contact\.name \}\}/, 'the subject as written');
  assert.match(facts, /no earlier campaign of this site and purpose/);
  assert.match(facts, /Last edited by\s*token:admin/);
  await approver.fill('#confirm_audience', '2');
  const [wrong] = await Promise.all([approver.waitForResponse((r) => r.url().endsWith('/approve') && r.request().method() === 'POST'), approver.click('button:has-text("Approve")')]);
  assert.equal(wrong.status(), 409);
  assert.equal((await approver.textContent('#confirm_audience-error')).trim(), 'The number must be 3.');
  assert.equal(await approver.getAttribute('#confirm_audience', 'aria-invalid'), 'true');
  assert.equal(await statusOf('spring-sale'), 'tested', 'a wrong number changes nothing');
  await approver.fill('#confirm_audience', '3');
  await Promise.all([approver.waitForURL(campaignUrl), approver.click('button:has-text("Approve")')]);
  assert.match(await approver.textContent('main'), /status approved/);

  // Schedule in 30 minutes: a countdown, and a cancel button before it starts.
  await approver.fill('#start-in', '30');
  await Promise.all([approver.waitForURL(campaignUrl), approver.click('button:has-text("Schedule")')]);
  assert.match(await approver.textContent('#countdown'), /^Sending starts at \d{4}-\d\d-\d\d \d\d:\d\d UTC, in (30|29) minutes\.$/);
  const [{ scheduled_at: at }] = await w.d1("SELECT scheduled_at FROM campaigns WHERE id = 'spring-sale'");
  assert.ok(Math.abs(at - (Date.now() / 1000 + 1800)) < 120, `scheduled for ${at}`);

  // Another origin cannot press the button with the approver's session.
  const cookie = (await approver.context().cookies()).map((c) => `${c.name}=${c.value}`).join('; ');
  const forged = await fetch(`${campaignUrl}/cancel`, { method: 'POST', redirect: 'manual', headers: { cookie, origin: 'https://evil.example' } });
  assert.equal(forged.status, 403);
  assert.equal(await statusOf('spring-sale'), 'scheduled');
  await Promise.all([approver.waitForURL(campaignUrl), approver.click('button:has-text("Cancel the campaign")')]);
  assert.match(await approver.textContent('main'), /Nothing left to do: this campaign is cancelled\./);
  assert.equal(await approver.locator('button:has-text("Cancel the campaign")').count(), 0);

  // Only the test letter went out; the log names each person and what changed.
  const letters = (await mail.messages()).filter((m) => /^Spring is here/.test(m.subject));
  assert.deepEqual(letters.map((m) => m.to[0].address), ['tess.tester@example.net']);
  const log = await api(w, 'GET', '/v1/audit?subject=spring-sale', { token: w.tokens.admin });
  assert.equal(log.status, 200, log.text);
  assert.deepEqual(log.json.entries.map((e) => [e.action, e.actor]), [
    ['campaign.cancel', `user:${abeId}`],
    ['campaign.schedule', `user:${abeId}`],
    ['campaign.approve', `user:${abeId}`],
    ['campaign.test', `user:${adaId}`],
    ['campaign.put', 'token:admin'],
  ]);
  assert.deepEqual(log.json.entries[1].detail.changes, { status: ['approved', 'scheduled'], scheduled_at: [null, at] });
  assert.deepEqual(log.json.entries[2].detail.changes, { status: ['tested', 'approved'], audience_size: [null, 3] });
});

test('the API: an approver token may cancel, a stats token may not; the approval screen says when there is nothing to approve', async () => {
  const tpl = { name: 'Autumn letter', subject: 'Autumn', html: '<p>Hello</p>' };
  assert.equal((await api(w, 'PUT', '/v1/templates/autumn-letter', { token: w.tokens.marketer, body: tpl })).status, 200);
  const body = { name: 'Autumn drop', site: 'demo', template: 'autumn-letter', purpose: 'newsletter', segment: { tag: 'spring' } };
  assert.equal((await api(w, 'PUT', '/v1/campaigns/autumn-drop', { token: w.tokens.marketer, body })).status, 200);
  const refused = await api(w, 'POST', '/v1/campaigns/autumn-drop/cancel', { token: w.tokens.statsOnly });
  assert.equal(refused.status, 403);
  assert.match(refused.json.error.message, /`campaigns:write` or `campaigns:approve`/);
  const cancelled = await api(w, 'POST', '/v1/campaigns/autumn-drop/cancel', { token: w.tokens.approver });
  assert.equal(cancelled.status, 200, cancelled.text);
  assert.equal(cancelled.json.status, 'cancelled');

  const cookie = await dashboardCookie(w, w.tokens.admin);
  const screen = await fetch(`${w.url}/dashboard/campaigns/autumn-drop/approve`, { headers: { cookie } });
  assert.equal(screen.status, 200);
  const html = await screen.text();
  assert.match(html, /This campaign is cancelled: only a tested campaign can be approved\./);
  assert.ok(!html.includes('<button>Approve</button>'));
  const missing = await fetch(`${w.url}/dashboard/campaigns/no-such-campaign/approve`, { headers: { cookie } });
  assert.equal(missing.status, 404);
  const reader = await dashboardCookie(w, w.tokens.statsOnly);
  assert.equal((await api(w, 'PUT', '/v1/campaigns/summer-plan', { token: w.tokens.marketer, body: { ...body, name: 'Summer plan' } })).status, 200);
  const readerPage = await (await fetch(`${w.url}/dashboard/campaigns/summer-plan`, { headers: { cookie: reader } })).text();
  assert.ok(!readerPage.includes('<form method="post" action="/dashboard/campaigns/'), 'a reader gets no buttons');
  assert.match(readerPage, /Your role reads this campaign/);
  const readerPost = await fetch(`${w.url}/dashboard/campaigns/autumn-drop/test`, { method: 'POST', redirect: 'manual', headers: { cookie: reader, origin: w.url } });
  assert.equal(readerPost.status, 403);
});

test('an author creates and edits a draft in the browser; errors sit beside their field and change nothing', async () => {
  await createUser(w, 'cleo.author@team.example', 'author');
  const page = await (await browser.newContext()).newPage();
  const cleoId = await signInByMail(page, w, mail, 'cleo.author@team.example');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/new`), page.click('text=New campaign')]);
  // Only what can be chosen: the templates, and each site's e-mail purposes (no SMS one).
  const targets = await page.locator('#target option').allTextContents();
  assert.deepEqual(targets.sort(), ['Demo toy shop — birthday_coupon', 'Demo toy shop — newsletter']);
  assert.ok((await page.locator('#template option').allTextContents()).includes('Spring letter (spring-letter)'));

  // No tag typed for "Contacts tagged": refused beside the tags field, nothing saved.
  await page.fill('#name', 'Summer preview');
  await page.selectOption('#template', 'spring-letter');
  await page.selectOption('#target', 'demo/newsletter');
  await page.check('#audience-tags');
  const [empty] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('text=Create the draft')]);
  assert.equal(empty.status(), 400);
  assert.equal((await page.textContent('#tags-error')).trim(), 'type at least one tag');
  assert.equal(await page.inputValue('#name'), 'Summer preview', 'what was typed stays');
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM campaigns WHERE id = 'summer-preview'"))[0].n, 0);
  await page.fill('#tags', 'spring, vip');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/summer-preview`), page.click('text=Create the draft')]);
  assert.match(await page.textContent('main'), /summer-preview · status draft/);
  const [row] = await w.d1("SELECT segment, edited_by FROM campaigns WHERE id = 'summer-preview'");
  assert.deepEqual(JSON.parse(row.segment), { all: [{ tag: 'spring' }, { tag: 'vip' }] });
  assert.equal(row.edited_by, `user:${cleoId}`);

  // The same name again: the id is taken, the first campaign untouched.
  await page.goto(`${w.url}/dashboard/campaigns/new`);
  await page.fill('#name', 'Summer preview');
  await page.selectOption('#target', 'demo/newsletter');
  const [taken] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('text=Create the draft')]);
  assert.equal(taken.status(), 409);
  assert.match(await page.textContent('#id-error'), /a campaign with this id exists/);

  // Edit: a broken rule is the rule field's error (the API's words); a good one saves.
  await page.goto(`${w.url}/dashboard/campaigns/summer-preview`);
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/summer-preview/edit`), page.click('text=Edit the draft')]);
  assert.equal(await page.inputValue('#tags'), 'spring, vip', 'the stored audience, as it was chosen');
  await page.check('#audience-rule');
  await page.fill('#rule', '{"any": []}');
  const [bad] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('text=Save the draft')]);
  assert.equal(bad.status(), 400);
  assert.ok((await page.textContent('#rule-error')).length > 0);
  assert.deepEqual(JSON.parse((await w.d1("SELECT segment FROM campaigns WHERE id = 'summer-preview'"))[0].segment), { all: [{ tag: 'spring' }, { tag: 'vip' }] });
  await page.fill('#rule', '{"any": [{"tag": "spring"}, {"no_open_days": 30}]}');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/summer-preview`), page.click('text=Save the draft')]);
  assert.deepEqual(JSON.parse((await w.d1("SELECT segment FROM campaigns WHERE id = 'summer-preview'"))[0].segment), { any: [{ tag: 'spring' }, { no_open_days: 30 }] });

  // An edit keeps what the form does not show: a send window set through the API stays.
  const body = { name: 'Windowed', site: 'demo', template: 'spring-letter', purpose: 'newsletter', segment: { everyone: true }, send_window: { weekdays: [1, 2], hours: [10, 17] } };
  assert.equal((await api(w, 'PUT', '/v1/campaigns/windowed', { token: w.tokens.marketer, body })).status, 200);
  await page.goto(`${w.url}/dashboard/campaigns/windowed/edit`);
  await page.fill('#name', 'Windowed, renamed');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/campaigns/windowed`), page.click('text=Save the draft')]);
  const [windowed] = await w.d1("SELECT name, send_window FROM campaigns WHERE id = 'windowed'");
  assert.equal(windowed.name, 'Windowed, renamed');
  assert.deepEqual(JSON.parse(windowed.send_window), { weekdays: [1, 2], hours: [10, 17] });

  const log = await api(w, 'GET', `/v1/audit?actor=user:${cleoId}`, { token: w.tokens.admin });
  assert.deepEqual(log.json.entries.map((e) => [e.action, e.subject]), [
    ['campaign.put', 'windowed'], ['campaign.put', 'summer-preview'], ['campaign.put', 'summer-preview'], ['user.signed_in', `user:${cleoId}`],
  ]);
  // A reader has no form, and its POST is refused.
  const reader = await dashboardCookie(w, w.tokens.statsOnly);
  assert.equal((await fetch(`${w.url}/dashboard/campaigns/new`, { headers: { cookie: reader } })).status, 403);
  const post = await fetch(`${w.url}/dashboard/campaigns`, { method: 'POST', redirect: 'manual', headers: { cookie: reader, origin: w.url, 'content-type': 'application/x-www-form-urlencoded' }, body: 'name=x&target=demo%2Fnewsletter' });
  assert.equal(post.status, 403);
});

test('an author writes a template in the browser: a preview as a real contact at two widths, errors by part and line, then saved', async () => {
  await createUser(w, 'dora.author@team.example', 'author');
  const page = await (await browser.newContext()).newPage();
  const doraId = await signInByMail(page, w, mail, 'dora.author@team.example');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/templates`), page.click('header >> text=Templates')]);
  assert.match(await page.textContent('main'), /Spring letter/);
  await Promise.all([page.waitForURL(`${w.url}/dashboard/templates/new`), page.click('text=New template')]);

  await page.fill('#name', 'Welcome letter');
  await page.fill('#subject', 'Welcome, {{ contact.name }}');
  await page.fill('#html', '<p>Hello {{ contact.name }} from {{ site.name }}</p><a href="https://shop.example/welcome?src=mail&x=1">Start shopping</a>');
  await page.fill('#contact', 'tess.tester@example.net');
  await page.selectOption('#site', 'demo');
  await page.click('button:has-text("Preview")');
  await page.waitForSelector('#preview');
  assert.equal((await page.textContent('#preview-subject')).trim(), 'Welcome, Tess');
  assert.equal((await page.textContent('#preview-to')).trim(), 'tess.tester@example.net');
  for (const id of ['#preview-desktop', '#preview-phone']) {
    assert.equal(await page.frameLocator(id).locator('text=Hello Tess from Demo toy shop').count(), 1, `${id} shows the letter`);
  }
  assert.equal(await page.getAttribute('#preview-phone', 'width'), '375');
  assert.match(await page.textContent('#preview-text'), /Hello Tess from Demo toy shop/);
  assert.deepEqual(await page.locator('#preview-links li').allTextContents(), ['https://shop.example/welcome?src=mail&x=1']);
  assert.equal(await page.inputValue('#html'), '<p>Hello {{ contact.name }} from {{ site.name }}</p><a href="https://shop.example/welcome?src=mail&x=1">Start shopping</a>', 'what was typed stays');
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM templates WHERE id = 'welcome-letter'"))[0].n, 0, 'a preview stores nothing');

  // A broken subject: its error beside the subject, with the line; nothing stored.
  await page.fill('#subject', 'Welcome, {{ contact.name');
  const [broken] = await Promise.all([page.waitForResponse((r) => r.request().method() === 'POST'), page.click('text=Save the template')]);
  assert.equal(broken.status(), 400);
  assert.match(await page.textContent('#subject-error'), /line 1/);
  assert.equal((await w.d1("SELECT COUNT(*) AS n FROM templates WHERE id = 'welcome-letter'"))[0].n, 0);
  // An unknown contact for the preview is named beside the contact field.
  await page.fill('#subject', 'Welcome, {{ contact.name }}');
  await page.fill('#contact', 'nobody@example.net');
  await page.click('button:has-text("Preview")');
  assert.match(await page.textContent('#contact-error'), /no such contact/);

  await Promise.all([page.waitForURL(`${w.url}/dashboard/templates`), page.click('text=Save the template')]);
  const [stored] = await w.d1("SELECT name, subject, html FROM templates WHERE id = 'welcome-letter'");
  assert.deepEqual([stored.name, stored.subject], ['Welcome letter', 'Welcome, {{ contact.name }}']);
  assert.match(stored.html, /Start shopping/);

  // Edit: the stored parts in the editor; a changed subject saved; the log says what changed.
  await Promise.all([page.waitForURL(`${w.url}/dashboard/templates/welcome-letter/edit`), page.click('text=Welcome letter')]);
  assert.equal(await page.inputValue('#subject'), 'Welcome, {{ contact.name }}');
  await page.fill('#subject', 'Welcome aboard, {{ contact.name }}');
  await Promise.all([page.waitForURL(`${w.url}/dashboard/templates`), page.click('text=Save the template')]);
  const log = await api(w, 'GET', '/v1/audit?subject=welcome-letter', { token: w.tokens.admin });
  assert.deepEqual(log.json.entries.map((e) => [e.action, e.actor]), [['template.put', `user:${doraId}`], ['template.put', `user:${doraId}`]]);
  assert.deepEqual(log.json.entries[0].detail.changes, { subject: ['Welcome, {{ contact.name }}', 'Welcome aboard, {{ contact.name }}'] });
});
