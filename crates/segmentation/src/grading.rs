//! One run's grading, without I/O: RFM quintiles, value tiers by the configured measure and
//! cut-offs, and the facts the lifecycle rules read (the store applies hysteresis and stages).
//!
//! Quintiles and share cut-offs rank the whole population, so a run grades in two steps: a
//! [`Population`] keeps only the values each customer is ranked on, its [`Ranking`] then grades
//! customers one at a time from their features, so no step needs every customer's features at
//! once.

use crate::TierMeasure;
use crate::store::Grade;
use rapport_domain::lifecycle::StageFacts;
use rapport_domain::rank::IdRanks;
use rapport_domain::rfm::{RfmInput, RfmScore, score as rfm_score};
use rapport_domain::tier::{Tier, TierCutoffs};
use rapport_proto::scoring::v1::CustomerFeatures;

/// The values a run ranks customers on, in the order they were added.
#[derive(Debug, Clone)]
pub(crate) struct Population {
    measure: TierMeasure,
    rfm: Vec<RfmInput>,
    /// The tier measure's value without CLV (trailing spend, or net value).
    value: Vec<f64>,
    /// Each customer's predicted CLV while every customer so far has one; dropped at the first
    /// customer without, since tiers then rank by `value`.
    clv: Option<Vec<f64>>,
}

impl Population {
    /// An empty population, to be ranked by `measure`.
    pub fn new(measure: TierMeasure) -> Population {
        Population {
            measure,
            rfm: Vec::new(),
            value: Vec::new(),
            clv: (measure == TierMeasure::Clv).then(Vec::new),
        }
    }

    /// Adds a customer.
    pub fn push(&mut self, f: &CustomerFeatures) {
        // F is distinct purchase days and M their value, both up to the run's date.
        self.rfm.push(RfmInput {
            recency_days: f.recency_days,
            frequency: f.purchase_days,
            // Money is ranked to the cent, so summation noise never splits equal spenders.
            monetary: (f.spend * 100.0).round() / 100.0,
        });
        self.value.push(match self.measure {
            TierMeasure::Monetary => f.monetary,
            _ => f.spend_12m,
        });
        match (&mut self.clv, f.clv_12m) {
            (Some(all), Some(clv)) => all.push(clv),
            (all, _) => *all = None,
        }
    }

    /// Customers added.
    pub fn len(&self) -> usize {
        self.rfm.len()
    }

    /// Ranks the population (`ids` ranks the same customers by id, to break ties) under
    /// `cutoffs`.
    pub fn rank(self, ids: &IdRanks, cutoffs: &TierCutoffs) -> Ranking {
        let rfm = rfm_score(&self.rfm, ids);
        // Predicted CLV is the tier measure once every customer has one (the tenant's models
        // are fitted); mixing it with spend would rank unlike quantities, so until then
        // trailing 12-month spend it is.
        let clv = self.clv.filter(|all| !all.is_empty());
        let name = match self.measure {
            _ if clv.is_some() => "predicted 12-month CLV",
            TierMeasure::Monetary => "net value",
            _ => "12-month spend",
        };
        let tiers = cutoffs.assign(clv.as_deref().unwrap_or(&self.value), ids);
        let reason = match cutoffs {
            TierCutoffs::Shares(_) => format!("share of {name}"),
            TierCutoffs::Absolute(_) => name.to_owned(),
        };
        Ranking { rfm, tiers, reason }
    }
}

/// A ranked population: each customer's RFM scores and value tier, by position.
#[derive(Debug, Clone)]
pub(crate) struct Ranking {
    rfm: Vec<RfmScore>,
    tiers: Vec<Tier>,
    /// Recorded with each tier change, e.g. "share of 12-month spend".
    pub reason: String,
}

impl Ranking {
    /// Customers ranked.
    pub fn len(&self) -> usize {
        self.rfm.len()
    }

    /// The grade of the customer added at `position`, whose features are `f`; `None` past the
    /// population's end.
    pub fn grade(&self, position: usize, f: &CustomerFeatures) -> Option<Grade> {
        Some(Grade {
            customer_id: f.customer_id.clone(),
            tier: *self.tiers.get(position)?,
            rfm: *self.rfm.get(position)?,
            facts: StageFacts {
                first_purchase_days: f.first_purchase_days,
                last_purchase_days: f.recency_days,
                cancelled: f.cancelled,
                p_alive: f.p_alive,
            },
            clv: f.clv_12m,
        })
    }
}

/// The grades of a run's customers, in their order, and why tiers are what they are.
#[derive(Debug, Clone)]
pub struct Grading {
    pub grades: Vec<Grade>,
    /// Recorded with each tier change, e.g. "share of 12-month spend".
    pub reason: String,
}

/// Grades `features` (a tenant's whole population, in any order) by RFM and into tiers.
pub fn grade(
    features: &[CustomerFeatures],
    measure: TierMeasure,
    cutoffs: &TierCutoffs,
) -> Grading {
    let mut population = Population::new(measure);
    for f in features {
        population.push(f);
    }
    let ids = IdRanks::of(features.iter().map(|f| f.customer_id.as_str()));
    let ranking = population.rank(&ids, cutoffs);
    let grades = features
        .iter()
        .enumerate()
        .filter_map(|(i, f)| ranking.grade(i, f))
        .collect();
    Grading {
        grades,
        reason: ranking.reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn customer(id: &str, spend: f64, clv: Option<f64>) -> CustomerFeatures {
        CustomerFeatures {
            customer_id: id.to_owned(),
            recency_days: Some(spend),
            purchase_days: spend as u64,
            spend,
            spend_12m: spend,
            clv_12m: clv,
            ..CustomerFeatures::default()
        }
    }

    /// Ranking a population listed in id order by position grades it as ranking it by ids.
    #[test]
    fn a_population_in_id_order_ranks_by_position() {
        let features: Vec<CustomerFeatures> = (0..57)
            .map(|i| customer(&format!("c{i:03}"), f64::from(i % 7), None))
            .collect();
        let mut population = Population::new(TierMeasure::Clv);
        for f in &features {
            population.push(f);
        }
        let ranking = population.rank(
            &IdRanks::sequential(features.len()),
            &TierCutoffs::default(),
        );
        let by_position: Vec<Grade> = features
            .iter()
            .enumerate()
            .filter_map(|(i, f)| ranking.grade(i, f))
            .collect();
        let whole = grade(&features, TierMeasure::Clv, &TierCutoffs::default());
        assert_eq!(by_position, whole.grades);
        assert_eq!(ranking.reason, "share of 12-month spend");
        assert!(ranking.grade(features.len(), &features[0]).is_none());
    }

    /// Tiers rank by CLV only when every customer has one.
    #[test]
    fn clv_ranks_tiers_only_when_everyone_has_one() {
        // Spend and CLV rank the two customers in opposite orders.
        let fitted = [
            customer("a", 10.0, Some(1.0)),
            customer("b", 1.0, Some(10.0)),
        ];
        let tiers = |features: &[CustomerFeatures]| {
            let g = grade(features, TierMeasure::Clv, &TierCutoffs::Absolute([5.0; 4]));
            (
                g.grades.iter().map(|g| g.tier).collect::<Vec<_>>(),
                g.reason,
            )
        };
        assert_eq!(
            tiers(&fitted),
            (
                vec![Tier::Regular, Tier::Vip],
                "predicted 12-month CLV".to_owned()
            )
        );
        let mut partly = fitted.clone();
        partly[0].clv_12m = None;
        assert_eq!(
            tiers(&partly),
            (vec![Tier::Vip, Tier::Regular], "12-month spend".to_owned())
        );
    }
}
