//! Lifecycle stages of a customer relationship.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in Stage::ALL {
            assert_eq!(Stage::from_name(s.name()), Some(s));
        }
        assert_eq!(Stage::from_name("gone"), None);
    }
}
