//! RFM: recency, frequency and monetary scores 1–5 by quintile within a population, and the
//! named segments of the usual R × F grid.

use crate::rank::{IdRanks, ordered};

/// One customer's raw RFM values.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmInput {
    /// Days since the last purchase; `None` (never bought) ranks as the least recent.
    pub recency_days: Option<f64>,
    /// Distinct purchase days.
    pub frequency: u64,
    /// Order value.
    pub monetary: f64,
}

/// One customer's R, F and M scores, 1 (worst) to 5 (best).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RfmScore {
    pub r: u8,
    pub f: u8,
    pub m: u8,
}

/// Quintile scores: customers are ranked worst to best on each value (ties broken by customer
/// id — `ids` ranks the same customers, in the same order) and the customer at rank `i` of `n`
/// scores `1 + floor(5 i / n)`. Returned in the order of `input`.
pub fn score(input: &[RfmInput], ids: &IdRanks) -> Vec<RfmScore> {
    // The three rankings are independent: two run beside the third.
    let (recency, frequency, monetary) = std::thread::scope(|s| {
        let recency = s.spawn(|| {
            // Larger recency (or none) is worse, so it ranks first.
            quintiles(ids, |i| {
                !ordered(input[i].recency_days.unwrap_or(f64::INFINITY))
            })
        });
        let frequency = s.spawn(|| quintiles(ids, |i| input[i].frequency));
        let monetary = quintiles(ids, |i| ordered(input[i].monetary));
        let joined = |h: std::thread::ScopedJoinHandle<'_, Vec<u8>>| {
            h.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        (joined(recency), joined(frequency), monetary)
    });
    recency
        .into_iter()
        .zip(frequency)
        .zip(monetary)
        .map(|((r, f), m)| RfmScore { r, f, m })
        .collect()
}

/// Scores 1–5 by rank, worst (smallest `key`) first, ties by id.
fn quintiles(ids: &IdRanks, key: impl Fn(usize) -> u64) -> Vec<u8> {
    let n = ids.len();
    let mut scores = vec![0u8; n];
    for (rank, i) in ids.order_by(key).into_iter().enumerate() {
        scores[i as usize] = 1 + (5 * rank / n) as u8;
    }
    scores
}

/// The named RFM segments, by the R × F grid most RFM practice uses:
///
/// | R \\ F | 1 | 2 | 3 | 4 | 5 |
/// |---|---|---|---|---|---|
/// | 5 | New Customers | Potential Loyalist | Potential Loyalist | Champions | Champions |
/// | 4 | Promising | Potential Loyalist | Potential Loyalist | Loyal Customers | Loyal Customers |
/// | 3 | About to Sleep | About to Sleep | Need Attention | Loyal Customers | Loyal Customers |
/// | 2 | Hibernating | Hibernating | At Risk | At Risk | Can't Lose Them |
/// | 1 | Lost | Hibernating | At Risk | At Risk | Can't Lose Them |
///
/// "Lost" (R 1, F 1) is the lowest corner of the grid's Hibernating block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RfmSegment {
    Champions,
    LoyalCustomers,
    PotentialLoyalist,
    NewCustomers,
    Promising,
    NeedAttention,
    AboutToSleep,
    AtRisk,
    CantLoseThem,
    Hibernating,
    Lost,
}

impl RfmSegment {
    /// Every segment, best first.
    pub const ALL: [RfmSegment; 11] = [
        RfmSegment::Champions,
        RfmSegment::LoyalCustomers,
        RfmSegment::PotentialLoyalist,
        RfmSegment::NewCustomers,
        RfmSegment::Promising,
        RfmSegment::NeedAttention,
        RfmSegment::AboutToSleep,
        RfmSegment::AtRisk,
        RfmSegment::CantLoseThem,
        RfmSegment::Hibernating,
        RfmSegment::Lost,
    ];

    /// The segment of a customer's scores.
    pub fn of(s: RfmScore) -> RfmSegment {
        use RfmSegment::*;
        match (s.r, s.f) {
            (5, 4..) => Champions,
            (3..=4, 4..) => LoyalCustomers,
            (4..=5, 2..=3) => PotentialLoyalist,
            (5, _) => NewCustomers,
            (4, _) => Promising,
            (3, 3) => NeedAttention,
            (3, _) => AboutToSleep,
            (..=2, 5..) => CantLoseThem,
            (..=2, 3..=4) => AtRisk,
            (1, 1) => Lost,
            _ => Hibernating,
        }
    }

    /// Its name, as shown and stored.
    pub fn name(self) -> &'static str {
        match self {
            RfmSegment::Champions => "Champions",
            RfmSegment::LoyalCustomers => "Loyal Customers",
            RfmSegment::PotentialLoyalist => "Potential Loyalist",
            RfmSegment::NewCustomers => "New Customers",
            RfmSegment::Promising => "Promising",
            RfmSegment::NeedAttention => "Need Attention",
            RfmSegment::AboutToSleep => "About to Sleep",
            RfmSegment::AtRisk => "At Risk",
            RfmSegment::CantLoseThem => "Can't Lose Them",
            RfmSegment::Hibernating => "Hibernating",
            RfmSegment::Lost => "Lost",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_customers_fall_two_per_quintile() {
        let ids: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let input: Vec<RfmInput> = (0..10)
            .map(|i| RfmInput {
                recency_days: Some(i as f64),
                frequency: i as u64,
                monetary: 10.0 * i as f64,
            })
            .collect();
        let s = score(&input, &IdRanks::of(ids.iter().map(String::as_str)));
        assert_eq!(
            s.iter().map(|x| x.f).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        assert_eq!(
            s.iter().map(|x| x.m).collect::<Vec<_>>(),
            [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
        );
        // The most recent buyer (0 days) has the best recency.
        assert_eq!(
            s.iter().map(|x| x.r).collect::<Vec<_>>(),
            [5, 5, 4, 4, 3, 3, 2, 2, 1, 1]
        );
    }

    #[test]
    fn the_segment_grid() {
        let grid = |r: u8| -> Vec<&str> {
            (1..=5)
                .map(|f| RfmSegment::of(RfmScore { r, f, m: 3 }).name())
                .collect()
        };
        assert_eq!(
            grid(5),
            [
                "New Customers",
                "Potential Loyalist",
                "Potential Loyalist",
                "Champions",
                "Champions"
            ]
        );
        assert_eq!(
            grid(4),
            [
                "Promising",
                "Potential Loyalist",
                "Potential Loyalist",
                "Loyal Customers",
                "Loyal Customers"
            ]
        );
        assert_eq!(
            grid(3),
            [
                "About to Sleep",
                "About to Sleep",
                "Need Attention",
                "Loyal Customers",
                "Loyal Customers"
            ]
        );
        assert_eq!(
            grid(2),
            [
                "Hibernating",
                "Hibernating",
                "At Risk",
                "At Risk",
                "Can't Lose Them"
            ]
        );
        assert_eq!(
            grid(1),
            [
                "Lost",
                "Hibernating",
                "At Risk",
                "At Risk",
                "Can't Lose Them"
            ]
        );
        let named: std::collections::BTreeSet<_> = (1..=5)
            .flat_map(|r| (1..=5).map(move |f| RfmSegment::of(RfmScore { r, f, m: 1 })))
            .collect();
        assert_eq!(
            named.len(),
            RfmSegment::ALL.len(),
            "every segment is reachable"
        );
    }

    #[test]
    fn never_bought_is_least_recent() {
        let input = [
            RfmInput {
                recency_days: None,
                frequency: 0,
                monetary: 0.0,
            },
            RfmInput {
                recency_days: Some(400.0),
                frequency: 1,
                monetary: 1.0,
            },
        ];
        let s = score(&input, &IdRanks::of(["a", "b"].into_iter()));
        assert!(s[0].r < s[1].r);
    }
}
