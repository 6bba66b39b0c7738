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
