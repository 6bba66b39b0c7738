//! A snapshot as the API's `HealthScore`: what `GetHealth` answers and, compressed by
//! [`crate::body`], what the cache holds and every snapshot's stored body.

use crate::evaluate::{ActiveOverride, OverrideTarget};
use crate::store::{Snapshot, SnapshotDetail, StoreError, StoredGroup, StoredMeasure};
use rapport_domain::lifecycle::Stage;
use rapport_domain::models::outlook::Outlook;
use rapport_domain::tier::Tier;
use rapport_proto::convert;
use rapport_proto::scoring::v1 as pb;
use std::collections::BTreeMap;

/// The API view of a snapshot.
pub fn health(s: &Snapshot) -> pb::HealthScore {
    let d = &s.detail;
    pb::HealthScore {
        customer_id: s.customer_id.clone(),
        score: s.score,
        band: convert::band(s.band).into(),
        tier: convert::tier(s.tier).into(),
        measures: s
            .measures
            .iter()
            .map(|m| pb::MeasureScore {
                measure: m.measure.clone(),
                value: m.value,
                score: m.score,
                contribution: m.contribution,
                weight: m.weight,
                group: m.group.clone(),
                shortfall: m.shortfall,
                band: m
                    .band
                    .as_deref()
                    .and_then(rapport_domain::scorecard::Band::from_name)
                    .map_or(0, |b| convert::band(b).into()),
                data_at: None,
            })
            .collect(),
        groups: d
            .groups
            .iter()
            .map(|g| pb::GroupScore {
                group: g.group.clone(),
                score: g.score,
                weight: g.weight,
                contribution: g.contribution,
            })
            .collect(),
        scorecard_version: s.scorecard_version.clone(),
        computed_at: Some(convert::timestamp(s.computed_at)),
        p_alive: s.outlook.map(|o| o.p_alive),
        expected_purchases_90d: s.outlook.map(|o| o.expected_purchases_90d),
        clv_12m: s.outlook.map(|o| o.clv),
        trend_7d: d.trend_7d,
        trend_30d: d.trend_30d,
        computed_score: d.computed_score.unwrap_or(s.score),
        overrides: d
            .overrides
            .iter()
            .map(|o| pb::Override {
                target: match o.target {
                    OverrideTarget::Score => pb::OverrideTarget::Score,
                    OverrideTarget::Sentiment => pb::OverrideTarget::Sentiment,
                }
                .into(),
                value: o.value,
                author: o.author.clone(),
                reason: o.reason.clone(),
                set_at: Some(convert::timestamp(o.set_at)),
                expires_at: Some(convert::timestamp(o.expires_at)),
            })
            .collect(),
        frozen: d.churned_at.is_some(),
        churned_at: d.churned_at.map(convert::timestamp),
        stage: d.stage.map(|s| s.name().to_owned()).unwrap_or_default(),
    }
}

/// The snapshot a stored body describes, with the customer's current `tier` (a body keeps
/// the tier of when it was computed). The inverse of [`health`].
pub fn snapshot(h: pb::HealthScore, tier: Option<Tier>) -> Result<Snapshot, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt {
        customer_id: h.customer_id.clone(),
        reason: format!("snapshot body: {reason}"),
    };
    let band = convert::domain_band(h.band).ok_or_else(|| corrupt("no band"))?;
    let computed_at =
        convert::millis(h.computed_at.as_ref()).ok_or_else(|| corrupt("no computation time"))?;
    let overrides = h
        .overrides
        .iter()
        .map(|o| {
            let target = match pb::OverrideTarget::try_from(o.target) {
                Ok(pb::OverrideTarget::Score) => OverrideTarget::Score,
                Ok(pb::OverrideTarget::Sentiment) => OverrideTarget::Sentiment,
                _ => return Err(corrupt("an override without a target")),
            };
            let at = |t: Option<&prost_types::Timestamp>| {
                convert::millis(t).ok_or_else(|| corrupt("an override without its times"))
            };
            Ok(ActiveOverride {
                target,
                value: o.value,
                author: o.author.clone(),
                reason: o.reason.clone(),
                set_at: at(o.set_at.as_ref())?,
                expires_at: at(o.expires_at.as_ref())?,
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let stage = match h.stage.as_str() {
        "" => None,
        name => Some(Stage::from_name(name).ok_or_else(|| corrupt("an unknown stage"))?),
    };
    let churned_at = h.churned_at.as_ref().and_then(|t| convert::millis(Some(t)));
    let outlook = match (h.p_alive, h.expected_purchases_90d, h.clv_12m) {
        (Some(p_alive), Some(expected_purchases_90d), Some(clv)) => Some(Outlook {
            p_alive,
            expected_purchases_90d,
            clv,
        }),
        _ => None,
    };
    Ok(Snapshot {
        score: h.score,
        band,
        tier,
        scorecard_version: h.scorecard_version,
        measures: h
            .measures
            .into_iter()
            .map(|m| StoredMeasure {
                measure: m.measure,
                group: m.group,
                value: m.value,
                score: m.score,
                weight: m.weight,
                contribution: m.contribution,
                shortfall: m.shortfall,
                band: convert::domain_band(m.band).map(|b| b.name().to_owned()),
            })
            .collect(),
        computed_at,
        outlook,
        detail: SnapshotDetail {
            groups: h
                .groups
                .into_iter()
                .map(|g| StoredGroup {
                    group: g.group,
                    score: g.score,
                    weight: g.weight,
                    contribution: g.contribution,
                })
                .collect(),
            trend_7d: h.trend_7d,
            trend_30d: h.trend_30d,
            computed_score: Some(h.computed_score),
            overrides,
            churned_at,
            stage,
        },
        customer_id: h.customer_id,
    })
}

/// A snapshot explained: its health, its measures with a score by what they cost it (most
/// first), and the measures without data.
pub fn explanation(s: &Snapshot) -> pb::HealthExplanation {
    let health = health(s);
    let (mut measures, missing): (Vec<_>, Vec<_>) = health
        .measures
        .iter()
        .cloned()
        .partition(|m| m.score.is_some());
    measures.sort_by(|a, b| {
        b.shortfall
            .total_cmp(&a.shortfall)
            .then(a.measure.cmp(&b.measure))
    });
    pb::HealthExplanation {
        health: Some(health),
        measures,
        missing: missing.into_iter().map(|m| m.measure).collect(),
    }
}

/// What moved a customer's score from `old` to `new`: each measure's contribution before and
/// after (an override counted as one more measure), the largest moves first.
pub fn comparison(old: &Snapshot, new: &Snapshot) -> pb::HealthComparison {
    let (a, b) = (contributions(old), contributions(new));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut deltas: Vec<pb::MeasureDelta> = keys
        .into_iter()
        .map(|k| {
            let (ga, va, ca) = a.get(k).cloned().unwrap_or_default();
            let (gb, vb, cb) = b.get(k).cloned().unwrap_or_default();
            pb::MeasureDelta {
                measure: k.clone(),
                group: if gb.is_empty() { ga } else { gb },
                from_value: va,
                to_value: vb,
                from_contribution: ca,
                to_contribution: cb,
                delta: cb - ca,
            }
        })
        .collect();
    deltas.sort_by(|x, y| {
        y.delta
            .abs()
            .total_cmp(&x.delta.abs())
            .then(x.measure.cmp(&y.measure))
    });
    pb::HealthComparison {
        score_change: new.score - old.score,
        from: Some(health(old)),
        to: Some(health(new)),
        deltas,
    }
}

/// The measures of a snapshot keyed by name (group, value, contribution), with the override
/// as one more "measure".
fn contributions(s: &Snapshot) -> BTreeMap<String, (String, Option<f64>, f64)> {
    let mut out: BTreeMap<String, (String, Option<f64>, f64)> = s
        .measures
        .iter()
        .map(|m| {
            (
                m.measure.clone(),
                (m.group.clone(), m.value, m.contribution),
            )
        })
        .collect();
    let computed: f64 = s.measures.iter().map(|m| m.contribution).sum();
    let adjustment = s.score - computed;
    if adjustment.abs() > 1e-12 {
        out.insert("override".to_owned(), (String::new(), None, adjustment));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rapport_domain::scorecard::Band;

    fn everything() -> Snapshot {
        Snapshot {
            customer_id: "c-1".into(),
            score: 61.25,
            band: Band::Yellow,
            tier: Some(Tier::Gold),
            scorecard_version: "builtin-3".into(),
            measures: vec![
                StoredMeasure {
                    measure: "nps".into(),
                    group: "satisfaction".into(),
                    value: Some(9.0),
                    score: Some(100.0),
                    weight: 2.0,
                    contribution: 18.181818181818183,
                    shortfall: 0.0,
                    band: Some("green".into()),
                },
                StoredMeasure {
                    measure: "ces".into(),
                    group: "service".into(),
                    value: None,
                    score: None,
                    weight: 1.0,
                    contribution: 0.0,
                    shortfall: 0.0,
                    band: None,
                },
            ],
            computed_at: 1_767_225_600_123,
            outlook: Some(Outlook {
                p_alive: 0.83,
                expected_purchases_90d: 1.7,
                clv: 412.5,
            }),
            detail: SnapshotDetail {
                groups: vec![StoredGroup {
                    group: "satisfaction".into(),
                    score: Some(100.0),
                    weight: 0.25,
                    contribution: 25.0,
                }],
                trend_7d: Some(-3.5),
                trend_30d: None,
                computed_score: Some(58.0),
                overrides: vec![ActiveOverride {
                    target: OverrideTarget::Sentiment,
                    value: 20.0,
                    author: "csm@example.com".into(),
                    reason: "escalation call".into(),
                    set_at: 1_767_000_000_000,
                    expires_at: 1_768_000_000_000,
                }],
                churned_at: Some(1_767_100_000_000),
                stage: Some(Stage::AtRisk),
            },
        }
    }

    #[test]
    fn a_body_reads_back_as_the_snapshot_it_was_made_from() {
        let s = everything();
        let body = crate::body::encode(&health(&s));
        let read = snapshot(crate::body::decode(&body).unwrap(), s.tier).unwrap();
        assert_eq!(read, s);

        let bare = Snapshot {
            tier: None,
            outlook: None,
            detail: SnapshotDetail {
                computed_score: Some(s.score),
                ..SnapshotDetail::default()
            },
            ..s.clone()
        };
        assert_eq!(snapshot(health(&bare), None).unwrap(), bare);
    }

    #[test]
    fn a_body_reads_with_the_current_tier() {
        let s = everything();
        let read = snapshot(health(&s), Some(Tier::Vip)).unwrap();
        assert_eq!(read.tier, Some(Tier::Vip));
    }

    #[test]
    fn an_unreadable_body_is_a_corrupt_snapshot_naming_the_customer() {
        let mut h = health(&everything());
        h.band = 0;
        let err = snapshot(h.clone(), None).unwrap_err().to_string();
        assert!(err.contains("c-1") && err.contains("no band"), "{err}");
        h.band = convert::band(Band::Red).into();
        h.stage = "sleeping".into();
        let err = snapshot(h, None).unwrap_err().to_string();
        assert!(err.contains("unknown stage"), "{err}");
    }
}
