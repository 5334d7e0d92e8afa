//! Campaign sending: the cron tick fans audiences out into chunks on the SENDS queue and re-queues
//! deferred sends that are due; the consumer turns each chunk into a [`Mailing`] for the sending
//! pipeline. Every message has a send key (`campaign.{campaign}.{contact}`,
//! `test.{campaign}.{run}.{contact}`, `sms.{campaign}.{contact}`), claimed before delivery, so
//! redelivered chunks and overlapping runs send nothing twice.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use epistola_core::campaign::{content_fingerprint, test_stats_id, WindowInput};
use epistola_core::event::{CampaignChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::policy::{self, SendKind};
use epistola_core::segment::{self, Facts, Rule};
use epistola_core::site::Channel;
use epistola_worker_kit::db::enqueue_batch;
use worker::Env;

use crate::bindings;
use crate::jobs::{JobError, JobOutcome, JobResult};
use crate::pipeline::{self, sms_fallback_key, Content, Mailing, Recipient};
use crate::store::{self, CampaignRow, ContactRow, TemplateRow};

/// Contacts read per fan-out page, and pages per tick (bounded work per cron run).
const PAGE: usize = 1000;
const PAGES_PER_TICK: usize = 20;
/// How long a re-queued deferred send is leased before the tick may queue it again.
const DEFERRED_LEASE_SECONDS: u64 = 900;

/// The attribute map of a contact (standard attributes + custom fields); a contact whose fields
/// do not decode has only its standard attributes (and is reported corrupt when it is sent to).
pub fn contact_attributes(c: &ContactRow) -> BTreeMap<String, String> {
    let standard = [
        ("name", c.name.as_deref()),
        ("gender", c.gender.as_deref()),
        ("birthday", c.birthday.as_deref()),
        ("locale", c.locale.as_deref()),
        ("time_zone", c.time_zone.as_deref()),
    ];
    pipeline::gather::contact_attributes(&standard, &c.fields)
        .or_else(|_| pipeline::gather::contact_attributes(&standard, "{}"))
        .unwrap_or_default()
}

pub fn contact_tags(c: &ContactRow) -> BTreeSet<String> {
    c.tags
        .as_deref()
        .and_then(|t| serde_json::from_slice::<Vec<String>>(t.as_bytes()).ok())
        .unwrap_or_default()
        .into_iter()
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tick: fan-out and deferred sends.

/// What the campaign part of a tick did.
#[derive(Debug, Default)]
pub struct CampaignTick {
    /// Contacts queued (in their campaign's segment).
    pub queued: usize,
    /// Contacts read (fan-out pages).
    pub contacts_read: usize,
    /// D1 write statements issued for fan-out: one to start due campaigns, one per page.
    pub fanout_writes: usize,
    /// Campaigns whose fan-out finished.
    pub finished: Vec<String>,
    /// Deferred, retrying and waiting letters queued again.
    pub requeued: usize,
}

/// Starts campaigns that are due, fans out their audiences a bounded number of pages at a time,
/// and queues again the campaign letters whose deferral (or retry) is due.
pub async fn tick(env: &Env, now: u64) -> worker::Result<CampaignTick> {
    let mut report = CampaignTick {
        fanout_writes: 1,
        ..CampaignTick::default()
    };
    for campaign in store::campaigns_to_fan_out(env, now).await? {
        let page = fan_out(env, &campaign, now).await?;
        report.queued += page.queued;
        report.contacts_read += page.read;
        report.fanout_writes += page.writes;
        if page.done {
            report.finished.push(campaign.id.clone());
        }
    }
    let due = store::due_deferred(env, now, DEFERRED_LEASE_SECONDS).await?;
    let mut by_campaign: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    for d in &due {
        by_campaign
            .entry((d.campaign_id.clone(), d.channel == Channel::Sms.as_str()))
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
    report.requeued = due.len();
    Ok(report)
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
    let Ok(rule) = serde_json::from_slice::<serde_json::Value>(c.segment.as_bytes())
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
// Chunk: a campaign's (or its test's) recipients through the pipeline.

pub async fn run_chunk(env: &Env, chunk: &CampaignChunk, now: u64) -> JobResult {
    let Some(campaign) = store::get_campaign(env, &chunk.campaign).await? else {
        return Err(JobError::Permanent(format!(
            "chunk for unknown campaign {}",
            chunk.campaign
        )));
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
        return Err(JobError::Permanent(format!(
            "campaign {}: template or site is gone",
            campaign.id
        )));
    };
    let window = match campaign.send_window.as_deref() {
        None => None,
        Some(w) => Some(
            serde_json::from_slice::<WindowInput>(w.as_bytes())
                .map_err(|e| JobError::corrupt(format!("campaign {} send window", campaign.id), e))?
                .to_window(),
        ),
    };
    let audience = template_audience(&template)?;
    let stats_id = match &chunk.test_run {
        Some(run) => test_stats_id(run),
        None => campaign.id.clone(),
    };
    let kind = if test {
        SendKind::Test
    } else {
        SendKind::Campaign
    };
    let mailing = Mailing {
        policy: policy::Mailing {
            kind,
            purpose: &campaign.purpose,
            channel: if chunk.sms {
                Channel::Sms
            } else {
                Channel::Email
            },
            audience_tags: &audience,
            window: window.as_ref(),
            allow_resend: campaign.allow_resend == 1,
            sms_fallback: chunk.sms,
        },
        stats_id: &stats_id,
        name: &campaign.name,
        site_id: &campaign.site_id,
        site: &site,
        base_url: &chunk.base_url,
        content: Content::Template {
            compiled: pipeline::letters::compiled(&template)?,
            anonymous: campaign.anonymous == 1,
        },
        // Campaign letters carry their content's fingerprint, so a copy of the campaign (same
        // template content, another id) is recognised within the window.
        fingerprint: (kind == SendKind::Campaign).then(|| {
            content_fingerprint(
                &template.subject,
                &template.html,
                template.text.as_deref(),
                template.sms.as_deref(),
            )
        }),
        duplicate_window: pipeline::duplicate_content_seconds(env),
        sms_fallback_after: campaign
            .sms_fallback_after
            .and_then(|s| u64::try_from(s).ok())
            .filter(|_| !test && !chunk.sms),
        pause: Some(store::Paused::Campaign(&campaign.id)),
        reads: 2, // the campaign and its template
        paused: campaign.paused_reason.is_some(),
    };
    let recipients: Vec<Recipient> = chunk
        .contacts
        .iter()
        .map(|contact| Recipient {
            key: match &chunk.test_run {
                Some(run) => format!("test.{}.{run}.{contact}", campaign.id),
                None if chunk.sms => sms_fallback_key(&campaign.id, contact),
                None => format!("campaign.{}.{contact}", campaign.id),
            },
            contact: contact.clone(),
            capture: None,
        })
        .collect();
    Ok(pipeline::run(env, &mailing, &recipients, now)
        .await?
        .outcome)
}

/// A template's audience tags (attribute → wanted value), decoded once.
pub fn template_audience(t: &TemplateRow) -> Result<Vec<(String, String)>, JobError> {
    serde_json::from_slice::<BTreeMap<String, String>>(t.audience.as_bytes())
        .map(|m| m.into_iter().collect())
        .map_err(|e| JobError::corrupt(format!("template {} audience", t.id), e))
}
