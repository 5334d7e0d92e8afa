//! Double opt-in mail jobs, run by the queue consumer: the confirmation letter after a capture,
//! the promised item after confirmation. Each has a send key, so a redelivered job sends nothing.

use epistola_core::consent::{pending_requests, texts_to_confirm};
use epistola_core::contact::address_hash;
use epistola_core::event::CaptureJob;
use epistola_core::policy::{decide_optin, Decision, OptinFacts, OptinLetter, SkipReason};
use epistola_core::sendkey::KeyState;
use epistola_core::token::Purpose;
use epistola_core::track::UNSUBSCRIBE_TTL_SECONDS;
use epistola_core::url::origin_of;
use epistola_sender::letter::{self, Letter};
use epistola_sender::mime::{build_message, Outgoing};
use epistola_sender::smtp::Envelope;
use worker::Env;

use crate::{config, mailer, store};

/// Confirm links work for a week; preference links as long as unsubscribe links.
pub const CONFIRM_TTL_SECONDS: u32 = 7 * 86_400;

/// Which letter a job sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    Confirmation,
    Delivery,
}

impl MailKind {
    fn as_str(self) -> &'static str {
        match self {
            MailKind::Confirmation => "confirmation",
            MailKind::Delivery => "delivery",
        }
    }
}

/// Whether the queue message is finished with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    Done,
    Retry,
}

pub async fn run(env: &Env, kind: MailKind, job: &CaptureJob, now: u64) -> JobOutcome {
    match try_run(env, kind, job, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            worker::console_error!("{} job for {}: {e}", kind.as_str(), job.capture);
            JobOutcome::Retry
        }
    }
}

/// Within this many seconds, one confirmation letter per address, whichever site asked.
const CONFIRMATIONS_PER_ADDRESS_WINDOW: u64 = 86_400;

async fn try_run(
    env: &Env,
    kind: MailKind,
    job: &CaptureJob,
    now: u64,
) -> worker::Result<JobOutcome> {
    let send_key = format!("{}.{}", kind.as_str(), job.capture);
    let Some(capture) = store::capture_for_mail(env, &job.capture).await? else {
        worker::console_warn!("{} job: capture {} is gone", kind.as_str(), job.capture);
        return Ok(JobOutcome::Done);
    };
    let key = store::OptinSend {
        send_key: &send_key,
        kind: kind.as_str(),
        contact: &capture.contact_id,
        capture: &job.capture,
    };
    let address_suppressed = !store::suppressed_hashes(env, &[address_hash(&capture.email)])
        .await?
        .is_empty();
    let facts = OptinFacts {
        capture_confirmed: capture.status == "confirmed",
        suppressed: capture.suppressed == 1 || address_suppressed,
    };
    let letter_kind = match kind {
        MailKind::Confirmation => OptinLetter::Confirmation,
        MailKind::Delivery => OptinLetter::Delivery,
    };
    if let Decision::Skip(reason) = decide_optin(letter_kind, facts) {
        store::record_optin_send(
            env,
            &key,
            KeyState::Skipped,
            Some(reason.as_str()),
            None,
            now,
        )
        .await?;
        return Ok(JobOutcome::Done);
    }
    if kind == MailKind::Delivery {
        // The `lead.confirmed` event enrols the contact in chains triggered by it (once: the
        // event id is the capture's).
        let event = store::NewEvent {
            id: format!("lead.confirmed.{}", job.capture),
            contact_id: capture.contact_id.clone(),
            kind: "lead.confirmed".into(),
            at: now,
            data: serde_json::json!({ "site": capture.site_id }).to_string(),
        };
        store::record_events_and_enrol(env, &[event], now).await?;
    }
    let Some(site) = store::get_site(env, &capture.site_id).await? else {
        worker::console_error!("{} job: site {} is gone", kind.as_str(), capture.site_id);
        store::record_optin_send(env, &key, KeyState::Failed, Some("site_gone"), None, now).await?;
        return Ok(JobOutcome::Done);
    };
    // Claimed after every read and before the transport: a D1 failure before this point leaves
    // the key unclaimed, so nothing is reported `outcome_unknown` that was never sent.
    let per_day = (kind == MailKind::Confirmation).then_some(CONFIRMATIONS_PER_ADDRESS_WINDOW);
    match store::claim_optin_send(env, &key, per_day, now).await? {
        store::OptinClaim::Claimed => {}
        store::OptinClaim::Settled => return Ok(JobOutcome::Done),
        store::OptinClaim::DailyLimit => {
            store::record_optin_send(
                env,
                &key,
                KeyState::Skipped,
                Some(SkipReason::DailyLimit.as_str()),
                None,
                now,
            )
            .await?;
            return Ok(JobOutcome::Done);
        }
    }
    let base = job.base_url.trim_end_matches('/');
    let token = |purpose, ttl| {
        config::sign_contact_token(
            env,
            purpose,
            &capture.site_id,
            &capture.contact_id,
            &job.capture,
            now,
            ttl,
        )
    };
    let unsigned = || async {
        // No key ring: give the key back for the retry.
        store::record_optin_send(
            env,
            &key,
            KeyState::Retrying,
            None,
            Some("no signing keys"),
            now,
        )
        .await
    };
    let mut headers: Vec<(&str, String)> = Vec::new();
    let letter: Letter = match kind {
        MailKind::Confirmation => {
            let Some(t) = token(Purpose::Confirm, CONFIRM_TTL_SECONDS) else {
                unsigned().await?;
                return Ok(JobOutcome::Retry);
            };
            let requested = pending_requests(&capture.consents).unwrap_or_default();
            let grants: Vec<&str> = texts_to_confirm(&site, &requested)
                .iter()
                .map(|t| t.text.as_str())
                .collect();
            letter::confirmation(&site, &format!("{base}/confirm/{t}"), &grants)
        }
        MailKind::Delivery => {
            let (Some(p), Some(u)) = (
                token(Purpose::Preferences, UNSUBSCRIBE_TTL_SECONDS),
                token(Purpose::Unsubscribe, UNSUBSCRIBE_TTL_SECONDS),
            ) else {
                unsigned().await?;
                return Ok(JobOutcome::Retry);
            };
            headers.push(("List-Unsubscribe", format!("<{base}/u/{u}>")));
            headers.push((
                "List-Unsubscribe-Post",
                "List-Unsubscribe=One-Click".to_owned(),
            ));
            letter::delivery(&site, &format!("{base}/p/{p}"))
        }
    };
    let host = origin_of(base)
        .and_then(|o| o.split("://").nth(1))
        .unwrap_or("epistola.invalid");
    let host = host.split(':').next().unwrap_or(host);
    let message_id = format!("{send_key}@{host}");
    let message = build_message(&Outgoing {
        from_name: &site.name,
        from: &site.from_email,
        to: &capture.email,
        letter: &letter,
        message_id: &message_id,
        date: now as i64,
        headers: &headers,
    });
    let envelope = Envelope {
        from: &site.from_email,
        to: &capture.email,
    };
    match mailer::deliver(env, host, &envelope, &message).await {
        Ok(()) => {
            store::record_optin_send(env, &key, KeyState::Sent, None, None, now).await?;
            Ok(JobOutcome::Done)
        }
        Err(e) if e.is_transient() => {
            let detail = e.to_string();
            store::record_optin_send(env, &key, KeyState::Retrying, None, Some(&detail), now)
                .await?;
            worker::console_warn!(
                "{} for {}: {}; will retry",
                kind.as_str(),
                job.capture,
                e.summary()
            );
            Ok(JobOutcome::Retry)
        }
        Err(e) => {
            let detail = e.to_string();
            store::record_optin_send(
                env,
                &key,
                KeyState::Failed,
                Some("bounced"),
                Some(&detail),
                now,
            )
            .await?;
            store::suppress(env, &capture.contact_id, "bounced", &capture.site_id, now).await?;
            worker::console_error!(
                "{} for {} bounced: {}",
                kind.as_str(),
                job.capture,
                e.summary()
            );
            Ok(JobOutcome::Done)
        }
    }
}
