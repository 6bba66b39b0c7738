//! Value tiers, graded by the share of the population a customer falls in.

use serde::{Deserialize, Serialize};

/// A customer's value tier, lowest to highest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Tier {
    Regular,
    Bronze,
    Silver,
    Gold,
    Vip,
}

impl Tier {
    /// Highest first.
    pub const DESCENDING: [Tier; 5] = [
        Tier::Vip,
        Tier::Gold,
        Tier::Silver,
        Tier::Bronze,
        Tier::Regular,
    ];

    /// Stable name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Tier::Regular => "regular",
            Tier::Bronze => "bronze",
            Tier::Silver => "silver",
            Tier::Gold => "gold",
            Tier::Vip => "vip",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Tier> {
        Tier::DESCENDING.into_iter().find(|t| t.name() == name)
    }
}

/// Population shares of each tier, highest tier first; the last tier takes the rest.
#[derive(Debug, Clone, PartialEq)]
pub struct TierShares {
    /// Shares of VIP, Gold, Silver and Bronze; Regular is what remains.
    pub shares: [f64; 4],
}

impl Default for TierShares {
    /// VIP top 1 %, Gold next 4 %, Silver next 15 %, Bronze next 30 %, Regular the rest.
    fn default() -> Self {
        TierShares {
            shares: [0.01, 0.04, 0.15, 0.30],
        }
    }
}

/// Grades customers by a value measure: the customer at rank `i` of `n` (highest value first,
/// ties broken by id) gets the first tier whose cumulative share exceeds `i / n`, so the top
/// customer is always VIP and each boundary is exact to one customer.
pub fn assign_tiers<'a>(values: &[(&'a str, f64)], shares: &TierShares) -> Vec<(&'a str, Tier)> {
    let mut ranked: Vec<&(&str, f64)> = values.iter().collect();
    ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let n = ranked.len() as f64;
    let mut bounds = [0.0; 4];
    let mut cumulative = 0.0;
    for (bound, share) in bounds.iter_mut().zip(shares.shares) {
        cumulative += share;
        *bound = cumulative;
    }
    ranked
        .into_iter()
        .enumerate()
        .map(|(i, (id, _))| {
            let position = i as f64 / n;
            let tier = bounds
                .iter()
                .position(|b| position < *b)
                .map_or(Tier::Regular, |k| Tier::DESCENDING[k]);
            (*id, tier)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn shares_of_a_thousand_customers() {
        let ids: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
        let values: Vec<(&str, f64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as f64))
            .collect();
        let tiers = assign_tiers(&values, &TierShares::default());
        let mut counts: HashMap<Tier, usize> = HashMap::new();
        tiers
            .iter()
            .for_each(|(_, t)| *counts.entry(*t).or_default() += 1);
        assert_eq!(
            Tier::DESCENDING.map(|t| counts.get(&t).copied().unwrap_or(0)),
            [10, 40, 150, 300, 500]
        );
        let top = tiers.iter().find(|(id, _)| *id == "c0999").unwrap();
        assert_eq!(top.1, Tier::Vip);
    }

    #[test]
    fn small_populations_still_have_a_top() {
        let values = [("a", 5.0), ("b", 50.0), ("c", 1.0)];
        let tiers: HashMap<_, _> = assign_tiers(&values, &TierShares::default())
            .into_iter()
            .collect();
        assert_eq!(tiers["b"], Tier::Vip);
        assert!(tiers["a"] > tiers["c"]);
    }

    #[test]
    fn ties_are_broken_by_id() {
        let values = [("b", 1.0), ("a", 1.0)];
        let tiers = assign_tiers(&values, &TierShares::default());
        assert_eq!(tiers[0], ("a", Tier::Vip));
    }
}
