//! Sends-queue consumer. The jobs of a batch run concurrently (their D1 statements and SMTP
//! sessions interleave; claims and caps hold across them, see `pipeline`), and each ends in one
//! place: done → ack, retry or a transient error → redelivery with backoff, permanent → logged
//! and acknowledged, corrupt → dead-lettered with the reason.

use epistola_core::event::SendJob;
use epistola_core::policy::OptinLetter;
use epistola_worker_kit::queue::{self, Finisher};
use futures_util::future::join_all;
use worker::{Env, MessageBatch, MessageExt, RawMessage};

use crate::jobs::{JobError, JobOutcome, JobResult};
use crate::{campaign_jobs, chain_jobs, doi, people};

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, now: u64) {
    let messages: Vec<RawMessage> = batch.raw_iter().collect();
    let results = join_all(messages.iter().map(|message| run(env, message, now))).await;
    let mut finisher = Finisher::new(env);
    for (message, result) in messages.iter().zip(results) {
        finish(&mut finisher, message, result, now);
    }
}

async fn run(env: &Env, message: &RawMessage, now: u64) -> JobResult {
    let job = message
        .body()
        .as_string()
        .ok_or_else(|| JobError::corrupt("queue message", "not text"))
        .and_then(|text| {
            serde_json::from_slice::<SendJob>(text.as_bytes())
                .map_err(|e| JobError::corrupt("queue message", e))
        })?;
    match job {
        SendJob::CaptureV1(job) => doi::run(env, OptinLetter::Confirmation, &job, now).await,
        SendJob::LeadConfirmedV1(job) => doi::run(env, OptinLetter::Delivery, &job, now).await,
        SendJob::CampaignChunkV1(chunk) => campaign_jobs::run_chunk(env, &chunk, now).await,
        SendJob::ChainChunkV1(chunk) => chain_jobs::run_chunk(env, &chunk, now).await,
        SendJob::SignInLinkV1(job) => people::send_sign_in_link(env, &job, now).await,
    }
}

fn finish(finisher: &mut Finisher, message: &RawMessage, result: JobResult, now: u64) {
    match result {
        Ok(JobOutcome::Done) => finisher.finish(message),
        Ok(JobOutcome::Retry) => queue::retry(message, now),
        Err(JobError::Transient(e)) => {
            worker::console_error!("job {}: {e}; will retry", message.id());
            queue::retry(message, now);
        }
        Err(e @ JobError::Permanent(_)) => {
            worker::console_warn!("job {}: {e}", message.id());
            finisher.finish(message);
        }
        Err(e @ JobError::Corrupt { .. }) => {
            worker::console_error!("job {}: {e}", message.id());
            queue::to_dead_letter(message);
        }
    }
}
