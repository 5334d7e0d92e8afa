//! The workspace's own letters: a user's one-time sign-in link, mailed through the configured
//! transport (SMTP or Mailgun) by the sends queue, so asking for a link answers at once, the same
//! way for an address with an account as for one without, and a relay that is down is retried.

use epistola_core::event::SignInJob;
use epistola_core::token::Purpose;
use epistola_sender::letter::{self, Letter};
use epistola_sender::mime::{build_message, Outgoing};
use epistola_sender::smtp::{Envelope, SmtpError};
use worker::Env;

use crate::jobs::{JobError, JobOutcome, JobResult};
use crate::mailer::Mailer;
use crate::pipeline::letters::host_of;
use crate::{config, store};

/// Var: the address workspace letters come from (default `workspace@` the public host).
pub const WORKSPACE_FROM: &str = "WORKSPACE_FROM";

pub async fn send_sign_in_link(env: &Env, job: &SignInJob, now: u64) -> JobResult {
    let Some(link) = store::sign_in_link(env, &job.link).await? else {
        return Err(JobError::Permanent(format!(
            "sign-in link {} is gone",
            job.link
        )));
    };
    let left = link.expires_at - now as i64;
    if link.used_at.is_some() || left <= 0 {
        // Used meanwhile, or the queue was slower than the link's life: nothing worth sending.
        return Ok(JobOutcome::Done);
    }
    let Some(user) = store::active_user(env, &link.user_id).await? else {
        return Ok(JobOutcome::Done);
    };
    let token = config::sign_contact_token(
        env,
        Purpose::SignIn,
        &link.id,
        &user.id,
        "",
        now,
        left as u32,
    )
    .ok_or_else(|| JobError::Transient("no signing key".into()))?;
    let url = format!(
        "{}/dashboard/sign-in/{token}",
        job.base_url.trim_end_matches('/')
    );
    let letter = letter::sign_in(&url, (left as u32).div_ceil(60));
    if !store::claim_sign_in_letter(env, &link.id, now).await? {
        return Ok(JobOutcome::Done); // a redelivery: the letter went (or is going) already
    }
    let sent =
        deliver_workspace_letter(env, &job.base_url, &user.email, &letter, &link.id, now).await;
    match sent {
        Ok(()) => Ok(JobOutcome::Done),
        // A link to an address that bounces cannot be helped by retrying; anything else can.
        Err(e) if !e.is_transient() => Err(JobError::Permanent(format!("sign-in link: {e}"))),
        Err(e) => {
            store::release_sign_in_letter(env, &link.id).await?;
            Err(JobError::Transient(format!("sign-in link: {e}")))
        }
    }
}

/// The address workspace letters come from.
pub fn workspace_from(env: &Env, base_url: &str) -> String {
    config::text(env, WORKSPACE_FROM).unwrap_or_else(|| format!("workspace@{}", host_of(base_url)))
}

/// Mails one workspace letter (`id`: unique, for its Message-ID) through the configured
/// transport, on its own connection, and says what the transport answered.
pub async fn deliver_workspace_letter(
    env: &Env,
    base_url: &str,
    to: &str,
    letter: &Letter,
    id: &str,
    now: u64,
) -> Result<(), SmtpError> {
    let host = host_of(base_url);
    let from = workspace_from(env, base_url);
    let mime = build_message(&Outgoing {
        from_name: "Epistola",
        from: &from,
        to,
        letter,
        message_id: &format!("{id}@{host}"),
        date: now as i64,
        headers: &[],
    });
    let mut mailer = Mailer::default();
    let sent = mailer
        .deliver(env, host, &Envelope { from: &from, to }, &mime, None)
        .await;
    mailer.finish().await;
    sent
}
