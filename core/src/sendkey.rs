//! Send keys: every message Epistola sends has one row in `sends`, keyed by what it is
//! (`campaign.{campaign}.{contact}`, `confirmation.{capture}`, …). The row's state says whether the
//! message may still go out. One typed list of states, shared with the SQL that claims keys, so
//! "which states are final" is written once.

/// The state of a send key (the `sends.status` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyState {
    /// Claimed by a consumer that is delivering it now (or crashed while doing so: then the tick
    /// reports it `failed` / `outcome_unknown`; it is never delivered again).
    Sending,
    /// Accepted by the receiving server or provider.
    Sent,
    /// Refused for good (a recipient-level bounce, a render error, an unknown outcome).
    Failed,
    /// Not sent, with a reason (no consent, suppressed, …).
    Skipped,
    /// Waiting for a time (quiet hours, caps, throttles); claimable when due.
    Deferred,
    /// A transient transport failure; claimable on the next attempt.
    Retrying,
    /// An SMS fallback waiting for its check; claimable when due.
    Waiting,
}

impl KeyState {
    pub const ALL: [KeyState; 7] = [
        KeyState::Sending,
        KeyState::Sent,
        KeyState::Failed,
        KeyState::Skipped,
        KeyState::Deferred,
        KeyState::Retrying,
        KeyState::Waiting,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Sending => "sending",
            KeyState::Sent => "sent",
            KeyState::Failed => "failed",
            KeyState::Skipped => "skipped",
            KeyState::Deferred => "deferred",
            KeyState::Retrying => "retrying",
            KeyState::Waiting => "waiting",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        KeyState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Decided for good: the message is never delivered (again).
    pub fn is_final(self) -> bool {
        matches!(self, KeyState::Sent | KeyState::Failed | KeyState::Skipped)
    }

    /// A claim may move the key to `sending` (besides a key that does not exist yet).
    pub fn claimable(self) -> bool {
        matches!(
            self,
            KeyState::Deferred | KeyState::Retrying | KeyState::Waiting
        )
    }

    /// A letter that went out or is going out: it counts against frequency caps and the
    /// once-a-day rule of confirmation letters.
    pub fn occupies_cap(self) -> bool {
        matches!(self, KeyState::Sent | KeyState::Sending)
    }

    /// Nothing to do for this key now: final, or being delivered by someone else.
    pub fn is_settled(self) -> bool {
        self.is_final() || self == KeyState::Sending
    }

    /// The states that satisfy `wanted`, as an SQL list: `'deferred', 'retrying', 'waiting'`.
    pub fn sql_list(wanted: fn(KeyState) -> bool) -> String {
        KeyState::ALL
            .into_iter()
            .filter(|k| wanted(*k))
            .map(|k| format!("'{}'", k.as_str()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_table() {
        // (state, final, claimable, settled)
        let table = [
            (KeyState::Sending, false, false, true),
            (KeyState::Sent, true, false, true),
            (KeyState::Failed, true, false, true),
            (KeyState::Skipped, true, false, true),
            (KeyState::Deferred, false, true, false),
            (KeyState::Retrying, false, true, false),
            (KeyState::Waiting, false, true, false),
        ];
        assert_eq!(table.len(), KeyState::ALL.len());
        for (state, is_final, claimable, settled) in table {
            assert_eq!(state.is_final(), is_final, "{state:?}");
            assert_eq!(state.claimable(), claimable, "{state:?}");
            assert_eq!(state.is_settled(), settled, "{state:?}");
            assert_eq!(KeyState::parse(state.as_str()), Some(state));
            // Every state is either settled or claimable: none is stuck.
            assert_ne!(state.is_settled(), state.claimable(), "{state:?}");
        }
        assert_eq!(KeyState::parse("queued"), None);
    }

    #[test]
    fn sql_lists() {
        assert_eq!(
            KeyState::sql_list(KeyState::claimable),
            "'deferred', 'retrying', 'waiting'"
        );
        assert_eq!(
            KeyState::sql_list(KeyState::is_final),
            "'sent', 'failed', 'skipped'"
        );
        assert_eq!(
            KeyState::sql_list(KeyState::occupies_cap),
            "'sending', 'sent'"
        );
    }
}
