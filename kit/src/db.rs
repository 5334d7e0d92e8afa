//! D1, KV and queue helpers both workers use. Worker-specific SQL stays in each worker's `store.rs`.

use epistola_core::conversion::SiteOrigins;
use epistola_core::site::SiteConfig;
use epistola_core::stats::{ByLabel, HourPoint, RollupRow, SeriesRow};
use serde::Deserialize;
use wasm_bindgen::JsValue;
use worker::{Env, QueueContentType, RawMessageBuilder, Result};

use crate::bindings;

/// D1 binds at most 100 parameters per statement.
pub const MAX_BOUND_PARAMS: usize = 100;

/// User agents are kept for consent proof, up to this many bytes.
const MAX_USER_AGENT_BYTES: usize = 512;

pub fn clip_user_agent(ua: &str) -> &str {
    epistola_core::text::clip(ua, MAX_USER_AGENT_BYTES)
}

pub fn text(s: &str) -> JsValue {
    JsValue::from_str(s)
}

/// A text value, or SQL NULL.
pub fn opt_text(s: Option<&str>) -> JsValue {
    s.map_or(JsValue::NULL, text)
}

pub fn int(n: i64) -> JsValue {
    // D1 numbers are JS numbers; every value here is far below 2^53.
    JsValue::from_f64(n as f64)
}

/// One hit on a fixed-window counter (`rate_limits`): `key` in the window of `window` seconds that
/// holds `now`, kept until the window ends; the statement returns the new count `n`.
pub fn rate_limit_hit(
    db: &worker::D1Database,
    key: &str,
    window: u64,
    now: u64,
) -> Result<worker::D1PreparedStatement> {
    let window = window.max(1);
    db.prepare(
        "INSERT INTO rate_limits (key, window, n, expires_at) VALUES (?1, ?2, 1, ?3) \
         ON CONFLICT (key, window) DO UPDATE SET n = n + 1 RETURNING n",
    )
    .bind(&[
        text(key),
        int((now / window) as i64),
        int(((now / window + 1) * window) as i64),
    ])
}

/// Rows the `i`-th statement of a batch changed (0 when D1 does not say).
pub fn changes(results: &[worker::D1Result], i: usize) -> u64 {
    results
        .get(i)
        .and_then(|r| r.meta().ok().flatten())
        .and_then(|m| m.changes)
        .map_or(0, |c| c as u64)
}

/// Sends one message to a queue as JSON text: one string crosses into JS instead of an object
/// built field by field, which is most of the hot path's enqueue cost.
pub async fn enqueue<T: serde::Serialize>(env: &Env, queue: &str, message: &T) -> Result<()> {
    let json = serde_json::to_string(message)?;
    let message = RawMessageBuilder::new(JsValue::from_str(&json))
        .build_with_content_type(QueueContentType::Text);
    env.queue(queue)?.send_raw(message).await
}

/// Sends messages to a queue in batches of at most 100 (the platform's batch limit).
pub async fn enqueue_batch<T: serde::Serialize>(
    env: &Env,
    queue: &str,
    messages: &[T],
) -> Result<()> {
    let queue = env.queue(queue)?;
    for chunk in messages.chunks(100) {
        let mut batch = Vec::with_capacity(chunk.len());
        for m in chunk {
            let json = serde_json::to_string(m)?;
            batch.push(
                RawMessageBuilder::new(JsValue::from_str(&json))
                    .build_with_content_type(QueueContentType::Text),
            );
        }
        queue.send_raw_batch(batch).await?;
    }
    Ok(())
}

/// A live API token: its id (named in audit records) and scopes.
#[derive(Debug, Deserialize)]
pub struct LiveToken {
    pub id: String,
    pub scopes: String,
}

/// The live API token with this hash, if any.
pub async fn live_token(env: &Env, token_hash: &str) -> Result<Option<LiveToken>> {
    env.d1(bindings::DB)?
        .prepare("SELECT id, scopes FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL")
        .bind(&[text(token_hash)])?
        .first::<LiveToken>(None)
        .await
}

/// Scopes of the live (not revoked) API token with this id, if any.
pub async fn live_token_scopes_by_id(env: &Env, id: &str) -> Result<Option<String>> {
    env.d1(bindings::DB)?
        .prepare("SELECT scopes FROM api_tokens WHERE id = ?1 AND revoked_at IS NULL")
        .bind(&[text(id)])?
        .first::<String>(Some("scopes"))
        .await
}

/// Scopes of the live API token with this hash, if any.
pub async fn token_scopes(env: &Env, token_hash: &str) -> Result<Option<String>> {
    env.d1(bindings::DB)?
        .prepare("SELECT scopes FROM api_tokens WHERE token_hash = ?1 AND revoked_at IS NULL")
        .bind(&[text(token_hash)])?
        .first::<String>(Some("scopes"))
        .await
}

/// Adds a contact to the suppression list (the first reason recorded is kept).
pub async fn suppress(
    env: &Env,
    contact: &str,
    reason: &str,
    campaign: &str,
    now: u64,
) -> Result<()> {
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO suppressions (contact_id, reason, campaign_id, created_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (contact_id) DO NOTHING",
        )
        .bind(&[text(contact), text(reason), text(campaign), int(now as i64)])?
        .run()
        .await?;
    Ok(())
}

fn site_key(site: &str) -> String {
    format!("site:{site}")
}

/// KV key of every site's own origins ([`SiteOrigins`]), read by the click redirect.
const SITE_ORIGINS_KEY: &str = "site-origins";

/// Stores a site's configuration in KV, where the edge reads it, and its origins in the map of
/// first-party origins.
pub async fn put_site(env: &Env, site: &str, config: &SiteConfig) -> Result<()> {
    let kv = env.kv(bindings::CONFIG)?;
    // As bytes: `put` with a String would go through serde-wasm-bindgen (and float formatting),
    // ~10 KB of the edge's wasm for nothing; readers get the same text back.
    let json = serde_json::to_string(config)?;
    kv.put_bytes(&site_key(site), json.as_bytes())?
        .execute()
        .await?;
    let mut origins: SiteOrigins = match kv.get(SITE_ORIGINS_KEY).text().await? {
        Some(text) => serde_json::from_slice(text.as_bytes()).unwrap_or_default(),
        None => SiteOrigins::new(),
    };
    origins.insert(site.to_owned(), config.allowed_origins.clone());
    kv.put_bytes(
        SITE_ORIGINS_KEY,
        serde_json::to_string(&origins)?.as_bytes(),
    )?
    .execute()
    .await?;
    Ok(())
}

thread_local! {
    static SITE_ORIGINS: std::cell::RefCell<Option<(u64, std::rc::Rc<SiteOrigins>)>> =
        const { std::cell::RefCell::new(None) };
}

/// How long an isolate keeps the first-party origins before reading them again.
const SITE_ORIGINS_TTL: u64 = 60;

/// The sites' own origins, cached per isolate for a minute (a new site's links get the
/// attribution parameter within a minute). Empty when KV cannot be read: the redirect never waits
/// on it failing.
pub async fn site_origins(env: &Env, now: u64) -> std::rc::Rc<SiteOrigins> {
    if let Some(cached) = SITE_ORIGINS.with(|c| {
        c.borrow()
            .as_ref()
            .filter(|(at, _)| now < at + SITE_ORIGINS_TTL)
            .map(|(_, o)| o.clone())
    }) {
        return cached;
    }
    let read = match env.kv(bindings::CONFIG) {
        Ok(kv) => kv.get(SITE_ORIGINS_KEY).text().await.ok().flatten(),
        Err(_) => None,
    };
    let origins = std::rc::Rc::new(
        read.and_then(|t| serde_json::from_slice::<SiteOrigins>(t.as_bytes()).ok())
            .unwrap_or_default(),
    );
    SITE_ORIGINS.with(|c| *c.borrow_mut() = Some((now, origins.clone())));
    origins
}

/// A site's configuration, if it exists.
pub async fn get_site(env: &Env, site: &str) -> Result<Option<SiteConfig>> {
    let Some(json) = env
        .kv(bindings::CONFIG)?
        .get(&site_key(site))
        .text()
        .await?
    else {
        return Ok(None);
    };
    // From bytes, as request bodies are parsed: one copy of each deserializer in the wasm.
    Ok(Some(serde_json::from_slice(json.as_bytes())?))
}

/// The ledger of one contact on one site, in order.
pub async fn consent_entries(
    env: &Env,
    contact: &str,
    site: &str,
) -> Result<Vec<epistola_core::consent::Entry>> {
    #[derive(Deserialize)]
    struct Row {
        purpose: String,
        channel: String,
        action: String,
    }
    let rows = env
        .d1(bindings::DB)?
        .prepare("SELECT purpose, channel, action FROM consent_ledger WHERE contact_id = ?1 AND site_id = ?2 ORDER BY seq")
        .bind(&[text(contact), text(site)])?
        .all()
        .await?
        .results::<Row>()?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(epistola_core::consent::Entry {
                purpose: r.purpose,
                channel: epistola_core::site::Channel::parse(&r.channel)?,
                action: epistola_core::consent::Action::parse(&r.action)?,
            })
        })
        .collect())
}

/// Claims a periodic job's run for `period` (a day, or an hour for hourly jobs); false if it
/// already ran for that period. Concurrent crons run it once.
pub async fn claim_period(env: &Env, name: &str, period: &str) -> Result<bool> {
    let row = env
        .d1(bindings::DB)?
        .prepare(
            "INSERT INTO daily_jobs (name, day) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET day = excluded.day \
             WHERE daily_jobs.day <> excluded.day RETURNING day",
        )
        .bind(&[text(name), text(period)])?
        .first::<String>(Some("day"))
        .await?;
    Ok(row.is_some())
}

const CONVERSION_COLUMNS: usize = 12;

/// Statements that store attributed orders (an order id already stored is skipped, except that
/// the shop's server report replaces a site-reported one; triggers count them, see
/// `migrations/0008_conversions.sql` and `0015_verified_conversions.sql`). Widget-reported orders are also recorded as the
/// contact's `purchase` event (id `order.{order_id}`), so segments and chain conditions see them;
/// API purchases are such events already.
pub fn conversion_statements(
    db: &worker::D1Database,
    conversions: &[epistola_core::event::ConversionEvent],
    now: u64,
) -> Result<Vec<worker::D1PreparedStatement>> {
    use epistola_core::conversion::Source;
    let mut statements = Vec::new();
    for chunk in conversions.chunks(MAX_BOUND_PARAMS / CONVERSION_COLUMNS) {
        let row = format!("({})", ["?"; CONVERSION_COLUMNS].join(", "));
        let sql = format!(
            "INSERT INTO conversions (order_id, campaign_id, contact_id, message_id, link_index, channel, \
             value_minor, currency, source, occurred_at, hour, received_at) VALUES {} \
             ON CONFLICT (order_id) DO UPDATE SET campaign_id = excluded.campaign_id, \
             contact_id = excluded.contact_id, message_id = excluded.message_id, \
             link_index = excluded.link_index, channel = excluded.channel, \
             value_minor = excluded.value_minor, currency = excluded.currency, source = excluded.source, \
             occurred_at = excluded.occurred_at, hour = excluded.hour \
             WHERE conversions.source = 'site' AND excluded.source = 'api'",
            vec![row; chunk.len()].join(", ")
        );
        let mut params = Vec::with_capacity(chunk.len() * CONVERSION_COLUMNS);
        for c in chunk {
            params.extend([
                text(&c.order_id),
                text(&c.campaign),
                text(&c.contact),
                text(&c.message),
                int(c.link),
                text(&c.channel),
                int(c.value_minor),
                text(&c.currency),
                text(c.source.as_str()),
                int(c.at as i64),
                int(epistola_core::event::hour_bucket(c.at) as i64),
                int(now as i64),
            ]);
        }
        statements.push(db.prepare(sql).bind(&params)?);
    }
    for c in conversions
        .iter()
        .filter(|c| c.source == Source::Site && !c.contact.is_empty())
    {
        let data = serde_json::json!({
            "order_id": c.order_id,
            "value": epistola_core::conversion::format_major(c.value_minor, &c.currency),
            "currency": c.currency,
        });
        statements.push(
            db.prepare(
                "INSERT INTO contact_events (id, contact_id, type, at, data, received_at) \
                 SELECT ?1, ?2, 'purchase', ?3, ?4, ?5 WHERE EXISTS (SELECT 1 FROM contacts WHERE id = ?2) \
                 ON CONFLICT (id) DO NOTHING",
            )
            .bind(&[
                text(&format!("order.{}", c.order_id)),
                text(&c.contact),
                int(c.at as i64),
                text(&data.to_string()),
                int(now as i64),
            ])?,
        );
    }
    Ok(statements)
}

#[derive(Deserialize)]
struct RollupRecord {
    metric: String,
    label: String,
    link_index: i64,
    n: i64,
}

#[derive(Deserialize)]
struct SeriesRecord {
    hour: u64,
    opens_human: u64,
    opens_privacy_proxy: u64,
    opens_scanner: u64,
    clicks_human: u64,
    clicks_privacy_proxy: u64,
    clicks_scanner: u64,
    unsubscribes: u64,
    conversions: u64,
    sent: u64,
}

#[derive(Deserialize)]
struct LinkRecord {
    link_index: i64,
    url: String,
}

/// What a campaign's stats are made of.
#[derive(Debug, Default)]
pub struct CampaignRollups {
    /// `rollup_total` rows (hour 0): every count.
    pub totals: Vec<RollupRow>,
    /// `rollup_series` rows: the time series.
    pub series: Vec<SeriesRow>,
    /// Registered destination per link index.
    pub links: Vec<(u16, String)>,
    /// Rows D1 read to answer (reported in `Server-Timing`).
    pub rows_read: usize,
}

/// All rollup rows and registered links of a campaign, read in one round trip: bounded by
/// metrics × labels × links plus the days of its series, whatever the event count.
pub async fn campaign_rollups(env: &Env, campaign: &str) -> Result<CampaignRollups> {
    let db = env.d1(bindings::DB)?;
    let id = [text(campaign)];
    let results = db
        .batch(vec![
            db.prepare("SELECT metric, label, link_index, n FROM rollup_total WHERE campaign_id = ?1")
                .bind(&id)?,
            db.prepare(
                "SELECT hour, opens_human, opens_privacy_proxy, opens_scanner, clicks_human, clicks_privacy_proxy, \
                 clicks_scanner, unsubscribes, conversions, sent FROM rollup_series WHERE campaign_id = ?1",
            )
            .bind(&id)?,
            db.prepare("SELECT link_index, url FROM campaign_links WHERE campaign_id = ?1 ORDER BY link_index")
                .bind(&id)?,
        ])
        .await?;
    let [totals, series, links] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    let rows_read = results
        .iter()
        .filter_map(|r| r.meta().ok().flatten().and_then(|m| m.rows_read))
        .sum();
    let totals = totals
        .results::<RollupRecord>()?
        .into_iter()
        .map(|r| RollupRow {
            metric: r.metric,
            label: r.label,
            link: r.link_index,
            hour: 0,
            n: r.n.max(0) as u64,
        })
        .collect();
    let series = series
        .results::<SeriesRecord>()?
        .into_iter()
        .map(|r| SeriesRow {
            hour: r.hour,
            point: HourPoint {
                hour: String::new(),
                opens: ByLabel {
                    human: r.opens_human,
                    privacy_proxy: r.opens_privacy_proxy,
                    scanner: r.opens_scanner,
                },
                clicks: ByLabel {
                    human: r.clicks_human,
                    privacy_proxy: r.clicks_privacy_proxy,
                    scanner: r.clicks_scanner,
                },
                unsubscribes: r.unsubscribes,
                conversions: r.conversions,
                sent: r.sent,
            },
        })
        .collect();
    Ok(CampaignRollups {
        totals,
        series,
        links: links
            .results::<LinkRecord>()?
            .into_iter()
            .filter_map(|l| Some((u16::try_from(l.link_index).ok()?, l.url)))
            .collect(),
        rows_read,
    })
}
