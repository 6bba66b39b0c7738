//! Who hears of alert changes, and when: an endpoint's route (which alerts it takes, how its
//! notifications are grouped and timed), inhibition and silences (what is muted, and why),
//! how a group's changes are cut into deliveries of bounded size, and the one summary a
//! backfill's alerts make. Pure: alerting's store applies it.

use crate::alert::config::{AlertConfig, ConfigError, Params, RuleKind, Severity};
use crate::lifecycle::Stage;
use crate::tier::Tier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The labels of an alert that routes, groups, inhibitions and silences look at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    pub rule: String,
    pub severity: String,
    /// The tier's name; empty when the customer is not graded.
    pub tier: String,
    /// The lifecycle stage's name when the alert last changed; empty when not graded.
    pub stage: String,
    pub customer: String,
}

/// A label, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Label {
    Rule,
    Severity,
    Tier,
    Stage,
    Customer,
}

impl Label {
    /// Every label.
    pub const ALL: [Label; 5] = [
        Label::Rule,
        Label::Severity,
        Label::Tier,
        Label::Stage,
        Label::Customer,
    ];

    /// Stable name, as configured.
    pub fn name(self) -> &'static str {
        match self {
            Label::Rule => "rule",
            Label::Severity => "severity",
            Label::Tier => "tier",
            Label::Stage => "stage",
            Label::Customer => "customer",
        }
    }

    /// The label of a configured name.
    pub fn from_name(name: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.name() == name)
    }
}

impl Labels {
    /// The value of one label.
    pub fn get(&self, label: Label) -> &str {
        match label {
            Label::Rule => &self.rule,
            Label::Severity => &self.severity,
            Label::Tier => &self.tier,
            Label::Stage => &self.stage,
            Label::Customer => &self.customer,
        }
    }
}

/// A set of alerts: every list that is given must hold the alert's label; empty lists match
/// anything, so the empty matcher takes every alert.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Matcher {
    pub rules: Vec<String>,
    pub severities: Vec<String>,
    pub tiers: Vec<String>,
    pub stages: Vec<String>,
    pub customer_ids: Vec<String>,
}

impl Matcher {
    /// Whether the alert with these labels is in the set.
    pub fn matches(&self, l: &Labels) -> bool {
        let holds =
            |list: &[String], value: &str| list.is_empty() || list.iter().any(|v| v == value);
        holds(&self.rules, &l.rule)
            && holds(&self.severities, &l.severity)
            && holds(&self.tiers, &l.tier)
            && holds(&self.stages, &l.stage)
            && holds(&self.customer_ids, &l.customer)
    }

    /// Whether it takes every alert.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.severities.is_empty()
            && self.tiers.is_empty()
            && self.stages.is_empty()
            && self.customer_ids.is_empty()
    }

    /// Refuses names the platform does not know, naming the list and the name (a typo in a
    /// route would otherwise silently match nothing).
    pub fn check(&self, path: &str) -> Result<(), ConfigError> {
        let known =
            |field: &str, list: &[String], ok: &dyn Fn(&str) -> bool, names: String| match list
                .iter()
                .find(|v| !ok(v))
            {
                Some(v) => Err(ConfigError::at(
                    join(path, field),
                    format!("unknown name {v:?} (known: {names})"),
                )),
                None => Ok(()),
            };
        known(
            "rules",
            &self.rules,
            &|v| RuleKind::from_name(v).is_some(),
            names(RuleKind::ALL.map(RuleKind::name)),
        )?;
        known(
            "severities",
            &self.severities,
            &|v| Severity::from_name(v).is_some(),
            names(Severity::ALL.map(Severity::name)),
        )?;
        known(
            "tiers",
            &self.tiers,
            &|v| Tier::from_name(v).is_some(),
            names(Tier::DESCENDING.map(Tier::name)),
        )?;
        known(
            "stages",
            &self.stages,
            &|v| Stage::from_name(v).is_some(),
            names(Stage::ALL.map(Stage::name)),
        )?;
        if self.customer_ids.iter().any(|c| c.trim().is_empty()) {
            return Err(ConfigError::at(
                join(path, "customer_ids"),
                "a customer id must not be empty",
            ));
        }
        Ok(())
    }

    /// What the matcher takes, for people: `rule in [detractor], tier in [vip]`.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            ("rule", &self.rules),
            ("severity", &self.severities),
            ("tier", &self.tiers),
            ("stage", &self.stages),
            ("customer", &self.customer_ids),
        ]
        .into_iter()
        .filter(|(_, list)| !list.is_empty())
        .map(|(name, list)| format!("{name} in [{}]", list.join(", ")))
        .collect();
        if parts.is_empty() {
            "every alert".to_owned()
        } else {
            parts.join(", ")
        }
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_owned()
    } else {
        format!("{path}.{field}")
    }
}

fn names<const N: usize>(all: [&str; N]) -> String {
    all.join(", ")
}

/// However long a backfill's alerts keep opening, its summary goes out after this (or ten
/// `backfill_wait`s, the longer): a history large enough to take longer is summarised in
/// parts.
pub const BACKFILL_MAX_MS: i64 = 10 * 60_000;

/// How long one timing may be, at most.
const MAX_TIMING_MS: i64 = 7 * 86_400_000;
/// Bounds of a delivery's size.
const MIN_BYTES: usize = 4 * 1024;
const MAX_BYTES: usize = 8 * 1024 * 1024;

/// What an endpoint takes and how its notifications are grouped and timed, in the manner of
/// Alertmanager's routes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Route {
    /// The alerts the endpoint hears of.
    pub matcher: Matcher,
    /// Changes of alerts with equal values of these labels travel together.
    pub group_by: Vec<Label>,
    /// How long a new group collects changes before its first delivery.
    pub group_wait_ms: i64,
    /// Least time between two deliveries of one group's changes.
    pub group_interval_ms: i64,
    /// A group whose alerts still stand is reminded of this long after its last delivery;
    /// 0 never reminds.
    pub repeat_interval_ms: i64,
    /// A backfill's summary goes out once no alert of the backfill opened for this long.
    pub backfill_wait_ms: i64,
    /// Longest body of one delivery; a longer group is split into parts.
    pub max_bytes: usize,
}

impl Default for Route {
    fn default() -> Self {
        // Alertmanager's defaults, which teams already know how to live with.
        Route {
            matcher: Matcher::default(),
            group_by: vec![Label::Rule, Label::Severity],
            group_wait_ms: 30_000,
            group_interval_ms: 300_000,
            repeat_interval_ms: 4 * 3_600_000,
            backfill_wait_ms: 60_000,
            max_bytes: 256 * 1024,
        }
    }
}

impl Route {
    /// Refuses a route that cannot work, naming the setting.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.matcher.check("matcher")?;
        for (name, ms) in [
            ("group_wait", self.group_wait_ms),
            ("group_interval", self.group_interval_ms),
            ("repeat_interval", self.repeat_interval_ms),
            ("backfill_wait", self.backfill_wait_ms),
        ] {
            if !(0..=MAX_TIMING_MS).contains(&ms) {
                return Err(ConfigError::at(name, "must be from 0 to 7 days"));
            }
        }
        if self.repeat_interval_ms != 0 && self.repeat_interval_ms < self.group_interval_ms {
            return Err(ConfigError::at(
                "repeat_interval",
                "must be 0 (never) or at least group_interval",
            ));
        }
        if !(MIN_BYTES..=MAX_BYTES).contains(&self.max_bytes) {
            return Err(ConfigError::at(
                "max_bytes",
                format!("must be from {MIN_BYTES} to {MAX_BYTES}"),
            ));
        }
        let mut seen = self.group_by.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != self.group_by.len() {
            return Err(ConfigError::at("group_by", "names a label twice"));
        }
        Ok(())
    }

    /// The group of an alert with these labels: its key (stable, unambiguous) and its labels.
    pub fn group(&self, l: &Labels) -> (String, BTreeMap<String, String>) {
        let labels: BTreeMap<String, String> = self
            .group_by
            .iter()
            .map(|g| (g.name().to_owned(), l.get(*g).to_owned()))
            .collect();
        (group_key(&labels), labels)
    }

    /// When a group's pending changes go out: a new or long-quiet group after `group_wait`,
    /// one delivered lately no sooner than `group_interval` after that delivery; a backfill's
    /// once it has been quiet for `backfill_wait` ([`BACKFILL_MAX_MS`] or ten waits, the
    /// longer, at most after it began).
    pub fn due_at(
        &self,
        backfill: bool,
        pending_since: i64,
        last_sent: Option<i64>,
        now: i64,
    ) -> i64 {
        if backfill {
            let quiet = now.saturating_add(self.backfill_wait_ms);
            let longest = self
                .backfill_wait_ms
                .saturating_mul(10)
                .max(BACKFILL_MAX_MS);
            let cap = pending_since.saturating_add(longest);
            return quiet.min(cap);
        }
        let waited = pending_since.saturating_add(self.group_wait_ms);
        match last_sent {
            None => waited,
            Some(sent) => waited.max(sent.saturating_add(self.group_interval_ms)),
        }
    }

    /// When a group whose alerts still stand is reminded of them, if ever.
    pub fn repeat_at(&self, last_sent: i64) -> Option<i64> {
        (self.repeat_interval_ms > 0).then(|| last_sent.saturating_add(self.repeat_interval_ms))
    }
}

/// The key of a group of labels: `rule=health_below,severity=warning`, with `%`, `,` and `=`
/// in values escaped so two groups never share a key.
pub fn group_key(labels: &BTreeMap<String, String>) -> String {
    let escape = |v: &str| {
        v.replace('%', "%25")
            .replace(',', "%2C")
            .replace('=', "%3D")
    };
    labels
        .iter()
        .map(|(k, v)| format!("{k}={}", escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// A rule under which a customer's alerts are not notified: while the same customer has a
/// standing alert matching `source`, or while it is in one of `source_stages`, its alerts
/// matching `target` are held (they still exist and can be worked).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inhibition {
    pub target: Matcher,
    #[serde(default)]
    pub source: Option<Matcher>,
    #[serde(default)]
    pub source_stages: Vec<String>,
}

impl Inhibition {
    /// Parses the `[[inhibit]]` tables of an alerting configuration.
    pub fn from_value(value: toml::Value) -> Result<Vec<Inhibition>, ConfigError> {
        let list: Vec<Inhibition> = value
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::at("inhibit", e.message().to_owned()))?;
        for (i, rule) in list.iter().enumerate() {
            let path = format!("inhibit[{i}]");
            rule.target.check(&join(&path, "target"))?;
            if let Some(source) = &rule.source {
                source.check(&join(&path, "source"))?;
            }
            Matcher {
                stages: rule.source_stages.clone(),
                ..Matcher::default()
            }
            .check(&path)
            .map_err(|e| ConfigError::at(join(&path, "source_stages"), e.reason))?;
            if rule.source.is_none() && rule.source_stages.is_empty() {
                return Err(ConfigError::at(
                    path,
                    "needs a source (a matcher of the customer's other alerts) or source_stages",
                ));
            }
        }
        Ok(list)
    }

    /// Why the rule holds an alert with `target` labels back, given the labels of the same
    /// customer's other standing alerts; `None` when it does not.
    fn holds(&self, target: &Labels, standing: &[Labels]) -> Option<String> {
        if !self.target.matches(target) {
            return None;
        }
        if self.source_stages.contains(&target.stage) {
            return Some(format!("the customer is {}", target.stage));
        }
        let source = self.source.as_ref()?;
        standing
            .iter()
            .find(|other| source.matches(other))
            .map(|other| format!("the customer's {} alert stands", other.rule))
    }
}

/// A silence: alerts matching it are not notified between its start and its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Silence {
    pub id: i64,
    pub matcher: Matcher,
    pub starts_at: i64,
    pub ends_at: i64,
}

impl Silence {
    /// Whether it mutes at `now`.
    pub fn active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }
}

/// Why an alert's notification is held back.
#[derive(Debug, Clone, PartialEq)]
pub enum Mute {
    Silenced { id: i64, until: i64 },
    Inhibited { why: String },
}

/// Whether an alert with `labels` is muted at `now`, and by what: the silences first (they
/// say when they end), then the inhibitions, judged against the labels of the customer's
/// other standing alerts.
pub fn mute(
    labels: &Labels,
    standing: &[Labels],
    inhibitions: &[Inhibition],
    silences: &[Silence],
    now: i64,
) -> Option<Mute> {
    if let Some(s) = silences
        .iter()
        .find(|s| s.active(now) && s.matcher.matches(labels))
    {
        return Some(Mute::Silenced {
            id: s.id,
            until: s.ends_at,
        });
    }
    inhibitions
        .iter()
        .find_map(|i| i.holds(labels, standing))
        .map(|why| Mute::Inhibited { why })
}

/// Cuts items (JSON texts) into parts whose items add up to at most `max_bytes` beside
/// `overhead` (the envelope each part carries); an item too long for any part travels alone.
pub fn split(items: Vec<String>, max_bytes: usize, overhead: usize) -> Vec<Vec<String>> {
    let budget = max_bytes.saturating_sub(overhead);
    let mut parts: Vec<Vec<String>> = Vec::new();
    let mut size = 0;
    for item in items {
        // One more byte for the comma between items.
        let cost = item.len() + 1;
        match parts.last_mut() {
            Some(part) if size + cost <= budget => {
                size += cost;
                part.push(item);
            }
            _ => {
                size = cost;
                parts.push(vec![item]);
            }
        }
    }
    parts
}

/// What a backfill opened, as one summary tells it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BackfillSummary {
    /// The import's name.
    pub backfill: String,
    /// Alerts opened, and customers they concern, per rule.
    pub by_rule: BTreeMap<String, RuleCount>,
    pub by_severity: BTreeMap<String, usize>,
    pub by_tier: BTreeMap<String, usize>,
    /// Alerts the summary leaves out because they were muted.
    pub muted: usize,
    /// The sentence people read first.
    pub text: String,
}

/// One rule's count in a backfill's summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RuleCount {
    pub alerts: usize,
    pub customers: usize,
}

impl BackfillSummary {
    /// Counts the alerts a backfill opened (their labels) and writes the sentence.
    pub fn of(backfill: &str, opened: &[Labels], muted: usize, config: &AlertConfig) -> Self {
        let mut by_rule: BTreeMap<String, RuleCount> = BTreeMap::new();
        let mut customers: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
        let mut by_severity: BTreeMap<String, usize> = BTreeMap::new();
        let mut by_tier: BTreeMap<String, usize> = BTreeMap::new();
        for l in opened {
            by_rule.entry(l.rule.clone()).or_default().alerts += 1;
            customers.entry(&l.rule).or_default().insert(&l.customer);
            *by_severity.entry(l.severity.clone()).or_default() += 1;
            let tier = if l.tier.is_empty() { "none" } else { &l.tier };
            *by_tier.entry(tier.to_owned()).or_default() += 1;
        }
        for (rule, set) in customers {
            if let Some(c) = by_rule.get_mut(rule) {
                c.customers = set.len();
            }
        }
        let mut phrases: Vec<String> = by_rule
            .iter()
            .map(|(rule, c)| phrase(rule, c, config))
            .collect();
        if phrases.is_empty() {
            phrases.push("no alert opened".to_owned());
        }
        let mut text = format!("{} after the import of {backfill}", phrases.join("; "));
        if muted > 0 {
            text.push_str(&format!(" ({} more muted)", thousands(muted)));
        }
        BackfillSummary {
            backfill: backfill.to_owned(),
            by_rule,
            by_severity,
            by_tier,
            muted,
            text,
        }
    }
}

/// One rule's part of a summary: "23,570 customers below 50".
fn phrase(rule: &str, c: &RuleCount, config: &AlertConfig) -> String {
    let n = match c.customers {
        1 => "1 customer".to_owned(),
        n => format!("{} customers", thousands(n)),
    };
    let kind = RuleKind::from_name(rule);
    let params = kind.and_then(|k| config.rule(k, None)).map(|r| &r.params);
    match (kind, params) {
        (_, Some(Params::HealthBelow { enter_below, .. })) => {
            format!("{n} below {enter_below}")
        }
        (Some(RuleKind::ScoreDrop), _) => format!("{n} whose score dropped"),
        (Some(RuleKind::TierDowngrade), _) => format!("{n} downgraded"),
        (Some(RuleKind::Detractor), _) => format!("{n} answering as detractors"),
        (Some(RuleKind::ComplaintSpike), _) => format!("{n} with a complaint spike"),
        (Some(RuleKind::PAliveDrop), _) => format!("{n} likely lost (P(alive))"),
        (Some(RuleKind::FirstResponseSla), _) => {
            format!("{n} with tickets past their first-response SLA")
        }
        _ => format!("{} {rule} alerts", thousands(c.alerts)),
    }
}

/// 23570 → "23,570".
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests;
