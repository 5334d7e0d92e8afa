//! The daily jobs, each claimed once per UTC day (concurrent ticks run it once): contact events
//! from dates and behaviour (birthdays, inactivity, churn risk after RFM scoring) that enrol
//! contacts in chains, and the retention of unconfirmed sign-ups.

use epistola_core::chain::inactivity_days;
use epistola_core::contact::utc_date;
use epistola_core::rfm::score_all;
use worker::Env;

use crate::config;
use crate::store::{self, NewEvent};

/// Var: days an unconfirmed sign-up is kept (default 30).
pub const PENDING_RETENTION_DAYS: &str = "PENDING_RETENTION_DAYS";
const DEFAULT_PENDING_RETENTION_DAYS: u64 = 30;

/// What today's jobs did (zero once they ran today).
#[derive(Debug, Default)]
pub struct Daily {
    /// Chain enrolments from birthday, inactivity and churn-risk events.
    pub enrolled: u64,
    pub expired: store::Expired,
}

pub async fn run(env: &Env, now: u64) -> worker::Result<Daily> {
    Ok(Daily {
        enrolled: birthdays(env, now).await?
            + inactivity(env, now).await?
            + rfm_daily(env, now).await?,
        expired: expire_unconfirmed(env, now).await?,
    })
}

/// Sign-ups never confirmed within the retention period are deleted (the capture with what it
/// carried, and a contact that only it created).
async fn expire_unconfirmed(env: &Env, now: u64) -> worker::Result<store::Expired> {
    let Some((day, _)) = utc_date(now) else {
        return Ok(store::Expired::default());
    };
    if !store::claim_period(env, "pending-retention", &day).await? {
        return Ok(store::Expired::default());
    }
    let days = config::number(env, PENDING_RETENTION_DAYS, DEFAULT_PENDING_RETENTION_DAYS);
    store::delete_unconfirmed(env, now.saturating_sub(days * 86_400)).await
}

/// Once a day (UTC): a `birthday` event for every contact born on this day.
async fn birthdays(env: &Env, now: u64) -> worker::Result<u64> {
    let Some((day, month_day)) = utc_date(now) else {
        return Ok(0);
    };
    if !store::claim_period(env, "birthdays", &day).await? {
        return Ok(0);
    }
    let events: Vec<NewEvent> = store::birthdays(env, &month_day)
        .await?
        .into_iter()
        .map(|contact| NewEvent {
            id: format!("birthday.{day}.{contact}"),
            contact_id: contact,
            kind: "birthday".into(),
            at: now,
            data: "{}".into(),
        })
        .collect();
    store::record_events_and_enrol(env, &events, now).await
}

/// Once a day per `inactive.{N}d` trigger of an active chain: an event for every contact with no
/// human open or click in N days. The event id names the contact's last activity, so one quiet
/// spell enrols once, and a contact who comes back and goes quiet again can be won back again.
async fn inactivity(env: &Env, now: u64) -> worker::Result<u64> {
    let Some((day, _)) = utc_date(now) else {
        return Ok(0);
    };
    let mut enrolled = 0;
    for trigger in store::active_chain_triggers(env).await? {
        let Some(days) = inactivity_days(&trigger) else {
            continue;
        };
        if !store::claim_period(env, &format!("inactivity:{trigger}"), &day).await? {
            continue;
        }
        let since = now.saturating_sub(u64::from(days) * 86_400);
        let events: Vec<NewEvent> = store::inactive_contacts(env, since)
            .await?
            .into_iter()
            .map(|(contact, last)| NewEvent {
                id: format!("{trigger}.{contact}.{last}"),
                contact_id: contact,
                kind: trigger.clone(),
                at: now,
                data: serde_json::json!({ "last_activity": last }).to_string(),
            })
            .collect();
        enrolled += store::record_events_and_enrol(env, &events, now).await?;
    }
    Ok(enrolled)
}

/// Once a day: RFM scores for every buyer (`core::rfm`), stored for segment rules and caps, and a
/// `churn.risk` event for each repeat buyer whose rhythm has stopped. The event id names the last
/// order, so one quiet spell enrols a win-back chain once.
async fn rfm_daily(env: &Env, now: u64) -> worker::Result<u64> {
    let Some((day, _)) = utc_date(now) else {
        return Ok(0);
    };
    if !store::claim_period(env, "rfm", &day).await? {
        return Ok(0);
    }
    let buyers = store::purchase_history(env).await?;
    let scores = score_all(&buyers, now);
    store::save_rfm(env, &scores, &buyers, now).await?;
    let events: Vec<NewEvent> = scores
        .iter()
        .zip(&buyers)
        .filter(|(s, _)| s.churn_risk)
        .map(|(s, b)| NewEvent {
            id: format!("churn.risk.{}.{}", s.contact, b.last_at),
            contact_id: s.contact.clone(),
            kind: "churn.risk".into(),
            at: now,
            data: serde_json::json!({ "last_order_at": b.last_at, "orders": b.orders, "segment": s.segment })
                .to_string(),
        })
        .collect();
    worker::console_log!(
        "rfm: scored {} buyers, {} at churn risk",
        scores.len(),
        events.len()
    );
    store::record_events_and_enrol(env, &events, now).await
}
