//! Suppressions as the workspace manages them: imported lists (hashes only), the lift of a
//! suppression with its ledger row, and the reads of the suppressions page (counts, the newest own
//! suppressions, one address looked up, the ledger).

use epistola_worker_kit::db::{int, opt_text, text};
use serde::Deserialize;
use worker::{Env, Result};

use super::BULK_ROWS;
use crate::bindings;

/// Stores address hashes of an imported suppression list; returns how many were new.
pub async fn import_address_suppressions(
    env: &Env,
    hashes: &[String],
    reason: &str,
    source: Option<&str>,
    now: u64,
) -> Result<u64> {
    let db = env.d1(bindings::DB)?;
    let mut statements = Vec::new();
    for chunk in hashes.chunks(BULK_ROWS * 4) {
        statements.push(
            db.prepare(
                "INSERT INTO address_suppressions (address_hash, reason, source, created_at) \
                 SELECT value, ?2, ?3, ?4 FROM json_each(?1) WHERE true ON CONFLICT DO NOTHING",
            )
            .bind(&[
                text(&serde_json::to_string(chunk)?),
                text(reason),
                opt_text(source),
                int(now as i64),
            ])?,
        );
    }
    if statements.is_empty() {
        return Ok(0);
    }
    let results = db.batch(statements).await?;
    Ok(results
        .iter()
        .filter_map(|r| r.meta().ok().flatten().and_then(|m| m.changes))
        .map(|c| c as u64)
        .sum())
}

/// Lifts the suppression of an address (its contact's own, and any imported one by hash), and
/// records it in the suppression ledger, in one transaction. Returns the reason it had been
/// suppressed for, or `None` if it was not suppressed (nothing written).
pub async fn lift_suppression(
    env: &Env,
    email: &str,
    hash: &str,
    reason: &str,
    actor: &str,
    now: u64,
) -> Result<Option<String>> {
    let db = env.d1(bindings::DB)?;
    let suppressed = "(SELECT s.reason FROM suppressions s JOIN contacts k ON k.id = s.contact_id WHERE k.email = ?1 \
                      UNION ALL SELECT reason FROM address_suppressions WHERE address_hash = ?2 LIMIT 1)";
    let args = [
        text(email),
        text(hash),
        text(reason),
        text(actor),
        int(now as i64),
    ];
    let results = db
        .batch(vec![
            db.prepare(format!(
                "INSERT INTO suppression_ledger (address_hash, contact_id, action, reason, previous_reason, actor, at) \
                 SELECT ?2, (SELECT id FROM contacts WHERE email = ?1), 'lifted', ?3, {suppressed}, ?4, ?5 \
                 WHERE {suppressed} IS NOT NULL RETURNING previous_reason"
            ))
            .bind(&args)?,
            db.prepare(
                "DELETE FROM suppressions WHERE contact_id = (SELECT id FROM contacts WHERE email = ?1)",
            )
            .bind(&args[..1])?,
            db.prepare("DELETE FROM address_suppressions WHERE address_hash = ?1")
                .bind(&args[1..2])?,
        ])
        .await?;
    #[derive(Deserialize)]
    struct Row {
        previous_reason: String,
    }
    Ok(match results.first() {
        Some(r) => r
            .results::<Row>()?
            .into_iter()
            .next()
            .map(|r| r.previous_reason),
        None => None,
    })
}

/// How many addresses are suppressed for one reason: our own (`source` none) or from one
/// imported list's source.
#[derive(Debug, Clone, Deserialize)]
pub struct SuppressionCount {
    /// `own` or `imported`.
    pub origin: String,
    pub source: Option<String>,
    pub reason: String,
    pub n: i64,
}

/// The suppressions by origin, source and reason: own first, then the largest.
pub async fn suppression_counts(env: &Env) -> Result<Vec<SuppressionCount>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT 'own' AS origin, NULL AS source, reason, COUNT(*) AS n FROM suppressions GROUP BY reason \
             UNION ALL SELECT 'imported', source, reason, COUNT(*) FROM address_suppressions GROUP BY source, reason \
             ORDER BY origin DESC, n DESC",
        )
        .all()
        .await?
        .results()
}

/// One suppression of an address: our own (a contact's unsubscribe, bounce or complaint) or an
/// imported one (by hash; `source` as the import gave it).
#[derive(Debug, Clone, Deserialize)]
pub struct SuppressionRow {
    pub origin: String,
    pub contact_id: Option<String>,
    /// The contact's address, while the contact exists.
    pub email: Option<String>,
    pub reason: String,
    pub source: Option<String>,
    pub campaign_id: Option<String>,
    pub created_at: i64,
}

/// The newest own suppressions before `(created_at, contact_id)` (keyset: stays fast however many
/// there are), at most `limit`.
pub async fn own_suppressions(
    env: &Env,
    before: (i64, &str),
    limit: usize,
) -> Result<Vec<SuppressionRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT 'own' AS origin, s.contact_id, k.email, s.reason, NULL AS source, s.campaign_id, s.created_at \
             FROM suppressions s LEFT JOIN contacts k ON k.id = s.contact_id \
             WHERE (s.created_at, s.contact_id) < (?1, ?2) \
             ORDER BY s.created_at DESC, s.contact_id DESC LIMIT ?3",
        )
        .bind(&[int(before.0), text(before.1), int(limit as i64)])?
        .all()
        .await?
        .results()
}

/// Every suppression of one address: its contact's own and an imported one by its hash.
pub async fn address_suppressions(
    env: &Env,
    email: &str,
    hash: &str,
) -> Result<Vec<SuppressionRow>> {
    env.d1(bindings::DB)?
        .prepare(
            "SELECT 'own' AS origin, s.contact_id, k.email, s.reason, NULL AS source, s.campaign_id, s.created_at \
             FROM suppressions s JOIN contacts k ON k.id = s.contact_id WHERE k.email = ?1 \
             UNION ALL SELECT 'imported', NULL, NULL, reason, source, NULL, created_at \
             FROM address_suppressions WHERE address_hash = ?2",
        )
        .bind(&[text(email), text(hash)])?
        .all()
        .await?
        .results()
}

/// One row of the suppression ledger (its only action: a lifted suppression), with the contact's address while
/// the contact exists.
#[derive(Debug, Clone, Deserialize)]
pub struct LedgerRow {
    pub address_hash: String,
    pub contact_id: Option<String>,
    pub email: Option<String>,
    pub reason: String,
    pub previous_reason: Option<String>,
    pub actor: String,
    pub at: i64,
}

/// The newest ledger rows, of one address hash or of all, at most `limit`.
pub async fn suppression_ledger(
    env: &Env,
    hash: Option<&str>,
    limit: usize,
) -> Result<Vec<LedgerRow>> {
    let filter = if hash.is_some() {
        "WHERE l.address_hash = ?1"
    } else {
        "WHERE ?1 IS NULL"
    };
    env.d1(bindings::DB)?
        .prepare(format!(
            "SELECT l.address_hash, l.contact_id, k.email, l.reason, l.previous_reason, l.actor, l.at \
             FROM suppression_ledger l LEFT JOIN contacts k ON k.id = l.contact_id {filter} \
             ORDER BY l.seq DESC LIMIT ?2"
        ))
        .bind(&[opt_text(hash), int(limit as i64)])?
        .all()
        .await?
        .results()
}
