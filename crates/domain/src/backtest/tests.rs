use super::*;

/// A small deterministic generator: the same cases every run.
fn lcg(seed: &mut u64) -> f64 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 11) as f64 / (1u64 << 53) as f64
}

/// Cases whose outcome follows a logistic curve of the risk (intercept -0.5, slope 2), with
/// risks rounded to tenths so that ties occur.
fn cases(n: usize) -> Vec<Case> {
    let mut seed = 7;
    (0..n)
        .map(|_| {
            let risk = (lcg(&mut seed) * 30.0).round() / 10.0 - 1.5;
            let p = 1.0 / (1.0 + (-(-0.5 + 2.0 * risk)).exp());
            Case {
                risk,
                outcome: lcg(&mut seed) < p,
            }
        })
        .collect()
}

#[test]
fn auc_is_the_share_of_rightly_ordered_pairs_ties_counting_half() {
    let cases = cases(400);
    let (mut right, mut pairs) = (0.0, 0.0);
    for p in cases.iter().filter(|c| c.outcome) {
        for n in cases.iter().filter(|c| !c.outcome) {
            pairs += 1.0;
            right += if p.risk > n.risk {
                1.0
            } else if p.risk == n.risk {
                0.5
            } else {
                0.0
            };
        }
    }
    let a = auc(&cases).unwrap();
    assert!(
        (a.auc - right / pairs).abs() < 1e-12,
        "{} vs {}",
        a.auc,
        right / pairs
    );
    assert!(a.low < a.auc && a.auc < a.high, "{a:?}");
    assert_eq!(a.positives + a.negatives, 400);
}

#[test]
fn auc_of_perfect_reversed_and_degenerate_rankings() {
    let perfect: Vec<Case> = (0..10)
        .map(|i| Case {
            risk: i as f64,
            outcome: i >= 5,
        })
        .collect();
    assert_eq!(auc(&perfect).unwrap().auc, 1.0);
    let reversed: Vec<Case> = perfect
        .iter()
        .map(|c| Case {
            risk: -c.risk,
            ..*c
        })
        .collect();
    assert_eq!(auc(&reversed).unwrap().auc, 0.0);
    let ties: Vec<Case> = perfect.iter().map(|c| Case { risk: 1.0, ..*c }).collect();
    assert_eq!(auc(&ties).unwrap().auc, 0.5);
    assert!(auc(&perfect[..5]).is_none(), "no positives");
    let mut nan = perfect.clone();
    nan[0].risk = f64::NAN;
    assert!(auc(&nan).is_none());
}

#[test]
fn the_roc_curve_climbs_from_corner_to_corner() {
    let cases = cases(1_000);
    let curve = roc(&cases, 50);
    assert!(curve.len() <= 51, "{}", curve.len());
    assert_eq!(curve[0].true_positive_rate, 0.0);
    let last = curve.last().unwrap();
    assert_eq!(
        (last.false_positive_rate, last.true_positive_rate),
        (1.0, 1.0)
    );
    assert!(
        curve
            .windows(2)
            .all(|w| w[0].false_positive_rate <= w[1].false_positive_rate
                && w[0].true_positive_rate <= w[1].true_positive_rate)
    );
}

#[test]
fn deciles_cover_every_case_riskiest_first() {
    let cases = cases(1_003);
    let d = deciles(&cases);
    assert_eq!(d.iter().map(|r| r.cases).sum::<usize>(), 1_003);
    assert_eq!(
        d.iter().map(|r| r.outcomes).sum::<usize>(),
        cases.iter().filter(|c| c.outcome).count()
    );
    assert!(d[0].rate > d[d.len() - 1].rate, "{d:?}");
    assert!(d[0].lift > 1.0);
}

#[test]
fn groups_keep_their_order_and_members() {
    let cases = cases(100);
    let labelled: Vec<(Case, &str)> = cases
        .iter()
        .map(|c| (*c, if c.risk > 0.0 { "red" } else { "green" }))
        .collect();
    let rates = by_group(&labelled, &["red", "yellow", "green"]);
    assert_eq!(
        rates.iter().map(|r| r.label.as_str()).collect::<Vec<_>>(),
        ["red", "yellow", "green"]
    );
    assert_eq!(rates[1].cases, 0);
    assert_eq!(rates[0].cases + rates[2].cases, 100);
    assert!(rates[0].rate > rates[2].rate);
}

#[test]
fn calibration_recovers_the_curve_and_its_table_adds_up() {
    let cases = cases(20_000);
    let c = calibrate(&cases).unwrap();
    assert!(
        (c.intercept + 0.5).abs() < 0.1 && (c.slope - 2.0).abs() < 0.15,
        "{c:?}"
    );
    let (table, brier) = reliability(&cases, &c);
    assert_eq!(table.iter().map(|r| r.cases).sum::<usize>(), 20_000);
    for row in &table {
        assert!((row.mean_predicted - row.observed).abs() < 0.06, "{row:?}");
    }
    // Better than always answering the overall rate.
    let base = overall_rate(&cases);
    assert!(brier < base * (1.0 - base), "{brier}");
    assert!(
        calibrate(
            &cases
                .iter()
                .map(|c| Case {
                    outcome: true,
                    ..*c
                })
                .collect::<Vec<_>>()
        )
        .is_none()
    );
}
