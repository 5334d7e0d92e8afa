//! Campaign sending: the cron tick fans audiences out into chunks on the SENDS queue and re-queues
//! deferred sends that are due; the consumer runs each chunk through the send-time guardrails
//! (`core::policy`), composes (`sender::compose`) and delivers. Every message has a send key
//! (`campaign.{campaign}.{contact}`, or `test.{campaign}.{run}.{contact}`), claimed before
//! delivery, so redelivered chunks and overlapping runs send nothing twice.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use epistola_core::campaign::WindowInput;
use epistola_core::consent::{current, Action, Entry};
use epistola_core::contact::{address_hash, attributes, utc_offset_seconds};
use epistola_core::event::{CampaignChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::policy::{decide, Decision, Limits, Outgoing, Recipient, SendKind};
use epistola_core::segment::{self, Facts, Rule};
use epistola_core::site::Channel;
use epistola_sender::compose::{compose, Campaign, Recipient as LetterRecipient};
use epistola_sender::smtp::Envelope;
use epistola_sender::template::{Compiled, TemplateSource};
use epistola_worker_kit::db::enqueue_batch;
use serde_json::json;
use worker::Env;

use crate::doi::JobOutcome;
use crate::store::{self, CampaignRow, CampaignSend, ContactRow, TemplateRow};
use crate::{bindings, config, mailer};

/// Contacts read per fan-out page, and pages per tick (bounded work per cron run).
const PAGE: usize = 1000;
const PAGES_PER_TICK: usize = 20;
/// How long a re-queued deferred send is leased before the tick may queue it again.
const DEFERRED_LEASE_SECONDS: u64 = 900;
/// Var: JSON send limits (caps, quiet hours); see `core::policy::Limits`.
pub const SEND_LIMITS: &str = "SEND_LIMITS";

thread_local! {
    // Compiled templates per isolate, keyed by (id, updated_at): a chunk compiles nothing new.
    static TEMPLATES: RefCell<HashMap<(String, i64), Rc<Compiled>>> = RefCell::new(HashMap::new());
}

fn compiled(t: &TemplateRow) -> Option<Rc<Compiled>> {
    let key = (t.id.clone(), t.updated_at);
    if let Some(c) = TEMPLATES.with(|m| m.borrow().get(&key).cloned()) {
        return Some(c);
    }
    let source = TemplateSource {
        subject: t.subject.clone(),
        html: t.html.clone(),
        text: t.text.clone(),
        sms: t.sms.clone(),
    };
    match Compiled::new(&source) {
        Ok(c) => {
            let c = Rc::new(c);
            TEMPLATES.with(|m| {
                let mut m = m.borrow_mut();
                if m.len() > 50 {
                    m.clear();
                }
                m.insert(key, c.clone());
            });
            Some(c)
        }
        Err(e) => {
            // Checked at save time; reaching this means the engine changed under a stored template.
            worker::console_error!("template {} no longer compiles: {e}", t.id);
            None
        }
    }
}

fn limits(env: &Env) -> Limits {
    match config::text(env, SEND_LIMITS) {
        Some(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            worker::console_error!("{SEND_LIMITS} is invalid ({e}); using the defaults");
            Limits::default()
        }),
        None => Limits::default(),
    }
}

/// The attribute map of a contact (standard attributes + custom fields).
fn contact_attributes(c: &ContactRow) -> BTreeMap<String, String> {
    let custom: BTreeMap<String, String> =
        serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&c.fields)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect();
    attributes(
        &[
            ("name", c.name.as_deref()),
            ("gender", c.gender.as_deref()),
            ("birthday", c.birthday.as_deref()),
            ("locale", c.locale.as_deref()),
            ("time_zone", c.time_zone.as_deref()),
        ],
        &custom,
    )
}

fn tags(c: &ContactRow) -> BTreeSet<String> {
    c.tags
        .as_deref()
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tick: fan-out and deferred sends.

/// Called by the edge worker's cron (through the service binding). Returns what it queued.
pub async fn tick(env: &Env, now: u64) -> worker::Result<serde_json::Value> {
    let mut queued = 0usize;
    let mut finished = Vec::new();
    for campaign in store::campaigns_to_fan_out(env, now).await? {
        let (n, done) = fan_out(env, &campaign, now).await?;
        queued += n;
        if done {
            finished.push(campaign.id.clone());
        }
    }
    let due = store::due_deferred(env, now, DEFERRED_LEASE_SECONDS).await?;
    let mut by_campaign: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for d in &due {
        by_campaign
            .entry(d.campaign_id.clone())
            .or_default()
            .push(d.contact_id.clone());
    }
    let mut jobs = Vec::new();
    for (campaign, contacts) in by_campaign {
        let base_url = store::get_campaign(env, &campaign)
            .await?
            .map(|c| c.base_url)
            .unwrap_or_default();
        for chunk in contacts.chunks(CAMPAIGN_CHUNK) {
            jobs.push(SendJob::CampaignChunkV1(CampaignChunk {
                campaign: campaign.clone(),
                contacts: chunk.to_vec(),
                test_run: None,
                base_url: base_url.clone(),
            }));
        }
    }
    enqueue_batch(env, bindings::SENDS, &jobs).await?;
    Ok(json!({ "queued": queued, "requeued_deferred": due.len(), "finished": finished }))
}

/// Schedules up to PAGES_PER_TICK pages of a sending campaign's audience. Segment rules are
/// applied here; consent, suppression and timing are checked at send time. Chunks are queued
/// before the cursor moves, so a crash re-queues a page (harmless: send keys) rather than losing it.
async fn fan_out(env: &Env, c: &CampaignRow, now: u64) -> worker::Result<(usize, bool)> {
    let Ok(rule) = serde_json::from_str::<serde_json::Value>(&c.segment)
        .map_err(|e| e.to_string())
        .and_then(|v| segment::parse(&v).map_err(|e| e.to_string()))
    else {
        worker::console_error!("campaign {}: stored segment is invalid", c.id);
        return Ok((0, false));
    };
    let mut cursor = c.cursor.clone();
    let mut queued = 0;
    for _ in 0..PAGES_PER_TICK {
        let page = store::contacts_page(env, &cursor, PAGE).await?;
        let finished = page.len() < PAGE;
        let selected = select(env, &rule, &page, now).await?;
        let jobs: Vec<SendJob> = selected
            .chunks(CAMPAIGN_CHUNK)
            .map(|chunk| {
                SendJob::CampaignChunkV1(CampaignChunk {
                    campaign: c.id.clone(),
                    contacts: chunk.to_vec(),
                    test_run: None,
                    base_url: c.base_url.clone(),
                })
            })
            .collect();
        enqueue_batch(env, bindings::SENDS, &jobs).await?;
        queued += selected.len();
        let next = page.last().map_or(cursor.clone(), |k| k.id.clone());
        if !store::advance_cursor(env, &c.id, &cursor, &next, finished, now).await? {
            // Cancelled, or another tick moved on: stop here.
            return Ok((queued, false));
        }
        if finished {
            return Ok((queued, true));
        }
        cursor = next;
    }
    Ok((queued, false))
}

async fn select(
    env: &Env,
    rule: &Rule,
    page: &[ContactRow],
    now: u64,
) -> worker::Result<Vec<String>> {
    let mut engaged: HashMap<String, Facts> = HashMap::new();
    if segment::needs_engagement(rule) && !page.is_empty() {
        let ids: Vec<String> = page.iter().map(|c| c.id.clone()).collect();
        let (seen, last) = store::engagement(env, &ids).await?;
        for (contact, campaign, metric) in seen {
            let f = engaged.entry(contact).or_default();
            if metric == "open" {
                f.opened.insert(campaign);
            } else {
                f.clicked.insert(campaign);
            }
        }
        for (contact, at) in last {
            engaged.entry(contact).or_default().last_open = Some(at);
        }
    }
    Ok(page
        .iter()
        .filter(|c| {
            let mut facts = engaged.remove(&c.id).unwrap_or_default();
            facts.attributes = contact_attributes(c);
            facts.tags = tags(c);
            segment::matches(rule, &facts, now)
        })
        .map(|c| c.id.clone())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Chunk: guardrails, compose, deliver.

pub async fn run_chunk(env: &Env, chunk: &CampaignChunk, now: u64) -> JobOutcome {
    match try_chunk(env, chunk, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            worker::console_error!("campaign {} chunk: {e}", chunk.campaign);
            JobOutcome::Retry
        }
    }
}

async fn try_chunk(env: &Env, chunk: &CampaignChunk, now: u64) -> worker::Result<JobOutcome> {
    let Some(campaign) = store::get_campaign(env, &chunk.campaign).await? else {
        worker::console_warn!("chunk for unknown campaign {}", chunk.campaign);
        return Ok(JobOutcome::Done);
    };
    let test = chunk.test_run.is_some();
    if campaign.status == "cancelled"
        || (!test && !matches!(campaign.status.as_str(), "sending" | "done"))
    {
        return Ok(JobOutcome::Done);
    }
    let (Some(template), Some(site)) = (
        store::get_template(env, &campaign.template_id).await?,
        store::get_site(env, &campaign.site_id).await?,
    ) else {
        worker::console_error!("campaign {}: template or site is gone", campaign.id);
        return Ok(JobOutcome::Done);
    };
    let Some(compiled) = compiled(&template) else {
        return Ok(JobOutcome::Done);
    };
    let Some(keys) = config::keyring(env) else {
        return Ok(JobOutcome::Retry);
    };
    let limits = limits(env);
    let send_key = |contact: &str| match &chunk.test_run {
        Some(run) => format!("test.{}.{run}.{contact}", campaign.id),
        None => format!("campaign.{}.{contact}", campaign.id),
    };
    let keys_wanted: Vec<String> = chunk.contacts.iter().map(|c| send_key(c)).collect();
    let longest_cap = limits.caps.iter().map(|(w, _)| *w).max().unwrap_or(0);
    let mut facts = store::chunk_facts(
        env,
        &campaign.site_id,
        &chunk.contacts,
        &keys_wanted,
        now.saturating_sub(longest_cap),
    )
    .await?;
    let hashes: Vec<String> = facts
        .contacts
        .iter()
        .map(|c| address_hash(&c.email))
        .collect();
    let address_suppressed = store::suppressed_hashes(env, &hashes).await?;
    let audience: Vec<(String, String)> =
        serde_json::from_str::<BTreeMap<String, String>>(&template.audience)
            .unwrap_or_default()
            .into_iter()
            .collect();
    let window = campaign
        .send_window
        .as_deref()
        .and_then(|w| serde_json::from_str::<WindowInput>(w).ok())
        .map(|w| w.to_window());
    let outgoing = Outgoing {
        kind: if test {
            SendKind::Test
        } else {
            SendKind::Campaign
        },
        purpose: &campaign.purpose,
        channel: Channel::Email,
        audience_tags: &audience,
        window: window.as_ref(),
    };
    let letter = Campaign {
        id: &campaign.id,
        template: &compiled,
        base_url: &chunk.base_url,
        from_name: &site.name,
        from: &site.from_email,
        anonymous: campaign.anonymous == 1,
        keys: &keys,
        now,
    };
    let helo = chunk
        .base_url
        .split("://")
        .nth(1)
        .unwrap_or("epistola.invalid");
    let helo = helo.split([':', '/']).next().unwrap_or(helo);
    let mut outcome = JobOutcome::Done;
    let mut links_registered = false;
    let contacts = std::mem::take(&mut facts.contacts);
    for contact in &contacts {
        let key = send_key(&contact.id);
        let entries: Vec<Entry> = facts
            .ledger
            .iter()
            .filter(|(k, ..)| *k == contact.id)
            .filter_map(|(_, purpose, channel, action)| {
                Some(Entry {
                    purpose: purpose.clone(),
                    channel: Channel::parse(channel)?,
                    action: Action::parse(action)?,
                })
            })
            .collect();
        // Consent counts once the address is confirmed (double opt-in or an importer's word).
        let consents = if contact.status == "confirmed" {
            current(&entries)
        } else {
            BTreeMap::new()
        };
        let attrs = contact_attributes(contact);
        let recent = facts.recent.get(&contact.id).cloned().unwrap_or_default();
        let status = facts.send_status.get(&key).map(String::as_str);
        let recipient = Recipient {
            suppressed: facts.suppressed.contains(&contact.id)
                || address_suppressed.contains(&address_hash(&contact.email)),
            consents: &consents,
            attributes: &attrs,
            on_test_list: contact.test_list == 1,
            already_sent: matches!(status, Some("sent" | "failed" | "skipped" | "sending")),
            recent_sends: &recent,
            utc_offset_seconds: contact
                .time_zone
                .as_deref()
                .and_then(|tz| utc_offset_seconds(tz, now))
                .unwrap_or(0),
        };
        let mut record = CampaignSend {
            send_key: &key,
            kind: if test { "test" } else { "campaign" },
            contact: &contact.id,
            campaign: if test { None } else { Some(&campaign.id) },
            status: "",
            reason: None,
            detail: None,
            due_at: None,
        };
        match decide(&outgoing, &recipient, &limits, now) {
            // Already final (or in flight elsewhere): nothing to do, nothing to count again.
            Decision::Skip(epistola_core::policy::SkipReason::AlreadySent) => {}
            Decision::Skip(reason) => {
                record.status = "skipped";
                record.reason = Some(reason.as_str());
                store::record_campaign_send(env, &record, false, now).await?;
            }
            Decision::Defer { until, reason } => {
                record.status = "deferred";
                record.reason = Some(reason.as_str());
                record.due_at = Some(until);
                store::record_campaign_send(env, &record, false, now).await?;
            }
            Decision::Send => {
                if !store::claim_send(env, &record, now).await? {
                    continue;
                }
                // Attributes that are not set are left out (undefined), so `default(...)` applies;
                // a JSON null would render as "none".
                let mut person: serde_json::Map<String, serde_json::Value> =
                    attrs.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
                person.insert("email".into(), json!(contact.email));
                person.insert("attributes".into(), json!(attrs));
                let context = json!({
                    "contact": person,
                    "campaign": { "id": campaign.id, "name": campaign.name },
                    "site": { "name": site.name },
                });
                let composed = match compose(
                    &letter,
                    &LetterRecipient {
                        contact: &contact.id,
                        email: &contact.email,
                        message: &key,
                        context: &context,
                    },
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let detail = e.to_string();
                        record.status = "failed";
                        record.reason = Some("render_error");
                        record.detail = Some(&detail);
                        store::record_campaign_send(env, &record, true, now).await?;
                        continue;
                    }
                };
                if !links_registered && !test {
                    store::register_links(env, &campaign.id, &composed.links).await?;
                    links_registered = true;
                }
                let envelope = Envelope {
                    from: &site.from_email,
                    to: &contact.email,
                };
                match mailer::deliver(env, helo, &envelope, &composed.mime).await {
                    Ok(()) => {
                        record.status = "sent";
                        store::record_campaign_send(env, &record, true, now).await?;
                        facts
                            .recent
                            .entry(contact.id.clone())
                            .or_default()
                            .push(now);
                    }
                    Err(e) if e.is_transient() => {
                        let detail = e.to_string();
                        record.status = "retrying";
                        record.detail = Some(&detail);
                        store::record_campaign_send(env, &record, true, now).await?;
                        worker::console_warn!(
                            "campaign {}: {}; will retry",
                            campaign.id,
                            e.summary()
                        );
                        outcome = JobOutcome::Retry;
                    }
                    Err(e) => {
                        let detail = e.to_string();
                        record.status = "failed";
                        record.reason = Some("bounced");
                        record.detail = Some(&detail);
                        store::record_campaign_send(env, &record, true, now).await?;
                        store::suppress(env, &contact.id, "bounced", &campaign.id, now).await?;
                        worker::console_error!(
                            "campaign {}: permanent failure: {}",
                            campaign.id,
                            e.summary()
                        );
                    }
                }
            }
        }
    }
    Ok(outcome)
}
