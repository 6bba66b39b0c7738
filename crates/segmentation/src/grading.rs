//! One run's grading, without I/O: RFM quintiles, value tiers by the configured measure and
//! cut-offs, and the facts the lifecycle rules read (the store applies hysteresis and stages).

use crate::TierMeasure;
use crate::store::Grade;
use rapport_domain::lifecycle::StageFacts;
use rapport_domain::rank::IdRanks;
use rapport_domain::rfm::{RfmInput, score as rfm_score};
use rapport_domain::tier::TierCutoffs;
use rapport_proto::scoring::v1::CustomerFeatures;

/// The grades of a run's customers, in their order, and why tiers are what they are.
#[derive(Debug, Clone)]
pub struct Grading {
    pub grades: Vec<Grade>,
    /// Recorded with each tier change, e.g. "share of 12-month spend".
    pub reason: String,
}

/// Grades `features` (a tenant's whole population) by RFM and into tiers.
pub fn grade(
    features: &[CustomerFeatures],
    measure: TierMeasure,
    cutoffs: &TierCutoffs,
) -> Grading {
    let ids = IdRanks::of(features.iter().map(|f| f.customer_id.as_str()));
    // F is distinct purchase days and M their value, both up to the run's date.
    let rfm_input: Vec<RfmInput> = features
        .iter()
        .map(|f| RfmInput {
            recency_days: f.recency_days,
            frequency: f.purchase_days,
            // Money is ranked to the cent, so summation noise never splits equal spenders.
            monetary: (f.spend * 100.0).round() / 100.0,
        })
        .collect();
    let rfm = rfm_score(&rfm_input, &ids);
    // Predicted CLV is the tier measure once every customer has one (the tenant's models are
    // fitted); mixing it with spend would rank unlike quantities, so until then trailing
    // 12-month spend it is.
    let by_clv = measure == TierMeasure::Clv
        && !features.is_empty()
        && features.iter().all(|f| f.clv_12m.is_some());
    let values: Vec<f64> = features
        .iter()
        .map(|f| match measure {
            TierMeasure::Monetary => f.monetary,
            _ if by_clv => f.clv_12m.unwrap_or(0.0),
            _ => f.spend_12m,
        })
        .collect();
    let tiers = cutoffs.assign(&values, &ids);
    let name = match measure {
        _ if by_clv => "predicted 12-month CLV",
        TierMeasure::Monetary => "net value",
        _ => "12-month spend",
    };
    let reason = match cutoffs {
        TierCutoffs::Shares(_) => format!("share of {name}"),
        TierCutoffs::Absolute(_) => name.to_owned(),
    };
    let grades = features
        .iter()
        .zip(rfm)
        .zip(tiers)
        .map(|((f, rfm), tier)| Grade {
            customer_id: f.customer_id.clone(),
            tier,
            rfm,
            facts: StageFacts {
                first_purchase_days: f.first_purchase_days,
                last_purchase_days: f.recency_days,
                cancelled: f.cancelled,
                p_alive: f.p_alive,
            },
            clv: f.clv_12m,
        })
        .collect();
    Grading { grades, reason }
}
