//! What alerting knows of a customer: the signals scoring sends with each new score, and the
//! short history the rules look back over.

use crate::event::SurveyKind;
use crate::lifecycle::Stage;
use crate::metrics::CustomerMetrics;
use crate::tier::Tier;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// How far back complaints are sent (the longest baseline plus the current week).
pub const COMPLAINT_HISTORY_DAYS: i64 = crate::alert::config::MAX_LOOKBACK_DAYS as i64;
/// Most complaint times sent (the latest ones).
pub const MAX_COMPLAINTS: usize = 500;
/// Most unanswered tickets sent (the oldest ones: they breach first).
pub const MAX_UNANSWERED: usize = 50;
/// Most score observations kept for the score-drop rule.
pub const MAX_SCORES: usize = 400;

/// One survey answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub score: i32,
    /// Milliseconds since the epoch.
    pub at: i64,
}

/// An open ticket that has had no first response yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTicket {
    pub ticket_id: String,
    /// Milliseconds since the epoch.
    pub opened_at: i64,
}

/// Everything the rules need of one customer at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    pub score: Option<f64>,
    pub tier: Option<Tier>,
    pub stage: Option<Stage>,
    pub p_alive: Option<f64>,
    /// Net spend to date, for the effect of interventions.
    pub spend_total: f64,
    pub latest_nps: Option<Answer>,
    pub latest_csat: Option<Answer>,
    /// Complaint times (milliseconds) of the last [`COMPLAINT_HISTORY_DAYS`], oldest first.
    pub complaints: Vec<i64>,
    /// Unanswered open tickets, oldest first.
    pub unanswered: Vec<OpenTicket>,
}

impl Signals {
    /// The event-derived signals of a customer's metrics at `now` (score, tier, stage and
    /// P(alive) are the caller's to fill in).
    pub fn from_metrics(m: &CustomerMetrics, now: DateTime<Utc>) -> Signals {
        let since = now - Duration::days(COMPLAINT_HISTORY_DAYS);
        let mut complaints: Vec<i64> = m
            .complaint_times
            .iter()
            .filter(|t| **t > since && **t <= now)
            .map(DateTime::timestamp_millis)
            .collect();
        complaints.sort_unstable();
        let skip = complaints.len().saturating_sub(MAX_COMPLAINTS);
        complaints.drain(..skip);
        let mut unanswered: Vec<OpenTicket> = m
            .tickets
            .iter()
            .filter(|(_, t)| t.first_response.is_none() && t.resolved.is_none())
            .filter_map(|(id, t)| {
                t.opened.map(|o| OpenTicket {
                    ticket_id: id.clone(),
                    opened_at: o.timestamp_millis(),
                })
            })
            .collect();
        unanswered.sort_by(|a, b| (a.opened_at, &a.ticket_id).cmp(&(b.opened_at, &b.ticket_id)));
        unanswered.truncate(MAX_UNANSWERED);
        let latest_csat = m
            .survey_answers
            .iter()
            .filter(|a| a.kind == SurveyKind::Csat)
            .max_by_key(|a| (a.at, a.score))
            .map(|a| Answer {
                score: a.score,
                at: a.at.timestamp_millis(),
            });
        Signals {
            spend_total: m.net_monetary(),
            latest_nps: m.latest_nps.map(|(score, at)| Answer {
                score,
                at: at.timestamp_millis(),
            }),
            latest_csat,
            complaints,
            unanswered,
            ..Signals::default()
        }
    }
}

/// A tier downgrade not yet made good.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downgrade {
    /// The highest tier held before the downgrade.
    pub from: Tier,
    /// When the downgrade was observed (milliseconds).
    pub at: i64,
}

/// What alerting remembers of a customer between observations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Facts {
    /// Time of the latest observation applied (milliseconds); older ones are stale.
    pub observed_at: i64,
    pub signals: Signals,
    /// (time, score) of recent observations, oldest first.
    pub scores: Vec<(i64, f64)>,
    pub downgrade: Option<Downgrade>,
}

impl Facts {
    /// Applies an observation made at `at`; returns false (and changes nothing) when it is
    /// not newer than the latest applied, so redelivered or reordered notifications are no-ops.
    pub fn observe(&mut self, signals: Signals, at: i64) -> bool {
        if at <= self.observed_at {
            return false;
        }
        match (self.signals.tier, signals.tier) {
            (Some(old), Some(new)) if new < old => {
                let from = self.downgrade.map_or(old, |d| d.from.max(old));
                self.downgrade = Some(Downgrade { from, at });
            }
            (_, Some(new)) if self.downgrade.is_some_and(|d| new >= d.from) => {
                self.downgrade = None;
            }
            _ => {}
        }
        if let Some(score) = signals.score {
            self.scores.push((at, score));
            let horizon = at - COMPLAINT_HISTORY_DAYS * 86_400_000;
            self.scores.retain(|(t, _)| *t > horizon);
            let skip = self.scores.len().saturating_sub(MAX_SCORES);
            self.scores.drain(..skip);
        }
        self.signals = signals;
        self.observed_at = at;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tier(tier: Tier) -> Signals {
        Signals {
            tier: Some(tier),
            score: Some(50.0),
            ..Signals::default()
        }
    }

    #[test]
    fn downgrades_remembered_until_made_good() {
        let mut f = Facts::default();
        assert!(f.observe(with_tier(Tier::Gold), 1));
        assert!(f.observe(with_tier(Tier::Silver), 2));
        assert_eq!(
            f.downgrade,
            Some(Downgrade {
                from: Tier::Gold,
                at: 2
            })
        );
        assert!(f.observe(with_tier(Tier::Bronze), 3));
        assert_eq!(f.downgrade.map(|d| (d.from, d.at)), Some((Tier::Gold, 3)));
        assert!(f.observe(with_tier(Tier::Silver), 4));
        assert!(f.downgrade.is_some());
        assert!(f.observe(with_tier(Tier::Gold), 5));
        assert_eq!(f.downgrade, None);
    }

    #[test]
    fn stale_observations_change_nothing() {
        let mut f = Facts::default();
        assert!(f.observe(with_tier(Tier::Gold), 10));
        let before = f.clone();
        assert!(!f.observe(with_tier(Tier::Regular), 10));
        assert!(!f.observe(with_tier(Tier::Regular), 9));
        assert_eq!(f, before);
    }
}
