// The APIs the workspace pages read, through the real workers and D1: the lists
// (`GET /v1/contacts?query=&cursor=`, `/v1/templates`, `/v1/campaigns`, `/v1/chains`) with keyset
// pages that never repeat or skip a row (also rows created in the same second), searches by word,
// tag, column and custom field (Cyrillic names too); `DELETE` of drafts; and the template preview
// as one contact gets the letter, which sends, stores and counts nothing. Bad input is named.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSendingSystem, api } from './harness.mjs';

let w;
let mail;
before(async () => {
  ({ w, mail } = await startSendingSystem());
});
after(async () => {
  await w?.stop();
  mail?.stop();
});

const as = (token) => ({ token });
const get = (path, token = w.tokens.marketer) => api(w, 'GET', path, as(token));

/** Every page of a list, following next_cursor; asserts each page's size. */
async function allPages(path, key, limit) {
  const rows = [];
  let cursor = '';
  for (let pages = 0; ; pages++) {
    assert.ok(pages < 100, 'next_cursor must end');
    const sep = path.includes('?') ? '&' : '?';
    const r = await get(`${path}${sep}limit=${limit}&cursor=${encodeURIComponent(cursor)}`);
    assert.equal(r.status, 200, r.text);
    assert.ok(r.json[key].length <= limit);
    rows.push(...r.json[key]);
    if (r.json.next_cursor === null) return rows;
    assert.equal(r.json[key].length, limit, 'only the last page is short');
    cursor = r.json.next_cursor;
  }
}

const ids = (rows) => rows.map((r) => r.id);
const emails = (r) => r.json.contacts.map((c) => c.email).sort();

test('contacts: keyset pages newest first, every contact exactly once, and searches', async () => {
  // 123 contacts in one import share one created_at: the id breaks the tie, so no page repeats a row.
  const bulk = Array.from({ length: 120 }, (_, i) => ({ email: `bulk${String(i).padStart(3, '0')}@list.example`, tags: i % 3 === 0 ? ['third'] : [] }));
  const people = [
    { email: 'olena.k@example.org', name: 'Olena Kovalenko', locale: 'uk', tags: ['vip'], fields: { city: 'Kyiv' } },
    { email: 'o.shevchenko@example.com', name: 'Олена Шевченко', locale: 'uk', fields: { city: 'New York' } },
    { email: 'mark@example.com', name: 'Mark Olenev', locale: 'en', tags: ['vip'], fields: { city: 'New York', shoe_size: '42' } },
  ];
  const imported = await api(w, 'POST', '/v1/contacts/import', { ...as(w.tokens.marketer), body: { contacts: [...bulk, ...people] } });
  assert.equal(imported.status, 200, imported.text);
  assert.equal(imported.json.upserted, 123);
  await new Promise((r) => setTimeout(r, 1100));
  const late = await api(w, 'POST', '/v1/contacts', { ...as(w.tokens.marketer), body: { email: 'late@list.example', name: 'Late' } });
  assert.equal(late.status, 200, late.text);

  const rows = await allPages('/v1/contacts', 'contacts', 50);
  assert.equal(rows.length, 124);
  assert.equal(new Set(ids(rows)).size, 124, 'no contact twice');
  assert.equal(rows[0].email, 'late@list.example', 'newest first');
  for (let i = 1; i < rows.length; i++) {
    const [a, b] = [rows[i - 1], rows[i]];
    assert.ok(a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id), `order at ${i}`);
  }
  const mark = rows.find((c) => c.email === 'mark@example.com');
  assert.deepEqual(mark.tags, ['vip']);
  assert.equal(mark.test_list, false);
  assert.equal(typeof mark.created_at, 'number');

  const search = async (query) => {
    const r = await get(`/v1/contacts?query=${encodeURIComponent(query)}`, w.tokens.marketer);
    assert.equal(r.status, 200, `${query}: ${r.text}`);
    return r;
  };
  // A word is looked for in the address and the name, case-insensitively (Cyrillic as well).
  assert.deepEqual(emails(await search('olen')), ['mark@example.com', 'olena.k@example.org']);
  assert.deepEqual(emails(await search('OLENA')), ['olena.k@example.org']);
  assert.deepEqual(emails(await search('ОЛЕНА'.toLowerCase())), ['o.shevchenko@example.com']);
  assert.deepEqual(emails(await search('Олена')), ['o.shevchenko@example.com']);
  assert.deepEqual(emails(await search('@example.org')), ['olena.k@example.org']);
  // Terms are ANDed: tag, column, custom field (quoted with a space), and a word.
  assert.deepEqual(emails(await search('tag:vip')), ['mark@example.com', 'olena.k@example.org']);
  assert.deepEqual(emails(await search('tag:vip locale:uk')), ['olena.k@example.org']);
  assert.deepEqual(emails(await search('city:"New York"')), ['mark@example.com', 'o.shevchenko@example.com']);
  assert.deepEqual(emails(await search('city:"New York" shoe_size:42')), ['mark@example.com']);
  assert.deepEqual(emails(await search('email:MARK@example.com')), ['mark@example.com']);
  const none = await search('tag:vip nobody');
  assert.deepEqual(none.json, { contacts: [], next_cursor: null });
  // A search pages like the full list.
  const thirds = await allPages(`/v1/contacts?query=${encodeURIComponent('tag:third @list.example')}`, 'contacts', 7);
  assert.equal(thirds.length, 40);
  assert.equal(new Set(ids(thirds)).size, 40);
  // A form's GET sends spaces as '+'.
  const form = await get('/v1/contacts?query=tag%3Avip+locale%3Auk');
  assert.deepEqual(emails(form), ['olena.k@example.org']);
});

test('contacts list: bad parameters are named, scopes are checked', async () => {
  const bad = [
    ['/v1/contacts?limit=0', 'limit'],
    ['/v1/contacts?limit=201', 'limit'],
    ['/v1/contacts?limit=many', 'limit'],
    ['/v1/contacts?cursor=not-a-cursor', 'cursor'],
    ['/v1/contacts?cursor=12%3Abad%20id', 'cursor'],
    ['/v1/contacts?query=%E2%28', 'query'],
    ['/v1/contacts?query=tag%3A', 'query'],
    ['/v1/contacts?query=a+b+c+d+e+f+g+h+i', 'query'],
    ['/v1/campaigns?status=sent', 'status'],
    ['/v1/campaigns?site=no%20such', 'site'],
    ['/v1/templates?cursor=x', 'cursor'],
    ['/v1/chains?limit=-1', 'limit'],
  ];
  for (const [path, field] of bad) {
    const r = await get(path);
    assert.equal(r.status, 400, `${path}: ${r.text}`);
    assert.equal(r.json.error.code, 'invalid_request', path);
    assert.deepEqual(Object.keys(r.json.error.fields), [field], path);
  }
  assert.equal((await get('/v1/contacts', w.tokens.statsOnly)).status, 403, 'contacts:read is needed');
  assert.equal((await get('/v1/campaigns', w.tokens.approver)).status, 403, 'campaigns:write is needed');
  assert.equal((await api(w, 'GET', '/v1/templates', { token: null })).status, 401);
  const patch = await api(w, 'PATCH', '/v1/campaigns', as(w.tokens.marketer));
  assert.equal(patch.status, 405);
  assert.equal(patch.headers.get('allow'), 'GET');
});

test('templates, campaigns and chains: lists, filters, and only drafts can be deleted', async () => {
  const m = w.tokens.marketer;
  for (const id of ['welcome-letter', 'autumn-letter', 'spare-letter']) {
    const t = await api(w, 'PUT', `/v1/templates/${id}`, { ...as(m), body: { name: `Name of ${id}`, subject: 'Hello', html: '<p>Hi</p>', text: id === 'autumn-letter' ? 'Hi' : undefined } });
    assert.equal(t.status, 200, t.text);
  }
  const templates = await allPages('/v1/templates', 'templates', 2);
  assert.deepEqual(ids(templates).sort(), ['autumn-letter', 'spare-letter', 'welcome-letter']);
  const autumn = templates.find((t) => t.id === 'autumn-letter');
  assert.equal(autumn.name, 'Name of autumn-letter');
  assert.equal(autumn.has_text, true);
  assert.equal(autumn.html, undefined, 'bodies are read one by one');

  const campaign = (id, template) => api(w, 'PUT', `/v1/campaigns/${id}`, {
    ...as(m), body: { name: `Campaign ${id}`, site: 'demo', template, purpose: 'newsletter', segment: { tag: 'vip' } },
  });
  assert.equal((await campaign('autumn-sale', 'autumn-letter')).status, 200);
  assert.equal((await campaign('winter-sale', 'autumn-letter')).status, 200);
  assert.equal((await campaign('spring-sale', 'welcome-letter')).status, 200);
  assert.equal((await api(w, 'POST', '/v1/campaigns/winter-sale/cancel', as(m))).status, 200);
  const all = await allPages('/v1/campaigns', 'campaigns', 50);
  assert.deepEqual(ids(all).sort(), ['autumn-sale', 'spring-sale', 'winter-sale']);
  assert.equal(all.find((c) => c.id === 'autumn-sale').template_id, 'autumn-letter');
  const drafts = await get('/v1/campaigns?status=draft&site=demo');
  assert.deepEqual(ids(drafts.json.campaigns).sort(), ['autumn-sale', 'spring-sale']);
  assert.deepEqual((await get('/v1/campaigns?site=elsewhere')).json.campaigns, []);

  // A template in use stays, and the answer names who uses it.
  const used = await api(w, 'DELETE', '/v1/templates/autumn-letter', as(m));
  assert.equal(used.status, 409, used.text);
  assert.equal(used.json.error.code, 'not_deletable');
  assert.match(used.json.error.message, /campaign autumn-sale/);
  assert.match(used.json.error.message, /campaign winter-sale/);
  // A cancelled campaign is history, not a draft.
  const cancelled = await api(w, 'DELETE', '/v1/campaigns/winter-sale', as(m));
  assert.equal(cancelled.status, 409);
  assert.match(cancelled.json.error.message, /cancelled/);
  const gone = await api(w, 'DELETE', '/v1/campaigns/autumn-sale', as(m));
  assert.equal(gone.status, 200, gone.text);
  assert.deepEqual(gone.json, { deleted: 'campaign', id: 'autumn-sale' });
  assert.equal((await get('/v1/campaigns/autumn-sale')).status, 404);
  assert.equal((await api(w, 'DELETE', '/v1/campaigns/autumn-sale', as(m))).status, 404);
  assert.equal((await api(w, 'DELETE', '/v1/templates/spare-letter', as(w.tokens.statsOnly))).status, 403);
  assert.equal((await api(w, 'DELETE', '/v1/templates/spare-letter', as(m))).status, 200);
  assert.deepEqual(ids((await get('/v1/templates')).json.templates).sort(), ['autumn-letter', 'welcome-letter']);

  // Chains: a draft goes, an activated chain stays; a chain's template is in use.
  const chain = (id) => api(w, 'PUT', `/v1/chains/${id}`, {
    ...as(m), body: { name: `Chain ${id}`, site: 'demo', purpose: 'offers', trigger: 'cart.abandoned', steps: [{ delay_seconds: 3600, template: 'welcome-letter' }, { delay_seconds: 86400, template: 'welcome-letter' }] },
  });
  assert.equal((await chain('cart-reminder')).status, 200);
  assert.equal((await chain('idea-draft')).status, 200);
  assert.equal((await api(w, 'POST', '/v1/chains/cart-reminder/activate', as(w.tokens.approver))).status, 200);
  const chains = await get('/v1/chains');
  assert.deepEqual(chains.json.chains.map((c) => [c.id, c.status, c.steps]).sort(), [['cart-reminder', 'active', 2], ['idea-draft', 'draft', 2]]);
  const active = await api(w, 'DELETE', '/v1/chains/cart-reminder', as(m));
  assert.equal(active.status, 409);
  assert.match(active.json.error.message, /the chain is active/);
  assert.equal((await api(w, 'DELETE', '/v1/chains/idea-draft', as(m))).status, 200);
  assert.deepEqual(ids((await get('/v1/chains')).json.chains), ['cart-reminder']);
  const inChain = await api(w, 'DELETE', '/v1/templates/welcome-letter', as(m));
  assert.equal(inChain.status, 409);
  assert.match(inChain.json.error.message, /chain cart-reminder/);
});

test('template preview: the letter as one contact gets it, unsaved edits, and nothing sent or counted', async () => {
  const m = w.tokens.marketer;
  const contact = await api(w, 'POST', '/v1/contacts', {
    ...as(m), body: { email: 'Preview.Person@Example.net', name: 'Ірина', locale: 'uk', fields: { first_name: 'Iryna', city: 'Lviv' } },
  });
  assert.equal(contact.status, 200, contact.text);
  const stored = {
    name: 'City letter',
    subject: 'News for {{ contact.first_name | default("you") }}',
    html: '<html><body><p>Hello {{ contact.fields.first_name }} from {{ contact.city }} ({{ site.name }})</p>'
      + '<a href="https://shop.example/city/{{ contact.city | lower }}">City picks</a> '
      + '<a href="https://shop.example/help" data-epistola-track="off">Help</a></body></html>',
    text: 'Hello {{ contact.first_name }}',
  };
  assert.equal((await api(w, 'PUT', '/v1/templates/city-letter', { ...as(m), body: stored })).status, 200);

  const p = await api(w, 'POST', '/v1/templates/city-letter/preview', { ...as(m), body: { contact: 'preview.person@example.net', site: 'demo' } });
  assert.equal(p.status, 200, p.text);
  const v = p.json.preview;
  assert.equal(v.contact, contact.json.contact.id);
  assert.equal(v.to, 'preview.person@example.net');
  assert.equal(v.subject, 'News for Iryna');
  assert.match(v.html, /Hello Iryna from Lviv \(/);
  assert.match(v.text, /^Hello Iryna\n/);
  assert.match(v.text, /Unsubscribe: http/, 'the plain part as sent, with its unsubscribe line');
  assert.deepEqual(v.links, [{ index: 0, url: 'https://shop.example/city/lviv' }], 'only tracked links are listed');
  assert.match(v.html, /href="https:\/\/shop.example\/help"/, 'an untracked link stays as written');
  assert.match(v.html, /\/o\/[^"]+\.gif/, 'the pixel is there, as in the letter');
  assert.match(v.html, />Unsubscribe</);
  // The preview's tokens verify nowhere: following its link or loading its pixel counts nothing.
  const click = v.html.match(/href="(http[^"]+\/c\/[^"]+)"/g).map((h) => h.slice(6, -1));
  for (const href of click) {
    const r = await fetch(href.replace(/^https?:\/\/[^/]+/, w.url), { redirect: 'manual' });
    assert.notEqual(r.status, 302, 'a preview link does not redirect');
    await r.arrayBuffer();
  }
  const pixel = v.html.match(/src="(http[^"]+\/o\/[^"]+\.gif)"/)[1];
  const img = await fetch(pixel.replace(/^https?:\/\/[^/]+/, w.url));
  assert.equal(img.status, 200, 'the pixel is always served');
  assert.equal((await img.arrayBuffer()).byteLength, 43);
  await new Promise((r) => setTimeout(r, 1500));
  const [events] = await w.d1("SELECT COUNT(*) AS n FROM events WHERE campaign_id = 'preview'");
  assert.equal(events.n, 0, 'nothing counted');
  const [sends] = await w.d1("SELECT COUNT(*) AS n FROM sends WHERE campaign_id = 'preview'");
  assert.equal(sends.n, 0, 'nothing sent');
  assert.equal((await mail.messages()).filter((x) => x.subject === 'News for Iryna').length, 0);

  // Unsaved edits replace the stored parts for the preview only.
  const edited = await api(w, 'POST', '/v1/templates/city-letter/preview', {
    ...as(m), body: { contact: v.contact, site: 'demo', subject: 'Edited for {{ contact.name }}' },
  });
  assert.equal(edited.status, 200, edited.text);
  assert.equal(edited.json.preview.subject, 'Edited for Ірина');
  assert.equal((await get('/v1/templates/city-letter')).json.template.subject, stored.subject, 'the stored template is unchanged');
  // A template not stored yet: subject and html are needed.
  const fresh = await api(w, 'POST', '/v1/templates/not-yet-saved/preview', { ...as(m), body: { contact: v.contact, site: 'demo' } });
  assert.equal(fresh.status, 400);
  assert.deepEqual(Object.keys(fresh.json.error.fields).sort(), ['html', 'subject']);
  const draft = await api(w, 'POST', '/v1/templates/not-yet-saved/preview', { ...as(m), body: { contact: v.contact, site: 'demo', subject: 'S', html: '<p>{{ contact.email }}</p>' } });
  assert.equal(draft.status, 200, draft.text);
  assert.match(draft.json.preview.html, /preview\.person@example\.net/);

  // Bad input: each field named.
  const bad = [
    [{ contact: 'nobody@example.net', site: 'demo' }, ['contact']],
    [{ contact: v.contact, site: 'elsewhere' }, ['site']],
    [{ contact: 'nobody@example.net', site: 'elsewhere' }, ['contact', 'site']],
    [{ contact: v.contact, site: 'demo', html: '<p>\n{{ contact.name </p>' }, ['html']],
    [{ contact: v.contact, site: 'demo', subject: 'Hi {{ campaign.title }}' }, ['subject']],
    [{ contact: v.contact, site: 'demo', colour: 'red' }, ['colour']],
  ];
  for (const [body, fields] of bad) {
    const r = await api(w, 'POST', '/v1/templates/city-letter/preview', { ...as(m), body });
    assert.equal(r.status, 400, `${JSON.stringify(body)}: ${r.text}`);
    assert.deepEqual(Object.keys(r.json.error.fields ?? {}).sort(), fields, JSON.stringify(body));
  }
  const line = await api(w, 'POST', '/v1/templates/city-letter/preview', { ...as(m), body: bad[3][0] });
  assert.match(line.json.error.fields.html, /^line 2:/);
  assert.equal((await api(w, 'POST', '/v1/templates/city-letter/preview', { token: w.tokens.statsOnly, body: bad[0][0] })).status, 403);
  assert.equal((await api(w, 'GET', '/v1/templates/city-letter/preview', as(m))).status, 405);
});
