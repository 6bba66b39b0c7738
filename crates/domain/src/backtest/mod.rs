//! Whether a score predicts an outcome, from (risk, outcome) pairs: how well it ranks (AUC with
//! a confidence interval, the ROC curve), the outcome's rate by decile of risk and by group
//! (a band), and how well a probability calibrated on it matches what happened (a
//! reliability table and the Brier score). Pure arithmetic; the caller says which way a value
//! points (a health score's risk is its negation).

pub mod fit;
pub mod svg;
#[cfg(test)]
mod tests;

/// One customer: how much at risk a value says it is (higher: more likely the outcome), and
/// whether the outcome happened.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Case {
    pub risk: f64,
    pub outcome: bool,
}

/// The area under the ROC curve with its 95 % confidence interval (Hanley and McNeil).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Auc {
    pub auc: f64,
    pub low: f64,
    pub high: f64,
    pub positives: usize,
    pub negatives: usize,
}

/// The probability that a case with the outcome is ranked riskier than one without (ties
/// count half), from midranks; `None` when either kind is missing or a risk is not finite.
pub fn auc(cases: &[Case]) -> Option<Auc> {
    if cases.iter().any(|c| !c.risk.is_finite()) {
        return None;
    }
    let positives = cases.iter().filter(|c| c.outcome).count();
    let negatives = cases.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    let mut order: Vec<&Case> = cases.iter().collect();
    order.sort_by(|a, b| a.risk.total_cmp(&b.risk));
    // Sum of the positives' midranks (1-based).
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && order[j + 1].risk == order[i].risk {
            j += 1;
        }
        let midrank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += midrank * order[i..=j].iter().filter(|c| c.outcome).count() as f64;
        i = j + 1;
    }
    let (p, n) = (positives as f64, negatives as f64);
    let a = (rank_sum - p * (p + 1.0) / 2.0) / (p * n);
    let q1 = a / (2.0 - a);
    let q2 = 2.0 * a * a / (1.0 + a);
    let variance = (a * (1.0 - a) + (p - 1.0) * (q1 - a * a) + (n - 1.0) * (q2 - a * a)) / (p * n);
    let half = 1.96 * variance.max(0.0).sqrt();
    Some(Auc {
        auc: a,
        low: (a - half).max(0.0),
        high: (a + half).min(1.0),
        positives,
        negatives,
    })
}

/// A point of the ROC curve: the share of cases without the outcome and of those with it at
/// or above a risk threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RocPoint {
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// The ROC curve from (0, 0) to (1, 1), one point per distinct risk, thinned to about
/// `max_points` (the first and last kept).
pub fn roc(cases: &[Case], max_points: usize) -> Vec<RocPoint> {
    let positives = cases.iter().filter(|c| c.outcome).count().max(1) as f64;
    let negatives = cases.iter().filter(|c| !c.outcome).count().max(1) as f64;
    let mut order: Vec<&Case> = cases.iter().collect();
    order.sort_by(|a, b| b.risk.total_cmp(&a.risk));
    let mut points = vec![RocPoint {
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    }];
    let (mut tp, mut fp) = (0.0, 0.0);
    for (i, case) in order.iter().enumerate() {
        if case.outcome {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_its_risk = order.get(i + 1).is_none_or(|next| next.risk != case.risk);
        if last_of_its_risk {
            points.push(RocPoint {
                false_positive_rate: fp / negatives,
                true_positive_rate: tp / positives,
            });
        }
    }
    thin(points, max_points)
}

fn thin(points: Vec<RocPoint>, max_points: usize) -> Vec<RocPoint> {
    if points.len() <= max_points.max(2) {
        return points;
    }
    let step = points.len() as f64 / (max_points.max(2) - 1) as f64;
    let last = points.len() - 1;
    let mut kept: Vec<RocPoint> = (0..max_points.max(2) - 1)
        .map(|k| points[((k as f64 * step) as usize).min(last)])
        .collect();
    kept.push(points[last]);
    kept.dedup();
    kept
}

/// The outcome among a group of cases.
#[derive(Debug, Clone, PartialEq)]
pub struct Rate {
    pub label: String,
    pub cases: usize,
    pub outcomes: usize,
    /// `outcomes / cases`.
    pub rate: f64,
    /// The rate over the rate of all cases.
    pub lift: f64,
}

fn rate(label: String, cases: usize, outcomes: usize, overall: f64) -> Rate {
    let r = if cases == 0 {
        0.0
    } else {
        outcomes as f64 / cases as f64
    };
    Rate {
        label,
        cases,
        outcomes,
        rate: r,
        lift: if overall > 0.0 { r / overall } else { 0.0 },
    }
}

/// The share of cases with the outcome.
pub fn overall_rate(cases: &[Case]) -> f64 {
    if cases.is_empty() {
        0.0
    } else {
        cases.iter().filter(|c| c.outcome).count() as f64 / cases.len() as f64
    }
}

/// The outcome's rate in each tenth of the cases by risk, riskiest first (decile 1); cases of
/// one risk stay in one decile, so deciles may differ in size.
pub fn deciles(cases: &[Case]) -> Vec<Rate> {
    let overall = overall_rate(cases);
    let mut order: Vec<&Case> = cases.iter().collect();
    order.sort_by(|a, b| b.risk.total_cmp(&a.risk));
    let n = order.len();
    let mut out = Vec::new();
    let mut start = 0;
    for d in 1..=10 {
        let mut end = (n * d).div_ceil(10).max(start);
        while end < n && end > 0 && order[end].risk == order[end - 1].risk {
            end += 1;
        }
        if end > start {
            let slice = &order[start..end];
            let outcomes = slice.iter().filter(|c| c.outcome).count();
            out.push(rate(format!("{d}"), slice.len(), outcomes, overall));
        }
        start = end;
        if start >= n {
            break;
        }
    }
    out
}

/// The outcome's rate in each group, in the order of `groups` (labels of the cases'
/// `group`; cases of no listed group are left out).
pub fn by_group(cases: &[(Case, &str)], groups: &[&str]) -> Vec<Rate> {
    let overall = overall_rate(&cases.iter().map(|(c, _)| *c).collect::<Vec<_>>());
    groups
        .iter()
        .map(|g| {
            let members: Vec<&Case> = cases
                .iter()
                .filter(|(_, l)| l == g)
                .map(|(c, _)| c)
                .collect();
            let outcomes = members.iter().filter(|c| c.outcome).count();
            rate((*g).to_owned(), members.len(), outcomes, overall)
        })
        .collect()
}

/// A logistic curve mapping a risk to the probability of the outcome, fitted by maximum
/// likelihood (Platt scaling).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Calibration {
    pub intercept: f64,
    pub slope: f64,
}

impl Calibration {
    /// The calibrated probability of the outcome at `risk`.
    pub fn probability(&self, risk: f64) -> f64 {
        1.0 / (1.0 + (-(self.intercept + self.slope * risk)).exp())
    }
}

/// Fits a [`Calibration`] by Newton's method on the log-likelihood (risks standardised
/// first, so the steps are well conditioned); `None` without both outcomes.
pub fn calibrate(cases: &[Case]) -> Option<Calibration> {
    let n = cases.len() as f64;
    let positives = cases.iter().filter(|c| c.outcome).count();
    if positives == 0 || positives == cases.len() {
        return None;
    }
    let mean = cases.iter().map(|c| c.risk).sum::<f64>() / n;
    let sd = (cases.iter().map(|c| (c.risk - mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-12);
    let (mut a, mut b) = ((positives as f64 / (n - positives as f64)).ln(), 0.0);
    for _ in 0..50 {
        let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for c in cases {
            let x = (c.risk - mean) / sd;
            let p = 1.0 / (1.0 + (-(a + b * x)).exp());
            let y = if c.outcome { 1.0 } else { 0.0 };
            ga += y - p;
            gb += (y - p) * x;
            let w = p * (1.0 - p);
            haa += w;
            hab += w * x;
            hbb += w * x * x;
        }
        let det = haa * hbb - hab * hab;
        if det.abs() < 1e-12 {
            break;
        }
        let (da, db) = ((hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det);
        a += da;
        b += db;
        if da.abs() + db.abs() < 1e-10 {
            break;
        }
    }
    // Back to the risk's own scale.
    Some(Calibration {
        intercept: a - b * mean / sd,
        slope: b / sd,
    })
}

/// One row of a reliability table: the cases whose calibrated probability fell in a tenth.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    /// The bin's range of predicted probability, `[from, to)` (the last includes 1).
    pub from: f64,
    pub to: f64,
    pub cases: usize,
    pub mean_predicted: f64,
    pub observed: f64,
}

/// The reliability table (ten equal bins of predicted probability, empty ones left out) and
/// the Brier score of `calibration` on `cases`.
pub fn reliability(cases: &[Case], calibration: &Calibration) -> (Vec<Reliability>, f64) {
    let mut bins = vec![(0usize, 0.0f64, 0usize); 10];
    let mut brier = 0.0;
    for c in cases {
        let p = calibration.probability(c.risk);
        let y = if c.outcome { 1.0 } else { 0.0 };
        brier += (p - y).powi(2);
        let bin = ((p * 10.0) as usize).min(9);
        bins[bin].0 += 1;
        bins[bin].1 += p;
        bins[bin].2 += usize::from(c.outcome);
    }
    let table = bins
        .into_iter()
        .enumerate()
        .filter(|(_, (n, _, _))| *n > 0)
        .map(|(i, (n, sum, outcomes))| Reliability {
            from: i as f64 / 10.0,
            to: (i + 1) as f64 / 10.0,
            cases: n,
            mean_predicted: sum / n as f64,
            observed: outcomes as f64 / n as f64,
        })
        .collect();
    (table, brier / cases.len().max(1) as f64)
}
