//! One customer's evaluation, with no I/O: the card for its tier and stage, the indicators
//! at a time, the models' outlook, overrides in force, the churn freeze, the trend from its
//! recent daily scores, and whether the result differs from what is stored.

use chrono::{DateTime, Duration, NaiveDate, Utc};
use rapport_domain::alert::Signals;
use rapport_domain::lifecycle::Stage;
use rapport_domain::metrics::{CustomerMetrics, External};
use rapport_domain::models::outlook::{FittedModels, Outlook};
use rapport_domain::scorecard::{Band, HealthScore, Measure, Population, Scorecard, ScorecardSet};
use rapport_domain::tier::Tier;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// Days of daily closing scores kept per customer, for the 7- and 30-day trends.
pub const RECENT_DAYS: i64 = 31;

/// What an override replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OverrideTarget {
    /// The overall score.
    Score,
    /// The `csm_sentiment` measure.
    Sentiment,
}

impl OverrideTarget {
    /// Stable name, as stored.
    pub fn name(self) -> &'static str {
        match self {
            OverrideTarget::Score => "score",
            OverrideTarget::Sentiment => "sentiment",
        }
    }
}

/// An override in force until `expires_at` (milliseconds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ActiveOverride {
    pub target: OverrideTarget,
    pub value: f64,
    pub author: String,
    pub reason: String,
    pub set_at: i64,
    pub expires_at: i64,
}

/// A customer's closing score of a day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayScore {
    pub day: NaiveDate,
    pub score: f64,
}

/// What is known of a customer between evaluations.
#[derive(Debug, Clone, Default)]
pub struct CustomerState {
    pub metrics: CustomerMetrics,
    pub last_event_seq: i64,
    /// The revision of the customer's stored row this state was read at (0 for a new one):
    /// what a write of it must still find, or it is refused as stale.
    pub revision: i64,
    pub tier: Option<Tier>,
    pub stage: Option<Stage>,
    /// When the stage was last set (milliseconds).
    pub stage_since: Option<i64>,
    /// Fingerprint of the stored latest snapshot; `None` before the first.
    pub fingerprint: Option<i64>,
    /// The stored latest score and band.
    pub score: Option<f64>,
    pub band: Option<Band>,
    /// The stored latest snapshot's P(alive), once the tenant's models are fitted.
    pub p_alive: Option<f64>,
    /// Closing score per day of the last [`RECENT_DAYS`] days with a stored snapshot, plus
    /// the latest one before them.
    pub recent: Vec<DayScore>,
    /// Overrides set by hand (expired ones are dropped at the next evaluation).
    pub overrides: Vec<ActiveOverride>,
    /// Digest of the alert signals last sent; `None` before the first.
    pub signals: Option<i64>,
}

/// Everything tenant-wide an evaluation needs.
#[derive(Debug, Clone)]
pub struct TenantContext {
    pub cards: ScorecardSet,
    /// The version recorded on every snapshot this context makes.
    pub version: String,
    pub population: Population,
    /// How many customers the percentile tables were computed over.
    pub population_of: u64,
    pub models: Option<FittedModels>,
}

impl TenantContext {
    /// Keys of the measures normalised by percentile, in any card of the set.
    pub fn percentile_keys(&self) -> BTreeSet<String> {
        self.cards
            .cards()
            .flat_map(|c| c.measures())
            .filter(|(_, m)| m.normalisation.ranks())
            .map(|(_, m)| m.key.clone())
            .collect()
    }
}

/// A customer's evaluated health.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The scorecard's computed score and its explanation.
    pub computed: HealthScore,
    /// The score after overrides.
    pub score: f64,
    pub band: Band,
    pub overrides: Vec<ActiveOverride>,
    pub outlook: Option<Outlook>,
    pub trend_7d: Option<f64>,
    pub trend_30d: Option<f64>,
    /// When the customer churned; the score is then evaluated as of that time.
    pub churned_at: Option<DateTime<Utc>>,
    pub fingerprint: i64,
}

impl Evaluation {
    /// Whether the customer has any measurable data (else it has no score).
    pub fn measured(&self) -> bool {
        self.computed.measured() || !self.overrides.is_empty()
    }
}

/// When a customer's score froze: its churn, from its own events or its lifecycle stage.
pub fn churned_at(state: &CustomerState) -> Option<DateTime<Utc>> {
    let by_stage = match (state.stage, state.stage_since) {
        (Some(Stage::Churned), Some(since)) => DateTime::from_timestamp_millis(since),
        _ => None,
    };
    by_stage.or_else(|| state.metrics.churned_at())
}

/// What a customer's evaluation reads besides its metrics: the card that applies, the time
/// it is evaluated at, the models' outlook and the overrides in force.
struct Inputs<'c> {
    card: &'c Scorecard,
    churned: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
    outlook: Option<Outlook>,
    overrides: Vec<ActiveOverride>,
    external: External,
}

impl<'c> Inputs<'c> {
    fn of(state: &CustomerState, ctx: &'c TenantContext, now: DateTime<Utc>) -> Inputs<'c> {
        let churned = churned_at(state).filter(|t| *t <= now);
        let at = churned.unwrap_or(now);
        let outlook = ctx
            .models
            .and_then(|m| m.outlook(&state.metrics.purchase_days, at.date_naive()));
        let now_ms = now.timestamp_millis();
        let overrides: Vec<ActiveOverride> = state
            .overrides
            .iter()
            .filter(|o| o.expires_at > now_ms)
            .cloned()
            .collect();
        let external = External {
            p_alive: outlook.map(|o| o.p_alive),
            expected_purchases: outlook.map(|o| o.expected_purchases_90d),
            clv: outlook.map(|o| o.clv),
            sentiment: override_of(&overrides, OverrideTarget::Sentiment),
        };
        Inputs {
            card: ctx.cards.card_for(state.tier, state.stage),
            churned,
            at,
            outlook,
            overrides,
            external,
        }
    }

    /// A measure's raw value for this customer.
    fn value(&self, state: &CustomerState, m: &Measure) -> Option<f64> {
        state
            .metrics
            .value(m.indicator, m.window_days, self.at, &self.external)
    }
}

/// The latest override in force of `target`.
fn override_of(overrides: &[ActiveOverride], target: OverrideTarget) -> Option<f64> {
    overrides
        .iter()
        .rfind(|o| o.target == target)
        .map(|o| o.value)
}

/// The raw values of the measures the customer's card normalises by percentile, by key:
/// all a walk that only rebuilds the percentile tables needs, without scoring.
pub fn percentile_values<'c>(
    state: &CustomerState,
    ctx: &'c TenantContext,
    now: DateTime<Utc>,
) -> Vec<(&'c str, f64)> {
    let inputs = Inputs::of(state, ctx, now);
    inputs
        .card
        .measures()
        .filter(|(_, m)| m.normalisation.ranks())
        .filter_map(|(_, m)| Some((m.key.as_str(), inputs.value(state, m)?)))
        .collect()
}

/// Evaluates a customer at `now` (a churned customer as of its churn).
pub fn evaluate(state: &CustomerState, ctx: &TenantContext, now: DateTime<Utc>) -> Evaluation {
    let inputs = Inputs::of(state, ctx, now);
    let computed = inputs
        .card
        .score(|m| inputs.value(state, m), &ctx.population);
    let Inputs {
        card,
        churned,
        outlook,
        overrides,
        ..
    } = inputs;
    let (score, band) = match override_of(&overrides, OverrideTarget::Score) {
        Some(v) => (v, card.bands.of(v)),
        None => (computed.score, computed.band),
    };
    let today = now.date_naive();
    let trend = |days: i64| closing(&state.recent, today - Duration::days(days)).map(|c| score - c);
    let mut e = Evaluation {
        computed,
        score,
        band,
        overrides,
        outlook,
        trend_7d: trend(7),
        trend_30d: trend(30),
        churned_at: churned,
        fingerprint: 0,
    };
    e.fingerprint = fingerprint(&e, state, &ctx.version);
    e
}

/// What alerting hears of a customer along with its score.
pub fn alert_signals(state: &CustomerState, e: &Evaluation, now: DateTime<Utc>) -> Signals {
    Signals {
        score: Some(e.score),
        tier: state.tier,
        stage: state.stage,
        p_alive: e.outlook.map(|o| o.p_alive),
        ..Signals::from_metrics(&state.metrics, now)
    }
}

/// A digest of what alerting hears besides the score (which the fingerprint covers), with
/// P(alive) to 0.001 so its daily drift is not news.
pub fn signals_digest(s: &Signals) -> i64 {
    let mut h = Sha256::new();
    let mut text = |t: &str| {
        h.update((t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    };
    text(s.tier.map_or("-", Tier::name));
    text(s.stage.map_or("-", Stage::name));
    for t in &s.unanswered {
        text(&t.ticket_id);
    }
    let answer = |a: Option<rapport_domain::alert::facts::Answer>| {
        a.map_or([i64::MIN, 0], |a| [i64::from(a.score), a.at])
    };
    let mut numbers = vec![
        s.p_alive.map_or(i64::MIN, |p| (p * 1000.0).round() as i64),
        (s.spend_total * 100.0).round() as i64,
        s.complaints.len() as i64,
        s.unanswered.len() as i64,
    ];
    numbers.extend(answer(s.latest_nps));
    numbers.extend(answer(s.latest_csat));
    numbers.extend(&s.complaints);
    numbers.extend(s.unanswered.iter().map(|t| t.opened_at));
    for n in numbers {
        h.update(n.to_le_bytes());
    }
    first_eight(h)
}

/// The first eight bytes of a digest as a number, for a compact stored fingerprint.
fn first_eight(h: Sha256) -> i64 {
    let digest = h.finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_le_bytes(bytes)
}

/// The closing score of `day`: the latest stored score on or before it.
pub fn closing(recent: &[DayScore], day: NaiveDate) -> Option<f64> {
    recent.iter().rfind(|d| d.day <= day).map(|d| d.score)
}

/// `recent` with `score` as the closing of `today`, trimmed to [`RECENT_DAYS`] plus the
/// latest day before them.
pub fn remember(recent: &[DayScore], today: NaiveDate, score: f64) -> Vec<DayScore> {
    let mut out: Vec<DayScore> = recent.iter().filter(|d| d.day < today).copied().collect();
    out.push(DayScore { day: today, score });
    let horizon = today - Duration::days(RECENT_DAYS);
    let keep_from = out.iter().rposition(|d| d.day < horizon).unwrap_or(0);
    out.split_off(keep_from)
}

/// A stable fingerprint of what a snapshot shows: scores and raw values (to 1e-6), bands,
/// trends, tier, stage, scorecard version, overrides and the freeze. The values of
/// indicators that grow with the clock alone (recency, say) are left out: their daily drift
/// is a change only when it moves a score.
fn fingerprint(e: &Evaluation, state: &CustomerState, version: &str) -> i64 {
    let mut h = Sha256::new();
    let mut text = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    text(version);
    text(e.band.name());
    text(state.tier.map_or("-", Tier::name));
    text(state.stage.map_or("-", Stage::name));
    for m in &e.computed.measures {
        text(&m.key);
    }
    for o in &e.overrides {
        text(o.target.name());
    }
    // Numbers to 1e-6 (trends to 0.01), absent ones as a marker no rounded value takes.
    let round = |v: Option<f64>, scale: f64| v.map_or(i64::MIN, |v| (v * scale).round() as i64);
    let mut numbers = vec![
        round(Some(e.score), 1e6),
        round(Some(e.computed.score), 1e6),
        round(e.trend_7d, 100.0),
        round(e.trend_30d, 100.0),
        e.churned_at.map_or(0, |t| t.timestamp_millis()),
    ];
    for m in &e.computed.measures {
        numbers.push(round(m.score, 1e6));
        if !m.indicator.elapses() {
            numbers.push(round(m.value, 1e6));
        }
    }
    for o in &e.overrides {
        numbers.extend([round(Some(o.value), 1e6), o.expires_at]);
    }
    if let Some(o) = e.outlook {
        numbers.extend([o.p_alive, o.expected_purchases_90d, o.clv].map(|v| round(Some(v), 1e6)));
    }
    for n in numbers {
        h.update(n.to_le_bytes());
    }
    first_eight(h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rapport_domain::event::{Event, Payload, SubscriptionChange};

    #[test]
    fn signals_digest_changes_with_news_only() {
        let base = Signals {
            score: Some(50.0),
            p_alive: Some(0.5),
            complaints: vec![1_000],
            ..Signals::default()
        };
        let digest = signals_digest(&base);
        let same = Signals {
            score: Some(20.0),
            p_alive: Some(0.5002),
            ..base.clone()
        };
        assert_eq!(
            signals_digest(&same),
            digest,
            "score and tiny drift are not news"
        );
        let complaint = Signals {
            complaints: vec![1_000, 2_000],
            ..base.clone()
        };
        assert_ne!(signals_digest(&complaint), digest);
        let ticket = Signals {
            unanswered: vec![rapport_domain::alert::facts::OpenTicket {
                ticket_id: "t".into(),
                opened_at: 5,
            }],
            ..base.clone()
        };
        assert_ne!(signals_digest(&ticket), digest);
        let nps = Signals {
            latest_nps: Some(rapport_domain::alert::facts::Answer { score: 2, at: 7 }),
            ..base
        };
        assert_ne!(signals_digest(&nps), digest);
    }

    fn ctx() -> TenantContext {
        TenantContext {
            cards: ScorecardSet::builtin(),
            version: "test".into(),
            population: Population::new(),
            population_of: 0,
            models: None,
        }
    }

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, day, 12, 0, 0).unwrap()
    }

    fn state_with_order(day: u32) -> CustomerState {
        let mut s = CustomerState::default();
        s.metrics.apply(&Event {
            event_id: "o".into(),
            customer_id: "c".into(),
            occurred_at: t(day),
            payload: Payload::Order {
                order_id: "o".into(),
                amount: 100.0,
                currency: "EUR".into(),
                items: 1,
            },
        });
        s
    }

    #[test]
    fn percentile_values_are_the_raw_values_scoring_ranks() {
        let ctx = ctx();
        let keys = ctx.percentile_keys();
        assert!(!keys.is_empty(), "the built-in card ranks some measures");
        for s in [CustomerState::default(), state_with_order(1)] {
            let scored: Vec<(String, f64)> = evaluate(&s, &ctx, t(3))
                .computed
                .measures
                .iter()
                .filter(|m| keys.contains(&m.key))
                .filter_map(|m| Some((m.key.clone(), m.value?)))
                .collect();
            let found: Vec<(String, f64)> = percentile_values(&s, &ctx, t(3))
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect();
            assert_eq!(found, scored);
        }
        assert!(!percentile_values(&state_with_order(1), &ctx, t(3)).is_empty());
    }

    #[test]
    fn time_alone_moves_a_silent_customer_down() {
        let s = state_with_order(1);
        let early = evaluate(&s, &ctx(), t(2));
        let late = evaluate(&s, &ctx(), t(2) + Duration::days(120));
        assert!(
            late.score < early.score,
            "{} !< {}",
            late.score,
            early.score
        );
        assert_ne!(early.fingerprint, late.fingerprint);
        // The same time gives the same fingerprint: an unchanged re-score writes nothing.
        assert_eq!(early.fingerprint, evaluate(&s, &ctx(), t(2)).fingerprint);
    }

    #[test]
    fn overrides_apply_until_they_expire() {
        let mut s = state_with_order(1);
        s.overrides.push(ActiveOverride {
            target: OverrideTarget::Score,
            value: 12.0,
            author: "ann".into(),
            reason: "escalation call".into(),
            set_at: t(1).timestamp_millis(),
            expires_at: t(10).timestamp_millis(),
        });
        let during = evaluate(&s, &ctx(), t(5));
        assert_eq!((during.score, during.band), (12.0, Band::Red));
        assert!(during.computed.score > 12.0);
        let after = evaluate(&s, &ctx(), t(11));
        assert!(after.overrides.is_empty());
        assert_eq!(after.score, after.computed.score);
    }

    #[test]
    fn sentiment_override_is_a_measure() {
        let mut s = state_with_order(1);
        s.overrides.push(ActiveOverride {
            target: OverrideTarget::Sentiment,
            value: 0.0,
            author: "ann".into(),
            reason: "unhappy on the call".into(),
            set_at: 0,
            expires_at: t(30).timestamp_millis(),
        });
        let e = evaluate(&s, &ctx(), t(2));
        let m = e
            .computed
            .measures
            .iter()
            .find(|m| m.key == "csm_sentiment")
            .unwrap();
        assert_eq!((m.value, m.score), (Some(0.0), Some(0.0)));
        assert!(e.score < evaluate(&state_with_order(1), &ctx(), t(2)).score);
    }

    #[test]
    fn a_churned_customer_is_frozen_at_its_churn() {
        let mut s = state_with_order(1);
        s.metrics.apply(&Event {
            event_id: "s".into(),
            customer_id: "c".into(),
            occurred_at: t(3),
            payload: Payload::Subscription {
                plan: "pro".into(),
                change: SubscriptionChange::Cancel,
                seats: 1,
                mrr: 10.0,
                currency: None,
            },
        });
        let a = evaluate(&s, &ctx(), t(5));
        let b = evaluate(&s, &ctx(), t(5) + Duration::days(200));
        assert_eq!(a.churned_at, Some(t(3)));
        assert_eq!((a.score, a.fingerprint), (b.score, b.fingerprint));
        // By stage too.
        let mut s = state_with_order(1);
        s.stage = Some(Stage::Churned);
        s.stage_since = Some(t(4).timestamp_millis());
        assert_eq!(evaluate(&s, &ctx(), t(20)).churned_at, Some(t(4)));
    }

    #[test]
    fn trends_come_from_daily_closings() {
        let mut s = state_with_order(1);
        let d = |day: u32| t(day).date_naive();
        s.recent = remember(&[], d(1), 80.0);
        s.recent = remember(&s.recent, d(2), 70.0);
        s.recent = remember(&s.recent, d(2), 60.0);
        assert_eq!(s.recent.len(), 2);
        assert_eq!(closing(&s.recent, d(2)), Some(60.0));
        let e = evaluate(&s, &ctx(), t(9));
        // The closing of day 2 (7 days before day 9) was 60; none is 30 days old.
        assert_eq!(e.trend_7d, Some(e.score - 60.0));
        assert_eq!(e.trend_30d, None);
        // Old days fall away, but the last one before the horizon stays as the anchor.
        let far = d(2) + Duration::days(100);
        let kept = remember(&s.recent, far, 50.0);
        assert_eq!(
            kept.iter().map(|d| d.score).collect::<Vec<_>>(),
            [60.0, 50.0]
        );
    }
}
