//! The rollback rule (TUF): a holder never moves back to an older answer.

use crate::{Timestamp, VerifiedDocument};

/// What to do with a new document given the one held for the same license.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackDecision {
    /// Newer: take it.
    Accept,
    /// Same revision and same signing time: nothing new, keep what is held.
    Same,
    /// Older revision, or same revision signed earlier: a replay or rollback.
    Reject,
}

/// Compare a new document's `(rev, iat)` with the held one's.
///
/// Accept only a greater revision, or the same revision signed later; the
/// same pair is `Same`; anything else is `Reject`. With nothing held,
/// everything is accepted.
#[must_use]
pub fn check_rollback(held: Option<(u64, Timestamp)>, new: (u64, Timestamp)) -> RollbackDecision {
    let Some((held_rev, held_iat)) = held else {
        return RollbackDecision::Accept;
    };
    let (rev, iat) = new;
    match rev.cmp(&held_rev) {
        std::cmp::Ordering::Greater => RollbackDecision::Accept,
        std::cmp::Ordering::Less => RollbackDecision::Reject,
        std::cmp::Ordering::Equal => match iat.cmp(&held_iat) {
            std::cmp::Ordering::Greater => RollbackDecision::Accept,
            std::cmp::Ordering::Equal => RollbackDecision::Same,
            std::cmp::Ordering::Less => RollbackDecision::Reject,
        },
    }
}

/// The rollback rule for two verified documents of the same token.
///
/// As [`check_rollback`] on `(rev, iat)`, with one addition for key
/// rotation: a held document whose key is pinned as retired is replaced by
/// any document signed after that retirement, whatever its revision. A
/// genuine document from before the rotation is always older than one
/// signed after it, so this never accepts a real rollback; and a forgery
/// made with a leaked retired key (say with `rev` 2^53) can no longer
/// block every genuine document that follows. Conversely a retired key's
/// document never replaces one signed after the retirement.
#[must_use]
pub fn check_document_rollback(
    held: &VerifiedDocument,
    new: &VerifiedDocument,
) -> RollbackDecision {
    let (h, n) = (held.claims(), new.claims());
    if let Some(retired_at) = held.retired_key_at()
        && n.iat > retired_at
        && new.kid() != held.kid()
    {
        return RollbackDecision::Accept;
    }
    // And the converse: a retired key's document never replaces one signed
    // after that key's retirement, whatever revision it claims.
    if let Some(retired_at) = new.retired_key_at()
        && h.iat > retired_at
    {
        return RollbackDecision::Reject;
    }
    check_rollback(Some((h.rev, h.iat)), (n.rev, n.iat))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Duration};

    fn t(s: i64) -> Timestamp {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn the_rule() {
        use RollbackDecision::*;
        assert_eq!(check_rollback(None, (1, t(0))), Accept);
        assert_eq!(
            check_rollback(Some((3, t(10))), (4, t(0))),
            Accept,
            "higher rev wins even if signed earlier"
        );
        assert_eq!(check_rollback(Some((3, t(10))), (3, t(11))), Accept);
        assert_eq!(check_rollback(Some((3, t(10))), (3, t(10))), Same);
        assert_eq!(check_rollback(Some((3, t(10))), (3, t(9))), Reject);
        assert_eq!(
            check_rollback(Some((3, t(10))), (2, t(10) + Duration::days(1))),
            Reject
        );
    }
}
