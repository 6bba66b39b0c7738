//! A customer's outlook from the tenant's fitted models: P(alive), expected purchases and CLV.

use super::bgnbd::BgNbd;
use super::clv::{ClvSettings, clv};
use super::gamma_gamma::GammaGamma;
use super::summary::summarise_days;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// Days the expected-purchases figure looks ahead.
pub const EXPECTED_PURCHASES_DAYS: f64 = 90.0;

/// The models fitted for a tenant, in days.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FittedModels {
    pub bgnbd: BgNbd,
    /// Spend per purchase; without it CLV uses the customer's own average.
    pub gamma_gamma: Option<GammaGamma>,
    pub clv: ClvSettings,
}

/// What the models say about one customer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Outlook {
    pub p_alive: f64,
    pub expected_purchases_90d: f64,
    /// Discounted expected spend × margin over the CLV horizon.
    pub clv: f64,
}

/// CLV over twelve months in days, 1 % a month, margin 1.
pub fn twelve_months_in_days() -> ClvSettings {
    ClvSettings {
        horizon: 365.0,
        step: 365.0 / 12.0,
        discount_rate: 0.01,
        margin: 1.0,
    }
}

impl FittedModels {
    /// The outlook of a customer with these purchase days, as of `today`; `None` for a
    /// customer without purchases or when a figure would not be finite.
    pub fn outlook(&self, days: &BTreeMap<NaiveDate, f64>, today: NaiveDate) -> Option<Outlook> {
        let summary = summarise_days(days, today, 1.0)?;
        let c = summary.customer;
        let p_alive = self.bgnbd.p_alive(&c);
        let expected = self
            .bgnbd
            .expected_purchases(&c, EXPECTED_PURCHASES_DAYS)
            .ok()?;
        let spend = match self.gamma_gamma {
            Some(gg) => gg.expected_spend(&summary.spend()).ok()?,
            None => days.range(..=today).map(|(_, v)| v).sum::<f64>() / f64::from(c.x + 1),
        };
        let clv = clv(|t| self.bgnbd.expected_purchases(&c, t), spend, &self.clv).ok()?;
        [p_alive, expected, clv]
            .iter()
            .all(|v| v.is_finite())
            .then_some(Outlook {
                p_alive,
                expected_purchases_90d: expected,
                clv,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn a_regular_recent_buyer_outlooks_better_than_a_lapsed_one() {
        // CDNOW's weekly parameters expressed per day (α scales with the time unit).
        let models = FittedModels {
            bgnbd: BgNbd {
                r: 0.243,
                alpha: 4.414 * 7.0,
                a: 0.793,
                b: 2.426,
            },
            gamma_gamma: Some(GammaGamma {
                p: 6.25,
                q: 3.74,
                gamma: 15.44,
            }),
            clv: twelve_months_in_days(),
        };
        let regular: BTreeMap<NaiveDate, f64> = [
            ("2026-01-05", 30.0),
            ("2026-03-01", 25.0),
            ("2026-05-10", 40.0),
            ("2026-06-20", 35.0),
        ]
        .iter()
        .map(|(s, v)| (d(s), *v))
        .collect();
        let lapsed: BTreeMap<NaiveDate, f64> = [("2026-01-05", 30.0), ("2026-01-20", 25.0)]
            .iter()
            .map(|(s, v)| (d(s), *v))
            .collect();
        let today = d("2026-07-01");
        let a = models.outlook(&regular, today).unwrap();
        let b = models.outlook(&lapsed, today).unwrap();
        assert!(a.p_alive > b.p_alive, "{a:?} {b:?}");
        assert!(a.expected_purchases_90d > b.expected_purchases_90d);
        assert!(a.clv > b.clv && b.clv >= 0.0);
        assert!(models.outlook(&BTreeMap::new(), today).is_none());
    }
}
