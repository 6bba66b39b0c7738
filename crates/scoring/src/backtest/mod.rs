//! Backtests: a tenant's customers scored as of a past time from the events that had occurred
//! by then (models fitted and percentile tables ranked on that population alone), against an
//! outcome in a horizon after it. No I/O: the engine brings the events; live scores are never
//! touched.

use crate::evaluate::{CustomerState, TenantContext, evaluate, percentile_values};
use chrono::{DateTime, Utc};
use rapport_domain::backtest::{self as stats, Case};
use rapport_domain::event::{Event, Payload, SubscriptionChange};
use rapport_domain::lifecycle::{Stage, StageRules};
use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::gamma_gamma::GammaGamma;
use rapport_domain::models::outlook::{FittedModels, twelve_months_in_days};
use rapport_domain::models::summary::summarise_days;
use rapport_domain::models::{Customer, check_population};
use rapport_domain::rank::IdRanks;
use rapport_domain::rfm::{self, RfmInput};
use rapport_domain::scorecard::{Band, PercentileTable, ScorecardSet};
use rapport_domain::tier::Tier;
use rapport_proto::scoring::v1 as pb;
use std::collections::{BTreeMap, BTreeSet, HashSet};

mod fit;
mod grades;

/// Points of the ROC curve answered.
const ROC_POINTS: usize = 200;

/// The outcomes a backtest can look for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No order in the horizon.
    NoPurchase,
    /// A subscription cancelled in the horizon.
    Cancelled,
    /// A subscription downgraded in the horizon.
    Downgraded,
}

impl Outcome {
    /// The outcome a request names (`no-purchase` when it names none).
    pub fn parse(name: &str) -> Option<Outcome> {
        match name {
            "" | "no-purchase" => Some(Outcome::NoPurchase),
            "cancelled" => Some(Outcome::Cancelled),
            "downgraded" => Some(Outcome::Downgraded),
            _ => None,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Outcome::NoPurchase => "no-purchase",
            Outcome::Cancelled => "cancelled",
            Outcome::Downgraded => "downgraded",
        }
    }
}

/// What a backtest knows once the events are read: each customer's state from the events
/// before `as_of`, and who did what in the horizon.
#[derive(Debug)]
pub struct Folded {
    as_of: DateTime<Utc>,
    end: DateTime<Utc>,
    states: BTreeMap<String, CustomerState>,
    bought: HashSet<String>,
    cancelled: HashSet<String>,
    downgraded: HashSet<String>,
}

impl Folded {
    /// An empty backtest of the time `as_of` and the horizon up to `end`.
    pub fn new(as_of: DateTime<Utc>, end: DateTime<Utc>) -> Folded {
        Folded {
            as_of,
            end,
            states: BTreeMap::new(),
            bought: HashSet::new(),
            cancelled: HashSet::new(),
            downgraded: HashSet::new(),
        }
    }

    /// Takes one event into account: before `as_of` it is folded into its customer's
    /// state, in the horizon it may be the outcome, after it is ignored.
    pub fn add(&mut self, event: &Event) {
        if event.occurred_at < self.as_of {
            self.states
                .entry(event.customer_id.clone())
                .or_default()
                .metrics
                .apply(event);
        } else if event.occurred_at < self.end {
            let who = match &event.payload {
                Payload::Order { .. } => &mut self.bought,
                Payload::Subscription {
                    change: SubscriptionChange::Cancel,
                    ..
                } => &mut self.cancelled,
                Payload::Subscription {
                    change: SubscriptionChange::Downgrade,
                    ..
                } => &mut self.downgraded,
                _ => return,
            };
            who.insert(event.customer_id.clone());
        }
    }

    /// Customers known at `as_of`.
    pub fn customers(&self) -> usize {
        self.states.len()
    }
}

/// One customer as of the backtest's time.
#[derive(Debug, Clone)]
struct Row {
    id: String,
    score: f64,
    band: Band,
    outcome: bool,
    measures: BTreeMap<String, f64>,
    /// The candidate measures a fit tries beside the card's (only when fitting).
    candidates: BTreeMap<String, f64>,
    /// The card's measures' raw values, whose cut-offs a fit may move (only when fitting).
    raw: BTreeMap<String, f64>,
    p_alive: Option<f64>,
    expected_purchases: Option<f64>,
    recency_days: Option<f64>,
    rfm: u32,
    /// Whether the customer had bought on two days or more.
    repeat: bool,
    tier: Option<Tier>,
    stage: Option<Stage>,
}

/// The models fitted on every customer's purchase days before `as_of`, if they fit.
fn fit(
    states: &BTreeMap<String, CustomerState>,
    as_of: DateTime<Utc>,
) -> Result<FittedModels, String> {
    let summaries: Vec<_> = states
        .values()
        .filter_map(|s| summarise_days(&s.metrics.purchase_days, as_of.date_naive(), 1.0))
        .collect();
    let customers: Vec<Customer> = summaries.iter().map(|s| s.customer).collect();
    check_population(&customers).map_err(|e| e.to_string())?;
    let bgnbd = BgNbd::fit(&customers).map_err(|e| e.to_string())?;
    let spends: Vec<_> = summaries.iter().map(|s| s.spend()).collect();
    if !bgnbd.converged {
        return Err("BG/NBD did not converge".to_owned());
    }
    Ok(FittedModels {
        bgnbd: bgnbd.params,
        gamma_gamma: GammaGamma::fit(&spends)
            .ok()
            .filter(|f| f.converged)
            .map(|f| f.params),
        clv: twelve_months_in_days(),
    })
}

/// What a backtest answers besides its figures.
#[derive(Debug, Clone, Copy)]
pub struct Extras {
    /// Every customer's values.
    pub customers: bool,
    /// A card fitted to the outcome.
    pub fit: bool,
    /// The rules stages are graded by as of then.
    pub stage_rules: StageRules,
}

/// The percentile tables of the population `states` as of `at`, for the measures of `ctx`.
fn rank_population(
    ctx: &mut TenantContext,
    states: &BTreeMap<String, CustomerState>,
    at: DateTime<Utc>,
) {
    let mut values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for state in states.values() {
        for (key, v) in percentile_values(state, ctx, at) {
            values.entry(key.to_owned()).or_default().push(v);
        }
    }
    ctx.population = values
        .into_iter()
        .filter_map(|(k, v)| Some((k, PercentileTable::from_values(v)?)))
        .collect();
}

/// The backtest's report: `cards` (the tenant's scorecards, `version` their name) evaluated
/// on every customer of `folded`, against `outcome`.
pub fn report(
    folded: Folded,
    cards: ScorecardSet,
    version: String,
    outcome: Outcome,
    extras: Extras,
) -> pb::BacktestReport {
    let Folded {
        as_of,
        end,
        mut states,
        bought,
        cancelled,
        downgraded,
    } = folded;
    let mut notes = Vec::new();
    let models = match fit(&states, as_of) {
        Ok(m) => Some(m),
        Err(why) => {
            notes.push(format!("models not fitted as of then: {why}"));
            None
        }
    };
    let mut ctx = TenantContext {
        cards,
        version,
        population: Default::default(),
        population_of: states.len() as u64,
        models,
    };
    // Tiers and stages first: they choose each customer's card.
    grades::grade(&mut states, ctx.models.as_ref(), as_of, &extras.stage_rules);
    // Percentiles rank the population as it was.
    rank_population(&mut ctx, &states, as_of);
    // The candidates a fit tries are scored by a card of their own.
    let candidates = extras.fit.then(|| {
        let mut c = TenantContext {
            cards: fit::candidates(),
            version: String::new(),
            population: Default::default(),
            population_of: ctx.population_of,
            models: ctx.models,
        };
        rank_population(&mut c, &states, as_of);
        c
    });

    let ids = IdRanks::of(states.keys().map(String::as_str));
    let rfm_inputs: Vec<RfmInput> = states
        .values()
        .map(|s| {
            let facts = s.metrics.purchases_until(as_of.date_naive());
            RfmInput {
                recency_days: facts.days_since_last,
                frequency: facts.purchase_days,
                monetary: facts.spend,
            }
        })
        .collect();
    let rfm_scores = rfm::score(&rfm_inputs, &ids);

    let mut unmeasured = 0;
    let mut rows = Vec::with_capacity(states.len());
    for ((id, state), (input, rfm)) in states.iter().zip(rfm_inputs.iter().zip(&rfm_scores)) {
        let e = evaluate(state, &ctx, as_of);
        if !e.computed.measured() {
            unmeasured += 1;
            continue;
        }
        rows.push(Row {
            id: id.clone(),
            score: e.computed.score,
            band: e.computed.band,
            outcome: match outcome {
                Outcome::NoPurchase => !bought.contains(id),
                Outcome::Cancelled => cancelled.contains(id),
                Outcome::Downgraded => downgraded.contains(id),
            },
            measures: e
                .computed
                .measures
                .iter()
                .filter_map(|m| Some((m.key.clone(), m.score?)))
                .collect(),
            candidates: candidates
                .as_ref()
                .map(|c| {
                    evaluate(state, c, as_of)
                        .computed
                        .measures
                        .iter()
                        .filter_map(|m| Some((m.key.clone(), m.score?)))
                        .collect()
                })
                .unwrap_or_default(),
            raw: if extras.fit {
                e.computed
                    .measures
                    .iter()
                    .filter_map(|m| Some((m.key.clone(), m.value?)))
                    .collect()
            } else {
                BTreeMap::new()
            },
            p_alive: e.outlook.map(|o| o.p_alive),
            expected_purchases: e.outlook.map(|o| o.expected_purchases_90d),
            recency_days: input.recency_days,
            rfm: u32::from(rfm.r) + u32::from(rfm.f) + u32::from(rfm.m),
            repeat: input.frequency >= 2,
            tier: state.tier,
            stage: state.stage,
        });
    }
    if unmeasured > 0 {
        notes.push(format!(
            "{unmeasured} customers had no measurable data as of then and are left out"
        ));
    }
    let card_fit = candidates.as_ref().map(|c| {
        // The card's measures first: a candidate the card has already is the card's.
        let mut measures: Vec<(String, rapport_domain::scorecard::Measure)> = ctx
            .cards
            .card_for(None, None)
            .measures()
            .map(|(g, m)| (g.to_owned(), m.clone()))
            .collect();
        for (g, m) in c.cards.card_for(None, None).measures() {
            if !measures.iter().any(|(_, known)| known.key == m.key) {
                measures.push((g.to_owned(), m.clone()));
            }
        }
        fit::fit(
            &rows,
            &measures,
            &as_of.date_naive().to_string(),
            outcome.name(),
        )
    });
    let (tiers, stages) = grades::rates(&rows);
    let rule_checks = grades::p_alive_drop(&rows).into_iter().collect();
    let mut report = summarise(rows, as_of, end, outcome, notes, extras.customers);
    report.fit = card_fit;
    report.tiers = tiers;
    report.stages = stages;
    report.rule_checks = rule_checks;
    report
}

/// How `value` (of the rows that have one) ranks the rows by the outcome; `risk` turns a value
/// into risk (a health score's is its negation).
fn ranking(
    name: &str,
    rows: &[Row],
    value: impl Fn(&Row) -> Option<f64>,
    risk: fn(f64) -> f64,
) -> Option<pb::Ranking> {
    let cases: Vec<Case> = rows
        .iter()
        .filter_map(|r| {
            Some(Case {
                risk: risk(value(r)?),
                outcome: r.outcome,
            })
        })
        .collect();
    let a = stats::auc(&cases)?;
    Some(pb::Ranking {
        name: name.to_owned(),
        auc: a.auc,
        auc_low: a.low,
        auc_high: a.high,
        customers: cases.len() as u64,
    })
}

fn healthier_is_safer(v: f64) -> f64 {
    -v
}

fn larger_is_riskier(v: f64) -> f64 {
    v
}

fn rate_pb(r: stats::Rate) -> pb::OutcomeRate {
    pb::OutcomeRate {
        label: r.label,
        customers: r.cases as u64,
        outcomes: r.outcomes as u64,
        rate: r.rate,
        lift: r.lift,
    }
}

fn summarise(
    rows: Vec<Row>,
    as_of: DateTime<Utc>,
    end: DateTime<Utc>,
    outcome: Outcome,
    mut notes: Vec<String>,
    with_customers: bool,
) -> pb::BacktestReport {
    let cases: Vec<Case> = rows
        .iter()
        .map(|r| Case {
            risk: -r.score,
            outcome: r.outcome,
        })
        .collect();
    let outcomes = cases.iter().filter(|c| c.outcome).count();
    let score = ranking("score", &rows, |r| Some(r.score), healthier_is_safer);
    if score.is_none() {
        notes.push("the outcome happened to every customer or to none: no ranking".to_owned());
    }
    let keys: BTreeSet<&String> = rows.iter().flat_map(|r| r.measures.keys()).collect();
    let measures = keys
        .iter()
        .filter_map(|k| {
            ranking(
                k,
                &rows,
                |r| r.measures.get(*k).copied(),
                healthier_is_safer,
            )
        })
        .collect();
    let baselines = [
        ranking("p_alive", &rows, |r| r.p_alive, healthier_is_safer),
        // BG/NBD's P(alive) is 1 for every one-time buyer: among repeat buyers alone it
        // says what it can.
        ranking(
            "p_alive_repeat_buyers",
            &rows,
            |r| r.p_alive.filter(|_| r.repeat),
            healthier_is_safer,
        ),
        ranking(
            "expected_purchases",
            &rows,
            |r| r.expected_purchases,
            healthier_is_safer,
        ),
        ranking("recency", &rows, |r| r.recency_days, larger_is_riskier),
        ranking("rfm", &rows, |r| Some(f64::from(r.rfm)), healthier_is_safer),
    ]
    .into_iter()
    .flatten()
    .collect();
    let labelled: Vec<(Case, &str)> = cases
        .iter()
        .zip(&rows)
        .map(|(c, r)| (*c, r.band.name()))
        .collect();
    let bands = stats::by_group(&labelled, &["red", "yellow", "green"])
        .into_iter()
        .map(rate_pb)
        .collect();
    let deciles = stats::deciles(&cases).into_iter().map(rate_pb).collect();
    let (calibration, reliability, brier) = match stats::calibrate(&cases) {
        Some(c) => {
            let (table, brier) = stats::reliability(&cases, &c);
            (Some(c), table, brier)
        }
        None => (None, Vec::new(), 0.0),
    };
    let horizon = end - as_of;
    pb::BacktestReport {
        as_of: Some(rapport_proto::convert::timestamp(as_of.timestamp_millis())),
        horizon: Some(prost_types::Duration {
            seconds: horizon.num_seconds(),
            nanos: 0,
        }),
        outcome: outcome.name().to_owned(),
        customers: rows.len() as u64,
        outcomes: outcomes as u64,
        outcome_rate: stats::overall_rate(&cases),
        score,
        measures,
        baselines,
        bands,
        deciles,
        // The curve is of the risk (-score): in the score's terms the slope changes sign.
        calibration_intercept: calibration.map_or(0.0, |c| c.intercept),
        calibration_slope: calibration.map_or(0.0, |c| -c.slope),
        brier,
        reliability: reliability
            .into_iter()
            .map(|r| pb::ReliabilityRow {
                from: r.from,
                to: r.to,
                customers: r.cases as u64,
                mean_predicted: r.mean_predicted,
                observed: r.observed,
            })
            .collect(),
        roc: stats::roc(&cases, ROC_POINTS)
            .into_iter()
            .map(|p| pb::RocPoint {
                false_positive_rate: p.false_positive_rate,
                true_positive_rate: p.true_positive_rate,
            })
            .collect(),
        notes,
        fit: None,
        tiers: Vec::new(),
        stages: Vec::new(),
        rule_checks: Vec::new(),
        customer_rows: if with_customers {
            rows.into_iter()
                .map(|r| pb::BacktestCustomer {
                    customer_id: r.id,
                    score: r.score,
                    band: r.band.name().to_owned(),
                    outcome: r.outcome,
                    measures: r.measures.into_iter().collect(),
                    p_alive: r.p_alive,
                    expected_purchases: r.expected_purchases,
                    recency_days: r.recency_days,
                    rfm: r.rfm,
                    tier: r.tier.map(Tier::name).unwrap_or_default().to_owned(),
                    stage: r.stage.map(Stage::name).unwrap_or_default().to_owned(),
                })
                .collect()
        } else {
            Vec::new()
        },
    }
}
