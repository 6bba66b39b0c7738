//! Tiers and stages as of a backtest's time, graded as segmentation grades them (value tiers
//! by the default shares of predicted CLV, or of 12-month spend while the models are not
//! fitted; lifecycle stages by the given rules), and the built-in alert rules that read them
//! checked against the outcome.

use super::Row;
use crate::evaluate::CustomerState;
use chrono::{DateTime, Utc};
use rapport_domain::alert::config::{AlertConfig, Params, RuleKind};
use rapport_domain::backtest::{self as stats, Case};
use rapport_domain::lifecycle::{Stage, StageFacts, StageRules};
use rapport_domain::metrics::{External, Indicator};
use rapport_domain::models::outlook::FittedModels;
use rapport_domain::rank::IdRanks;
use rapport_domain::tier::{Tier, TierCutoffs};
use rapport_proto::scoring::v1 as pb;
use std::collections::BTreeMap;

/// Sets every customer's tier and stage as of `as_of` (one run's grades: no hysteresis, and
/// no earlier stage to be reactivated from).
pub(super) fn grade(
    states: &mut BTreeMap<String, CustomerState>,
    models: Option<&FittedModels>,
    as_of: DateTime<Utc>,
    rules: &StageRules,
) {
    let today = as_of.date_naive();
    let outlooks: Vec<_> = states
        .values()
        .map(|s| models.and_then(|m| m.outlook(&s.metrics.purchase_days, today)))
        .collect();
    // Predicted CLV once every customer has one, as segmentation ranks: mixing it with spend
    // would rank unlike quantities.
    let values: Vec<f64> = match outlooks.iter().map(|o| o.map(|o| o.clv)).collect() {
        Some(clv) => clv,
        None => states
            .values()
            .map(|s| {
                s.metrics
                    .value(Indicator::Spend, 365, as_of, &External::default())
                    .unwrap_or(0.0)
            })
            .collect(),
    };
    let ids = IdRanks::of(states.keys().map(String::as_str));
    let tiers = TierCutoffs::default().assign(&values, &ids);
    for ((state, tier), outlook) in states.values_mut().zip(tiers).zip(outlooks) {
        let bought = state.metrics.purchases_until(today);
        let facts = StageFacts {
            first_purchase_days: bought.days_since_first,
            last_purchase_days: bought.days_since_last,
            cancelled: state.metrics.churned_at().is_some_and(|t| t <= as_of),
            p_alive: outlook.map(|o| o.p_alive),
        };
        state.tier = Some(tier);
        state.stage = Some(rules.grade(&facts, None));
    }
}

/// The outcome's rate by tier, highest first, and by stage.
pub(super) fn rates(rows: &[Row]) -> (Vec<pb::OutcomeRate>, Vec<pb::OutcomeRate>) {
    let case = |r: &Row| Case {
        risk: -r.score,
        outcome: r.outcome,
    };
    let tiers: Vec<(Case, &str)> = rows
        .iter()
        .filter_map(|r| Some((case(r), r.tier?.name())))
        .collect();
    let stages: Vec<(Case, &str)> = rows
        .iter()
        .filter_map(|r| Some((case(r), r.stage?.name())))
        .collect();
    let tier_names = Tier::DESCENDING.map(Tier::name);
    let stage_names = Stage::ALL.map(Stage::name);
    let of = |labelled: &[(Case, &str)], names: &[&str]| -> Vec<pb::OutcomeRate> {
        stats::by_group(labelled, names)
            .into_iter()
            .filter(|r| r.cases > 0)
            .map(super::rate_pb)
            .collect()
    };
    (of(&tiers, &tier_names), of(&stages, &stage_names))
}

/// The built-in `p_alive_drop` rule against the outcome: of the customers of the tiers it
/// watches, those it would flag (P(alive) below its threshold) beside the rest, and how
/// P(alive) ranks them.
pub(super) fn p_alive_drop(rows: &[Row]) -> Option<pb::RuleCheck> {
    let config = AlertConfig::builtin();
    let threshold = |tier: Tier| match config.rule(RuleKind::PAliveDrop, Some(tier))?.params {
        Params::PAliveDrop {
            ref tiers,
            enter_below,
            ..
        } => tiers.contains(&tier).then_some(enter_below),
        _ => None,
    };
    let watched: Vec<(Case, bool)> = rows
        .iter()
        .filter_map(|r| {
            let below = threshold(r.tier?)?;
            let p = r.p_alive?;
            let case = Case {
                risk: -p,
                outcome: r.outcome,
            };
            Some((case, p < below))
        })
        .collect();
    if watched.is_empty() {
        return None;
    }
    let watched_tiers: Vec<&str> = Tier::DESCENDING
        .into_iter()
        .filter(|t| threshold(*t).is_some())
        .map(Tier::name)
        .collect();
    let labelled: Vec<(Case, &str)> = watched
        .iter()
        .map(|(c, flagged)| (*c, if *flagged { "flagged" } else { "others" }))
        .collect();
    let mut groups = stats::by_group(&labelled, &["flagged", "others"]).into_iter();
    let cases: Vec<Case> = watched.iter().map(|(c, _)| *c).collect();
    Some(pb::RuleCheck {
        rule: RuleKind::PAliveDrop.name().to_owned(),
        watches: format!("customers of {}", watched_tiers.join(", ")),
        flagged: groups.next().map(super::rate_pb),
        others: groups.next().map(super::rate_pb),
        ranking: stats::auc(&cases).map(|a| pb::Ranking {
            name: "p_alive".to_owned(),
            auc: a.auc,
            auc_low: a.low,
            auc_high: a.high,
            customers: cases.len() as u64,
        }),
    })
}
