//! The one sending pipeline. Campaign letters and their tests, chain steps, SMS fallbacks and
//! double opt-in letters all become a [`Mailing`] with [`Recipient`]s and pass the same stages:
//!
//! 1. **gather** the chunk's facts (`gather`: two round trips for up to a hundred recipients);
//! 2. **plan** each recipient in the core (`epistola_core::plan`: skip, defer, send, or nothing);
//! 3. record skips and deferrals, reserve per-domain slots, register links — every write that
//!    can fail before a letter leaves happens here, so a D1 failure leaves the keys claimable;
//! 4. **claim** every key in one statement that re-checks the caps (`store::claim`): concurrent
//!    consumers never both take a key or a cap's last slot; keys lost to another consumer are
//!    gathered and planned again;
//! 5. **compose** (`letters`, pure) and **deliver** one letter at a time, and **record**
//!    (`deliver`): one SMTP session per chunk, outcomes in bulk; a transport failure pauses the
//!    mailing and suppresses no one, the first success resumes it.

use std::collections::{BTreeMap, HashMap};

use epistola_core::plan::{plan, Step};
use epistola_core::policy::{self, DeferReason, Limits, SendKind};
use epistola_core::sendkey::KeyState;
use epistola_core::site::{Channel, SiteConfig};
use worker::Env;

use crate::config;
use crate::jobs::{JobError, JobOutcome};
use crate::store::{self, ClaimRow, KeyColumns, OutcomeRow, Paused};

mod deliver;
pub mod gather;
pub mod letters;

pub use deliver::sms_fallback_key;
pub use letters::Content;

/// Var: JSON send limits (caps, quiet hours); see `core::policy::Limits`.
pub const SEND_LIMITS: &str = "SEND_LIMITS";
/// Var: JSON `{"gmail.com": 500, …}`, most letters per hour to one receiving domain.
pub const DOMAIN_THROTTLES: &str = "DOMAIN_THROTTLES";
/// Var: days within which the same content is not sent to the same contact twice (default 30).
pub const DUPLICATE_CONTENT_DAYS: &str = "DUPLICATE_CONTENT_DAYS";
const DEFAULT_DUPLICATE_CONTENT_DAYS: u64 = 30;

/// Rounds of claiming: keys another consumer took are planned again with what it did.
const CLAIM_ROUNDS: usize = 3;
/// A key still contended after every round waits this long (the tick queues it again).
const CONTENDED_DEFER_SECONDS: u64 = 60;

pub fn duplicate_content_seconds(env: &Env) -> u64 {
    config::number(env, DUPLICATE_CONTENT_DAYS, DEFAULT_DUPLICATE_CONTENT_DAYS) * 86_400
}

pub fn send_limits(env: &Env) -> Limits {
    match config::text(env, SEND_LIMITS) {
        Some(json) => serde_json::from_slice(json.as_bytes()).unwrap_or_else(|e| {
            worker::console_error!("{SEND_LIMITS} is invalid ({e}); using the defaults");
            Limits::default()
        }),
        None => Limits::default(),
    }
}

fn domain_throttles(env: &Env) -> BTreeMap<String, u32> {
    config::text(env, DOMAIN_THROTTLES)
        .map(|json| {
            serde_json::from_slice::<BTreeMap<String, u32>>(json.as_bytes()).unwrap_or_else(|e| {
                worker::console_error!("{DOMAIN_THROTTLES} is invalid ({e}); no throttles");
                BTreeMap::new()
            })
        })
        .unwrap_or_default()
        .into_iter()
        .map(|(d, n)| (d.to_ascii_lowercase(), n))
        .collect()
}

/// One message sent to many: a campaign (or its test), a chain step, an SMS fallback or a double
/// opt-in letter.
#[derive(Debug)]
pub struct Mailing<'a> {
    /// What the core plans from: kind, purpose, channel, audience tags, window.
    pub policy: policy::Mailing<'a>,
    /// The id its outcomes, opens and clicks count under (campaign id, chain step id); for
    /// opt-in letters the site's.
    pub stats_id: &'a str,
    pub name: &'a str,
    pub site_id: &'a str,
    pub site: &'a SiteConfig,
    pub base_url: &'a str,
    pub content: Content,
    /// Campaign letters: the content's fingerprint (a copy of the campaign is the same letter).
    pub fingerprint: Option<String>,
    pub duplicate_window: u64,
    /// After a sent e-mail, when to check engagement and send the SMS version.
    pub sms_fallback_after: Option<u64>,
    /// What a transport failure pauses (a campaign or a chain; opt-in letters pause nothing).
    pub pause: Option<Paused<'a>>,
    /// Paused now: the first delivery that works resumes it.
    pub paused: bool,
    /// D1 statements the caller spent reading the mailing (campaign, template, chain), for the
    /// chunk's cost line.
    pub reads: usize,
}

impl Mailing<'_> {
    fn columns(&self) -> KeyColumns<'_> {
        KeyColumns {
            kind: self.policy.kind.as_str(),
            // Tests and opt-in letters are not campaign statistics.
            campaign: match self.policy.kind {
                SendKind::Campaign | SendKind::ChainStep => Some(self.stats_id),
                SendKind::Test | SendKind::Optin(_) => None,
            },
            channel: self.policy.channel.as_str(),
        }
    }
}

/// One recipient of a mailing and its send key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    pub contact: String,
    pub key: String,
    /// Opt-in letters: the capture the letter is about.
    pub capture: Option<String>,
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

/// What a run did: whether the job is finished, each contact's outcome (contacts that no longer
/// exist have none), and its cost.
#[derive(Debug)]
pub struct Report {
    pub outcome: JobOutcome,
    pub results: HashMap<String, Delivered>,
    pub sent: usize,
    /// D1 statements issued for reading, gathering, planning and claiming.
    pub statements: usize,
    /// D1 statements that recorded delivery outcomes (one row per recipient, in bulk).
    pub outcome_statements: usize,
}

/// A recipient the plan sends to: claimed, then composed and delivered one at a time (a chunk
/// never holds all its letters in memory).
#[derive(Debug)]
struct Ready {
    to: gather::Gathered,
    caps: Vec<(u64, usize)>,
    domain: Option<String>,
}

/// Runs a mailing for these recipients: gather → plan → claim → compose → deliver → record.
pub async fn run(
    env: &Env,
    m: &Mailing<'_>,
    recipients: &[Recipient],
    now: u64,
) -> Result<Report, JobError> {
    let keys = config::keyring(env).ok_or_else(|| JobError::Transient("no signing keys".into()))?;
    let limits = send_limits(env);
    let throttles = match m.policy.kind {
        SendKind::Optin(_) => BTreeMap::new(),
        _ if m.policy.channel == Channel::Email => domain_throttles(env),
        _ => BTreeMap::new(),
    };
    let cols = m.columns();
    let mut report = Report {
        outcome: JobOutcome::Done,
        results: HashMap::new(),
        sent: 0,
        statements: m.reads,
        outcome_statements: 0,
    };
    let mut delivery = deliver::Delivery::new(m, cols, &keys, now);
    let mut links_registered = false;
    let mut todo: Vec<Recipient> = recipients.to_vec();
    for round in 0..CLAIM_ROUNDS {
        let chunk = gather::gather(env, m, &todo, &limits, &throttles, now).await?;
        report.statements += chunk.statements;
        let facts: Vec<_> = chunk.rows.iter().map(gather::Gathered::facts).collect();
        let steps = plan(&m.policy, &facts, &limits, &chunk.domains, now);
        drop(facts);
        let mut decided: Vec<OutcomeRow> = Vec::new();
        for (to, why) in &chunk.corrupt {
            worker::console_error!("{}: recipient {} is corrupt: {why}", m.stats_id, to.contact);
            decided.push(outcome(
                to,
                m,
                KeyState::Failed,
                Some("corrupt"),
                Some(why),
                None,
            ));
            report.results.insert(to.contact.clone(), Delivered::Failed);
        }
        let mut ready: Vec<Ready> = Vec::new();
        for (to, step) in chunk.rows.into_iter().zip(steps) {
            let r = recipient(&to);
            match step {
                Step::AlreadyDone => {
                    report.results.insert(to.contact, Delivered::AlreadyDone);
                }
                Step::Send { caps, domain } => ready.push(Ready { to, caps, domain }),
                step => {
                    if let Some((state, reason, due)) = step.record() {
                        decided.push(outcome(&r, m, state, Some(reason), None, due));
                    }
                    let d = match step {
                        Step::Defer { until, .. } => Delivered::Deferred { until },
                        _ => Delivered::Skipped,
                    };
                    report.results.insert(to.contact, d);
                }
            }
        }
        // Per-domain slots are reserved before the claim; letters past the grant wait an hour.
        let (granted, reserved) = reserve_domains(env, &ready, &chunk.domains.limits, now).await?;
        report.statements += 2 * reserved;
        let mut kept = Vec::with_capacity(ready.len());
        for (r, ok) in ready.into_iter().zip(granted) {
            if ok {
                kept.push(r);
                continue;
            }
            let until = (now / 3600 + 1) * 3600;
            let reason = DeferReason::DomainThrottle.as_str();
            decided.push(outcome(
                &recipient(&r.to),
                m,
                KeyState::Deferred,
                Some(reason),
                None,
                Some(until),
            ));
            report
                .results
                .insert(r.to.contact, Delivered::Deferred { until });
        }
        let ready = kept;
        store::record(env, cols, &[], &decided, now).await?;
        report.statements += usize::from(!decided.is_empty());
        // Per-link stats need each link index's destination: the first letter's links (a test
        // run's under its own id).
        if !links_registered {
            let first = ready
                .first()
                .map(|r| letters::message_for(m, &keys, &r.to, now));
            if let Some(Ok(letters::Message::Email { links, .. })) = first {
                if !links.is_empty() {
                    store::register_links(env, m.stats_id, &links).await?;
                    report.statements += 1;
                }
                links_registered = true;
            }
        }
        // Claimed last, just before the transport.
        let rows: Vec<ClaimRow<'_>> = ready
            .iter()
            .map(|r| ClaimRow {
                key: &r.to.key,
                contact: &r.to.contact,
                caps: &r.caps,
                capture: r.to.capture.as_deref(),
            })
            .collect();
        let claimed = store::claim(env, cols, m.policy.cap_scope(), &rows, now).await?;
        report.statements += usize::from(!rows.is_empty());
        drop(rows);
        let (mine, lost): (Vec<Ready>, Vec<Ready>) =
            ready.into_iter().partition(|r| claimed.contains(&r.to.key));
        let mut unused: HashMap<String, u32> = HashMap::new();
        for r in &lost {
            if let Some(d) = &r.domain {
                *unused.entry(d.clone()).or_default() += 1;
            }
        }
        delivery
            .deliver(env, mine, &mut report, &mut unused)
            .await?;
        store::release_domains(env, &unused, now).await?;
        todo = lost.iter().map(|r| recipient(&r.to)).collect();
        if todo.is_empty() {
            break;
        }
        if round + 1 == CLAIM_ROUNDS {
            // Still contended: wait a minute rather than spin (the tick queues it again).
            let until = now + CONTENDED_DEFER_SECONDS;
            let reason = DeferReason::FrequencyCap.as_str();
            let rows: Vec<OutcomeRow> = todo
                .iter()
                .map(|r| outcome(r, m, KeyState::Deferred, Some(reason), None, Some(until)))
                .collect();
            store::record(env, cols, &[], &rows, now).await?;
            for r in &todo {
                report
                    .results
                    .insert(r.contact.clone(), Delivered::Deferred { until });
            }
        }
    }
    delivery.finish(env, &mut report).await?;
    // One line per chunk: what it cost (ids and counts only).
    worker::console_log!(
        "chunk {}: {} recipients, {} sent, {} statements, {} outcome statements",
        m.stats_id,
        recipients.len(),
        report.sent,
        report.statements,
        report.outcome_statements
    );
    Ok(report)
}

/// Reserves this hour's slots for the letters to throttled domains. Returns, per letter, whether
/// it got one, and how many domains were reserved.
async fn reserve_domains(
    env: &Env,
    ready: &[Ready],
    limits: &BTreeMap<String, u32>,
    now: u64,
) -> Result<(Vec<bool>, usize), JobError> {
    let mut wanted: BTreeMap<&str, u32> = BTreeMap::new();
    for d in ready.iter().filter_map(|r| r.domain.as_deref()) {
        *wanted.entry(d).or_default() += 1;
    }
    if wanted.is_empty() {
        return Ok((vec![true; ready.len()], 0));
    }
    let asks: Vec<(String, u32, u32)> = wanted
        .iter()
        .map(|(d, n)| ((*d).to_owned(), *n, limits.get(*d).copied().unwrap_or(0)))
        .collect();
    let mut left = store::reserve_domains(env, &asks, now).await?;
    let granted = ready
        .iter()
        .map(|r| match r.domain.as_ref().and_then(|d| left.get_mut(d)) {
            None if r.domain.is_none() => true,
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        })
        .collect();
    Ok((granted, asks.len()))
}

fn recipient(g: &gather::Gathered) -> Recipient {
    Recipient {
        contact: g.contact.clone(),
        key: g.key.clone(),
        capture: g.capture.clone(),
    }
}

/// An outcome row for this mailing's channel.
fn outcome(
    r: &Recipient,
    m: &Mailing<'_>,
    status: KeyState,
    reason: Option<&str>,
    detail: Option<&str>,
    due_at: Option<u64>,
) -> OutcomeRow {
    OutcomeRow {
        key: r.key.clone(),
        contact: r.contact.clone(),
        capture: r.capture.clone(),
        status,
        reason: reason.map(str::to_owned),
        detail: detail.map(str::to_owned),
        due_at,
        channel: m.policy.channel.as_str().to_owned(),
        content_hash: None,
    }
}
