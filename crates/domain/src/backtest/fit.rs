//! A card fitted to an outcome: non-negative weights on measures found by logistic
//! regression (each measure read as its shortfall, so that a weight can only say "falling
//! short here raises the risk": the card stays a weighted mean anyone can read), and band
//! cut-offs whose outcome rates stand apart.

/// Non-negative weights and an intercept of a logistic model of the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub intercept: f64,
    pub weights: Vec<f64>,
}

/// Fits `P(outcome) = σ(b + Σ w_j x_ij)` with every `w_j ≥ 0` by cyclic coordinate Newton
/// steps (each clamped at zero), where `x[i][j]` is measure j's shortfall for case i
/// (0 = full marks, 1 = none). A small ridge keeps weights of constant measures at zero.
pub fn nonnegative_logistic(x: &[Vec<f64>], outcome: &[bool]) -> Fitted {
    let n = x.len();
    let k = x.first().map_or(0, Vec::len);
    let y: Vec<f64> = outcome.iter().map(|o| f64::from(u8::from(*o))).collect();
    let share = (y.iter().sum::<f64>() / n.max(1) as f64).clamp(1e-6, 1.0 - 1e-6);
    let mut b = (share / (1.0 - share)).ln();
    let mut w = vec![0.0; k];
    let mut eta = vec![b; n];
    let ridge = 1e-6 * n as f64;
    for _ in 0..200 {
        let mut moved = 0.0f64;
        // The intercept, then each weight.
        for j in 0..=k {
            let (mut g, mut h) = (0.0, 0.0);
            for i in 0..n {
                let p = 1.0 / (1.0 + (-eta[i]).exp());
                let xij = if j == k { 1.0 } else { x[i][j] };
                g += (y[i] - p) * xij;
                h += p * (1.0 - p) * xij * xij;
            }
            let step = if j == k {
                g / h.max(1e-12)
            } else {
                let target = (w[j] + (g - ridge * w[j]) / (h + ridge).max(1e-12)).max(0.0);
                target - w[j]
            };
            if step == 0.0 {
                continue;
            }
            if j == k {
                b += step;
            } else {
                w[j] += step;
            }
            for i in 0..n {
                eta[i] += step * if j == k { 1.0 } else { x[i][j] };
            }
            moved = moved.max(step.abs());
        }
        if moved < 1e-9 {
            break;
        }
    }
    Fitted {
        intercept: b,
        weights: w,
    }
}

/// Cases that share one shortfall `x` (0 = full marks, 1 = none): how many, and how many of
/// them had the outcome.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShortfallGroup {
    pub x: f64,
    pub cases: f64,
    pub outcomes: f64,
}

/// The log-likelihood of the best `P(outcome) = σ(b + w·x)` with `w ≥ 0` over `groups`: how
/// much one measure's shortfall alone tells of the outcome, so that two ways of normalising
/// the same values can be compared (the larger, the better).
pub fn shortfall_likelihood(groups: &[ShortfallGroup]) -> f64 {
    let n: f64 = groups.iter().map(|g| g.cases).sum();
    let k: f64 = groups.iter().map(|g| g.outcomes).sum();
    if n <= 0.0 {
        return 0.0;
    }
    let share = (k / n).clamp(1e-6, 1.0 - 1e-6);
    let (mut b, mut w) = ((share / (1.0 - share)).ln(), 0.0f64);
    for _ in 0..100 {
        // A Newton step on (b, w), then w back to zero if it went below.
        let (mut gb, mut gw, mut hbb, mut hbw, mut hww) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for g in groups {
            let p = 1.0 / (1.0 + (-(b + w * g.x)).exp());
            let v = g.cases * p * (1.0 - p);
            gb += g.outcomes - g.cases * p;
            gw += (g.outcomes - g.cases * p) * g.x;
            hbb += v;
            hbw += v * g.x;
            hww += v * g.x * g.x;
        }
        let det = hbb * hww - hbw * hbw;
        let (db, dw) = if det > 1e-12 {
            ((hww * gb - hbw * gw) / det, (hbb * gw - hbw * gb) / det)
        } else {
            (gb / hbb.max(1e-12), 0.0)
        };
        let next_w = (w + dw).max(0.0);
        let db = if next_w == 0.0 && w + dw < 0.0 {
            // Clamped: the intercept alone, at w = 0.
            let (mut g0, mut h0) = (0.0, 0.0);
            for g in groups {
                let p = 1.0 / (1.0 + (-b).exp());
                g0 += g.outcomes - g.cases * p;
                h0 += g.cases * p * (1.0 - p);
            }
            g0 / h0.max(1e-12)
        } else {
            db
        };
        let moved = db.abs().max((next_w - w).abs());
        b += db;
        w = next_w;
        if moved < 1e-10 {
            break;
        }
    }
    groups
        .iter()
        .map(|g| {
            let eta = b + w * g.x;
            // log σ(η) = -log(1 + e^-η), computed without overflow.
            let log_p = -softplus(-eta);
            let log_q = -softplus(eta);
            g.outcomes * log_p + (g.cases - g.outcomes) * log_q
        })
        .sum()
}

fn softplus(t: f64) -> f64 {
    if t > 30.0 { t } else { t.exp().ln_1p() }
}

/// Band cut-offs (red up to the first, yellow up to the second) on 0–100 `scores`: of the
/// pairs whose bands each hold at least `min_share` of the cases and whose outcome rates
/// fall from red to green by at least `min_gap` at each step, the one that tells the most
/// (the largest spread of the bands' rates around the overall rate, weighted by their
/// sizes); when no pair keeps the gaps, the one whose smaller gap is largest. `None` when
/// the rates cannot fall at all.
pub fn band_cutoffs(
    scores: &[f64],
    outcome: &[bool],
    min_share: f64,
    min_gap: f64,
) -> Option<(f64, f64)> {
    // Cases by the least whole score at or above theirs: red up to c holds buckets 0..=c.
    let (mut count, mut hits) = ([0usize; 101], [0usize; 101]);
    for (s, o) in scores.iter().zip(outcome) {
        let b = s.ceil().clamp(0.0, 100.0) as usize;
        count[b] += 1;
        hits[b] += usize::from(*o);
    }
    let (mut cum_n, mut cum_h) = ([0usize; 102], [0usize; 102]);
    for b in 0..=100 {
        cum_n[b + 1] = cum_n[b] + count[b];
        cum_h[b + 1] = cum_h[b] + hits[b];
    }
    let total = scores.len();
    let overall = cum_h[101] as f64 / total.max(1) as f64;
    let least = ((min_share * total as f64).ceil() as usize).max(1);
    // Cases and outcomes with a bucket in lo..=hi.
    let range = |lo: usize, hi: usize| (cum_n[hi + 1] - cum_n[lo], cum_h[hi + 1] - cum_h[lo]);
    // (keeps the gaps, how much it tells or its smaller gap, the cut-offs)
    let mut best: Option<(bool, f64, (f64, f64))> = None;
    for red in 0..99 {
        for yellow in red + 1..100 {
            let bands = [
                range(0, red),
                range(red + 1, yellow),
                range(yellow + 1, 100),
            ];
            if bands.iter().any(|(n, _)| *n < least) {
                continue;
            }
            let rate = |(n, h): (usize, usize)| h as f64 / n as f64;
            let (r, y, g) = (rate(bands[0]), rate(bands[1]), rate(bands[2]));
            let gap = (r - y).min(y - g);
            if gap <= 0.0 {
                continue;
            }
            let keeps = gap >= min_gap;
            let merit = if keeps {
                bands
                    .iter()
                    .map(|b| b.0 as f64 * (rate(*b) - overall).powi(2))
                    .sum()
            } else {
                gap
            };
            let better = match best {
                None => true,
                Some((k, m, _)) => (keeps && !k) || (keeps == k && merit > m),
            };
            if better {
                best = Some((keeps, merit, (red as f64, yellow as f64)));
            }
        }
    }
    best.map(|(_, _, cuts)| cuts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_stay_non_negative_and_find_what_matters() {
        // Measure 0 drives the outcome, measure 1 is noise, measure 2 works the wrong way.
        let mut seed = 11u64;
        let mut next = || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        };
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4_000 {
            let (a, b, c) = (next(), next(), next());
            let p = 1.0 / (1.0 + (-(-1.0 + 3.0 * a - 1.5 * c)).exp());
            x.push(vec![a, b, c]);
            y.push(next() < p);
        }
        let f = nonnegative_logistic(&x, &y);
        assert!((f.weights[0] - 3.0).abs() < 0.4, "{f:?}");
        assert!(f.weights[1] < 0.3, "{f:?}");
        assert_eq!(
            f.weights[2], 0.0,
            "a measure that works the wrong way gets no weight"
        );
    }

    #[test]
    fn a_shortfall_that_tells_the_outcome_is_more_likely_than_one_that_does_not() {
        // The outcome in 80 % of the cases that fall short, in 20 % of the others.
        let telling = [
            ShortfallGroup {
                x: 1.0,
                cases: 100.0,
                outcomes: 80.0,
            },
            ShortfallGroup {
                x: 0.0,
                cases: 100.0,
                outcomes: 20.0,
            },
        ];
        // The same cases with the shortfall unrelated to the outcome.
        let blind = [
            ShortfallGroup {
                x: 1.0,
                cases: 100.0,
                outcomes: 50.0,
            },
            ShortfallGroup {
                x: 0.0,
                cases: 100.0,
                outcomes: 50.0,
            },
        ];
        let ll = |p: f64, n: f64| n * (p * p.ln() + (1.0 - p) * (1.0 - p).ln());
        // Saturated: the fit reproduces each group's rate.
        assert!((shortfall_likelihood(&telling) - 2.0 * ll(0.8, 100.0)).abs() < 1e-6);
        assert!((shortfall_likelihood(&blind) - 2.0 * ll(0.5, 100.0)).abs() < 1e-6);
        // Working the wrong way, the weight stays at zero: no better than no measure.
        let wrong: Vec<ShortfallGroup> = telling
            .iter()
            .map(|g| ShortfallGroup { x: 1.0 - g.x, ..*g })
            .collect();
        assert!((shortfall_likelihood(&wrong) - ll(0.5, 200.0)).abs() < 1e-6);
    }

    #[test]
    fn cutoffs_separate_the_bands_rates() {
        // Outcome rate 90 % below 30, 50 % from 30 to 70, 10 % above.
        let mut scores = Vec::new();
        let mut outcome = Vec::new();
        for s in 0..100 {
            for k in 0..10 {
                scores.push(s as f64 + 0.5);
                let rate = if s < 30 {
                    9
                } else if s < 70 {
                    5
                } else {
                    1
                };
                outcome.push(k < rate);
            }
        }
        let (red, yellow) = band_cutoffs(&scores, &outcome, 0.1, 0.1).unwrap();
        assert_eq!((red, yellow), (30.0, 70.0));
        assert!(band_cutoffs(&scores, &vec![true; scores.len()], 0.1, 0.1).is_none());
    }
}
