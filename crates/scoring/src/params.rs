//! Model parameters by name, as stored with each fit: one table per model, used both ways.

use rapport_domain::models::bgnbd::BgNbd;
use rapport_domain::models::gamma_gamma::GammaGamma;
use std::collections::BTreeMap;

/// A model whose parameters are stored as a name → value map.
pub trait NamedParams: Sized {
    /// The model's name in stored fits.
    const MODEL: &'static str;
    /// The parameters by name.
    fn to_map(&self) -> BTreeMap<String, f64>;
    /// The parameters from a stored map; `None` when one is missing.
    fn from_map(map: &BTreeMap<String, f64>) -> Option<Self>;
}

impl NamedParams for BgNbd {
    const MODEL: &'static str = "bgnbd";

    fn to_map(&self) -> BTreeMap<String, f64> {
        [
            ("r", self.r),
            ("alpha", self.alpha),
            ("a", self.a),
            ("b", self.b),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    fn from_map(m: &BTreeMap<String, f64>) -> Option<Self> {
        Some(BgNbd {
            r: *m.get("r")?,
            alpha: *m.get("alpha")?,
            a: *m.get("a")?,
            b: *m.get("b")?,
        })
    }
}

impl NamedParams for GammaGamma {
    const MODEL: &'static str = "gamma_gamma";

    fn to_map(&self) -> BTreeMap<String, f64> {
        [("p", self.p), ("q", self.q), ("gamma", self.gamma)]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect()
    }

    fn from_map(m: &BTreeMap<String, f64>) -> Option<Self> {
        Some(GammaGamma {
            p: *m.get("p")?,
            q: *m.get("q")?,
            gamma: *m.get("gamma")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip_by_name() {
        let bg = BgNbd {
            r: 0.2,
            alpha: 4.0,
            a: 0.8,
            b: 2.4,
        };
        assert_eq!(BgNbd::from_map(&bg.to_map()), Some(bg));
        let gg = GammaGamma {
            p: 6.0,
            q: 3.7,
            gamma: 15.0,
        };
        assert_eq!(GammaGamma::from_map(&gg.to_map()), Some(gg));
        assert_eq!(BgNbd::from_map(&gg.to_map()), None);
    }
}
