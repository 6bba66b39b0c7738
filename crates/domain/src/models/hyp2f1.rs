//! The Gaussian hypergeometric function 2F1(a, b; c; z) for real arguments, |z| < 1, as the
//! BG/NBD and Pareto/NBD expressions need it.

use super::ModelError;
use statrs::function::gamma::ln_gamma;

/// Most series terms before giving up.
const MAX_TERMS: usize = 2_000_000;
/// Above this `z`, the series converges slowly: use the 1 − z transformation when it applies.
const TRANSFORM_ABOVE: f64 = 0.9;

/// 2F1(a, b; c; z) for |z| < 1 and c not a non-positive integer. Sums the power series until
/// a term no longer changes the sum; close to z = 1 it uses the linear transformation to
/// 1 − z (Abramowitz & Stegun 15.3.6) when c − a − b is not an integer.
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> Result<f64, ModelError> {
    let err = || ModelError::Hyp2f1 { a, b, c, z };
    let in_domain = z.abs() < 1.0 && a.is_finite() && b.is_finite() && c.is_finite();
    if !in_domain {
        return Err(err());
    }
    if c <= 0.0 && c.fract() == 0.0 {
        return Err(err());
    }
    let gap = c - a - b;
    if z > TRANSFORM_ABOVE
        && (gap - gap.round()).abs() > 1e-6
        && let Some(v) = one_minus_z(a, b, c, z)
    {
        return Ok(v);
    }
    series(a, b, c, z).ok_or_else(err)
}

fn series(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let mut term = 1.0;
    let mut sum = 1.0;
    for k in 0..MAX_TERMS {
        let k = k as f64;
        term *= (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        let next = sum + term;
        if !next.is_finite() {
            return None;
        }
        if next == sum && k > 2.0 {
            return Some(next);
        }
        sum = next;
        if term == 0.0 {
            return Some(sum);
        }
    }
    None
}

/// ln|Γ(x)| and the sign of Γ(x), for any x that is not a non-positive integer.
fn ln_gamma_signed(x: f64) -> (f64, f64) {
    if x > 0.0 {
        (ln_gamma(x), 1.0)
    } else {
        // Reflection: Γ(x) = π / (sin(πx) Γ(1 − x)).
        let s = (std::f64::consts::PI * x).sin();
        (
            std::f64::consts::PI.ln() - s.abs().ln() - ln_gamma(1.0 - x),
            s.signum(),
        )
    }
}

fn gamma_ratio(num: [f64; 2], den: [f64; 2]) -> f64 {
    let (mut ln, mut sign) = (0.0, 1.0);
    for x in num {
        let (l, s) = ln_gamma_signed(x);
        ln += l;
        sign *= s;
    }
    for x in den {
        let (l, s) = ln_gamma_signed(x);
        ln -= l;
        sign *= s;
    }
    sign * ln.exp()
}

fn one_minus_z(a: f64, b: f64, c: f64, z: f64) -> Option<f64> {
    let w = 1.0 - z;
    let first = gamma_ratio([c, c - a - b], [c - a, c - b]) * series(a, b, a + b - c + 1.0, w)?;
    let second = w.powf(c - a - b)
        * gamma_ratio([c, a + b - c], [a, b])
        * series(c - a, c - b, c - a - b + 1.0, w)?;
    let v = first + second;
    v.is_finite().then_some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn matches_closed_forms() {
        for z in [-0.7f64, -0.2, 0.0, 0.1, 0.5, 0.9, 0.95, 0.999, 0.9999] {
            // 2F1(1, 1; 2; z) = −ln(1 − z) / z
            let expected = if z == 0.0 { 1.0 } else { -(1.0 - z).ln() / z };
            assert!(
                close(hyp2f1(1.0, 1.0, 2.0, z).unwrap(), expected, 1e-10),
                "z = {z}"
            );
            // 2F1(a, b; b; z) = (1 − z)^(−a)
            assert!(
                close(
                    hyp2f1(0.7, 2.5, 2.5, z).unwrap(),
                    (1.0 - z).powf(-0.7),
                    1e-10
                ),
                "z = {z}"
            );
        }
    }

    #[test]
    fn the_transformation_agrees_with_the_series() {
        for (a, b, c) in [(0.3, 2.4, 3.2), (1.7, 0.8, 2.05), (5.2, 6.1, 10.45)] {
            for z in [0.91, 0.95, 0.99] {
                let direct = series(a, b, c, z).unwrap();
                let transformed = one_minus_z(a, b, c, z).unwrap();
                assert!(
                    close(direct, transformed, 1e-9),
                    "{a} {b} {c} {z}: {direct} vs {transformed}"
                );
            }
        }
    }

    #[test]
    fn a_series_that_cannot_converge_in_time_is_an_error_not_a_guess() {
        // c − a − b = 0 rules out the transformation, and at z = 1 − 1e−9 the series would
        // need billions of terms.
        assert!(matches!(
            hyp2f1(1.0, 1.0, 2.0, 1.0 - 1e-9),
            Err(ModelError::Hyp2f1 { .. })
        ));
    }

    #[test]
    fn out_of_domain_is_an_error() {
        assert!(hyp2f1(1.0, 1.0, 2.0, 1.0).is_err());
        assert!(hyp2f1(1.0, 1.0, -2.0, 0.5).is_err());
        assert!(hyp2f1(f64::NAN, 1.0, 2.0, 0.5).is_err());
    }
}
