//! Trigger chains at send time: the tick finds runs whose step is due (and once a day turns
//! birthdays, inactivity and churn risk into events, and scores buyers by RFM); each chunk checks
//! the step's condition, sends the step's message through the same guardrails as campaigns (send
//! key per run and step), and moves the run on. A deferred message keeps the run at its step until
//! the deferral ends.

use std::collections::BTreeMap;

use epistola_core::chain::{inactivity_days, leaves, step_stats_id, StepInput};
use epistola_core::contact::utc_date;
use epistola_core::event::{ChainChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::policy::{self, SendKind};
use epistola_core::rfm::score_all;
use epistola_core::segment::Facts;
use epistola_core::site::Channel;
use epistola_worker_kit::db::enqueue_batch;
use worker::Env;

use crate::bindings;
use crate::campaign_jobs::{contact_attributes, contact_tags, template_audience};
use crate::jobs::{JobError, JobOutcome, JobResult};
use crate::pipeline::{self, Content, Delivered, Mailing, Recipient};
use crate::store::{self, NewEvent};

const RUN_LEASE_SECONDS: u64 = 900;

/// Queues chunks for chain runs that are due; once a day, records birthdays as events.
pub async fn tick(env: &Env, now: u64) -> worker::Result<(usize, u64)> {
    let births =
        birthdays(env, now).await? + inactivity(env, now).await? + rfm_daily(env, now).await?;
    let due = store::due_chain_runs(env, now, RUN_LEASE_SECONDS).await?;
    let mut groups: BTreeMap<(String, usize), Vec<(String, String)>> = BTreeMap::new();
    for r in &due {
        groups
            .entry((r.chain_id.clone(), usize::try_from(r.step).unwrap_or(0)))
            .or_default()
            .push((r.id.clone(), r.contact_id.clone()));
    }
    let mut jobs = Vec::new();
    for ((chain, step), runs) in groups {
        let base_url = store::get_chain(env, &chain)
            .await?
            .map(|c| c.base_url)
            .unwrap_or_default();
        for chunk in runs.chunks(CAMPAIGN_CHUNK) {
            jobs.push(SendJob::ChainChunkV1(ChainChunk {
                chain: chain.clone(),
                step,
                runs: chunk.to_vec(),
                base_url: base_url.clone(),
            }));
        }
    }
    enqueue_batch(env, bindings::SENDS, &jobs).await?;
    Ok((due.len(), births))
}

/// Once a day (UTC): a `birthday` event for every contact born on this day.
async fn birthdays(env: &Env, now: u64) -> worker::Result<u64> {
    let Some((day, month_day)) = utc_date(now) else {
        return Ok(0);
    };
    if !store::claim_daily(env, "birthdays", &day).await? {
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
        if !store::claim_daily(env, &format!("inactivity:{trigger}"), &day).await? {
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
    if !store::claim_daily(env, "rfm", &day).await? {
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

pub async fn run_chunk(env: &Env, chunk: &ChainChunk, now: u64) -> JobResult {
    let Some(chain) = store::get_chain(env, &chunk.chain).await? else {
        return Err(JobError::Permanent(format!(
            "chain {} is gone",
            chunk.chain
        )));
    };
    // Paused: the runs stay where they are; their lease ends and a later tick picks them up.
    if chain.status != "active" {
        return Ok(JobOutcome::Done);
    }
    let steps: Vec<StepInput> = serde_json::from_str(&chain.steps)
        .map_err(|e| JobError::corrupt(format!("chain {} steps", chain.id), e))?;
    let Some(step) = steps.get(chunk.step) else {
        return Err(JobError::corrupt(
            format!("chain {}", chain.id),
            format!("no step {}", chunk.step),
        ));
    };
    let run_ids: Vec<String> = chunk.runs.iter().map(|(r, _)| r.clone()).collect();
    let condition = step.condition.as_ref();
    let event_type = condition.and_then(|c| c.no_event_since_entry.as_deref());
    let (active, had_event) = store::runs_at_step(env, &run_ids, chunk.step, event_type).await?;
    // Condition facts (attributes and tags) when the step has a segment condition.
    let facts: BTreeMap<String, Facts> = if condition.is_some_and(|c| c.segment.is_some()) {
        let contacts: Vec<String> = chunk.runs.iter().map(|(_, c)| c.clone()).collect();
        store::contacts_by_id(env, &contacts)
            .await?
            .iter()
            .map(|c| {
                (
                    c.id.clone(),
                    Facts {
                        attributes: contact_attributes(c),
                        tags: contact_tags(c),
                        ..Facts::default()
                    },
                )
            })
            .collect()
    } else {
        BTreeMap::new()
    };
    let mut recipients = Vec::new();
    let mut run_of_contact = BTreeMap::new();
    for (run, contact) in &chunk.runs {
        if !active.contains_key(run) {
            continue; // moved on already (a replayed chunk) or exited
        }
        let f = facts.get(contact).cloned().unwrap_or_default();
        if let Some(reason) = leaves(condition, had_event.contains(run), &f, now) {
            store::advance_run(
                env,
                run,
                chunk.step,
                ("exited", chunk.step, None, Some(reason)),
                now,
            )
            .await?;
            continue;
        }
        recipients.push(Recipient {
            contact: contact.clone(),
            key: format!("chain.{}.{}.{run}", chain.id, chunk.step + 1),
            capture: None,
        });
        run_of_contact.insert(contact.clone(), run.clone());
    }
    if recipients.is_empty() {
        return Ok(JobOutcome::Done);
    }
    let (Some(template), Some(site)) = (
        store::get_template(env, &step.template).await?,
        store::get_site(env, &chain.site_id).await?,
    ) else {
        return Err(JobError::Permanent(format!(
            "chain {}: template or site is gone",
            chain.id
        )));
    };
    let audience = template_audience(&template)?;
    let stats_id = step_stats_id(&chain.id, chunk.step);
    let mailing = Mailing {
        policy: policy::Mailing {
            kind: SendKind::ChainStep,
            purpose: &chain.purpose,
            channel: Channel::Email,
            audience_tags: &audience,
            window: None,
            allow_resend: true,
            sms_fallback: false,
        },
        stats_id: &stats_id,
        name: &chain.name,
        site_id: &chain.site_id,
        site: &site,
        base_url: &chunk.base_url,
        content: Content::Template {
            compiled: pipeline::letters::compiled(&template)?,
            anonymous: false,
        },
        fingerprint: None,
        duplicate_window: 0,
        sms_fallback_after: None,
        pause: Some(store::Paused::Chain(&chain.id)),
        paused: chain.paused_reason.is_some(),
    };
    let report = pipeline::run(env, &mailing, &recipients, now).await?;
    let next_step = chunk.step + 1;
    for (contact, run) in run_of_contact {
        let next = match report.results.get(&contact) {
            // Waits at this step until the deferral ends.
            Some(Delivered::Deferred { until }) => ("active", chunk.step, Some(*until), None),
            // Retried with the job: keep the run leased at this step.
            Some(Delivered::Retrying) | None => continue,
            Some(_) => match steps.get(next_step) {
                Some(s) => ("active", next_step, Some(now + s.delay_seconds), None),
                None => ("done", next_step, None, None),
            },
        };
        store::advance_run(env, &run, chunk.step, next, now).await?;
    }
    Ok(report.outcome)
}
