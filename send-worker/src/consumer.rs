//! Sends-queue consumer. Each job is its own unit of success or retry; every send has a send key,
//! so a redelivered job sends nothing twice.

use epistola_core::event::SendJob;
use epistola_worker_kit::queue::{self, Finisher};
use worker::{Env, MessageBatch, RawMessage};

use crate::doi::{self, JobOutcome, MailKind};
use crate::{campaign_jobs, chain_jobs};

pub async fn consume(batch: &MessageBatch<serde_json::Value>, env: &Env, now: u64) {
    let mut finisher = Finisher::new(env);
    for message in batch.raw_iter() {
        let job = message
            .body()
            .as_string()
            .and_then(|text| serde_json::from_str::<SendJob>(&text).ok());
        let outcome = match job {
            Some(SendJob::CaptureV1(job)) => doi::run(env, MailKind::Confirmation, &job, now).await,
            Some(SendJob::LeadConfirmedV1(job)) => {
                doi::run(env, MailKind::Delivery, &job, now).await
            }
            Some(SendJob::CampaignChunkV1(chunk)) => {
                campaign_jobs::run_chunk(env, &chunk, now).await
            }
            Some(SendJob::ChainChunkV1(chunk)) => chain_jobs::run_chunk(env, &chunk, now).await,
            None => {
                queue::to_dead_letter(&message);
                continue;
            }
        };
        finish(&mut finisher, &message, outcome, now);
    }
}

fn finish(finisher: &mut Finisher, message: &RawMessage, outcome: JobOutcome, now: u64) {
    match outcome {
        JobOutcome::Done => finisher.finish(message),
        JobOutcome::Retry => queue::retry(message, now),
    }
}
