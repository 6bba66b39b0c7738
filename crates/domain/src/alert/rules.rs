//! The rules' conditions on a customer's facts, and the state machine that turns a condition
//! held over time into opening, updating and resolving one alert (pending period before an
//! alert opens, exit condition held before it resolves).

use crate::alert::config::{AlertConfig, DropUnit, Params, Rule, RuleKind, Severity};
use crate::alert::facts::Facts;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

const DAY_MS: i64 = 86_400_000;
const WEEK_MS: i64 = 7 * DAY_MS;

/// Where a rule's condition stands for one customer (and discriminator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// The enter condition holds.
    Firing,
    /// Neither: between the enter and the exit thresholds, where nothing changes.
    Between,
    /// The exit condition holds.
    Clear,
}

/// A rule's condition for one customer and discriminator.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub kind: RuleKind,
    /// Tells apart several alerts of one rule on one customer (a ticket id, a survey kind);
    /// empty for most rules. Never a value that changes while the alert stands.
    pub discriminator: String,
    pub holds: Holds,
    pub severity: Severity,
    /// Identity of what made the condition fire (the time of the observation, answer,
    /// complaint or ticket): a trigger already counted is not counted again.
    pub trigger: i64,
    /// What the condition saw, for people.
    pub evidence: String,
    /// When the condition may change by the passing of time alone.
    pub recheck_at: Option<i64>,
    /// The rule's pending and resolve periods (milliseconds).
    pub pending_ms: i64,
    pub resolve_after_ms: i64,
}

impl Condition {
    fn new(rule: &Rule, discriminator: impl Into<String>, holds: Holds, trigger: i64) -> Self {
        Condition {
            kind: rule.kind,
            discriminator: discriminator.into(),
            holds,
            severity: rule.severity,
            trigger,
            evidence: String::new(),
            recheck_at: None,
            pending_ms: rule.pending_secs * 1_000,
            resolve_after_ms: rule.resolve_after_secs * 1_000,
        }
    }

    fn evidence(mut self, text: String) -> Self {
        self.evidence = text;
        self
    }
}

fn threshold(value: f64, enter_below: f64, exit_at_or_above: f64) -> Holds {
    if value < enter_below {
        Holds::Firing
    } else if value >= exit_at_or_above {
        Holds::Clear
    } else {
        Holds::Between
    }
}

/// Every configured rule's condition on `facts` at `now` (milliseconds). A rule that does not
/// apply to the customer gives no condition: its standing alerts clear.
pub fn conditions(config: &AlertConfig, facts: &Facts, now: i64) -> Vec<Condition> {
    let s = &facts.signals;
    let at = facts.observed_at;
    let mut out = Vec::new();
    for kind in config.kinds() {
        let Some(rule) = config.rule(kind, s.tier) else {
            continue;
        };
        match &rule.params {
            Params::HealthBelow {
                enter_below,
                exit_at_or_above,
                escalate_below,
            } => {
                let Some(score) = s.score else { continue };
                let mut c = Condition::new(
                    rule,
                    "",
                    threshold(score, *enter_below, *exit_at_or_above),
                    at,
                )
                .evidence(format!(
                    "health {score:.1} (opens below {enter_below}, resolves at {exit_at_or_above})"
                ));
                if escalate_below.is_some_and(|e| score < e) {
                    c.severity = c.severity.escalated();
                }
                out.push(c);
            }
            Params::ScoreDrop {
                drop,
                unit,
                exit_drop,
                window_days,
                min_observations,
            } => {
                let Some(score) = s.score else { continue };
                let from = now - i64::from(*window_days) * DAY_MS;
                let window: Vec<&(i64, f64)> =
                    facts.scores.iter().filter(|(t, _)| *t > from).collect();
                let best = window
                    .iter()
                    .copied()
                    .max_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
                let (Some(&(best_at, best)), true) =
                    (best, window.len() >= *min_observations as usize)
                else {
                    out.push(Condition::new(rule, "", Holds::Clear, at));
                    continue;
                };
                let gap = match unit {
                    DropUnit::Points => best - score,
                    DropUnit::Percent if best > 0.0 => (best - score) / best * 100.0,
                    DropUnit::Percent => 0.0,
                };
                let holds = if gap >= *drop {
                    Holds::Firing
                } else if gap < *exit_drop {
                    Holds::Clear
                } else {
                    Holds::Between
                };
                let suffix = if *unit == DropUnit::Points { "" } else { " %" };
                let mut c = Condition::new(rule, "", holds, at).evidence(format!(
                    "health {score:.1}, {gap:.1}{suffix} below the best of {window_days} days \
                     ({best:.1}); opens at {drop}{suffix}"
                ));
                // The best score leaves the window then, and the gap shrinks.
                c.recheck_at = Some(best_at + i64::from(*window_days) * DAY_MS);
                out.push(c);
            }
            Params::TierDowngrade { from_at_least } => {
                let (Some(d), Some(tier)) = (facts.downgrade, s.tier) else {
                    continue;
                };
                if d.from < *from_at_least {
                    continue;
                }
                out.push(
                    Condition::new(rule, "", Holds::Firing, d.at).evidence(format!(
                        "tier {} → {}",
                        d.from.name(),
                        tier.name()
                    )),
                );
            }
            Params::Detractor {
                nps_at_most,
                csat_at_most,
                within_days,
            } => {
                for (name, answer, at_most) in [
                    ("nps", s.latest_nps, *nps_at_most),
                    ("csat", s.latest_csat, *csat_at_most),
                ] {
                    let Some(a) = answer else { continue };
                    let recent = now - a.at <= i64::from(*within_days) * DAY_MS;
                    let holds = match (a.score <= at_most, recent) {
                        (true, true) => Holds::Firing,
                        (true, false) => Holds::Between,
                        (false, _) => Holds::Clear,
                    };
                    out.push(Condition::new(rule, name, holds, a.at).evidence(format!(
                        "latest {} answer {} (detractor at {at_most} or less)",
                        name.to_uppercase(),
                        a.score
                    )));
                }
            }
            Params::ComplaintSpike {
                floor,
                z,
                baseline_weeks,
            } => {
                let week = |k: i64| {
                    let (from, to) = (now - (k + 1) * WEEK_MS, now - k * WEEK_MS);
                    s.complaints
                        .iter()
                        .filter(|t| **t > from && **t <= to)
                        .count() as f64
                };
                let current = week(0);
                let weeks: Vec<f64> = (1..=i64::from(*baseline_weeks)).map(week).collect();
                let n = weeks.len() as f64;
                let mean = weeks.iter().sum::<f64>() / n;
                let sd = (weeks.iter().map(|w| (w - mean).powi(2)).sum::<f64>() / n).sqrt();
                let limit = mean + z * sd;
                let holds = if current >= f64::from(*floor) && current > limit {
                    Holds::Firing
                } else if current < f64::from(*floor) || current <= mean {
                    Holds::Clear
                } else {
                    Holds::Between
                };
                let latest = s.complaints.last().copied().unwrap_or(0);
                let mut c = Condition::new(rule, "", holds, latest).evidence(format!(
                    "{current} complaints in 7 days; baseline {mean:.2} ± {sd:.2} a week over \
                     {baseline_weeks} weeks (opens at {floor} and above {limit:.2})"
                ));
                // The week's oldest complaint leaves it then.
                c.recheck_at = s.complaints.iter().map(|t| t + WEEK_MS).find(|t| *t > now);
                out.push(c);
            }
            Params::PAliveDrop {
                tiers,
                enter_below,
                exit_at_or_above,
            } => {
                let Some(p) = s.p_alive else { continue };
                if !s.tier.is_some_and(|t| tiers.contains(&t)) {
                    continue;
                }
                out.push(
                    Condition::new(rule, "", threshold(p, *enter_below, *exit_at_or_above), at)
                        .evidence(format!(
                            "P(alive) {p:.3} (opens below {enter_below}, resolves at \
                         {exit_at_or_above})"
                        )),
                );
            }
            Params::FirstResponseSla { hours } => {
                let sla_ms = (hours * 3_600_000.0) as i64;
                for t in &s.unanswered {
                    let due = t.opened_at + sla_ms;
                    let holds = if now >= due {
                        Holds::Firing
                    } else {
                        Holds::Between
                    };
                    let waited = (now - t.opened_at) as f64 / 3_600_000.0;
                    let mut c =
                        Condition::new(rule, &t.ticket_id, holds, t.opened_at).evidence(format!(
                            "ticket {} unanswered for {waited:.1} h (first response due within \
                             {hours} h)",
                            t.ticket_id
                        ));
                    c.recheck_at = (due > now).then_some(due);
                    out.push(c);
                }
            }
        }
    }
    out
}

/// The state of one (rule, discriminator) of a customer between evaluations.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Track {
    /// Since when the enter condition has held, while no alert is open.
    pub pending_since: Option<i64>,
    /// Whether an alert stands (open, acknowledged or snoozed).
    pub open: bool,
    /// Since when the exit condition has held, while an alert stands.
    pub clear_since: Option<i64>,
    /// The trigger last counted: not counted twice, and not re-opened after a hand resolve.
    pub last_trigger: Option<i64>,
    /// The standing alert's severity (it only rises while the alert stands).
    pub severity: Option<Severity>,
    /// For a rule on a level (health, its drop, P(alive)): the trigger of the reading that
    /// began the current run of firing readings, while they fire. The run is the trigger:
    /// a further reading still under the threshold is not a new one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub firing_since: Option<i64>,
}

/// What a step of the state machine asks to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Nothing to do.
    Quiet,
    /// The condition holds but its pending period runs until then: nobody is told yet.
    Pending { until: i64 },
    /// Open a new alert (a new incarnation).
    Open { severity: Severity },
    /// Update the standing alert: a new trigger (`counted`), a higher severity, or both.
    Update {
        severity: Severity,
        counted: bool,
        escalated: bool,
    },
    /// The exit condition holds but must hold until then before resolving.
    Resolving { until: i64 },
    /// Resolve the standing alert: the exit condition has held long enough.
    Resolve,
}

impl Track {
    /// Advances the track with the condition at `now`; `None` means the rule no longer
    /// applies, which counts as its exit condition. A firing condition of a rule on a level
    /// takes the trigger of the run of firing readings it continues.
    pub fn step(&mut self, condition: Option<&Condition>, now: i64) -> Step {
        match condition {
            Some(c) if c.holds == Holds::Firing => {
                let trigger = self.trigger(c);
                if self.open {
                    self.retrigger(c, trigger)
                } else {
                    self.pend(c, trigger, now)
                }
            }
            Some(c) if c.holds == Holds::Between => {
                self.firing_since = None;
                self.pending_since = None;
                self.clear_since = None;
                Step::Quiet
            }
            _ => {
                self.firing_since = None;
                self.clear(condition.map_or(0, |c| c.resolve_after_ms), now)
            }
        }
    }

    /// What triggered a firing `c`: its own trigger, or for a rule on a level the first
    /// reading of the run of firing readings it continues.
    fn trigger(&mut self, c: &Condition) -> i64 {
        if c.kind.reads_a_level() {
            *self.firing_since.get_or_insert(c.trigger)
        } else {
            c.trigger
        }
    }

    /// The condition fires again while the alert stands.
    fn retrigger(&mut self, c: &Condition, trigger: i64) -> Step {
        self.clear_since = None;
        let counted = self.last_trigger != Some(trigger);
        let escalated = self.severity.is_none_or(|s| c.severity > s);
        if counted {
            self.last_trigger = Some(trigger);
        }
        if escalated {
            self.severity = Some(c.severity);
        }
        if counted || escalated {
            Step::Update {
                severity: self.severity.unwrap_or(c.severity),
                counted,
                escalated,
            }
        } else {
            Step::Quiet
        }
    }

    /// The condition fires with no alert standing: open once it has held for its period.
    fn pend(&mut self, c: &Condition, trigger: i64, now: i64) -> Step {
        if self.last_trigger == Some(trigger) {
            // Already alerted on (and resolved by hand): wait for a new trigger.
            self.pending_since = None;
            return Step::Quiet;
        }
        let since = *self.pending_since.get_or_insert(now);
        if now - since < c.pending_ms {
            return Step::Pending {
                until: since + c.pending_ms,
            };
        }
        self.open = true;
        self.pending_since = None;
        self.clear_since = None;
        self.last_trigger = Some(trigger);
        self.severity = Some(c.severity);
        Step::Open {
            severity: c.severity,
        }
    }

    /// The exit condition holds: resolve once it has held for `resolve_after` milliseconds.
    fn clear(&mut self, resolve_after: i64, now: i64) -> Step {
        self.pending_since = None;
        if !self.open {
            return Step::Quiet;
        }
        let since = *self.clear_since.get_or_insert(now);
        if now - since < resolve_after {
            return Step::Resolving {
                until: since + resolve_after,
            };
        }
        self.open = false;
        self.clear_since = None;
        self.severity = None;
        Step::Resolve
    }

    /// Records a resolution by hand: the alert no longer stands, and the trigger that opened
    /// it does not open another.
    pub fn resolved_by_hand(&mut self) {
        self.open = false;
        self.clear_since = None;
        self.pending_since = None;
        self.severity = None;
    }
}

/// What alerting keeps of one customer: its facts and the track of each (rule,
/// discriminator) that has something to remember.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CustomerAlerts {
    pub facts: Facts,
    pub tracks: BTreeMap<String, Track>,
    /// Until when the effect window of the customer's latest alert runs (milliseconds): its
    /// outcome is followed until then.
    #[serde(default)]
    pub outcome_until: Option<i64>,
}

/// One track's step, with the condition that caused it (`None`: the rule no longer applies).
#[derive(Debug, Clone, PartialEq)]
pub struct Effect {
    pub kind: RuleKind,
    pub discriminator: String,
    pub step: Step,
    pub condition: Option<Condition>,
}

impl CustomerAlerts {
    /// Steps every track with the rules' conditions at `now`; returns the steps and when
    /// time alone may next change something (a pending or resolve period ending, a window
    /// moving), if ever.
    pub fn evaluate(&mut self, config: &AlertConfig, now: i64) -> (Vec<Effect>, Option<i64>) {
        let mut effects = Vec::new();
        let mut next: Option<i64> = None;
        let mut soonest = |t: i64| next = Some(next.map_or(t, |n| n.min(t)));
        let mut seen = BTreeSet::new();
        for c in conditions(config, &self.facts, now) {
            let key = crate::alert::track_key(c.kind, &c.discriminator);
            if let Some(t) = c.recheck_at {
                soonest(t);
            }
            let track = self.tracks.entry(key.clone()).or_default();
            let step = track.step(Some(&c), now);
            if let Step::Pending { until } | Step::Resolving { until } = step {
                soonest(until);
            }
            if !track.open && track.pending_since.is_none() && c.holds != Holds::Firing {
                self.tracks.remove(&key);
            }
            seen.insert(key);
            effects.push(Effect {
                kind: c.kind,
                discriminator: c.discriminator.clone(),
                step,
                condition: Some(c),
            });
        }
        let gone: Vec<String> = self
            .tracks
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        for key in gone {
            let Some((kind, discriminator)) = key
                .split_once('/')
                .and_then(|(k, d)| RuleKind::from_name(k).map(|k| (k, d.to_owned())))
            else {
                self.tracks.remove(&key);
                continue;
            };
            let Some(track) = self.tracks.get_mut(&key) else {
                continue;
            };
            let step = track.step(None, now);
            if !track.open {
                self.tracks.remove(&key);
            }
            effects.push(Effect {
                kind,
                discriminator,
                step,
                condition: None,
            });
        }
        (effects, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::facts::{Answer, OpenTicket, Signals};
    use crate::tier::Tier;

    const MIN: i64 = 60_000;

    fn config(text: &str) -> AlertConfig {
        AlertConfig::from_toml(text).unwrap()
    }

    fn scored(facts: &mut Facts, at: i64, score: f64) {
        let s = Signals {
            score: Some(score),
            ..facts.signals.clone()
        };
        assert!(facts.observe(s, at));
    }

    /// Feeds scores one minute apart and returns the steps of the health rule.
    fn run(config: &AlertConfig, scores: &[f64]) -> Vec<Step> {
        let mut facts = Facts::default();
        let mut track = Track::default();
        let mut steps = Vec::new();
        for (i, score) in scores.iter().enumerate() {
            let now = (i as i64 + 1) * MIN;
            scored(&mut facts, now, *score);
            let cs = conditions(config, &facts, now);
            steps.push(track.step(cs.first(), now));
        }
        steps
    }

    fn kinds(steps: &[Step]) -> String {
        steps
            .iter()
            .map(|s| match s {
                Step::Quiet => '.',
                Step::Pending { .. } => 'p',
                Step::Open { .. } => 'O',
                Step::Update { .. } => 'u',
                Step::Resolving { .. } => 'r',
                Step::Resolve => 'R',
            })
            .collect()
    }

    #[test]
    fn flapping_opens_once_and_resolves_after_exit_held() {
        let c = config(
            "[health_below]\nenter_below = 50\nexit_at_or_above = 60\n\
             resolve_after_secs = 180\n",
        );
        // Flapping between 45 and 55 never reaches the exit: one alert, updated.
        let steps = run(
            &c,
            &[
                45.0, 55.0, 45.0, 55.0, 62.0, 61.0, 49.0, 65.0, 66.0, 67.0, 68.0,
            ],
        );
        assert_eq!(kinds(&steps), "O.u.rrurrrR");
    }

    #[test]
    fn condition_shorter_than_pending_notifies_nobody() {
        let c =
            config("[health_below]\nenter_below = 50\nexit_at_or_above = 60\npending_secs = 150\n");
        assert_eq!(kinds(&run(&c, &[40.0, 41.0, 55.0, 40.0, 70.0])), "pp.p.");
        // Once open, a level still under the threshold is no news.
        assert_eq!(kinds(&run(&c, &[40.0, 41.0, 42.0, 43.0, 44.0])), "pppO.");
    }

    #[test]
    fn a_trigger_counts_once_and_severity_only_rises() {
        let c = config(
            "[health_below]\nenter_below = 50\nexit_at_or_above = 60\nescalate_below = 30\n",
        );
        let mut facts = Facts::default();
        let mut track = Track::default();
        scored(&mut facts, MIN, 45.0);
        let step = |facts: &Facts, track: &mut Track, now| {
            let cs = conditions(&c, facts, now);
            track.step(cs.first(), now)
        };
        assert_eq!(
            step(&facts, &mut track, MIN),
            Step::Open {
                severity: Severity::Warning
            }
        );
        // The same observation evaluated again (a sweep, a redelivery) counts nothing.
        assert_eq!(step(&facts, &mut track, 2 * MIN), Step::Quiet);
        // A further low reading belongs to the same trigger: it raises the severity only.
        scored(&mut facts, 3 * MIN, 20.0);
        assert_eq!(
            step(&facts, &mut track, 3 * MIN),
            Step::Update {
                severity: Severity::Error,
                counted: false,
                escalated: true
            }
        );
        scored(&mut facts, 4 * MIN, 45.0);
        assert_eq!(step(&facts, &mut track, 4 * MIN), Step::Quiet);
        // Back in the hysteresis band, then under again: a new trigger, at the raised severity.
        scored(&mut facts, 5 * MIN, 55.0);
        assert_eq!(step(&facts, &mut track, 5 * MIN), Step::Quiet);
        scored(&mut facts, 6 * MIN, 45.0);
        assert_eq!(
            step(&facts, &mut track, 6 * MIN),
            Step::Update {
                severity: Severity::Error,
                counted: true,
                escalated: false
            }
        );
    }

    #[test]
    fn hand_resolve_waits_for_a_new_trigger() {
        let c = config("[health_below]\nenter_below = 50\nexit_at_or_above = 60\n");
        let mut facts = Facts::default();
        let mut track = Track::default();
        scored(&mut facts, MIN, 45.0);
        let cs = conditions(&c, &facts, MIN);
        assert!(matches!(track.step(cs.first(), MIN), Step::Open { .. }));
        track.resolved_by_hand();
        assert_eq!(track.step(cs.first(), 2 * MIN), Step::Quiet);
        // Still low: the same fall, which a person has dealt with.
        let mut at = |score: f64, minute: i64| {
            scored(&mut facts, minute * MIN, score);
            let cs = conditions(&c, &facts, minute * MIN);
            track.step(cs.first(), minute * MIN)
        };
        assert_eq!(at(44.0, 3), Step::Quiet);
        // Recovered into the band, then fallen anew: a new alert.
        assert_eq!(at(55.0, 4), Step::Quiet);
        assert!(matches!(at(44.0, 5), Step::Open { .. }));
    }

    #[test]
    fn answered_ticket_resolves_its_sla_alert_only() {
        let c = config("[first_response_sla]\nhours = 1\n");
        let ticket = |id: &str| OpenTicket {
            ticket_id: id.into(),
            opened_at: 0,
        };
        let mut ca = CustomerAlerts::default();
        let signals = Signals {
            unanswered: vec![ticket("a"), ticket("b")],
            ..Signals::default()
        };
        assert!(ca.facts.observe(signals, MIN));
        let (effects, next) = ca.evaluate(&c, 30 * MIN);
        assert!(effects.iter().all(|e| e.step == Step::Quiet));
        assert_eq!(next, Some(60 * MIN));
        let (effects, _) = ca.evaluate(&c, 61 * MIN);
        let opened = effects
            .iter()
            .filter(|e| matches!(e.step, Step::Open { .. }))
            .count();
        assert_eq!(opened, 2);
        // Ticket a is answered: it leaves the signals, its alert resolves, b's stands.
        let signals = Signals {
            unanswered: vec![ticket("b")],
            ..Signals::default()
        };
        assert!(ca.facts.observe(signals, 62 * MIN));
        let (effects, _) = ca.evaluate(&c, 62 * MIN);
        let steps: Vec<(&str, &Step)> = effects
            .iter()
            .map(|e| (e.discriminator.as_str(), &e.step))
            .collect();
        assert_eq!(steps, vec![("b", &Step::Quiet), ("a", &Step::Resolve)]);
        assert_eq!(ca.tracks.len(), 1);
    }

    #[test]
    fn score_drop_against_the_best_of_the_window() {
        let c = config(
            "[score_drop]\ndrop = 20\nexit_drop = 10\nwindow_days = 7\nmin_observations = 3\n",
        );
        let mut facts = Facts::default();
        let holds = |facts: &Facts, now| conditions(&c, facts, now)[0].holds;
        scored(&mut facts, DAY_MS, 80.0);
        scored(&mut facts, 2 * DAY_MS, 55.0);
        // Two observations: below the minimum.
        assert_eq!(holds(&facts, 2 * DAY_MS), Holds::Clear);
        scored(&mut facts, 3 * DAY_MS, 59.0);
        assert_eq!(holds(&facts, 3 * DAY_MS), Holds::Firing);
        scored(&mut facts, 4 * DAY_MS, 65.0);
        assert_eq!(holds(&facts, 4 * DAY_MS), Holds::Between);
        // Once the 80 leaves the window the best is 65.
        scored(&mut facts, 9 * DAY_MS, 64.0);
        assert_eq!(holds(&facts, 9 * DAY_MS), Holds::Clear);
        let pct = config("[score_drop]\ndrop = 25\nunit = \"percent\"\nmin_observations = 1\n");
        let mut f = Facts::default();
        scored(&mut f, DAY_MS, 80.0);
        scored(&mut f, 2 * DAY_MS, 60.0);
        assert_eq!(conditions(&pct, &f, 2 * DAY_MS)[0].holds, Holds::Firing);
    }

    #[test]
    fn complaint_spike_against_own_baseline() {
        let c = config("[complaint_spike]\nfloor = 3\nz = 2.0\nbaseline_weeks = 4\n");
        let now = 100 * DAY_MS;
        let facts = |times: Vec<i64>| Facts {
            observed_at: now,
            signals: Signals {
                complaints: times,
                ..Signals::default()
            },
            ..Facts::default()
        };
        // One complaint a week for four weeks, then three this week: 3 > 1 + 2·0.
        let mut t: Vec<i64> = (1..=4).map(|w| now - w * WEEK_MS - DAY_MS).collect();
        t.extend([now - DAY_MS, now - 2 * DAY_MS, now - 3 * DAY_MS]);
        t.sort_unstable();
        assert_eq!(
            conditions(&c, &facts(t.clone()), now)[0].holds,
            Holds::Firing
        );
        // Two this week: under the floor.
        t.pop();
        assert_eq!(conditions(&c, &facts(t), now)[0].holds, Holds::Clear);
        // A customer who always complains three times a week is not spiking.
        let mut steady: Vec<i64> = (0..=4)
            .flat_map(|w| (1..=3).map(move |d| now - w * WEEK_MS - d * DAY_MS))
            .collect();
        steady.sort_unstable();
        assert_eq!(conditions(&c, &facts(steady), now)[0].holds, Holds::Clear);
    }

    #[test]
    fn detractor_sla_p_alive_and_downgrade() {
        let c = AlertConfig::builtin();
        let now = 50 * DAY_MS;
        let mut f = Facts {
            observed_at: now,
            signals: Signals {
                tier: Some(Tier::Gold),
                p_alive: Some(0.3),
                latest_nps: Some(Answer {
                    score: 3,
                    at: now - DAY_MS,
                }),
                latest_csat: Some(Answer {
                    score: 5,
                    at: now - DAY_MS,
                }),
                unanswered: vec![
                    OpenTicket {
                        ticket_id: "t1".into(),
                        opened_at: now - 9 * 3_600_000,
                    },
                    OpenTicket {
                        ticket_id: "t2".into(),
                        opened_at: now - 3_600_000,
                    },
                ],
                ..Signals::default()
            },
            ..Facts::default()
        };
        let firing = |f: &Facts| -> Vec<(RuleKind, String, Holds)> {
            conditions(&c, f, now)
                .into_iter()
                .filter(|c| c.holds != Holds::Clear)
                .map(|c| (c.kind, c.discriminator, c.holds))
                .collect()
        };
        assert_eq!(
            firing(&f),
            vec![
                (RuleKind::Detractor, "nps".into(), Holds::Firing),
                (RuleKind::PAliveDrop, String::new(), Holds::Firing),
                (RuleKind::FirstResponseSla, "t1".into(), Holds::Firing),
                (RuleKind::FirstResponseSla, "t2".into(), Holds::Between),
            ]
        );
        // Regular customers: no P(alive) rule, a 72 h SLA.
        f.signals.tier = Some(Tier::Regular);
        f.downgrade = Some(crate::alert::facts::Downgrade {
            from: Tier::Gold,
            at: now,
        });
        let kinds: Vec<(RuleKind, Holds)> =
            firing(&f).into_iter().map(|(k, _, h)| (k, h)).collect();
        assert_eq!(
            kinds,
            vec![
                (RuleKind::TierDowngrade, Holds::Firing),
                (RuleKind::Detractor, Holds::Firing),
                (RuleKind::FirstResponseSla, Holds::Between),
                (RuleKind::FirstResponseSla, Holds::Between),
            ]
        );
    }
}
