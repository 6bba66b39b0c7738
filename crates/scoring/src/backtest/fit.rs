//! A card fitted to a backtest's outcome (the arithmetic is
//! [`rapport_domain::backtest::fit`]): the card's measures and a few candidates, weights fitted
//! on half the customers (chosen by id) and judged on the other half, written as a scorecard
//! `rapport scorecard --set` takes.

use super::Row;
use rapport_domain::backtest::fit::{
    ShortfallGroup, band_cutoffs, nonnegative_logistic, shortfall_likelihood,
};
use rapport_domain::backtest::{self as stats, Case};
use rapport_domain::scorecard::{Measure, Normalisation, ScorecardSet};
use rapport_proto::scoring::v1 as pb;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Measures worth trying beside the card's, in the groups they would join.
pub(super) const CANDIDATES: &str = r#"
name = "candidates"

[[groups]]
name = "loyalty"
weight = 1

[[groups.measures]]
indicator = "expected_purchases_90d"
weight = 1
normalise = { percentile = { higher_is_better = true } }

[[groups.measures]]
indicator = "orders_total"
weight = 1
normalise = { percentile = { higher_is_better = true } }

[[groups.measures]]
indicator = "tenure_days"
weight = 1
normalise = { percentile = { higher_is_better = true } }

[[groups]]
name = "value"
weight = 1

[[groups.measures]]
indicator = "monetary"
weight = 1
normalise = { percentile = { higher_is_better = true } }
"#;

/// The candidate measures' card.
pub(super) fn candidates() -> ScorecardSet {
    ScorecardSet::from_toml(CANDIDATES).expect("the candidate measures parse")
}

/// Least share of the customers a band proposed for the fitted card holds.
const MIN_BAND_SHARE: f64 = 0.1;
/// Least difference of the outcome's rate between neighbouring proposed bands.
const MIN_BAND_GAP: f64 = 0.1;

/// Whether a customer is in the half the weights are fitted on (FNV-1a of its id: the same
/// halves every run).
fn trains(id: &str) -> bool {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in id.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x100000001b3);
    }
    h.is_multiple_of(2)
}

fn value(row: &Row, key: &str) -> Option<f64> {
    row.measures
        .get(key)
        .or_else(|| row.candidates.get(key))
        .copied()
}

/// A measure's 0–100 score for `row` under the measure's (possibly fitted) normalisation.
fn score_of(row: &Row, m: &Measure) -> Option<f64> {
    if m.normalisation.ranks() {
        value(row, &m.key)
    } else {
        row.raw
            .get(&m.key)
            .and_then(|v| m.normalisation.apply(*v, None))
    }
}

/// Quantiles of a measure's values its fitted cut-offs are chosen among.
const CUT_QUANTILES: usize = 20;

/// Groups of a measure's values the likelihood is computed over: at most about this many, so
/// a fit over a million customers' amounts costs what one over a few hundred values does.
const MAX_GROUPS: usize = 400;

/// The values at the [`CUT_QUANTILES`] quantiles of `sorted` (value, cases, outcomes), lowest
/// and highest included, each once.
fn quantile_values(sorted: &[(f64, f64, f64)]) -> Vec<f64> {
    let total: f64 = sorted.iter().map(|s| s.1).sum();
    let mut cuts: Vec<f64> = Vec::new();
    let mut seen = 0.0;
    let mut next = 0;
    for (v, cases, _) in sorted {
        seen += cases;
        while next <= CUT_QUANTILES && seen >= total * next as f64 / CUT_QUANTILES as f64 {
            if cuts.last() != Some(v) {
                cuts.push(*v);
            }
            next += 1;
        }
    }
    cuts
}

/// `sorted` with runs of neighbouring values between two `cuts` merged into one group at
/// their mean, at most about [`MAX_GROUPS`] in all. A cut value keeps its own group, so every
/// group lies on one side of every candidate cut-off.
fn compress(sorted: &[(f64, f64, f64)], cuts: &[f64]) -> Vec<(f64, f64, f64)> {
    if sorted.len() <= MAX_GROUPS {
        return sorted.to_vec();
    }
    let per = sorted.len().div_ceil(MAX_GROUPS);
    let mut out = Vec::with_capacity(MAX_GROUPS + cuts.len() * 2);
    // (value × cases, cases, outcomes, values merged)
    let mut run = (0.0, 0.0, 0.0, 0);
    fn flush(run: &mut (f64, f64, f64, usize), out: &mut Vec<(f64, f64, f64)>) {
        if run.3 > 0 {
            out.push((run.0 / run.1, run.1, run.2));
        }
        *run = (0.0, 0.0, 0.0, 0);
    }
    for &(v, cases, outcomes) in sorted {
        if cuts.binary_search_by(|c| c.total_cmp(&v)).is_ok() {
            flush(&mut run, &mut out);
            out.push((v, cases, outcomes));
            continue;
        }
        run = (
            run.0 + v * cases,
            run.1 + cases,
            run.2 + outcomes,
            run.3 + 1,
        );
        if run.3 == per {
            flush(&mut run, &mut out);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// `m`'s normalisation with its cut-offs (a range's ends, or the good and average bands)
/// chosen among the quantiles of its values on `train`, keeping its direction, where its
/// shortfall alone tells the outcome best; a percentile, or a measure whose configured
/// cut-offs tell as much, stays as it is.
fn fitted_normalisation(train: &[&Row], m: &Measure) -> Normalisation {
    let configured = m.normalisation;
    if configured.ranks() {
        return configured;
    }
    let mut values: BTreeMap<u64, (f64, f64, f64)> = BTreeMap::new();
    for r in train {
        if let Some(v) = r.raw.get(&m.key).filter(|v| v.is_finite()) {
            let e = values.entry(v.to_bits()).or_insert((*v, 0.0, 0.0));
            e.1 += 1.0;
            e.2 += f64::from(u8::from(r.outcome));
        }
    }
    let mut sorted: Vec<(f64, f64, f64)> = values.into_values().collect();
    if sorted.len() < 2 {
        return configured;
    }
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let cuts = quantile_values(&sorted);
    let sorted = compress(&sorted, &cuts);
    let likelihood = |n: Normalisation| -> f64 {
        let groups: Vec<ShortfallGroup> = sorted
            .iter()
            .filter_map(|&(v, cases, outcomes)| {
                Some(ShortfallGroup {
                    x: 1.0 - n.apply(v, None)? / 100.0,
                    cases,
                    outcomes,
                })
            })
            .collect();
        shortfall_likelihood(&groups)
    };
    let mut best = (likelihood(configured), configured);
    for (i, low) in cuts.iter().enumerate() {
        for high in &cuts[i + 1..] {
            let (low, high) = (*low, *high);
            let candidate = match configured {
                Normalisation::Linear { worst, best } if best >= worst => Normalisation::Linear {
                    worst: low,
                    best: high,
                },
                Normalisation::Linear { .. } => Normalisation::Linear {
                    worst: high,
                    best: low,
                },
                Normalisation::Bands {
                    higher_is_better: true,
                    ..
                } => Normalisation::Bands {
                    good: high,
                    average: low,
                    higher_is_better: true,
                },
                Normalisation::Bands { .. } => Normalisation::Bands {
                    good: low,
                    average: high,
                    higher_is_better: false,
                },
                Normalisation::Percentile { .. } => return configured,
            };
            let l = likelihood(candidate);
            if l > best.0 + 1e-9 {
                best = (l, candidate);
            }
        }
    }
    best.1
}

fn auc_of<'r>(
    rows: impl Iterator<Item = &'r Row>,
    score: impl Fn(&Row) -> Option<f64>,
) -> Option<f64> {
    let cases: Vec<Case> = rows
        .filter_map(|r| {
            Some(Case {
                risk: -score(r)?,
                outcome: r.outcome,
            })
        })
        .collect();
    stats::auc(&cases).map(|a| a.auc)
}

fn normalise_toml(n: Normalisation) -> String {
    match n {
        Normalisation::Linear { worst, best } => {
            format!("{{ linear = {{ worst = {worst:?}, best = {best:?} }} }}")
        }
        Normalisation::Bands {
            good,
            average,
            higher_is_better,
        } => format!(
            "{{ bands = {{ good = {good:?}, average = {average:?}, higher_is_better = {higher_is_better} }} }}"
        ),
        Normalisation::Percentile { higher_is_better } => {
            format!("{{ percentile = {{ higher_is_better = {higher_is_better} }} }}")
        }
    }
}

/// Fits a card on `rows` from `measures` (each with its group: the card's, then the
/// candidates'), named after `as_of` and `outcome`.
pub(super) fn fit(
    rows: &[Row],
    measures: &[(String, Measure)],
    as_of: &str,
    outcome: &str,
) -> pb::CardFit {
    let (train, test): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| trains(&r.id));
    let mut dropped = Vec::new();
    // Measures enough customers have; a measure most customers lack cannot be judged.
    let usable: Vec<&(String, Measure)> = measures
        .iter()
        .filter(|(_, m)| {
            let have = train.iter().filter(|r| value(r, &m.key).is_some()).count();
            let enough = have * 2 >= train.len().max(1);
            if !enough {
                dropped.push(pb::DroppedMeasure {
                    key: m.key.clone(),
                    reason: format!("{have} of {} customers have it", train.len()),
                });
            }
            enough
        })
        .collect();
    // Cut-offs first, each measure on its own; the weights then combine the shapes chosen.
    let shaped: Vec<(String, Measure)> = usable
        .iter()
        .map(|(g, m)| {
            let mut m = m.clone();
            m.normalisation = fitted_normalisation(&train, &m);
            (g.clone(), m)
        })
        .collect();
    let usable: Vec<&(String, Measure)> = shaped.iter().collect();
    let means: Vec<f64> = usable
        .iter()
        .map(|(_, m)| {
            let v: Vec<f64> = train.iter().filter_map(|r| score_of(r, m)).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect();
    let x: Vec<Vec<f64>> = train
        .iter()
        .map(|r| {
            usable
                .iter()
                .zip(&means)
                .map(|((_, m), mean)| 1.0 - score_of(r, m).unwrap_or(*mean) / 100.0)
                .collect()
        })
        .collect();
    let y: Vec<bool> = train.iter().map(|r| r.outcome).collect();
    let fitted = nonnegative_logistic(&x, &y);
    let total: f64 = fitted.weights.iter().sum();
    let mut kept: Vec<(&String, &Measure, f64)> = Vec::new();
    for ((group, m), w) in usable.iter().map(|p| (&p.0, &p.1)).zip(&fitted.weights) {
        let auc = auc_of(test.iter().copied(), |r| score_of(r, m));
        if *w > 1e-6 * total.max(1e-12) && total > 0.0 {
            kept.push((group, m, 100.0 * w / total));
        } else {
            dropped.push(pb::DroppedMeasure {
                key: m.key.clone(),
                reason: match auc {
                    Some(a) if a < 0.5 => {
                        format!("ranks the outcome the wrong way (held-out AUC {a:.3})")
                    }
                    Some(a) => format!("adds nothing beside the others (held-out AUC {a:.3})"),
                    None => "no outcome to judge it by".to_owned(),
                },
            });
        }
    }
    let fitted_score = |r: &Row| -> Option<f64> {
        let (mut sum, mut weight) = (0.0, 0.0);
        for (_, m, w) in &kept {
            if let Some(v) = score_of(r, m) {
                sum += w * v;
                weight += w;
            }
        }
        (weight > 0.0).then(|| sum / weight)
    };
    let best = usable
        .iter()
        .filter_map(|(_, m)| {
            Some((
                m.key.clone(),
                auc_of(test.iter().copied(), |r| score_of(r, m))?,
            ))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or_default();
    let train_scores: Vec<(f64, bool)> = train
        .iter()
        .filter_map(|r| Some((fitted_score(r)?, r.outcome)))
        .collect();
    let (scores, outcomes): (Vec<f64>, Vec<bool>) = train_scores.into_iter().unzip();
    let (red, yellow) =
        band_cutoffs(&scores, &outcomes, MIN_BAND_SHARE, MIN_BAND_GAP).unwrap_or((50.0, 75.0));
    let labelled: Vec<(Case, &str)> = test
        .iter()
        .filter_map(|r| {
            let s = fitted_score(r)?;
            let band = if s <= red {
                "red"
            } else if s <= yellow {
                "yellow"
            } else {
                "green"
            };
            Some((
                Case {
                    risk: -s,
                    outcome: r.outcome,
                },
                band,
            ))
        })
        .collect();
    let bands = stats::by_group(&labelled, &["red", "yellow", "green"])
        .into_iter()
        .map(super::rate_pb)
        .collect();
    let fitted_auc = auc_of(test.iter().copied(), fitted_score).unwrap_or(0.5);
    let card_auc = auc_of(test.iter().copied(), |r| Some(r.score)).unwrap_or(0.5);
    let toml = scorecard_toml(&kept, red, yellow, as_of, outcome, fitted_auc);
    pb::CardFit {
        train_customers: train.len() as u64,
        test_customers: test.len() as u64,
        fitted_auc,
        card_auc,
        best_measure: best.0,
        best_measure_auc: best.1,
        measures: kept
            .iter()
            .map(|(group, m, w)| pb::FittedMeasure {
                key: m.key.clone(),
                group: (*group).clone(),
                weight: *w,
                auc: auc_of(test.iter().copied(), |r| score_of(r, m)).unwrap_or(0.5),
                normalise: normalise_toml(m.normalisation),
            })
            .collect(),
        dropped,
        red,
        yellow,
        bands,
        scorecard_toml: toml,
    }
}

/// The fitted card as a scorecard: the kept measures in their groups (a group weighs what
/// its measures do, so the score is the fitted weighted mean), the proposed bands.
fn scorecard_toml(
    kept: &[(&String, &Measure, f64)],
    red: f64,
    yellow: f64,
    as_of: &str,
    outcome: &str,
    auc: f64,
) -> String {
    let mut groups: BTreeMap<&str, Vec<(&Measure, f64)>> = BTreeMap::new();
    for (g, m, w) in kept {
        groups.entry(g.as_str()).or_default().push((m, *w));
    }
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Fitted by `rapport backtest --fit` as of {as_of} to the outcome {outcome}; held-out AUC {auc:.3}.\n"
    );
    let _ = writeln!(s, "name = \"fitted-{as_of}\"");
    let _ = writeln!(
        s,
        "description = \"Weights fitted to {outcome} as of {as_of}.\"\n\n[bands]\nred = {red:?}\nyellow = {yellow:?}"
    );
    for (group, measures) in groups {
        let weight: f64 = measures.iter().map(|(_, w)| w).sum();
        let _ = writeln!(
            s,
            "\n[[groups]]\nname = \"{group}\"\nweight = {:.2}",
            weight
        );
        for (m, w) in measures {
            let _ = writeln!(
                s,
                "\n[[groups.measures]]\nindicator = \"{}\"",
                m.indicator.name()
            );
            if m.indicator.windowed() {
                let _ = writeln!(s, "window_days = {}", m.window_days);
            }
            let _ = writeln!(
                s,
                "weight = {w:.2}\nnormalise = {}",
                normalise_toml(m.normalisation)
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_are_stable_and_about_even() {
        let train = (0..10_000).filter(|i| trains(&i.to_string())).count();
        assert!((4_700..5_300).contains(&train), "{train}");
        assert_eq!(trains("42"), trains("42"));
    }

    fn row(id: usize, key: &str, raw: f64, outcome: bool) -> Row {
        Row {
            id: id.to_string(),
            score: 50.0,
            band: rapport_domain::scorecard::Band::Yellow,
            outcome,
            measures: BTreeMap::new(),
            candidates: BTreeMap::new(),
            raw: [(key.to_owned(), raw)].into(),
            p_alive: None,
            expected_purchases: None,
            recency_days: None,
            rfm: 0,
            repeat: false,
            tier: None,
            stage: None,
        }
    }

    fn measure(toml_normalise: &str, indicator: &str) -> Measure {
        let text = format!(
            "name = \"t\"\n[[groups]]\nname = \"g\"\nweight = 1\n[[groups.measures]]\n\
             indicator = \"{indicator}\"\nweight = 1\nnormalise = {toml_normalise}\n"
        );
        let set = ScorecardSet::from_toml(&text).unwrap_or_else(|e| panic!("{e}"));
        set.card_for(None, None)
            .measures()
            .next()
            .unwrap()
            .1
            .clone()
    }

    #[test]
    fn cut_offs_move_to_where_the_outcome_changes_and_keep_their_direction() {
        // Days since the last order, 0 to 299: the outcome in 1 of 5 up to 119 days, in 9 of
        // 10 beyond; the configured range (180 to 0) misses the change.
        let rows: Vec<Row> = (0..3_000)
            .map(|i| {
                let days = (i % 300) as f64;
                let outcome = if days < 120.0 {
                    i % 5 == 0
                } else {
                    i % 10 != 0
                };
                row(i, "recency_days", days, outcome)
            })
            .collect();
        let train: Vec<&Row> = rows.iter().collect();
        let m = measure("{ linear = { worst = 180, best = 0 } }", "recency_days");
        let Normalisation::Linear { worst, best } = fitted_normalisation(&train, &m) else {
            panic!("a range stays a range");
        };
        assert!(best < worst, "fewer days stay better: {best}..{worst}");
        assert!(
            (90.0..=150.0).contains(&worst) && best >= 90.0,
            "the range closes in on 120 days: best {best}, worst {worst}"
        );

        // Orders: the outcome in 9 of 10 below 3 orders, 1 of 10 from 3.
        let m = measure(
            "{ bands = { good = 6, average = 5, higher_is_better = true } }",
            "orders",
        );
        let rows: Vec<Row> = (0..2_000)
            .map(|i| {
                let orders = (i % 8) as f64;
                let outcome = if orders < 3.0 {
                    i % 10 != 0
                } else {
                    i % 10 == 0
                };
                row(i, &m.key, orders, outcome)
            })
            .collect();
        let train: Vec<&Row> = rows.iter().collect();
        let fitted = fitted_normalisation(&train, &m);
        let Normalisation::Bands {
            good,
            average,
            higher_is_better,
        } = fitted
        else {
            panic!("bands stay bands");
        };
        assert!(higher_is_better);
        assert_eq!(average, 3.0, "{fitted:?}");
        assert!(good > average, "{fitted:?}");
    }

    #[test]
    fn many_values_are_fitted_in_groups_that_keep_the_cut_offs_apart() {
        let sorted: Vec<(f64, f64, f64)> = (0..10_000).map(|v| (v as f64, 1.0, 0.0)).collect();
        let cuts = quantile_values(&sorted);
        assert_eq!(cuts.len(), CUT_QUANTILES + 1, "{cuts:?}");
        assert_eq!((cuts[0], cuts[CUT_QUANTILES]), (0.0, 9_999.0));
        let groups = compress(&sorted, &cuts);
        assert!(
            groups.len() <= MAX_GROUPS + 2 * cuts.len(),
            "{}",
            groups.len()
        );
        assert_eq!(groups.iter().map(|g| g.1).sum::<f64>(), 10_000.0);
        for c in &cuts {
            assert!(
                groups.iter().any(|g| g.0 == *c),
                "cut {c} has its own group"
            );
        }
        // No merged group straddles a cut: its mean lies between the same two cuts as its
        // values, which are neighbours.
        assert!(groups.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn a_percentile_keeps_its_normalisation() {
        let m = measure("{ percentile = { higher_is_better = true } }", "monetary");
        let rows: Vec<Row> = (0..100)
            .map(|i| row(i, "monetary", i as f64, i < 50))
            .collect();
        let train: Vec<&Row> = rows.iter().collect();
        assert_eq!(fitted_normalisation(&train, &m), m.normalisation);
    }

    #[test]
    fn a_written_card_parses_back_with_its_weights() {
        let set = candidates();
        let card = set.card_for(None, None);
        let measures: Vec<(String, &Measure)> =
            card.measures().map(|(g, m)| (g.to_owned(), m)).collect();
        let kept: Vec<(&String, &Measure, f64)> =
            measures.iter().map(|(g, m)| (g, *m, 25.0)).collect();
        let toml = scorecard_toml(&kept, 40.0, 70.0, "1997-10-01", "no-purchase", 0.8);
        let parsed = ScorecardSet::from_toml(&toml).unwrap_or_else(|e| panic!("{e}\n{toml}"));
        let card = parsed.card_for(None, None);
        assert_eq!(card.measures().count(), 4);
        assert_eq!(card.bands.red, 40.0);
    }
}
