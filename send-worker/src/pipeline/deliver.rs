//! Delivering claimed messages and recording what happened. Who is at fault decides: only a
//! recipient-level permanent refusal is a bounce (recorded, the address suppressed); a relay,
//! account or configuration failure stops this chunk's attempts (the rest wait as `retrying`),
//! pauses the mailing with the reason and suppresses no one. Outcomes are written in bulk, every
//! [`FLUSH_EVERY`] letters and at the end.

use std::collections::HashMap;

use epistola_core::sendkey::KeyState;
use epistola_core::site::Channel;
use epistola_core::token::Keyring;
use epistola_sender::sms::SmsOutcome;
use epistola_sender::smtp::{Envelope, Failure};
use worker::Env;

use super::letters::{host_of, message_for, Message};
use super::{outcome, recipient, Delivered, Mailing, Ready, Report};
use crate::jobs::{JobError, JobOutcome};
use crate::store::{self, KeyColumns, OutcomeRow};
use crate::{mailer, sms};

/// A letter left `retrying` is queued again by the tick after this long, if the queue's own
/// retries have not delivered it by then (they may have been exhausted): nothing is lost.
pub const RETRY_REQUEUE_SECONDS: u64 = 600;
/// Outcomes buffered before they are written.
const FLUSH_EVERY: usize = 50;

/// The delivery side of one run: the SMTP session, buffered outcomes, and whether the transport
/// is down.
pub struct Delivery<'r, 'a> {
    m: &'r Mailing<'a>,
    keys: &'r Keyring,
    cols: KeyColumns<'r>,
    now: u64,
    mailer: mailer::Mailer,
    /// The first transport failure's summary: nothing more is attempted in this run.
    transport_down: Option<String>,
    delivered_any: bool,
    after_claim: Vec<OutcomeRow>,
    /// Rows that are not outcomes of a claim (a waiting SMS fallback).
    decided: Vec<OutcomeRow>,
}

impl<'r, 'a> Delivery<'r, 'a> {
    pub fn new(m: &'r Mailing<'a>, cols: KeyColumns<'r>, keys: &'r Keyring, now: u64) -> Self {
        Delivery {
            m,
            keys,
            cols,
            now,
            mailer: mailer::Mailer::default(),
            transport_down: None,
            delivered_any: false,
            after_claim: Vec::new(),
            decided: Vec::new(),
        }
    }

    /// Delivers claimed messages in order; `unused` collects domain slots no letter used.
    pub(super) async fn deliver(
        &mut self,
        env: &Env,
        mine: Vec<Ready>,
        report: &mut Report,
        unused: &mut HashMap<String, u32>,
    ) -> Result<(), JobError> {
        let (m, now) = (self.m, self.now);
        let mut mine = mine.into_iter().peekable();
        // The next letter, composed before this one's end of data is written (see below).
        let mut composed_next: Option<Result<Message, String>> = None;
        while let Some(r) = mine.next() {
            let to = recipient(&r.to);
            let message = match &self.transport_down {
                Some(_) => {
                    composed_next = None;
                    None
                }
                None => Some(
                    composed_next
                        .take()
                        .unwrap_or_else(|| message_for(m, self.keys, &r.to, now)),
                ),
            };
            let (status, reason, detail) = match message {
                None => (KeyState::Retrying, Some("transport"), None),
                Some(Err(why)) => {
                    worker::console_error!("{}: cannot compose: {why}", m.stats_id);
                    (KeyState::Failed, Some("render_error"), Some(why))
                }
                Some(Ok(Message::Email { mime, .. })) => {
                    let envelope = Envelope {
                        from: &m.site.from_email,
                        to: &r.to.email,
                    };
                    // Compose the next letter first: once it exists, its envelope can go in the
                    // same write as this letter's end of data (one round trip per letter).
                    composed_next = mine.peek().map(|n| message_for(m, self.keys, &n.to, now));
                    let next_email = match (&composed_next, mine.peek()) {
                        (Some(Ok(Message::Email { .. })), Some(n)) => Some(n.to.email.as_str()),
                        _ => None,
                    };
                    let next = next_email.map(|to| Envelope {
                        from: &m.site.from_email,
                        to,
                    });
                    match self
                        .mailer
                        .deliver(env, host_of(m.base_url), &envelope, &mime, next.as_ref())
                        .await
                    {
                        Ok(()) => (KeyState::Sent, None, None),
                        Err(e) => match e.failure() {
                            Failure::Bounce => {
                                worker::console_error!(
                                    "{}: permanent failure: {}",
                                    m.stats_id,
                                    e.summary()
                                );
                                store::suppress(env, &r.to.contact, "bounced", m.stats_id, now)
                                    .await?;
                                (KeyState::Failed, Some("bounced"), Some(e.to_string()))
                            }
                            Failure::TryLater => {
                                worker::console_warn!(
                                    "{}: {}; will retry",
                                    m.stats_id,
                                    e.summary()
                                );
                                (KeyState::Retrying, None, Some(e.to_string()))
                            }
                            Failure::Transport => {
                                self.transport_down = Some(e.summary());
                                (KeyState::Retrying, Some("transport"), Some(e.to_string()))
                            }
                        },
                    }
                }
                Some(Ok(Message::Sms(text))) => {
                    let phone = r.to.phone.as_deref().unwrap_or_default();
                    match sms::send(env, phone, &text).await {
                        (SmsOutcome::Accepted, _) => (KeyState::Sent, None, None),
                        (SmsOutcome::Transient, detail) => (KeyState::Retrying, None, detail),
                        (SmsOutcome::Transport, detail) => {
                            self.transport_down = Some(
                                detail
                                    .clone()
                                    .unwrap_or_else(|| "SMS provider failed".into()),
                            );
                            (KeyState::Retrying, Some("transport"), detail)
                        }
                        (SmsOutcome::Permanent, detail) => {
                            (KeyState::Failed, Some("sms_refused"), detail)
                        }
                    }
                }
            };
            let due = (status == KeyState::Retrying).then_some(now + RETRY_REQUEUE_SECONDS);
            let mut row = outcome(&to, m, status, reason, detail.as_deref(), due);
            let delivered = match status {
                KeyState::Sent => {
                    row.content_hash = m.fingerprint.clone();
                    self.delivered_any = true;
                    report.sent += 1;
                    if let Some(after) = m.sms_fallback_after {
                        // Checked when due: no human open or click by then → the SMS version.
                        self.decided.push(OutcomeRow {
                            key: sms_fallback_key(m.stats_id, &r.to.contact),
                            status: KeyState::Waiting,
                            reason: None,
                            detail: None,
                            due_at: Some(now + after),
                            channel: Channel::Sms.as_str().to_owned(),
                            content_hash: None,
                            ..row.clone()
                        });
                    }
                    Delivered::Sent
                }
                KeyState::Retrying => {
                    report.outcome = JobOutcome::Retry;
                    Delivered::Retrying
                }
                _ => Delivered::Failed,
            };
            if status != KeyState::Sent {
                if let Some(d) = &r.domain {
                    *unused.entry(d.clone()).or_default() += 1;
                }
            }
            report.results.insert(r.to.contact.clone(), delivered);
            self.after_claim.push(row);
            if self.after_claim.len() >= FLUSH_EVERY {
                self.flush(env, report).await?;
            }
        }
        Ok(())
    }

    async fn flush(&mut self, env: &Env, report: &mut Report) -> Result<(), JobError> {
        if self.after_claim.is_empty() && self.decided.is_empty() {
            return Ok(());
        }
        store::record(env, self.cols, &self.after_claim, &self.decided, self.now).await?;
        report.outcome_statements += 1;
        self.after_claim.clear();
        self.decided.clear();
        Ok(())
    }

    /// Writes what is buffered, closes the session, and pauses or resumes the mailing.
    pub async fn finish(mut self, env: &Env, report: &mut Report) -> Result<(), JobError> {
        self.mailer.finish().await;
        self.flush(env, report).await?;
        let Some(pause) = self.m.pause else {
            return Ok(());
        };
        if let Some(reason) = &self.transport_down {
            worker::console_error!("{}: transport failure ({reason}); paused", self.m.stats_id);
            store::pause_sending(env, pause, reason, self.now).await?;
            report.outcome = JobOutcome::Retry;
        } else if self.delivered_any && self.m.paused {
            store::resume_sending(env, pause).await?;
        }
        Ok(())
    }
}

/// The send key of a campaign's SMS fallback to a contact.
pub fn sms_fallback_key(campaign: &str, contact: &str) -> String {
    format!("sms.{campaign}.{contact}")
}
