//! Proto ↔ domain conversions, kept together: the one place that knows both shapes.

use crate::alerting::v1 as alerting;
use crate::common::v1 as common;
use crate::ingestion::v1 as pb;
use chrono::{DateTime, Utc};
use rapport_domain::alert::facts::{Answer, OpenTicket, Signals};
use rapport_domain::event::{
    ComplaintSeverity, EngagementKind, EventDraft, PayloadDraft, Priority, Profile, RejectReason,
    Rejection, SubscriptionChange, SurveyKind, TicketStatus,
};
use rapport_domain::lifecycle::Stage;
use rapport_domain::scorecard::Band;
use rapport_domain::tier::Tier;

/// A stored event as the domain reads it at `now`, validated again as stored events are
/// (what no longer validates is the caller's to leave out and say so).
pub fn stored(
    event: &pb::Event,
    now: DateTime<Utc>,
) -> Result<rapport_domain::event::Event, Rejection> {
    draft(event).and_then(|d| {
        rapport_domain::event::validate(d, now, &rapport_domain::event::ValidationPolicy::stored())
    })
}

/// The domain draft of a proto event, or a rejection when a field cannot even be read.
pub fn draft(event: &pb::Event) -> Result<EventDraft, Rejection> {
    use pb::event::Payload as P;
    let payload = match &event.payload {
        None => None,
        Some(P::Order(o)) => Some(PayloadDraft::Order {
            order_id: o.order_id.clone(),
            amount: o.amount,
            currency: o.currency.clone(),
            items: o.items,
        }),
        Some(P::Refund(r)) => Some(PayloadDraft::Refund {
            order_id: r.order_id.clone(),
            amount: r.amount,
            currency: r.currency.clone(),
        }),
        Some(P::Survey(s)) => Some(PayloadDraft::Survey {
            kind: match pb::SurveyKind::try_from(s.kind) {
                Ok(pb::SurveyKind::Nps) => Some(SurveyKind::Nps),
                Ok(pb::SurveyKind::Csat) => Some(SurveyKind::Csat),
                Ok(pb::SurveyKind::Ces) => Some(SurveyKind::Ces),
                _ => None,
            },
            score: s.score,
            comment: s.comment.clone(),
        }),
        Some(P::Complaint(c)) => Some(PayloadDraft::Complaint {
            complaint_id: c.complaint_id.clone(),
            category: c.category.clone(),
            severity: match pb::Severity::try_from(c.severity) {
                Ok(pb::Severity::Low) => Some(ComplaintSeverity::Low),
                Ok(pb::Severity::Medium) => Some(ComplaintSeverity::Medium),
                Ok(pb::Severity::High) => Some(ComplaintSeverity::High),
                _ => None,
            },
            channel: c.channel.clone(),
        }),
        Some(P::SupportTicket(t)) => Some(PayloadDraft::SupportTicket {
            ticket_id: t.ticket_id.clone(),
            status: match pb::TicketStatus::try_from(t.status) {
                Ok(pb::TicketStatus::Opened) => Some(TicketStatus::Opened),
                Ok(pb::TicketStatus::FirstResponse) => Some(TicketStatus::FirstResponse),
                Ok(pb::TicketStatus::Resolved) => Some(TicketStatus::Resolved),
                Ok(pb::TicketStatus::Reopened) => Some(TicketStatus::Reopened),
                _ => None,
            },
            channel: t.channel.clone(),
            priority: match pb::Priority::try_from(t.priority) {
                Ok(pb::Priority::Unspecified) => None,
                Ok(pb::Priority::Low) => Some(Priority::Low),
                Ok(pb::Priority::Normal) => Some(Priority::Normal),
                Ok(pb::Priority::High) => Some(Priority::High),
                Ok(pb::Priority::Urgent) => Some(Priority::Urgent),
                Err(_) => {
                    return Err(Rejection::new(
                        RejectReason::InvalidValue,
                        "support_ticket.priority",
                        format!("unknown priority {}", t.priority),
                    ));
                }
            },
        }),
        Some(P::Engagement(e)) => Some(PayloadDraft::Engagement {
            kind: match pb::EngagementKind::try_from(e.kind) {
                Ok(pb::EngagementKind::Login) => Some(EngagementKind::Login),
                Ok(pb::EngagementKind::FeatureUse) => Some(EngagementKind::FeatureUse),
                Ok(pb::EngagementKind::EmailOpen) => Some(EngagementKind::EmailOpen),
                Ok(pb::EngagementKind::EmailClick) => Some(EngagementKind::EmailClick),
                Ok(pb::EngagementKind::CampaignResponse) => Some(EngagementKind::CampaignResponse),
                Ok(pb::EngagementKind::EventAttendance) => Some(EngagementKind::EventAttendance),
                _ => None,
            },
            channel: e.channel.clone(),
            count: e.count,
            subject: e.subject.clone(),
        }),
        Some(P::Subscription(s)) => Some(PayloadDraft::Subscription {
            plan: s.plan.clone(),
            change: match pb::SubscriptionChange::try_from(s.change) {
                Ok(pb::SubscriptionChange::Start) => Some(SubscriptionChange::Start),
                Ok(pb::SubscriptionChange::Upgrade) => Some(SubscriptionChange::Upgrade),
                Ok(pb::SubscriptionChange::Downgrade) => Some(SubscriptionChange::Downgrade),
                Ok(pb::SubscriptionChange::Renew) => Some(SubscriptionChange::Renew),
                Ok(pb::SubscriptionChange::Cancel) => Some(SubscriptionChange::Cancel),
                _ => None,
            },
            seats: s.seats,
            mrr: s.mrr,
            currency: s.currency.clone(),
        }),
        Some(P::Payment(p)) => Some(PayloadDraft::Payment {
            invoice_id: p.invoice_id.clone(),
            due_at: p
                .due_at
                .as_ref()
                .map(|t| time(t, "payment.due_at"))
                .transpose()?,
            paid_at: p
                .paid_at
                .as_ref()
                .map(|t| time(t, "payment.paid_at"))
                .transpose()?,
            amount: p.amount,
            currency: p.currency.clone(),
        }),
        Some(P::Profile(p)) => Some(PayloadDraft::Profile(Profile {
            region: p.region.clone(),
            industry: p.industry.clone(),
            acquisition_channel: p.acquisition_channel.clone(),
            acquisition_cost: p.acquisition_cost,
            currency: p.currency.clone(),
            owner: p.owner.clone(),
        })),
    };
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
        .ok_or_else(|| {
            Rejection::new(
                RejectReason::InvalidValue,
                field,
                format!("not a valid timestamp ({}s {}ns)", t.seconds, t.nanos),
            )
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
        RejectReason::TooLarge => pb::RejectReason::TooLarge,
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

/// The domain band of a proto band value; `None` for unspecified or unknown values.
pub fn domain_band(value: i32) -> Option<Band> {
    match common::HealthBand::try_from(value).ok()? {
        common::HealthBand::Unspecified => None,
        common::HealthBand::Red => Some(Band::Red),
        common::HealthBand::Yellow => Some(Band::Yellow),
        common::HealthBand::Green => Some(Band::Green),
    }
}

/// The notification to alerting of a customer's new score and alert signals.
pub fn score_change(
    customer_id: &str,
    band: Band,
    computed_at: i64,
    s: &Signals,
) -> alerting::ScoreChange {
    let answer = |a: Option<Answer>| {
        a.map(|a| alerting::SurveyAnswer {
            score: a.score,
            answered_at: Some(timestamp(a.at)),
        })
    };
    alerting::ScoreChange {
        customer_id: customer_id.to_owned(),
        score: s.score.unwrap_or(0.0),
        band: self::band(band).into(),
        tier: tier(s.tier).into(),
        computed_at: Some(timestamp(computed_at)),
        stage: s.stage.map_or(String::new(), |st| st.name().to_owned()),
        p_alive: s.p_alive,
        spend_total: s.spend_total,
        latest_nps: answer(s.latest_nps),
        latest_csat: answer(s.latest_csat),
        complaints: s.complaints.iter().map(|t| timestamp(*t)).collect(),
        unanswered_tickets: s
            .unanswered
            .iter()
            .map(|t| alerting::UnansweredTicket {
                ticket_id: t.ticket_id.clone(),
                opened_at: Some(timestamp(t.opened_at)),
            })
            .collect(),
        // The fold that made the change names its backfill.
        backfill: String::new(),
    }
}

/// A backtest report's ROC curve of the score, as SVG; `None` when nothing was ranked.
pub fn backtest_roc_svg(report: &crate::scoring::v1::BacktestReport) -> Option<String> {
    let score = report.score.as_ref()?;
    let points: Vec<(f64, f64)> = report
        .roc
        .iter()
        .map(|p| (p.false_positive_rate, p.true_positive_rate))
        .collect();
    Some(rapport_domain::backtest::svg::roc(
        &points,
        score.auc,
        "the health score",
    ))
}

/// A backtest report's reliability plot of the calibrated score, as SVG.
pub fn backtest_reliability_svg(report: &crate::scoring::v1::BacktestReport) -> String {
    let bins: Vec<(f64, f64, u64)> = report
        .reliability
        .iter()
        .map(|b| (b.mean_predicted, b.observed, b.customers))
        .collect();
    rapport_domain::backtest::svg::reliability(&bins, report.brier)
}

/// Milliseconds of an optional proto timestamp (`None` when absent or unreadable).
pub fn millis(t: Option<&prost_types::Timestamp>) -> Option<i64> {
    time(t?, "").ok().map(|t| t.timestamp_millis())
}

/// The alert signals of a score notification and when they were computed (milliseconds);
/// `None` when the score is not a finite number or the time is missing.
pub fn signals(c: &alerting::ScoreChange) -> Option<(Signals, i64)> {
    let at = millis(c.computed_at.as_ref())?;
    if !c.score.is_finite() {
        return None;
    }
    let answer = |a: &Option<alerting::SurveyAnswer>| {
        a.as_ref()
            .and_then(|a| millis(a.answered_at.as_ref()).map(|at| Answer { score: a.score, at }))
    };
    let mut complaints: Vec<i64> = c
        .complaints
        .iter()
        .filter_map(|t| millis(Some(t)))
        .collect();
    complaints.sort_unstable();
    let signals = Signals {
        score: Some(c.score),
        tier: domain_tier(c.tier),
        stage: Stage::from_name(&c.stage),
        p_alive: c.p_alive.filter(|p| p.is_finite()),
        spend_total: if c.spend_total.is_finite() {
            c.spend_total
        } else {
            0.0
        },
        latest_nps: answer(&c.latest_nps),
        latest_csat: answer(&c.latest_csat),
        complaints,
        unanswered: c
            .unanswered_tickets
            .iter()
            .filter_map(|t| {
                millis(t.opened_at.as_ref()).map(|opened_at| OpenTicket {
                    ticket_id: t.ticket_id.clone(),
                    opened_at,
                })
            })
            .collect(),
    };
    Some((signals, at))
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
        for b in [Band::Red, Band::Yellow, Band::Green] {
            assert_eq!(domain_band(band(b).into()), Some(b));
        }
        assert_eq!(domain_band(0), None);
        assert_eq!(domain_band(99), None);
    }

    #[test]
    fn millis_round_trip() {
        for ms in [0, 1, -1, 1_700_000_000_123] {
            let t = timestamp(ms);
            assert_eq!(time(&t, "x").unwrap().timestamp_millis(), ms);
        }
    }
}
