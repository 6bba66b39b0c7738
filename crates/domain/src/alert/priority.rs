//! The order of the work queue: an alert's priority grows with its severity, the customer's
//! tier and how fast the customer's health is falling.

use crate::alert::config::Severity;
use crate::alert::facts::Facts;
use crate::tier::Tier;

/// The window over which the fall of the score is measured.
pub const FALL_WINDOW_MS: i64 = 7 * 86_400_000;

/// How many points the score fell over the last [`FALL_WINDOW_MS`] before `now`: the score
/// at the start of the window (the oldest within it when none is older) minus the latest;
/// 0 when it rose or too little is known.
pub fn fall(facts: &Facts, now: i64) -> f64 {
    let start = now - FALL_WINDOW_MS;
    let Some(&(_, latest)) = facts.scores.last() else {
        return 0.0;
    };
    let before = facts
        .scores
        .iter()
        .rev()
        .find(|(t, _)| *t <= start)
        .or_else(|| facts.scores.iter().find(|(t, _)| *t > start));
    before.map_or(0.0, |&(_, then)| (then - latest).max(0.0))
}

/// The priority of an alert: severity (1–4) × tier (1 for Regular or none, to 5 for VIP) ×
/// (1 + points fallen in a week / 10). A critical VIP alert whose customer fell 20 points
/// (4 × 5 × 3 = 60) comes before a warning of a Regular customer who did not move (2).
pub fn priority(severity: Severity, tier: Option<Tier>, fall: f64) -> f64 {
    let severity = match severity {
        Severity::Info => 1.0,
        Severity::Warning => 2.0,
        Severity::Error => 3.0,
        Severity::Critical => 4.0,
    };
    let tier = match tier {
        None | Some(Tier::Regular) => 1.0,
        Some(Tier::Bronze) => 2.0,
        Some(Tier::Silver) => 3.0,
        Some(Tier::Gold) => 4.0,
        Some(Tier::Vip) => 5.0,
    };
    severity * tier * (1.0 + fall.max(0.0) / 10.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn facts(scores: &[(i64, f64)]) -> Facts {
        Facts {
            scores: scores.to_vec(),
            ..Facts::default()
        }
    }

    #[test]
    fn the_fall_is_measured_from_the_start_of_the_week() {
        let now = 100 * DAY;
        // 80 ten days ago, 70 six days ago, 50 now: fell 30 since the week began.
        let f = facts(&[(90 * DAY, 80.0), (94 * DAY, 70.0), (now, 50.0)]);
        assert_eq!(fall(&f, now), 30.0);
        // Only the week known: from its oldest score.
        let f = facts(&[(95 * DAY, 70.0), (now, 50.0)]);
        assert_eq!(fall(&f, now), 20.0);
        // Rising, or nothing known: no fall.
        assert_eq!(fall(&facts(&[(95 * DAY, 40.0), (now, 50.0)]), now), 0.0);
        assert_eq!(fall(&facts(&[]), now), 0.0);
    }

    #[test]
    fn severity_tier_and_fall_multiply() {
        assert_eq!(priority(Severity::Critical, Some(Tier::Vip), 20.0), 60.0);
        assert_eq!(priority(Severity::Warning, Some(Tier::Regular), 0.0), 2.0);
        assert_eq!(priority(Severity::Warning, None, 0.0), 2.0);
        assert!(
            priority(Severity::Warning, Some(Tier::Gold), 0.0)
                > priority(Severity::Critical, Some(Tier::Regular), 0.0)
        );
    }
}
