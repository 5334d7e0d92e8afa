//! Campaign sending: the cron tick fans audiences out into chunks on the SENDS queue and re-queues
//! deferred sends that are due; the consumer runs each chunk through the send-time guardrails
//! (`core::policy`), composes (`sender::compose`) and delivers. Every message has a send key
//! (`campaign.{campaign}.{contact}`, or `test.{campaign}.{run}.{contact}`), claimed before
//! delivery, so redelivered chunks and overlapping runs send nothing twice.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::rc::Rc;

use epistola_core::campaign::{content_fingerprint, WindowInput};
use epistola_core::consent::{current, Action, Entry};
use epistola_core::contact::{address_hash, attributes, utc_offset_seconds};
use epistola_core::event::{CampaignChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::ids::message_id_for;
use epistola_core::policy::{
    decide, domain_throttle, mail_domain, Decision, DeferReason, Limits, Outgoing, Recipient,
    SendKind, SendWindow,
};
use epistola_core::segment::{self, Facts, Rule};
use epistola_core::sendkey::KeyState;
use epistola_core::site::Channel;
use epistola_sender::compose::{compose, Campaign, Recipient as LetterRecipient};
use epistola_sender::sms::{sms_text, SmsOutcome};
use epistola_sender::smtp::{Envelope, Failure};
use epistola_sender::template::{Compiled, TemplateSource};
use epistola_worker_kit::db::enqueue_batch;
use serde_json::json;
use worker::Env;

use crate::doi::JobOutcome;
use crate::store::{self, CampaignRow, CampaignSend, ContactRow, TemplateRow};
use crate::{bindings, config, mailer, sms};

/// Contacts read per fan-out page, and pages per tick (bounded work per cron run).
const PAGE: usize = 1000;
const PAGES_PER_TICK: usize = 20;
/// How long a re-queued deferred send is leased before the tick may queue it again.
const DEFERRED_LEASE_SECONDS: u64 = 900;
/// Var: JSON send limits (caps, quiet hours); see `core::policy::Limits`.
pub const SEND_LIMITS: &str = "SEND_LIMITS";
/// Var: days within which the same content is not sent to the same contact twice (default 30).
pub const DUPLICATE_CONTENT_DAYS: &str = "DUPLICATE_CONTENT_DAYS";
const DEFAULT_DUPLICATE_CONTENT_DAYS: u64 = 30;

pub fn duplicate_content_seconds(env: &Env) -> u64 {
    config::number(env, DUPLICATE_CONTENT_DAYS, DEFAULT_DUPLICATE_CONTENT_DAYS) * 86_400
}

/// Var: JSON `{"gmail.com": 500, …}`, most letters per hour to one receiving domain.
pub const DOMAIN_THROTTLES: &str = "DOMAIN_THROTTLES";

fn domain_throttles(env: &Env) -> BTreeMap<String, u32> {
    config::text(env, DOMAIN_THROTTLES)
        .map(|json| {
            serde_json::from_str::<BTreeMap<String, u32>>(&json).unwrap_or_else(|e| {
                worker::console_error!("{DOMAIN_THROTTLES} is invalid ({e}); no throttles");
                BTreeMap::new()
            })
        })
        .unwrap_or_default()
        .into_iter()
        .map(|(d, n)| (d.to_ascii_lowercase(), n))
        .collect()
}

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
pub fn contact_attributes(c: &ContactRow) -> BTreeMap<String, String> {
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

pub fn contact_tags(c: &ContactRow) -> BTreeSet<String> {
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
    let mut read = 0usize;
    // D1 write statements issued for fan-out: one to start due campaigns, one per page.
    let mut writes = 1usize;
    let mut finished = Vec::new();
    for campaign in store::campaigns_to_fan_out(env, now).await? {
        let page = fan_out(env, &campaign, now).await?;
        queued += page.queued;
        read += page.read;
        writes += page.writes;
        if page.done {
            finished.push(campaign.id.clone());
        }
    }
    let due = store::due_deferred(env, now, DEFERRED_LEASE_SECONDS).await?;
    let mut by_campaign: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for d in &due {
        by_campaign
            .entry((d.campaign_id.clone(), d.channel == "sms"))
            .or_default()
            .push(d.contact_id.clone());
    }
    let mut jobs = Vec::new();
    for ((campaign, sms), contacts) in by_campaign {
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
                sms,
            }));
        }
    }
    enqueue_batch(env, bindings::SENDS, &jobs).await?;
    let (chain_runs_due, birthdays) = crate::chain_jobs::tick(env, now).await?;
    let (webhooks_delivered, webhook_failures) = crate::webhooks_out::deliver_due(env, now).await?;
    let expired = expire_unconfirmed(env, now).await?;
    Ok(json!({
        "queued": queued, "contacts_read": read, "fanout_write_statements": writes,
        "requeued_deferred": due.len(), "finished": finished,
        "chain_runs_due": chain_runs_due, "birthday_runs": birthdays,
        "webhooks_delivered": webhooks_delivered, "webhook_failures": webhook_failures,
        "expired_captures": expired.captures, "expired_contacts": expired.contacts,
    }))
}

/// Var: days an unconfirmed sign-up is kept (default 30).
pub const PENDING_RETENTION_DAYS: &str = "PENDING_RETENTION_DAYS";
const DEFAULT_PENDING_RETENTION_DAYS: u64 = 30;

/// Once a day: sign-ups never confirmed within the retention period are deleted (the capture with
/// what it carried, and a contact that only it created).
async fn expire_unconfirmed(env: &Env, now: u64) -> worker::Result<store::Expired> {
    let Some((day, _)) = epistola_core::contact::utc_date(now) else {
        return Ok(store::Expired::default());
    };
    if !store::claim_daily(env, "pending-retention", &day).await? {
        return Ok(store::Expired::default());
    }
    let days = config::number(env, PENDING_RETENTION_DAYS, DEFAULT_PENDING_RETENTION_DAYS);
    store::delete_unconfirmed(env, now.saturating_sub(days * 86_400)).await
}

/// Schedules up to PAGES_PER_TICK pages of a sending campaign's audience. Segment rules are
/// applied here; consent, suppression and timing are checked at send time. Chunks are queued
/// before the cursor moves, so a crash re-queues a page (harmless: send keys) rather than losing it.
/// What one campaign's fan-out did in a tick.
#[derive(Debug, Default)]
struct FanOut {
    /// Contacts queued (in the segment).
    queued: usize,
    /// Contacts read (pages).
    read: usize,
    /// D1 write statements (cursor moves).
    writes: usize,
    done: bool,
}

async fn fan_out(env: &Env, c: &CampaignRow, now: u64) -> worker::Result<FanOut> {
    let Ok(rule) = serde_json::from_str::<serde_json::Value>(&c.segment)
        .map_err(|e| e.to_string())
        .and_then(|v| segment::parse(&v).map_err(|e| e.to_string()))
    else {
        worker::console_error!("campaign {}: stored segment is invalid", c.id);
        return Ok(FanOut::default());
    };
    let mut cursor = c.cursor.clone();
    let mut report = FanOut::default();
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
                    sms: false,
                })
            })
            .collect();
        enqueue_batch(env, bindings::SENDS, &jobs).await?;
        report.queued += selected.len();
        report.read += page.len();
        report.writes += 1;
        let next = page.last().map_or(cursor.clone(), |k| k.id.clone());
        if !store::advance_cursor(env, &c.id, &cursor, &next, finished, now).await? {
            // Cancelled, or another tick moved on: stop here.
            return Ok(report);
        }
        if finished {
            report.done = true;
            return Ok(report);
        }
        cursor = next;
    }
    Ok(report)
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
        let e = store::engagement(env, &ids).await?;
        for (contact, campaign, metric) in e.seen {
            let f = engaged.entry(contact).or_default();
            if metric == "open" {
                f.opened.insert(campaign);
            } else {
                f.clicked.insert(campaign);
            }
        }
        for (contact, at) in e.last_open {
            engaged.entry(contact).or_default().last_open = Some(at);
        }
        for (contact, at) in e.last_purchase {
            engaged.entry(contact).or_default().last_purchase = Some(at);
        }
        for (contact, segment) in store::rfm_segments(env, &ids).await? {
            engaged.entry(contact).or_default().rfm = Some(segment);
        }
    }
    Ok(page
        .iter()
        .filter(|c| {
            let mut facts = engaged.remove(&c.id).unwrap_or_default();
            facts.attributes = contact_attributes(c);
            facts.tags = contact_tags(c);
            segment::matches(rule, &facts, now)
        })
        .map(|c| c.id.clone())
        .collect())
}

// ---------------------------------------------------------------------------------------------
// Chunk: guardrails, compose, deliver.

/// Renders and sends the SMS version (the send key is already claimed) and records the outcome.
/// Returns what happened, and the transport failure's summary if the provider (not the recipient)
/// failed.
async fn send_sms(
    env: &Env,
    template: &Compiled,
    context: &serde_json::Value,
    contact: &ContactRow,
    record: &CampaignSend<'_>,
    now: u64,
) -> worker::Result<(Delivered, Option<String>)> {
    let text = match template.render_sms(context) {
        Ok(Some(t)) => sms_text(&t),
        Ok(None) => String::new(),
        Err(e) => {
            worker::console_error!("sms render: {e}");
            String::new()
        }
    };
    let (phone, delivered) = match contact.phone.as_deref() {
        Some(p) if !text.is_empty() => (p, None),
        _ => ("", Some(("failed", "render_error", Delivered::Failed))),
    };
    let mut transport = None;
    let (status, reason, delivered, detail) = match delivered {
        Some((s, r, d)) => (s, Some(r), d, None),
        None => match sms::send(env, phone, &text).await {
            (SmsOutcome::Accepted, _) => ("sent", None, Delivered::Sent, None),
            (SmsOutcome::Transient, detail) => ("retrying", None, Delivered::Retrying, detail),
            (SmsOutcome::Transport, detail) => {
                transport = Some(
                    detail
                        .clone()
                        .unwrap_or_else(|| "SMS provider failed".into()),
                );
                ("retrying", Some("transport"), Delivered::Retrying, detail)
            }
            (SmsOutcome::Permanent, detail) => {
                ("failed", Some("sms_refused"), Delivered::Failed, detail)
            }
        },
    };
    let outcome = CampaignSend {
        status,
        reason,
        detail: detail.as_deref(),
        due_at: (status == "retrying").then_some(now + RETRY_REQUEUE_SECONDS),
        ..*record
    };
    store::record_campaign_send(env, &outcome, true, now).await?;
    Ok((delivered, transport))
}

/// A letter left `retrying` is queued again by the tick after this long, if the queue's own
/// retries have not delivered it by then (they may have been exhausted): nothing is lost.
const RETRY_REQUEUE_SECONDS: u64 = 600;

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
    let mailing = Mailing {
        stats_id: &campaign.id,
        name: &campaign.name,
        kind: if test {
            SendKind::Test
        } else {
            SendKind::Campaign
        },
        site_id: &campaign.site_id,
        template_id: &campaign.template_id,
        purpose: &campaign.purpose,
        window: campaign
            .send_window
            .as_deref()
            .and_then(|w| serde_json::from_str::<WindowInput>(w).ok())
            .map(|w| w.to_window()),
        anonymous: campaign.anonymous == 1,
        base_url: &chunk.base_url,
        channel: if chunk.sms {
            Channel::Sms
        } else {
            Channel::Email
        },
        sms_fallback_after: campaign
            .sms_fallback_after
            .and_then(|s| u64::try_from(s).ok())
            .filter(|_| !test),
        pause: store::Paused::Campaign(&campaign.id),
        paused: campaign.paused_reason.is_some(),
        allow_resend: campaign.allow_resend == 1,
    };
    let recipients: Vec<(String, String)> = chunk
        .contacts
        .iter()
        .map(|contact| {
            let key = match &chunk.test_run {
                Some(run) => format!("test.{}.{run}.{contact}", campaign.id),
                None if chunk.sms => sms_fallback_key(&campaign.id, contact),
                None => format!("campaign.{}.{contact}", campaign.id),
            };
            (contact.clone(), key)
        })
        .collect();
    Ok(deliver(env, &mailing, &recipients, now).await?.0)
}

fn sms_fallback_key(campaign: &str, contact: &str) -> String {
    format!("sms.{campaign}.{contact}")
}

/// One message sent to many: a campaign (or its test), or one step of a trigger chain.
#[derive(Debug)]
pub struct Mailing<'a> {
    /// The id its outcomes, opens and clicks count under (campaign id, or chain step id).
    pub stats_id: &'a str,
    pub name: &'a str,
    pub kind: SendKind,
    pub site_id: &'a str,
    pub template_id: &'a str,
    pub purpose: &'a str,
    pub window: Option<SendWindow>,
    pub anonymous: bool,
    pub base_url: &'a str,
    pub channel: Channel,
    /// After a sent e-mail, when to check engagement and send the SMS version.
    pub sms_fallback_after: Option<u64>,
    /// What a transport failure pauses (the campaign, or the chain).
    pub pause: store::Paused<'a>,
    /// Paused now: the first delivery that works resumes it.
    pub paused: bool,
    /// May go to contacts who got the same content recently (campaigns only).
    pub allow_resend: bool,
}

impl Mailing<'_> {
    fn record_kind(&self) -> &'static str {
        match self.kind {
            SendKind::Campaign => "campaign",
            SendKind::Test => "test",
            SendKind::ChainStep => "chain",
        }
    }
}

/// What happened to one recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    Sent,
    Skipped,
    Deferred {
        until: u64,
    },
    Failed,
    /// A transient transport failure: the job is retried.
    Retrying,
    /// Decided before (final outcome recorded) or in flight elsewhere.
    AlreadyDone,
}

/// Runs the guardrails for each (contact, send key), then composes and delivers. Returns whether
/// the job is finished and each contact's outcome (contacts that no longer exist have none).
pub async fn deliver(
    env: &Env,
    m: &Mailing<'_>,
    recipients: &[(String, String)],
    now: u64,
) -> worker::Result<(JobOutcome, HashMap<String, Delivered>)> {
    let mut results = HashMap::new();
    let (Some(template), Some(site)) = (
        store::get_template(env, m.template_id).await?,
        store::get_site(env, m.site_id).await?,
    ) else {
        worker::console_error!("{}: template or site is gone", m.stats_id);
        return Ok((JobOutcome::Done, results));
    };
    let Some(compiled) = compiled(&template) else {
        return Ok((JobOutcome::Done, results));
    };
    let Some(keys) = config::keyring(env) else {
        return Ok((JobOutcome::Retry, results));
    };
    let limits = limits(env);
    let contact_ids: Vec<String> = recipients.iter().map(|(c, _)| c.clone()).collect();
    let keys_wanted: Vec<String> = recipients.iter().map(|(_, k)| k.clone()).collect();
    let send_keys: HashMap<&str, &str> = recipients
        .iter()
        .map(|(c, k)| (c.as_str(), k.as_str()))
        .collect();
    let longest_cap = limits.longest_window();
    // Per-segment caps need each recipient's RFM segment; without them, no read.
    let segments = if limits.segment_caps.is_empty() {
        HashMap::new()
    } else {
        store::rfm_segments(env, &contact_ids).await?
    };
    // Campaign letters carry their content's fingerprint, so a copy of the campaign (same
    // template content, another id) is recognised within the window.
    let fingerprint = (m.kind == SendKind::Campaign).then(|| {
        content_fingerprint(
            &template.subject,
            &template.html,
            template.text.as_deref(),
            template.sms.as_deref(),
        )
    });
    let duplicate_window = duplicate_content_seconds(env);
    let mut facts = store::chunk_facts(
        env,
        m.site_id,
        &contact_ids,
        &keys_wanted,
        m.channel.as_str(),
        now.saturating_sub(longest_cap),
        fingerprint
            .as_deref()
            .filter(|_| !m.allow_resend)
            .map(|f| (f, now.saturating_sub(duplicate_window), m.stats_id)),
    )
    .await?;
    // An SMS fallback goes only to those who did not engage with the e-mail as a person.
    let engaged = if m.channel == Channel::Sms {
        store::engaged(env, m.stats_id, &contact_ids).await?
    } else {
        std::collections::HashSet::new()
    };
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
    let test = m.kind == SendKind::Test;
    let outgoing = Outgoing {
        kind: m.kind,
        purpose: m.purpose,
        channel: m.channel,
        audience_tags: &audience,
        window: m.window.as_ref(),
        allow_resend: m.allow_resend,
    };
    let letter = Campaign {
        id: m.stats_id,
        site: m.site_id,
        template: &compiled,
        base_url: m.base_url,
        from_name: &site.name,
        from: &site.from_email,
        anonymous: m.anonymous,
        keys: &keys,
        now,
    };
    let helo = m.base_url.split("://").nth(1).unwrap_or("epistola.invalid");
    let helo = helo.split([':', '/']).next().unwrap_or(helo);
    let mut outcome = JobOutcome::Done;
    let mut links_registered = false;
    let mut mailer = mailer::Mailer::default();
    // Per-domain throttles (e-mail only): this hour's counts, and what this chunk adds.
    let throttles = if m.channel == Channel::Email {
        domain_throttles(env)
    } else {
        BTreeMap::new()
    };
    let throttled: Vec<String> = facts
        .contacts
        .iter()
        .map(|c| mail_domain(&c.email))
        .filter(|d| throttles.contains_key(d))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut domain_sent = if throttled.is_empty() {
        HashMap::new()
    } else {
        store::domain_counts(env, &throttled, now).await?
    };
    let mut domain_added: HashMap<String, u32> = HashMap::new();
    // The first transport failure (relay, account, configuration) stops this chunk's attempts:
    // the rest wait as `retrying`, the mailing is paused, nothing is suppressed.
    let mut transport_down: Option<String> = None;
    let mut delivered_any = false;
    let contacts = std::mem::take(&mut facts.contacts);
    for contact in &contacts {
        let Some(key) = send_keys.get(contact.id.as_str()).map(|k| (*k).to_owned()) else {
            continue;
        };
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
        // Final, or being delivered elsewhere: nothing to do for this key.
        let settled = facts
            .send_status
            .get(&key)
            .and_then(|s| KeyState::parse(s))
            .is_some_and(KeyState::is_settled);
        let recipient = Recipient {
            suppressed: facts.suppressed.contains(&contact.id)
                || address_suppressed.contains(&address_hash(&contact.email)),
            consents: &consents,
            attributes: &attrs,
            on_test_list: contact.test_list == 1,
            already_sent: settled,
            recent_sends: &recent,
            utc_offset_seconds: contact
                .time_zone
                .as_deref()
                .and_then(|tz| utc_offset_seconds(tz, now))
                .unwrap_or(0),
            rfm_segment: segments.get(&contact.id).map(String::as_str),
            got_this_content: facts.got_content.contains(&contact.id),
        };
        let mut record = CampaignSend {
            send_key: &key,
            kind: m.record_kind(),
            contact: &contact.id,
            campaign: if test { None } else { Some(m.stats_id) },
            status: "",
            reason: None,
            detail: None,
            due_at: None,
            channel: m.channel.as_str(),
            content_hash: fingerprint.as_deref(),
        };
        let precheck = if m.channel != Channel::Sms || settled {
            None
        } else if engaged.contains(&contact.id) {
            Some("engaged")
        } else if contact.phone.is_none() {
            Some("no_phone")
        } else {
            None
        };
        if let Some(reason) = precheck {
            record.status = "skipped";
            record.reason = Some(reason);
            store::record_campaign_send(env, &record, false, now).await?;
            results.insert(contact.id.clone(), Delivered::Skipped);
            continue;
        }
        match decide(&outgoing, &recipient, &limits, now) {
            // Already final (or in flight elsewhere): nothing to do, nothing to count again.
            Decision::Skip(epistola_core::policy::SkipReason::AlreadySent) => {
                results.insert(contact.id.clone(), Delivered::AlreadyDone);
            }
            Decision::Skip(reason) => {
                record.status = "skipped";
                record.reason = Some(reason.as_str());
                store::record_campaign_send(env, &record, false, now).await?;
                results.insert(contact.id.clone(), Delivered::Skipped);
            }
            Decision::Defer { until, reason } => {
                record.status = "deferred";
                record.reason = Some(reason.as_str());
                record.due_at = Some(until);
                store::record_campaign_send(env, &record, false, now).await?;
                results.insert(contact.id.clone(), Delivered::Deferred { until });
            }
            Decision::Send if transport_down.is_some() => {
                record.status = KeyState::Retrying.as_str();
                record.reason = Some("transport");
                record.due_at = Some(now + RETRY_REQUEUE_SECONDS);
                store::record_campaign_send(env, &record, false, now).await?;
                results.insert(contact.id.clone(), Delivered::Retrying);
                outcome = JobOutcome::Retry;
            }
            Decision::Send => {
                let domain = mail_domain(&contact.email);
                let sent_this_hour = domain_sent.get(&domain).copied().unwrap_or(0);
                if let Some(until) =
                    domain_throttle(throttles.get(&domain).copied(), sent_this_hour, now)
                {
                    record.status = "deferred";
                    record.reason = Some(DeferReason::DomainThrottle.as_str());
                    record.due_at = Some(until);
                    store::record_campaign_send(env, &record, false, now).await?;
                    results.insert(contact.id.clone(), Delivered::Deferred { until });
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
                    "campaign": { "id": m.stats_id, "name": m.name },
                    "site": { "name": site.name },
                });
                if m.channel == Channel::Sms {
                    if !store::claim_send(env, &record, now).await? {
                        results.insert(contact.id.clone(), Delivered::AlreadyDone);
                        continue;
                    }
                    let (delivered, transport) =
                        send_sms(env, &compiled, &context, contact, &record, now).await?;
                    if delivered == Delivered::Retrying {
                        outcome = JobOutcome::Retry;
                    }
                    delivered_any |= delivered == Delivered::Sent;
                    if transport.is_some() {
                        transport_down = transport;
                    }
                    results.insert(contact.id.clone(), delivered);
                    continue;
                }
                let composed = match compose(
                    &letter,
                    &LetterRecipient {
                        contact: &contact.id,
                        email: &contact.email,
                        message: &message_id_for(&key),
                        context: &context,
                    },
                ) {
                    Ok(c) => c,
                    Err(e) => {
                        let detail = e.to_string();
                        record.status = "failed";
                        record.reason = Some("render_error");
                        record.detail = Some(&detail);
                        store::record_campaign_send(env, &record, false, now).await?;
                        results.insert(contact.id.clone(), Delivered::Failed);
                        continue;
                    }
                };
                if !links_registered && !test {
                    store::register_links(env, m.stats_id, &composed.links).await?;
                    links_registered = true;
                }
                // Claimed last, just before the transport: a D1 failure anywhere before this
                // leaves the key as it was (new, deferred or retrying), never `sending` with
                // nothing sent, so no recipient is reported `outcome_unknown` for a letter that
                // never left.
                if !store::claim_send(env, &record, now).await? {
                    results.insert(contact.id.clone(), Delivered::AlreadyDone);
                    continue;
                }
                let envelope = Envelope {
                    from: &site.from_email,
                    to: &contact.email,
                };
                match mailer.deliver(env, helo, &envelope, &composed.mime).await {
                    Ok(()) => {
                        record.status = "sent";
                        store::record_campaign_send(env, &record, true, now).await?;
                        results.insert(contact.id.clone(), Delivered::Sent);
                        delivered_any = true;
                        if throttles.contains_key(&domain) {
                            *domain_sent.entry(domain.clone()).or_default() += 1;
                            *domain_added.entry(domain.clone()).or_default() += 1;
                        }
                        if let Some(after) = m.sms_fallback_after {
                            // Checked when due: no human open or click by then → the SMS version.
                            let key = sms_fallback_key(m.stats_id, &contact.id);
                            let waiting = CampaignSend {
                                send_key: &key,
                                status: "waiting",
                                reason: None,
                                detail: None,
                                due_at: Some(now + after),
                                channel: Channel::Sms.as_str(),
                                ..record
                            };
                            store::record_campaign_send(env, &waiting, false, now).await?;
                        }
                        facts
                            .recent
                            .entry(contact.id.clone())
                            .or_default()
                            .push(now);
                    }
                    Err(e) if e.failure() != Failure::Bounce => {
                        let detail = e.to_string();
                        record.status = "retrying";
                        record.detail = Some(&detail);
                        record.due_at = Some(now + RETRY_REQUEUE_SECONDS);
                        if e.failure() == Failure::Transport {
                            record.reason = Some("transport");
                            transport_down = Some(e.summary());
                        }
                        store::record_campaign_send(env, &record, true, now).await?;
                        worker::console_warn!("{}: {}; will retry", m.stats_id, e.summary());
                        results.insert(contact.id.clone(), Delivered::Retrying);
                        outcome = JobOutcome::Retry;
                    }
                    Err(e) => {
                        let detail = e.to_string();
                        record.status = "failed";
                        record.reason = Some("bounced");
                        record.detail = Some(&detail);
                        store::record_campaign_send(env, &record, true, now).await?;
                        store::suppress(env, &contact.id, "bounced", m.stats_id, now).await?;
                        results.insert(contact.id.clone(), Delivered::Failed);
                        worker::console_error!(
                            "{}: permanent failure: {}",
                            m.stats_id,
                            e.summary()
                        );
                    }
                }
            }
        }
    }
    mailer.finish().await;
    store::add_domain_counts(env, &domain_added, now).await?;
    if let Some(reason) = &transport_down {
        worker::console_error!("{}: transport failure ({reason}); paused", m.stats_id);
        store::pause_sending(env, m.pause, reason, now).await?;
    } else if delivered_any && m.paused {
        store::resume_sending(env, m.pause).await?;
    }
    Ok((outcome, results))
}
