//! Intervention effects: treated alerts against the random holdout, per action and tier, with
//! 95 % confidence intervals for the uplift in health, retention and spend, and the ROI.
//!
//! A treated alert is one outside the holdout with a recorded action; its comparison group is
//! the holdout alerts of the same tier, whatever action they might have had. Alerts outside the
//! holdout with no recorded action belong to neither group.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::tier::Tier;

/// The 0.975 quantile of the standard normal: two-sided 95 % intervals.
const Z_975: f64 = 1.959_963_984_540_054;

/// One alert's outcome over the window after it opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The intervention recorded (`None` for control).
    pub action: Option<String>,
    /// The customer's tier name at open ("vip", "gold", … "regular").
    pub tier: String,
    /// In the holdout group.
    pub control: bool,
    /// Change in health score over the window, in points.
    pub health_change: f64,
    /// Whether the customer was still retained at the window's end.
    pub retained: bool,
    /// Change in spend over the window, in currency.
    pub spend_change: f64,
    /// Recorded intervention cost (0 for control); a cost that is not a finite number counts as 0.
    pub cost: f64,
}

/// Difference of means (treated − control) with its 95 % confidence interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// Mean of the treated group (a share in [0, 1] for retention).
    pub treated: f64,
    /// Mean of the control group (a share in [0, 1] for retention).
    pub control: f64,
    /// `treated − control`.
    pub difference: f64,
    /// Lower end of the 95 % interval for the difference.
    pub low: f64,
    /// Upper end of the 95 % interval for the difference.
    pub high: f64,
}

impl Estimate {
    /// Whether the interval excludes 0, i.e. the difference is significant at the 5 % level.
    pub fn significant(&self) -> bool {
        self.low > 0.0 || self.high < 0.0
    }
}

/// The measured effect of one action on one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct EffectRow {
    /// The intervention measured.
    pub action: String,
    /// The tier it was measured on.
    pub tier: String,
    /// Number of treated alerts (this action, this tier, outside the holdout).
    pub treated: usize,
    /// Number of holdout alerts of this tier.
    pub control: usize,
    /// Uplift in health change; `None` when either group has < 2 finite values.
    pub health: Option<Estimate>,
    /// Uplift in the retained share (a difference of shares, as a fraction); `None` when either
    /// group has < 2 members.
    pub retention: Option<Estimate>,
    /// Uplift in spend change per alert; `None` when either group has < 2 finite values.
    pub spend: Option<Estimate>,
    /// Total recorded cost of the treated alerts.
    pub cost: f64,
    /// `(spend.difference × treated − cost) / cost`; `None` when the cost is not positive or
    /// there is no spend estimate.
    pub roi: Option<f64>,
}

/// Compares treated and control per (action, tier): treated = outcomes with that action and tier
/// (not control); control = control outcomes of the same tier. Rows are sorted by action, then
/// by tier rank (vip, gold, silver, bronze, regular, then other names alphabetically).
pub fn report(outcomes: &[Outcome]) -> Vec<EffectRow> {
    let mut treated: BTreeMap<(&str, &str), Vec<&Outcome>> = BTreeMap::new();
    let mut control: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for outcome in outcomes {
        if outcome.control {
            control.entry(&outcome.tier).or_default().push(outcome);
        } else if let Some(action) = &outcome.action {
            treated
                .entry((action.as_str(), outcome.tier.as_str()))
                .or_default()
                .push(outcome);
        }
    }

    let mut rows: Vec<EffectRow> = treated
        .into_iter()
        .map(|((action, tier), group)| {
            let holdout = control.get(tier).map_or(&[][..], Vec::as_slice);
            row(action, tier, &group, holdout)
        })
        .collect();
    rows.sort_by(|a, b| {
        a.action
            .cmp(&b.action)
            .then_with(|| tier_order(&a.tier, &b.tier))
    });
    rows
}

/// One row from its treated and control alerts.
fn row(action: &str, tier: &str, treated: &[&Outcome], control: &[&Outcome]) -> EffectRow {
    let values = |group: &[&Outcome], f: fn(&Outcome) -> f64| -> Vec<f64> {
        group
            .iter()
            .map(|o| f(o))
            .filter(|v| v.is_finite())
            .collect()
    };
    let health = welch(
        &values(treated, |o| o.health_change),
        &values(control, |o| o.health_change),
    );
    let spend = welch(
        &values(treated, |o| o.spend_change),
        &values(control, |o| o.spend_change),
    );
    let retained = |group: &[&Outcome]| group.iter().filter(|o| o.retained).count();
    let retention = newcombe(
        retained(treated),
        treated.len(),
        retained(control),
        control.len(),
    );
    let cost: f64 = treated
        .iter()
        .map(|o| if o.cost.is_finite() { o.cost } else { 0.0 })
        .sum();
    let roi = spend
        .filter(|_| cost > 0.0)
        .map(|s| (s.difference * treated.len() as f64 - cost) / cost);
    EffectRow {
        action: action.to_owned(),
        tier: tier.to_owned(),
        treated: treated.len(),
        control: control.len(),
        health,
        retention,
        spend,
        cost,
        roi,
    }
}

/// Known tiers highest first, then other names alphabetically.
fn tier_order(a: &str, b: &str) -> Ordering {
    let rank = |name: &str| {
        Tier::from_name(name)
            .and_then(|t| Tier::DESCENDING.iter().position(|d| *d == t))
            .unwrap_or(Tier::DESCENDING.len())
    };
    rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
}

/// Mean and unbiased sample variance (two passes, for accuracy); `n` must be ≥ 2.
fn mean_variance(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (mean, squares / (n - 1.0))
}

/// Welch's t interval for the difference of means, `None` when a group has < 2 values.
fn welch(treated: &[f64], control: &[f64]) -> Option<Estimate> {
    if treated.len() < 2 || control.len() < 2 {
        return None;
    }
    let (m1, v1) = mean_variance(treated);
    let (m2, v2) = mean_variance(control);
    let difference = m1 - m2;
    let a = v1 / treated.len() as f64;
    let b = v2 / control.len() as f64;
    let se2 = a + b;
    let half = if se2 == 0.0 {
        0.0
    } else {
        let nu = se2 * se2
            / (a * a / (treated.len() as f64 - 1.0) + b * b / (control.len() as f64 - 1.0));
        t_975(nu) * se2.sqrt()
    };
    Some(Estimate {
        treated: m1,
        control: m2,
        difference,
        low: difference - half,
        high: difference + half,
    })
}

/// The 0.975 quantile of Student's t with `nu` degrees of freedom; infinite (an interval that
/// says nothing) when `nu` is not usable, as after an overflow.
fn t_975(nu: f64) -> f64 {
    if nu == f64::INFINITY {
        return Z_975;
    }
    match StudentsT::new(0.0, 1.0, nu) {
        Ok(t) => t.inverse_cdf(0.975),
        Err(_) => f64::INFINITY,
    }
}

/// Wilson score interval for a proportion `x / n`, `n` ≥ 1.
fn wilson(x: usize, n: usize) -> (f64, f64) {
    let n = n as f64;
    let p = x as f64 / n;
    let z2 = Z_975 * Z_975;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = Z_975 / denominator * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Interval for the difference of two proportions `x1/n1 − x2/n2`, `None` when a group has < 2
/// members.
///
/// Newcombe's hybrid score interval (method 10 of Newcombe 1998, no continuity correction)
/// rather than the Wald interval: retention shares near 1 are the usual case here, and at a share
/// of 0 or 1 the Wald variance p(1 − p)/n vanishes, so Wald reports a zero-width, falsely
/// certain interval (and overshoots [−1, 1] near the edges); combining the two Wilson intervals
/// keeps a sensible width and coverage close to 95 % even there and for small groups.
fn newcombe(x1: usize, n1: usize, x2: usize, n2: usize) -> Option<Estimate> {
    if n1 < 2 || n2 < 2 {
        return None;
    }
    let p1 = x1 as f64 / n1 as f64;
    let p2 = x2 as f64 / n2 as f64;
    let (l1, u1) = wilson(x1, n1);
    let (l2, u2) = wilson(x2, n2);
    let difference = p1 - p2;
    let low = difference - ((p1 - l1).powi(2) + (u2 - p2).powi(2)).sqrt();
    let high = difference + ((u1 - p1).powi(2) + (p2 - l2).powi(2)).sqrt();
    Some(Estimate {
        treated: p1,
        control: p2,
        difference,
        low,
        high,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// splitmix64, with Box–Muller for normal draws: deterministic and dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform in (0, 1).
        fn uniform(&mut self) -> f64 {
            ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
        }

        fn normal(&mut self, mean: f64, sd: f64) -> f64 {
            let (u1, u2) = (self.uniform(), self.uniform());
            mean + sd * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
        }
    }

    fn outcome(action: Option<&str>, tier: &str, health: f64, retained: bool) -> Outcome {
        Outcome {
            action: action.map(str::to_owned),
            tier: tier.to_owned(),
            control: action.is_none(),
            health_change: health,
            retained,
            spend_change: health,
            cost: if action.is_some() { 1.0 } else { 0.0 },
        }
    }

    /// 2,000 treated ("call", gold) and 2,000 control (gold) alerts; treated get the uplift.
    ///
    /// Each 95 % interval misses its true value for about one seed in twenty, so one of three
    /// does for about one seed in seven (seed 42, for one, misses the planted health uplift by
    /// 3 standard errors); the tests keep fixed seeds for which all three cover it, a different
    /// one for each test so that the two populations do not share their noise.
    fn population(seed: u64, health: f64, retention: f64, spend: f64) -> Vec<Outcome> {
        let mut rng = Rng(seed);
        let mut outcomes = Vec::new();
        for i in 0..4000 {
            let treated = i % 2 == 0;
            let (dh, dr, ds) = if treated {
                (health, retention, spend)
            } else {
                (0.0, 0.0, 0.0)
            };
            outcomes.push(Outcome {
                action: treated.then(|| "call".to_owned()),
                tier: "gold".to_owned(),
                control: !treated,
                health_change: rng.normal(dh, 10.0),
                retained: rng.uniform() < 0.70 + dr,
                spend_change: rng.normal(ds, 50.0),
                cost: if treated { 5.0 } else { 0.0 },
            });
        }
        outcomes
    }

    fn contains(e: &Estimate, value: f64) -> bool {
        e.low <= value && value <= e.high
    }

    #[test]
    fn planted_uplift_is_recovered_and_significant() {
        let rows = report(&population(1, 5.0, 0.10, 20.0));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.action.as_str(), row.tier.as_str()), ("call", "gold"));
        assert_eq!((row.treated, row.control), (2000, 2000));
        let health = row.health.expect("health estimate");
        let retention = row.retention.expect("retention estimate");
        let spend = row.spend.expect("spend estimate");
        for (e, truth) in [(health, 5.0), (retention, 0.10), (spend, 20.0)] {
            assert!(contains(&e, truth), "{truth} outside {e:?}");
            assert!(e.significant(), "{e:?}");
        }
        assert!((row.cost - 10_000.0).abs() < 1e-9);
        // ROI is linear in the spend difference, so the spend interval maps onto an ROI range,
        // which must hold both the estimate and the planted (20 × 2000 − 10000) / 10000 = 3.
        let roi = row.roi.expect("roi");
        let implied = |d: f64| (d * 2000.0 - 10_000.0) / 10_000.0;
        assert!(implied(spend.low) <= roi && roi <= implied(spend.high));
        assert!(implied(spend.low) <= 3.0 && 3.0 <= implied(spend.high));
        assert!((roi - 3.0).abs() < 0.7, "roi {roi}");
    }

    #[test]
    fn no_uplift_gives_intervals_around_zero() {
        let rows = report(&population(2, 0.0, 0.0, 0.0));
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        for e in [row.health, row.retention, row.spend] {
            let e = e.expect("estimate");
            assert!(contains(&e, 0.0), "{e:?}");
            assert!(!e.significant());
        }
    }

    #[test]
    fn rows_per_action_and_tier_in_documented_order() {
        let mut outcomes = Vec::new();
        for (action, tier, n) in [
            ("email", "vip", 3),
            ("call", "regular", 4),
            ("email", "regular", 2),
            ("call", "vip", 5),
        ] {
            for i in 0..n {
                outcomes.push(outcome(Some(action), tier, i as f64, i % 2 == 0));
            }
        }
        for i in 0..6 {
            outcomes.push(outcome(None, "vip", i as f64, true));
        }
        for i in 0..7 {
            outcomes.push(outcome(None, "regular", -(i as f64), false));
        }
        // Outside the holdout but no action recorded: in neither group.
        let mut stray = outcome(Some("call"), "vip", 0.0, true);
        stray.action = None;
        outcomes.push(stray);
        // A tier with treated alerts but no holdout, and an unknown tier name.
        outcomes.push(outcome(Some("call"), "platinum", 1.0, true));
        outcomes.push(outcome(Some("call"), "platinum", 2.0, true));
        outcomes.push(outcome(Some("call"), "silver", 2.0, true));

        let rows = report(&outcomes);
        let keys: Vec<(&str, &str, usize, usize)> = rows
            .iter()
            .map(|r| (r.action.as_str(), r.tier.as_str(), r.treated, r.control))
            .collect();
        assert_eq!(
            keys,
            [
                ("call", "vip", 5, 6),
                ("call", "silver", 1, 0),
                ("call", "regular", 4, 7),
                ("call", "platinum", 2, 0),
                ("email", "vip", 3, 6),
                ("email", "regular", 2, 7),
            ]
        );
        for row in &rows[..] {
            let has_estimates = row.treated >= 2 && row.control >= 2;
            assert_eq!(row.health.is_some(), has_estimates, "{row:?}");
            assert_eq!(row.retention.is_some(), has_estimates, "{row:?}");
            assert_eq!(row.spend.is_some(), has_estimates, "{row:?}");
            assert_eq!(row.roi.is_some(), has_estimates, "{row:?}");
            assert!((row.cost - row.treated as f64).abs() < 1e-12);
        }
    }

    #[test]
    fn welch_interval_matches_hand_computation() {
        // treated [1,2,3,4]: mean 2.5, s² = (2.25+0.25+0.25+2.25)/3 = 5/3
        // control [0,0,1,1]: mean 0.5, s² = (4 × 0.25)/3 = 1/3
        // se² = (5/3)/4 + (1/3)/4 = 5/12 + 1/12 = 1/2
        // ν = (1/2)² / ((5/12)²/3 + (1/12)²/3) = (1/4) / (26/432) = 54/13 ≈ 4.1538
        // interval = 2 ± t(0.975, 54/13) · √(1/2)
        let e = welch(&[1.0, 2.0, 3.0, 4.0], &[0.0, 0.0, 1.0, 1.0]).expect("estimate");
        let t = StudentsT::new(0.0, 1.0, 54.0 / 13.0)
            .unwrap()
            .inverse_cdf(0.975);
        // t(0.975, 4.15) lies between t(0.975, 5) = 2.571 and t(0.975, 4) = 2.776.
        assert!(2.571 < t && t < 2.776, "{t}");
        let half = t * 0.5_f64.sqrt();
        assert!((e.treated - 2.5).abs() < 1e-9);
        assert!((e.control - 0.5).abs() < 1e-9);
        assert!((e.difference - 2.0).abs() < 1e-9);
        assert!((e.low - (2.0 - half)).abs() < 1e-9, "{e:?}");
        assert!((e.high - (2.0 + half)).abs() < 1e-9, "{e:?}");
        assert!(e.significant());
    }

    #[test]
    fn welch_with_no_variance_is_the_point() {
        let e = welch(&[3.0, 3.0], &[1.0, 1.0, 1.0]).expect("estimate");
        assert_eq!((e.difference, e.low, e.high), (2.0, 2.0, 2.0));
        assert!(e.significant());
        let e = welch(&[1.0, 1.0], &[1.0, 1.0]).expect("estimate");
        assert_eq!((e.low, e.high), (0.0, 0.0));
        assert!(!e.significant());
        assert_eq!(welch(&[1.0], &[1.0, 2.0]), None);
        assert_eq!(welch(&[1.0, 2.0], &[]), None);
    }

    #[test]
    fn newcombe_matches_published_example_and_behaves_at_the_edges() {
        // Newcombe (1998), Statistics in Medicine 17:873–890, Table II, example (a):
        // 56/70 − 48/80, method 10 gives 0.0524 to 0.3339.
        let e = newcombe(56, 70, 48, 80).expect("estimate");
        assert!((e.difference - 0.2).abs() < 1e-12);
        assert!((e.low - 0.0524).abs() < 5e-5, "{e:?}");
        assert!((e.high - 0.3339).abs() < 5e-5, "{e:?}");
        // 0/10 − 0/20, another example of that table: −0.1611 to 0.2775, the Wilson upper ends
        // z²/(n + z²) of 0/20 and 0/10.
        let e = newcombe(0, 10, 0, 20).expect("estimate");
        assert!((e.low - -0.1611).abs() < 5e-5, "{e:?}");
        assert!((e.high - 0.2775).abs() < 5e-5, "{e:?}");
        // All retained against none retained: a wide-enough interval inside [−1, 1].
        let e = newcombe(10, 10, 0, 10).expect("estimate");
        assert!(e.low > 0.0 && e.low < 1.0 && e.high <= 1.0, "{e:?}");
        assert_eq!(newcombe(1, 1, 0, 5), None);
    }

    #[test]
    fn odd_input_does_not_panic() {
        assert!(report(&[]).is_empty());
        let mut outcomes = vec![
            outcome(Some("call"), "gold", f64::NAN, true),
            outcome(Some("call"), "gold", 1.0, true),
            outcome(Some("call"), "gold", f64::INFINITY, false),
            outcome(None, "gold", 0.0, true),
            outcome(None, "gold", 2.0, false),
        ];
        outcomes[0].cost = f64::NAN;
        outcomes[1].cost = f64::INFINITY;
        outcomes[2].cost = 0.0;
        let rows = report(&outcomes);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.treated, row.control), (3, 2));
        // Only one finite health value among the treated.
        assert_eq!(row.health, None);
        assert!(row.retention.is_some());
        assert_eq!(row.cost, 0.0);
        assert_eq!(row.roi, None);

        // Values so large that the variances overflow give an interval that says nothing.
        let e = welch(&[1e300, -1e300], &[0.0, 1.0]).expect("estimate");
        assert!(!e.significant());
    }
}
