//! The BG/NBD model (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way").

use super::hyp2f1::hyp2f1;
use super::optimize::{Options, bfgs};
use super::{Customer, Fit, ModelError, check_customers, compress};
use statrs::function::gamma::ln_gamma;

/// BG/NBD parameters: purchase rates are Gamma(r, α); the drop-out probability after each
/// purchase is Beta(a, b).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BgNbd {
    pub r: f64,
    pub alpha: f64,
    pub a: f64,
    pub b: f64,
}

fn log_add_exp(u: f64, v: f64) -> f64 {
    let m = u.max(v);
    m + ((u - m).exp() + (v - m).exp()).ln()
}

impl BgNbd {
    /// Log-likelihood of one customer (the paper's equation 6).
    pub fn log_likelihood_one(&self, c: &Customer) -> f64 {
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(c.x);
        let ln_beta = |p: f64, q: f64| ln_gamma(p) + ln_gamma(q) - ln_gamma(p + q);
        let common = ln_gamma(r + x) - ln_gamma(r) + r * alpha.ln();
        let alive = ln_beta(a, b + x) - ln_beta(a, b) - (r + x) * (alpha + c.t).ln();
        if c.x == 0 {
            return common + alive;
        }
        let dropped =
            ln_beta(a + 1.0, b + x - 1.0) - ln_beta(a, b) - (r + x) * (alpha + c.t_x).ln();
        common + log_add_exp(alive, dropped)
    }

    /// Log-likelihood summed over customers.
    pub fn log_likelihood(&self, data: &[Customer]) -> f64 {
        data.iter().map(|c| self.log_likelihood_one(c)).sum()
    }

    /// Maximum-likelihood fit. Identical customers are computed once; the log-gamma ratios
    /// become running sums over `x` and the logarithms of α + time are computed once per
    /// distinct time, so each customer row costs one `exp` and one `ln_1p`; BFGS uses the
    /// analytic gradient.
    pub fn fit(data: &[Customer]) -> Result<Fit<BgNbd>, ModelError> {
        check_customers(data)?;
        let mut rows = Rows::new(&compress(data));
        let at = |theta: &[f64]| BgNbd {
            r: theta[0].exp(),
            alpha: theta[1].exp(),
            a: theta[2].exp(),
            b: theta[3].exp(),
        };
        let objective = |theta: &[f64], grad: &mut [f64]| {
            let p = at(theta);
            let (ll, g) = rows.log_likelihood_and_gradient(&p);
            // Minimise −LL over log-parameters: ∂/∂θ = p ∂/∂p.
            grad[0] = -g[0] * p.r;
            grad[1] = -g[1] * p.alpha;
            grad[2] = -g[2] * p.a;
            grad[3] = -g[3] * p.b;
            -ll
        };
        let min = bfgs(objective, &[0.0; 4], &Options::default())?;
        Ok(Fit {
            params: at(&min.x),
            log_likelihood: -min.value,
            iterations: min.iterations,
            converged: min.converged,
            customers: data.len(),
        })
    }

    /// Probability that a customer with this history is still alive at the end of it.
    pub fn p_alive(&self, c: &Customer) -> f64 {
        if c.x == 0 {
            return 1.0;
        }
        let x = f64::from(c.x);
        let odds = (self.a / (self.b + x - 1.0)).ln()
            + (self.r + x) * ((self.alpha + c.t).ln() - (self.alpha + c.t_x).ln());
        1.0 / (1.0 + odds.exp())
    }

    /// Expected number of purchases in the next `t` periods of a customer with this history
    /// (the paper's equation 10).
    pub fn expected_purchases(&self, c: &Customer, t: f64) -> Result<f64, ModelError> {
        let BgNbd { r, alpha, a, b } = *self;
        let x = f64::from(c.x);
        let z = t / (alpha + c.t + t);
        let f = hyp2f1(r + x, b + x, a + b + x - 1.0, z)?;
        let bracket = 1.0 - ((alpha + c.t) / (alpha + c.t + t)).powf(r + x) * f;
        let value = (a + b + x - 1.0) / (a - 1.0) * bracket * self.p_alive(c);
        if value.is_finite() {
            Ok(value.max(0.0))
        } else {
            Err(ModelError::NotFinite)
        }
    }

    /// Expected number of purchases of a new customer in its first `t` periods (equation 9).
    pub fn expected_purchases_new(&self, t: f64) -> Result<f64, ModelError> {
        let BgNbd { r, alpha, a, b } = *self;
        let f = hyp2f1(r, b, a + b - 1.0, t / (alpha + t))?;
        let value = (a + b - 1.0) / (a - 1.0) * (1.0 - (alpha / (alpha + t)).powf(r) * f);
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ModelError::NotFinite)
        }
    }
}

/// Distinct customer rows with the per-evaluation tables the fast likelihood reads.
struct Rows {
    x: Vec<u32>,
    weight: Vec<f64>,
    /// Index into `times` of T and of t_x.
    t: Vec<u32>,
    t_x: Vec<u32>,
    times: Vec<f64>,
    /// ln(α + time) and 1 / (α + time), per distinct time.
    ln_time: Vec<f64>,
    inv_time: Vec<f64>,
    /// Running sums over k < x (see `fill`), and per-x terms of the drop-out branch.
    ln_r: Vec<f64>,
    inv_r: Vec<f64>,
    ln_b: Vec<f64>,
    inv_b: Vec<f64>,
    inv_ab: Vec<f64>,
    /// ln(a / (b + x − 1)) and 1 / (b + x − 1), for x ≥ 1.
    ln_c: Vec<f64>,
    inv_c: Vec<f64>,
}

impl Rows {
    fn new(rows: &[(Customer, f64)]) -> Self {
        let mut times: Vec<f64> = rows.iter().flat_map(|(c, _)| [c.t, c.t_x]).collect();
        times.sort_by(f64::total_cmp);
        times.dedup();
        let index = |v: f64| times.partition_point(|t| *t < v) as u32;
        let max_x = rows.iter().map(|(c, _)| c.x).max().unwrap_or(0) as usize;
        let per_x = || vec![0.0; max_x + 1];
        Rows {
            x: rows.iter().map(|(c, _)| c.x).collect(),
            weight: rows.iter().map(|(_, w)| *w).collect(),
            t: rows.iter().map(|(c, _)| index(c.t)).collect(),
            t_x: rows.iter().map(|(c, _)| index(c.t_x)).collect(),
            ln_time: vec![0.0; times.len()],
            inv_time: vec![0.0; times.len()],
            times,
            ln_r: per_x(),
            inv_r: per_x(),
            ln_b: per_x(),
            inv_b: per_x(),
            inv_ab: per_x(),
            ln_c: per_x(),
            inv_c: per_x(),
        }
    }

    /// Fills the tables for parameters `p`.
    fn fill(&mut self, p: &BgNbd) {
        for (i, t) in self.times.iter().enumerate() {
            self.ln_time[i] = (p.alpha + t).ln();
            self.inv_time[i] = 1.0 / (p.alpha + t);
        }
        for k in 1..self.ln_r.len() {
            let j = (k - 1) as f64;
            // Σ ln(r + j) = ln Γ(r + x) − ln Γ(r); Σ ln((b + j) / (a + b + j)) = ln B(a, b + x) − ln B(a, b)
            self.ln_r[k] = self.ln_r[k - 1] + (p.r + j).ln();
            self.inv_r[k] = self.inv_r[k - 1] + 1.0 / (p.r + j);
            self.ln_b[k] = self.ln_b[k - 1] + ((p.b + j) / (p.a + p.b + j)).ln();
            self.inv_b[k] = self.inv_b[k - 1] + 1.0 / (p.b + j);
            self.inv_ab[k] = self.inv_ab[k - 1] + 1.0 / (p.a + p.b + j);
            self.ln_c[k] = (p.a / (p.b + j)).ln();
            self.inv_c[k] = 1.0 / (p.b + j);
        }
    }

    /// Log-likelihood and its gradient in (r, α, a, b).
    fn log_likelihood_and_gradient(&mut self, p: &BgNbd) -> (f64, [f64; 4]) {
        self.fill(p);
        let BgNbd { r, alpha, a, .. } = *p;
        let ln_alpha = alpha.ln();
        let (mut ll, mut g) = (0.0, [0.0; 4]);
        for i in 0..self.x.len() {
            let k = self.x[i] as usize;
            let (w, x) = (self.weight[i], f64::from(self.x[i]));
            let (t, tx) = (self.t[i] as usize, self.t_x[i] as usize);
            let u = -(r + x) * self.ln_time[t];
            // S = e^u + e^v; w1 and w2 are the shares of the alive and dropped branches.
            let (ln_s, w1, w2) = if k == 0 {
                (u, 1.0, 0.0)
            } else {
                let v = self.ln_c[k] - (r + x) * self.ln_time[tx];
                let d = v - u;
                let e = (-d.abs()).exp();
                let (big, small) = (1.0 / (1.0 + e), e / (1.0 + e));
                if d > 0.0 {
                    (v + e.ln_1p(), small, big)
                } else {
                    (u + e.ln_1p(), big, small)
                }
            };
            ll += w * (self.ln_r[k] + r * ln_alpha + self.ln_b[k] + ln_s);
            g[0] += w * (self.inv_r[k] + ln_alpha - w1 * self.ln_time[t] - w2 * self.ln_time[tx]);
            g[1] += w * (r / alpha - (r + x) * (w1 * self.inv_time[t] + w2 * self.inv_time[tx]));
            g[2] += w * (w2 / a - self.inv_ab[k]);
            g[3] += w * (self.inv_b[k] - self.inv_ab[k] - w2 * self.inv_c[k]);
        }
        (ll, g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Customer> {
        vec![
            Customer {
                x: 0,
                t_x: 0.0,
                t: 30.0,
            },
            Customer {
                x: 0,
                t_x: 0.0,
                t: 30.0,
            },
            Customer {
                x: 2,
                t_x: 20.0,
                t: 35.0,
            },
            Customer {
                x: 5,
                t_x: 33.0,
                t: 36.0,
            },
            Customer {
                x: 1,
                t_x: 4.0,
                t: 38.0,
            },
        ]
    }

    #[test]
    fn the_fast_likelihood_and_gradient_match_the_direct_formula() {
        let p = BgNbd {
            r: 0.4,
            alpha: 3.0,
            a: 0.8,
            b: 2.2,
        };
        let data = sample();
        let mut rows = Rows::new(&compress(&data));
        let (ll, g) = rows.log_likelihood_and_gradient(&p);
        assert!((ll - p.log_likelihood(&data)).abs() < 1e-9);
        let h = 1e-6;
        let params = [p.r, p.alpha, p.a, p.b];
        for i in 0..4 {
            let mut up = params;
            let mut down = params;
            up[i] += h;
            down[i] -= h;
            let at = |q: [f64; 4]| {
                BgNbd {
                    r: q[0],
                    alpha: q[1],
                    a: q[2],
                    b: q[3],
                }
                .log_likelihood(&data)
            };
            let numeric = (at(up) - at(down)) / (2.0 * h);
            assert!(
                (numeric - g[i]).abs() < 1e-6,
                "parameter {i}: {numeric} vs {}",
                g[i]
            );
        }
    }

    #[test]
    fn p_alive_is_one_without_repeat_purchases_and_falls_with_silence() {
        let p = BgNbd {
            r: 0.243,
            alpha: 4.414,
            a: 0.793,
            b: 2.426,
        };
        assert_eq!(
            p.p_alive(&Customer {
                x: 0,
                t_x: 0.0,
                t: 30.0
            }),
            1.0
        );
        let recent = p.p_alive(&Customer {
            x: 3,
            t_x: 29.0,
            t: 30.0,
        });
        let silent = p.p_alive(&Customer {
            x: 3,
            t_x: 5.0,
            t: 30.0,
        });
        assert!(recent > silent && silent > 0.0 && recent < 1.0);
    }

    #[test]
    fn degenerate_data_is_an_error() {
        assert_eq!(BgNbd::fit(&[]).unwrap_err(), ModelError::Empty);
        let once = vec![
            Customer {
                x: 0,
                t_x: 0.0,
                t: 10.0
            };
            3
        ];
        assert_eq!(BgNbd::fit(&once).unwrap_err(), ModelError::NoRepeatBuyers);
        let bad = vec![Customer {
            x: 1,
            t_x: 20.0,
            t: 10.0,
        }];
        assert!(matches!(
            BgNbd::fit(&bad).unwrap_err(),
            ModelError::InvalidCustomer { index: 0, .. }
        ));
    }
}
