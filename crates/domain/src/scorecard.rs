//! Health scorecards: measures normalised to 0–100, weighted into a score and a band.

use crate::metrics::Indicators;

/// Version of the built-in scorecard, recorded on every snapshot it makes.
pub const DEFAULT_SCORECARD_VERSION: &str = "default-v2";

/// Health band of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    /// Band of a 0–100 score with the default cut-offs: red to 50, yellow to 75, green above.
    pub fn of(score: f64) -> Band {
        if score <= 50.0 {
            Band::Red
        } else if score <= 75.0 {
            Band::Yellow
        } else {
            Band::Green
        }
    }
}

/// How an indicator's raw value becomes a 0–100 score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Normalisation {
    /// Linear between `worst` (0) and `best` (100), clamped; `best` may be below `worst`.
    Linear { worst: f64, best: f64 },
    /// Good/average/poor bands → 100/60/0. `higher_is_better` tells which way the limits point.
    Bands {
        good: f64,
        average: f64,
        higher_is_better: bool,
    },
}

impl Normalisation {
    /// The 0–100 score of a raw value.
    pub fn apply(self, value: f64) -> f64 {
        match self {
            Normalisation::Linear { worst, best } => {
                if best == worst {
                    return 100.0;
                }
                (100.0 * (value - worst) / (best - worst)).clamp(0.0, 100.0)
            }
            Normalisation::Bands {
                good,
                average,
                higher_is_better,
            } => {
                let at_least = |limit: f64| {
                    if higher_is_better {
                        value >= limit
                    } else {
                        value <= limit
                    }
                };
                if at_least(good) {
                    100.0
                } else if at_least(average) {
                    60.0
                } else {
                    0.0
                }
            }
        }
    }
}

/// The indicators the scorecard knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    RecencyDays,
    Frequency,
    Monetary,
    LatestNps,
    Complaints90d,
    PAlive,
    Clv,
}

impl Indicator {
    /// Stable name, as shown in explanations.
    pub fn name(self) -> &'static str {
        match self {
            Indicator::RecencyDays => "recency_days",
            Indicator::Frequency => "frequency",
            Indicator::Monetary => "monetary",
            Indicator::LatestNps => "latest_nps",
            Indicator::Complaints90d => "complaints_90d",
            Indicator::PAlive => "p_alive",
            Indicator::Clv => "clv_12m",
        }
    }

    /// The raw value, or `None` when the customer has no data for it.
    pub fn value(self, ind: &Indicators) -> Option<f64> {
        match self {
            Indicator::RecencyDays => ind.recency_days,
            Indicator::Frequency => Some(ind.frequency as f64),
            Indicator::Monetary => Some(ind.monetary),
            Indicator::LatestNps => ind.latest_nps.map(f64::from),
            Indicator::Complaints90d => Some(ind.complaints_90d as f64),
            Indicator::PAlive => ind.p_alive,
            Indicator::Clv => ind.clv,
        }
    }
}

/// One measure of a scorecard.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Measure {
    pub indicator: Indicator,
    pub normalisation: Normalisation,
    pub weight: f64,
}

/// A weighted scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub version: String,
    pub measures: Vec<Measure>,
}

/// One measure's part in a score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasureScore {
    pub indicator: Indicator,
    pub value: Option<f64>,
    /// Normalised 0–100 (0 when the value is missing; it then weighs nothing).
    pub score: f64,
    /// Points added to the overall score: score × weight / total weight of present measures.
    pub contribution: f64,
    pub weight: f64,
}

/// A computed health score with its explanation.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthScore {
    pub score: f64,
    pub band: Band,
    pub measures: Vec<MeasureScore>,
}

impl Default for Scorecard {
    fn default() -> Self {
        use Indicator::*;
        use Normalisation::*;
        let m = |indicator, normalisation, weight| Measure {
            indicator,
            normalisation,
            weight,
        };
        Scorecard {
            version: DEFAULT_SCORECARD_VERSION.to_owned(),
            measures: vec![
                m(
                    RecencyDays,
                    Linear {
                        worst: 180.0,
                        best: 0.0,
                    },
                    0.25,
                ),
                m(
                    Frequency,
                    Bands {
                        good: 5.0,
                        average: 2.0,
                        higher_is_better: true,
                    },
                    0.20,
                ),
                m(
                    Monetary,
                    Linear {
                        worst: 0.0,
                        best: 1_000.0,
                    },
                    0.20,
                ),
                m(
                    LatestNps,
                    Linear {
                        worst: 0.0,
                        best: 10.0,
                    },
                    0.20,
                ),
                m(
                    Complaints90d,
                    Bands {
                        good: 0.0,
                        average: 1.0,
                        higher_is_better: false,
                    },
                    0.15,
                ),
                // Left out (not counted as zero) until the tenant's models are fitted.
                m(
                    PAlive,
                    Linear {
                        worst: 0.0,
                        best: 1.0,
                    },
                    0.15,
                ),
                m(
                    Clv,
                    Linear {
                        worst: 0.0,
                        best: 1_000.0,
                    },
                    0.10,
                ),
            ],
        }
    }
}

impl Scorecard {
    /// Scores a customer's indicators; missing measures are left out of the weighted mean.
    pub fn score(&self, ind: &Indicators) -> HealthScore {
        let mut measures: Vec<MeasureScore> = self
            .measures
            .iter()
            .map(|m| {
                let value = m.indicator.value(ind);
                MeasureScore {
                    indicator: m.indicator,
                    value,
                    score: value.map_or(0.0, |v| m.normalisation.apply(v)),
                    contribution: 0.0,
                    weight: m.weight,
                }
            })
            .collect();
        let present: f64 = measures
            .iter()
            .filter(|m| m.value.is_some())
            .map(|m| m.weight)
            .sum();
        if present > 0.0 {
            for m in measures.iter_mut().filter(|m| m.value.is_some()) {
                m.contribution = m.score * m.weight / present;
            }
        }
        let score = measures
            .iter()
            .map(|m| m.contribution)
            .sum::<f64>()
            .clamp(0.0, 100.0);
        HealthScore {
            score,
            band: Band::of(score),
            measures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indicators() -> Indicators {
        Indicators {
            recency_days: Some(18.0),
            frequency: 3,
            monetary: 500.0,
            latest_nps: Some(9),
            complaints_90d: 1,
            p_alive: None,
            clv: None,
        }
    }

    #[test]
    fn model_measures_count_once_the_models_are_fitted() {
        let mut ind = indicators();
        ind.p_alive = Some(0.4);
        ind.clv = Some(250.0);
        let s = Scorecard::default().score(&ind);
        let expected = (0.25 * 90.0
            + 0.20 * 60.0
            + 0.20 * 50.0
            + 0.20 * 90.0
            + 0.15 * 60.0
            + 0.15 * 40.0
            + 0.10 * 25.0)
            / 1.25;
        assert!(
            (s.score - expected).abs() < 1e-9,
            "{} vs {expected}",
            s.score
        );
    }

    #[test]
    fn weighted_mean_of_normalised_measures() {
        let s = Scorecard::default().score(&indicators());
        // recency 90, frequency 60, monetary 50, nps 90, complaints 60.
        let expected = 0.25 * 90.0 + 0.20 * 60.0 + 0.20 * 50.0 + 0.20 * 90.0 + 0.15 * 60.0;
        assert!(
            (s.score - expected).abs() < 1e-9,
            "{} vs {expected}",
            s.score
        );
        assert_eq!(s.band, Band::Yellow);
        let sum: f64 = s.measures.iter().map(|m| m.contribution).sum();
        assert!((sum - s.score).abs() < 1e-9);
    }

    #[test]
    fn a_missing_measure_is_left_out_not_zero() {
        let mut ind = indicators();
        ind.latest_nps = None;
        let s = Scorecard::default().score(&ind);
        let expected = (0.25 * 90.0 + 0.20 * 60.0 + 0.20 * 50.0 + 0.15 * 60.0) / 0.80;
        assert!((s.score - expected).abs() < 1e-9);
        assert_eq!(s.measures[3].contribution, 0.0);
    }

    #[test]
    fn bands_and_normalisation_edges() {
        assert_eq!(Band::of(50.0), Band::Red);
        assert_eq!(Band::of(50.1), Band::Yellow);
        assert_eq!(Band::of(75.0), Band::Yellow);
        assert_eq!(Band::of(76.0), Band::Green);
        let lower_better = Normalisation::Bands {
            good: 0.0,
            average: 1.0,
            higher_is_better: false,
        };
        assert_eq!(
            [0.0, 1.0, 2.0].map(|v| lower_better.apply(v)),
            [100.0, 60.0, 0.0]
        );
        let recency = Normalisation::Linear {
            worst: 180.0,
            best: 0.0,
        };
        assert_eq!(
            [0.0, 90.0, 400.0].map(|v| recency.apply(v)),
            [100.0, 50.0, 0.0]
        );
    }

    #[test]
    fn an_unhappy_silent_customer_is_red() {
        let ind = Indicators {
            recency_days: Some(200.0),
            frequency: 1,
            monetary: 20.0,
            latest_nps: Some(1),
            complaints_90d: 3,
            p_alive: Some(0.05),
            clv: None,
        };
        let s = Scorecard::default().score(&ind);
        assert_eq!(s.band, Band::Red, "{}", s.score);
    }
}
