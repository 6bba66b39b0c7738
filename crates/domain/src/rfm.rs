//! RFM: recency, frequency and monetary scores 1–5 by quintile within a population, and the
//! named segments of the usual R × F grid.

/// One customer's raw RFM values.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmInput<'a> {
    pub customer_id: &'a str,
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
/// id, so the result is deterministic) and the customer at rank `i` of `n` scores
/// `1 + floor(5 i / n)`. Returned in the order of `input`.
pub fn score(input: &[RfmInput<'_>]) -> Vec<RfmScore> {
    let ids = id_ranks(input.iter().map(|x| x.customer_id));
    // Three sorts of compact keys, side by side: a population of millions sorts in a second.
    let (recency, frequency, monetary) = std::thread::scope(|s| {
        let recency = s.spawn(|| {
            // Larger recency (or none) is worse, so it ranks first.
            quintiles(&ids, |i| {
                !ordered(input[i].recency_days.unwrap_or(f64::INFINITY))
            })
        });
        let frequency = s.spawn(|| quintiles(&ids, |i| input[i].frequency));
        let monetary = quintiles(&ids, |i| ordered(input[i].monetary));
        (
            recency.join().unwrap_or_default(),
            frequency.join().unwrap_or_default(),
            monetary,
        )
    });
    (0..input.len())
        .map(|i| RfmScore {
            r: recency.get(i).copied().unwrap_or(1),
            f: frequency.get(i).copied().unwrap_or(1),
            m: monetary.get(i).copied().unwrap_or(1),
        })
        .collect()
}

/// Each id's rank in byte order (equal ids by position), so ties are broken by comparing
/// numbers rather than strings.
pub fn id_ranks<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<u32> {
    let ids: Vec<&str> = ids.collect();
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| ids[i as usize]);
    let mut ranks = vec![0u32; ids.len()];
    for (rank, i) in order.into_iter().enumerate() {
        ranks[i as usize] = rank as u32;
    }
    ranks
}

/// A float's bits mapped so that unsigned order is `f64::total_cmp` order.
pub fn ordered(x: f64) -> u64 {
    let bits = x.to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | 1 << 63
    }
}

/// Scores 1–5 by rank, worst (smallest `key`) first, ties by id rank.
fn quintiles(ids: &[u32], key: impl Fn(usize) -> u64) -> Vec<u8> {
    let mut ranked: Vec<(u64, u32, u32)> =
        (0..ids.len()).map(|i| (key(i), ids[i], i as u32)).collect();
    ranked.sort_unstable();
    let n = ranked.len();
    let mut scores = vec![0u8; n];
    for (rank, (_, _, i)) in ranked.into_iter().enumerate() {
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
        let input: Vec<RfmInput<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| RfmInput {
                customer_id: id,
                recency_days: Some(i as f64),
                frequency: i as u64,
                monetary: 10.0 * i as f64,
            })
            .collect();
        let s = score(&input);
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
                customer_id: "a",
                recency_days: None,
                frequency: 0,
                monetary: 0.0,
            },
            RfmInput {
                customer_id: "b",
                recency_days: Some(400.0),
                frequency: 1,
                monetary: 1.0,
            },
        ];
        let s = score(&input);
        assert!(s[0].r < s[1].r);
    }
}
