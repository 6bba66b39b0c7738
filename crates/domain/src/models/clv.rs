//! Customer lifetime value: the discounted expected margin of a customer's future purchases
//! over a horizon.

use super::ModelError;

/// How CLV is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClvSettings {
    /// Horizon, in the model's time unit (e.g. 52 weeks).
    pub horizon: f64,
    /// Length of one discounting step, in the model's time unit (e.g. a month of 52/12 weeks).
    pub step: f64,
    /// Discount rate per step (e.g. 0.01 a month).
    pub discount_rate: f64,
    /// Share of spend that is profit, 0 to 1.
    pub margin: f64,
}

impl ClvSettings {
    /// Twelve months in weeks, 1 % a month, the whole spend counted (margin 1).
    pub fn twelve_months_in_weeks() -> Self {
        ClvSettings {
            horizon: 52.0,
            step: 52.0 / 12.0,
            discount_rate: 0.01,
            margin: 1.0,
        }
    }
}

/// CLV = margin × expected spend per purchase × Σₖ (expected purchases in step k) / (1 + d)ᵏ,
/// where `cumulative(t)` is the expected number of purchases in the next `t` periods.
pub fn clv(
    cumulative: impl Fn(f64) -> Result<f64, ModelError>,
    spend_per_purchase: f64,
    settings: &ClvSettings,
) -> Result<f64, ModelError> {
    let ClvSettings {
        horizon,
        step,
        discount_rate,
        margin,
    } = *settings;
    if !(horizon >= 0.0 && step > 0.0 && discount_rate > -1.0 && spend_per_purchase.is_finite()) {
        return Err(ModelError::NotFinite);
    }
    let steps = (horizon / step).ceil() as u32;
    let (mut total, mut before) = (0.0, 0.0);
    for k in 1..=steps {
        let until = (f64::from(k) * step).min(horizon);
        let now = cumulative(until)?;
        total += (now - before) / (1.0 + discount_rate).powi(k as i32);
        before = now;
    }
    let value = margin * spend_per_purchase * total;
    if value.is_finite() {
        Ok(value)
    } else {
        Err(ModelError::NotFinite)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_buyer_is_worth_the_discounted_sum() {
        // One purchase per period, spend 10, margin 0.5, 3 steps of 1 period at 10 %.
        let settings = ClvSettings {
            horizon: 3.0,
            step: 1.0,
            discount_rate: 0.1,
            margin: 0.5,
        };
        let value = clv(Ok, 10.0, &settings).unwrap();
        let expected = 5.0 * (1.0 / 1.1 + 1.0 / 1.21 + 1.0 / 1.331);
        assert!((value - expected).abs() < 1e-12);
    }

    #[test]
    fn no_future_purchases_is_worth_nothing() {
        let value = clv(|_| Ok(0.0), 50.0, &ClvSettings::twelve_months_in_weeks()).unwrap();
        assert_eq!(value, 0.0);
    }
}
