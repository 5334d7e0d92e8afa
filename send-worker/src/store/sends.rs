//! Send keys (`sends`), as the sending pipeline uses them: the facts a chunk is planned from
//! (one statement for up to a hundred recipients), the claim that re-checks caps in the same
//! statement, per-domain hourly reservations, and outcomes recorded in bulk. Rows travel as one
//! JSON parameter read with `json_each`, so a chunk costs a handful of statements, not one per
//! letter.

use std::collections::{HashMap, HashSet};

use epistola_core::plan::CapScope;
use epistola_core::sendkey::KeyState;
use epistola_worker_kit::db::{int, opt_text, text};
use serde::Deserialize;
use worker::{Env, Result};

use crate::bindings;

/// Which earlier sends a cap counts, as SQL over `sends s`. `?3` is the channel and `?4` the kind
/// in every statement that uses it.
fn scope_sql(scope: CapScope) -> &'static str {
    match scope {
        CapScope::AudienceMail => "s.campaign_id IS NOT NULL AND s.channel = ?3",
        CapScope::SameKind => "s.kind = ?4",
    }
}

/// What the facts of a chunk are read for.
#[derive(Debug)]
pub struct FactsQuery<'a> {
    /// The site whose consent ledger counts.
    pub site: &'a str,
    /// (contact, send key, capture) per recipient.
    pub recipients: &'a [(String, String, Option<String>)],
    pub scope: CapScope,
    /// The `sends.kind` of the mailing and its channel.
    pub kind: &'a str,
    pub channel: &'a str,
    /// Recent sends are read back to this time (the longest cap window).
    pub recent_since: u64,
    /// (fingerprint, since, this campaign): who got this content from another campaign.
    pub content: Option<(&'a str, u64, &'a str)>,
    /// SMS fallback: the campaign whose human opens and clicks count as engagement.
    pub engagement_of: Option<&'a str>,
}

/// One recipient as the planner and the letter see them.
#[derive(Debug, Clone, Deserialize)]
pub struct FactRow {
    pub send_key: String,
    pub capture_id: Option<String>,
    pub id: String,
    pub email: String,
    pub phone: Option<String>,
    /// `pending` or `confirmed`.
    pub status: String,
    pub name: Option<String>,
    pub gender: Option<String>,
    pub birthday: Option<String>,
    pub locale: Option<String>,
    pub time_zone: Option<String>,
    /// JSON object of custom fields.
    pub fields: String,
    pub test_list: i64,
    /// JSON `[[seq, purpose, channel, action], …]` for the site.
    pub ledger: Option<String>,
    pub suppressed: i64,
    pub key_state: Option<String>,
    /// JSON array of unix seconds.
    pub recent: Option<String>,
    pub got_content: i64,
    pub engaged: i64,
    pub rfm_segment: Option<String>,
    pub capture_status: Option<String>,
}

/// The facts of a chunk: one statement, one row per recipient whose contact still exists.
pub async fn chunk_facts(env: &Env, q: &FactsQuery<'_>) -> Result<Vec<FactRow>> {
    let occupying = KeyState::sql_list(KeyState::occupies_cap);
    let sql = format!(
        "SELECT j.key AS send_key, j.capture AS capture_id, k.id, k.email, k.phone, k.status, k.name, k.gender, k.birthday, k.locale, \
           k.time_zone, k.fields, k.test_list, \
           (SELECT json_group_array(json_array(l.seq, l.purpose, l.channel, l.action)) FROM consent_ledger l \
             WHERE l.contact_id = k.id AND l.site_id = ?2) AS ledger, \
           EXISTS (SELECT 1 FROM suppressions x WHERE x.contact_id = k.id) AS suppressed, \
           (SELECT status FROM sends s WHERE s.send_key = j.key) AS key_state, \
           (SELECT json_group_array(s.updated_at) FROM sends s WHERE s.contact_id = k.id AND {scope} \
             AND s.status IN ({occupying}) AND s.send_key <> j.key AND s.updated_at > ?5) AS recent, \
           (?6 <> '' AND EXISTS (SELECT 1 FROM sends s WHERE s.content_hash = ?6 AND s.contact_id = k.id \
             AND s.status = 'sent' AND s.updated_at > ?7 AND s.campaign_id <> ?8)) AS got_content, \
           (?9 <> '' AND EXISTS (SELECT 1 FROM first_seen f WHERE f.campaign_id = ?9 AND f.label = 'human' \
             AND f.link_index = -1 AND f.metric IN ('open', 'click') AND f.contact_id = k.id)) AS engaged, \
           (SELECT segment FROM contact_rfm r WHERE r.contact_id = k.id) AS rfm_segment, \
           (SELECT status FROM captures c WHERE c.id = j.capture) AS capture_status \
         FROM (SELECT json_extract(value, '$[0]') AS contact, json_extract(value, '$[1]') AS key, \
                      json_extract(value, '$[2]') AS capture FROM json_each(?1)) j \
         JOIN contacts k ON k.id = j.contact",
        scope = scope_sql(q.scope),
    );
    let (hash, since, campaign) = q.content.unwrap_or(("", 0, ""));
    env.d1(bindings::DB)?
        .prepare(sql)
        .bind(&[
            text(&serde_json::to_string(q.recipients)?),
            text(q.site),
            text(q.channel),
            text(q.kind),
            int(q.recent_since as i64),
            text(hash),
            int(since as i64),
            text(campaign),
            text(q.engagement_of.unwrap_or("")),
        ])?
        .all()
        .await?
        .results::<FactRow>()
}

/// Which of these address hashes are on an imported suppression list, and what each of these
/// throttled domains got this hour: one round trip.
pub async fn hashes_and_domains(
    env: &Env,
    hashes: &[String],
    domains: &[String],
    now: u64,
) -> Result<(HashSet<String>, HashMap<String, u32>)> {
    #[derive(Deserialize)]
    struct Hash {
        address_hash: String,
    }
    #[derive(Deserialize)]
    struct Count {
        key: String,
        n: u32,
    }
    let db = env.d1(bindings::DB)?;
    let keys: Vec<String> = domains.iter().map(|d| domain_key(d)).collect();
    let results = db
        .batch(vec![
            db.prepare(
                "SELECT address_hash FROM address_suppressions WHERE address_hash IN (SELECT value FROM json_each(?1))",
            )
            .bind(&[text(&serde_json::to_string(hashes)?)])?,
            db.prepare("SELECT key, n FROM rate_limits WHERE window = ?2 AND key IN (SELECT value FROM json_each(?1))")
                .bind(&[text(&serde_json::to_string(&keys)?), int(hour(now))])?,
        ])
        .await?;
    let [found, counts] = results.as_slice() else {
        return Err(worker::Error::RustError(
            "D1 batch returned an unexpected number of results".into(),
        ));
    };
    Ok((
        found
            .results::<Hash>()?
            .into_iter()
            .map(|h| h.address_hash)
            .collect(),
        counts
            .results::<Count>()?
            .into_iter()
            .filter_map(|c| Some((c.key.strip_prefix("domain:")?.to_owned(), c.n)))
            .collect(),
    ))
}

fn domain_key(domain: &str) -> String {
    format!("domain:{domain}")
}

fn hour(now: u64) -> i64 {
    (now / 3600) as i64
}

/// Reserves up to `wanted` letters of this hour for each domain, never past its `limit`; returns
/// how many each got. Each domain's read and write run in one batch (one transaction: D1 runs a
/// database's statements one at a time), so concurrent chunks cannot both take the last slot.
pub async fn reserve_domains(
    env: &Env,
    wanted: &[(String, u32, u32)],
    now: u64,
) -> Result<HashMap<String, u32>> {
    #[derive(Deserialize)]
    struct Row {
        n: u32,
    }
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for (domain, n, limit) in wanted {
        let key = text(&domain_key(domain));
        statements.push(
            db.prepare("SELECT n FROM rate_limits WHERE key = ?1 AND window = ?2")
                .bind(&[key.clone(), int(hour(now))])?,
        );
        statements.push(
            db.prepare(
                "INSERT INTO rate_limits (key, window, n, expires_at) VALUES (?1, ?2, min(?3, ?4), ?5) \
                 ON CONFLICT (key, window) DO UPDATE SET n = min(n + ?3, ?4)",
            )
            .bind(&[
                key,
                int(hour(now)),
                int(i64::from(*n)),
                int(i64::from(*limit)),
                int((hour(now) + 1) * 3600),
            ])?,
        );
    }
    let results = db.batch(statements).await?;
    let mut granted = HashMap::new();
    for (i, (domain, n, limit)) in wanted.iter().enumerate() {
        let before = match results.get(2 * i) {
            Some(r) => r.results::<Row>()?.first().map_or(0, |r| r.n),
            None => 0,
        };
        granted.insert(domain.clone(), (*n).min(limit.saturating_sub(before)));
    }
    Ok(granted)
}

/// Gives back reserved slots that no letter used (a refused claim, a failed delivery).
pub async fn release_domains(env: &Env, unused: &HashMap<String, u32>, now: u64) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for (domain, n) in unused.iter().filter(|(_, n)| **n > 0) {
        statements.push(
            db.prepare("UPDATE rate_limits SET n = max(n - ?3, 0) WHERE key = ?1 AND window = ?2")
                .bind(&[
                    text(&domain_key(domain)),
                    int(hour(now)),
                    int(i64::from(*n)),
                ])?,
        );
    }
    if !statements.is_empty() {
        db.batch(statements).await?;
    }
    Ok(())
}

/// What is the same for every row a mailing claims or records.
#[derive(Debug, Clone, Copy)]
pub struct KeyColumns<'a> {
    /// `sends.kind`: campaign, test, chain, confirmation, delivery.
    pub kind: &'a str,
    /// The campaign (or chain step) the outcome counts under; `None` for tests and opt-in letters.
    pub campaign: Option<&'a str>,
    pub channel: &'a str,
}

/// One key to claim.
#[derive(Debug)]
pub struct ClaimRow<'a> {
    pub key: &'a str,
    pub contact: &'a str,
    /// (window seconds, most sends) re-checked in the claim.
    pub caps: &'a [(u64, usize)],
    pub capture: Option<&'a str>,
}

/// Claims keys (status `sending`): a key is taken only if it is new or claimable, and only if
/// none of its caps is full, counting letters sent or being sent in `scope` — in one statement,
/// which D1 runs alone, so two consumers never both take a key or the last slot of a cap.
/// Returns the keys claimed.
pub async fn claim(
    env: &Env,
    cols: KeyColumns<'_>,
    scope: CapScope,
    rows: &[ClaimRow<'_>],
    now: u64,
) -> Result<HashSet<String>> {
    #[derive(Deserialize)]
    struct Claimed {
        send_key: String,
    }
    if rows.is_empty() {
        return Ok(HashSet::new());
    }
    let json: Vec<_> = rows
        .iter()
        .map(|r| (r.key, r.contact, r.caps, r.capture))
        .collect();
    let sql = format!(
        "INSERT INTO sends (send_key, kind, contact_id, capture_id, campaign_id, channel, status, attempts, \
           created_at, updated_at) \
         SELECT j.key, ?4, j.contact, j.capture, ?2, ?3, 'sending', 1, ?5, ?5 \
         FROM (SELECT json_extract(value, '$[0]') AS key, json_extract(value, '$[1]') AS contact, \
                      json_extract(value, '$[2]') AS caps, json_extract(value, '$[3]') AS capture \
               FROM json_each(?1)) j \
         WHERE NOT EXISTS (SELECT 1 FROM json_each(j.caps) c WHERE \
           (SELECT count(*) FROM sends s WHERE s.contact_id = j.contact AND {scope} AND s.status IN ({occupying}) \
             AND s.send_key <> j.key AND s.updated_at > ?5 - json_extract(c.value, '$[0]')) \
           >= json_extract(c.value, '$[1]')) \
         ON CONFLICT (send_key) DO UPDATE SET status = 'sending', attempts = attempts + 1, \
           updated_at = excluded.updated_at WHERE sends.status IN ({claimable}) \
         RETURNING send_key",
        scope = scope_sql(scope),
        occupying = KeyState::sql_list(KeyState::occupies_cap),
        claimable = KeyState::sql_list(KeyState::claimable),
    );
    let claimed = env
        .d1(bindings::DB)?
        .prepare(sql)
        .bind(&[
            text(&serde_json::to_string(&json)?),
            opt_text(cols.campaign),
            text(cols.channel),
            text(cols.kind),
            int(now as i64),
        ])?
        .all()
        .await?
        .results::<Claimed>()?;
    Ok(claimed.into_iter().map(|c| c.send_key).collect())
}

/// One outcome to record.
#[derive(Debug, Clone)]
pub struct OutcomeRow {
    pub key: String,
    pub contact: String,
    pub capture: Option<String>,
    pub status: KeyState,
    pub reason: Option<String>,
    /// The transport's answer (never message content).
    pub detail: Option<String>,
    pub due_at: Option<u64>,
    pub channel: String,
    /// Fingerprint of a sent campaign letter's content (duplicate-content rule).
    pub content_hash: Option<String>,
}

/// Records outcomes in one batch: `after_claim` rows replace `sending` (the claim was ours);
/// `decided` rows (skips, deferrals, a waiting SMS fallback) are written only where the key is
/// new or still claimable, never over a final outcome.
pub async fn record(
    env: &Env,
    cols: KeyColumns<'_>,
    after_claim: &[OutcomeRow],
    decided: &[OutcomeRow],
    now: u64,
) -> Result<()> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for (rows, only) in [
        (after_claim, KeyState::sql_list(|k| k == KeyState::Sending)),
        (decided, KeyState::sql_list(KeyState::claimable)),
    ] {
        if rows.is_empty() {
            continue;
        }
        let json: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    &r.key,
                    &r.contact,
                    &r.capture,
                    r.status.as_str(),
                    &r.reason,
                    &r.detail,
                    r.due_at,
                    &r.channel,
                    &r.content_hash,
                )
            })
            .collect();
        statements.push(
            db.prepare(format!(
                "INSERT INTO sends (send_key, kind, contact_id, capture_id, campaign_id, channel, status, attempts, \
                   reason, detail, due_at, content_hash, created_at, updated_at) \
                 SELECT json_extract(value, '$[0]'), ?2, json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
                   ?3, json_extract(value, '$[7]'), json_extract(value, '$[3]'), 1, json_extract(value, '$[4]'), \
                   json_extract(value, '$[5]'), json_extract(value, '$[6]'), json_extract(value, '$[8]'), ?4, ?4 \
                 FROM json_each(?1) WHERE true \
                 ON CONFLICT (send_key) DO UPDATE SET status = excluded.status, reason = excluded.reason, \
                   detail = excluded.detail, due_at = excluded.due_at, updated_at = excluded.updated_at, \
                   content_hash = COALESCE(excluded.content_hash, content_hash) \
                 WHERE sends.status IN ({only})"
            ))
            .bind(&[
                text(&serde_json::to_string(&json)?),
                text(cols.kind),
                opt_text(cols.campaign),
                int(now as i64),
            ])?,
        );
    }
    if !statements.is_empty() {
        db.batch(statements).await?;
    }
    Ok(())
}

/// Remembers each link index's destination for per-link stats (first one wins).
pub async fn register_links(env: &Env, campaign: &str, links: &[(u16, String)]) -> Result<()> {
    if links.is_empty() {
        return Ok(());
    }
    if epistola_worker_kit::queue::inject_send_failure(env, &format!("links.{campaign}")) {
        // Fault injection (tests only): a statement D1 refuses, as a real outage would.
        env.d1(bindings::DB)?
            .prepare("INSERT INTO fault_injection_missing_table VALUES (1)")
            .run()
            .await?;
    }
    env.d1(bindings::DB)?
        .prepare(
            "INSERT INTO campaign_links (campaign_id, link_index, url) \
             SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?2) WHERE true \
             ON CONFLICT DO NOTHING",
        )
        .bind(&[text(campaign), text(&serde_json::to_string(links)?)])?
        .run()
        .await?;
    Ok(())
}

/// A deferred send (or a waiting SMS fallback) whose time has come.
#[derive(Debug, Deserialize)]
pub struct DueSend {
    pub campaign_id: String,
    pub contact_id: String,
    pub channel: String,
}

/// Deferred sends that are due, leased for `lease` seconds so the next tick does not queue them
/// again while they are in flight. Also gives up on sends left `sending` by a crash long ago:
/// their outcome is unknown, and sending again could double them.
pub async fn due_deferred(env: &Env, now: u64, lease: u64) -> Result<Vec<DueSend>> {
    let db = env.d1(bindings::DB)?;
    let results = db
        .batch(vec![
            db.prepare(
                "UPDATE sends SET status = 'failed', reason = 'outcome_unknown', updated_at = ?1 \
                 WHERE status = 'sending' AND updated_at < ?1 - 900",
            )
            .bind(&[int(now as i64)])?,
            // Campaign letters only: chain steps wait on their runs, which the chain tick picks up.
            db.prepare(format!(
                "UPDATE sends SET due_at = ?1 + ?2 WHERE send_key IN (SELECT send_key FROM sends \
                 WHERE status IN ({claimable}) AND due_at <= ?1 AND kind = 'campaign' \
                 AND campaign_id IN (SELECT id FROM campaigns) LIMIT 1000) \
                 RETURNING campaign_id, contact_id, channel",
                claimable = KeyState::sql_list(KeyState::claimable)
            ))
            .bind(&[int(now as i64), int(lease as i64)])?,
        ])
        .await?;
    match results.last() {
        Some(r) => r.results::<DueSend>(),
        None => Ok(Vec::new()),
    }
}
