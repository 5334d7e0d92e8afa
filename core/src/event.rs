//! Queue messages. Versioned by their `type` tag so a consumer deployed before or after a producer
//! change still understands what it reads; unknown types are rejected, not guessed.
//!
//! Two queues: `EVENTS` carries what the edge saw ([`QueueMessage`]), consumed by the edge worker;
//! `SENDS` carries mail jobs ([`SendJob`]), consumed by the sending worker.

use serde::{Deserialize, Serialize};

use crate::classify::{Label, Reason};

/// Everything that travels on the events queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum QueueMessage {
    /// An open, click or unsubscribe seen at the edge.
    #[serde(rename = "track.v1")]
    TrackV1(TrackEvent),
    /// An order reported by the widget's beacon, attributed by the token the click brought.
    #[serde(rename = "convert.v1")]
    ConvertV1(ConversionEvent),
}

/// One attributed order. The order id is its identity: the same order reported twice (beacon
/// retried, or also sent as a server-side `purchase`) is stored and counted once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConversionEvent {
    pub order_id: String,
    /// When it happened, unix seconds.
    pub at: u64,
    pub campaign: String,
    pub contact: String,
    pub message: String,
    /// Index of the link whose click brought the visitor; -1 when not a click (SMS).
    pub link: i64,
    /// `email` or `sms`.
    pub channel: String,
    pub value_minor: i64,
    pub currency: String,
    pub source: crate::conversion::Source,
}

/// Everything that travels on the sends queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SendJob {
    /// A capture was stored: send the double opt-in confirmation.
    #[serde(rename = "capture.v1")]
    CaptureV1(CaptureJob),
    /// A capture was confirmed: deliver what was promised.
    #[serde(rename = "lead_confirmed.v1")]
    LeadConfirmedV1(CaptureJob),
    /// Up to [`CAMPAIGN_CHUNK`] recipients of a campaign (or of its test send).
    #[serde(rename = "campaign_chunk.v1")]
    CampaignChunkV1(CampaignChunk),
    /// Up to [`CAMPAIGN_CHUNK`] chain runs due for the same step.
    #[serde(rename = "chain_chunk.v1")]
    ChainChunkV1(ChainChunk),
    /// A workspace user asked for a sign-in link: mail it.
    #[serde(rename = "sign_in_link.v1")]
    SignInLinkV1(SignInJob),
}

/// A sign-in link to mail. The message names the link's row, never a secret: the letter's URL is
/// signed when the letter is composed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInJob {
    pub link: String,
    /// Public origin the request arrived at: the link leads back there.
    pub base_url: String,
}

/// Runs of one chain whose step `step` is due.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainChunk {
    pub chain: String,
    pub step: usize,
    /// (run id, contact id).
    pub runs: Vec<(String, String)>,
    pub base_url: String,
}

/// A mail job about one capture. The send key (kind + capture) makes its delivery idempotent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureJob {
    pub capture: String,
    /// Public origin for links in the letter (the origin the capture arrived at).
    pub base_url: String,
}

/// Recipients per campaign chunk: one queue message, and at most one D1 write statement while
/// scheduling, per this many contacts.
pub const CAMPAIGN_CHUNK: usize = 250;

/// A slice of a campaign's audience. Each recipient's send key (campaign + contact, or
/// test + campaign + contact) makes redelivery harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CampaignChunk {
    pub campaign: String,
    pub contacts: Vec<String>,
    /// Set for a test send (one id per test run): goes only to contacts on the test list, each
    /// run once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_run: Option<String>,
    /// Public origin for links in the letter.
    pub base_url: String,
    /// The SMS fallback of the campaign rather than its e-mail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sms: bool,
}

/// What was tracked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    Open,
    Click,
    Unsubscribe,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Open => "open",
            EventKind::Click => "click",
            EventKind::Unsubscribe => "unsubscribe",
        }
    }
}

/// One tracked interaction. `id` is unique per request at the edge, so a redelivered message is
/// recognised and counted once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackEvent {
    /// 32 lower-case hex characters (128 random bits).
    pub id: String,
    pub kind: EventKind,
    /// When it happened, unix seconds.
    pub at: u64,
    pub campaign: String,
    pub contact: String,
    pub message: String,
    /// Link index for clicks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<u16>,
    /// Who did it; `None` for unsubscribes, which are always a person's explicit act.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Reason>,
    /// Keyed, daily-rotated hash of the client IP; never the IP itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_hash: Option<String>,
}

/// Formats 16 random bytes as an event id.
pub fn event_id(random: [u8; 16]) -> String {
    crate::hex::encode(&random)
}

/// Is `id` shaped like an id from [`event_id`]?
pub fn is_event_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Hour bucket (unix seconds / 3600) used by the hourly rollups.
pub fn hour_bucket(unix_seconds: u64) -> u64 {
    unix_seconds / 3600
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_format_is_tagged_and_stable() {
        let msg = QueueMessage::TrackV1(TrackEvent {
            id: event_id([0xab; 16]),
            kind: EventKind::Click,
            at: 1_700_000_000,
            campaign: "c".into(),
            contact: "k".into(),
            message: "m".into(),
            link: Some(3),
            label: Some(Label::Scanner),
            reason: Some(Reason::HeadRequest),
            ip_hash: None,
        });
        let json = serde_json::to_string(&msg).expect("serialises");
        assert_eq!(
            json,
            r#"{"type":"track.v1","id":"abababababababababababababababab","kind":"click","at":1700000000,"campaign":"c","contact":"k","message":"m","link":3,"label":"scanner","reason":"head_request"}"#
        );
        assert_eq!(
            serde_json::from_slice::<QueueMessage>(json.as_bytes()).expect("parses"),
            msg
        );
    }

    #[test]
    fn unknown_version_is_rejected() {
        let json = r#"{"type":"track.v9","id":"x","kind":"open","at":1,"campaign":"c","contact":"","message":""}"#;
        assert!(serde_json::from_slice::<QueueMessage>(json.as_bytes()).is_err());
    }

    #[test]
    fn event_ids() {
        assert!(is_event_id(&event_id([0; 16])));
        assert!(!is_event_id("ABABABABABABABABABABABABABABABAB"));
        assert!(!is_event_id("ab"));
        assert_eq!(hour_bucket(7199), 1);
    }
}
