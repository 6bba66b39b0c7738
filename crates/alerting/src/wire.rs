//! Conversions between the API's routes, matchers and silences and the domain's, with the
//! field a bad value came in.

use crate::store::silences::StoredSilence;
use rapport_domain::alert::notify::{Label, Matcher, Route};
use rapport_proto::alerting::v1 as pb;
use rapport_proto::convert;
use tonic::Status;

/// The domain's matcher of the API's.
pub fn matcher(m: Option<pb::AlertMatcher>) -> Matcher {
    let m = m.unwrap_or_default();
    Matcher {
        rules: m.rules,
        severities: m.severities,
        tiers: m.tiers,
        stages: m.stages,
        customer_ids: m.customer_ids,
    }
}

/// The API's matcher of the domain's.
pub fn matcher_pb(m: Matcher) -> pb::AlertMatcher {
    pb::AlertMatcher {
        rules: m.rules,
        severities: m.severities,
        tiers: m.tiers,
        stages: m.stages,
        customer_ids: m.customer_ids,
    }
}

/// Milliseconds of a duration field, refusing negative or unreadable ones by name.
pub fn duration_ms(d: Option<&prost_types::Duration>, field: &str) -> Result<Option<i64>, Status> {
    let Some(d) = d else { return Ok(None) };
    let ms = std::time::Duration::try_from(*d)
        .map_err(|_| Status::invalid_argument(format!("{field}: must not be negative")))?
        .as_millis();
    i64::try_from(ms)
        .map(Some)
        .map_err(|_| Status::invalid_argument(format!("{field}: too long")))
}

fn duration_pb(ms: i64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: ms.div_euclid(1_000),
        nanos: (ms.rem_euclid(1_000) * 1_000_000) as i32,
    }
}

/// The domain's route of the API's, defaults filling what is unset (checked by the store).
pub fn route(r: Option<pb::WebhookRoute>) -> Result<Route, Status> {
    let defaults = Route::default();
    let Some(r) = r else { return Ok(defaults) };
    let group_by = if r.group_by_nothing {
        Vec::new()
    } else if r.group_by.is_empty() {
        defaults.group_by.clone()
    } else {
        r.group_by
            .iter()
            .map(|name| {
                Label::from_name(name).ok_or_else(|| {
                    Status::invalid_argument(format!(
                        "route.group_by: unknown label {name:?} (rule, severity, tier, stage, \
                         customer)"
                    ))
                })
            })
            .collect::<Result<_, _>>()?
    };
    let ms = |d: Option<&prost_types::Duration>, field: &str, default: i64| {
        duration_ms(d, field).map(|v| v.unwrap_or(default))
    };
    Ok(Route {
        matcher: matcher(r.matcher),
        group_by,
        group_wait_ms: ms(
            r.group_wait.as_ref(),
            "route.group_wait",
            defaults.group_wait_ms,
        )?,
        group_interval_ms: ms(
            r.group_interval.as_ref(),
            "route.group_interval",
            defaults.group_interval_ms,
        )?,
        repeat_interval_ms: ms(
            r.repeat_interval.as_ref(),
            "route.repeat_interval",
            defaults.repeat_interval_ms,
        )?,
        backfill_wait_ms: ms(
            r.backfill_wait.as_ref(),
            "route.backfill_wait",
            defaults.backfill_wait_ms,
        )?,
        max_bytes: if r.max_bytes == 0 {
            defaults.max_bytes
        } else {
            r.max_bytes as usize
        },
    })
}

/// The API's route of the domain's.
pub fn route_pb(r: Route) -> pb::WebhookRoute {
    pb::WebhookRoute {
        group_by_nothing: r.group_by.is_empty(),
        group_by: r.group_by.iter().map(|l| l.name().to_owned()).collect(),
        matcher: Some(matcher_pb(r.matcher)),
        group_wait: Some(duration_pb(r.group_wait_ms)),
        group_interval: Some(duration_pb(r.group_interval_ms)),
        repeat_interval: Some(duration_pb(r.repeat_interval_ms)),
        backfill_wait: Some(duration_pb(r.backfill_wait_ms)),
        max_bytes: u32::try_from(r.max_bytes).unwrap_or(u32::MAX),
    }
}

/// The API's silence of a stored one, with its state at `now`.
pub fn silence(s: StoredSilence, now: i64) -> pb::Silence {
    let state = if s.ends_at <= now {
        "expired"
    } else if s.starts_at > now {
        "pending"
    } else {
        "active"
    };
    pb::Silence {
        id: s.id.to_string(),
        matcher: Some(matcher_pb(s.matcher())),
        author: s.author,
        reason: s.reason,
        starts_at: Some(convert::timestamp(s.starts_at)),
        ends_at: Some(convert::timestamp(s.ends_at)),
        state: state.to_owned(),
        expired_by: s.expired_by.unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unset_route_is_the_default_and_a_route_survives_the_round_trip() {
        assert_eq!(route(None).unwrap(), Route::default());
        let r = Route {
            matcher: Matcher {
                tiers: vec!["vip".into()],
                ..Matcher::default()
            },
            group_by: vec![Label::Tier],
            group_wait_ms: 1_500,
            ..Route::default()
        };
        assert_eq!(route(Some(route_pb(r.clone()))).unwrap(), r);
        let nothing = Route {
            group_by: vec![],
            ..Route::default()
        };
        assert_eq!(route(Some(route_pb(nothing.clone()))).unwrap(), nothing);
    }

    #[test]
    fn bad_route_fields_are_named() {
        let bad = pb::WebhookRoute {
            group_by: vec!["team".into()],
            ..Default::default()
        };
        let e = route(Some(bad)).unwrap_err();
        assert!(e.message().starts_with("route.group_by:"), "{e}");
        let negative = pb::WebhookRoute {
            group_wait: Some(prost_types::Duration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        };
        let e = route(Some(negative)).unwrap_err();
        assert!(e.message().starts_with("route.group_wait:"), "{e}");
    }
}
