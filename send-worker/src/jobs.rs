//! What a sends-queue job can end in, and the one place that turns it into ack, retry or dead
//! letter (`consumer::consume`).

/// A job that ran to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Finished: acknowledge.
    Done,
    /// Some letters wait for the transport (retrying): deliver the job again with backoff.
    Retry,
}

/// A job that could not run to its end.
#[derive(Debug)]
pub enum JobError {
    /// D1, the queue or the runtime failed for now: retry with backoff.
    Transient(String),
    /// Nothing a retry can change (the campaign, template or site is gone): logged, acknowledged.
    Permanent(String),
    /// A stored row does not decode (a JSON column, a state): never guessed around, never
    /// dropped silently — the job goes to the dead-letter queue with the reason.
    Corrupt { what: String, why: String },
}

impl JobError {
    pub fn corrupt(what: impl Into<String>, why: impl std::fmt::Display) -> JobError {
        JobError::Corrupt {
            what: what.into(),
            why: why.to_string(),
        }
    }
}

impl std::fmt::Display for JobError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JobError::Transient(e) => write!(f, "transient: {e}"),
            JobError::Permanent(e) => write!(f, "permanent: {e}"),
            JobError::Corrupt { what, why } => write!(f, "corrupt {what}: {why}"),
        }
    }
}

impl From<worker::Error> for JobError {
    fn from(e: worker::Error) -> JobError {
        JobError::Transient(e.to_string())
    }
}

pub type JobResult = Result<JobOutcome, JobError>;
