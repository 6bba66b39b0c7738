//! Ranking a population deterministically: ties are broken by customer id, and the ids are
//! compared once, not in every ranking.

/// Each customer's position in customer-id order (byte order; equal ids by position): the
/// tie-breaker of every ranking of a population.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdRanks(Vec<u32>);

impl IdRanks {
    /// The ranks of `ids`.
    pub fn of<'a>(ids: impl Iterator<Item = &'a str>) -> IdRanks {
        let ids: Vec<&str> = ids.collect();
        // Sorting by a string's first eight bytes as a number first compares most pairs
        // without reading the strings (ids differ early); only equal prefixes compare the
        // whole ids, then positions.
        let mut order: Vec<(u64, u32)> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| (prefix(id), i as u32))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| ids[a.1 as usize].cmp(ids[b.1 as usize]))
                .then(a.1.cmp(&b.1))
        });
        let mut ranks = vec![0u32; ids.len()];
        for (rank, (_, i)) in order.into_iter().enumerate() {
            ranks[i as usize] = rank as u32;
        }
        IdRanks(ranks)
    }

    /// The ranks of `n` customers already listed in id order: each one's rank is its position.
    pub fn sequential(n: usize) -> IdRanks {
        IdRanks((0..n as u32).collect())
    }

    /// Customers ranked.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the population is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The customers' positions (indices into the population) from the smallest `key` to the
    /// largest, equal keys in id order.
    pub fn order_by(&self, key: impl Fn(usize) -> u64) -> Vec<u32> {
        let mut ranked: Vec<(u64, u32, u32)> = self
            .0
            .iter()
            .enumerate()
            .map(|(i, id)| (key(i), *id, i as u32))
            .collect();
        // Id ranks are unique, so an unstable sort is deterministic.
        ranked.sort_unstable();
        ranked.into_iter().map(|(_, _, i)| i).collect()
    }
}

/// A string's first eight bytes (zero-padded) as a big-endian number: its order is the
/// byte order of the strings' prefixes.
fn prefix(s: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = s.len().min(8);
    bytes[..n].copy_from_slice(&s.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_fall_in_id_order() {
        let ids = IdRanks::of(["c", "a", "b"].into_iter());
        assert_eq!(ids.order_by(|_| 0), [1, 2, 0]);
        let values = [2.0, 1.0, 2.0];
        assert_eq!(ids.order_by(|i| ordered(values[i])), [1, 2, 0]);
    }

    #[test]
    fn ids_listed_in_order_rank_as_listed() {
        let listed = ["a", "b", "b\0", "c"];
        assert_eq!(
            IdRanks::sequential(listed.len()),
            IdRanks::of(listed.into_iter())
        );
    }

    #[test]
    fn ranks_follow_byte_order_of_whole_ids() {
        // Shared eight-byte prefixes, a prefix of another id, a zero byte, multi-byte
        // characters and a repeated id (ranked by position).
        let ids = [
            "customer-b",
            "customer-a",
            "customer",
            "customer\0",
            "é",
            "e",
            "",
            "customer-a",
        ];
        let mut expected: Vec<usize> = (0..ids.len()).collect();
        expected.sort_by(|&a, &b| ids[a].cmp(ids[b]).then(a.cmp(&b)));
        let ranks = IdRanks::of(ids.into_iter());
        assert_eq!(
            ranks.order_by(|_| 0),
            expected.iter().map(|&i| i as u32).collect::<Vec<_>>()
        );
    }

    proptest::proptest! {
        #[test]
        fn ranks_equal_a_plain_sort_of_the_ids(
            ids in proptest::collection::vec("[a-c\\x00é]{0,10}", 0..60)
        ) {
            let mut expected: Vec<u32> = (0..ids.len() as u32).collect();
            expected.sort_by(|&a, &b| ids[a as usize].cmp(&ids[b as usize]).then(a.cmp(&b)));
            let ranks = IdRanks::of(ids.iter().map(String::as_str));
            proptest::prop_assert_eq!(ranks.order_by(|_| 0), expected);
        }
    }

    #[test]
    fn float_order_is_total_order() {
        let mut xs = [
            3.5,
            -0.0,
            0.0,
            -2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e-300,
            -1e300,
        ];
        let mut by_bits = xs;
        xs.sort_by(f64::total_cmp);
        by_bits.sort_by_key(|x| ordered(*x));
        assert_eq!(xs.map(f64::to_bits), by_bits.map(f64::to_bits));
    }
}
