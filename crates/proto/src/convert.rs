//! Proto ↔ domain conversions, kept together: the one place that knows both shapes.

use crate::common::v1 as common;
use crate::ingestion::v1 as pb;
use chrono::{DateTime, Utc};
use rapport_domain::event::{
    ComplaintSeverity, EventDraft, PayloadDraft, RejectReason, Rejection, SurveyKind,
};
use rapport_domain::scorecard::Band;
use rapport_domain::tier::Tier;

/// The domain draft of a proto event, or a rejection when a field cannot even be read.
pub fn draft(event: &pb::Event) -> Result<EventDraft, Rejection> {
    let payload = event.payload.as_ref().map(|p| match p {
        pb::event::Payload::Order(o) => PayloadDraft::Order {
            order_id: o.order_id.clone(),
            amount: o.amount,
            currency: o.currency.clone(),
            items: o.items,
        },
        pb::event::Payload::Survey(s) => PayloadDraft::Survey {
            kind: match pb::SurveyKind::try_from(s.kind) {
                Ok(pb::SurveyKind::Nps) => Some(SurveyKind::Nps),
                _ => None,
            },
            score: s.score,
            comment: s.comment.clone(),
        },
        pb::event::Payload::Complaint(c) => PayloadDraft::Complaint {
            complaint_id: c.complaint_id.clone(),
            category: c.category.clone(),
            severity: match pb::Severity::try_from(c.severity) {
                Ok(pb::Severity::Low) => Some(ComplaintSeverity::Low),
                Ok(pb::Severity::Medium) => Some(ComplaintSeverity::Medium),
                Ok(pb::Severity::High) => Some(ComplaintSeverity::High),
                _ => None,
            },
            channel: c.channel.clone(),
        },
    });
    Ok(EventDraft {
        event_id: event.event_id.clone(),
        customer_id: event.customer_id.clone(),
        occurred_at: event
            .occurred_at
            .as_ref()
            .map(|t| time(t, "occurred_at"))
            .transpose()?,
        sent_at: event
            .sent_at
            .as_ref()
            .map(|t| time(t, "sent_at"))
            .transpose()?,
        payload,
    })
}

/// A proto timestamp as a UTC time, or a rejection naming `field`.
pub fn time(t: &prost_types::Timestamp, field: &str) -> Result<DateTime<Utc>, Rejection> {
    u32::try_from(t.nanos)
        .ok()
        .and_then(|nanos| DateTime::from_timestamp(t.seconds, nanos))
        .ok_or_else(|| Rejection {
            reason: RejectReason::InvalidValue,
            field: field.to_owned(),
            message: format!("not a valid timestamp ({}s {}ns)", t.seconds, t.nanos),
        })
}

/// A proto timestamp from milliseconds since the epoch.
pub fn timestamp(millis: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

/// The proto reason code of a domain rejection.
pub fn reason(r: RejectReason) -> pb::RejectReason {
    match r {
        RejectReason::MissingField => pb::RejectReason::MissingField,
        RejectReason::InvalidValue => pb::RejectReason::InvalidValue,
        RejectReason::OutOfRange => pb::RejectReason::OutOfRange,
        RejectReason::TooLong => pb::RejectReason::TooLong,
        RejectReason::InFuture => pb::RejectReason::InFuture,
        RejectReason::Conflict => pb::RejectReason::Conflict,
        RejectReason::UnsupportedType => pb::RejectReason::UnsupportedType,
    }
}

/// The proto tier of a domain tier (unspecified when there is none yet).
pub fn tier(t: Option<Tier>) -> common::Tier {
    match t {
        None => common::Tier::Unspecified,
        Some(Tier::Regular) => common::Tier::Regular,
        Some(Tier::Bronze) => common::Tier::Bronze,
        Some(Tier::Silver) => common::Tier::Silver,
        Some(Tier::Gold) => common::Tier::Gold,
        Some(Tier::Vip) => common::Tier::Vip,
    }
}

/// The domain tier of a proto tier value; `None` for unspecified or unknown values.
pub fn domain_tier(value: i32) -> Option<Tier> {
    match common::Tier::try_from(value).ok()? {
        common::Tier::Unspecified => None,
        common::Tier::Regular => Some(Tier::Regular),
        common::Tier::Bronze => Some(Tier::Bronze),
        common::Tier::Silver => Some(Tier::Silver),
        common::Tier::Gold => Some(Tier::Gold),
        common::Tier::Vip => Some(Tier::Vip),
    }
}

/// The proto band of a domain band.
pub fn band(b: Band) -> common::HealthBand {
    match b {
        Band::Red => common::HealthBand::Red,
        Band::Yellow => common::HealthBand::Yellow,
        Band::Green => common::HealthBand::Green,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreadable_timestamps_are_rejected_by_field() {
        let event = pb::Event {
            occurred_at: Some(prost_types::Timestamp {
                seconds: i64::MAX,
                nanos: 0,
            }),
            ..Default::default()
        };
        assert_eq!(draft(&event).unwrap_err().field, "occurred_at");
        let bad_nanos = prost_types::Timestamp {
            seconds: 0,
            nanos: -5,
        };
        assert!(time(&bad_nanos, "sent_at").is_err());
    }

    #[test]
    fn tiers_round_trip() {
        for t in Tier::DESCENDING {
            assert_eq!(domain_tier(tier(Some(t)).into()), Some(t));
        }
        assert_eq!(domain_tier(0), None);
        assert_eq!(domain_tier(99), None);
    }

    #[test]
    fn millis_round_trip() {
        for ms in [0, 1, -1, 1_700_000_000_123] {
            let t = timestamp(ms);
            assert_eq!(time(&t, "x").unwrap().timestamp_millis(), ms);
        }
    }
}
