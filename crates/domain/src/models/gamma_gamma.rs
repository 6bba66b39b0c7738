//! The Gamma-Gamma model of spend per purchase (Fader & Hardie 2013, "The Gamma-Gamma Model
//! of Monetary Value").

use super::optimize::{Options, bfgs, with_numeric_gradient};
use super::{Fit, ModelError};
use statrs::function::gamma::ln_gamma;

/// One repeat buyer: `x` repeat purchases with mean value `zbar`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spend {
    pub x: u32,
    pub zbar: f64,
}

/// Gamma-Gamma parameters: spend per purchase is Gamma(p, ν), ν ~ Gamma(q, γ).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GammaGamma {
    pub p: f64,
    pub q: f64,
    pub gamma: f64,
}

impl GammaGamma {
    /// Log-likelihood of one repeat buyer's mean spend.
    pub fn log_likelihood_one(&self, s: &Spend) -> f64 {
        let GammaGamma { p, q, gamma } = *self;
        let x = f64::from(s.x);
        let px = p * x;
        ln_gamma(px + q) - ln_gamma(px) - ln_gamma(q)
            + q * gamma.ln()
            + (px - 1.0) * s.zbar.ln()
            + px * x.ln()
            - (px + q) * (x * s.zbar + gamma).ln()
    }

    /// Log-likelihood summed over the buyers that count (x > 0 and positive spend).
    pub fn log_likelihood(&self, data: &[Spend]) -> f64 {
        data.iter()
            .filter(|s| usable(s))
            .map(|s| self.log_likelihood_one(s))
            .sum()
    }

    /// Maximum-likelihood fit on the repeat buyers with a positive mean spend; the others
    /// carry no information about spend per purchase and are left out.
    pub fn fit(data: &[Spend]) -> Result<Fit<GammaGamma>, ModelError> {
        for (index, s) in data.iter().enumerate() {
            if !s.zbar.is_finite() || s.zbar < 0.0 {
                return Err(ModelError::InvalidCustomer {
                    index,
                    reason: "zbar must be finite and not negative".into(),
                });
            }
        }
        let used: Vec<Spend> = data.iter().copied().filter(usable).collect();
        if used.is_empty() {
            return Err(ModelError::NoPositiveSpend);
        }
        let at = |t: &[f64]| GammaGamma {
            p: t[0].exp(),
            q: t[1].exp(),
            gamma: t[2].exp(),
        };
        let objective = with_numeric_gradient(|t: &[f64]| -at(t).log_likelihood(&used));
        let options = Options {
            gradient_tolerance: 1e-12,
            ..Options::default()
        };
        let min = bfgs(objective, &[0.0; 3], &options)?;
        Ok(Fit {
            params: at(&min.x),
            log_likelihood: -min.value,
            iterations: min.iterations,
            converged: min.converged,
            customers: used.len(),
        })
    }

    /// Expected spend per purchase of a customer with this history: a weighted mean of the
    /// population mean and the customer's own (requires q > 1; the population mean otherwise
    /// does not exist).
    pub fn expected_spend(&self, s: &Spend) -> Result<f64, ModelError> {
        let GammaGamma { p, q, gamma } = *self;
        if q <= 1.0 {
            return Err(ModelError::NotFinite);
        }
        let population = gamma * p / (q - 1.0);
        if s.x == 0 {
            return Ok(population);
        }
        let weight = p * f64::from(s.x) / (p * f64::from(s.x) + q - 1.0);
        Ok((1.0 - weight) * population + weight * s.zbar)
    }
}

fn usable(s: &Spend) -> bool {
    s.x > 0 && s.zbar > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_spend_is_a_clear_error() {
        let data = vec![Spend { x: 2, zbar: 0.0 }, Spend { x: 0, zbar: 0.0 }];
        assert_eq!(
            GammaGamma::fit(&data).unwrap_err(),
            ModelError::NoPositiveSpend
        );
        assert!(
            GammaGamma::fit(&[Spend {
                x: 1,
                zbar: f64::NAN
            }])
            .is_err()
        );
    }

    #[test]
    fn expected_spend_moves_from_the_population_towards_the_customer() {
        let m = GammaGamma {
            p: 6.25,
            q: 3.74,
            gamma: 15.44,
        };
        let population = m.expected_spend(&Spend { x: 0, zbar: 0.0 }).unwrap();
        let one = m.expected_spend(&Spend { x: 1, zbar: 100.0 }).unwrap();
        let many = m.expected_spend(&Spend { x: 20, zbar: 100.0 }).unwrap();
        assert!(population < one && one < many && many < 100.0);
    }
}
