//! Per-customer summaries (x, t_x, T, zbar) from dated purchases, by the papers' conventions:
//! purchases on the same day are one purchase; x counts repeat purchase days; t_x runs from
//! the first purchase to the last; T from the first purchase to the end of calibration; zbar
//! is the mean value of the repeat purchase days.

use super::Customer;
use super::gamma_gamma::Spend;
use chrono::NaiveDate;
use std::collections::BTreeMap;

/// A customer's summary for the count and spend models.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub customer: Customer,
    pub zbar: f64,
}

impl Summary {
    /// The spend part, for Gamma-Gamma.
    pub fn spend(&self) -> Spend {
        Spend {
            x: self.customer.x,
            zbar: self.zbar,
        }
    }
}

/// Summarises one customer's purchases (date and value, any order) up to and including
/// `calibration_end`, in periods of `days_per_period` days (7 for weeks). `None` when the
/// customer made no purchase by then.
pub fn summarise(
    purchases: &[(NaiveDate, f64)],
    calibration_end: NaiveDate,
    days_per_period: f64,
) -> Option<Summary> {
    let mut days: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    for (day, value) in purchases {
        *days.entry(*day).or_default() += value;
    }
    summarise_days(&days, calibration_end, days_per_period)
}

/// The same from purchase totals per day (as scoring keeps them); days after
/// `calibration_end` are ignored.
pub fn summarise_days(
    days: &BTreeMap<NaiveDate, f64>,
    calibration_end: NaiveDate,
    days_per_period: f64,
) -> Option<Summary> {
    let mut within = days.range(..=calibration_end);
    let (&first, _) = within.next()?;
    let (mut last, mut x, mut repeat_total) = (first, 0u32, 0.0);
    for (&day, &total) in within {
        last = day;
        x += 1;
        repeat_total += total;
    }
    let periods = |from: NaiveDate, to: NaiveDate| (to - from).num_days() as f64 / days_per_period;
    Some(Summary {
        customer: Customer {
            x,
            t_x: periods(first, last),
            t: periods(first, calibration_end),
        },
        zbar: if x == 0 {
            0.0
        } else {
            repeat_total / f64::from(x)
        },
    })
}

/// Number of distinct purchase days after `calibration_end`, up to and including `holdout_end`.
pub fn holdout_purchases(
    purchases: &[(NaiveDate, f64)],
    calibration_end: NaiveDate,
    holdout_end: NaiveDate,
) -> u32 {
    let days: std::collections::BTreeSet<NaiveDate> = purchases
        .iter()
        .map(|(d, _)| *d)
        .filter(|d| *d > calibration_end && *d <= holdout_end)
        .collect();
    days.len() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn cdnow_customer_one_by_the_papers_conventions() {
        // CDNOW_sample.txt, customer 1: three purchases in calibration, one after.
        let purchases = [
            (d("1997-01-01"), 29.33),
            (d("1997-01-18"), 29.73),
            (d("1997-08-02"), 14.96),
            (d("1997-12-12"), 26.48),
        ];
        let s = summarise(&purchases, d("1997-09-30"), 7.0).unwrap();
        assert_eq!(s.customer.x, 2);
        // The csv has 30.43, 38.86 and 22.35 (rounded half up from 22.345).
        for (value, csv) in [
            (s.customer.t_x, 30.43),
            (s.customer.t, 38.86),
            (s.zbar, 22.35),
        ] {
            assert!((value - csv).abs() <= 0.005 + 1e-9, "{value} vs {csv}");
        }
        assert_eq!(
            holdout_purchases(&purchases, d("1997-09-30"), d("1998-06-30")),
            1
        );
    }

    #[test]
    fn same_day_purchases_are_one() {
        let purchases = [
            (d("1997-01-01"), 5.0),
            (d("1997-01-01"), 7.0),
            (d("1997-01-08"), 3.0),
            (d("1997-01-08"), 1.0),
        ];
        let s = summarise(&purchases, d("1997-01-15"), 7.0).unwrap();
        assert_eq!((s.customer.x, s.customer.t_x, s.zbar), (1, 1.0, 4.0));
        assert!(summarise(&purchases, d("1996-12-31"), 7.0).is_none());
    }
}
