//! Value tiers, graded by the share of the population a customer falls in.

use crate::rank::{IdRanks, ordered};
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
/// ties broken by id — `ids` ranks the same customers, in the same order) gets the first tier
/// whose cumulative share exceeds `i / n`, so the top customer is always VIP and each boundary
/// is exact to one customer. Tiers come in the order of `values`.
pub fn assign_tiers(values: &[f64], ids: &IdRanks, shares: &TierShares) -> Vec<Tier> {
    let ranked = ids.order_by(|i| !ordered(values[i]));
    let n = ranked.len() as f64;
    let mut bounds = [0.0; 4];
    let mut cumulative = 0.0;
    for (bound, share) in bounds.iter_mut().zip(shares.shares) {
        cumulative += share;
        *bound = cumulative;
    }
    let mut tiers = vec![Tier::Regular; values.len()];
    for (rank, i) in ranked.into_iter().enumerate() {
        let position = rank as f64 / n;
        tiers[i as usize] = bounds
            .iter()
            .position(|b| position < *b)
            .map_or(Tier::Regular, |k| Tier::DESCENDING[k]);
    }
    tiers
}

/// How tiers are cut: by population shares, or by absolute values of the measure.
#[derive(Debug, Clone, PartialEq)]
pub enum TierCutoffs {
    Shares(TierShares),
    /// The least value of VIP, Gold, Silver and Bronze (descending); below the last, Regular.
    Absolute([f64; 4]),
}

impl Default for TierCutoffs {
    fn default() -> Self {
        TierCutoffs::Shares(TierShares::default())
    }
}

impl TierCutoffs {
    /// Parses `shares:0.01,0.04,0.15,0.30` or `absolute:5000,2000,500,100`, checking that
    /// shares are positive and sum to at most 1, and absolute values descend.
    pub fn parse(text: &str) -> Result<TierCutoffs, String> {
        let (kind, list) = text
            .split_once(':')
            .ok_or("expected shares:a,b,c,d or absolute:a,b,c,d")?;
        let numbers: Vec<f64> = list
            .split(',')
            .map(|n| {
                n.trim()
                    .parse::<f64>()
                    .map_err(|_| format!("{n:?} is not a number"))
            })
            .collect::<Result<_, _>>()?;
        let four: [f64; 4] = numbers
            .try_into()
            .map_err(|_| "four numbers: VIP, Gold, Silver, Bronze".to_owned())?;
        if four.iter().any(|v| !v.is_finite()) {
            return Err("numbers must be finite".to_owned());
        }
        match kind {
            "shares" => {
                if four.iter().any(|s| *s <= 0.0) || four.iter().sum::<f64>() > 1.0 {
                    return Err("shares must be positive and sum to at most 1".to_owned());
                }
                Ok(TierCutoffs::Shares(TierShares { shares: four }))
            }
            "absolute" => {
                if four.windows(2).any(|w| w[0] <= w[1]) {
                    return Err(
                        "absolute cut-offs must descend: VIP > Gold > Silver > Bronze".into(),
                    );
                }
                Ok(TierCutoffs::Absolute(four))
            }
            other => Err(format!("unknown kind {other:?} (shares or absolute)")),
        }
    }

    /// Grades customers by value under these cut-offs (`ids` breaks ties between shares);
    /// tiers in the order of `values`.
    pub fn assign(&self, values: &[f64], ids: &IdRanks) -> Vec<Tier> {
        match self {
            TierCutoffs::Shares(shares) => assign_tiers(values, ids, shares),
            TierCutoffs::Absolute(least) => values
                .iter()
                .map(|v| {
                    least
                        .iter()
                        .position(|l| v >= l)
                        .map_or(Tier::Regular, |k| Tier::DESCENDING[k])
                })
                .collect(),
        }
    }
}

/// Runs a downgrade must be graded in a row before it takes effect.
pub const DEFAULT_CONFIRM_DOWNGRADE_RUNS: u32 = 2;

/// A customer's tier between runs, with a downgrade that is waiting for confirmation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierState {
    pub tier: Option<Tier>,
    /// The lower tier the last runs graded the customer into, and in how many runs in a row.
    pub pending: Option<(Tier, u32)>,
}

/// The tier a customer keeps after a run graded it `graded`. Upgrades take effect at once; a
/// downgrade only once `confirm_runs` runs in a row graded the customer below its tier (to the
/// latest of those grades), so a customer whose value hovers around a cut-off does not flap.
pub fn next_tier(state: TierState, graded: Tier, confirm_runs: u32) -> TierState {
    match state.tier {
        Some(current) if graded < current => {
            let runs = state.pending.map_or(0, |(_, n)| n) + 1;
            if runs >= confirm_runs.max(1) {
                TierState {
                    tier: Some(graded),
                    pending: None,
                }
            } else {
                TierState {
                    tier: Some(current),
                    pending: Some((graded, runs)),
                }
            }
        }
        _ => TierState {
            tier: Some(graded),
            pending: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tiers by the default shares of customers given as (id, value).
    fn by_shares(customers: &[(&str, f64)]) -> Vec<Tier> {
        let values: Vec<f64> = customers.iter().map(|(_, v)| *v).collect();
        let ids = IdRanks::of(customers.iter().map(|(id, _)| *id));
        assign_tiers(&values, &ids, &TierShares::default())
    }

    #[test]
    fn shares_of_a_thousand_customers() {
        let ids: Vec<String> = (0..1000).map(|i| format!("c{i:04}")).collect();
        let values: Vec<(&str, f64)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i as f64))
            .collect();
        let tiers = by_shares(&values);
        let mut counts: HashMap<Tier, usize> = HashMap::new();
        tiers
            .iter()
            .for_each(|t| *counts.entry(*t).or_default() += 1);
        assert_eq!(
            Tier::DESCENDING.map(|t| counts.get(&t).copied().unwrap_or(0)),
            [10, 40, 150, 300, 500]
        );
        assert_eq!(tiers[999], Tier::Vip, "c0999, the top value");
    }

    #[test]
    fn small_populations_still_have_a_top() {
        let tiers = by_shares(&[("a", 5.0), ("b", 50.0), ("c", 1.0)]);
        assert_eq!(tiers[1], Tier::Vip, "b");
        assert!(tiers[0] > tiers[2], "a above c");
    }

    #[test]
    fn a_customer_hovering_around_a_cut_off_changes_tier_at_most_once_in_ten_runs() {
        let mut state = TierState {
            tier: Some(Tier::Silver),
            pending: None,
        };
        let mut changes = 0;
        for run in 0..10 {
            let graded = if run % 2 == 0 {
                Tier::Gold
            } else {
                Tier::Silver
            };
            let next = next_tier(state, graded, DEFAULT_CONFIRM_DOWNGRADE_RUNS);
            changes += usize::from(next.tier != state.tier);
            state = next;
        }
        assert_eq!(changes, 1);
        assert_eq!(state.tier, Some(Tier::Gold));
    }

    #[test]
    fn a_downgrade_takes_effect_when_confirmed() {
        let gold = TierState {
            tier: Some(Tier::Gold),
            pending: None,
        };
        let once = next_tier(gold, Tier::Bronze, 2);
        assert_eq!(once.tier, Some(Tier::Gold));
        assert_eq!(once.pending, Some((Tier::Bronze, 1)));
        let twice = next_tier(once, Tier::Silver, 2);
        assert_eq!((twice.tier, twice.pending), (Some(Tier::Silver), None));
        // A run back at the old tier cancels a pending downgrade; upgrades are immediate.
        assert_eq!(next_tier(once, Tier::Gold, 2), gold);
        assert_eq!(next_tier(gold, Tier::Vip, 2).tier, Some(Tier::Vip));
        assert_eq!(
            next_tier(TierState::default(), Tier::Regular, 2).tier,
            Some(Tier::Regular)
        );
    }

    #[test]
    fn ties_are_broken_by_id() {
        let tiers = by_shares(&[("b", 1.0), ("a", 1.0)]);
        assert_eq!(tiers, [Tier::Regular, Tier::Vip], "a ranks before b");
    }

    #[test]
    fn absolute_cutoffs_and_their_validation() {
        let c = TierCutoffs::parse("absolute:1000, 500, 100, 10").unwrap();
        let values = [
            ("a", 1000.0),
            ("b", 999.0),
            ("c", 100.0),
            ("d", 9.99),
            ("e", 10.0),
        ];
        let tiers = c.assign(
            &values.map(|(_, v)| v),
            &IdRanks::of(values.iter().map(|(id, _)| *id)),
        );
        assert_eq!(
            tiers,
            [
                Tier::Vip,
                Tier::Gold,
                Tier::Silver,
                Tier::Regular,
                Tier::Bronze
            ]
        );
        assert_eq!(
            TierCutoffs::parse("shares:0.01,0.04,0.15,0.30").unwrap(),
            TierCutoffs::default()
        );
        for bad in [
            "absolute:1,2,3,4",
            "shares:0.5,0.5,0.5,0.5",
            "shares:0.1,0.1",
            "percent:1,2,3,4",
            "shares:a,b,c,d",
            "1,2,3,4",
        ] {
            assert!(TierCutoffs::parse(bad).is_err(), "{bad}");
        }
    }
}
