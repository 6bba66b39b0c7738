//! Customer events: the validated [`Event`] that only [`validate`] can build from a draft.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Longest accepted identifier (event, customer, order, ticket, invoice ids…).
pub const MAX_ID_LEN: usize = 100;
/// Longest accepted free-text field (category, channel, plan, comment…).
pub const MAX_TEXT_LEN: usize = 2_000;

/// An event as a producer sent it, before validation; every field may be missing or wrong.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventDraft {
    pub event_id: String,
    pub customer_id: String,
    pub occurred_at: Option<DateTime<Utc>>,
    pub sent_at: Option<DateTime<Utc>>,
    pub payload: Option<PayloadDraft>,
}

/// The typed payload of a draft. Enumerations are `None` when the producer sent an unknown
/// or unspecified value.
#[derive(Debug, Clone, PartialEq)]
pub enum PayloadDraft {
    Order {
        order_id: String,
        amount: f64,
        currency: String,
        items: u32,
    },
    Refund {
        order_id: String,
        amount: f64,
        currency: String,
    },
    Survey {
        kind: Option<SurveyKind>,
        score: i32,
        comment: String,
    },
    Complaint {
        complaint_id: String,
        category: String,
        severity: Option<ComplaintSeverity>,
        channel: String,
    },
    SupportTicket {
        ticket_id: String,
        status: Option<TicketStatus>,
        channel: String,
        priority: Option<Priority>,
    },
    Engagement {
        kind: Option<EngagementKind>,
        channel: String,
        count: u32,
        subject: String,
    },
    Subscription {
        plan: String,
        change: Option<SubscriptionChange>,
        seats: u32,
        mrr: f64,
        currency: String,
    },
    Payment {
        invoice_id: String,
        due_at: Option<DateTime<Utc>>,
        paid_at: Option<DateTime<Utc>>,
        amount: f64,
        currency: String,
    },
    Profile(Profile),
}

/// A survey's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SurveyKind {
    /// Net Promoter Score, 0 to 10.
    Nps,
    /// Customer satisfaction, 1 to 5.
    Csat,
    /// Customer effort score, 1 to 7.
    Ces,
}

impl SurveyKind {
    /// The inclusive range of valid answers on this scale.
    pub fn range(self) -> (i32, i32) {
        match self {
            SurveyKind::Nps => (0, 10),
            SurveyKind::Csat => (1, 5),
            SurveyKind::Ces => (1, 7),
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

/// A step in a support ticket's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TicketStatus {
    Opened,
    FirstResponse,
    Resolved,
    Reopened,
}

/// A support ticket's priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Priority {
    Low,
    Normal,
    High,
    Urgent,
}

/// What kind of engagement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EngagementKind {
    Login,
    FeatureUse,
    EmailOpen,
    EmailClick,
    CampaignResponse,
    EventAttendance,
}

impl EngagementKind {
    /// Every kind, in a fixed order.
    pub const ALL: [EngagementKind; 6] = [
        EngagementKind::Login,
        EngagementKind::FeatureUse,
        EngagementKind::EmailOpen,
        EngagementKind::EmailClick,
        EngagementKind::CampaignResponse,
        EngagementKind::EventAttendance,
    ];

    /// Position in [`EngagementKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What happened to a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubscriptionChange {
    Start,
    Upgrade,
    Downgrade,
    Renew,
    Cancel,
}

/// Customer attributes; empty strings and `None` leave what is known unchanged.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub region: String,
    pub industry: String,
    pub acquisition_channel: String,
    pub acquisition_cost: Option<f64>,
    pub currency: String,
    pub owner: String,
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
    Refund {
        order_id: String,
        amount: f64,
        currency: String,
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
    SupportTicket {
        ticket_id: String,
        status: TicketStatus,
        channel: String,
        priority: Option<Priority>,
    },
    Engagement {
        kind: EngagementKind,
        channel: String,
        count: u32,
        subject: String,
    },
    Subscription {
        plan: String,
        change: SubscriptionChange,
        seats: u32,
        mrr: f64,
        currency: Option<String>,
    },
    Payment {
        invoice_id: String,
        due_at: DateTime<Utc>,
        paid_at: Option<DateTime<Utc>>,
        amount: f64,
        currency: String,
    },
    Profile(Profile),
}

impl Payload {
    /// Short name of the event type, as stored.
    pub fn type_name(&self) -> &'static str {
        match self {
            Payload::Order { .. } => "order",
            Payload::Refund { .. } => "refund",
            Payload::Survey { .. } => "survey",
            Payload::Complaint { .. } => "complaint",
            Payload::SupportTicket { .. } => "support_ticket",
            Payload::Engagement { .. } => "engagement",
            Payload::Subscription { .. } => "subscription",
            Payload::Payment { .. } => "payment",
            Payload::Profile(_) => "profile",
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
    TooLarge,
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
            RejectReason::TooLarge => "too_large",
        }
    }

    /// The reason of a stored code.
    pub fn from_code(code: &str) -> Option<RejectReason> {
        use RejectReason::*;
        [
            MissingField,
            InvalidValue,
            OutOfRange,
            TooLong,
            InFuture,
            Conflict,
            UnsupportedType,
            TooLarge,
        ]
        .into_iter()
        .find(|r| r.code() == code)
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
    /// A rejection of `field` for `reason`.
    pub fn new(reason: RejectReason, field: &str, message: impl Into<String>) -> Self {
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

impl ValidationPolicy {
    /// For re-reading stored events: they passed validation, the clock check included, when
    /// they were ingested, so only their shape is checked again.
    pub fn stored() -> ValidationPolicy {
        ValidationPolicy {
            future_skew: Duration::days(36_500),
        }
    }
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
                "one of order, refund, survey, complaint, support_ticket, engagement, subscription, payment or profile is required",
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
        } => Payload::Order {
            order_id: id(order_id, "order.order_id")?,
            amount: money(amount, "order.amount")?,
            currency: currency_code(currency, "order.currency")?,
            items,
        },
        PayloadDraft::Refund {
            order_id,
            amount,
            currency,
        } => Payload::Refund {
            order_id: id(order_id, "refund.order_id")?,
            amount: money(amount, "refund.amount")?,
            currency: currency_code(currency, "refund.currency")?,
        },
        PayloadDraft::Survey {
            kind,
            score,
            comment,
        } => {
            let kind = known(kind, "survey.kind", "NPS, CSAT or CES")?;
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
                comment: text(comment, "survey.comment")?,
            }
        }
        PayloadDraft::Complaint {
            complaint_id,
            category,
            severity,
            channel,
        } => Payload::Complaint {
            complaint_id: id(complaint_id, "complaint.complaint_id")?,
            category: text(category, "complaint.category")?,
            severity: known(severity, "complaint.severity", "low, medium or high")?,
            channel: text(channel, "complaint.channel")?,
        },
        PayloadDraft::SupportTicket {
            ticket_id,
            status,
            channel,
            priority,
        } => Payload::SupportTicket {
            ticket_id: id(ticket_id, "support_ticket.ticket_id")?,
            status: known(
                status,
                "support_ticket.status",
                "opened, first_response, resolved or reopened",
            )?,
            channel: text(channel, "support_ticket.channel")?,
            priority,
        },
        PayloadDraft::Engagement {
            kind,
            channel,
            count,
            subject,
        } => Payload::Engagement {
            kind: known(
                kind,
                "engagement.kind",
                "login, feature_use, email_open, email_click, campaign_response or event_attendance",
            )?,
            channel: text(channel, "engagement.channel")?,
            count: count.max(1),
            subject: text(subject, "engagement.subject")?,
        },
        PayloadDraft::Subscription {
            plan,
            change,
            seats,
            mrr,
            currency,
        } => {
            let mrr = money(mrr, "subscription.mrr")?;
            let currency = if mrr > 0.0 || !currency.is_empty() {
                Some(currency_code(currency, "subscription.currency")?)
            } else {
                None
            };
            Payload::Subscription {
                plan: id(plan, "subscription.plan")?,
                change: known(
                    change,
                    "subscription.change",
                    "start, upgrade, downgrade, renew or cancel",
                )?,
                seats,
                mrr,
                currency,
            }
        }
        PayloadDraft::Payment {
            invoice_id,
            due_at,
            paid_at,
            amount,
            currency,
        } => Payload::Payment {
            invoice_id: id(invoice_id, "payment.invoice_id")?,
            due_at: due_at.ok_or_else(|| {
                Rejection::new(RejectReason::MissingField, "payment.due_at", "is required")
            })?,
            paid_at,
            amount: money(amount, "payment.amount")?,
            currency: currency_code(currency, "payment.currency")?,
        },
        PayloadDraft::Profile(p) => {
            let cost = p
                .acquisition_cost
                .map(|c| money(c, "profile.acquisition_cost"))
                .transpose()?;
            let currency = match cost {
                Some(_) => currency_code(p.currency, "profile.currency")?,
                None => p.currency,
            };
            Payload::Profile(Profile {
                region: text(p.region, "profile.region")?,
                industry: text(p.industry, "profile.industry")?,
                acquisition_channel: text(p.acquisition_channel, "profile.acquisition_channel")?,
                acquisition_cost: cost,
                currency,
                owner: text(p.owner, "profile.owner")?,
            })
        }
    })
}

fn known<T>(value: Option<T>, field: &str, expected: &str) -> Result<T, Rejection> {
    value.ok_or_else(|| {
        Rejection::new(
            RejectReason::InvalidValue,
            field,
            format!("unknown or missing; expected {expected}"),
        )
    })
}

fn money(amount: f64, field: &str) -> Result<f64, Rejection> {
    if !amount.is_finite() {
        return Err(Rejection::new(
            RejectReason::InvalidValue,
            field,
            "must be a finite number",
        ));
    }
    if amount < 0.0 {
        return Err(Rejection::new(
            RejectReason::OutOfRange,
            field,
            format!("must not be negative, got {amount}"),
        ));
    }
    Ok(amount)
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

fn text(value: String, field: &str) -> Result<String, Rejection> {
    let chars = value.chars().count();
    if chars > MAX_TEXT_LEN {
        return Err(Rejection::new(
            RejectReason::TooLong,
            field,
            format!("is {chars} characters long, at most {MAX_TEXT_LEN} are allowed"),
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

    #[test]
    fn every_event_type_checks_its_fields() {
        let at = Some(now() - Duration::hours(1));
        let event = |payload| EventDraft {
            event_id: "e".into(),
            customer_id: "c".into(),
            occurred_at: at,
            sent_at: None,
            payload: Some(payload),
        };
        let field = |payload| rejection(event(payload)).field;
        assert_eq!(
            field(PayloadDraft::Survey {
                kind: Some(SurveyKind::Csat),
                score: 6,
                comment: String::new()
            }),
            "survey.score"
        );
        assert_eq!(
            field(PayloadDraft::Survey {
                kind: Some(SurveyKind::Ces),
                score: 0,
                comment: String::new()
            }),
            "survey.score"
        );
        assert_eq!(
            field(PayloadDraft::Survey {
                kind: None,
                score: 3,
                comment: String::new()
            }),
            "survey.kind"
        );
        assert_eq!(
            field(PayloadDraft::Refund {
                order_id: "o".into(),
                amount: -1.0,
                currency: "EUR".into()
            }),
            "refund.amount"
        );
        assert_eq!(
            field(PayloadDraft::SupportTicket {
                ticket_id: "t".into(),
                status: None,
                channel: "chat".into(),
                priority: None
            }),
            "support_ticket.status"
        );
        assert_eq!(
            field(PayloadDraft::Engagement {
                kind: None,
                channel: String::new(),
                count: 1,
                subject: String::new()
            }),
            "engagement.kind"
        );
        assert_eq!(
            field(PayloadDraft::Subscription {
                plan: "pro".into(),
                change: Some(SubscriptionChange::Start),
                seats: 3,
                mrr: 90.0,
                currency: String::new()
            }),
            "subscription.currency"
        );
        assert_eq!(
            field(PayloadDraft::Payment {
                invoice_id: "i".into(),
                due_at: None,
                paid_at: None,
                amount: 10.0,
                currency: "EUR".into()
            }),
            "payment.due_at"
        );
        let costly = Profile {
            acquisition_cost: Some(f64::INFINITY),
            currency: "EUR".into(),
            ..Profile::default()
        };
        assert_eq!(
            field(PayloadDraft::Profile(costly)),
            "profile.acquisition_cost"
        );
        let long = "x".repeat(MAX_TEXT_LEN + 1);
        assert_eq!(
            field(PayloadDraft::Complaint {
                complaint_id: "k".into(),
                category: long,
                severity: Some(ComplaintSeverity::Low),
                channel: String::new()
            }),
            "complaint.category"
        );

        let good = [
            PayloadDraft::Refund {
                order_id: "o".into(),
                amount: 5.0,
                currency: "EUR".into(),
            },
            PayloadDraft::SupportTicket {
                ticket_id: "t".into(),
                status: Some(TicketStatus::Opened),
                channel: "chat".into(),
                priority: None,
            },
            PayloadDraft::Engagement {
                kind: Some(EngagementKind::Login),
                channel: "app".into(),
                count: 0,
                subject: String::new(),
            },
            PayloadDraft::Subscription {
                plan: "free".into(),
                change: Some(SubscriptionChange::Start),
                seats: 1,
                mrr: 0.0,
                currency: String::new(),
            },
            PayloadDraft::Payment {
                invoice_id: "i".into(),
                due_at: at,
                paid_at: None,
                amount: 10.0,
                currency: "EUR".into(),
            },
            PayloadDraft::Profile(Profile {
                region: "EU".into(),
                ..Profile::default()
            }),
            PayloadDraft::Survey {
                kind: Some(SurveyKind::Csat),
                score: 5,
                comment: String::new(),
            },
        ];
        for payload in good {
            let valid = validate(event(payload.clone()), now(), &ValidationPolicy::default());
            assert!(valid.is_ok(), "{payload:?}: {valid:?}");
        }
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
