//! Customer-base models for non-contractual buying: BG/NBD and Pareto/NBD (is the customer
//! still alive, how many purchases next), Gamma-Gamma (how much per purchase), and CLV.
//!
//! Data are per-customer summaries in any time unit, by the papers' conventions: `x` repeat
//! purchase periods (same-day purchases are one), `t_x` the time from the first to the last
//! purchase, `t` (the papers' T) the time from the first purchase to the end of calibration.

pub mod bgnbd;
pub mod clv;
pub mod gamma_gamma;
pub mod hyp2f1;
pub mod optimize;
pub mod outlook;
pub mod pareto_nbd;
pub mod summary;

/// One customer's purchase summary for the count models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Customer {
    /// Number of repeat purchases.
    pub x: u32,
    /// Time of the last purchase, from the first (0 when `x` is 0).
    pub t_x: f64,
    /// Time from the first purchase to the end of the observation period.
    pub t: f64,
}

/// A fitted model with the facts of its fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Fit<P> {
    pub params: P,
    /// Log-likelihood at the parameters, summed over customers.
    pub log_likelihood: f64,
    pub iterations: u32,
    /// Whether the optimiser met its tolerance (not just its iteration limit).
    pub converged: bool,
    /// Number of customers the fit used.
    pub customers: usize,
}

/// Why a model could not be fitted or applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ModelError {
    #[error("no customers to fit")]
    Empty,
    #[error("no customer made a repeat purchase, so repeat behaviour cannot be estimated")]
    NoRepeatBuyers,
    #[error("no customer has a positive average spend")]
    NoPositiveSpend,
    #[error("too few customers to fit a population model: {have} {what}, at least {need} needed")]
    TooFew {
        what: &'static str,
        have: usize,
        need: usize,
    },
    #[error("customer {index}: {reason}")]
    InvalidCustomer { index: usize, reason: String },
    #[error("the likelihood is not finite at the start point or along the search")]
    NotFinite,
    #[error("the hypergeometric series 2F1({a}, {b}; {c}; {z}) did not converge")]
    Hyp2f1 { a: f64, b: f64, c: f64, z: f64 },
}

/// Checks the summaries the count models need.
pub fn check_customers(data: &[Customer]) -> Result<(), ModelError> {
    if data.is_empty() {
        return Err(ModelError::Empty);
    }
    for (index, c) in data.iter().enumerate() {
        let bad = |reason: &str| {
            Err(ModelError::InvalidCustomer {
                index,
                reason: reason.to_owned(),
            })
        };
        if !c.t_x.is_finite() || !c.t.is_finite() {
            return bad("t_x and T must be finite");
        }
        if c.t_x < 0.0 || c.t < c.t_x {
            return bad("0 <= t_x <= T must hold");
        }
        if c.x == 0 && c.t_x != 0.0 {
            return bad("t_x must be 0 when there is no repeat purchase");
        }
    }
    if data.iter().all(|c| c.x == 0) {
        return Err(ModelError::NoRepeatBuyers);
    }
    Ok(())
}

/// Fewest customers a tenant needs before its models are fitted.
pub const MIN_CUSTOMERS: usize = 20;
/// Fewest repeat buyers a tenant needs before its models are fitted.
pub const MIN_REPEAT_BUYERS: usize = 5;

/// Refuses populations too small for the estimates to mean anything (a handful of customers
/// lets the likelihood run off to extreme parameters).
pub fn check_population(data: &[Customer]) -> Result<(), ModelError> {
    let repeat = data.iter().filter(|c| c.x > 0).count();
    if data.len() < MIN_CUSTOMERS {
        return Err(ModelError::TooFew {
            what: "customers",
            have: data.len(),
            need: MIN_CUSTOMERS,
        });
    }
    if repeat < MIN_REPEAT_BUYERS {
        return Err(ModelError::TooFew {
            what: "repeat buyers",
            have: repeat,
            need: MIN_REPEAT_BUYERS,
        });
    }
    Ok(())
}

/// Identical summaries merged with their count, so a likelihood is computed once per distinct
/// customer shape (on CDNOW, 2,357 customers become about 1,000 rows).
pub(crate) fn compress(data: &[Customer]) -> Vec<(Customer, f64)> {
    let mut sorted: Vec<Customer> = data.to_vec();
    sorted.sort_by(|a, b| {
        a.x.cmp(&b.x)
            .then(a.t_x.total_cmp(&b.t_x))
            .then(a.t.total_cmp(&b.t))
    });
    let mut out: Vec<(Customer, f64)> = Vec::new();
    for c in sorted {
        match out.last_mut() {
            Some((last, n)) if *last == c => *n += 1.0,
            _ => out.push((c, 1.0)),
        }
    }
    out
}
