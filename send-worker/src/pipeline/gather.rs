//! Gathering: everything the plan needs about a chunk's recipients, in two round trips (the
//! facts statement, then imported suppressions by address hash with this hour's domain counts),
//! decoded once into typed facts. A row that does not decode is reported per recipient, never
//! guessed around.

use std::collections::{BTreeMap, BTreeSet};

use epistola_core::consent::{Action, Entry};
use epistola_core::contact::{address_hash, attributes, utc_offset_seconds};
use epistola_core::plan::{DomainBudget, Facts};
use epistola_core::policy::{mail_domain, Limits, SendKind};
use epistola_core::sendkey::KeyState;
use epistola_core::site::Channel;
use worker::Env;

use super::{Mailing, Recipient};
use crate::jobs::JobError;
use crate::store::{self, FactRow, FactsQuery};

/// One recipient, decoded.
#[derive(Debug, Clone)]
pub struct Gathered {
    pub contact: String,
    pub key: String,
    pub capture: Option<String>,
    pub email: String,
    pub phone: Option<String>,
    pub key_state: Option<KeyState>,
    pub address_confirmed: bool,
    pub capture_confirmed: bool,
    pub ledger: Vec<Entry>,
    pub suppressed: bool,
    pub attributes: BTreeMap<String, String>,
    pub on_test_list: bool,
    pub got_this_content: bool,
    pub recent: Vec<u64>,
    pub utc_offset_seconds: i32,
    pub rfm_segment: Option<String>,
    pub engaged: bool,
    pub domain: String,
}

impl Gathered {
    pub fn facts(&self) -> Facts<'_> {
        Facts {
            key: self.key_state,
            address_confirmed: self.address_confirmed,
            capture_confirmed: self.capture_confirmed,
            ledger: &self.ledger,
            suppressed: self.suppressed,
            attributes: self.attributes.clone(),
            on_test_list: self.on_test_list,
            got_this_content: self.got_this_content,
            recent_sends: &self.recent,
            utc_offset_seconds: self.utc_offset_seconds,
            rfm_segment: self.rfm_segment.as_deref(),
            engaged: self.engaged,
            has_phone: self.phone.is_some(),
            mail_domain: &self.domain,
        }
    }
}

/// A chunk's facts: recipients that decoded, those that did not (with why), and the domain
/// budget of this hour.
#[derive(Debug, Default)]
pub struct Chunk {
    pub rows: Vec<Gathered>,
    pub corrupt: Vec<(Recipient, String)>,
    pub domains: DomainBudget,
    /// D1 statements it took.
    pub statements: usize,
}

pub async fn gather(
    env: &Env,
    m: &Mailing<'_>,
    recipients: &[Recipient],
    limits: &Limits,
    throttles: &BTreeMap<String, u32>,
    now: u64,
) -> Result<Chunk, JobError> {
    let wanted: Vec<(String, String, Option<String>)> = recipients
        .iter()
        .map(|r| (r.contact.clone(), r.key.clone(), r.capture.clone()))
        .collect();
    let rows = store::chunk_facts(
        env,
        &FactsQuery {
            site: m.site_id,
            recipients: &wanted,
            scope: m.policy.cap_scope(),
            kind: m.policy.kind.as_str(),
            channel: m.policy.channel.as_str(),
            recent_since: now.saturating_sub(recent_window(m, limits)),
            content: m
                .fingerprint
                .as_deref()
                .filter(|_| !m.policy.allow_resend)
                .map(|f| (f, now.saturating_sub(m.duplicate_window), m.stats_id)),
            engagement_of: m.policy.sms_fallback.then_some(m.stats_id),
        },
    )
    .await?;
    let hashes: Vec<String> = rows.iter().map(|r| address_hash(&r.email)).collect();
    let domains: Vec<String> = rows
        .iter()
        .map(|r| mail_domain(&r.email))
        .filter(|d| throttles.contains_key(d))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let (listed, sent_this_hour) = store::hashes_and_domains(env, &hashes, &domains, now).await?;
    let mut chunk = Chunk {
        domains: DomainBudget {
            limits: throttles.clone(),
            sent_this_hour: sent_this_hour.into_iter().collect(),
        },
        statements: 3,
        ..Chunk::default()
    };
    for (row, hash) in rows.into_iter().zip(hashes) {
        let imported = listed.contains(&hash);
        match decode(row, imported, now) {
            Ok(g) => chunk.rows.push(g),
            Err((recipient, why)) => chunk.corrupt.push((recipient, why)),
        }
    }
    Ok(chunk)
}

/// How far back recent sends matter: the longest cap window (one day for confirmation letters).
fn recent_window(m: &Mailing<'_>, limits: &Limits) -> u64 {
    match m.policy.kind {
        SendKind::Optin(_) => epistola_core::plan::CONFIRMATIONS_PER_ADDRESS_WINDOW,
        _ => limits.longest_window(),
    }
}

/// The attribute map of a contact: its custom fields (JSON object; strings, numbers and booleans
/// as text) under the standard attributes that are set.
pub fn contact_attributes(
    standard: &[(&str, Option<&str>)],
    fields: &str,
) -> Result<BTreeMap<String, String>, serde_json::Error> {
    let custom: BTreeMap<String, String> =
        serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(fields.as_bytes())?
            .into_iter()
            .filter_map(|(k, v)| match v {
                serde_json::Value::String(s) => Some((k, s)),
                serde_json::Value::Number(n) => Some((k, n.to_string())),
                serde_json::Value::Bool(b) => Some((k, b.to_string())),
                _ => None,
            })
            .collect();
    Ok(attributes(standard, &custom))
}

fn decode(
    row: FactRow,
    imported_suppression: bool,
    now: u64,
) -> Result<Gathered, (Recipient, String)> {
    let recipient = || Recipient {
        contact: row.id.clone(),
        key: row.send_key.clone(),
        capture: row.capture_id.clone(),
    };
    let key_state = match row.key_state.as_deref() {
        None => None,
        Some(s) => {
            Some(KeyState::parse(s).ok_or_else(|| (recipient(), format!("send key state {s:?}")))?)
        }
    };
    let attributes = contact_attributes(
        &[
            ("name", row.name.as_deref()),
            ("gender", row.gender.as_deref()),
            ("birthday", row.birthday.as_deref()),
            ("locale", row.locale.as_deref()),
            ("time_zone", row.time_zone.as_deref()),
        ],
        &row.fields,
    )
    .map_err(|e| (recipient(), format!("contact fields: {e}")))?;
    let mut ledger: Vec<(i64, String, String, String)> =
        serde_json::from_slice(row.ledger.as_deref().unwrap_or("[]").as_bytes())
            .map_err(|e| (recipient(), format!("consent ledger: {e}")))?;
    ledger.sort_by_key(|(seq, ..)| *seq);
    let ledger = ledger
        .into_iter()
        .map(|(_, purpose, channel, action)| {
            Ok(Entry {
                channel: Channel::parse(&channel)
                    .ok_or_else(|| (recipient(), format!("ledger channel {channel:?}")))?,
                action: Action::parse(&action)
                    .ok_or_else(|| (recipient(), format!("ledger action {action:?}")))?,
                purpose,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let recent: Vec<i64> = serde_json::from_slice(row.recent.as_deref().unwrap_or("[]").as_bytes())
        .map_err(|e| (recipient(), format!("recent sends: {e}")))?;
    Ok(Gathered {
        domain: mail_domain(&row.email),
        utc_offset_seconds: row
            .time_zone
            .as_deref()
            .and_then(|tz| utc_offset_seconds(tz, now))
            .unwrap_or(0),
        contact: row.id,
        key: row.send_key,
        capture: row.capture_id,
        email: row.email,
        phone: row.phone,
        key_state,
        address_confirmed: row.status == "confirmed",
        capture_confirmed: row.capture_status.as_deref() == Some("confirmed"),
        ledger,
        suppressed: row.suppressed != 0 || imported_suppression,
        attributes,
        on_test_list: row.test_list == 1,
        got_this_content: row.got_content != 0,
        recent: recent.into_iter().map(|t| t.max(0) as u64).collect(),
        rfm_segment: row.rfm_segment,
        engaged: row.engaged != 0,
    })
}
