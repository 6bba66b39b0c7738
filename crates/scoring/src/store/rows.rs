//! The stored forms of scoring's rows and what they become: states, snapshots, fits, and
//! the codecs between them (JSON, the daily scores' bytes).

use super::*;

pub(super) fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

/// One measure of a stored snapshot. Absent values and zeros are left out of the stored
/// form, so a snapshot stays small.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMeasure {
    pub measure: String,
    #[serde(default)]
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// Normalised 0–100; `None` when the measure was left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub weight: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contribution: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub shortfall: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub band: Option<String>,
}

/// One group of a stored snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredGroup {
    pub group: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    pub weight: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub contribution: f64,
}

/// The stored form of a score's measures.
pub fn measures(score: &HealthScore) -> Vec<StoredMeasure> {
    score
        .measures
        .iter()
        .map(|m| StoredMeasure {
            measure: m.key.clone(),
            group: m.group.clone(),
            value: m.value,
            score: m.score,
            weight: m.weight,
            contribution: m.contribution,
            shortfall: m.shortfall,
            band: m.band.map(|b| b.name().to_owned()),
        })
        .collect()
}

/// The stored form of a score's groups.
pub fn groups(score: &HealthScore) -> Vec<StoredGroup> {
    score
        .groups
        .iter()
        .map(|g| StoredGroup {
            group: g.name.clone(),
            score: g.score,
            weight: g.weight,
            contribution: g.contribution,
        })
        .collect()
}

/// What a snapshot records beyond its score and measures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotDetail {
    #[serde(default)]
    pub groups: Vec<StoredGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_7d: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trend_30d: Option<f64>,
    /// The scorecard's score before overrides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub computed_score: Option<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overrides: Vec<ActiveOverride>,
    /// When the customer churned (the score is frozen as of then), in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub churned_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
}

/// Which customers a listing by score keeps: all of them by default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListFilter {
    pub tier: Option<Tier>,
    pub band: Option<Band>,
    pub stage: Option<Stage>,
    /// Only customers whose latest snapshot's P(alive) is below this.
    pub p_alive_below: Option<f64>,
}

/// A stored health snapshot.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub customer_id: String,
    pub score: f64,
    pub band: Band,
    pub tier: Option<Tier>,
    pub scorecard_version: String,
    pub measures: Vec<StoredMeasure>,
    pub computed_at: i64,
    /// The fitted models' outlook, once the tenant's models are fitted.
    pub outlook: Option<Outlook>,
    pub detail: SnapshotDetail,
}

/// A new snapshot, ready to store and cache: the columns its rows are found and filtered
/// by, and its body, the API's `HealthScore` encoded and compressed once for both
/// ([`crate::body`]). Its customer is the [`Rescored`]'s.
#[derive(Debug, Clone)]
pub struct NewSnapshot {
    pub score: f64,
    pub band: Band,
    pub tier: Option<Tier>,
    pub scorecard_version: String,
    pub computed_at: i64,
    pub outlook: Option<Outlook>,
    pub body: Vec<u8>,
}

impl NewSnapshot {
    /// The columns and body of a snapshot; its measures and detail live on in the body
    /// alone.
    pub fn of(s: Snapshot) -> NewSnapshot {
        let body = crate::body::encode(&crate::view::health(&s));
        NewSnapshot {
            score: s.score,
            band: s.band,
            tier: s.tier,
            scorecard_version: s.scorecard_version,
            computed_at: s.computed_at,
            outlook: s.outlook,
            body,
        }
    }
}

/// A customer's tier (and stage) as a grading run decided them.
#[derive(Debug, Clone, PartialEq)]
pub struct TierChange {
    pub customer_id: String,
    pub tier: Tier,
    pub stage: Option<Stage>,
    /// When the run began grading (ms); `None` applies whatever set the tier before.
    pub graded_at: Option<i64>,
}

/// What [`Store::save`] stored.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Saved {
    /// Customers whose state changed since it was read: nothing of theirs was stored.
    pub stale: Vec<String>,
    /// Customers whose new state or score was stored (with their snapshots and
    /// notifications).
    pub stored: HashSet<String>,
}

/// A customer's new state and, when its score changed, its new snapshot, ready to store.
#[derive(Debug, Clone)]
pub struct Rescored {
    pub customer_id: String,
    pub state: CustomerState,
    pub snapshot: Option<NewSnapshot>,
    /// What alerting is to hear of the change (with the snapshot).
    pub notification: Option<ScoreChange>,
}

/// A stored model fit (parameters by name).
#[derive(Debug, Clone, PartialEq)]
pub struct FitRecord {
    pub model: &'static str,
    pub params: BTreeMap<String, f64>,
    pub log_likelihood: Option<f64>,
    pub iterations: u32,
    pub converged: bool,
    pub customers: u64,
    pub error: Option<String>,
    pub observation_end: i64,
    pub fitted_at: i64,
}

impl FitRecord {
    /// The record of a fit, or of why it failed (`customers`: how many the fit was given).
    pub fn of<P: NamedParams>(
        fit: &Result<Fit<P>, ModelError>,
        customers: usize,
        observation_end: i64,
        fitted_at: i64,
    ) -> Self {
        let record = FitRecord {
            model: P::MODEL,
            params: BTreeMap::new(),
            log_likelihood: None,
            iterations: 0,
            converged: false,
            customers: customers as u64,
            error: None,
            observation_end,
            fitted_at,
        };
        match fit {
            Ok(f) => FitRecord {
                params: f.params.to_map(),
                log_likelihood: Some(f.log_likelihood),
                iterations: f.iterations,
                converged: f.converged,
                customers: f.customers as u64,
                ..record
            },
            Err(e) => FitRecord {
                error: Some(e.to_string()),
                ..record
            },
        }
    }
}

/// The ranking features of one customer.
#[derive(Debug, Clone)]
pub struct FeatureRow {
    pub customer_id: String,
    pub state: CustomerState,
}

pub(super) fn json<T: serde::de::DeserializeOwned>(
    customer_id: &str,
    text: &str,
) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: e.to_string(),
    })
}

pub(super) fn optional_json<T: serde::de::DeserializeOwned + Default>(
    customer_id: &str,
    text: Option<&str>,
) -> Result<T, StoreError> {
    text.map_or(Ok(T::default()), |t| json(customer_id, t))
}

/// A customer's state from its row and its score's (none until first scored).
pub(super) fn state_of(
    m: &customer::Model,
    s: Option<&score::Model>,
) -> Result<CustomerState, StoreError> {
    let id = m.customer_id.as_str();
    Ok(CustomerState {
        metrics: json::<CustomerMetrics>(id, &m.metrics)?,
        last_event_seq: m.last_event_seq,
        revision: m.revision,
        tier: m.tier.as_deref().and_then(Tier::from_name),
        stage: m.stage.as_deref().and_then(Stage::from_name),
        stage_since: m.stage_since,
        fingerprint: s.and_then(|s| s.fingerprint),
        score: s.and_then(|s| s.score),
        band: s.and_then(|s| s.band.as_deref()).and_then(Band::from_name),
        p_alive: s.and_then(|s| s.p_alive),
        recent: match s.and_then(|s| s.recent.as_deref()) {
            Some(bytes) => recent_of(id, bytes)?,
            None => Vec::new(),
        },
        overrides: optional_json::<Vec<ActiveOverride>>(id, m.overrides.as_deref())?,
        signals: s.and_then(|s| s.signals),
    })
}

/// The first byte of [`recent_bytes`]; JSON, as older rows hold, starts with `[`.
pub(super) const RECENT_FORMAT: u8 = 1;

/// Bytes per day in [`recent_bytes`]: the day (from the common era) and the score.
pub(super) const RECENT_DAY_BYTES: usize = 4 + 8;

/// The stored form of a customer's daily closing scores: a format byte, then per day its
/// number and score, little-endian (12 bytes a day; JSON took about 40).
pub fn recent_bytes(recent: &[DayScore]) -> Vec<u8> {
    use chrono::Datelike;
    let mut out = Vec::with_capacity(1 + recent.len() * RECENT_DAY_BYTES);
    out.push(RECENT_FORMAT);
    for d in recent {
        out.extend(d.day.num_days_from_ce().to_le_bytes());
        out.extend(d.score.to_le_bytes());
    }
    out
}

/// A customer's daily closing scores from their stored form: [`recent_bytes`], or the JSON
/// rows kept from before it.
pub fn recent_of(customer_id: &str, bytes: &[u8]) -> Result<Vec<DayScore>, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: format!("recent scores: {reason}"),
    };
    match bytes.split_first() {
        None => Ok(Vec::new()),
        Some((b'[', _)) => serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string())),
        Some((&RECENT_FORMAT, days)) => {
            let (whole, rest) = days.as_chunks::<RECENT_DAY_BYTES>();
            if !rest.is_empty() {
                return Err(corrupt(format!("{} bytes of days", days.len())));
            }
            whole
                .iter()
                .map(|c| {
                    let day = i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    let score =
                        f64::from_le_bytes([c[4], c[5], c[6], c[7], c[8], c[9], c[10], c[11]]);
                    let day = chrono::NaiveDate::from_num_days_from_ce_opt(day)
                        .ok_or_else(|| corrupt(format!("day {day} out of range")))?;
                    Ok(DayScore { day, score })
                })
                .collect()
        }
        Some((other, _)) => Err(corrupt(format!("unknown format {other}"))),
    }
}

pub(super) fn to_json<T: Serialize>(customer_id: &str, value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt {
        customer_id: customer_id.to_owned(),
        reason: e.to_string(),
    })
}

/// The snapshot of a stored row, with the customer's current tier.
pub(super) fn snapshot_of(
    row: snapshot::Model,
    tier: Option<Tier>,
) -> Result<Snapshot, StoreError> {
    if let Some(body) = &row.body {
        let health = crate::body::decode(body).map_err(|e| StoreError::Corrupt {
            customer_id: row.customer_id.clone(),
            reason: format!("snapshot body: {e}"),
        })?;
        return crate::view::snapshot(health, tier);
    }
    let id = row.customer_id.as_str();
    let measures = json(id, &row.measures)?;
    let detail = optional_json(id, row.detail.as_deref())?;
    Ok(Snapshot {
        score: row.score,
        band: Band::from_name(&row.band).unwrap_or(Band::Red),
        tier,
        scorecard_version: row.scorecard_version,
        measures,
        computed_at: row.computed_at,
        outlook: match (row.p_alive, row.expected_purchases_90d, row.clv_12m) {
            (Some(p_alive), Some(expected_purchases_90d), Some(clv)) => Some(Outlook {
                p_alive,
                expected_purchases_90d,
                clv,
            }),
            _ => None,
        },
        detail,
        customer_id: row.customer_id,
    })
}

/// A customer with an override, set or cleared.
#[derive(Debug, Clone)]
pub struct OverrideChange {
    pub customer_id: String,
    pub target: OverrideTarget,
    pub author: String,
    pub reason: String,
    /// `Some` to set (value, expiry in milliseconds), `None` to clear.
    pub set: Option<(f64, i64)>,
}

/// A tenant's stored scorecard.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredScorecard {
    pub revision: i64,
    pub toml: String,
    pub created_at: i64,
}

/// Points per step of the lowest-scores index (fixed by the migration that made it).
pub const SCORE_STEP: f64 = 5.0;

/// The step of the lowest-scores index a score falls in: truncated, so it never decreases as
/// the score grows, and ordering by step then score is ordering by score.
pub fn score_step(score: f64) -> i32 {
    // `as` saturates; scores lie between 0 and 100.
    (score / SCORE_STEP).trunc() as i32
}

/// Customers' states from their rows and their score rows.
pub(super) fn with_scores(
    rows: Vec<customer::Model>,
    scores: &HashMap<String, score::Model>,
) -> impl Iterator<Item = Result<FeatureRow, StoreError>> + '_ {
    rows.into_iter().map(|m| {
        Ok(FeatureRow {
            state: state_of(&m, scores.get(&m.customer_id))?,
            customer_id: m.customer_id,
        })
    })
}

/// The tenant's score rows that match `which`, by customer.
pub(super) async fn scores<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    which: impl sea_orm::sea_query::IntoCondition,
) -> Result<HashMap<String, score::Model>, StoreError> {
    Ok(score::Entity::find()
        .filter(score::Column::TenantId.eq(tenant))
        .filter(which)
        .all(conn)
        .await?
        .into_iter()
        .map(|s| (s.customer_id.clone(), s))
        .collect())
}

/// Whether a state has anything for a score row (it was ever scored).
pub(super) fn has_score_row(s: &CustomerState) -> bool {
    s.score.is_some() || s.fingerprint.is_some() || s.signals.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, NaiveDate};
    use proptest::prelude::*;

    fn day_score() -> impl Strategy<Value = DayScore> {
        // Every day chrono represents, and any score (NaN compares unequal, so not that).
        (
            NaiveDate::MIN.num_days_from_ce()..=NaiveDate::MAX.num_days_from_ce(),
            any::<f64>().prop_filter("comparable", |s| !s.is_nan()),
        )
            .prop_map(|(day, score)| DayScore {
                day: NaiveDate::from_num_days_from_ce_opt(day).unwrap_or_default(),
                score,
            })
    }

    proptest! {
        #[test]
        fn recent_days_read_back_as_written(days in prop::collection::vec(day_score(), 0..40)) {
            prop_assert_eq!(recent_of("c", &recent_bytes(&days)).unwrap(), days);
        }

        /// Stored bytes are read or refused with the reason, never a panic.
        #[test]
        fn any_stored_bytes_read_or_fail_cleanly(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if let Err(e) = recent_of("c", &bytes) {
                prop_assert!(e.to_string().contains("customer c"), "{}", e);
            }
        }
    }

    #[test]
    fn days_stored_as_json_before_read_the_same() {
        let json = r#"[{"day":"2026-06-01","score":60.0},{"day":"2026-06-02","score":63.5}]"#;
        let days = recent_of("c", json.as_bytes()).unwrap();
        let day = |d| NaiveDate::from_ymd_opt(2026, 6, d).unwrap_or_default();
        assert_eq!(
            days,
            [
                DayScore {
                    day: day(1),
                    score: 60.0
                },
                DayScore {
                    day: day(2),
                    score: 63.5
                }
            ]
        );
        assert_eq!(recent_bytes(&days).len(), 1 + 2 * RECENT_DAY_BYTES);
        assert_eq!(recent_of("c", &recent_bytes(&days)).unwrap(), days);
    }

    #[test]
    fn a_truncated_or_unknown_form_is_an_error_naming_the_customer() {
        let days = [DayScore {
            day: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap_or_default(),
            score: 1.0,
        }];
        let bytes = recent_bytes(&days);
        let short = recent_of("c9", &bytes[..bytes.len() - 1]).unwrap_err();
        assert!(short.to_string().contains("c9"), "{short}");
        assert!(short.to_string().contains("11 bytes"), "{short}");
        let unknown = recent_of("c9", &[7, 0]).unwrap_err();
        assert!(
            unknown.to_string().contains("unknown format 7"),
            "{unknown}"
        );
        assert_eq!(recent_of("c9", &[]).unwrap(), []);
    }
}
