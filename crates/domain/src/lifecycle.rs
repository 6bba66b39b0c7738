//! Lifecycle stages of a customer relationship, and the declared rules that grade them.

use serde::{Deserialize, Serialize};

/// Where a customer is in its relationship, as segmentation grades it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Stage {
    Prospect,
    New,
    Active,
    AtRisk,
    Dormant,
    Churned,
    Reactivated,
}

impl Stage {
    /// Every stage.
    pub const ALL: [Stage; 7] = [
        Stage::Prospect,
        Stage::New,
        Stage::Active,
        Stage::AtRisk,
        Stage::Dormant,
        Stage::Churned,
        Stage::Reactivated,
    ];

    /// Stable name, as stored and written in configuration.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Prospect => "prospect",
            Stage::New => "new",
            Stage::Active => "active",
            Stage::AtRisk => "at_risk",
            Stage::Dormant => "dormant",
            Stage::Churned => "churned",
            Stage::Reactivated => "reactivated",
        }
    }

    /// The stage of a stored or configured name.
    pub fn from_name(name: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// The rules that grade stages; every threshold is in days and configurable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StageRules {
    /// A first purchase this recent makes a customer new.
    pub new_days: f64,
    /// A last purchase this recent keeps a customer active.
    pub active_days: f64,
    /// Up to this long since the last purchase a customer is at risk; beyond it, dormant.
    pub at_risk_days: f64,
    /// Beyond this long since the last purchase a customer has churned.
    pub dormant_days: f64,
    /// A fitted P(alive) below this means churned, however recent the last purchase (0: never).
    pub p_alive_floor: f64,
    /// A returning customer stays "reactivated" this long before it is simply active.
    pub reactivated_days: f64,
}

impl Default for StageRules {
    /// New within 30 days of the first purchase; active within 90 days of the last; at risk to
    /// 180; dormant to 365; churned beyond or on a cancelled subscription; reactivated for 30
    /// days after a dormant or churned customer buys again. No P(alive) floor: backtested on
    /// CDNOW, customers under a floor of 0.05 bought again more often (39 %) than the dormant
    /// ones (16 %), so a low P(alive) is no sign of churn beyond what recency says.
    fn default() -> Self {
        StageRules {
            new_days: 30.0,
            active_days: 90.0,
            at_risk_days: 180.0,
            dormant_days: 365.0,
            p_alive_floor: 0.0,
            reactivated_days: 30.0,
        }
    }
}

/// What the rules read of one customer, as of the grading time.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageFacts {
    /// Days since the first and the last purchase; `None` before any.
    pub first_purchase_days: Option<f64>,
    pub last_purchase_days: Option<f64>,
    /// The subscription was cancelled and nothing was bought since.
    pub cancelled: bool,
    pub p_alive: Option<f64>,
}

impl StageRules {
    /// The stage of a customer, given its previous stage and how many days it has been in it.
    pub fn grade(&self, facts: &StageFacts, previous: Option<(Stage, f64)>) -> Stage {
        let Some(recency) = facts.last_purchase_days else {
            return if facts.cancelled {
                Stage::Churned
            } else {
                Stage::Prospect
            };
        };
        let gone = facts.cancelled
            || recency > self.dormant_days
            || facts.p_alive.is_some_and(|p| p < self.p_alive_floor);
        if gone {
            return Stage::Churned;
        }
        if recency > self.at_risk_days {
            return Stage::Dormant;
        }
        if recency > self.active_days {
            return Stage::AtRisk;
        }
        match previous {
            Some((Stage::Dormant | Stage::Churned, _)) => Stage::Reactivated,
            Some((Stage::Reactivated, days)) if days < self.reactivated_days => Stage::Reactivated,
            _ if facts
                .first_purchase_days
                .is_some_and(|d| d <= self.new_days) =>
            {
                Stage::New
            }
            _ => Stage::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(first: f64, last: f64) -> StageFacts {
        StageFacts {
            first_purchase_days: Some(first),
            last_purchase_days: Some(last),
            cancelled: false,
            p_alive: None,
        }
    }

    #[test]
    fn the_declared_rules() {
        let r = StageRules::default();
        assert_eq!(r.grade(&StageFacts::default(), None), Stage::Prospect);
        assert_eq!(r.grade(&facts(10.0, 2.0), None), Stage::New);
        assert_eq!(r.grade(&facts(100.0, 2.0), None), Stage::Active);
        assert_eq!(r.grade(&facts(300.0, 120.0), None), Stage::AtRisk);
        assert_eq!(r.grade(&facts(300.0, 250.0), None), Stage::Dormant);
        assert_eq!(r.grade(&facts(500.0, 400.0), None), Stage::Churned);
        let cancelled = StageFacts {
            cancelled: true,
            ..facts(100.0, 2.0)
        };
        assert_eq!(r.grade(&cancelled, None), Stage::Churned);
        let unlikely = StageFacts {
            p_alive: Some(0.01),
            ..facts(100.0, 60.0)
        };
        assert_eq!(
            r.grade(&unlikely, None),
            Stage::Active,
            "no floor by default"
        );
        let floored = StageRules {
            p_alive_floor: 0.05,
            ..r
        };
        assert_eq!(floored.grade(&unlikely, None), Stage::Churned);
    }

    #[test]
    fn a_returning_customer_is_reactivated_for_a_while() {
        let r = StageRules::default();
        let back = facts(400.0, 1.0);
        assert_eq!(
            r.grade(&back, Some((Stage::Dormant, 50.0))),
            Stage::Reactivated
        );
        assert_eq!(
            r.grade(&back, Some((Stage::Reactivated, 10.0))),
            Stage::Reactivated
        );
        assert_eq!(
            r.grade(&back, Some((Stage::Reactivated, 31.0))),
            Stage::Active
        );
    }

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("gone"), None);
    }
}
