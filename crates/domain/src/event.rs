//! Customer events: the validated [`Event`] that only [`validate`] can build from a draft.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest accepted identifier (event, customer, order, complaint ids).
pub const MAX_ID_LEN: usize = 100;

/// An event as a producer sent it, before validation; every field may be missing or wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventDraft {
    pub event_id: String,
    pub customer_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub payload: Option<PayloadDraft>,
}

/// The typed payload of a draft.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadDraft {
    Order {
        order_id: String,
        amount: f64,
        currency: String,
        items: u32,
    },
    Survey {
        /// `None` when the producer sent an unknown survey kind.
        kind: Option<SurveyKind>,
        score: i32,
        comment: String,
    },
    Complaint {
        complaint_id: String,
        category: String,
        /// `None` when the producer sent an unknown severity.
        severity: Option<ComplaintSeverity>,
        channel: String,
    },
}

/// A survey's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SurveyKind {
    /// Net Promoter Score, 0 to 10.
    Nps,
}

impl SurveyKind {
    /// The inclusive range of valid answers on this scale.
    pub fn range(self) -> (i32, i32) {
        match self {
            SurveyKind::Nps => (0, 10),
        }
    }
}

/// How serious a complaint is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ComplaintSeverity {
    Low,
    Medium,
    High,
}

/// A validated event: every invariant of the contract holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub event_id: String,
    pub customer_id: String,
    /// Event time, corrected for the producer's clock skew.
    pub occurred_at: DateTime<Utc>,
    pub payload: Payload,
}

/// The validated payload of an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Payload {
    Order {
        order_id: String,
        amount: f64,
        currency: String,
        items: u32,
    },
    Survey {
        kind: SurveyKind,
        score: i32,
        comment: String,
    },
    Complaint {
        complaint_id: String,
        category: String,
        severity: ComplaintSeverity,
        channel: String,
    },
}

impl Payload {
    /// Short name of the event type, as stored.
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::Order { .. } => "order",
            Payload::Survey { .. } => "survey",
            Payload::Complaint { .. } => "complaint",
        }
    }
}

/// Why an event was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    MissingField,
    InvalidValue,
    OutOfRange,
    TooLong,
    InFuture,
    Conflict,
    UnsupportedType,
}

impl RejectReason {
    /// Stable code, as stored in quarantine.
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::MissingField => "missing_field",
            RejectReason::InvalidValue => "invalid_value",
            RejectReason::OutOfRange => "out_of_range",
            RejectReason::TooLong => "too_long",
            RejectReason::InFuture => "in_future",
            RejectReason::Conflict => "conflict",
            RejectReason::UnsupportedType => "unsupported_type",
        }
    }
}

/// A rejected event: the reason, the path of the offending field and a message for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct Rejection {
    pub reason: RejectReason,
    pub field: String,
    pub message: String,
}

impl Rejection {
    fn new(reason: RejectReason, field: &str, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Limits that validation applies.
#[derive(Debug, Clone, Copy)]
pub struct ValidationPolicy {
    /// How far in the future (by the server's clock) an event time may be.
    pub future_skew: Duration,
}

impl Default for ValidationPolicy {
    fn default() -> Self {
        ValidationPolicy {
            future_skew: Duration::minutes(5),
        }
    }
}

/// Validates a draft received at `received_at`, the only way to obtain an [`Event`].
///
/// Clock skew is corrected as Segment documents it: when the producer says when it sent the
/// event, `occurred_at` is shifted by the difference between the server's receive time and the
/// producer's send time.
pub fn validate(
    draft: EventDraft,
    received_at: DateTime<Utc>,
    policy: &ValidationPolicy,
) -> Result<Event, Rejection> {
    let event_id = id(draft.event_id, "event_id")?;
    let customer_id = id(draft.customer_id, "customer_id")?;
    let occurred = draft
        .occurred_at
        .ok_or_else(|| Rejection::new(RejectReason::MissingField, "occurred_at", "is required"))?;
    let occurred_at = match draft.sent_at {
        Some(sent) => occurred + (received_at - sent),
        None => occurred,
    };
    if occurred_at > received_at + policy.future_skew {
        return Err(Rejection::new(
            RejectReason::InFuture,
            "occurred_at",
            format!(
                "{occurred_at} is later than the server time {received_at} plus {} s of allowed skew",
                policy.future_skew.num_seconds()
            ),
        ));
    }
    let payload = match draft.payload {
        None => {
            return Err(Rejection::new(
                RejectReason::MissingField,
                "payload",
                "one of order, survey or complaint is required",
            ));
        }
        Some(p) => payload(p)?,
    };
    Ok(Event {
        event_id,
        customer_id,
        occurred_at,
        payload,
    })
}

fn payload(draft: PayloadDraft) -> Result<Payload, Rejection> {
    Ok(match draft {
        PayloadDraft::Order {
            order_id,
            amount,
            currency,
            items,
        } => {
            if !amount.is_finite() {
                return Err(Rejection::new(
                    RejectReason::InvalidValue,
                    "order.amount",
                    "must be a finite number",
                ));
            }
            if amount < 0.0 {
                return Err(Rejection::new(
                    RejectReason::OutOfRange,
                    "order.amount",
                    format!("must not be negative, got {amount}"),
                ));
            }
            Payload::Order {
                order_id: id(order_id, "order.order_id")?,
                amount,
                currency: currency_code(currency, "order.currency")?,
                items,
            }
        }
        PayloadDraft::Survey {
            kind,
            score,
            comment,
        } => {
            let kind = kind.ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidValue,
                    "survey.kind",
                    "unknown survey kind",
                )
            })?;
            let (lo, hi) = kind.range();
            if !(lo..=hi).contains(&score) {
                return Err(Rejection::new(
                    RejectReason::OutOfRange,
                    "survey.score",
                    format!("must be between {lo} and {hi} for {kind:?}, got {score}"),
                ));
            }
            Payload::Survey {
                kind,
                score,
                comment,
            }
        }
        PayloadDraft::Complaint {
            complaint_id,
            category,
            severity,
            channel,
        } => Payload::Complaint {
            complaint_id: id(complaint_id, "complaint.complaint_id")?,
            category,
            severity: severity.ok_or_else(|| {
                Rejection::new(
                    RejectReason::InvalidValue,
                    "complaint.severity",
                    "unknown or missing severity",
                )
            })?,
            channel,
        },
    })
}

fn id(value: String, field: &str) -> Result<String, Rejection> {
    if value.trim().is_empty() {
        return Err(Rejection::new(
            RejectReason::MissingField,
            field,
            "is required and must not be blank",
        ));
    }
    let chars = value.chars().count();
    if chars > MAX_ID_LEN {
        return Err(Rejection::new(
            RejectReason::TooLong,
            field,
            format!("is {chars} characters long, at most {MAX_ID_LEN} are allowed"),
        ));
    }
    Ok(value)
}

fn currency_code(value: String, field: &str) -> Result<String, Rejection> {
    if value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(value)
    } else {
        Err(Rejection::new(
            RejectReason::InvalidValue,
            field,
            format!("must be an ISO 4217 code of three capital letters, got {value:?}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use proptest::prelude::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 10, 12, 0, 0).unwrap()
    }

    fn order(amount: f64) -> EventDraft {
        EventDraft {
            event_id: "e1".into(),
            customer_id: "c1".into(),
            occurred_at: Some(now() - Duration::hours(1)),
            sent_at: None,
            payload: Some(PayloadDraft::Order {
                order_id: "o1".into(),
                amount,
                currency: "USD".into(),
                items: 1,
            }),
        }
    }

    fn rejection(draft: EventDraft) -> Rejection {
        validate(draft, now(), &ValidationPolicy::default()).unwrap_err()
    }

    #[test]
    fn a_good_order_validates() {
        let event = validate(order(12.5), now(), &ValidationPolicy::default()).unwrap();
        assert_eq!(event.payload.type_name(), "order");
        assert_eq!(event.occurred_at, now() - Duration::hours(1));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut missing_customer = order(1.0);
        missing_customer.customer_id.clear();
        assert_eq!(rejection(missing_customer).field, "customer_id");

        let negative = rejection(order(-1.0));
        assert_eq!(
            (negative.field.as_str(), negative.reason),
            ("order.amount", RejectReason::OutOfRange)
        );
        assert_eq!(rejection(order(f64::NAN)).field, "order.amount");

        let mut nps = order(1.0);
        nps.payload = Some(PayloadDraft::Survey {
            kind: Some(SurveyKind::Nps),
            score: 11,
            comment: String::new(),
        });
        assert_eq!(rejection(nps).field, "survey.score");

        let mut long = order(1.0);
        long.event_id = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(rejection(long).reason, RejectReason::TooLong);

        let mut future = order(1.0);
        future.occurred_at = Some(now() + Duration::hours(1));
        assert_eq!(rejection(future).reason, RejectReason::InFuture);

        let mut currency = order(1.0);
        if let Some(PayloadDraft::Order { currency: c, .. }) = currency.payload.as_mut() {
            *c = "usd".into();
        }
        assert_eq!(rejection(currency).field, "order.currency");
    }

    #[test]
    fn clock_skew_is_corrected_from_sent_at() {
        let mut draft = order(1.0);
        // The producer's clock runs two hours fast.
        draft.occurred_at = Some(now() + Duration::hours(1));
        draft.sent_at = Some(now() + Duration::hours(2));
        let event = validate(draft, now(), &ValidationPolicy::default()).unwrap();
        assert_eq!(event.occurred_at, now() - Duration::hours(1));
    }

    proptest! {
        #[test]
        fn any_draft_validates_or_names_a_field(
            event_id in ".{0,120}", customer_id in ".{0,120}", amount in proptest::num::f64::ANY,
            score in any::<i32>(), secs in -10_000_000i64..10_000_000, which in 0u8..4,
        ) {
            let payload = match which {
                0 => None,
                1 => Some(PayloadDraft::Order { order_id: event_id.clone(), amount, currency: "EUR".into(), items: 1 }),
                2 => Some(PayloadDraft::Survey { kind: Some(SurveyKind::Nps), score, comment: String::new() }),
                _ => Some(PayloadDraft::Complaint { complaint_id: customer_id.clone(), category: "billing".into(), severity: None, channel: "email".into() }),
            };
            let draft = EventDraft { event_id, customer_id, occurred_at: Some(now() + Duration::seconds(secs)), sent_at: None, payload };
            match validate(draft, now(), &ValidationPolicy::default()) {
                Ok(e) => prop_assert!(!e.event_id.trim().is_empty() && e.event_id.chars().count() <= MAX_ID_LEN),
                Err(r) => prop_assert!(!r.field.is_empty() && !r.message.is_empty()),
            }
        }
    }
}
