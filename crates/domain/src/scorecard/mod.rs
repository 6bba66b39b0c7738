//! Health scorecards: measures normalised to 0–100, rolled up into weighted groups and an
//! overall score with a band, every point of which is accounted for by a measure.
//!
//! A scorecard is configuration, written in TOML ([`DEFAULT_TOML`] is the built-in one) and
//! parsed into a [`ScorecardSet`]: a default card plus variants for tiers and lifecycle
//! stages. Parsing validates everything, so a `ScorecardSet` that exists is usable.

use crate::lifecycle::Stage;
use crate::metrics::{Indicator, MAX_WINDOW_DAYS};
use crate::tier::Tier;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// The built-in scorecard, used until a tenant sets its own.
pub const DEFAULT_TOML: &str = include_str!("../../scorecard.toml");

/// Window of a windowed measure that does not name one.
pub const DEFAULT_WINDOW_DAYS: u32 = 90;

/// Health band of a score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Band {
    Red,
    Yellow,
    Green,
}

impl Band {
    /// Stable name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            Band::Red => "red",
            Band::Yellow => "yellow",
            Band::Green => "green",
        }
    }

    /// The band of a stored name.
    pub fn from_name(name: &str) -> Option<Band> {
        [Band::Red, Band::Yellow, Band::Green]
            .into_iter()
            .find(|b| b.name() == name)
    }
}

/// Cut-offs of the bands: red up to `red`, yellow up to `yellow`, green above.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bands {
    pub red: f64,
    pub yellow: f64,
}

impl Default for Bands {
    /// Red 0–50, yellow 51–75, green 76–100.
    fn default() -> Self {
        Bands {
            red: 50.0,
            yellow: 75.0,
        }
    }
}

impl Bands {
    /// The band of a 0–100 score.
    pub fn of(&self, score: f64) -> Band {
        if score <= self.red {
            Band::Red
        } else if score <= self.yellow {
            Band::Yellow
        } else {
            Band::Green
        }
    }

    fn check(&self, path: &str) -> Result<(), ScorecardError> {
        let ok = self.red.is_finite()
            && self.yellow.is_finite()
            && 0.0 <= self.red
            && self.red < self.yellow
            && self.yellow < 100.0;
        if ok {
            Ok(())
        } else {
            Err(ScorecardError::at(
                path,
                format!(
                    "must satisfy 0 <= red < yellow < 100, got red {} and yellow {}",
                    self.red, self.yellow
                ),
            ))
        }
    }
}

/// How an indicator's raw value becomes a 0–100 score.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Normalisation {
    /// Linear between `worst` (0) and `best` (100), clamped; `best` may be below `worst`.
    Linear { worst: f64, best: f64 },
    /// Good/average/poor bands → 100/60/0: at least `good` is good, at least `average` is
    /// average (at most, when `higher_is_better` is false).
    Bands {
        good: f64,
        average: f64,
        higher_is_better: bool,
    },
    /// The customer's percentile among the tenant's customers (mid-rank, so ties share it).
    Percentile { higher_is_better: bool },
}

impl Normalisation {
    /// Whether the score ranks the customer among its tenant (and so needs the tenant's
    /// percentile table).
    pub fn ranks(self) -> bool {
        matches!(self, Normalisation::Percentile { .. })
    }

    /// The 0–100 score of a raw value; `None` for a percentile without a population yet.
    pub fn apply(self, value: f64, population: Option<&PercentileTable>) -> Option<f64> {
        Some(match self {
            Normalisation::Linear { worst, best } => {
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
            Normalisation::Percentile { higher_is_better } => {
                let p = population
                    .filter(|t| !t.quantiles.is_empty())?
                    .percentile(value);
                if higher_is_better { p } else { 100.0 - p }
            }
        })
    }

    fn check(&self, path: &str) -> Result<(), ScorecardError> {
        match *self {
            Normalisation::Linear { worst, best } => {
                if !(worst.is_finite() && best.is_finite()) || worst == best {
                    return Err(ScorecardError::at(
                        format!("{path}.linear"),
                        "worst and best must be finite and differ",
                    ));
                }
            }
            Normalisation::Bands {
                good,
                average,
                higher_is_better,
            } => {
                let ordered = if higher_is_better {
                    good > average
                } else {
                    good < average
                };
                if !(good.is_finite() && average.is_finite() && ordered) {
                    return Err(ScorecardError::at(
                        format!("{path}.bands"),
                        format!(
                            "good must be {} average (good {good}, average {average})",
                            if higher_is_better { "above" } else { "below" }
                        ),
                    ));
                }
            }
            Normalisation::Percentile { .. } => {}
        }
        Ok(())
    }
}

/// A tenant's distribution of one measure's raw values: 101 quantiles, lowest first (none
/// when no customer has a value).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, Deserialize)]
pub struct PercentileTable {
    pub quantiles: Vec<f64>,
}

impl PercentileTable {
    /// The table of a population's values (non-finite values are ignored); `None` when empty.
    pub fn from_values(mut values: Vec<f64>) -> Option<PercentileTable> {
        values.retain(|v| v.is_finite());
        if values.is_empty() {
            return None;
        }
        values.sort_by(f64::total_cmp);
        let last = (values.len() - 1) as f64;
        let quantiles = (0..=100)
            .map(|i| {
                let pos = last * f64::from(i) / 100.0;
                let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
                values[lo] + (values[hi] - values[lo]) * (pos - lo as f64)
            })
            .collect();
        Some(PercentileTable { quantiles })
    }

    /// The percentile (0–100) of `value`: the mid-rank of the value among the quantiles.
    pub fn percentile(&self, value: f64) -> f64 {
        let below = self.quantiles.partition_point(|q| *q < value);
        let at_or_below = self.quantiles.partition_point(|q| *q <= value);
        100.0 * (below + at_or_below) as f64 / 2.0 / self.quantiles.len().max(1) as f64
    }
}

/// Percentile tables of a tenant, by measure key.
pub type Population = BTreeMap<String, PercentileTable>;

/// One measure of a scorecard: an indicator, normalised and weighted within its group.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// Unique within the card: the indicator's name, with `_<window>d` for windowed ones.
    pub key: String,
    pub indicator: Indicator,
    pub window_days: u32,
    pub normalisation: Normalisation,
    pub weight: f64,
    /// This measure's own band cut-offs, if it has them (else the card's).
    pub bands: Option<Bands>,
}

/// Measures rolled up with a weight in the overall score.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub name: String,
    pub weight: f64,
    pub measures: Vec<Measure>,
}

/// A weighted scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct Scorecard {
    pub groups: Vec<Group>,
    pub bands: Bands,
}

/// A card for the customers of some tiers or lifecycle stages.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    pub tiers: BTreeSet<Tier>,
    pub stages: BTreeSet<Stage>,
    pub card: Scorecard,
}

/// A tenant's scorecards: the default card and the variants that replace it for some tiers
/// and stages. A stage's variant wins over a tier's.
#[derive(Debug, Clone, PartialEq)]
pub struct ScorecardSet {
    pub name: String,
    pub default: Scorecard,
    pub variants: Vec<Variant>,
}

/// One measure's part in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasureScore {
    pub key: String,
    pub indicator: Indicator,
    pub group: String,
    pub value: Option<f64>,
    /// Normalised 0–100; `None` when the value (or its population) is missing, and the
    /// measure is then left out of the weighted mean.
    pub score: Option<f64>,
    /// The configured weight within its group.
    pub weight: f64,
    /// Points this measure adds to the overall score.
    pub contribution: f64,
    /// Points this measure's shortfall from 100 costs the overall score.
    pub shortfall: f64,
    pub band: Option<Band>,
}

/// One group's part in a score.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupScore {
    pub name: String,
    /// Weighted mean of its present measures; `None` when none is present.
    pub score: Option<f64>,
    pub weight: f64,
    pub contribution: f64,
}

/// A computed health score with its explanation; the contributions sum to the score.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthScore {
    pub score: f64,
    pub band: Band,
    pub groups: Vec<GroupScore>,
    pub measures: Vec<MeasureScore>,
}

impl HealthScore {
    /// Whether any measure had data: a customer with none has no meaningful score.
    pub fn measured(&self) -> bool {
        self.measures.iter().any(|m| m.score.is_some())
    }
}

impl Scorecard {
    /// Every measure, with its group's name.
    pub fn measures(&self) -> impl Iterator<Item = (&str, &Measure)> {
        self.groups
            .iter()
            .flat_map(|g| g.measures.iter().map(move |m| (g.name.as_str(), m)))
    }

    /// Scores a customer: `value` gives each measure's raw value, `population` the tenant's
    /// percentile tables. Missing measures, and groups without any present measure, are left
    /// out of the weighted means, not counted as zero.
    pub fn score(
        &self,
        value: impl Fn(&Measure) -> Option<f64>,
        population: &Population,
    ) -> HealthScore {
        let scored: Vec<Vec<(Option<f64>, Option<f64>)>> = self
            .groups
            .iter()
            .map(|g| {
                g.measures
                    .iter()
                    .map(|m| {
                        let v = value(m).filter(|v| v.is_finite());
                        let s = v.and_then(|v| m.normalisation.apply(v, population.get(&m.key)));
                        (v, s)
                    })
                    .collect()
            })
            .collect();
        let present_weight = |g: &Group, s: &[(Option<f64>, Option<f64>)]| -> f64 {
            g.measures
                .iter()
                .zip(s)
                .filter(|(_, (_, s))| s.is_some())
                .map(|(m, _)| m.weight)
                .sum()
        };
        let group_total: f64 = self
            .groups
            .iter()
            .zip(&scored)
            .filter(|(g, s)| present_weight(g, s) > 0.0)
            .map(|(g, _)| g.weight)
            .sum();

        let mut groups = Vec::with_capacity(self.groups.len());
        let mut measures = Vec::new();
        for (g, s) in self.groups.iter().zip(&scored) {
            let within = present_weight(g, s);
            let group_share = if within > 0.0 && group_total > 0.0 {
                g.weight / group_total
            } else {
                0.0
            };
            let mut group_score = 0.0;
            for (m, (v, ms)) in g.measures.iter().zip(s) {
                let share = match ms {
                    Some(_) => group_share * m.weight / within,
                    None => 0.0,
                };
                if let Some(ms) = ms {
                    group_score += ms * m.weight / within;
                }
                measures.push(MeasureScore {
                    key: m.key.clone(),
                    indicator: m.indicator,
                    group: g.name.clone(),
                    value: *v,
                    score: *ms,
                    weight: m.weight,
                    contribution: share * ms.unwrap_or(0.0),
                    shortfall: share * (100.0 - ms.unwrap_or(100.0)),
                    band: ms.map(|ms| m.bands.unwrap_or(self.bands).of(ms)),
                });
            }
            groups.push(GroupScore {
                name: g.name.clone(),
                score: (within > 0.0).then_some(group_score),
                weight: g.weight,
                contribution: group_share * group_score,
            });
        }
        let score = measures
            .iter()
            .map(|m| m.contribution)
            .sum::<f64>()
            .clamp(0.0, 100.0);
        HealthScore {
            score,
            band: self.bands.of(score),
            groups,
            measures,
        }
    }
}

impl ScorecardSet {
    /// The built-in scorecard set.
    pub fn builtin() -> ScorecardSet {
        match ScorecardSet::from_toml(DEFAULT_TOML) {
            Ok(set) => set,
            // The built-in file is checked by a test; reaching this is a build defect.
            Err(e) => panic!("the built-in scorecard is invalid: {e}"),
        }
    }

    /// The card that scores a customer of this tier and stage.
    pub fn card_for(&self, tier: Option<Tier>, stage: Option<Stage>) -> &Scorecard {
        let by_stage = stage.and_then(|s| self.variants.iter().find(|v| v.stages.contains(&s)));
        let by_tier = || tier.and_then(|t| self.variants.iter().find(|v| v.tiers.contains(&t)));
        by_stage.or_else(by_tier).map_or(&self.default, |v| &v.card)
    }

    /// Every card of the set.
    pub fn cards(&self) -> impl Iterator<Item = &Scorecard> {
        std::iter::once(&self.default).chain(self.variants.iter().map(|v| &v.card))
    }

    /// Parses and validates a scorecard set written in TOML.
    pub fn from_toml(text: &str) -> Result<ScorecardSet, ScorecardError> {
        let spec: SetSpec = toml::from_str(text).map_err(|e| ScorecardError {
            path: String::new(),
            reason: e.to_string().trim().to_owned(),
        })?;
        let bands = spec.bands.unwrap_or_default();
        bands.check("bands")?;
        let default = card(&spec.groups, bands, "groups")?;
        let mut taken_tiers = BTreeSet::new();
        let mut taken_stages = BTreeSet::new();
        let mut variants = Vec::new();
        for (i, v) in spec.variants.iter().enumerate() {
            let path = format!("variants[{i}]");
            let mut tiers = BTreeSet::new();
            for (j, name) in v.tiers.iter().enumerate() {
                let tier = Tier::from_name(name).ok_or_else(|| {
                    ScorecardError::at(
                        format!("{path}.tiers[{j}]"),
                        format!("unknown tier {name:?} (vip, gold, silver, bronze, regular)"),
                    )
                })?;
                if !taken_tiers.insert(tier) {
                    return Err(ScorecardError::at(
                        format!("{path}.tiers[{j}]"),
                        format!("tier {name:?} already has a variant"),
                    ));
                }
                tiers.insert(tier);
            }
            let mut stages = BTreeSet::new();
            for (j, name) in v.stages.iter().enumerate() {
                let stage = Stage::from_name(name).ok_or_else(|| {
                    ScorecardError::at(
                        format!("{path}.stages[{j}]"),
                        format!("unknown stage {name:?}"),
                    )
                })?;
                if !taken_stages.insert(stage) {
                    return Err(ScorecardError::at(
                        format!("{path}.stages[{j}]"),
                        format!("stage {name:?} already has a variant"),
                    ));
                }
                stages.insert(stage);
            }
            if tiers.is_empty() && stages.is_empty() {
                return Err(ScorecardError::at(
                    path,
                    "a variant must name at least one tier or stage",
                ));
            }
            let vbands = v.bands.unwrap_or(bands);
            vbands.check(&format!("{path}.bands"))?;
            variants.push(Variant {
                tiers,
                stages,
                card: card(&v.groups, vbands, &format!("{path}.groups"))?,
            });
        }
        Ok(ScorecardSet {
            name: spec.name.unwrap_or_default(),
            default,
            variants,
        })
    }
}

fn card(groups: &[GroupSpec], bands: Bands, path: &str) -> Result<Scorecard, ScorecardError> {
    if groups.is_empty() {
        return Err(ScorecardError::at(path, "at least one group is required"));
    }
    let mut names = BTreeSet::new();
    let mut keys = BTreeSet::new();
    let mut out = Vec::with_capacity(groups.len());
    for (i, g) in groups.iter().enumerate() {
        let gpath = format!("{path}[{i}]");
        if g.name.trim().is_empty() || !names.insert(g.name.as_str()) {
            return Err(ScorecardError::at(
                format!("{gpath}.name"),
                format!("must be non-empty and unique, got {:?}", g.name),
            ));
        }
        positive(g.weight, &format!("{gpath}.weight"))?;
        if g.measures.is_empty() {
            return Err(ScorecardError::at(
                format!("{gpath}.measures"),
                "at least one measure is required",
            ));
        }
        let mut measures = Vec::with_capacity(g.measures.len());
        for (j, m) in g.measures.iter().enumerate() {
            let mpath = format!("{gpath}.measures[{j}]");
            let indicator = Indicator::from_name(&m.indicator).ok_or_else(|| {
                let known: Vec<&str> = Indicator::ALL.iter().map(|i| i.name()).collect();
                ScorecardError::at(
                    format!("{mpath}.indicator"),
                    format!(
                        "unknown indicator {:?} (known: {})",
                        m.indicator,
                        known.join(", ")
                    ),
                )
            })?;
            let window_days = match (indicator.windowed(), m.window_days) {
                (true, None) => DEFAULT_WINDOW_DAYS,
                (true, Some(w)) if (1..=MAX_WINDOW_DAYS).contains(&w) => w,
                (true, Some(w)) => {
                    return Err(ScorecardError::at(
                        format!("{mpath}.window_days"),
                        format!("must be 1 to {MAX_WINDOW_DAYS}, got {w}"),
                    ));
                }
                (false, Some(_)) => {
                    return Err(ScorecardError::at(
                        format!("{mpath}.window_days"),
                        format!("{} has no window", indicator.name()),
                    ));
                }
                (false, None) => 0,
            };
            positive(m.weight, &format!("{mpath}.weight"))?;
            m.normalise.check(&format!("{mpath}.normalise"))?;
            if let Some(b) = &m.bands {
                b.check(&format!("{mpath}.bands"))?;
            }
            let key = if indicator.windowed() {
                format!("{}_{window_days}d", indicator.name())
            } else {
                indicator.name().to_owned()
            };
            if !keys.insert(key.clone()) {
                return Err(ScorecardError::at(
                    mpath,
                    format!("measure {key} appears twice in the card"),
                ));
            }
            measures.push(Measure {
                key,
                indicator,
                window_days,
                normalisation: m.normalise,
                weight: m.weight,
                bands: m.bands,
            });
        }
        out.push(Group {
            name: g.name.clone(),
            weight: g.weight,
            measures,
        });
    }
    Ok(Scorecard { groups: out, bands })
}

fn positive(w: f64, path: &str) -> Result<(), ScorecardError> {
    if w.is_finite() && w > 0.0 {
        Ok(())
    } else {
        Err(ScorecardError::at(
            path,
            format!("must be a positive number, got {w}"),
        ))
    }
}

/// Why a scorecard was refused: the path of the offending setting and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ScorecardError {
    /// Where in the document, e.g. `groups[1].measures[0].weight` (empty for syntax errors,
    /// whose reason carries the line and column).
    pub path: String,
    pub reason: String,
}

impl ScorecardError {
    fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ScorecardError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetSpec {
    name: Option<String>,
    #[allow(dead_code)]
    description: Option<String>,
    bands: Option<Bands>,
    groups: Vec<GroupSpec>,
    #[serde(default)]
    variants: Vec<VariantSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupSpec {
    name: String,
    weight: f64,
    measures: Vec<MeasureSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MeasureSpec {
    indicator: String,
    window_days: Option<u32>,
    weight: f64,
    normalise: Normalisation,
    bands: Option<Bands>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VariantSpec {
    #[serde(default)]
    tiers: Vec<String>,
    #[serde(default)]
    stages: Vec<String>,
    bands: Option<Bands>,
    groups: Vec<GroupSpec>,
}

#[cfg(test)]
mod tests;
