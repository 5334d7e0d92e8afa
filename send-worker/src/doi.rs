//! Double opt-in mail jobs: the confirmation letter after a capture, the promised item after
//! confirmation. Each is a one-recipient [`Mailing`] through the same pipeline as every other
//! letter: planned by `core::policy::decide_optin` (nothing to a suppressed address, nothing twice,
//! no delivery before confirmation), its key claimed with the once-a-day-per-address rule in the
//! same statement.

use epistola_core::event::CaptureJob;
use epistola_core::policy::{self, OptinLetter, SendKind};
use epistola_core::site::Channel;
use worker::Env;

use crate::jobs::{JobError, JobResult};
use crate::pipeline::{self, Content, Mailing, Recipient};
use crate::store;

pub async fn run(env: &Env, letter: OptinLetter, job: &CaptureJob, now: u64) -> JobResult {
    let kind = SendKind::Optin(letter);
    let Some(capture) = store::capture_for_mail(env, &job.capture).await? else {
        return Err(JobError::Permanent(format!(
            "{} job: capture {} is gone",
            kind.as_str(),
            job.capture
        )));
    };
    if letter == OptinLetter::Delivery {
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
        return Err(JobError::Permanent(format!(
            "{} job: site {} is gone",
            kind.as_str(),
            capture.site_id
        )));
    };
    let mailing = Mailing {
        policy: policy::Mailing {
            kind,
            purpose: "",
            channel: Channel::Email,
            audience_tags: &[],
            window: None,
            allow_resend: false,
            sms_fallback: false,
        },
        stats_id: &capture.site_id,
        name: &site.name,
        site_id: &capture.site_id,
        site: &site,
        base_url: &job.base_url,
        content: match letter {
            OptinLetter::Confirmation => Content::Confirmation {
                requested_consents: capture.consents.clone(),
            },
            OptinLetter::Delivery => Content::Delivery,
        },
        fingerprint: None,
        duplicate_window: 0,
        sms_fallback_after: None,
        pause: None,
        reads: 1, // the capture
        paused: false,
    };
    let recipient = Recipient {
        contact: capture.contact_id.clone(),
        key: format!("{}.{}", kind.as_str(), job.capture),
        capture: Some(job.capture.clone()),
    };
    Ok(pipeline::run(env, &mailing, &[recipient], now)
        .await?
        .outcome)
}
