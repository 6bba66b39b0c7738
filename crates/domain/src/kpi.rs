//! Relationship KPIs per calendar period (month or quarter) and value tier, from a tenant's
//! events and tier history: NPS, CSAT %, retention and churn, repurchase, tier upgrades and
//! downgrades, CLV, complaint rate and median first-response time.
//!
//! Every definition is on its [`KpiRow`] field. A customer belongs, for a period, to the tier
//! it held at the period's end (by its tier history; a customer first graded later counts in
//! its first tier), so a report run today and one run next year agree about the past.

use crate::event::{Event, Payload, SurveyKind, TicketStatus};
use crate::tier::Tier;
use chrono::{DateTime, Datelike, Months, NaiveDate, Utc};
use std::collections::{BTreeSet, HashMap};

/// The length of a reporting period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    Month,
    Quarter,
}

impl Granularity {
    /// Months per period.
    pub fn months(self) -> u32 {
        match self {
            Granularity::Month => 1,
            Granularity::Quarter => 3,
        }
    }
}

/// A calendar month or quarter, `[start, end)` in UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Period {
    pub granularity: Granularity,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// `2026-03` for a month, `2026-Q1` for a quarter.
    pub label: String,
}

impl Period {
    /// The period of `granularity` that contains `day`.
    pub fn containing(granularity: Granularity, day: NaiveDate) -> Period {
        let months = granularity.months();
        let first_month = (day.month0() / months) * months + 1;
        let start = NaiveDate::from_ymd_opt(day.year(), first_month, 1).unwrap_or(day);
        Period::starting(granularity, start)
    }

    fn starting(granularity: Granularity, start: NaiveDate) -> Period {
        let end = start
            .checked_add_months(Months::new(granularity.months()))
            .unwrap_or(NaiveDate::MAX);
        let label = match granularity {
            Granularity::Month => start.format("%Y-%m").to_string(),
            Granularity::Quarter => format!("{}-Q{}", start.year(), start.month0() / 3 + 1),
        };
        Period {
            granularity,
            start,
            end,
            label,
        }
    }

    /// The period of the same length just before this one.
    pub fn previous(&self) -> Period {
        let start = self
            .start
            .checked_sub_months(Months::new(self.granularity.months()))
            .unwrap_or(NaiveDate::MIN);
        Period::starting(self.granularity, start)
    }

    /// Whether `t` falls in the period.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        let day = t.date_naive();
        self.start <= day && day < self.end
    }

    /// The first instant of the period.
    pub fn start_time(&self) -> DateTime<Utc> {
        self.start.and_time(chrono::NaiveTime::MIN).and_utc()
    }

    /// The first instant after the period.
    pub fn end_time(&self) -> DateTime<Utc> {
        self.end.and_time(chrono::NaiveTime::MIN).and_utc()
    }
}

/// How many periods of `granularity` `periods(granularity, from, to)` holds, without making
/// them (0 when `to` is before `from`'s period).
pub fn period_count(granularity: Granularity, from: NaiveDate, to: NaiveDate) -> i64 {
    let month = |d: NaiveDate| i64::from(d.year()) * 12 + i64::from(d.month0());
    let months = i64::from(granularity.months());
    let first = Period::containing(granularity, from).start;
    ((month(to) - month(first)).div_euclid(months) + 1).max(0)
}

/// The periods of `granularity` from the one containing `from` to the one containing `to`,
/// oldest first; empty when `to` is before `from`.
pub fn periods(granularity: Granularity, from: NaiveDate, to: NaiveDate) -> Vec<Period> {
    let mut out = Vec::new();
    let mut p = Period::containing(granularity, from);
    while p.start <= to {
        let next = Period::starting(granularity, p.end);
        out.push(p);
        if next.start <= out[out.len() - 1].start {
            break;
        }
        p = next;
    }
    out
}

/// A stored tier change: from `at` on the customer held `tier`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierChange {
    pub at: DateTime<Utc>,
    pub tier: Tier,
}

/// A customer's tier history, oldest change first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TierHistory(Vec<TierChange>);

impl TierHistory {
    /// The history of these changes, in any order.
    pub fn new(mut changes: Vec<TierChange>) -> TierHistory {
        changes.sort_by_key(|c| c.at);
        TierHistory(changes)
    }

    /// Changes recorded, the first grading included.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the customer was never graded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tier held just before `t`: none before the first grading.
    pub fn held_before(&self, t: DateTime<Utc>) -> Option<Tier> {
        let n = self.0.partition_point(|c| c.at < t);
        n.checked_sub(1).map(|i| self.0[i].tier)
    }

    /// The tier a period before `t`'s end is reported under: the tier held then, or the first
    /// tier the customer was graded into when that came later.
    fn reported_at(&self, t: DateTime<Utc>) -> Option<Tier> {
        self.held_before(t).or(self.0.first().map(|c| c.tier))
    }
}

/// What the KPIs read of one customer's events.
#[derive(Debug, Clone, Default)]
struct Activity {
    first_seen: Option<DateTime<Utc>>,
    purchase_days: BTreeSet<NaiveDate>,
    nps: Vec<(DateTime<Utc>, i32)>,
    csat: Vec<(DateTime<Utc>, i32)>,
    complaints: Vec<DateTime<Utc>>,
    tickets: HashMap<String, Ticket>,
}

/// A ticket's earliest opening and earliest first response.
#[derive(Debug, Clone, Copy, Default)]
struct Ticket {
    opened: Option<DateTime<Utc>>,
    answered: Option<DateTime<Utc>>,
}

fn earliest(slot: &mut Option<DateTime<Utc>>, t: DateTime<Utc>) {
    *slot = Some(slot.map_or(t, |s| s.min(t)));
}

/// A tenant's events folded into what the KPIs read, in any order.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    customers: HashMap<String, Activity>,
}

impl Ledger {
    /// Folds in one stored event.
    pub fn apply(&mut self, event: &Event) {
        let a = self.customers.entry(event.customer_id.clone()).or_default();
        let at = event.occurred_at;
        earliest(&mut a.first_seen, at);
        match &event.payload {
            Payload::Order { .. } => {
                a.purchase_days.insert(at.date_naive());
            }
            Payload::Survey { kind, score, .. } => match kind {
                SurveyKind::Nps => a.nps.push((at, *score)),
                SurveyKind::Csat => a.csat.push((at, *score)),
                SurveyKind::Ces => {}
            },
            Payload::Complaint { .. } => a.complaints.push(at),
            Payload::SupportTicket {
                ticket_id, status, ..
            } => {
                let ticket = a.tickets.entry(ticket_id.clone()).or_default();
                match status {
                    TicketStatus::Opened => earliest(&mut ticket.opened, at),
                    TicketStatus::FirstResponse => earliest(&mut ticket.answered, at),
                    TicketStatus::Resolved | TicketStatus::Reopened => {}
                }
            }
            _ => {}
        }
    }
}

/// The KPIs of one period for one tier (or for every customer).
#[derive(Debug, Clone, PartialEq)]
pub struct KpiRow {
    pub period: Period,
    /// The tier reported on; none for every customer together (or, in a report by tier, for
    /// customers never graded).
    pub tier: Option<Tier>,
    /// Customers first seen before the period's end.
    pub customers: u64,
    /// Of them, those who bought during the period.
    pub buyers: u64,
    /// Net Promoter Score of the period's NPS answers: % promoters (9–10) − % detractors (0–6).
    pub nps: Option<f64>,
    pub nps_answers: u64,
    /// Share of the period's CSAT answers that are 4 or 5, in %.
    pub csat_pct: Option<f64>,
    pub csat_answers: u64,
    /// Of the customers who bought in the period before, the share who bought again in this
    /// one, in %; churn is the rest.
    pub retention_pct: Option<f64>,
    pub churn_pct: Option<f64>,
    /// Of the period's buyers, the share who have bought on at least two distinct days by its
    /// end, in %.
    pub repurchase_pct: Option<f64>,
    /// Of the customers holding this tier at the period's start, the share holding a higher
    /// (upgrade) or lower (downgrade) tier at its end, in %.
    pub upgrade_pct: Option<f64>,
    pub downgrade_pct: Option<f64>,
    /// Predicted 12-month CLV of the customers, summed and averaged over those with one;
    /// a prediction made now, so only the period containing the report's time has it.
    pub clv_total: Option<f64>,
    pub clv_avg: Option<f64>,
    /// Complaints made in the period, and per 100 customers.
    pub complaints: u64,
    pub complaint_rate: Option<f64>,
    /// Median time from a ticket's opening to its first response, over the tickets opened in
    /// the period that have one, in seconds.
    pub median_first_response_secs: Option<f64>,
}

/// Running sums of one row.
#[derive(Debug, Clone, Default)]
struct Sums {
    customers: u64,
    buyers: u64,
    promoters: u64,
    detractors: u64,
    nps_answers: u64,
    satisfied: u64,
    csat_answers: u64,
    bought_before: u64,
    retained: u64,
    repurchasers: u64,
    held_at_start: u64,
    upgraded: u64,
    downgraded: u64,
    clv_total: f64,
    clv_customers: u64,
    complaints: u64,
    first_responses: Vec<f64>,
}

/// What a report asks for.
#[derive(Debug, Clone)]
pub struct KpiQuery<'a> {
    pub periods: &'a [Period],
    /// One row per tier and period, or one per period.
    pub by_tier: bool,
    /// The report's time: the period containing it carries the CLV.
    pub now: DateTime<Utc>,
}

fn pct(part: u64, whole: u64) -> Option<f64> {
    (whole > 0).then(|| 100.0 * part as f64 / whole as f64)
}

/// Computes the KPIs of `query` from the `ledger`, the customers' tier `histories` and their
/// current predicted `clv`.
pub fn kpis(
    ledger: &Ledger,
    histories: &HashMap<String, TierHistory>,
    clv: &HashMap<String, f64>,
    query: &KpiQuery<'_>,
) -> Vec<KpiRow> {
    let groups: Vec<Option<Tier>> = if query.by_tier {
        Tier::DESCENDING
            .iter()
            .copied()
            .map(Some)
            .chain([None])
            .collect()
    } else {
        vec![None]
    };
    let slot = |tier: Option<Tier>| -> usize {
        if query.by_tier {
            groups
                .iter()
                .position(|g| *g == tier)
                .unwrap_or(groups.len() - 1)
        } else {
            0
        }
    };
    let mut sums: Vec<Vec<Sums>> = query
        .periods
        .iter()
        .map(|_| vec![Sums::default(); groups.len()])
        .collect();
    let before: Vec<Period> = query.periods.iter().map(Period::previous).collect();
    let no_history = TierHistory::default();
    for (id, a) in &ledger.customers {
        let history = histories.get(id).unwrap_or(&no_history);
        for ((period, before), row) in query.periods.iter().zip(&before).zip(sums.iter_mut()) {
            let (start, end) = (period.start_time(), period.end_time());
            if a.first_seen.is_none_or(|seen| seen >= end) {
                continue;
            }
            let s = &mut row[slot(history.reported_at(end))];
            s.customers += 1;
            let bought = a
                .purchase_days
                .range(period.start..period.end)
                .next()
                .is_some();
            if bought {
                s.buyers += 1;
                if a.purchase_days.range(..period.end).nth(1).is_some() {
                    s.repurchasers += 1;
                }
            }
            if a.purchase_days
                .range(before.start..before.end)
                .next()
                .is_some()
            {
                s.bought_before += 1;
                s.retained += u64::from(bought);
            }
            for (_, score) in a.nps.iter().filter(|(t, _)| period.contains(*t)) {
                s.nps_answers += 1;
                s.promoters += u64::from(*score >= 9);
                s.detractors += u64::from(*score <= 6);
            }
            for (_, score) in a.csat.iter().filter(|(t, _)| period.contains(*t)) {
                s.csat_answers += 1;
                s.satisfied += u64::from(*score >= 4);
            }
            s.complaints += a.complaints.iter().filter(|t| period.contains(**t)).count() as u64;
            for ticket in a.tickets.values() {
                if let Ticket {
                    opened: Some(opened),
                    answered: Some(answered),
                } = *ticket
                    && period.contains(opened)
                    && answered >= opened
                {
                    s.first_responses
                        .push((answered - opened).num_milliseconds() as f64 / 1000.0);
                }
            }
            if period.contains(query.now)
                && let Some(v) = clv.get(id)
            {
                s.clv_total += v;
                s.clv_customers += 1;
            }
            // Movements count in the tier the customer started the period in.
            if let Some(at_start) = history.held_before(start) {
                let s = &mut row[slot(Some(at_start))];
                s.held_at_start += 1;
                match history.held_before(end) {
                    Some(t) if t > at_start => s.upgraded += 1,
                    Some(t) if t < at_start => s.downgraded += 1,
                    _ => {}
                }
            }
        }
    }
    let mut out = Vec::with_capacity(sums.len() * groups.len());
    for (period, row) in query.periods.iter().zip(sums) {
        for (tier, mut s) in groups.iter().copied().zip(row) {
            if query.by_tier && tier.is_none() && s.customers == 0 && s.held_at_start == 0 {
                continue;
            }
            let retention = pct(s.retained, s.bought_before);
            out.push(KpiRow {
                period: period.clone(),
                tier,
                customers: s.customers,
                buyers: s.buyers,
                nps: (s.nps_answers > 0).then(|| {
                    100.0 * (s.promoters as f64 - s.detractors as f64) / s.nps_answers as f64
                }),
                nps_answers: s.nps_answers,
                csat_pct: pct(s.satisfied, s.csat_answers),
                csat_answers: s.csat_answers,
                retention_pct: retention,
                churn_pct: retention.map(|r| 100.0 - r),
                repurchase_pct: pct(s.repurchasers, s.buyers),
                upgrade_pct: pct(s.upgraded, s.held_at_start),
                downgrade_pct: pct(s.downgraded, s.held_at_start),
                clv_total: (s.clv_customers > 0).then_some(s.clv_total),
                clv_avg: (s.clv_customers > 0).then(|| s.clv_total / s.clv_customers as f64),
                complaints: s.complaints,
                complaint_rate: (s.customers > 0)
                    .then(|| 100.0 * s.complaints as f64 / s.customers as f64),
                median_first_response_secs: crate::metrics::median(std::mem::take(
                    &mut s.first_responses,
                )),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ComplaintSeverity, Payload};
    use chrono::TimeZone;

    fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
            .single()
            .expect("valid time")
    }

    fn event(customer: &str, when: DateTime<Utc>, payload: Payload) -> Event {
        Event {
            event_id: format!("{customer}-{when}"),
            customer_id: customer.into(),
            occurred_at: when,
            payload,
        }
    }

    fn order(customer: &str, when: DateTime<Utc>) -> Event {
        event(
            customer,
            when,
            Payload::Order {
                order_id: format!("o-{when}"),
                amount: 10.0,
                currency: "USD".into(),
                items: 1,
            },
        )
    }

    fn survey(customer: &str, when: DateTime<Utc>, kind: SurveyKind, score: i32) -> Event {
        event(
            customer,
            when,
            Payload::Survey {
                kind,
                score,
                comment: String::new(),
            },
        )
    }

    fn ticket(customer: &str, id: &str, when: DateTime<Utc>, status: TicketStatus) -> Event {
        event(
            customer,
            when,
            Payload::SupportTicket {
                ticket_id: id.into(),
                status,
                channel: "email".into(),
                priority: None,
            },
        )
    }

    fn complaint(customer: &str, when: DateTime<Utc>) -> Event {
        event(
            customer,
            when,
            Payload::Complaint {
                complaint_id: format!("k-{when}"),
                category: "delivery".into(),
                severity: ComplaintSeverity::Low,
                channel: "web".into(),
            },
        )
    }

    fn change(when: DateTime<Utc>, tier: Tier) -> TierChange {
        TierChange { at: when, tier }
    }

    #[test]
    fn periods_are_calendar_months_and_quarters() {
        let d = |y, m, day| NaiveDate::from_ymd_opt(y, m, day).expect("valid date");
        let months = periods(Granularity::Month, d(2025, 11, 20), d(2026, 2, 1));
        let labels: Vec<&str> = months.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["2025-11", "2025-12", "2026-01", "2026-02"]);
        assert_eq!(months[1].end, d(2026, 1, 1));
        let quarters = periods(Granularity::Quarter, d(2025, 12, 31), d(2026, 4, 1));
        let labels: Vec<&str> = quarters.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["2025-Q4", "2026-Q1", "2026-Q2"]);
        assert_eq!(quarters[0].previous().label, "2025-Q3");
        assert!(periods(Granularity::Month, d(2026, 3, 1), d(2026, 1, 1)).is_empty());
        for (g, from, to) in [
            (Granularity::Month, d(2025, 11, 20), d(2026, 2, 1)),
            (Granularity::Quarter, d(2025, 12, 31), d(2026, 4, 1)),
            (Granularity::Quarter, d(2026, 2, 1), d(2026, 3, 31)),
            (Granularity::Month, d(2026, 3, 1), d(2026, 1, 1)),
        ] {
            assert_eq!(
                period_count(g, from, to),
                periods(g, from, to).len() as i64,
                "{g:?} {from} {to}"
            );
        }
    }

    /// Four customers over two months, every figure worked out by hand.
    ///
    /// February: a buys (and bought in January), b buys for the first time, c bought in
    /// January only, d has bought nothing yet. NPS answers 10, 9, 5, 7 → (2 − 1)/4 = 25.
    /// CSAT 5, 4, 2 → 66.7 %. Complaints: 3 over 4 customers → 75 per 100. Tickets opened in
    /// February answered after 1 h, 3 h and 2 h (one unanswered, one opened in January) → 2 h.
    #[test]
    fn a_hand_made_tenant_gives_the_figures_worked_out_by_hand() {
        let mut ledger = Ledger::default();
        let events = [
            order("a", at(2026, 1, 5, 10)),
            order("a", at(2026, 2, 3, 10)),
            order("a", at(2026, 2, 3, 15)), // the same day: still one purchase day
            order("b", at(2026, 2, 10, 9)),
            order("c", at(2026, 1, 20, 9)),
            event("d", at(2026, 2, 1, 0), Payload::Profile(Default::default())),
            survey("a", at(2026, 2, 4, 9), SurveyKind::Nps, 10),
            survey("b", at(2026, 2, 11, 9), SurveyKind::Nps, 9),
            survey("c", at(2026, 2, 12, 9), SurveyKind::Nps, 5),
            survey("d", at(2026, 2, 13, 9), SurveyKind::Nps, 7),
            survey("c", at(2026, 1, 25, 9), SurveyKind::Nps, 0), // January's
            survey("a", at(2026, 2, 4, 9), SurveyKind::Csat, 5),
            survey("b", at(2026, 2, 4, 9), SurveyKind::Csat, 4),
            survey("c", at(2026, 2, 4, 9), SurveyKind::Csat, 2),
            survey("c", at(2026, 2, 4, 9), SurveyKind::Ces, 7), // not CSAT
            complaint("c", at(2026, 2, 14, 9)),
            complaint("c", at(2026, 2, 15, 9)),
            complaint("d", at(2026, 2, 28, 23)),
            complaint("d", at(2026, 3, 1, 0)), // March's
            ticket("a", "t1", at(2026, 2, 2, 9), TicketStatus::Opened),
            ticket("a", "t1", at(2026, 2, 2, 10), TicketStatus::FirstResponse),
            // Arrives first, is later: order does not matter.
            ticket("b", "t2", at(2026, 2, 5, 12), TicketStatus::FirstResponse),
            ticket("b", "t2", at(2026, 2, 5, 9), TicketStatus::Opened),
            ticket("c", "t3", at(2026, 2, 6, 9), TicketStatus::Opened),
            ticket("c", "t3", at(2026, 2, 6, 11), TicketStatus::FirstResponse),
            ticket("c", "t3", at(2026, 2, 6, 18), TicketStatus::FirstResponse), // not the first
            ticket("d", "t4", at(2026, 2, 7, 9), TicketStatus::Opened),         // unanswered
            ticket("d", "t5", at(2026, 1, 30, 9), TicketStatus::Opened),        // January's
            ticket("d", "t5", at(2026, 2, 1, 9), TicketStatus::FirstResponse),
        ];
        for e in &events {
            ledger.apply(e);
        }
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).expect("valid date");
        let feb = periods(Granularity::Month, d(2, 1), d(2, 28));
        let now = at(2026, 2, 20, 0);
        let clv = HashMap::from([("a".to_owned(), 300.0), ("b".to_owned(), 100.0)]);
        let query = KpiQuery {
            periods: &feb,
            by_tier: false,
            now,
        };
        let rows = kpis(&ledger, &HashMap::new(), &clv, &query);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!((r.customers, r.buyers), (4, 2));
        assert_eq!((r.nps, r.nps_answers), (Some(25.0), 4));
        assert_eq!(r.csat_answers, 3);
        assert!((r.csat_pct.expect("csat") - 200.0 / 3.0).abs() < 1e-9);
        // January's buyers a and c: a came back.
        assert_eq!((r.retention_pct, r.churn_pct), (Some(50.0), Some(50.0)));
        // Of February's buyers a (two days) and b (one): half repurchased.
        assert_eq!(r.repurchase_pct, Some(50.0));
        assert_eq!((r.complaints, r.complaint_rate), (3, Some(75.0)));
        assert_eq!(r.median_first_response_secs, Some(7_200.0));
        assert_eq!((r.clv_total, r.clv_avg), (Some(400.0), Some(200.0)));
        // Nobody was graded: no tier movements to rate.
        assert_eq!((r.upgrade_pct, r.downgrade_pct), (None, None));

        // A report for a past period has no CLV (it is a prediction made now).
        let later = KpiQuery {
            now: at(2026, 5, 1, 0),
            ..query.clone()
        };
        let past = &kpis(&ledger, &HashMap::new(), &clv, &later)[0];
        assert_eq!((past.clv_total, past.clv_avg), (None, None));

        // By tier: a and b Gold since January; c Gold then Silver in February; d graded
        // Regular only in March (reported in its first tier).
        let histories = HashMap::from([
            (
                "a".to_owned(),
                TierHistory::new(vec![change(at(2026, 1, 10, 0), Tier::Gold)]),
            ),
            (
                "b".to_owned(),
                TierHistory::new(vec![
                    change(at(2026, 2, 15, 0), Tier::Vip),
                    change(at(2026, 1, 10, 0), Tier::Gold),
                ]),
            ),
            (
                "c".to_owned(),
                TierHistory::new(vec![
                    change(at(2026, 1, 10, 0), Tier::Gold),
                    change(at(2026, 2, 20, 0), Tier::Silver),
                ]),
            ),
            (
                "d".to_owned(),
                TierHistory::new(vec![change(at(2026, 3, 5, 0), Tier::Regular)]),
            ),
        ]);
        let by_tier = KpiQuery {
            by_tier: true,
            ..query
        };
        let rows = kpis(&ledger, &histories, &clv, &by_tier);
        let row = |t: Tier| rows.iter().find(|r| r.tier == Some(t)).expect("tier row");
        assert_eq!(rows.len(), 5, "five tiers, no ungraded row");
        // Held at the end of February: a Gold, b VIP, c Silver, d Regular.
        assert_eq!(row(Tier::Gold).customers, 1);
        assert_eq!(row(Tier::Vip).customers, 1);
        assert_eq!(row(Tier::Silver).customers, 1);
        assert_eq!(row(Tier::Regular).customers, 1);
        assert_eq!(row(Tier::Bronze).customers, 0);
        assert_eq!(row(Tier::Silver).complaints, 2);
        assert_eq!(row(Tier::Vip).nps, Some(100.0));
        // Three Gold customers at the start of February: one up, one down.
        let gold = row(Tier::Gold);
        assert!((gold.upgrade_pct.expect("upgrades") - 100.0 / 3.0).abs() < 1e-9);
        assert!((gold.downgrade_pct.expect("downgrades") - 100.0 / 3.0).abs() < 1e-9);
        assert_eq!(
            row(Tier::Vip).upgrade_pct,
            None,
            "nobody was VIP at the start"
        );
        // The tiers add up to the whole.
        let whole: u64 = rows.iter().map(|r| r.customers).sum();
        assert_eq!(whole, 4);
        let complaints: u64 = rows.iter().map(|r| r.complaints).sum();
        assert_eq!(complaints, 3);
    }

    #[test]
    fn an_ungraded_customer_gets_its_own_row_by_tier() {
        let mut ledger = Ledger::default();
        ledger.apply(&order("x", at(2026, 2, 3, 10)));
        let feb = periods(
            Granularity::Month,
            at(2026, 2, 1, 0).date_naive(),
            at(2026, 2, 1, 0).date_naive(),
        );
        let rows = kpis(
            &ledger,
            &HashMap::new(),
            &HashMap::new(),
            &KpiQuery {
                periods: &feb,
                by_tier: true,
                now: at(2026, 2, 20, 0),
            },
        );
        assert_eq!(rows.len(), 6);
        let ungraded = rows.last().expect("a row");
        assert_eq!((ungraded.tier, ungraded.customers), (None, 1));
        // Nobody bought in January: retention has no base.
        assert_eq!(ungraded.retention_pct, None);
        assert_eq!(ungraded.repurchase_pct, Some(0.0));
    }
}
