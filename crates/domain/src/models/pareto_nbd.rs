//! The Pareto/NBD model (Schmittlein, Morrison & Colombo 1987), in the form of Fader, Hardie
//! & Lee's 2005 note on its likelihood.

use super::hyp2f1::hyp2f1;
use super::optimize::{Options, bfgs, with_numeric_gradient};
use super::{Customer, Fit, ModelError, check_customers, compress};
use statrs::function::gamma::ln_gamma;

/// Pareto/NBD parameters: purchase rates are Gamma(r, α), drop-out rates Gamma(s, β).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ParetoNbd {
    pub r: f64,
    pub alpha: f64,
    pub s: f64,
    pub beta: f64,
}

fn log_add_exp(u: f64, v: f64) -> f64 {
    let m = u.max(v);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((u - m).exp() + (v - m).exp()).ln()
}

impl ParetoNbd {
    /// ln A₀ of the likelihood (the difference of two 2F1 terms).
    fn ln_a0(&self, c: &Customer) -> Result<f64, ModelError> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let x = f64::from(c.x);
        let (low, high, second) = if alpha < beta {
            (alpha, beta, r + x)
        } else {
            (beta, alpha, s + 1.0)
        };
        let gap = high - low;
        let rsx = r + s + x;
        let (q1, q2) = (high + c.t_x, high + c.t);
        let p1 = hyp2f1(rsx, second, rsx + 1.0, gap / q1)?;
        let p2 = hyp2f1(rsx, second, rsx + 1.0, gap / q2)?;
        let l1 = p1.ln() + rsx * q2.ln();
        let l2 = p2.ln() + rsx * q1.ln();
        if l2 >= l1 {
            return Ok(f64::NEG_INFINITY);
        }
        Ok(l1 + (-(l2 - l1).exp()).ln_1p() - rsx * (q1.ln() + q2.ln()))
    }

    /// Log-likelihood of one customer.
    pub fn log_likelihood_one(&self, c: &Customer) -> Result<f64, ModelError> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let x = f64::from(c.x);
        let a1 = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + s * beta.ln();
        let alive = -(r + x) * (alpha + c.t).ln() - s * (beta + c.t).ln();
        let a2 = log_add_exp(alive, s.ln() + self.ln_a0(c)? - (r + s + x).ln());
        Ok(a1 + a2)
    }

    /// Log-likelihood summed over customers.
    pub fn log_likelihood(&self, data: &[Customer]) -> Result<f64, ModelError> {
        data.iter().map(|c| self.log_likelihood_one(c)).sum()
    }

    /// Maximum-likelihood fit (BFGS on log-parameters, numerical gradient).
    pub fn fit(data: &[Customer]) -> Result<Fit<ParetoNbd>, ModelError> {
        check_customers(data)?;
        let rows = compress(data);
        let at = |theta: &[f64]| ParetoNbd {
            r: theta[0].exp(),
            alpha: theta[1].exp(),
            s: theta[2].exp(),
            beta: theta[3].exp(),
        };
        let objective = with_numeric_gradient(|theta: &[f64]| {
            let p = at(theta);
            let mut ll = 0.0;
            for (c, w) in &rows {
                match p.log_likelihood_one(c) {
                    Ok(v) => ll += w * v,
                    Err(_) => return f64::NAN,
                }
            }
            -ll
        });
        let options = Options {
            gradient_tolerance: 1e-12,
            ..Options::default()
        };
        let min = bfgs(objective, &[0.0; 4], &options)?;
        Ok(Fit {
            params: at(&min.x),
            log_likelihood: -min.value,
            iterations: min.iterations,
            converged: min.converged,
            customers: data.len(),
        })
    }

    /// Probability that a customer with this history is still alive at the end of it.
    pub fn p_alive(&self, c: &Customer) -> Result<f64, ModelError> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let x = f64::from(c.x);
        let odds = s.ln() - (r + s + x).ln()
            + (r + x) * (alpha + c.t).ln()
            + s * (beta + c.t).ln()
            + self.ln_a0(c)?;
        Ok(1.0 / (1.0 + odds.exp()))
    }

    /// Expected number of purchases in the next `t` periods of a customer with this history.
    pub fn expected_purchases(&self, c: &Customer, t: f64) -> Result<f64, ModelError> {
        let ParetoNbd { r, alpha, s, beta } = *self;
        let x = f64::from(c.x);
        let ll = self.log_likelihood_one(c)?;
        let first = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln() + s * beta.ln()
            - (r + x) * (alpha + c.t).ln()
            - s * (beta + c.t).ln();
        let second = (r + x).ln() + (beta + c.t).ln() - (alpha + c.t).ln();
        let third = ((1.0 - ((beta + c.t) / (beta + c.t + t)).powf(s - 1.0)) / (s - 1.0)).ln();
        let value = (first + second + third - ll).exp();
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ModelError::NotFinite)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn p_alive_falls_with_silence() {
        let p = ParetoNbd {
            r: 0.553,
            alpha: 10.578,
            s: 0.606,
            beta: 11.669,
        };
        let recent = p
            .p_alive(&Customer {
                x: 3,
                t_x: 29.0,
                t: 30.0,
            })
            .unwrap();
        let silent = p
            .p_alive(&Customer {
                x: 3,
                t_x: 5.0,
                t: 30.0,
            })
            .unwrap();
        assert!(
            recent > silent && silent > 0.0 && recent < 1.0,
            "{recent} {silent}"
        );
    }

    #[test]
    fn alpha_and_beta_on_either_side_give_a_finite_likelihood() {
        let c = Customer {
            x: 2,
            t_x: 10.0,
            t: 30.0,
        };
        for (alpha, beta) in [(10.0, 12.0), (12.0, 10.0), (11.0, 11.0)] {
            let p = ParetoNbd {
                r: 0.5,
                alpha,
                s: 0.6,
                beta,
            };
            assert!(p.log_likelihood_one(&c).unwrap().is_finite());
        }
    }
}
