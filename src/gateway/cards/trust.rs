//! The ATI trust score of an agent: an integer 0–100 computed from its record when its card is
//! generated. The formula (README "Agent cards"):
//!
//! - a revoked (or otherwise inactive) agent scores 0;
//! - else 50, plus 20 when it has a registered key (it can prove who it is), plus half its age
//!   in whole days up to 30 days (at most 15);
//! - minus 2 per hard denial in its current lockout window (at most 30), 5 per agent token
//!   revoked before it expired (at most 20), 25 when its mode is `locked` and 10 when it is
//!   `read_only`;
//! - plus 15 for a clean record (none of those deductions);
//! - clamped to 0–100, so a keyed agent 30 days old with a clean record scores 100.

use crate::api::policies::SessionMode;

const SECONDS_PER_DAY: i64 = 24 * 60 * 60;

/// What the score is computed from.
#[derive(Debug, Clone, Copy)]
pub struct TrustRecord {
    pub active: bool,
    pub has_key: bool,
    pub age_seconds: i64,
    pub denials_in_window: i64,
    pub revoked_tokens: i64,
    pub mode: SessionMode,
}

/// The score (see the module docs).
pub fn score(record: &TrustRecord) -> i64 {
    if !record.active {
        return 0;
    }
    let key = if record.has_key { 20 } else { 0 };
    let age = (record.age_seconds.max(0) / SECONDS_PER_DAY).min(30) / 2;
    let denials = (record.denials_in_window.max(0).saturating_mul(2)).min(30);
    let revocations = (record.revoked_tokens.max(0).saturating_mul(5)).min(20);
    let mode = match record.mode {
        SessionMode::Locked => 25,
        SessionMode::ReadOnly => 10,
        _ => 0,
    };
    let deductions = denials + revocations + mode;
    let clean = if deductions == 0 { 15 } else { 0 };
    (50 + key + age + clean - deductions).clamp(0, 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> TrustRecord {
        TrustRecord {
            active: true,
            has_key: true,
            age_seconds: 30 * SECONDS_PER_DAY,
            denials_in_window: 0,
            revoked_tokens: 0,
            mode: SessionMode::Standard,
        }
    }

    #[test]
    fn a_keyed_month_old_clean_agent_scores_100_and_a_revoked_one_0() {
        assert_eq!(score(&record()), 100);
        assert_eq!(
            score(&TrustRecord {
                active: false,
                ..record()
            }),
            0
        );
    }

    #[test]
    fn a_new_keyless_agent_scores_65() {
        assert_eq!(
            score(&TrustRecord {
                has_key: false,
                age_seconds: 0,
                ..record()
            }),
            65
        );
    }

    #[test]
    fn denials_revocations_and_a_lock_cost_points_within_bounds() {
        let troubled = TrustRecord {
            denials_in_window: 3,
            revoked_tokens: 1,
            ..record()
        };
        assert_eq!(score(&troubled), 50 + 20 + 15 - 6 - 5);
        let worst = TrustRecord {
            has_key: false,
            age_seconds: 0,
            denials_in_window: 1000,
            revoked_tokens: 1000,
            mode: SessionMode::Locked,
            ..record()
        };
        assert_eq!(score(&worst), 0);
    }
}
