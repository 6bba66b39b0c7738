//! Alerting configuration: the rules with their per-tier settings, the playbook and the
//! holdout share, written in TOML ([`DEFAULT_TOML`] is the built-in one) and validated whole,
//! so an `AlertConfig` that exists is usable.

use crate::alert::notify::Inhibition;
use crate::alert::playbook::Playbook;
use crate::tier::Tier;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

/// The built-in alerting configuration, used until a tenant sets its own.
pub const DEFAULT_TOML: &str = include_str!("../../alerting.toml");

/// The longest snooze a person may ask for.
pub const MAX_SNOOZE_SECS: i64 = 7 * 24 * 3600;

/// How urgent an alert is, lowest first.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
    Critical,
}

impl Severity {
    /// Every severity, lowest first.
    pub const ALL: [Severity; 4] = [
        Severity::Info,
        Severity::Warning,
        Severity::Error,
        Severity::Critical,
    ];

    /// Stable name, as stored and configured.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
            Severity::Critical => "critical",
        }
    }

    /// The severity of a stored or configured name.
    pub fn from_name(name: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.name() == name)
    }

    /// One level up, critical staying critical.
    pub fn escalated(self) -> Severity {
        match self {
            Severity::Info => Severity::Warning,
            Severity::Warning => Severity::Error,
            Severity::Error | Severity::Critical => Severity::Critical,
        }
    }
}

/// The kinds of risk rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleKind {
    HealthBelow,
    ScoreDrop,
    TierDowngrade,
    Detractor,
    ComplaintSpike,
    PAliveDrop,
    FirstResponseSla,
}

impl RuleKind {
    /// Every rule kind.
    pub const ALL: [RuleKind; 7] = [
        RuleKind::HealthBelow,
        RuleKind::ScoreDrop,
        RuleKind::TierDowngrade,
        RuleKind::Detractor,
        RuleKind::ComplaintSpike,
        RuleKind::PAliveDrop,
        RuleKind::FirstResponseSla,
    ];

    /// Whether the rule watches a level that every score re-reads (health, its drop,
    /// P(alive)) rather than events that each trigger it (an answer, a complaint, a ticket, a
    /// downgrade): a run of firing readings is then one trigger, so a score still low is
    /// neither counted again nor written again (the alert keeps the evidence of its fall),
    /// and an alert resolved by hand re-opens only once the level has left the firing range
    /// (into the hysteresis band or above) and fallen anew.
    pub fn reads_a_level(self) -> bool {
        matches!(
            self,
            RuleKind::HealthBelow | RuleKind::ScoreDrop | RuleKind::PAliveDrop
        )
    }

    /// Stable name: the TOML section, the rule of an alert and part of its dedup key.
    pub fn name(self) -> &'static str {
        match self {
            RuleKind::HealthBelow => "health_below",
            RuleKind::ScoreDrop => "score_drop",
            RuleKind::TierDowngrade => "tier_downgrade",
            RuleKind::Detractor => "detractor",
            RuleKind::ComplaintSpike => "complaint_spike",
            RuleKind::PAliveDrop => "p_alive_drop",
            RuleKind::FirstResponseSla => "first_response_sla",
        }
    }

    /// The kind of a stored or configured name.
    pub fn from_name(name: &str) -> Option<RuleKind> {
        RuleKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// Whether a score drop is measured in points or in percent of the best score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DropUnit {
    Points,
    Percent,
}

/// The settings specific to each rule kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// Health below `enter_below` fires; at or above `exit_at_or_above` clears; below
    /// `escalate_below` raises the severity one level.
    HealthBelow {
        enter_below: f64,
        exit_at_or_above: f64,
        escalate_below: Option<f64>,
    },
    /// The score `drop` below the best score of the last `window_days` fires, under
    /// `exit_drop` clears; fewer than `min_observations` scores in the window never fire.
    ScoreDrop {
        drop: f64,
        unit: DropUnit,
        exit_drop: f64,
        window_days: u32,
        min_observations: u32,
    },
    /// A tier downgrade from `from_at_least` or above fires; regaining that tier clears.
    TierDowngrade { from_at_least: Tier },
    /// A latest NPS answer ≤ `nps_at_most` or CSAT ≤ `csat_at_most`, given within
    /// `within_days`, fires; a later better answer clears.
    Detractor {
        nps_at_most: i32,
        csat_at_most: i32,
        within_days: u32,
    },
    /// Complaints of the last 7 days ≥ `floor` and > mean + z·σ of the `baseline_weeks`
    /// weeks before fire; back at or under the mean (or under the floor) clears.
    ComplaintSpike {
        floor: u32,
        z: f64,
        baseline_weeks: u32,
    },
    /// For customers of `tiers` (`for_tiers` in TOML): P(alive) below `enter_below` fires, at or above
    /// `exit_at_or_above` clears.
    PAliveDrop {
        tiers: Vec<Tier>,
        enter_below: f64,
        exit_at_or_above: f64,
    },
    /// An open ticket without a first response after `hours` fires; its answer clears.
    FirstResponseSla { hours: f64 },
}

/// One rule as it applies to one tier.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub kind: RuleKind,
    pub enabled: bool,
    pub severity: Severity,
    /// How long the condition must hold before an alert opens.
    pub pending_secs: i64,
    /// How long the exit condition must hold before an open alert resolves.
    pub resolve_after_secs: i64,
    pub params: Params,
}

/// The longest trailing window any rule may look back over, in days.
pub const MAX_LOOKBACK_DAYS: u32 = 182;

/// A tenant's validated alerting configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertConfig {
    /// Per configured kind: the rule for customers with no tier, then one per tier
    /// (indexed by [`tier_index`]).
    rules: BTreeMap<RuleKind, [Rule; 6]>,
    /// Share of alerts that get no recommendation (the control group), 0–0.5.
    pub holdout_share: f64,
    /// How long after opening an alert's outcome is measured.
    pub effect_window_days: u32,
    pub playbook: Playbook,
    /// When one alert holds another's notifications back (`[[inhibit]]`).
    pub inhibitions: Vec<Inhibition>,
}

fn tier_index(tier: Option<Tier>) -> usize {
    tier.map_or(0, |t| 1 + t as usize)
}

impl AlertConfig {
    /// The effect window in milliseconds.
    pub fn effect_window_ms(&self) -> i64 {
        i64::from(self.effect_window_days) * 86_400_000
    }

    /// The built-in configuration.
    pub fn builtin() -> AlertConfig {
        // The built-in text is part of the build and covered by a test; failing to parse it is
        // a defect of this crate, not of any input.
        AlertConfig::from_toml(DEFAULT_TOML).expect("the built-in alerting.toml is valid")
    }

    /// The rule of `kind` as it applies to customers of `tier`, when configured and enabled.
    pub fn rule(&self, kind: RuleKind, tier: Option<Tier>) -> Option<&Rule> {
        self.rules
            .get(&kind)
            .map(|r| &r[tier_index(tier)])
            .filter(|r| r.enabled)
    }

    /// The kinds configured (enabled for at least one tier).
    pub fn kinds(&self) -> impl Iterator<Item = RuleKind> + '_ {
        self.rules
            .iter()
            .filter(|(_, r)| r.iter().any(|r| r.enabled))
            .map(|(k, _)| *k)
    }

    /// Parses and validates a configuration written in TOML.
    pub fn from_toml(text: &str) -> Result<AlertConfig, ConfigError> {
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| ConfigError {
            path: String::new(),
            reason: e.to_string().trim().to_owned(),
        })?;
        let holdout_share = match doc.remove("holdout_share") {
            None => 0.1,
            Some(v) => v
                .as_float()
                .or_else(|| v.as_integer().map(|i| i as f64))
                .filter(|s| (0.0..=0.5).contains(s))
                .ok_or_else(|| {
                    ConfigError::at("holdout_share", "must be a number from 0 to 0.5")
                })?,
        };
        let effect_window_days = match doc.remove("effect_window_days") {
            None => 30,
            Some(v) => v
                .as_integer()
                .filter(|d| (1..=365).contains(d))
                .map(|d| d as u32)
                .ok_or_else(|| {
                    ConfigError::at("effect_window_days", "must be a whole number from 1 to 365")
                })?,
        };
        let playbook = match doc.remove("playbook") {
            None => Playbook::default(),
            Some(v) => Playbook::from_value(v)?,
        };
        let inhibitions = match doc.remove("inhibit") {
            None => Vec::new(),
            Some(v) => Inhibition::from_value(v)?,
        };
        let mut rules = BTreeMap::new();
        for (name, value) in doc {
            let kind = RuleKind::from_name(&name).ok_or_else(|| {
                let known: Vec<&str> = RuleKind::ALL.iter().map(|k| k.name()).collect();
                ConfigError::at(
                    &name,
                    format!(
                        "unknown setting or rule (rules: {}; settings: holdout_share, \
                         effect_window_days, playbook, inhibit)",
                        known.join(", ")
                    ),
                )
            })?;
            rules.insert(kind, rule_by_tier(kind, value)?);
        }
        Ok(AlertConfig {
            rules,
            holdout_share,
            effect_window_days,
            playbook,
            inhibitions,
        })
    }
}

/// A rule's section parsed once for customers without a tier and once per tier, each tier's
/// table laid over the base.
fn rule_by_tier(kind: RuleKind, value: toml::Value) -> Result<[Rule; 6], ConfigError> {
    let name = kind.name();
    let toml::Value::Table(mut base) = value else {
        return Err(ConfigError::at(name, "must be a table"));
    };
    let mut overrides: BTreeMap<Tier, toml::Table> = BTreeMap::new();
    if let Some(tiers) = base.remove("tiers") {
        let toml::Value::Table(tiers) = tiers else {
            return Err(ConfigError::at(format!("{name}.tiers"), "must be a table"));
        };
        for (tier_name, table) in tiers {
            let path = format!("{name}.tiers.{tier_name}");
            let tier = Tier::from_name(&tier_name).ok_or_else(|| {
                ConfigError::at(
                    &path,
                    "unknown tier (vip, gold, silver, bronze, regular)".to_owned(),
                )
            })?;
            let toml::Value::Table(table) = table else {
                return Err(ConfigError::at(path, "must be a table"));
            };
            overrides.insert(tier, table);
        }
    }
    let at = |tier: Option<Tier>| -> Result<Rule, ConfigError> {
        let mut merged = base.clone();
        let mut path = name.to_owned();
        if let Some(extra) = tier.and_then(|t| overrides.get(&t)) {
            merged.extend(extra.clone());
            if let Some(t) = tier {
                path = format!("{name}.tiers.{}", t.name());
            }
        }
        rule(kind, merged, &path)
    };
    Ok([
        at(None)?,
        at(Some(Tier::Regular))?,
        at(Some(Tier::Bronze))?,
        at(Some(Tier::Silver))?,
        at(Some(Tier::Gold))?,
        at(Some(Tier::Vip))?,
    ])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSpec {
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default = "warning")]
    severity: String,
    #[serde(default)]
    pending_secs: i64,
    #[serde(default)]
    resolve_after_secs: i64,
}

fn yes() -> bool {
    true
}

fn warning() -> String {
    "warning".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBelowSpec {
    enter_below: f64,
    exit_at_or_above: f64,
    escalate_below: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ScoreDropSpec {
    drop: f64,
    #[serde(default = "points")]
    unit: DropUnit,
    exit_drop: Option<f64>,
    #[serde(default = "thirty")]
    window_days: u32,
    #[serde(default = "three")]
    min_observations: u32,
}

fn points() -> DropUnit {
    DropUnit::Points
}

fn thirty() -> u32 {
    30
}

fn three() -> u32 {
    3
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TierDowngradeSpec {
    #[serde(default = "silver")]
    from_at_least: String,
}

fn silver() -> String {
    "silver".to_owned()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DetractorSpec {
    #[serde(default = "six")]
    nps_at_most: i32,
    #[serde(default = "two")]
    csat_at_most: i32,
    #[serde(default = "fourteen")]
    within_days: u32,
}

fn six() -> i32 {
    6
}

fn two() -> i32 {
    2
}

fn fourteen() -> u32 {
    14
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ComplaintSpikeSpec {
    #[serde(default = "three")]
    floor: u32,
    #[serde(default = "z2")]
    z: f64,
    #[serde(default = "twelve")]
    baseline_weeks: u32,
}

fn z2() -> f64 {
    2.0
}

fn twelve() -> u32 {
    12
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PAliveDropSpec {
    #[serde(default = "high_value")]
    for_tiers: Vec<String>,
    enter_below: f64,
    exit_at_or_above: f64,
}

fn high_value() -> Vec<String> {
    vec!["vip".to_owned(), "gold".to_owned()]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FirstResponseSlaSpec {
    hours: f64,
}

const COMMON_KEYS: [&str; 4] = ["enabled", "severity", "pending_secs", "resolve_after_secs"];

fn parse<T: DeserializeOwned>(table: toml::Table, path: &str) -> Result<T, ConfigError> {
    toml::Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::at(path, e.message().trim().to_owned()))
}

fn rule(kind: RuleKind, mut table: toml::Table, path: &str) -> Result<Rule, ConfigError> {
    let mut common = toml::Table::new();
    for key in COMMON_KEYS {
        if let Some(v) = table.remove(key) {
            common.insert(key.to_owned(), v);
        }
    }
    let common: CommonSpec = parse(common, path)?;
    let severity = Severity::from_name(&common.severity).ok_or_else(|| {
        ConfigError::at(
            format!("{path}.severity"),
            format!(
                "unknown severity {:?} (info, warning, error, critical)",
                common.severity
            ),
        )
    })?;
    let max_secs = i64::from(MAX_LOOKBACK_DAYS) * 86_400;
    for (key, secs) in [
        ("pending_secs", common.pending_secs),
        ("resolve_after_secs", common.resolve_after_secs),
    ] {
        if !(0..=max_secs).contains(&secs) {
            return Err(ConfigError::at(
                format!("{path}.{key}"),
                format!("must be from 0 to {max_secs} seconds"),
            ));
        }
    }
    let field = |f: &str| format!("{path}.{f}");
    let params = match kind {
        RuleKind::HealthBelow => {
            let s: HealthBelowSpec = parse(table, path)?;
            score(s.enter_below, &field("enter_below"))?;
            score(s.exit_at_or_above, &field("exit_at_or_above"))?;
            if s.exit_at_or_above < s.enter_below {
                return Err(ConfigError::at(
                    field("exit_at_or_above"),
                    format!("must not be below enter_below ({})", s.enter_below),
                ));
            }
            if let Some(e) = s.escalate_below {
                score(e, &field("escalate_below"))?;
                if e > s.enter_below {
                    return Err(ConfigError::at(
                        field("escalate_below"),
                        format!("must not be above enter_below ({})", s.enter_below),
                    ));
                }
            }
            Params::HealthBelow {
                enter_below: s.enter_below,
                exit_at_or_above: s.exit_at_or_above,
                escalate_below: s.escalate_below,
            }
        }
        RuleKind::ScoreDrop => {
            let s: ScoreDropSpec = parse(table, path)?;
            if !(s.drop.is_finite() && s.drop > 0.0 && s.drop <= 100.0) {
                return Err(ConfigError::at(
                    field("drop"),
                    "must be a number above 0 and at most 100",
                ));
            }
            let exit_drop = s.exit_drop.unwrap_or(s.drop / 2.0);
            if !(exit_drop.is_finite() && (0.0..=s.drop).contains(&exit_drop)) {
                return Err(ConfigError::at(
                    field("exit_drop"),
                    format!("must be from 0 to drop ({})", s.drop),
                ));
            }
            days(s.window_days, &field("window_days"))?;
            if s.min_observations < 1 {
                return Err(ConfigError::at(
                    field("min_observations"),
                    "must be at least 1",
                ));
            }
            Params::ScoreDrop {
                drop: s.drop,
                unit: s.unit,
                exit_drop,
                window_days: s.window_days,
                min_observations: s.min_observations,
            }
        }
        RuleKind::TierDowngrade => {
            let s: TierDowngradeSpec = parse(table, path)?;
            let from_at_least = Tier::from_name(&s.from_at_least).ok_or_else(|| {
                ConfigError::at(
                    field("from_at_least"),
                    "unknown tier (vip, gold, silver, bronze, regular)",
                )
            })?;
            Params::TierDowngrade { from_at_least }
        }
        RuleKind::Detractor => {
            let s: DetractorSpec = parse(table, path)?;
            if !(0..=10).contains(&s.nps_at_most) {
                return Err(ConfigError::at(
                    field("nps_at_most"),
                    "must be from 0 to 10",
                ));
            }
            if !(1..=5).contains(&s.csat_at_most) {
                return Err(ConfigError::at(
                    field("csat_at_most"),
                    "must be from 1 to 5",
                ));
            }
            days(s.within_days, &field("within_days"))?;
            Params::Detractor {
                nps_at_most: s.nps_at_most,
                csat_at_most: s.csat_at_most,
                within_days: s.within_days,
            }
        }
        RuleKind::ComplaintSpike => {
            let s: ComplaintSpikeSpec = parse(table, path)?;
            if s.floor < 1 {
                return Err(ConfigError::at(field("floor"), "must be at least 1"));
            }
            if !(s.z.is_finite() && s.z >= 0.0) {
                return Err(ConfigError::at(field("z"), "must be a number ≥ 0"));
            }
            let max_weeks = MAX_LOOKBACK_DAYS / 7 - 1;
            if !(2..=max_weeks).contains(&s.baseline_weeks) {
                return Err(ConfigError::at(
                    field("baseline_weeks"),
                    format!("must be from 2 to {max_weeks}"),
                ));
            }
            Params::ComplaintSpike {
                floor: s.floor,
                z: s.z,
                baseline_weeks: s.baseline_weeks,
            }
        }
        RuleKind::PAliveDrop => {
            let s: PAliveDropSpec = parse(table, path)?;
            let tiers = s
                .for_tiers
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    Tier::from_name(t).ok_or_else(|| {
                        ConfigError::at(
                            format!("{path}.for_tiers[{i}]"),
                            format!("unknown tier {t:?} (vip, gold, silver, bronze, regular)"),
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            for (key, v) in [
                ("enter_below", s.enter_below),
                ("exit_at_or_above", s.exit_at_or_above),
            ] {
                if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
                    return Err(ConfigError::at(field(key), "must be a probability, 0 to 1"));
                }
            }
            if s.exit_at_or_above < s.enter_below {
                return Err(ConfigError::at(
                    field("exit_at_or_above"),
                    format!("must not be below enter_below ({})", s.enter_below),
                ));
            }
            Params::PAliveDrop {
                tiers,
                enter_below: s.enter_below,
                exit_at_or_above: s.exit_at_or_above,
            }
        }
        RuleKind::FirstResponseSla => {
            let s: FirstResponseSlaSpec = parse(table, path)?;
            let max_hours = f64::from(MAX_LOOKBACK_DAYS) * 24.0;
            if !(s.hours.is_finite() && s.hours > 0.0 && s.hours <= max_hours) {
                return Err(ConfigError::at(
                    field("hours"),
                    format!("must be above 0 and at most {max_hours}"),
                ));
            }
            Params::FirstResponseSla { hours: s.hours }
        }
    };
    Ok(Rule {
        kind,
        enabled: common.enabled,
        severity,
        pending_secs: common.pending_secs,
        resolve_after_secs: common.resolve_after_secs,
        params,
    })
}

fn score(v: f64, path: &str) -> Result<(), ConfigError> {
    if v.is_finite() && (0.0..=100.0).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::at(path, "must be a score from 0 to 100"))
    }
}

fn days(v: u32, path: &str) -> Result<(), ConfigError> {
    if (1..=MAX_LOOKBACK_DAYS).contains(&v) {
        Ok(())
    } else {
        Err(ConfigError::at(
            path,
            format!("must be from 1 to {MAX_LOOKBACK_DAYS} days"),
        ))
    }
}

/// Why a configuration was refused: the path of the offending setting and the reason.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}{reason}", if path.is_empty() { String::new() } else { format!("{path}: ") })]
pub struct ConfigError {
    /// Where in the document, e.g. `health_below.tiers.vip.exit_at_or_above` (empty for
    /// syntax errors, whose reason carries the line and column).
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub(crate) fn at(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_parses_with_tier_overrides() {
        let c = AlertConfig::builtin();
        assert_eq!(c.kinds().count(), 7);
        let vip = c.rule(RuleKind::FirstResponseSla, Some(Tier::Vip)).unwrap();
        assert_eq!(vip.params, Params::FirstResponseSla { hours: 4.0 });
        assert_eq!(vip.severity, Severity::Critical);
        let none = c.rule(RuleKind::FirstResponseSla, None).unwrap();
        assert_eq!(none.params, Params::FirstResponseSla { hours: 72.0 });
        assert_eq!(none.severity, Severity::Warning);
        assert_eq!(c.holdout_share, 0.1);
    }

    #[test]
    fn errors_name_the_setting() {
        let bad = |text: &str| AlertConfig::from_toml(text).unwrap_err();
        let e = bad("[health_below]\nenter_below = 60\nexit_at_or_above = 50\n");
        assert_eq!(e.path, "health_below.exit_at_or_above");
        let e = bad("[health_below]\nenter_below = 50\nexit_at_or_above = 60\n\
             [health_below.tiers.vip]\nexit_at_or_above = 40\n");
        assert_eq!(e.path, "health_below.tiers.vip.exit_at_or_above");
        let e = bad("[health_below.tiers.platinum]\nseverity = \"info\"\n");
        assert_eq!(e.path, "health_below.tiers.platinum");
        let e = bad("[detractor]\nseverity = \"loud\"\n");
        assert_eq!(e.path, "detractor.severity");
        let e = bad("[detractor]\nnps_at_most = 11\n");
        assert_eq!(e.path, "detractor.nps_at_most");
        let e = bad("[detractor]\ncolour = 1\n");
        assert_eq!(e.path, "detractor");
        assert!(e.reason.contains("colour"), "{e}");
        let e = bad("[bogus]\n");
        assert_eq!(e.path, "bogus");
        let e = bad("holdout_share = 0.9\n");
        assert_eq!(e.path, "holdout_share");
        let e = bad("[score_drop]\ndrop = 10\nexit_drop = 20\n");
        assert_eq!(e.path, "score_drop.exit_drop");
        let e = bad("[complaint_spike]\nbaseline_weeks = 1\n");
        assert_eq!(e.path, "complaint_spike.baseline_weeks");
        let e = bad("[first_response_sla]\nhours = 4\npending_secs = -1\n");
        assert_eq!(e.path, "first_response_sla.pending_secs");
        assert!(bad("[health_below\n").path.is_empty());
    }

    #[test]
    fn severities_are_stored_by_name() {
        for s in Severity::ALL {
            let text = serde_json::to_string(&s).unwrap();
            assert_eq!(text, format!("\"{}\"", s.name()));
            assert_eq!(serde_json::from_str::<Severity>(&text).unwrap(), s);
        }
    }

    #[test]
    fn absent_or_disabled_rules_do_not_apply() {
        let c = AlertConfig::from_toml("[detractor]\n[detractor.tiers.regular]\nenabled = false\n")
            .unwrap();
        assert!(c.rule(RuleKind::HealthBelow, None).is_none());
        assert!(c.rule(RuleKind::Detractor, Some(Tier::Regular)).is_none());
        assert!(c.rule(RuleKind::Detractor, Some(Tier::Gold)).is_some());
        assert_eq!(c.kinds().collect::<Vec<_>>(), vec![RuleKind::Detractor]);
    }
}
