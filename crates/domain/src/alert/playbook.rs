//! Playbooks: the interventions recommended for an alert, by the customer's tier and the
//! alert's kind.

use crate::alert::config::{ConfigError, RuleKind};
use crate::tier::Tier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One recommended intervention.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Action {
    /// Stable id, used when recording the intervention and in the effect report.
    pub id: String,
    pub description: String,
}

/// Which actions each tier gets per alert kind.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Playbook {
    actions: BTreeMap<String, String>,
    /// Per tier: per kind name (or `default`), the action ids.
    plays: BTreeMap<Tier, BTreeMap<String, Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlaybookSpec {
    #[serde(default)]
    actions: BTreeMap<String, String>,
    #[serde(default)]
    tiers: BTreeMap<String, BTreeMap<String, Vec<String>>>,
}

impl Playbook {
    /// Parses and validates the `[playbook]` section: known tiers and kinds, defined actions.
    pub(crate) fn from_value(value: toml::Value) -> Result<Playbook, ConfigError> {
        let spec: PlaybookSpec = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::at("playbook", e.message().trim()))?;
        let mut plays = BTreeMap::new();
        for (tier_name, by_kind) in spec.tiers {
            let path = format!("playbook.tiers.{tier_name}");
            let tier = Tier::from_name(&tier_name).ok_or_else(|| {
                ConfigError::at(&path, "unknown tier (vip, gold, silver, bronze, regular)")
            })?;
            for (kind, actions) in &by_kind {
                if kind != "default" && RuleKind::from_name(kind).is_none() {
                    return Err(ConfigError::at(
                        format!("{path}.{kind}"),
                        "unknown alert kind (a rule name or default)",
                    ));
                }
                for (i, a) in actions.iter().enumerate() {
                    if !spec.actions.contains_key(a) {
                        return Err(ConfigError::at(
                            format!("{path}.{kind}[{i}]"),
                            format!("action {a:?} is not described in playbook.actions"),
                        ));
                    }
                }
            }
            plays.insert(tier, by_kind);
        }
        Ok(Playbook {
            actions: spec.actions,
            plays,
        })
    }

    /// The actions recommended for an alert of `kind` on a customer of `tier` (untiered
    /// customers get Regular's).
    pub fn recommend(&self, tier: Option<Tier>, kind: RuleKind) -> Vec<Action> {
        let Some(by_kind) = self.plays.get(&tier.unwrap_or(Tier::Regular)) else {
            return Vec::new();
        };
        by_kind
            .get(kind.name())
            .or_else(|| by_kind.get("default"))
            .into_iter()
            .flatten()
            .filter_map(|id| {
                self.actions.get(id).map(|d| Action {
                    id: id.clone(),
                    description: d.clone(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::alert::config::AlertConfig;

    use super::*;

    #[test]
    fn graded_defaults() {
        let p = AlertConfig::builtin().playbook;
        let ids = |tier, kind| -> Vec<String> {
            p.recommend(tier, kind).into_iter().map(|a| a.id).collect()
        };
        assert_eq!(
            ids(Some(Tier::Vip), RuleKind::HealthBelow),
            ["account_manager_call", "executive_call", "tailored_offer"]
        );
        assert_eq!(
            ids(Some(Tier::Silver), RuleKind::Detractor),
            ["personalised_offer", "ticket_follow_up"]
        );
        assert_eq!(
            ids(None, RuleKind::ScoreDrop),
            ["care_message", "self_service_link", "win_back_coupon"]
        );
        assert_eq!(
            ids(Some(Tier::Regular), RuleKind::FirstResponseSla),
            ["ticket_follow_up", "self_service_link"]
        );
    }

    #[test]
    fn undefined_actions_are_refused() {
        let e = AlertConfig::from_toml("[playbook.tiers.vip]\ndefault = [\"call\"]\n").unwrap_err();
        assert_eq!(e.path, "playbook.tiers.vip.default[0]");
        let e = AlertConfig::from_toml("[playbook.tiers.vip]\nfoo = []\n").unwrap_err();
        assert_eq!(e.path, "playbook.tiers.vip.foo");
    }
}
