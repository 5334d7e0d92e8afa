//! Trigger chains at send time: the tick queues runs whose step is due; each chunk checks the
//! step's condition, sends the step's message through the sending pipeline (send key per run and
//! step), and moves the run on. A deferred message keeps the run at its step until
//! the deferral ends.

use std::collections::BTreeMap;

use epistola_core::chain::{leaves, step_stats_id, StepInput};
use epistola_core::event::{ChainChunk, SendJob, CAMPAIGN_CHUNK};
use epistola_core::policy::{self, SendKind};
use epistola_core::segment::Facts;
use epistola_core::site::Channel;
use epistola_worker_kit::db::enqueue_batch;
use worker::Env;

use crate::bindings;
use crate::campaign_jobs::{contact_attributes, contact_tags, template_audience};
use crate::jobs::{JobError, JobOutcome, JobResult};
use crate::pipeline::{self, Content, Delivered, Mailing, Recipient};
use crate::store::{self};

const RUN_LEASE_SECONDS: u64 = 900;

/// Queues chunks for chain runs whose step is due (leased, so the next tick does not queue them
/// again while they are in flight). Returns how many runs.
pub async fn tick(env: &Env, now: u64) -> worker::Result<usize> {
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
    Ok(due.len())
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
    let steps: Vec<StepInput> = serde_json::from_slice(chain.steps.as_bytes())
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
        reads: 3, // the chain, its runs at this step, the template
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
