//! Audience insight: engagement for segment rules, purchases attributed to campaigns, RFM
//! scores and quiz answer counts.

use epistola_worker_kit::db::{int, text};
use serde::Deserialize;
use worker::{Env, Result};

use super::BULK_ROWS;
use crate::bindings;

/// Human engagement and purchases of these contacts.
#[derive(Debug, Default)]
pub struct Engagement {
    /// (contact, campaign, metric) pairs: first human opens and clicks.
    pub seen: Vec<(String, String, String)>,
    /// contact → latest human open.
    pub last_open: std::collections::HashMap<String, u64>,
    /// contact → latest `purchase` event.
    pub last_purchase: std::collections::HashMap<String, u64>,
}

pub async fn engagement(env: &Env, contacts: &[String]) -> Result<Engagement> {
    #[derive(Deserialize)]
    struct Seen {
        contact_id: String,
        campaign_id: String,
        metric: String,
    }
    #[derive(Deserialize)]
    struct Last {
        contact_id: String,
        at: i64,
    }
    let db = env.d1(bindings::DB)?;
    let ids = text(&serde_json::to_string(contacts)?);
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT contact_id, campaign_id, metric FROM first_seen WHERE label = 'human' AND link_index = -1 \
                 AND metric IN ('open', 'click') AND contact_id IN (SELECT value FROM json_each(?1))",
            )
            .bind(std::slice::from_ref(&ids))?,
            db.prepare(
                "SELECT contact_id, MAX(occurred_at) AS at FROM events WHERE kind = 'open' AND label = 'human' \
                 AND contact_id IN (SELECT value FROM json_each(?1)) GROUP BY contact_id",
            )
            .bind(std::slice::from_ref(&ids))?,
            db.prepare(
                "SELECT contact_id, MAX(at) AS at FROM contact_events WHERE type = 'purchase' \
                 AND contact_id IN (SELECT value FROM json_each(?1)) GROUP BY contact_id",
            )
            .bind(&[ids])?,
        ])
        .await?;
    let [seen, last, bought] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    let latest = |rows: Vec<Last>| {
        rows.into_iter()
            .map(|l| (l.contact_id, l.at.max(0) as u64))
            .collect()
    };
    Ok(Engagement {
        seen: seen
            .results::<Seen>()?
            .into_iter()
            .map(|s| (s.contact_id, s.campaign_id, s.metric))
            .collect(),
        last_open: latest(last.results::<Last>()?),
        last_purchase: latest(bought.results::<Last>()?),
    })
}

/// A server-side `purchase` with an order, waiting to be attributed.
pub struct Purchase {
    pub contact_id: String,
    pub at: u64,
    pub order: epistola_core::conversion::Order,
}

/// Attributes purchases to the contact's latest human click within `window` seconds, or an SMS
/// received shortly before (`core::conversion::attribute`), and stores them as conversions (once
/// per order id). Returns how many were attributed.
pub async fn attribute_purchases(
    env: &Env,
    purchases: &[Purchase],
    window: u64,
    now: u64,
) -> Result<usize> {
    use epistola_core::conversion::{attribute, Source, Touch, SMS_WINDOW_SECONDS};
    use epistola_core::event::ConversionEvent;
    if purchases.is_empty() || window == 0 {
        return Ok(0);
    }
    #[derive(Deserialize)]
    struct Row {
        click: Option<String>,
        sms: Option<String>,
    }
    let db = env.d1(bindings::DB)?;
    let keys: Vec<serde_json::Value> = purchases
        .iter()
        .map(|p| serde_json::json!({ "contact": p.contact_id, "at": p.at }))
        .collect();
    // One row per purchase, in order: the latest human click and the latest SMS sent, as JSON.
    let rows = db
        .prepare(
            "SELECT \
               (SELECT json_array(e.campaign_id, e.message_id, e.link_index, e.occurred_at) FROM events e \
                WHERE e.contact_id = json_extract(p.value, '$.contact') AND e.kind = 'click' AND e.label = 'human' \
                  AND e.occurred_at BETWEEN json_extract(p.value, '$.at') - ?2 AND json_extract(p.value, '$.at') \
                ORDER BY e.occurred_at DESC LIMIT 1) AS click, \
               (SELECT json_array(s.campaign_id, s.send_key, s.updated_at) FROM sends s \
                WHERE s.contact_id = json_extract(p.value, '$.contact') AND s.channel = 'sms' AND s.status = 'sent' \
                  AND s.campaign_id IS NOT NULL \
                  AND s.updated_at BETWEEN json_extract(p.value, '$.at') - ?3 AND json_extract(p.value, '$.at') \
                ORDER BY s.updated_at DESC LIMIT 1) AS sms \
             FROM json_each(?1) p ORDER BY p.key",
        )
        .bind(&[
            text(&serde_json::to_string(&keys)?),
            int(window as i64),
            int(SMS_WINDOW_SECONDS as i64),
        ])?
        .all()
        .await?
        .results::<Row>()?;
    let mut conversions = Vec::new();
    for (p, row) in purchases.iter().zip(rows) {
        let click = row
            .click
            .and_then(|j| serde_json::from_slice::<(String, String, i64, u64)>(j.as_bytes()).ok())
            .map(|(campaign, message, link, at)| Touch {
                campaign,
                message,
                link,
                channel: "email",
                at,
            });
        let sms = row
            .sms
            .and_then(|j| serde_json::from_slice::<(String, String, u64)>(j.as_bytes()).ok())
            .map(|(campaign, send_key, at)| Touch {
                campaign,
                message: epistola_core::ids::message_id_for(&send_key),
                link: -1,
                channel: "sms",
                at,
            });
        if let Some(touch) = attribute(click, sms, p.at, window) {
            conversions.push(ConversionEvent {
                order_id: p.order.order_id.clone(),
                at: p.at,
                campaign: touch.campaign,
                contact: p.contact_id.clone(),
                message: touch.message,
                link: touch.link,
                channel: touch.channel.into(),
                value_minor: p.order.money.minor,
                currency: p.order.money.currency.clone(),
                source: Source::Api,
            });
        }
    }
    if !conversions.is_empty() {
        db.batch(epistola_worker_kit::db::conversion_statements(
            &db,
            &conversions,
            now,
        )?)
        .await?;
    }
    Ok(conversions.len())
}

/// Every buyer's orders from `purchase` events, an order counted once however many events report
/// it (the widget's `order.{id}` and the API's event for the same order id).
pub async fn purchase_history(env: &Env) -> Result<Vec<epistola_core::rfm::Purchases>> {
    #[derive(Deserialize)]
    struct Row {
        contact_id: String,
        orders: u64,
        total: Option<f64>,
        first_at: u64,
        last_at: u64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(
            "SELECT contact_id, COUNT(*) AS orders, SUM(value) AS total, MIN(at) AS first_at, MAX(at) AS last_at FROM \
             (SELECT contact_id, COALESCE(json_extract(data, '$.order_id'), id) AS order_key, \
                     MAX(CAST(COALESCE(json_extract(data, '$.value'), 0) AS REAL)) AS value, MIN(at) AS at \
              FROM contact_events WHERE type = 'purchase' GROUP BY contact_id, order_key) \
             GROUP BY contact_id",
        )
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| epistola_core::rfm::Purchases {
            contact: r.contact_id,
            orders: r.orders,
            total: r.total.unwrap_or(0.0),
            first_at: r.first_at,
            last_at: r.last_at,
        })
        .collect())
}

/// Replaces the stored RFM scores (buyers who are gone, e.g. erased, drop out).
pub async fn save_rfm(
    env: &Env,
    scores: &[epistola_core::rfm::Score],
    buyers: &[epistola_core::rfm::Purchases],
    now: u64,
) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let mut statements = vec![db
        .prepare("DELETE FROM contact_rfm WHERE computed_at < ?1")
        .bind(&[int(now as i64)])?];
    let rows: Vec<serde_json::Value> = scores
        .iter()
        .zip(buyers)
        .map(|(s, b)| {
            serde_json::json!({
                "c": s.contact, "r": s.r, "f": s.f, "m": s.m, "s": s.segment, "o": b.orders,
                "t": b.total, "l": b.last_at, "x": s.churn_risk,
            })
        })
        .collect();
    for chunk in rows.chunks(BULK_ROWS) {
        statements.push(
            db.prepare(
                "INSERT INTO contact_rfm (contact_id, r, f, m, segment, orders, total, last_at, churn_risk, computed_at) \
                 SELECT json_extract(value, '$.c'), json_extract(value, '$.r'), json_extract(value, '$.f'), \
                 json_extract(value, '$.m'), json_extract(value, '$.s'), json_extract(value, '$.o'), \
                 json_extract(value, '$.t'), json_extract(value, '$.l'), json_extract(value, '$.x'), ?2 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (contact_id) DO UPDATE SET r = excluded.r, f = excluded.f, m = excluded.m, \
                 segment = excluded.segment, orders = excluded.orders, total = excluded.total, \
                 last_at = excluded.last_at, churn_risk = excluded.churn_risk, computed_at = excluded.computed_at",
            )
            .bind(&[text(&serde_json::to_string(chunk)?), int(now as i64)])?,
        );
    }
    // One transaction: readers see yesterday's scores or today's, never a mix.
    db.batch(statements).await?;
    Ok(())
}

/// RFM segments of these contacts (buyers only).
pub async fn rfm_segments(
    env: &Env,
    contacts: &[String],
) -> Result<std::collections::HashMap<String, String>> {
    #[derive(Deserialize)]
    struct Row {
        contact_id: String,
        segment: String,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare("SELECT contact_id, segment FROM contact_rfm WHERE contact_id IN (SELECT value FROM json_each(?1))")
        .bind(&[text(&serde_json::to_string(contacts)?)])?
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.contact_id, r.segment))
        .collect())
}

/// Buyers per RFM segment, with how many are at churn risk.
pub async fn rfm_counts(env: &Env) -> Result<Vec<(String, u64, u64)>> {
    #[derive(Deserialize)]
    struct Row {
        segment: String,
        n: u64,
        at_risk: u64,
    }
    Ok(env
        .d1(bindings::DB)?
        .prepare(
            "SELECT segment, COUNT(*) AS n, SUM(churn_risk) AS at_risk FROM contact_rfm GROUP BY segment ORDER BY n DESC, segment",
        )
        .all()
        .await?
        .results::<Row>()?
        .into_iter()
        .map(|r| (r.segment, r.n, r.at_risk))
        .collect())
}

#[derive(Deserialize)]
pub struct AnswerCount {
    pub site_id: String,
    pub question: String,
    pub answer: String,
    pub n: i64,
}

/// Capture answer counters, per site and question.
pub async fn answer_counts(env: &Env) -> Result<Vec<AnswerCount>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT site_id, question, answer, n FROM answer_counts ORDER BY site_id, question, n DESC, answer LIMIT 1000",
        )
        .all()
        .await?
        .results::<AnswerCount>()
}
